"""`loco train drums`, `loco evaluate`, `loco predict`, `loco plot`: the drum recipe's commands.

`loco evaluate digits ...` and `loco plot --task digits ...` are handed to the digit recipe's
commands (`recipes.digits_cli.TaskDispatch`), and `loco train digits` is in the `train` group.

The work is done by `loco_tf.recipes.drums`; these commands turn options into its calls and
its results into tables and files. A user error (a missing or unusable file, a missing data
set, a model folder without its files) ends in a one-line message naming the file, never a
traceback; `predict` and `evaluate` go on with the other files and exit with status 1 when any
file failed.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path

import click

from loco_tf._choices import INFERENCE_PRECISIONS
from loco_tf.recipes.cli_options import PROGRESS, overwrite_option, progress_option
from loco_tf.recipes.configs import DrumTrainConfig
from loco_tf.recipes.digits_cli import TaskDispatch, evaluate_digits, plot_digits, train_digits

_HELP = {
    "data": "Folder of the sets written by `loco prepare drums` (or `loco prepare piano`).",
    "out": "Output folder: model.keras, model.json, best.keras, backup/, history.csv, logs/.",
    "train_set": "Training set: a name in --data, or a .manifest.json path (e.g. fixed-length "
    "segments prepared with --min-crop 0). Several, comma separated, are trained on together, "
    "in proportion to their sizes (e.g. drums-train,mykit/drums-train.manifest.json: your "
    "own kit's renders with the data).",
    "validation_set": "Validation set: a name in --data, or a .manifest.json path; several, "
    "comma separated, are one set (the decoding is tuned on all of them).",
    "classes": "Classes, comma separated, in output order.",
    "supervision": "counts: LoCo, the count of hits per segment only; frames: the fully "
    "supervised twin (frame-wise cross-entropy on onset frames).",
    "per_instrument": "One 1-class network per class (the paper's choice; 3x the compute) "
    "instead of one 3-class network.",
    "band_size": "Classes per network: one network per band of this many consecutive "
    "classes (the paper's piano bands of 10 pitches); 0 for one network for all.",
    "decoding_band_size": "Classes per shared decoding (threshold, spacing, offset tuned on "
    "their events together); 0 tunes each class alone.",
    "k_max": "Last count bin of the loss (eq. 14).",
    "prior_zero_mass": "Omega of the eq. 15 output bias: initial Pr(count = 0).",
    "sequence_length": "T: frames per padded training segment (and of eq. 15).",
    "filters": "Filters of the causal 3x4 convolutions, comma separated.",
    "lstm_units": "LSTM units.",
    "dense_units": "Units of the dense layer before the output.",
    "learning_rate": "Adam learning rate.",
    "batch_size": "Segments per batch.",
    "epochs": "At most this many epochs.",
    "steps_per_epoch": "Batches per epoch.",
    "validation_steps": "Validation batches per epoch [default: the whole validation set].",
    "patience": "Epochs without a better validation loss before stopping early.",
    "reduce_lr_patience": "Halve (--reduce-lr-factor) the learning rate after this many "
    "epochs without a better validation loss, at most four times (0: constant).",
    "reduce_lr_factor": "Factor of --reduce-lr-patience.",
    "init_from": "Start from the weights of this trained drum model folder (fine-tuning, e.g. "
    "saved_models/drums/3 on new kits); classes and features must match. Larger --filters, "
    "--lstm-units or --dense-units grow its one network: new units start with zero weights into "
    "the old ones, so the run starts from the same p(t).",
    "average_weight": "Save (1 - W) x the trained weights + W x --init-from's (weight-space "
    "ensembling, as WiSE-FT; keeps more of the start's robustness); may be added to a finished "
    "run. 0: off.",
    "shuffle_buffer": "Segments in the shuffle buffer.",
    "stack_probability": "Extract stacking probability (two segments played at once, counts "
    "added; counts supervision only).",
    "gain_db": "Spectral colouring: each training segment's level moves by up to this many dB "
    "(0: off). Imitates other kits; see the README.",
    "eq_db": "Spectral colouring: a random smooth equaliser of up to +-this many dB on each "
    "training segment (0: off).",
    "shift_bands": "Spectral colouring: mel bands shift by up to this many bands up or down "
    "(a crude retuning; 0: off).",
    "mask_bands": "Frequency masking (SpecAugment): two masks of up to this many consecutive "
    "mel bands on each training segment, each band held at its mean level (0: off).",
    "reverb_seconds": "Reverberation: each training segment gets a room tail with a "
    "reverberation time (RT60) of up to this many seconds, e.g. 0.8 (0: off). Imitates kits "
    "recorded with room microphones; see the README.",
    "widen_frames": "Frames on each side of an onset that are positives too (frames supervision).",
    "widen_weight": "Loss weight of those neighbouring frames (frames supervision).",
    "tensorboard": "Write TensorBoard logs to OUT/logs.",
    "backup_every": "Back up the training state every N batches [default: every epoch].",
    "seed": "Seed of weights, shuffling and augmentation.",
    "strategy": "tf.distribute strategy: default (one device), mirrored (all GPUs, or the "
    "logical CPUs of --cpu-devices), multiworker (every process of TF_CONFIG runs this command). "
    "--batch-size is the global batch.",
    "mixed_precision": "Keras dtype policy of the network; the loss is computed in float32.",
}


_FIXED = {"task"}
"""Config fields that are not options: the command sets them."""


def _split(value: str, kind: type) -> tuple:
    try:
        return tuple(kind(part.strip()) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected a comma-separated list, got {value!r}") from None


_CHOICES = {
    "supervision": ["counts", "frames"],
    "strategy": ["default", "mirrored", "multiworker"],
    "mixed_precision": ["float32", "mixed_float16", "mixed_bfloat16"],
}


def _cpu_devices(ctx, param, value):
    """--cpu-devices N: split the CPU into N logical devices first thing (for mirrored)."""
    if value:
        from loco_tf.distribute import split_cpu

        try:
            split_cpu(value)
        except (RuntimeError, ValueError) as error:
            raise click.BadParameter(str(error)) from None
    return value


def config_options(defaults: DrumTrainConfig):
    """A decorator: one option per `DrumTrainConfig` field (but `task`), named after it, with
    its value in `defaults` as the default."""
    return lambda command: _config_options(command, defaults)


def _config_options(command, defaults: DrumTrainConfig | None = None):
    """One option per `DrumTrainConfig` field, named after it, with its default."""
    defaults = defaults or DrumTrainConfig()
    hints = typing.get_type_hints(DrumTrainConfig)
    for field in reversed(dataclasses.fields(DrumTrainConfig)):
        if field.name in _FIXED:
            continue
        name = field.name.replace("_", "-")
        hint = hints[field.name]
        default = getattr(defaults, field.name)
        help_text = _HELP[field.name]
        if hint is bool:
            option = click.option(
                f"--{name}/--no-{name}", default=default, show_default=True, help=help_text
            )
        elif field.name in _CHOICES:
            option = click.option(
                f"--{name}",
                type=click.Choice(_CHOICES[field.name]),
                default=default,
                show_default=True,
                help=help_text,
            )
        elif isinstance(default, tuple):
            kind = type(default[0])
            shown = len(default) <= 8 or f"{len(default)} values, {default[0]} to {default[-1]}"
            option = click.option(
                f"--{name}",
                default=",".join(str(v) for v in default),
                show_default=shown,
                callback=lambda ctx, param, value, kind=kind: _split(value, kind),
                help=help_text,
            )
        elif default is None:
            option = click.option(f"--{name}", type=int, default=None, help=help_text)
        else:
            option = click.option(
                f"--{name}", type=type(default), default=default, show_default=True, help=help_text
            )
        command = option(command)
    return click.option(
        "--cpu-devices",
        type=click.IntRange(min=0),
        default=0,
        is_eager=True,
        expose_value=False,
        callback=_cpu_devices,
        help="Split the CPU into this many logical devices (with --strategy mirrored on a "
        "machine without GPUs: tests and benchmarks). [default: 0, one device]",
    )(command)


def _config(options: dict, **fixed) -> DrumTrainConfig:
    values = {
        f.name: options.pop(f.name)
        for f in dataclasses.fields(DrumTrainConfig)
        if f.name not in _FIXED
    }
    try:
        return DrumTrainConfig(**values, **fixed)
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def _log(message: str) -> None:
    click.echo(message, err=True)


def _run_training(config: DrumTrainConfig, overwrite: bool, verbose: str):
    from loco_tf.recipes import drums

    try:
        result = drums.train(config, overwrite=overwrite, verbose=verbose, log=_log)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    if result.transcriber is not None:
        # Scoring or plotting the run in this process uses the network it trained (`_load`).
        _keep(_cache_key(result.out, "float32"), result.transcriber)
    return result


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def train() -> None:
    """Train a model on prepared data (`loco prepare ...`)."""


@train.command("drums")
@_config_options
@overwrite_option
@click.option(
    "--evaluate/--no-evaluate",
    default=True,
    show_default=True,
    help="Score the model on the drums-test-* sets of --data after training.",
)
@progress_option
def train_drums(overwrite: bool, evaluate: bool, progress: str, **options) -> None:
    """Train the §6.1 drum network (KD, SD, HH) with LoCo or its fully supervised twin.

    Rerunning the same command resumes an interrupted run from its last backup; rerunning
    a finished run with a larger --epochs trains it on (--patience and --reduce-lr-* may change
    too). Writes OUT/model.keras and OUT/model.json (configs, classes, tuned decoding,
    validation scores).
    """
    from loco_tf.recipes import drums

    config = _config(options)
    verbose = PROGRESS[progress]
    result = _run_training(config, overwrite, verbose)
    click.echo("")
    click.echo(f"Decoding tuned on {config.validation_set} (per class):")
    click.echo(drums.tuning_table(result.tunings, config.classes))
    click.echo("")
    click.echo(result.validation.table(f"Validation ({config.validation_set}, whole files)"))
    if evaluate and drums.evaluation_sets(config.data):
        _evaluate_sets([result.out], config.data, (), json_path=result.out / "evaluation.json")
    elif evaluate:
        click.echo(f"\nNo drums-test-* sets in {config.data} to score the model on.")
    click.echo(f"\nModel: {result.out / drums.MODEL_FILE} (+ {drums.MODEL_JSON})")


def _piano_defaults():
    from loco_tf.recipes.configs import piano_config

    return piano_config()


@train.command("piano")
@config_options(_piano_defaults())
@click.option(
    "--full",
    is_flag=True,
    help="The paper's §7.1 configuration (for a GPU): one network per band of 10 pitches, "
    "each 2x the drum network (filters 16-32, LSTM 48, dense 32), extract stacking 0.25. "
    "Options given explicitly still win.",
)
@overwrite_option
@click.option(
    "--evaluate/--no-evaluate",
    default=True,
    show_default=True,
    help="Score the model on the piano-test-* sets of --data after training.",
)
@progress_option
@click.pass_context
def train_piano(ctx, full: bool, overwrite: bool, evaluate: bool, progress: str, **options):
    """Train the piano onset network (88 keys, paper §7) from counts per pitch.

    Data: `loco prepare piano --out DATA`. The default configuration is one network for all
    88 keys, sized for a CPU; --full trains the paper's nine band networks. Rerunning the same
    command resumes. Writes OUT/model.keras and OUT/model.json.
    """
    from loco_tf.recipes import drums
    from loco_tf.recipes.piano import FULL, band_table

    if full:
        for name, value in FULL.items():
            if ctx.get_parameter_source(name) is click.core.ParameterSource.DEFAULT:
                options[name] = value
    config = _config(options, task="piano")
    result = _run_training(config, overwrite, PROGRESS[progress])
    click.echo("")
    click.echo(f"Decoding tuned on {config.validation_set} (per band of 10 pitches):")
    click.echo(
        drums.tuning_table(
            result.tunings[:: config.decoding_band_size or 1],
            config.classes[:: config.decoding_band_size or 1],
        )
    )
    click.echo("")
    click.echo(f"Validation ({config.validation_set}, whole files), onsets per band at 50 ms:")
    click.echo(band_table(result.validation))
    if evaluate and drums.evaluation_sets(config.data, prefix="piano-test-"):
        _evaluate_sets([result.out], config.data, (), json_path=result.out / "evaluation.json")
    elif evaluate:
        click.echo(f"\nNo piano-test-* sets in {config.data} to score the model on.")
    click.echo(f"\nModel: {result.out / drums.MODEL_FILE} (+ {drums.MODEL_JSON})")


@train.command("drums-compare")
@_config_options
@click.option("--overwrite", is_flag=True, help="Start both runs again.")
def train_drums_compare(overwrite: bool, **options) -> None:
    """Weak vs full supervision: trains LoCo (counts) and the fully supervised twin (frames)
    with the same options into OUT/counts and OUT/frames, and prints their test scores."""
    from loco_tf.recipes import drums

    config = _config(options)
    try:
        table = drums.compare_supervision(
            config, config.out, log=_log, overwrite=overwrite, verbose=2
        )
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(table)


@train.command("drums-ablation")
@_config_options
@click.option(
    "--fixed-train-set",
    required=True,
    help="The fixed-length training set (a .manifest.json path or a name in --data), e.g. "
    "from `loco prepare drums --min-crop 0 --out data-fixed`.",
)
@click.option("--overwrite", is_flag=True, help="Start both runs again.")
def train_drums_ablation(fixed_train_set: str, overwrite: bool, **options) -> None:
    """§4.5 ablation: LoCo on variable-length (--train-set) vs fixed-length segments
    (--fixed-train-set), into OUT/counts and OUT/counts-fixed; prints the timing errors.

    OUT/counts is also `drums-compare`'s LoCo run: give both commands the same --out and the
    second one reuses it."""
    from loco_tf.recipes import drums

    config = _config(options)
    try:
        table = drums.run_length_ablation(
            config, fixed_train_set, config.out, log=_log, overwrite=overwrite, verbose=2
        )
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(table)


MODEL_OPTION = click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True),
    default=None,
    help="A trained drum model folder [default: the model shipped in saved_models/drums].",
)
"""`--model`, for the commands that run a drum model (default: the shipped one)."""


def _model_path(model_path, task: str | None = None):
    """`model_path`, or the shipped model of `task` (drums by default)."""
    from loco_tf.recipes import drums, piano

    if model_path is not None:
        return model_path
    task = task or "drums"
    recipe = piano if task == "piano" else drums
    model_path = recipe.shipped_model()
    if model_path is None:
        raise click.ClickException(
            f"no --model given and no {task} model shipped in {recipe.SHIPPED_MODELS}. "
            f"Train one: `loco prepare {task} --out data && loco train {task} --data data "
            f"--out runs/{task}`, then pass --model runs/{task}"
        )
    return model_path


# Transcribers loaded in this process, by their files' identity: `loco demo` (and a Python
# session calling the commands) loads one model for scoring and each plot, and every load
# compiles its network again (~2.5 s for drums/6).
_LOADED: collections.OrderedDict[tuple, typing.Any] = collections.OrderedDict()
_LOADED_MAX = 4


def _file_identity(path) -> tuple:
    status = os.stat(path)
    return os.path.realpath(path), status.st_ino, status.st_size, status.st_mtime_ns


def _cache_key(model_path, encoder_dtype: str) -> tuple:
    from loco_tf.recipes import drums

    return (*map(_file_identity, drums.model_files(model_path)), encoder_dtype)


def _keep(key: tuple, transcriber) -> None:
    """Keeps `transcriber` as the most recent of `_LOADED`, dropping the oldest beyond
    `_LOADED_MAX`."""
    _LOADED[key] = transcriber
    _LOADED.move_to_end(key)
    while len(_LOADED) > _LOADED_MAX:
        _LOADED.popitem(last=False)


def _load(model_path, task: str | None = None, encoder_dtype: str = "float32") -> typing.Any:
    """The model at `model_path`, or the shipped model of `task` (drums by default); a model
    of another task than `task` is an error. `encoder_dtype` "bfloat16" runs its convolutions
    in bfloat16 (`_encoder_dtype`).

    A model loaded before in this process, with the same files (path, inode, size,
    modification time), is not loaded again: the result is a copy sharing its network."""
    from loco_tf.recipes import drums

    model_path = _model_path(model_path, task)
    try:
        # model.json says the task: a model of another one is refused before it loads.
        model_task = drums.load_description(model_path).get("task", "drums")
        if task is not None and model_task != task:
            raise click.ClickException(
                f"{model_path} is a {model_task} model; --task {task} needs a {task} model"
            )
        key = _cache_key(model_path, encoder_dtype)
        loaded = _LOADED.get(key)
        if loaded is None:
            loaded = drums.DrumTranscriber.load(model_path, encoder_dtype=encoder_dtype)
        _keep(key, loaded)
    except (FileNotFoundError, ValueError, OSError) as error:
        raise click.ClickException(f"cannot load the model {model_path}: {error}") from None
    transcriber = copy.copy(loaded)
    transcriber.description = copy.deepcopy(transcriber.description)
    return transcriber


def transcribe_unless_done(
    transcriber, paths: typing.Sequence, done: typing.Sequence[bool]
) -> typing.Iterator:
    """Per path, in order: None where `done` says so, else its `transcribe_many` result (a
    `Transcription`, or the `AudioError` that makes the file unusable). One `transcribe_many`
    pass over the files to do, so the next file's features are computed while the network
    finishes this one (`loco predict`, `loco annotate`)."""
    results = transcriber.transcribe_many(
        path for path, skip in zip(paths, done, strict=True) if not skip
    )
    try:
        for skip in done:
            yield None if skip else next(results)
    finally:
        results.close()  # BLAS threads back as they were (`transcribe_many`)


def precision_options(default: str):
    """`--precision auto|float32|bfloat16` with `default`, and `--bfloat16`, its older
    spelling of `--precision bfloat16` (hidden); the command gets `precision` and
    `bfloat16`, which `_encoder_dtype` turns into the network's encoder dtype."""
    auto = (
        "auto: bfloat16 where the CPU computes it natively (AVX512_BF16 or AMX in "
        "/proc/cpuinfo) and TensorFlow's oneDNN is on, else float32"
    )
    precision = click.option(
        "--precision",
        type=click.Choice(INFERENCE_PRECISIONS),
        default=default,
        show_default=True,
        help="The network's convolutions in float32 or bfloat16; "
        f"{auto}. bfloat16 took half the network's float32 time on an AVX512_BF16 CPU (CPUs "
        "without it may gain nothing or lose); p(t) moves by up to ~0.08, the drum and piano "
        "test F1 by at most 0.1 point (README).",
    )
    alias = click.option(
        "--bfloat16", is_flag=True, hidden=True, help="The same as --precision bfloat16."
    )
    return lambda command: precision(alias(command))


