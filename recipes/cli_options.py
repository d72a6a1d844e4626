"""Options that several `loco train` commands share."""

from __future__ import annotations

import click

PROGRESS = {"bar": 1, "epoch": 2, "none": 0}
"""`--progress` choice -> `model.fit`'s `verbose`."""

progress_option = click.option(
    "--progress",
    type=click.Choice(list(PROGRESS)),
    default="bar",
    show_default=True,
    help="Keras progress: a bar per epoch, one line per epoch, or nothing.",
)
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Start again in an --out that holds a run."
)
