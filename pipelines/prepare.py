"""Preprocessing runs: input files -> audio -> features -> labelled segments -> TFRecord shards.

A run is a list of `SetSpec`s, each one named set of shards (one split, one rendering kit).
Three builders make them and `prepare_sets` writes them:

- `drum_sets`: the Groove MIDI Dataset (GMD) rendered with FluidSynth, on GMD's own
  train/validation/test split, or, where GMD is not there, procedural grooves
  (`pipelines.grooves`) split 80/10/10. Labels are KD/SD/HH onsets
  (`readers.GM_DRUM_TO_CLASS`), read from the original MIDI notes; the TD-11 notes without a GM
  sound are re-mapped for rendering only (`readers.GMD_RENDER_REMAP`).
- `piano_sets`: ASAP performances rendered with a piano SoundFont, split by piece
  (`readers.split_by_piece`); labels are the onsets of pitches 21..108 (88 classes).
- `folder_set`: a user's folder of audio files and annotation files in any supported format
  (`readers.pair_audio_with_annotations`), one set.

Rendered labels are corrected by the kit's render latency (`render.render_latency`, measured at
the front end's sample rate): a label is `MIDI time + latency`, where the network hears the onset.

Sets and kits. Training and validation are rendered with the first kit (`fluidr3` by default)
or, given `train_kits`, with those kits taking turns file by file; the test split with EVERY kit
in `kits`, so a recipe can score the same held-out performances on a kit it trained with and on
one it never heard (`timgm6mb`):

    drums-train              train split, first kit, training windows (+ augmented copies)
    drums-validation         validation split, first kit, evaluation windows
    drums-test-fluidr3       test split, rendered with fluidr3, evaluation windows
    drums-test-timgm6mb      test split, rendered with timgm6mb (not used in training)

and `piano-train`, `piano-validation`, `piano-test-<kit>` likewise.

Output folder:

    NAME-00000-of-000NN.tfrecord   shards (`pipelines.tfrecords`)
    NAME.manifest.json             what the shards hold; written last by `write_shards`
    NAME.prepare.json              how the set was made (dataset, split, kit, windows, seed, ...)
                                   and its report (files, skips with reasons, warnings)
    audio/                         render cache: audio/<dataset>/<kit>-<rate>/<midi path>.wav

Windows (`Windows`). Training sets: a window starts every 0.75 s and is 0.5 to 1.5 s long, a
length drawn per window (variable-length crops, paper §4.5: a network that never knows where a
sequence ends cannot delay its detections). Validation and test sets: fixed 1.5 s windows
(T = 400 frames) every 1.5 s, so each event is counted in exactly one window. A file's last
fixed window is kept when it is at least half a segment long (`segments.segment`): a rendered
file ends with at least 1 s of release after its last onset, so no rendered event is lost, but
events in the last 0.75 s of a user's file can be.

Augmentation (`Augmentation`), made on audio where event times are known, as extra copies of
each training file (source id `ID@rate=0.9`, `ID@stretch=1.1`): sample-rate variation for drums
(§6.1) and time stretching for piano (§7.1). Off by default: every factor adds one more pass of
feature extraction over the training audio. Extract stacking needs no event times and is done at
training time (`pipelines.augment.Augment`).

Bad input never stops a run. A file that cannot be used (unreadable, empty, NaN, digital silence,
shorter than one window, a malformed annotation, a failed render, an annotation without audio or
audio without annotation) is skipped with a one-line message naming it. A file that can be used
but looks wrong is processed with a one-line warning: clipped or very long audio, more than one
channel (mixed to mono), a sample rate below the front end's (upsampled: the upper mel bands are
empty), annotated labels the task does not count, events outside the audio, and windows counting
more than `k_max` events of a class (kept: the loss scores them in its tail bin, eq. 14).

Resumability. Rendered WAVs are cached and written atomically (`render.render_files`). A set's
`NAME.prepare.json` is written before its shards with a fingerprint of everything that determines
them (inputs by size and modification time, parameters, feature config); then `write_shards`
writes the shards atomically and the manifest last; then `NAME.prepare.json` is rewritten with
`"complete": true`. A rerun skips a complete set with the same fingerprint without reading any
audio; resumes an incomplete one (shards that exist are kept, features are recomputed to route
and count the rest); and deletes and rewrites a set whose fingerprint changed. After a kill -9,
no file under a final name is incomplete, and a set counts as done only when its run file says so.

Determinism. Rendering and features are deterministic, the files are processed in a fixed order
and written in that order whatever the number of workers, and every random draw (window lengths)
comes from a generator seeded by `(seed, source id)`; the same inputs and seed give the same
shards.

Parallelism: one task per source file (render if needed, load, features, segments) in `workers`
spawned processes (`Workers`, started once per run); the parent writes the shards as the
results arrive, in order.

Default subsets (CLI). `loco prepare drums` uses 300 of GMD's 1,150 performances by default
(3.7 h of the 13.6 h, train/validation/test in GMD's proportions, a fixed choice that does not
move with the seed): it renders and writes in a few minutes on 2 cores, and its ~15,000 training
windows are an epoch of about 5 minutes of CPU training for the §6.1 network. `--max-files 0`
takes all of it (about 4x the time, ~11 GB of shards). `loco prepare piano` uses 24 of ASAP's
961 performances (about 2 h of its 83 h) for the same reason. Rendered audio is cached by path:
a render older than its MIDI file is redone, but after changing a SoundFont delete `audio/`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from tqdm import tqdm

from loco_tf.features import FeatureConfig, compute_features, num_frames
from loco_tf.pipelines.audio import (
    AudioError,
    change_sample_rate,
    check_audio,
    load_audio,
    scale_events,
    time_stretch,
)
from loco_tf.pipelines.readers import (
    DRUM_CLASSES,
    GMD_RENDER_REMAP,
    PIANO_PITCHES,
    SPLITS,
    AnnotationError,
    Event,
    pair_audio_with_annotations,
    read_annotations,
    read_asap_metadata,
    read_gmd_info,
    split_by_piece,
)
from loco_tf.pipelines.segments import Segment, segment
from loco_tf.pipelines.tfrecords import (
    SegmentExample,
    SourceFile,
    manifest_path,
    read_manifest,
    write_json_atomically,
    write_shards,
)

PathLike = str | os.PathLike

PIANO_CLASSES = tuple(PIANO_PITCHES)
DRUM_K_MAX = 31
PIANO_K_MAX = 42
DEFAULT_KITS = ("fluidr3", "timgm6mb")
RUN_FORMAT = "loco-tf/prepare-run"
RUN_VERSION = 1
PROCEDURAL_FRACTIONS = (0.8, 0.1, 0.1)


@dataclasses.dataclass(frozen=True)
class Windows:
    """How a file's frames are cut into segments (`pipelines.segments.segment`).

    Attributes:
        hop_seconds: distance between window starts.
        min_seconds: shortest window of variable-length crops (lengths uniform in
            `[min_seconds, segment_seconds]`); None for fixed `segment_seconds` windows.
    """

    hop_seconds: float
    min_seconds: float | None = None

    def __post_init__(self):
        if self.hop_seconds <= 0:
            raise ValueError(f"hop_seconds must be positive, got {self.hop_seconds}")
        if self.min_seconds is not None and self.min_seconds <= 0:
            raise ValueError(f"min_seconds must be positive or None, got {self.min_seconds}")


TRAIN_WINDOWS = Windows(hop_seconds=0.75, min_seconds=0.5)
EVAL_WINDOWS = Windows(hop_seconds=1.5, min_seconds=None)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Extra training copies of every file, with the events moved with the audio.

    Attributes:
        sample_rate_factors: one copy per factor played that many times faster, pitch and tempo
            together (`audio.change_sample_rate`; the paper's drum augmentation, §6.1).
        time_stretch_factors: one copy per factor played that many times faster at the same
            pitch (`audio.time_stretch`, phase vocoder; the paper's piano augmentation, §7.1).
    """

    sample_rate_factors: tuple[float, ...] = ()
    time_stretch_factors: tuple[float, ...] = ()

    def __post_init__(self):
        for factor in (*self.sample_rate_factors, *self.time_stretch_factors):
            if not (factor > 0.0 and math.isfinite(factor)):
                raise ValueError(f"augmentation factors must be positive, got {factor}")

    @property
    def copies(self) -> int:
        """Augmented copies per file."""
        return len(self.sample_rate_factors) + len(self.time_stretch_factors)