def _encoder_dtype(precision: str, bfloat16: bool) -> str:
    """The encoder dtype of `--precision` and `--bfloat16`; both given, they must agree."""
    from loco_tf.streaming import encoder_dtype_for

    if bfloat16:
        source = click.get_current_context().get_parameter_source("precision")
        if precision != "bfloat16" and source is click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(f"--bfloat16 contradicts --precision {precision}")
        return "bfloat16"
    return encoder_dtype_for(precision)


def _print_evaluation(transcriber, result, title: str) -> tuple[typing.Any, dict]:
    """Prints a set's scores (drums: the onset table; piano: note scores per piece, per band
    and the overall onset rows); returns the onset `Evaluation` and JSON-ready scores."""
    from loco_tf.metrics import ALL

    evaluation = result.evaluate(transcriber.classes)
    click.echo("")
    if transcriber.task != "piano":
        click.echo(evaluation.table(title))
        return evaluation, evaluation.to_dict()
    from loco_tf.recipes import piano

    notes = piano.evaluate_notes(
        result.references, result.estimates, transcriber.classes, result.names
    )
    click.echo(notes.table(title))
    click.echo(
        "\nOnsets per band of 10 pitches at 50 ms (micro; timing: mean estimate - reference)"
    )
    click.echo(piano.band_table(evaluation))
    click.echo("")
    lines = evaluation.table().splitlines()
    click.echo("\n".join(lines[:3] + [line for line in lines[3:] if f" {ALL} " in line]))
    return evaluation, {"notes": notes.to_dict(), "onsets": evaluation.to_dict()}


