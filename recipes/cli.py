"""The `loco` command line."""

from __future__ import annotations

import click

from loco_tf._version import __version__
from loco_tf.recipes.drums_cli import COMMANDS as DRUM_COMMANDS
from loco_tf.recipes.prepare_cli import prepare
from loco_tf.recipes.serving_cli import COMMANDS as SERVING_COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loco")
def main() -> None:
    """loco-tf: learn where events happen in time from labels that only say how many happened.

    Run `loco COMMAND --help` for a command's options.
    """


@main.command()
@click.option("--epochs", default=12, show_default=True, help="Training epochs.")
@click.option("--train-sequences", default=768, show_default=True, help="Training sequences.")
@click.option("--seed", default=0, show_default=True, help="Seed for data and weights.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default="loco-demo.png",
    show_default=True,
    help="Where to write a figure of p(t) against the true events ('' for none).",
)
def demo(epochs: int, train_sequences: int, seed: int, plot_path: str) -> None:
    """Self-demo: learn to localise synthetic events from their counts alone (~30 s on CPU).

    A causal conv + LSTM network is trained with LocoLoss on how many events each sequence
    holds, never where; it then marks the events of unseen sequences, and the command prints how
    many of its detections fall within 2 frames of the truth.
    """
    from loco_tf.recipes.impulses import ImpulseTask, run

    task = ImpulseTask(epochs=epochs, train_sequences=train_sequences, seed=seed)
    click.echo(
        f"Training on {task.train_sequences} sequences with counts only "
        f"({task.classes} classes, {task.frames} frames, lengths vary) ..."
    )
    scores = run(task, verbose=2, plot_path=plot_path or None)
    click.echo("")
    click.echo(
        f"Held-out localisation ({task.test_sequences} sequences, {scores['events']} events,"
    )
    click.echo(f"a detection is correct within +-{task.tolerance_frames} frames):")
    click.echo(f"  precision  {scores['precision']:6.1%}")
    click.echo(f"  recall     {scores['recall']:6.1%}")
    click.echo(f"  F1         {scores['f1']:6.1%}")
    click.echo(f"  mean |expected count - true count|  {scores['count_mae']:.3f}")
    click.echo(f"  training time  {scores['train_seconds']:.1f} s")
    if plot_path:
        click.echo(f"Figure: {plot_path}")


main.add_command(prepare)
for command in (*DRUM_COMMANDS, *SERVING_COMMANDS):
    main.add_command(command)
