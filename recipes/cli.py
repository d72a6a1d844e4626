"""The `loco` command line."""

from __future__ import annotations

import click

from loco_tf._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loco")
def main() -> None:
    """loco-tf: learn where events happen in time from labels that only say how many happened.

    Run `loco COMMAND --help` for a command's options.
    """