@dataclasses.dataclass
class _Data:
    """What `--data` names: prepared sets (name, manifest path), or a folder of audio files
    paired with annotation files (and the files left without a partner)."""

    sets: list[tuple[str, str]]
    pairs: list = dataclasses.field(default_factory=list)
    audio_without: list = dataclasses.field(default_factory=list)
    annotations_without: list = dataclasses.field(default_factory=list)

    @property
    def is_folder(self) -> bool:
        return not self.sets


def _resolve_data(data, sets, prefix: str) -> _Data:
    """The sets (`--set`, else every PREFIX* set) or the annotated audio folder in `data`; a
    clear error when it is neither."""
    from loco_tf.pipelines.readers import AnnotationError, pair_audio_with_annotations
    from loco_tf.recipes import drums

    data = os.fspath(data)
    found = drums.evaluation_sets(data, sets, prefix=prefix)
    if found:
        return _Data(found)
    if not Path(data).is_dir() or sets:
        raise click.ClickException(
            f"{data}: neither a folder (of sets, or of audio and annotations) nor a .manifest.json"
        )
    names = sorted(p.name[: -len(".manifest.json")] for p in Path(data).glob("*.manifest.json"))
    if names:
        raise click.ClickException(
            f"no {prefix}* set in {data}; choose with --set among: {', '.join(names)}"
        )
    try:
        pairs, audio_without, annotations_without = pair_audio_with_annotations(data)
    except AnnotationError as error:
        raise click.ClickException(str(error)) from None
    if not pairs and not audio_without:
        raise click.ClickException(f"no sets, audio or annotation files in {data}")
    # Reported once here, not once per model (`_transcribe_data` counts them as failed).
    for path in audio_without:
        _log(f"error: {path}: no annotation file found for it")
    for path in annotations_without:
        _log(f"warning: {path}: annotation without audio, ignored")
    return _Data([], pairs, audio_without, annotations_without)