@dataclasses.dataclass(frozen=True)
class Source:
    """One input file of a set.

    Attributes:
        id: the id the segments carry (`source` in the records); a path relative to the dataset
            or folder, so shards do not depend on where the data sits.
        audio_path: the audio; for a rendered source, where the render is cached.
        annotation_path: the annotations; for a rendered source, the MIDI file rendered.
        annotation_format: a `readers.FORMATS` name, or None to detect it.
        kit: when set, `annotation_path` is rendered with this kit to `audio_path` first.
        render_sample_rate: the rate a rendered source is rendered at (`latency` is measured
            at it); the audio is resampled to the front end's rate like any other.
        drum_remap: (note, note) pairs applied to drum notes for rendering only.
        latency: (label, seconds) pairs added to the annotated times of those labels.
        default_latency: seconds added to the times of other labels.
    """

    id: str
    audio_path: str
    annotation_path: str
    annotation_format: str | None = None
    kit: str | None = None
    render_sample_rate: int = FeatureConfig.sample_rate
    drum_remap: tuple[tuple[int, int], ...] = ()
    latency: tuple[tuple[Hashable, float], ...] = ()
    default_latency: float = 0.0

    @property
    def input_path(self) -> str:
        """The file the data comes from: the MIDI of a rendered source, else the audio."""
        return self.annotation_path if self.kit is not None else self.audio_path


