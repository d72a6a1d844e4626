"""`loco prepare`: the TFRecord shards that the recipes train and evaluate on.

    loco prepare drums    GMD rendered with FluidSynth (or procedural grooves without GMD)
    loco prepare piano    ASAP rendered with two piano SoundFonts
    loco prepare folder   a folder of your own audio and annotations
    loco prepare digits   MNIST digits on canvases (paper §8), counted per class
    loco prepare kits     drum kits drawn from one-shot sample packs (Hydrogen drumkits)

The work is done by `loco_tf.pipelines.prepare`, whose docstring describes the output layout,
the windows, the handling of bad input and resuming. Every command prints one line per skipped
file and per warning as it goes, then a summary, and exits with status 1 when any input file was
skipped, unless --allow-skips.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from pathlib import Path

import click

# The data sit next to the repository (`../shared/data`) on the machine it is developed on.
_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_NO_DIR = "none"


def _default_dir(name: str) -> str:
    path = _DATA / name
    return str(path) if path.is_dir() else _NO_DIR


def _factors(ctx, param, value: str) -> tuple[float, ...]:
    try:
        factors = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, got {value!r}") from None
    if any(not factor > 0 for factor in factors):
        raise click.BadParameter(f"factors must be positive, got {value!r}")
    return factors


def _kits(ctx, param, value: str) -> tuple[str, ...]:
    from loco_tf.pipelines.render import kit_source

    kits = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not kits and param.name != "train_kits":  # --train-kits "" means: the first of --kits
        raise click.BadParameter("give at least one kit")
    for kit in kits:
        try:
            kit_source(kit)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
        except FileNotFoundError:
            # Reported with its fix when the run starts (`prepare._latencies`), after the checks
            # of the data folder: an uninstalled default kit must not hide a missing dataset.
            pass
    return kits


def _data_dir(value: str | None) -> str | None:
    return None if value in (None, "", _NO_DIR) else value


def _common_options(command):
    """Options every `prepare` command has; they fill `PrepareConfig`."""
    options = [
        click.option(
            "--out",
            type=click.Path(file_okay=False),
            default="data",
            show_default=True,
            help="Output folder: shards, manifests, run files, and the render cache audio/.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=2,
            show_default=True,
            help="Processes that render and compute features.",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed of the training window lengths (and of procedural grooves).",
        ),
        click.option(
            "--k-max",
            type=click.IntRange(min=1),
            default=None,
            help="Count truncation (eq. 14) the data is for [default: 31 drums, 42 piano]. "
            "Windows above it are kept, with a warning.",
        ),
        click.option(
            "--compression",
            type=click.Choice(["none", "gzip"], case_sensitive=False),
            default="none",
            show_default=True,
            help="TFRecord compression (GZIP saves ~11 % and writes ~10x slower).",
        ),
        click.option(
            "--files-per-shard",
            type=click.IntRange(min=1),
            default=32,
            show_default=True,
            help="Source files per shard (a shard holds whole files).",
        ),
        click.option(
            "--allow-skips",
            is_flag=True,
            help="Exit with status 0 even when input files were skipped.",
        ),
        click.option(
            "--progress/--no-progress", default=True, show_default=True, help="Progress bars."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _window_options(command):
    """Windows of training sets and of validation/test sets."""
    options = [
        click.option(
            "--train-hop",
            type=click.FloatRange(min=0, min_open=True),
            default=0.75,
            show_default=True,
            help="Seconds between training window starts.",
        ),
        click.option(
            "--min-crop",
            type=click.FloatRange(min=0),
            default=0.5,
            show_default=True,
            help="Shortest training window in seconds (variable-length crops, paper §4.5); "
            "0 for fixed 1.5 s windows.",
        ),
        click.option(
            "--eval-hop",
            type=click.FloatRange(min=0, min_open=True),
            default=1.5,
            show_default=True,
            help="Seconds between the fixed 1.5 s windows of validation and test sets.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def _summary(report, out: str) -> list[str]:
    rows = [("set", "status", "files", "audio h", "segments", "shards", "time s")]
    for s in report.sets:
        rows.append(
            (
                s.name,
                s.status,
                f"{s.files}" + (f"+{s.copies} aug" if s.copies else ""),
                f"{s.audio_seconds / 3600:.2f}",
                f"{s.segments}",
                f"{s.shards}",
                f"{s.seconds:.0f}",
            )
        )
    rows.append(
        (
            "total",
            "",
            f"{sum(s.files for s in report.sets)}",
            f"{sum(s.audio_seconds for s in report.sets) / 3600:.2f}",
            f"{sum(s.segments for s in report.sets)}",
            f"{sum(s.shards for s in report.sets)}",
            f"{report.seconds:.0f}",
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["", "Summary"]
    for row in rows:
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells))
    lines.append(f"  output: {os.path.abspath(out)}")
    skipped = report.all_skipped
    lines.append(f"  skipped: {len(skipped)} file(s)" + (":" if skipped else ""))
    lines += [f"    {line}" for line in skipped]
    lines.append(f"  warnings: {len(report.all_warnings)} (listed above)")
    return lines


def _run(make_plan, out: str, k_max: int, allow_skips: bool, **config) -> None:
    """Builds the plan, writes its sets, prints the summary; user errors become clean messages."""
    from loco_tf.pipelines.hydrogen import KitError
    from loco_tf.pipelines.prepare import PrepareConfig, prepare_sets
    from loco_tf.pipelines.readers import AnnotationError

    compression = None if config.pop("compression").lower() == "none" else "GZIP"
    prepare_config = PrepareConfig(k_max=k_max, compression=compression, **config)
    try:
        plan = make_plan()
    except (AnnotationError, KitError, FileNotFoundError, ImportError) as error:
        raise click.ClickException(str(error)) from None
    if not plan.sets and not plan.skipped:
        raise click.ClickException("nothing to prepare: no input files found")
    try:
        report = prepare_sets(plan, out, prepare_config, log=_log)
    except OSError as error:
        raise click.ClickException(f"cannot write the output: {error}") from None
    for line in _summary(report, out):
        click.echo(line)
    skipped = len(report.all_skipped)
    if skipped and not allow_skips:
        raise click.ClickException(
            f"{skipped} input file(s) skipped (listed above); everything else was written. "
            "Pass --allow-skips to accept a partial run."
        )


def _windows(train_hop: float, min_crop: float, eval_hop: float):
    from loco_tf.pipelines.prepare import Windows

    return Windows(train_hop, min_crop or None), Windows(eval_hop, None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def prepare() -> None:
    """Preprocess audio and annotations into TFRecord shards (features + event counts).

    Sets are written to --out as NAME-*.tfrecord shards, NAME.manifest.json and
    NAME.prepare.json; rendered audio is cached in OUT/audio/. A rerun skips what is complete.
    """


@prepare.command()
@click.option(
    "--data-dir",
    default=_default_dir("groove"),
    show_default=True,
    help="The Groove MIDI Dataset (with info.csv). Without it (or with 'none'), procedural "
    "grooves are generated instead.",
)
@click.option(
    "--kits",
    default="fluidr3,timgm6mb",
    show_default=True,
    callback=_kits,
    help="Rendering kits of the test split (one set drums-test-KIT each); the first also "
    "renders train and validation unless --train-kits is given. Names, .sf2/.sf3 paths, "
    "Hydrogen drumkits as hydrogen:NAME (sudo apt-get install hydrogen-drumkits; e.g. "
    "hydrogen:ForzeeStereo, set drums-test-h2-forzeestereo) or drumkit folders (e.g. from "
    "`loco prepare kits`).",
)
@click.option(
    "--train-kits",
    default="",
    callback=_kits,
    help="Kits that take turns rendering the train and validation files (one kit per file), "
    "e.g. 'fluidr3,blackpearl,redzeppelin' to test on timgm6mb as an unseen kit "
    "(csound shares timgm6mb's drum samples). [default: the first of --kits]",
)
@click.option(
    "--max-files",
    type=click.IntRange(min=0),
    default=300,
    show_default=True,
    help="GMD performances to use, shared among the splits in proportion (a fixed choice); "
    "0 for all 1,150 (13.6 h).",
)
@click.option(
    "--procedural",
    type=click.IntRange(min=3),
    default=300,
    show_default=True,
    help="Procedural grooves (about 19 s each) to generate when GMD is not found; 80/10/10.",
)
@click.option(
    "--rate-factors",
    default="",
    callback=_factors,
    help="Sample-rate variation (paper §6.1): one extra training copy per factor, e.g. "
    "'0.9,1.1'. Off by default (each factor adds a pass over the training audio).",
)
@_window_options
@_common_options
def drums(
    data_dir,
    kits,
    train_kits,
    max_files,
    procedural,
    rate_factors,
    train_hop,
    min_crop,
    eval_hop,
    **options,
):
    """Drum data: GMD performances rendered with FluidSynth, or procedural grooves.

    Labels are kick/snare/hi-hat onsets (KD, SD, HH) from the MIDI notes, shifted by the kit's
    render latency. GMD's own train/validation/test split is kept; the test split is rendered
    with every kit, so scores on a kit not used in training come for free.
    """
    from loco_tf.pipelines.prepare import DRUM_K_MAX, Augmentation, drum_sets

    train_windows, eval_windows = _windows(train_hop, min_crop, eval_hop)
    make_plan = functools.partial(
        drum_sets,
        options["out"],
        _data_dir(data_dir),
        kits,
        train_kits=train_kits or None,
        max_files=max_files,
        procedural=procedural,
        seed=options["seed"],
        train_windows=train_windows,
        eval_windows=eval_windows,
        augmentation=Augmentation(sample_rate_factors=rate_factors) if rate_factors else None,
    )
    k_max = options.pop("k_max") or DRUM_K_MAX
    _run(make_plan, k_max=k_max, **options)


@prepare.command()
@click.option(
    "--data-dir",
    default=_default_dir("asap"),
    show_default=True,
    help="ASAP (with metadata.csv).",
)
@click.option(
    "--kits",
    default="fluidr3,timgm6mb",
    show_default=True,
    callback=_kits,
    help="Piano sounds (General MIDI program 0 of each SoundFont): the first renders train "
    "and validation unless --train-kits is given, every one the test split (piano-test-KIT).",
)
@click.option(
    "--train-kits",
    default="",
    callback=_kits,
    help="Piano sounds that take turns rendering the train and validation files (one per "
    "file), e.g. 'fluidr3,timgm6mb'. blackpearl, redzeppelin and Hydrogen kits have drums "
    "only. [default: the first of --kits]",
)
@click.option(
    "--max-files",
    type=click.IntRange(min=0),
    default=24,
    show_default=True,
    help="ASAP performances to use (about 5 min each), shared among the splits in proportion "
    "(a fixed choice); 0 for all 961 (83 h).",
)
@click.option(
    "--stretch-factors",
    default="",
    callback=_factors,
    help="Time stretching (paper §7.1): one extra training copy per factor, e.g. '0.9,1.1'. "
    "Off by default.",
)
@_window_options
@_common_options
def piano(
    data_dir, kits, train_kits, max_files, stretch_factors, train_hop, min_crop, eval_hop, **options
):
    """Piano data: ASAP performances rendered with piano SoundFonts, split by piece.

    Labels are note onsets of the 88 keys (MIDI pitches 21..108), shifted by the piano's render
    latency; counts per pitch. The test split is rendered with every kit.
    """
    from loco_tf.pipelines.prepare import PIANO_K_MAX, Augmentation, piano_sets
    from loco_tf.pipelines.render import drums_only

    for option, chosen in (("--kits", kits), ("--train-kits", train_kits)):
        drum_kits = [kit for kit in chosen if drums_only(kit)]
        if drum_kits:
            raise click.BadParameter(
                f"{', '.join(drum_kits)} ha{'ve' if len(drum_kits) > 1 else 's'} drums only, "
                "no piano; use fluidr3, timgm6mb, musescore, csound or a .sf2/.sf3 path",
                param_hint=option,
            )
    if _data_dir(data_dir) is None:
        raise click.ClickException("ASAP not found: pass --data-dir (the folder of metadata.csv)")
    train_windows, eval_windows = _windows(train_hop, min_crop, eval_hop)
    augmentation = Augmentation(time_stretch_factors=stretch_factors) if stretch_factors else None
    make_plan = functools.partial(
        piano_sets,
        options["out"],
        data_dir,
        kits,
        train_kits=train_kits or None,
        max_files=max_files,
        train_windows=train_windows,
        eval_windows=eval_windows,
        augmentation=augmentation,
    )
    k_max = options.pop("k_max") or PIANO_K_MAX
    _run(make_plan, k_max=k_max, **options)


@prepare.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--format",
    "annotation_format",
    type=click.Choice(["auto", "idmt", "enst", "mdb", "maps", "csv", "midi-drums", "midi-notes"]),
    default="auto",
    show_default=True,
    help="Annotation format; auto detects it per file from the extension and content.",
)
@click.option(
    "--task",
    type=click.Choice(["drums", "piano"]),
    required=True,
    help="drums: counts of KD, SD, HH; piano: counts of pitches 21..108.",
)
@click.option("--name", default=None, help="Name of the set [default: the folder's name].")
@click.option(
    "--hop",
    type=click.FloatRange(min=0, min_open=True),
    default=0.75,
    show_default=True,
    help="Seconds between window starts.",
)
@click.option(
    "--min-crop",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="Shortest window in seconds (variable-length crops for training); 0 for fixed 1.5 s "
    "windows (evaluation: with --hop 1.5).",
)
@click.option(
    "--rate-factors",
    default="",
    callback=_factors,
    help="Sample-rate variation: one extra copy per factor, e.g. '0.9,1.1'.",
)
@click.option(
    "--stretch-factors",
    default="",
    callback=_factors,
    help="Time stretching: one extra copy per factor, e.g. '0.9,1.1'.",
)
@_common_options
def folder(
    folder, annotation_format, task, name, hop, min_crop, rate_factors, stretch_factors, **options
):
    """Your own data: FOLDER of audio files and annotation files, one set.

    An annotation matches an audio file with the same stem (x.wav + x.txt, or
    x_annotations.txt), anywhere under FOLDER. Formats: IDMT-SMT-Drums XML, ENST text, MDB text,
    MAPS text, MIDI (drums or pitched notes) and CSV "time,label".
    """
    from loco_tf.pipelines.prepare import (
        DRUM_K_MAX,
        PIANO_K_MAX,
        Augmentation,
        Windows,
        folder_set,
    )

    augmentation = None
    if rate_factors or stretch_factors:
        augmentation = Augmentation(rate_factors, stretch_factors)
    make_plan = functools.partial(
        folder_set,
        folder,
        name or Path(folder).resolve().name,
        task,
        None if annotation_format == "auto" else annotation_format,
        windows=Windows(hop, min_crop or None),
        augmentation=augmentation,
    )
    k_max = options.pop("k_max") or (DRUM_K_MAX if task == "drums" else PIANO_K_MAX)
    _run(make_plan, k_max=k_max, **options)


@prepare.command()
@click.option(
    "--data-dir",
    default=_default_dir("mnist"),
    show_default=True,
    help="Folder of MNIST's four idx files (train-images-idx3-ubyte.gz, ...), or 'keras' for "
    "keras.datasets.mnist (downloads once; needs the internet).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="data/digits",
    show_default=True,
    help="Output folder: shards, manifests and digits.prepare.json.",
)
@click.option(
    "--size",
    type=click.IntRange(min=28),
    default=88,
    show_default=True,
    help="Canvas side in pixels; a model scans it with WINDOW px windows every STRIDE px, so it "
    "must be WINDOW + STRIDE * (2**n - 1): 88 or 152 for 32 px every 8 px.",
)
@click.option("--min-digits", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--max-digits", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--train-canvases", type=click.IntRange(min=0), default=60_000, show_default=True)
@click.option("--validation-canvases", type=click.IntRange(min=0), default=2_000, show_default=True)
@click.option("--test-canvases", type=click.IntRange(min=0), default=10_000, show_default=True)
@click.option(
    "--validation-images",
    type=click.IntRange(min=1),
    default=5_000,
    show_default=True,
    help="The last N MNIST training digits make the validation canvases, never a training one.",
)
@click.option("--canvases-per-shard", type=click.IntRange(min=1), default=5_000, show_default=True)
@click.option(
    "--compression",
    type=click.Choice(["none", "gzip"], case_sensitive=False),
    default="none",
    show_default=True,
    help="TFRecord compression.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every canvas.")
def digits(data_dir, out, size, min_digits, max_digits, compression, **options):
    """Digit data (paper §8.2): MNIST digits placed at random, without overlap, on blank canvases.

    Labels are the number of digits of each class (0..9) per canvas; the true boxes are stored
    for evaluation only. Writes digits-train and digits-validation (from MNIST train),
    digits-test (from MNIST test) and digits-test-single (each MNIST test digit alone on a
    canvas, for recognition). A rerun resumes; other settings need another --out.
    """
    from loco_tf.pipelines.digits import DigitSetsConfig, IdxError, prepare_digit_sets

    if _data_dir(data_dir) is None:
        raise click.ClickException(
            "MNIST not found: pass --data-dir (the folder of train-images-idx3-ubyte.gz ...)"
        )
    try:
        config = DigitSetsConfig(
            size=size,
            digits=(min_digits, max_digits),
            compression=None if compression.lower() == "none" else "GZIP",
            **options,
        )
        prepare_digit_sets(data_dir, out, config, log=click.echo)
    except (IdxError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot write the output: {error}") from None
    click.echo(f"output: {os.path.abspath(out)}")


def _kit_folder_options(what: str, first: str):
    """--out, --count and --seed of a command that writes drum kit folders (`kits`, `mix-kits`)."""

    def decorate(command):
        command = click.option(
            "--seed", type=int, default=0, show_default=True, help="Seed of the draws."
        )(command)
        command = click.option(
            "--count",
            type=click.IntRange(min=1),
            default=10,
            show_default=True,
            help=f"{what.capitalize()} to draw.",
        )(command)
        return click.option(
            "--out",
            type=click.Path(file_okay=False),
            required=True,
            help=f"Folder for the {what} ({first}-00, {first}-01, ...).",
        )(command)

    return decorate


def _echo_kit_folders(folders: list[str]) -> None:
    """Prints the folders written, then the `--train-kits` value that uses them."""
    for folder in folders:
        click.echo(folder)
    click.echo(f"--train-kits {','.join(folders)}")


@prepare.command()
@_kit_folder_options("kits", "oneshot")
@click.option(
    "--packs",
    default="lmms,sonic-pi",
    show_default=True,
    help="Sample packs to draw from: lmms (sudo apt-get install lmms-common), sonic-pi "
    "(sudo apt-get install sonic-pi-samples).",
)
def kits(out, count, seed, packs):
    """Drum kits drawn from one-shot sample packs, written as Hydrogen drumkit folders.

    Each kit takes a kick, snare, side stick, clap, three hi-hats, three toms, a crash and a
    ride from the packs' samples, each at a random pitch (+-2 semitones) and level, laid out
    in General MIDI order. Train on them with
    `loco prepare drums --train-kits OUT/oneshot-00,OUT/oneshot-01,...`. A rerun keeps the
    kits it finds.
    """
    from loco_tf.pipelines.oneshot import PackError, write_kits

    names = tuple(part.strip() for part in packs.split(",") if part.strip())
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            folders = write_kits(out, count, packs=names, seed=seed)
    except (PackError, FileExistsError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot write the kits: {error}") from None
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    _echo_kit_folders(folders)


def _roles(ctx, param, value):
    """--vary's roles, checked against `kitmix.ROLES`."""
    from loco_tf.pipelines.kitmix import ROLES

    roles = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [role for role in roles if role not in ROLES]
    if unknown or not roles:
        raise click.BadParameter(
            f"{','.join(unknown) or 'no role'}: the roles are {','.join(ROLES)}"
        )
    return roles