def _transcribe_data(
    transcriber, data, resolved: _Data, raw_timing: bool = False, known_counts: bool = False
) -> tuple[dict, int]:
    """Runs a model on the resolved `--data`: {set name: `SetTranscription`} and the number
    of files that could not be used (each reported)."""
    from loco_tf.pipelines.tfrecords import read_manifest
    from loco_tf.recipes import drums

    if resolved.is_folder:
        if known_counts:
            raise click.ClickException("--known-counts works on prepared sets, not folders")
        result, failures = drums.transcribe_folder(transcriber, resolved.pairs, log=_log)
        failed = len(failures) + len(resolved.audio_without)
        return ({} if result is None else {Path(data).name: result}), failed
    transcriptions = {}
    for name, path in resolved.sets:
        try:
            manifest = read_manifest(path)
        except (OSError, ValueError) as error:
            raise click.ClickException(f"cannot read the set {name}: {error}") from None
        try:
            transcriptions[name] = drums.transcribe_set(
                transcriber, manifest, decoding_offsets=not raw_timing, known_counts=known_counts
            )
        except ValueError as error:
            raise click.ClickException(f"cannot use the set {name}: {error}") from None
    return transcriptions, 0


def _evaluate_sets(
    models,
    data,
    sets,
    json_path=None,
    raw_timing: bool = False,
    known_counts: bool = False,
    encoder_dtype: str = "float32",
) -> None:
    """Scores each model on the sets (or the folder) in `data`; prints tables."""
    transcribers = [_load(model_path, encoder_dtype=encoder_dtype) for model_path in models]
    tasks = {t.task for t in transcribers}
    if len(tasks) > 1:
        raise click.ClickException(f"the models are of different tasks: {sorted(tasks)}")
    task = tasks.pop()
    resolved = _resolve_data(data, sets, prefix=f"{task}-test-")
    results, scores, failed = {}, {}, 0
    for model_path, transcriber in zip(models, transcribers, strict=True):
        label = os.fspath(model_path)
        transcriptions, failures = _transcribe_data(
            transcriber, data, resolved, raw_timing, known_counts
        )
        failed = max(failed, failures)
        results[label], scores[label] = {}, {}
        for name, result in transcriptions.items():
            title = f"{label} on {name}"
            results[label][name], scores[label][name] = _print_evaluation(
                transcriber, result, title
            )
    if len(models) > 1:
        click.echo("")
        click.echo(_comparison(results, [] if task == "piano" else transcriber.classes))
    if json_path is not None:
        with open(json_path, "w", encoding="utf-8") as file:
            json.dump(scores, file, indent=2)
        click.echo(f"\nScores: {json_path}")
    if failed:
        raise click.ClickException(f"{failed} file(s) could not be evaluated (listed above)")


