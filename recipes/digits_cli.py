"""`loco train digits`, `loco evaluate digits`, `loco plot --task digits`: the digit recipe.

The work is done by `loco_tf.recipes.digits`. `evaluate` and `plot` are the drum recipe's
commands (`recipes.drums_cli`), which hand their arguments to the commands here when the first
argument is `digits` (evaluate) or `--task digits` is given (plot): `TaskDispatch`. A user
error (a missing set, a model folder without its files, canvases of another size) ends in a
one-line message naming the file, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import typing

import click

from loco_tf.recipes.cli_options import PROGRESS, overwrite_option, progress_option
from loco_tf.recipes.configs import DIGIT_FULL as FULL
from loco_tf.recipes.configs import DigitTrainConfig

_HELP = {
    "data": "Folder of the sets written by `loco prepare digits`.",
    "out": "Output folder: model.keras, model.json, best.keras, backup/, history.csv, logs/.",
    "train_set": "Training set: a name in --data, or a .manifest.json path.",
    "validation_set": "Validation set: a name in --data, or a .manifest.json path.",
    "width": "VGG-13's filters times this (1 = the paper's 64..512; --full).",
    "window": "Sub-image side in pixels (32: VGG's pooling ends at 1 x 1).",
    "stride": "Pixels between sub-images along the Hilbert curve (the paper's 8).",
    "batch_norm": "Batch normalisation after each convolution (not in the paper).",
    "lstm_units": "LSTM units (the paper's 48).",
    "dense_units": "Units of the dense layer before the output (the paper's 24).",
    "k_max": "Last count bin of the loss (eq. 14).",
    "prior_zero_mass": "Omega of the eq. 15 output bias: initial Pr(count = 0).",
    "learning_rate": "Adam learning rate.",
    "batch_size": "Canvases per batch.",
    "epochs": "At most this many epochs.",
    "steps_per_epoch": "Batches per epoch.",
    "validation_steps": "Validation batches per epoch [default: the whole validation set].",
    "patience": "Epochs without a better validation loss before stopping early.",
    "shuffle_buffer": "Canvases in the shuffle buffer.",
    "threshold": "Smallest peak of p(t) that is a detection.",
    "tensorboard": "Write TensorBoard logs to OUT/logs.",
    "backup_every": "Back up the training state every N batches [default: every epoch].",
    "seed": "Seed of weights and shuffling.",
}


class TaskDispatch(click.Command):
    """A command that hands its arguments to another task's command.

    `loco evaluate digits MODEL ...` (the task name first) and `loco plot --task digits ...`
    (a `--task` option anywhere before a `--`) run the command registered for that task, with
    the task words removed; anything else runs this command as it always did.

    Args:
        tasks: task name -> the command that does it.
    """

    def __init__(self, *args, tasks: dict[str, click.Command], **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks = tasks

    def _task(self, args: list[str]) -> tuple[str | None, list[str]]:
        if args and args[0] in self.tasks:
            return args[0], args[1:]
        for i, arg in enumerate(args):
            if arg == "--":
                break
            if arg == "--task" and i + 1 < len(args) and args[i + 1] in self.tasks:
                return args[i + 1], args[:i] + args[i + 2 :]
            if arg.startswith("--task=") and arg[len("--task=") :] in self.tasks:
                return arg[len("--task=") :], args[:i] + args[i + 1 :]
        return None, args

    def make_context(self, info_name, args, parent=None, **extra):
        task, rest = self._task(list(args))
        if task is None:
            return super().make_context(info_name, args, parent=parent, **extra)
        return self.tasks[task].make_context(f"{info_name} {task}", rest, parent=parent, **extra)


def _config_options(command):
    """One option per `DigitTrainConfig` field, named after it, with its default."""
    hints = typing.get_type_hints(DigitTrainConfig)
    for field in reversed(dataclasses.fields(DigitTrainConfig)):
        name = field.name.replace("_", "-")
        hint, default, help_text = hints[field.name], field.default, _HELP[field.name]
        if field.name in FULL:
            help_text += f" [--full: {FULL[field.name]}]"
        if hint is bool:
            option = click.option(
                f"--{name}/--no-{name}", default=default, show_default=True, help=help_text
            )
        elif default is None:
            option = click.option(f"--{name}", type=int, default=None, help=help_text)
        else:
            option = click.option(
                f"--{name}", type=type(default), default=default, show_default=True, help=help_text
            )
        command = option(command)
    return command


def _config(options: dict, full: bool) -> DigitTrainConfig:
    values = {f.name: options.pop(f.name) for f in dataclasses.fields(DigitTrainConfig)}
    if full:
        context = click.get_current_context()
        for name, value in FULL.items():
            if context.get_parameter_source(name) == click.core.ParameterSource.DEFAULT:
                values[name] = value
    try:
        return DigitTrainConfig(**values)
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def _log(message: str) -> None:
    click.echo(message, err=True)


def _load(model_path):
    from loco_tf.recipes import digits

    if model_path is None:
        model_path = digits.shipped_model()
        if model_path is None:
            raise click.ClickException(
                f"no MODEL given and no digit model shipped in {digits.SHIPPED_MODELS}. Train "
                "one: `loco prepare digits --out data/digits && loco train digits --data "
                "data/digits --out runs/digits`"
            )
    try:
        return digits.DigitDetector.load(model_path)
    except (FileNotFoundError, ValueError, OSError) as error:
        raise click.ClickException(f"cannot load the model {model_path}: {error}") from None


def _evaluate(model_path, data, limit, tolerance, json_path) -> None:
    from loco_tf.recipes import digits

    detector = _load(model_path)
    try:
        evaluation = digits.evaluate(detector, data, limit=limit, tolerance=tolerance)
    except (FileNotFoundError, ValueError, OSError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(evaluation.table(f"{model_path or 'shipped model'} on {data}"))
    if json_path is not None:
        with open(json_path, "w", encoding="utf-8") as file:
            json.dump(evaluation.to_dict(), file, indent=2)
        click.echo(f"Scores: {json_path}")


@click.command("digits")
@_config_options
@click.option(
    "--full",
    is_flag=True,
    help="The paper's network and budget, for a GPU: "
    + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in FULL.items())
    + " (options given explicitly win).",
)
@overwrite_option
@click.option(
    "--evaluate/--no-evaluate",
    default=True,
    show_default=True,
    help="Score the model on digits-test-single and digits-test after training.",
)
@progress_option
def train_digits(full: bool, overwrite: bool, evaluate: bool, progress: str, **options) -> None:
    """Train the §8.2 digit network (VGG-13 on Hilbert-scan windows, LSTM) on digit counts.

    Rerunning the same command resumes an interrupted run from its last backup. Writes
    OUT/model.keras and OUT/model.json, and with --evaluate OUT/evaluation.json.
    """
    from loco_tf.recipes import digits

    config = _config(options, full)
    verbose = PROGRESS[progress]
    try:
        result = digits.train(config, overwrite=overwrite, verbose=verbose, log=_log)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    validation = result.description["validation"]
    click.echo(
        f"Validation ({config.validation_set}): mean localisation error "
        f"{validation['mean_distance']:.2f} px, F1 {100 * validation['f1']:.1f} %, exact counts "
        f"{100 * validation['exact_counts']:.1f} %"
    )
    if evaluate:
        _evaluate(result.out, config.data, None, 14.0, result.out / "evaluation.json")
    click.echo(f"Model: {result.out / digits.MODEL_FILE} (+ {digits.MODEL_JSON})")


@click.command("digits")
@click.argument("model", required=False, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of the sets written by `loco prepare digits` (digits-test-single and "
    "digits-test are scored).",
)
@click.option(
    "--limit", type=click.IntRange(min=1), help="Score only the first N canvases of each."
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=14.0,
    show_default=True,
    help="A detection within this many pixels of a true digit of its class counts as found "
    "(precision/recall only; the mean distance uses every matched pair).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write the scores as JSON."
)
def evaluate_digits(model, data, limit, tolerance, json_path) -> None:
    """Score a digit MODEL folder [default: the shipped one] (paper §8.3).

    Single-digit recognition: each MNIST test digit alone on a canvas, class = argmax of
    sum_t p(t). Localisation: mean distance in pixels between true box centres and the centres
    of the windows where p(t) peaks, matched per class by the Hungarian assignment.
    """
    _evaluate(model, data, limit, tolerance, json_path)


@click.command("digits")
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A trained digit model folder [default: the shipped one].",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of the sets written by `loco prepare digits`.",
)
@click.option("--set", "set_name", default="digits-test", show_default=True, help="Set to show.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Image file (PNG).")
@click.option("--canvases", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--first", type=click.IntRange(min=0), default=0, show_default=True)
def plot_digits(model_path, data, set_name, out, canvases, first) -> None:
    """Plot canvases with the detections and the true digits (the paper's Fig. 2)."""
    from loco_tf.recipes import digits

    detector = _load(model_path)
    try:
        digits.plot_set(detector, digits.load_set(data, set_name), out, canvases, first)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot write {out}: {error}") from None
    click.echo(f"{set_name}: figure written to {out}")