@prepare.command("mix-kits")
@click.option(
    "--kits",
    "kit_list",
    required=True,
    callback=_kits,
    help="Hydrogen kits to mix, at least three: hydrogen:NAME or drumkit folders, "
    "comma-separated. Never a kit you test on.",
)
@_kit_folder_options("mixes", "mix")
@click.option(
    "--pitch-semitones",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="Also shift each role's samples (kick, snare, hi-hats, the rest) of a mix by a pitch "
    "drawn in [-this, this] semitones: new timbres from the same recordings.",
)
@click.option(
    "--gain-db",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="Also scale each role's instruments of a mix by a gain drawn in [-this, this] dB: "
    "the classes' balance varies between mixes.",
)
@click.option(
    "--vary",
    default="KD,SD,HH,rest",
    show_default=True,
    callback=_roles,
    help="The roles --pitch-semitones and --gain-db apply to (KD, SD, HH, rest; "
    "comma-separated); the others play as in their kits, e.g. --vary HH for new hi-hats "
    "beside the source kits' own kicks and snares.",
)
@click.option(
    "--prefix",
    default="mix",
    show_default=True,
    help="The mixes' folder names: PREFIX-00, PREFIX-01, ... A kit's folder name is its name "
    "in prepared data, so two sets of mixes trained together need two prefixes.",
)
def mix_kits(kit_list, out, count, seed, pitch_semitones, gain_db, vary, prefix):
    """Drum kits whose kick, snare and hi-hats come from three different Hydrogen kits.

    Each mix takes notes 35-36 (kick), 37-40 (snare, side stick) and 42-46 (hi-hats) from
    three kits of --kits and every other note from a fourth, each instrument played exactly
    as in its own kit, so a model hears each class's sounds beside other kits' (see
    pipelines/kitmix.py). The mixes are Hydrogen drumkit folders whose samples are links to the
    source kits' files. Train on them with
    `loco prepare drums --train-kits OUT/mix-00,OUT/mix-01,...`. A rerun keeps the mixes it
    finds.
    """
    from loco_tf.pipelines.kitmix import write_mixes

    try:
        folders = write_mixes(
            out,
            kit_list,
            count,
            seed=seed,
            pitch_semitones=pitch_semitones,
            gain_db=gain_db,
            vary=vary,
            prefix=prefix,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot write the mixes: {error}") from None
    _echo_kit_folders(folders)


SAME_RECORDING = 0.95
"""`compare-kits` says a class shares samples at or above this peak correlation."""


@prepare.command("compare-kits")
@click.argument("reference")
@click.argument("kits", nargs=-1, required=True)
@click.option(
    "--sample-rate",
    type=click.IntRange(min=8000),
    default=32000,
    show_default=True,
    help="Rendering sample rate in Hz.",
)
def compare_kits(reference, kits, sample_rate):
    """Is a kit another kit's samples? Compares each KIT's kick, snare and hi-hat with
    REFERENCE's.

    A single hit (notes 36, 38, 42 at velocity 100) is rendered with each kit, and the first
    120 ms after the onsets are correlated (best lag within 2 ms; `render.kit_similarity`).
    1.00 means the same recording; different drums score far lower (FluidR3 against the
    recorded Black Pearl: 0.26, 0.24, 0.07). A kit meant to be unseen in testing must not share
    samples with a training kit: musescore's kick and snare are FluidR3's, and csound's drums
    are TimGM6mb's. Kits are names, SoundFont paths, hydrogen:NAME or drumkit folders, as in
    `loco prepare drums --kits`.
    """
    from loco_tf.pipelines.hydrogen import KitError
    from loco_tf.pipelines.render import SIMILARITY_NOTES, hits_similarity, kit_hits

    errors = (ValueError, FileNotFoundError, ImportError, KitError)
    try:
        reference_hits = kit_hits(reference, sample_rate)
    except errors as error:
        raise click.ClickException(f"the reference kit {reference}: {error}") from None
    click.echo(f"similarity to {reference} (1.00: the same recording)")
    width = max(len(kit) for kit in kits) + 2
    click.echo("kit".ljust(width) + "".join(f"{kind:>7}" for kind in SIMILARITY_NOTES))
    failed = []
    for kit in kits:
        try:
            scores = hits_similarity(reference_hits, kit_hits(kit, sample_rate), sample_rate)
        except errors as error:
            click.echo(f"{kit.ljust(width)}  error: {error}", err=True)
            failed.append(kit)
            continue
        shared = [kind for kind, score in scores.items() if score >= SAME_RECORDING]
        note = f"  shares {'/'.join(shared)} samples" if shared else ""
        click.echo(kit.ljust(width) + "".join(f"{s:7.2f}" for s in scores.values()) + note)
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(kits)} kits failed: {', '.join(failed)}")