def _comparison(results, classes) -> str:
    from loco_tf.metrics import ALL

    names = [*classes, ALL]
    header = f"{'model':<28} {'set':<22} " + " ".join(
        f"{f'{n}@{w}':>8}" for w in (50, 20) for n in names
    )
    lines = ["F1 (%, micro, whole files)", header]
    for model, evaluations in results.items():
        for name, evaluation in evaluations.items():
            cells = " ".join(
                f"{100 * evaluation[(w / 1000, n)].f1:8.1f}" for w in (50, 20) for n in names
            )
            lines.append(f"{model[-28:]:<28} {name:<22} {cells}")
    return "\n".join(lines)


def data_options(sets_used: str, verb: str):
    """`--data` (prepared sets, one manifest, or a folder of annotated audio) and `--set`."""

    def decorate(function):
        function = click.option(
            "--set", "sets", multiple=True, help=f"A set of --data to {verb} (repeatable)."
        )(function)
        return click.option(
            "--data",
            required=True,
            type=click.Path(exists=True),
            help=f"A folder of prepared sets ({sets_used}, or --set), one .manifest.json, or a "
            "folder of audio files with annotation files (same stem; IDMT XML, ENST, MDB, "
            "MIDI, CSV).",
        )(function)

    return decorate


@click.command(cls=TaskDispatch, tasks={"digits": evaluate_digits})
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True))
@data_options("scores the drums-test-* sets", "score")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write the scores as JSON."
)
@click.option(
    "--raw-timing",
    is_flag=True,
    help="Score frame times without the tuned offset (the network's own timing).",
)
@click.option(
    "--known-counts",
    is_flag=True,
    help="Decode each file with its true number of hits per class, as `loco annotate` does "
    "(measures count-constrained annotation).",
)
@precision_options("float32")
def evaluate(models, data, sets, json_path, raw_timing, known_counts, precision, bfloat16) -> None:
    """Score drum models (folders with model.keras + model.json) on whole files.

    Prints precision, recall and F1 per class and overall at 50 and 20 ms, micro (summed
    over files) and mean per file, and the signed timing error. With several MODELS, also a
    comparison table.

    `loco evaluate digits [MODEL] --data DIR` scores a digit model instead (see
    `loco evaluate digits --help`).
    """
    encoder_dtype = _encoder_dtype(precision, bfloat16)
    _evaluate_sets(list(models), data, sets, json_path, raw_timing, known_counts, encoder_dtype)


