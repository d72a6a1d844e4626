"""The `loco` command line."""

from __future__ import annotations

import functools

import click

from loco_tf import _startup
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


def _synthetic_demo(epochs: int, seed: int, plot_path: str) -> None:
    from loco_tf.recipes.impulses import ImpulseTask, run

    task = ImpulseTask(epochs=epochs, seed=seed)
    click.echo(
        f"Training on {task.train_sequences} synthetic sequences with counts only "
        f"({task.classes} classes, {task.frames} frames, lengths vary) ..."
    )
    scores = run(task, verbose=2, plot_path=plot_path)
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
    click.echo(f"Figure: {plot_path}")


COLOURING = ("--gain-db", "6", "--eq-db", "10", "--shift-bands", "3")
"""The demo trains with the spectral colouring every shipped drum model was trained with (a
random level, equaliser and mel-band shift per window; see the README): it is what carries a
model to a kit it never heard."""


def _available_kits(kits: list[str]) -> list[str]:
    import os

    from loco_tf.pipelines.render import KITS

    return [kit for kit in kits if os.path.isfile(KITS[kit])]


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="loco-demo",
    show_default=True,
    help="Folder for the data, the run, the scores and the plots. A rerun resumes.",
)
@click.option(
    "--max-files",
    type=click.IntRange(min=3),
    default=150,
    show_default=True,
    help="Groove MIDI Dataset performances to render (procedural grooves without GMD).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Training epochs (of --steps-per-epoch batches; ~1.5 min each on 2 CPU cores).",
)
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=250, show_default=True)
@click.option(
    "--synthetic",
    is_flag=True,
    help="Instead: the 20-second library self-demo on synthetic impulse sequences.",
)
@click.option("--seed", default=0, show_default=True, help="Seed for data and weights.")
def demo(out: str, max_files: int, epochs: int, steps_per_epoch: int, synthetic: bool, seed: int):
    """Drum transcription from counts, end to end (~20 min on a 2-core CPU).

    1. renders Groove MIDI Dataset performances with FluidSynth (the training kits take turns;
       the test split also with TimGM6mb, a kit the model never hears),
    2. trains the §6.1 ConvLSTM on the number of kick, snare and hi-hat hits per window only
       (each window spectrally coloured, as the shipped models were),
    3. scores the held-out performances with mir_eval and prints the table,
    4. plots spectrogram, p(t) and the true and found hits of a test file (OUT/plots/).

    Rerunning resumes where it stopped. `--synthetic` runs the quick self-demo instead.
    """
    import os

    from loco_tf.recipes.drums_cli import plot, train
    from loco_tf.recipes.prepare_cli import drums as prepare_drums

    if synthetic:
        os.makedirs(out, exist_ok=True)
        _synthetic_demo(12, seed, os.path.join(out, "synthetic.png"))
        return
    data, run, plots = (os.path.join(out, name) for name in ("data", "run", "plots"))
    train_kits = _available_kits(["fluidr3", "blackpearl", "redzeppelin"]) or ["fluidr3"]
    test_kits = ["timgm6mb", *[k for k in ("fluidr3",) if k in train_kits]]
    click.echo(f"[1/4] Rendering drum data into {data} (train kits {', '.join(train_kits)}) ...")
    prepare_args = [
        "--out", data, "--max-files", str(max_files), "--procedural", str(max_files),
        "--kits", ",".join(test_kits), "--train-kits", ",".join(train_kits),
        "--seed", str(seed), "--allow-skips",
    ]  # fmt: skip
    prepare_drums.main(prepare_args, standalone_mode=False)
    click.echo(f"[2/4] Training on counts only ({epochs} epochs) into {run} ...")
    train_args = [
        "drums", "--data", data, "--out", run, "--epochs", str(epochs),
        "--steps-per-epoch", str(steps_per_epoch), "--seed", str(seed), "--progress", "epoch",
        *COLOURING,
    ]  # fmt: skip
    click.echo("[3/4] ... then scoring the held-out test split with mir_eval:")
    train.main(train_args, standalone_mode=False)
    click.echo(f"[4/4] Plotting test files into {plots} ...")
    os.makedirs(plots, exist_ok=True)
    for kit in test_kits:
        audio, annotation = _a_test_file(data, kit)
        if audio is None:
            continue
        figure = os.path.join(plots, f"test-{kit}.png")
        plot_args = [audio, "--model", run, "--out", figure, "--duration", "8"]
        if annotation:
            plot_args += ["--annotation", annotation]
        plot.main(plot_args, standalone_mode=False)
    click.echo(f"Done. Model: {run}; scores: {os.path.join(run, 'evaluation.json')}")


def _a_test_file(data: str, kit: str) -> tuple[str | None, str | None]:
    """The first file of a kit's test set: its rendered audio and its MIDI annotation."""
    import glob
    import os

    import tensorflow as tf

    from loco_tf.pipelines.tfrecords import read_manifest
    from loco_tf.recipes.prepare_cli import _default_dir

    path = os.path.join(data, f"drums-test-{kit}.manifest.json")
    if not os.path.isfile(path):
        return None, None
    record = next(iter(tf.data.TFRecordDataset(read_manifest(path).files[:1])))
    example = tf.train.Example.FromString(record.numpy())
    source = example.features.feature["source"].bytes_list.value[0].decode("utf-8")
    stem = os.path.splitext(source)[0]
    audio = glob.glob(os.path.join(data, "audio", "**", f"{kit}-*", f"{stem}.wav"), recursive=True)
    midi = [os.path.join(_default_dir("groove"), source)]
    midi += glob.glob(os.path.join(data, "audio", "**", "midi", source), recursive=True)
    midi = [m for m in midi if os.path.isfile(m)]
    return (audio[0] if audio else None), (midi[0] if midi else None)


main.add_command(prepare)
for command in (*DRUM_COMMANDS, *SERVING_COMMANDS):
    main.add_command(command)


def _start_first(command: click.Command, done: set[int]) -> None:
    """Every command of the tree starts its work with `_startup.start_command()` (TensorFlow
    and the package imported, with TensorFlow's start-up lines held back). Only the work: a
    command's options are parsed first, so `--help`, `--version` and a mistyped option answer
    without waiting seconds for TensorFlow."""
    if id(command) in done:
        return
    done.add(id(command))
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            _start_first(subcommand, done)
        return
    for task_command in getattr(command, "tasks", {}).values():  # digits_cli.TaskDispatch
        _start_first(task_command, done)
    if command.callback is not None:
        work = command.callback

        @functools.wraps(work)
        def started(*args, **kwargs):
            _startup.start_command()
            return work(*args, **kwargs)

        command.callback = started


_start_first(main, set())