@dataclasses.dataclass(frozen=True)
class SetSpec:
    """One named set of shards.

    Attributes:
        name: shard and manifest prefix, e.g. "drums-train".
        sources: the files, in the order they are processed and written.
        classes: the labels counted, in the order of `counts`.
        windows: how files are cut into segments.
        augmentation: extra copies of each file, or None.
        info: recorded in `NAME.prepare.json`: dataset, split, kit, ...
    """

    name: str
    sources: tuple[Source, ...]
    classes: tuple[Hashable, ...]
    windows: Windows
    augmentation: Augmentation | None = None
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """Parameters shared by every set of a run.

    Attributes:
        feature_config: the front end.
        k_max: the count truncation (eq. 14) the data is for; windows above it are kept with a
            warning, and it is recorded in the manifest.
        seed: seeds the window lengths of variable-length crops (with each source id).
        workers: processes that render and compute features; 1 works in this process.
        compression: None or "GZIP" (`tfrecords.write_shards`).
        files_per_shard: source files (augmented copies included) per shard; a shard holds
            whole files.
        progress: show a tqdm progress bar per set.
    """

    feature_config: FeatureConfig = FeatureConfig()
    k_max: int = DRUM_K_MAX
    seed: int = 0
    workers: int = 2
    compression: str | None = None
    files_per_shard: int = 32
    progress: bool = True

    def __post_init__(self):
        if self.k_max < 1 or self.workers < 1 or self.files_per_shard < 1:
            raise ValueError(f"k_max, workers and files_per_shard must be at least 1: {self}")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a builder found: the sets to write, input files it already had to skip, lines to
    show (`notes`) and warnings about its inputs (e.g. a kit's layout)."""

    sets: tuple[SetSpec, ...]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass
class SetReport:
    """What happened to one set.

    Attributes:
        name: the set.
        status: "written", or "complete" when a previous run had written it already.
        files: source files written (augmented copies not counted).
        audio_seconds: their audio duration (before augmentation).
        copies: augmented copies written.
        segments: records written, copies included.
        shards: shard files.
        skipped: one line per skipped file, naming it and why.
        warnings: one line per warning, naming the file.
        seconds: wall time of this run on the set.
    """

    name: str
    status: str = "written"
    files: int = 0
    audio_seconds: float = 0.0
    copies: int = 0
    segments: int = 0
    shards: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


@dataclasses.dataclass
class Report:
    """A run: its sets, and the input files skipped and warnings given before any set was
    processed."""

    sets: list[SetReport]
    skipped: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def all_skipped(self) -> list[str]:
        """Every skip message of the run."""
        return [*self.skipped, *(line for s in self.sets for line in s.skipped)]

    @property
    def all_warnings(self) -> list[str]:
        """Every warning of the run."""
        return [*self.warnings, *(line for s in self.sets for line in s.warnings)]


# ---------------------------------------------------------------------------------------------
# Per-file work, run in the worker processes.


class _Skip(Exception):
    """A file that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class _Context:
    classes: tuple[Hashable, ...]
    windows: Windows
    augmentation: Augmentation | None
    feature_config: FeatureConfig
    k_max: int
    seed: int


@dataclasses.dataclass
class ProcessedCopy:
    """One copy of a file (the file itself, or an augmented copy): its whole-file features and
    its segments, which index into them."""

    source: SourceFile
    features: np.ndarray
    segments: list[Segment]


@dataclasses.dataclass
class ProcessedSource:
    """The outcome of one `Source`.

    Attributes:
        id: the source's id.
        copies: the file first, then its augmented copies; empty when skipped.
        audio_seconds: duration of the file's audio (before augmentation).
        warnings: one line per warning, naming the file.
        skipped: why the file was skipped (naming it), or None.
    """

    id: str
    copies: list[ProcessedCopy] = dataclasses.field(default_factory=list)
    audio_seconds: float = 0.0
    warnings: list[str] = dataclasses.field(default_factory=list)
    skipped: str | None = None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _crop_seed(seed: int, source_id: str) -> int:
    """The window-length seed of one file: independent of order, workers and other files."""
    digest = hashlib.sha256(f"{seed}\0{source_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _shortest_window(windows: Windows, config: FeatureConfig) -> float:
    if windows.min_seconds is not None:
        return windows.min_seconds
    return max(config.segment_frames // 2, 1) / config.frame_rate


def _render(source: Source) -> None:
    # Imported here: rendering needs pyfluidsynth and libfluidsynth, user folders do not.
    from loco_tf.pipelines.render import RenderJob, render_files

    # The cache is keyed by path: a render older than its MIDI file is stale.
    wav, midi = source.audio_path, source.annotation_path
    if os.path.exists(wav) and os.path.getmtime(wav) < os.path.getmtime(midi):
        os.remove(wav)
    job = RenderJob(
        source.annotation_path, source.audio_path, source.kit, dict(source.drum_remap) or None
    )
    (result,) = render_files(
        [job], workers=1, sample_rate=source.render_sample_rate, subtype="PCM_16", progress=False
    )
    if result.status == "failed":
        raise _Skip(f"{result.error} (rendering failed)")


def _input_warnings(source: Source, audio: np.ndarray, config: FeatureConfig) -> list[str]:
    path = source.audio_path
    info = soundfile.info(path)
    warnings = []
    if source.kit is None and info.channels > 1:
        warnings.append(f"{path}: {info.channels} channels, mixed down to mono")
    if info.samplerate < config.sample_rate:
        warnings.append(
            f"{path}: sample rate {info.samplerate} Hz is below the front end's "
            f"{config.sample_rate} Hz; upsampled, so mel bands above {info.samplerate / 2:.0f} "
            "Hz are empty"
        )
    return warnings + check_audio(audio, path, config.sample_rate)


def _event_warnings(
    source: Source, events: Sequence[Event], classes: Sequence[Hashable], end_seconds: float
) -> list[str]:
    warnings = []
    counted = set(classes)
    ignored = sorted({str(event.label) for event in events if event.label not in counted})
    if ignored:
        n = sum(event.label not in counted for event in events)
        shown = ", ".join(ignored[:6]) + (", ..." if len(ignored) > 6 else "")
        warnings.append(
            f"{source.annotation_path}: {n} of {len(events)} events have labels this task does "
            f"not count ({shown}); they are ignored"
        )
    outside = sum(not 0.0 <= event.time <= end_seconds for event in events)
    if outside:
        warnings.append(
            f"{source.annotation_path}: {outside} events lie outside the audio "
            f"(0 to {end_seconds:.2f} s); they are ignored"
        )
    return warnings


def _copies(
    source: Source, audio: np.ndarray, events: list[Event], augmentation: Augmentation | None
) -> Iterator[tuple[str, np.ndarray, list[Event]]]:
    yield source.id, audio, events
    if augmentation is None:
        return
    for factor in augmentation.sample_rate_factors:
        copy_id = f"{source.id}@rate={factor:g}"
        yield copy_id, change_sample_rate(audio, factor), scale_events(events, factor)
    for factor in augmentation.time_stretch_factors:
        copy_id = f"{source.id}@stretch={factor:g}"
        yield copy_id, time_stretch(audio, factor), scale_events(events, factor)


def _process_source(source: Source, context: _Context) -> ProcessedSource:
    config = context.feature_config
    if source.kit is not None:
        _render(source)
    audio = load_audio(source.audio_path, config)
    result = ProcessedSource(source.id, audio_seconds=audio.shape[0] / config.sample_rate)
    result.warnings += _input_warnings(source, audio, config)

    latency = dict(source.latency)
    events = [
        Event(event.time + latency.get(event.label, source.default_latency), event.label)
        for event in read_annotations(source.annotation_path, source.annotation_format)
    ]
    frames = num_frames(audio.shape[0], config)
    end_seconds = ((frames - 1) * config.hop_length + config.n_fft) / config.sample_rate
    result.warnings += _event_warnings(source, events, context.classes, end_seconds)

    digest = _sha256(source.input_path)
    windows = context.windows
    over_k_max, most, total = 0, 0, 0
    for copy_id, copy_audio, copy_events in _copies(source, audio, events, context.augmentation):
        features = compute_features(copy_audio, config)
        segments = segment(
            features.shape[0],
            copy_events,
            context.classes,
            config,
            windows.hop_seconds,
            windows.min_seconds,
            rng=_crop_seed(context.seed, copy_id),
            source=copy_id,
        )
        if not segments and copy_id == source.id:
            shortest = _shortest_window(windows, config)
            raise _Skip(
                f"{source.audio_path}: {result.audio_seconds:.2f} s of audio is shorter than "
                f"the shortest window ({shortest:.2f} s); nothing to write"
            )
        for window in segments:
            most = max(most, int(window.counts.max(initial=0)))
            over_k_max += int(window.counts.max(initial=0)) > context.k_max
        total += len(segments)
        duration = copy_audio.shape[0] / config.sample_rate
        copy = ProcessedCopy(SourceFile(copy_id, digest, duration), features, segments)
        result.copies.append(copy)
    if over_k_max:
        result.warnings.append(
            f"{source.input_path}: {over_k_max} of {total} windows count more than "
            f"k_max={context.k_max} events of one class (up to {most}); kept, the loss scores "
            "them in its tail bin Pr(Y >= k_max)"
        )
    return result


def _process(task: tuple[Source, _Context]) -> ProcessedSource:
    source, context = task
    try:
        return _process_source(source, context)
    except (AudioError, AnnotationError, _Skip) as error:
        return ProcessedSource(source.id, skipped=str(error))
    # One bad file must not end a long run: anything else is reported against the file too.
    except Exception as error:
        return ProcessedSource(
            source.id, skipped=f"{source.input_path}: {type(error).__name__}: {error}"
        )


class Workers:
    """Worker processes for `process_sources`, shared by the sets of a run.

    The processes are spawned on first use (not fork: the parent holds TensorFlow's threads,
    which fork would break) and import `loco_tf`, a few seconds each, so a run starts them once.
    With `workers=1`, or a single task, the work runs in this process. Use as a context manager:
    on leaving, the processes finish and exit, or are terminated after an error.

    Args:
        workers: processes; 1 works in this process.
    """

    def __init__(self, workers: int = 2):
        self.workers = workers
        self._pool = None

    def imap(self, function, tasks: Sequence) -> Iterator:
        """`function` over `tasks`, results in task order."""
        if self.workers <= 1 or len(tasks) <= 1:
            return map(function, tasks)
        if self._pool is None:
            with _quiet_tensorflow_in_children():
                self._pool = multiprocessing.get_context("spawn").Pool(self.workers)
        return self._pool.imap(function, tasks, chunksize=1)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if self._pool is not None:
            if error_type is None:
                self._pool.close()
            else:
                self._pool.terminate()
            self._pool.join()
            self._pool = None


@contextlib.contextmanager
def _quiet_tensorflow_in_children() -> Iterator[None]:
    """Spawned workers import TensorFlow (through `loco_tf`); keep its start-up log quiet."""
    previous = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = previous or "2"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TF_CPP_MIN_LOG_LEVEL"]


def process_sources(
    spec: SetSpec, config: PrepareConfig, workers: Workers | None = None
) -> Iterator[ProcessedSource]:
    """Renders (when needed), loads, analyses and segments every source of a set.

    Results come in the order of `spec.sources`, whatever the timing. A file that cannot be
    used comes back with `skipped` set; nothing raises for one bad file.

    Args:
        spec: the set.
        config: its parameters.
        workers: processes to use; None starts `config.workers` processes for this set alone.
    """
    context = _Context(
        spec.classes,
        spec.windows,
        spec.augmentation,
        config.feature_config,
        config.k_max,
        config.seed,
    )
    tasks = [(source, context) for source in spec.sources]
    if workers is None:
        with Workers(config.workers) as own:
            yield from own.imap(_process, tasks)
    else:
        yield from workers.imap(_process, tasks)


# ---------------------------------------------------------------------------------------------
# Sets: fingerprint, resume, write.


def run_file_path(out_dir: PathLike, name: str) -> str:
    """`out_dir/NAME.prepare.json`: how a set was made, and whether it is complete."""
    return os.path.join(os.fspath(out_dir), f"{name}.prepare.json")


def read_run_file(out_dir: PathLike, name: str) -> dict[str, Any] | None:
    """The set's run file as a dict, or None when there is none (or it is unreadable)."""
    try:
        with open(run_file_path(out_dir, name), encoding="utf-8") as file:
            content = json.load(file)
    except (OSError, ValueError):
        return None
    if content.get("format") != RUN_FORMAT or content.get("format_version") != RUN_VERSION:
        return None
    return content


def _stat(path: str) -> list[int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def _num_shards(spec: SetSpec, config: PrepareConfig) -> int:
    copies = 1 + (spec.augmentation.copies if spec.augmentation else 0)
    return max(1, math.ceil(len(spec.sources) * copies / config.files_per_shard))


def _parameters(spec: SetSpec, config: PrepareConfig) -> dict[str, Any]:
    """Everything that determines a set's shards besides the input files' contents."""
    return {
        "name": spec.name,
        "info": dict(spec.info),
        "classes": list(spec.classes),
        "windows": dataclasses.asdict(spec.windows),
        "augmentation": dataclasses.asdict(spec.augmentation) if spec.augmentation else None,
        "feature_config": config.feature_config.to_dict(),
        "k_max": config.k_max,
        "seed": config.seed,
        "compression": config.compression,
        "num_shards": _num_shards(spec, config),
        "num_sources": len(spec.sources),
    }


def _fingerprint(spec: SetSpec, config: PrepareConfig) -> str:
    inputs = [
        [
            source.id,
            source.kit,
            source.render_sample_rate if source.kit is not None else None,
            source.annotation_format,
            [list(pair) for pair in source.drum_remap],
            [[str(label), seconds] for label, seconds in source.latency],
            source.default_latency,
            _stat(source.annotation_path),
            None if source.kit is not None else _stat(source.audio_path),
        ]
        for source in spec.sources
    ]
    content = json.dumps([_parameters(spec, config), inputs], sort_keys=True, default=str)
    return hashlib.sha256(content.encode()).hexdigest()


def _set_files(out_dir: str, name: str) -> list[str]:
    shard = re.compile(re.escape(name) + r"-\d{5}-of-\d{5}\.tfrecord(\.gz)?")
    if not os.path.isdir(out_dir):
        return []
    return sorted(
        os.path.join(out_dir, entry) for entry in os.listdir(out_dir) if shard.fullmatch(entry)
    )


def _remove_set(out_dir: str, name: str) -> None:
    """Deletes a set's outputs: the manifest first, so that nothing looks complete meanwhile."""
    for path in (manifest_path(out_dir, name), *_set_files(out_dir, name)):
        if os.path.exists(path):
            os.remove(path)


def _is_complete(out_dir: str, name: str, run: dict[str, Any] | None, fingerprint: str) -> bool:
    if not run or run.get("fingerprint") != fingerprint or not run.get("complete"):
        return False
    try:
        manifest = read_manifest(manifest_path(out_dir, name))
    except (OSError, ValueError, KeyError):
        return False
    return all(os.path.isfile(path) for path in manifest.files)


def _report_from_run(run: dict[str, Any]) -> SetReport:
    fields = {field.name for field in dataclasses.fields(SetReport)}
    report = SetReport(**{k: v for k, v in run["report"].items() if k in fields})
    report.status = "complete"
    report.seconds = 0.0
    return report


def _default_log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def prepare_set(
    spec: SetSpec,
    out_dir: PathLike,
    config: PrepareConfig,
    log: Callable[[str], None] = _default_log,
    workers: Workers | None = None,
) -> SetReport:
    """Writes one set's shards, manifest and run file, or finds them complete already.

    Each skip and warning is passed to `log` (one line naming the file) as it happens and
    kept in the report. `workers` are the processes to use (None: `config.workers` new ones).
    """
    start = time.perf_counter()
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    fingerprint = _fingerprint(spec, config)
    run = read_run_file(out_dir, spec.name)
    if _is_complete(out_dir, spec.name, run, fingerprint):
        report = _report_from_run(run)
        log(f"{spec.name}: already complete in {out_dir}, skipped (delete its files to rebuild)")
        # The messages of the run that wrote it, so that a rerun reports the same data.
        for line in report.warnings:
            log(f"warning: {line}")
        for line in report.skipped:
            log(f"skipped: {line}")
        return report
    if run is None or run.get("fingerprint") != fingerprint:
        _remove_set(out_dir, spec.name)
    parameters = _parameters(spec, config)
    run_content = {
        "format": RUN_FORMAT,
        "format_version": RUN_VERSION,
        "fingerprint": fingerprint,
        "complete": False,
        "parameters": parameters,
    }
    write_json_atomically(run_file_path(out_dir, spec.name), run_content)

    report = SetReport(spec.name, shards=parameters["num_shards"])
    sources: list[SourceFile] = []

    def examples() -> Iterator[SegmentExample]:
        with tqdm(
            total=len(spec.sources), desc=spec.name, unit="file", disable=not config.progress
        ) as bar:
            for result in process_sources(spec, config, workers):
                bar.update()
                for line in result.warnings:
                    report.warnings.append(line)
                    log(f"warning: {line}")
                if result.skipped is not None:
                    report.skipped.append(result.skipped)
                    log(f"skipped: {result.skipped}")
                    continue
                report.files += 1
                report.audio_seconds += result.audio_seconds
                report.copies += len(result.copies) - 1
                bar.set_postfix(audio_h=f"{report.audio_seconds / 3600:.2f}", refresh=False)
                for copy in result.copies:
                    sources.append(copy.source)
                    report.segments += len(copy.segments)
                    for window in copy.segments:
                        yield SegmentExample.from_segment(window, copy.features)

    write_shards(
        examples(),
        out_dir,
        spec.name,
        parameters["num_shards"],
        config.compression,
        class_names=spec.classes,
        feature_config=config.feature_config,
        k_max=config.k_max,
        sources=sources,
    )
    report.seconds = time.perf_counter() - start
    run_content.update(complete=True, report=dataclasses.asdict(report))
    write_json_atomically(run_file_path(out_dir, spec.name), run_content)
    return report


def prepare_sets(
    plan: Plan,
    out_dir: PathLike,
    config: PrepareConfig,
    log: Callable[[str], None] = _default_log,
) -> Report:
    """Writes every set of a plan (`prepare_set`); the plan's own skips open the report."""
    start = time.perf_counter()
    for line in plan.notes:
        log(line)
    for line in plan.warnings:
        log(f"warning: {line}")
    for line in plan.skipped:
        log(f"skipped: {line}")
    report = Report(sets=[], skipped=list(plan.skipped), warnings=list(plan.warnings))
    with Workers(config.workers) as workers:
        for spec in plan.sets:
            report.sets.append(prepare_set(spec, out_dir, config, log, workers))
    report.seconds = time.perf_counter() - start
    return report


# ---------------------------------------------------------------------------------------------
# Builders.


def kit_name(kit: str) -> str:
    """A kit's name in set names and cache folders: a `render.KITS` name, a SoundFont file's
    stem, or for a Hydrogen kit ``h2-`` and its folder's name in lowercase letters, digits and
    dashes (``hydrogen:ForzeeStereo`` -> ``h2-forzeestereo``)."""
    from loco_tf.pipelines.render import hydrogen_folder

    folder = hydrogen_folder(kit)
    if folder is not None:
        name = os.path.basename(os.path.abspath(folder)).lower()
        return "h2-" + re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    return Path(kit).stem if kit.lower().endswith((".sf2", ".sf3")) else kit


def _order_key(name: str) -> bytes:
    """A fixed pseudo-random order of files, the same for every seed and run."""
    return hashlib.sha256(name.encode()).digest()


def _midi_sources(chosen, data_dir, midi_of, listing: str, skipped: list[str]) -> dict:
    """Per split, `(id, path)` of the chosen records whose MIDI file exists; a missing one is
    reported by name in `skipped`."""
    sources = {}
    for split, records in chosen.items():
        sources[split] = []
        for record in records:
            relative = midi_of(record)
            path = os.path.join(data_dir, relative)
            if os.path.isfile(path):
                sources[split].append((relative, path))
            else:
                skipped.append(f"{path}: MIDI file listed in {listing} is missing")
    return sources


def _subset(by_split: Mapping[str, list[Any]], max_files: int | None, key) -> dict[str, list]:
    """At most `max_files` records, in proportion to the splits' sizes, in a fixed
    pseudo-random choice within each split (file order kept)."""
    if not max_files:
        return {split: list(records) for split, records in by_split.items()}
    total = sum(len(records) for records in by_split.values())
    chosen = {}
    for split, records in by_split.items():
        quota = min(len(records), max(1, round(max_files * len(records) / total)))
        keep = set(sorted(range(len(records)), key=lambda i: _order_key(key(records[i])))[:quota])
        chosen[split] = [record for i, record in enumerate(records) if i in keep]
    return chosen


def _latencies(
    kits: Sequence[str], train_kits: Sequence[str] | None, kinds: Sequence[str], sample_rate: int
) -> dict[str, dict[str, float]]:
    """Render latency per kit (of `kits` and `train_kits`) and kind; a missing kit, or two kits
    of one `kit_name` (their renders would share a cache folder), raises."""
    from loco_tf.pipelines.hydrogen import KitError
    from loco_tf.pipelines.render import kit_source, render_latency

    latency = {}
    named: dict[str, str] = {}
    for kit in dict.fromkeys([*kits, *(train_kits or ())]):
        kit_source(kit)
        other = named.setdefault(kit_name(kit), kit)
        if other != kit:
            raise KitError(
                f"kits {other} and {kit} are both named {kit_name(kit)} (the name of their "
                "renders' folder and test set): rename one kit's folder"
            )
        latency[kit] = {kind: render_latency(kit, kind, sample_rate) for kind in kinds}
    return latency


def _kit_rotation(source_ids: Sequence[str], kits: Sequence[str]) -> list[str]:
    """One kit per file, in turn over a fixed pseudo-random order of the files, so each kit
    renders an equal share (within one file) whatever the order the files are listed in."""
    rank = {sid: i for i, sid in enumerate(sorted(source_ids, key=_order_key))}
    return [kits[rank[sid] % len(kits)] for sid in source_ids]


def _rendered_sets(
    task: str,
    dataset: str,
    sources_by_split: Mapping[str, list[tuple[str, str]]],
    kits: Sequence[str],
    cache: str,
    make_source: Callable[[str, str, str, str], Source],
    classes: tuple[Hashable, ...],
    train_windows: Windows,
    eval_windows: Windows,
    augmentation: Augmentation | None,
    sample_rate: int,
    train_kits: Sequence[str] | None = None,
) -> list[SetSpec]:
    """train/validation with `train_kits` (default: kits[0]; several take turns file by file,
    `_kit_rotation`), test with every kit in `kits`."""
    train_kits = list(dict.fromkeys(train_kits or kits[:1]))
    trained = [kit_name(kit) for kit in train_kits]
    sets = []
    for split in SPLITS:
        listed = sources_by_split[split]
        if not listed:
            continue
        if split == "test":
            groups = [(f"{task}-test-{kit_name(kit)}", kit, [kit] * len(listed)) for kit in kits]
        else:
            rotation = _kit_rotation([source_id for source_id, _ in listed], train_kits)
            groups = [(f"{task}-{split}", "+".join(trained), rotation)]
        for name, kit_label, file_kits in groups:
            sources = tuple(
                make_source(
                    source_id,
                    midi_path,
                    os.path.join(
                        cache,
                        f"{kit_name(kit)}-{sample_rate}",
                        os.path.splitext(source_id)[0] + ".wav",
                    ),
                    kit,
                )
                for (source_id, midi_path), kit in zip(listed, file_kits, strict=True)
            )
            sets.append(
                SetSpec(
                    name=name,
                    sources=sources,
                    classes=classes,
                    windows=train_windows if split == "train" else eval_windows,
                    augmentation=augmentation if split == "train" else None,
                    info={
                        "task": task,
                        "dataset": dataset,
                        "split": split,
                        "kit": kit_label,
                        "training_kit": "+".join(trained),
                        "training_kits": trained,
                        "kit_used_in_training": kit_label in trained or split != "test",
                    },
                )
            )
    return sets


def _write_midi_atomically(midi, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    midi.write(temporary)
    os.replace(temporary, path)


def _procedural_split(n: int) -> dict[str, range]:
    """Groove indices per split, 80/10/10, at least one groove in validation and test."""
    if n < 3:
        raise ValueError(f"need at least 3 procedural grooves (one per split), got {n}")
    held_out = max(1, round(n * PROCEDURAL_FRACTIONS[1]))
    train = n - 2 * held_out
    return {
        "train": range(train),
        "validation": range(train, train + held_out),
        "test": range(train + held_out, n),
    }


def gmd_found(data_dir: PathLike | None) -> bool:
    """Whether `data_dir` holds the Groove MIDI Dataset (its info.csv)."""
    return data_dir is not None and os.path.isfile(os.path.join(data_dir, "info.csv"))


def drum_sets(
    out_dir: PathLike,
    data_dir: PathLike | None,
    kits: Sequence[str] = DEFAULT_KITS,
    *,
    train_kits: Sequence[str] | None = None,
    max_files: int | None = 300,
    procedural: int = 300,
    seed: int = 0,
    train_windows: Windows = TRAIN_WINDOWS,
    eval_windows: Windows = EVAL_WINDOWS,
    augmentation: Augmentation | None = None,
    sample_rate: int = FeatureConfig.sample_rate,
) -> Plan:
    """The drum sets: GMD rendered when `data_dir` holds it, else procedural grooves.

    Args:
        out_dir: the output folder; rendered audio (and generated grooves) go to its `audio/`.
        data_dir: the Groove MIDI Dataset (with info.csv), or None.
        kits: rendering kits of the test split (one set per kit); the first also renders train
            and validation unless `train_kits` is given.
        train_kits: kits that take turns rendering the train and validation files (one kit per
            file, `_kit_rotation`); default ``kits[:1]``.
        max_files: GMD files to use, shared among the splits in proportion to their sizes and
            chosen in a fixed pseudo-random order; None or 0 for all 1,150.
        procedural: grooves to generate when GMD is not found (split 80/10/10).
        seed: seeds the procedural grooves.
        train_windows, eval_windows: windows of the train split and of the others.
        augmentation: extra copies of the training files.
        sample_rate: the rate audio is rendered at.
    """
    if not kits:
        raise ValueError("at least one kit is needed")
    out_dir = os.fspath(out_dir)
    latency = _latencies(kits, train_kits, DRUM_CLASSES, sample_rate)
    from loco_tf.pipelines.render import gm_order_warning

    skipped, notes = [], []
    kit_warnings = [gm_order_warning(kit) for kit in latency]  # every kit, once, in order
    if gmd_found(data_dir):
        dataset = "gmd"
        info_csv = os.path.join(data_dir, "info.csv")
        records = read_gmd_info(info_csv)
        by_split = {split: [r for r in records if r.split == split] for split in SPLITS}
        chosen = _subset(by_split, max_files, key=lambda r: r.midi_filename)
        sources_by_split = _midi_sources(
            chosen, data_dir, lambda r: r.midi_filename, info_csv, skipped
        )
        used = sum(len(v) for v in chosen.values())
        notes.append(
            f"GMD at {data_dir}: {used} of {len(records)} performances"
            + ("" if used == len(records) else " (--max-files 0 for all)")
        )
        remap = tuple(sorted(GMD_RENDER_REMAP.items()))
    else:
        dataset = "procedural"
        where = f"at {data_dir} (no info.csv)" if data_dir is not None else "(no --data-dir)"
        notes.append(f"GMD not found {where}: generating {procedural} procedural grooves")
        from loco_tf.pipelines.grooves import generate_grooves

        midi_dir = os.path.join(out_dir, "audio", "procedural", f"seed-{seed}", "midi")
        paths = []
        for index, groove in enumerate(generate_grooves(procedural, seed)):
            path = os.path.join(midi_dir, f"groove-{index:05d}.mid")
            if not os.path.exists(path):
                _write_midi_atomically(groove, path)
            paths.append((os.path.basename(path), path))
        sources_by_split = {
            split: [paths[i] for i in indices]
            for split, indices in _procedural_split(procedural).items()
        }
        remap = ()

    cache = os.path.join(out_dir, "audio", dataset)
    if dataset == "procedural":
        cache = os.path.join(cache, f"seed-{seed}")

    def make_source(source_id: str, midi_path: str, wav_path: str, kit: str) -> Source:
        return Source(
            id=source_id,
            audio_path=wav_path,
            annotation_path=midi_path,
            annotation_format="midi-drums",
            kit=kit,
            render_sample_rate=sample_rate,
            drum_remap=remap,
            latency=tuple(latency[kit].items()),
        )

    sets = _rendered_sets(
        "drums",
        dataset,
        sources_by_split,
        kits,
        cache,
        make_source,
        DRUM_CLASSES,
        train_windows,
        eval_windows,
        augmentation,
        sample_rate,
        train_kits,
    )
    return Plan(tuple(sets), tuple(skipped), tuple(notes), tuple(filter(None, kit_warnings)))


def piano_sets(
    out_dir: PathLike,
    data_dir: PathLike,
    kits: Sequence[str] = DEFAULT_KITS,
    *,
    train_kits: Sequence[str] | None = None,
    max_files: int | None = 24,
    train_windows: Windows = TRAIN_WINDOWS,
    eval_windows: Windows = EVAL_WINDOWS,
    augmentation: Augmentation | None = None,
    sample_rate: int = FeatureConfig.sample_rate,
) -> Plan:
    """The piano sets: ASAP performances rendered with piano SoundFonts, split by piece.

    The split is `split_by_piece(records, seed=0)` over all of ASAP, fixed so that the test
    pieces never move; `max_files` then takes a fixed pseudo-random subset of each split in
    proportion to its size (None or 0 for all 961 performances). `kits`, `train_kits`,
    `train_windows`, `eval_windows`, `augmentation` and `sample_rate` are as for `drum_sets`.

    Raises:
        FileNotFoundError: `data_dir` has no metadata.csv.
    """
    if not kits:
        raise ValueError("at least one kit is needed")
    metadata = os.path.join(os.fspath(data_dir), "metadata.csv")
    if not os.path.isfile(metadata):
        raise FileNotFoundError(f"ASAP not found: no {metadata}")
    latency = _latencies(kits, train_kits, ["piano"], sample_rate)
    records = read_asap_metadata(metadata)
    chosen = _subset(split_by_piece(records, seed=0), max_files, key=lambda r: r.midi_performance)
    skipped = []
    sources_by_split = _midi_sources(
        chosen, data_dir, lambda r: r.midi_performance, metadata, skipped
    )
    used = sum(len(v) for v in chosen.values())
    notes = [
        f"ASAP at {data_dir}: {used} of {len(records)} performances"
        + ("" if used == len(records) else " (--max-files 0 for all)")
    ]

    def make_source(source_id: str, midi_path: str, wav_path: str, kit: str) -> Source:
        return Source(
            id=source_id,
            audio_path=wav_path,
            annotation_path=midi_path,
            annotation_format="midi-notes",
            kit=kit,
            render_sample_rate=sample_rate,
            default_latency=latency[kit]["piano"],
        )

    sets = _rendered_sets(
        "piano",
        "asap",
        sources_by_split,
        kits,
        os.path.join(os.fspath(out_dir), "audio", "asap"),
        make_source,
        PIANO_CLASSES,
        train_windows,
        eval_windows,
        augmentation,
        sample_rate,
        train_kits,
    )
    return Plan(tuple(sets), tuple(skipped), tuple(notes))


TASK_CLASSES: dict[str, tuple[Hashable, ...]] = {"drums": DRUM_CLASSES, "piano": PIANO_CLASSES}


def folder_set(
    folder: PathLike,
    name: str,
    task: str,
    annotation_format: str | None = None,
    *,
    windows: Windows = TRAIN_WINDOWS,
    augmentation: Augmentation | None = None,
) -> Plan:
    """One set from a folder of audio files and their annotation files.

    Args:
        folder: searched recursively (`readers.pair_audio_with_annotations`).
        name: the set's name.
        task: "drums" (KD, SD, HH) or "piano" (pitches 21..108).
        annotation_format: a `readers.FORMATS` name, or None to detect each file's
            (`readers.detect_format`; a MIDI file is read as drums for the drum task and as
            pitched notes for the piano task).
        windows: how files are cut.
        augmentation: extra copies of every file.

    Raises:
        AnnotationError: an audio file matches two annotation files equally well.
    """
    if task not in TASK_CLASSES:
        raise ValueError(f"task must be one of {sorted(TASK_CLASSES)}, got {task!r}")
    root = Path(folder)
    pairs, audio_without, annotations_without = pair_audio_with_annotations(root)
    skipped = [
        f"{path}: audio file without an annotation file (expected {path.stem}.<txt|csv|xml|mid> "
        f"or {path.stem}_annotations.<ext>)"
        for path in audio_without
    ]
    skipped += [f"{path}: annotation file without an audio file" for path in annotations_without]
    sources = []
    for audio, annotation in pairs:
        source_format = annotation_format
        if (
            source_format is None
            and task == "piano"
            and annotation.suffix.lower()
            in (
                ".mid",
                ".midi",
            )
        ):
            source_format = "midi-notes"
        sources.append(
            Source(
                id=audio.relative_to(root).as_posix(),
                audio_path=str(audio),
                annotation_path=str(annotation),
                annotation_format=source_format,
            )
        )
    spec = SetSpec(
        name=name,
        sources=tuple(sources),
        classes=TASK_CLASSES[task],
        windows=windows,
        augmentation=augmentation,
        info={"task": task, "dataset": "folder", "folder": str(root.resolve())},
    )
    return Plan((spec,) if sources else (), tuple(skipped))