FEW_TUNING_EVENTS = 20
"""Below this many reference events, a class's re-tuned threshold is a guess: `loco tune`
warns."""


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True))
@data_options("tunes on its drums-validation or piano-validation set", "tune on")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the re-tuned model (model.keras + model.json); a rerun replaces it.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    help="Also draw F1 against the threshold per class, before and after (PNG).",
)
@precision_options("float32")
def tune(model_path, data, sets, out, plot_path, precision, bfloat16) -> None:
    """Re-tune a trained model's decoding on your own annotated files.

    The network stays as it is; each class's threshold, minimum spacing and timing offset are
    chosen again, to maximise F1 at 50 ms on the files in --data, as training chose them on
    its validation files. Use it when your recordings sound unlike the training data (another
    kit, room or microphone) and you have a few annotated ones: p(t)'s peaks can be lower or
    higher there than the thresholds chosen on the training kits expect. Tune on files you do
    not score on. Prints the old and the new decoding with their F1 on the tuning files, and
    writes OUT for `loco predict --model OUT`, `loco evaluate OUT` and `loco export OUT`.
    """
    from loco_tf.recipes import drums

    transcriber = _load(model_path, encoder_dtype=_encoder_dtype(precision, bfloat16))
    try:
        drums.check_retuned_output(model_path, out)  # before the minutes of inference
    except (OSError, ValueError) as error:
        raise click.ClickException(f"cannot write the re-tuned model: {error}") from None
    resolved = _resolve_data(data, sets, prefix=f"{transcriber.task}-validation")
    transcriptions, failed = _transcribe_data(transcriber, data, resolved)
    if not transcriptions:
        raise click.ClickException(f"no usable annotated files in {data} (listed above)")
    train_config = transcriber.description.get("train_config", {})
    band_size = int(train_config.get("decoding_band_size", 0))
    try:
        retuning = drums.retune(transcriber, list(transcriptions.values()), band_size)
    except ValueError as error:
        raise click.ClickException(f"cannot tune on {data}: {error}") from None
    names = ", ".join(transcriptions)
    click.echo(f"Decoding of {model_path}, re-tuned on {retuning.files} files ({names}):")
    click.echo(retuning.table())
    for name, count in zip(retuning.group_names(), retuning.references, strict=True):
        if count < FEW_TUNING_EVENTS:
            _log(
                f"warning: only {count} {name} events to tune on: its new decoding may not "
                f"carry over to other files (annotate more of them)"
            )
    tuned_on = {"data": os.fspath(data), "sets": list(transcriptions)}
    try:
        written = drums.save_retuned(model_path, out, retuning, tuned_on)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"cannot write the re-tuned model: {error}") from None
    click.echo(f"\nWrote {written}: `loco predict --model {written} AUDIO... --out DIR`")
    if plot_path is not None:
        try:
            drums.plot_retuning(transcriber, list(transcriptions.values()), retuning, plot_path)
        except OSError as error:
            raise click.ClickException(f"cannot write the plot {plot_path}: {error}") from None
        click.echo(f"Plot: {plot_path}")
    if failed:
        raise click.ClickException(f"{failed} file(s) could not be used (listed above)")


@click.command()
@click.argument("audio", nargs=-1, required=True)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for one NAME.csv (drums: time,class; piano: onset,pitch) and one NAME.mid "
    "per audio file.",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True),
    default=None,
    help="A trained model folder (model.keras + model.json) [default: the model shipped in "
    "saved_models/drums, or saved_models/piano with --task piano].",
)
@click.option(
    "--task",
    type=click.Choice(["drums", "piano"]),
    default=None,
    help="drums: KD, SD, HH hits; piano: note onsets of the 88 keys. [default: the task of "
    "--model, else drums]",
)
@precision_options("auto")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Transcribe every file again, also those an earlier run into --out finished with the "
    "same model and options.",
)
def predict(audio, out, model_path, task, precision, bfloat16, overwrite) -> None:
    """Transcribe drum hits (KD, SD, HH) or piano note onsets in AUDIO files to CSV and MIDI.

    AUDIO may be files or folders (every WAV, FLAC, MP3, OGG, Opus or AIFF file under them).
    Each file is processed whole, in bounded memory, however long. Drums: the MIDI file has
    the hits on channel 10 (kick 36, snare 38, closed hi-hat 42). Piano (--task piano): one
    note per onset on a piano track (program 0), 0.25 s long.

    A rerun into the same --out skips the files already transcribed there with the same model
    and options from unchanged audio (OUT/loco-predict.json), so a stopped batch resumes.
    """
    from loco_tf.pipelines.audio import AudioError
    from loco_tf.recipes import drums
    from loco_tf.recipes.piano import NOTE_SECONDS

    model_path = _model_path(model_path, task)
    encoder_dtype = _encoder_dtype(precision, bfloat16)
    transcriber = _load(model_path, task, encoder_dtype)
    is_piano = transcriber.task == "piano"
    files, empty = drums.expand_audio_paths(audio)
    for folder in empty:
        _log(
            f"error: {folder}: no audio files in this folder ({', '.join(drums.AUDIO_EXTENSIONS)})"
        )
    os.makedirs(out, exist_ok=True)
    # The options that decide the output; bfloat16 as it was keyed before --precision, so
    # the records of earlier runs stay valid.
    fingerprint = drums.model_fingerprint(model_path, bfloat16=encoder_dtype == "bfloat16")
    record = drums.OutputRecord(out, fingerprint)
    failures, skipped = len(empty), 0
    outputs = [
        (path, stem, os.path.join(out, f"{stem}.csv"), os.path.join(out, f"{stem}.mid"))
        for path, stem in zip(files, drums.output_stems(files), strict=True)
    ]
    up_to_date = [
        not overwrite and record.done(path, stem, (csv_path, midi_path))
        for path, stem, csv_path, midi_path in outputs
    ]
    results = transcribe_unless_done(transcriber, [path for path, *_ in outputs], up_to_date)
    for (path, stem, csv_path, midi_path), transcription in zip(outputs, results, strict=True):
        if transcription is None:
            skipped += 1
            click.echo(f"{path}: up to date -> {csv_path}, {midi_path}")
            continue
        if isinstance(transcription, AudioError):
            failures += 1
            _log(f"error: {transcription}")
            continue
        times, classes = transcription.times, transcriber.classes
        try:
            if is_piano:
                drums.write_csv(csv_path, times, classes, header=("onset", "pitch"))
                drums.write_midi(midi_path, times, classes, notes=None, duration=NOTE_SECONDS)
            else:
                drums.write_csv(csv_path, times, classes)
                drums.write_midi(midi_path, times, classes)
            record.add(path, stem)
        except OSError as error:
            raise click.ClickException(f"cannot write to {out}: {error}") from None
        seconds = len(transcription.probabilities) / transcriber.feature_config.frame_rate
        found = sum(len(t) for t in times)
        if is_piano:
            counts = f"{found} note onsets of {sum(1 for t in times if len(t))} pitches"
        else:
            counts = "hits " + ", ".join(
                f"{name} {len(t)}" for name, t in zip(classes, times, strict=True)
            )
        note = "" if found else " (nothing found)"
        click.echo(f"{path}: {seconds:.1f} s, {counts}{note} -> {csv_path}, {midi_path}")
    if skipped:
        click.echo(
            f"{skipped} file(s) were up to date in {out} (same audio, model and options); "
            "--overwrite transcribes them again"
        )
    if failures:
        total = len(files) + len(empty)
        raise click.ClickException(f"{failures} of {total} file(s) failed (listed above)")


@click.command(cls=TaskDispatch, tasks={"digits": plot_digits})
@click.argument("audio", type=click.Path())
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True),
    default=None,
    help="A trained drum model folder [default: the shipped one].",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Image file (PNG).")
@click.option(
    "--annotation",
    type=click.Path(exists=True, dir_okay=False),
    help="True hits to draw (any annotation format loco reads).",
)
@click.option("--start", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds shown.",
)
@click.option(
    "--task",
    type=click.Choice(["drums", "piano", "digits"]),
    default="drums",
    show_default=True,
    help="drums: p(t) per class of AUDIO; piano: a piano roll of p(t) of AUDIO (with the "
    "shipped piano model unless --model); digits: canvases of a prepared digit set with "
    "their detections (its own options: `loco plot --task digits --help`).",
)
def plot(audio, model_path, out, annotation, start, duration, task) -> None:
    """Plot the spectrogram of AUDIO, p(t) per class, and the true and predicted hits.

    With `--task piano`: the spectrogram and a piano roll of p(t) with true and predicted
    note onsets. With `--task digits`: test canvases with the digits found on them (the
    paper's Fig. 2).
    """
    import numpy as np

    from loco_tf.pipelines.audio import AudioError
    from loco_tf.pipelines.readers import AnnotationError
    from loco_tf.recipes import drums

    transcriber = _load(model_path, task if model_path is None or task == "piano" else None)
    references = None
    if annotation is not None:
        try:
            events = drums.read_task_annotations(annotation, transcriber.task)
        except AnnotationError as error:
            raise click.ClickException(str(error)) from None
        references = [
            np.array([e.time for e in events if e.label == name]) for name in transcriber.classes
        ]
    span = (start, start + duration)
    try:
        transcription = transcriber.transcribe(audio, keep_features=span)
    except AudioError as error:
        raise click.ClickException(str(error)) from None
    try:
        if transcriber.task == "piano":
            from loco_tf.recipes.piano import plot_piano_roll

            plot_piano_roll(
                transcription,
                transcriber.classes,
                transcriber.feature_config,
                out,
                references,
                span,
            )
        else:
            drums.plot_transcription(
                transcription,
                transcriber.classes,
                transcriber.feature_config,
                transcriber.decoding,
                out,
                references,
                span,
            )
    except OSError as error:
        raise click.ClickException(f"cannot write {out}: {error}") from None
    click.echo(f"{audio}: figure written to {out}", file=sys.stdout)


train.add_command(train_digits)

COMMANDS = (train, evaluate, tune, predict, plot)
"""The commands to attach to the `loco` group: `for c in COMMANDS: main.add_command(c)`."""
