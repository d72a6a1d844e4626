"""The drum recipe (paper §6): train, tune, evaluate and run LoCo drum transcription models.

Training (`train`, `DrumTrainConfig`). The §6.1 ConvLSTM network learns p(t) for kick (KD),
snare (SD) and hi-hat (HH) from the TFRecord sets of `loco prepare drums`:

- supervision "counts" (LoCo, the paper): `LocoLoss(k_max=31)` on the number of hits of each
  class in each segment, nothing else; the reader (`pipelines.dataset.training_dataset`) never
  parses the event frames.
- supervision "frames" (the fully supervised twin, the paper's point of comparison): the same
  network, data and optimiser, trained with frame-wise binary cross-entropy on onset targets
  built from the evaluation-only event frames of the same records. Target widening (Schlüter
  and Böck, ICASSP 2014): the onset frame is a positive with weight 1, its +-`widen_frames`
  neighbours are positives with weight `widen_weight` (0.25), every other real frame a
  negative with weight 1, padding weight 0. At 3.75 ms per frame, a one-frame misplacement of a
  label is small against the 20 ms tolerance, and the lower weight keeps the peak on the
  labelled frame.

The piano recipe (`recipes.piano`) is this trainer, transcriber and decoder with 88 pitch
classes (`task="piano"`, recorded in `model.json` so that `loco predict` knows what to write).

Per-instrument models (`per_instrument=True`, the paper's choice: "three different models are
trained to detect each drum type separately") and band models (`band_size=10`, the piano's
bands of 10 pitches) are 1-class or 10-class ConvLSTMs side by side inside one Keras model,
trained together: their parameters are disjoint and the loss is a sum over classes, so
each gets exactly the gradient it would get alone, from the same batches. They cost three
times the compute of the default, one network with three outputs, which was chosen by training
speed: measured here (2 shared cores), a step of batch 32 took 0.55 s against 1.54 s, and after
the same ~2 minutes of training on the rendered GMD sets its validation count NLL was 5.17
against 6.33 (`bench/drums_bench.py`; the lead's longer runs decide for good).

Training state lives in the output folder: `best.keras` (ModelCheckpoint, best validation
loss), `backup/` (BackupAndRestore: rerunning the same command after a crash or kill -9 resumes
from the last completed epoch, or from the last `backup_every` batches), `history.csv`,
`logs/` (TensorBoard, optional), then `model.keras` and `model.json` (configs, class names,
decoding parameters, validation scores). EarlyStopping watches the validation loss: the count
NLL for counts supervision, the frame cross-entropy for the twin.

Decoding (`loco_tf.events`): peaks of p(t) above a threshold, at least `min_distance` frames
apart, at the frame's time plus a constant offset; threshold, distance and offset are tuned per
class on the validation files after training and stored in `model.json`.

Inference on whole files (`DrumTranscriber`): the network is causal, so a file is one sequence.
It is processed in chunks of `chunk_frames` frames, carrying the LSTM state and the
convolutions' past context from chunk to chunk (`CausalStreamer`), which gives the same p(t) as
one pass over the whole file, with memory bounded by the chunk size. Audio is read, resampled
(soxr, streaming) and turned into features block by block (`audio_feature_blocks`), so a file
of any length is processed in bounded memory, with the same numbers as
`features.compute_features(audio.load_audio(path))`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import glob
import hashlib
import json
import math
import os
import queue
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import soundfile
import soxr
import tensorflow as tf

from loco_tf import LocoLoss
from loco_tf.distribute import (
    is_chief,
    make_strategy,
    num_workers,
    precision,
    shard_by,
    worker_dir,
)
from loco_tf.events import (
    DEFAULT_THRESHOLDS,
    DecodingParameters,
    Tuning,
    decode_events,
    decode_with_counts,
    threshold_curve,
    tune_decoding,
)
from loco_tf.features import FeatureConfig, compute_features, frame_times, num_frames
from loco_tf.metrics import ALL, Evaluation, evaluate_onsets, precision_recall_f1
from loco_tf.models import ConvLSTMConfig, build_conv_lstm, grow_conv_lstm_weights
from loco_tf.pipelines.audio import AudioError, mix_to_mono, unreadable
from loco_tf.pipelines.dataset import (
    Augment,
    colour_examples,
    evaluation_dataset,
    training_dataset,
)
from loco_tf.pipelines.readers import (
    AUDIO_EXTENSIONS,
    AnnotationError,
    read_annotations,
)
from loco_tf.pipelines.tfrecords import Manifest, combine_manifests, read_manifest
from loco_tf.recipes.configs import SUPERVISIONS, TASKS, DrumTrainConfig
from loco_tf.streaming import CausalStreamer

PathLike = str | os.PathLike

MODEL_FORMAT = "loco-tf/drum-model"
MODEL_VERSION = 1
MODEL_FILE = "model.keras"
MODEL_JSON = "model.json"
_RETUNED_FILES = frozenset({MODEL_FILE, MODEL_JSON})  # what `save_retuned` writes
GM_DRUM_NOTES = {"KD": 36, "SD": 38, "HH": 42}
SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "saved_models" / "drums"

_RUN_CONFIG = "train-config.json"
_FIT_DONE = "fit-complete.json"
_HISTORY = "history.csv"
_BEST = "best.keras"
_BACKUP = "backup"
_RESUMABLE_CHANGES = {
    "out", "strategy", "epochs", "patience", "reduce_lr_patience", "reduce_lr_factor",
    "average_weight",
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Model and losses.


def conv_lstm_config(config: DrumTrainConfig, feature_config: FeatureConfig, classes: int):
    """The `ConvLSTMConfig` of one network of the run."""
    return ConvLSTMConfig(
        n_bins=feature_config.n_mels,
        channels=2,
        num_classes=classes,
        filters=tuple(config.filters),
        lstm_units=config.lstm_units,
        dense_units=config.dense_units,
        prior_zero_mass=config.prior_zero_mass,
        sequence_length=config.sequence_length,
    )


def consecutive_ranges(count: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of `size` consecutive indices covering `range(count)`; the last
    may be shorter."""
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def decoding_groups(classes: int, band_size: int) -> list[list[int]] | None:
    """The classes that share one decoding (`tune_decoding(groups=...)`): consecutive bands of
    `band_size`, or None (each class alone) when `band_size` is 0."""
    if not band_size:
        return None
    return [list(range(start, stop)) for start, stop in consecutive_ranges(classes, band_size)]


def class_bands(config: DrumTrainConfig) -> list[tuple[int, int]]:
    """The [start, stop) class ranges of the run's networks, in output order."""
    size = 1 if config.per_instrument else config.band_size or len(config.classes)
    return consecutive_ranges(len(config.classes), size)


def _band_name(prefix: str, classes: Sequence) -> str:
    first, last = str(classes[0]), str(classes[-1])
    return f"{prefix}_{first}" if first == last else f"{prefix}_{first}_{last}"


def build_drum_model(
    config: DrumTrainConfig, feature_config: FeatureConfig, name: str = "drums"
) -> keras.Model:
    """`{"features", "lengths"}` -> p(t) `[batch, time, classes]`: one network, or one per
    class (`per_instrument`) or per band of classes (`band_size`), side by side."""
    bands = class_bands(config)
    if len(bands) == 1:
        return build_conv_lstm(
            conv_lstm_config(config, feature_config, len(config.classes)), name=name
        )
    features = keras.Input((None, feature_config.n_mels, 2), name="features")
    lengths = keras.Input((), dtype="int32", name="lengths")
    inputs = {"features": features, "lengths": lengths}
    outputs = [
        build_conv_lstm(
            conv_lstm_config(config, feature_config, stop - start),
            name=_band_name(name, config.classes[start:stop]),
        )(inputs)
        for start, stop in bands
    ]
    probabilities = keras.layers.Concatenate(axis=-1, name="per_instrument")(outputs)
    return keras.Model(inputs, probabilities, name=name)


@keras.saving.register_keras_serializable(package="loco_tf.recipes")
class FrameCrossEntropy(keras.losses.Loss):
    """Weighted frame-wise binary cross-entropy of the fully supervised twin.

    Call arguments:
        y_true: `[batch, time, 2 * classes]`: onset targets (0 or 1) of each class, then the
            loss weight of each frame and class (0 on padding).
        y_pred: `[batch, time, classes]` p(t).

    The loss of a sample is the weighted sum over frames and classes divided by
    `sequence_length`, so that it does not depend on the padding.
    """

    def __init__(self, sequence_length: int = 400, name: str = "frame_cross_entropy", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        self.sequence_length = int(sequence_length)

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)
        targets, weights = tf.split(tf.cast(y_true, y_pred.dtype), 2, axis=-1)
        # keras' binary cross-entropy clips p to [eps, 1 - eps]: finite at p = 0 on padding.
        per_frame = keras.ops.binary_crossentropy(targets, y_pred)
        return tf.reduce_sum(weights * per_frame, axis=[1, 2]) / self.sequence_length

    def get_config(self) -> dict:
        return {**super().get_config(), "sequence_length": self.sequence_length}


@keras.saving.register_keras_serializable(package="loco_tf.recipes")
def count_error(y_true, y_pred):
    """Mean |sum_t p(t) - count| per class: how far the expected count is from the label."""
    expected = tf.reduce_sum(tf.cast(y_pred, tf.float32), axis=1)
    return tf.reduce_mean(tf.abs(expected - tf.cast(y_true, tf.float32)), axis=-1)


# ---------------------------------------------------------------------------------------------
# Data.


def manifest_path(data: PathLike, name: str) -> str:
    """A set's manifest: `name` when it is a manifest path, else `data/name.manifest.json`."""
    if name.endswith(".manifest.json"):
        return name
    return os.path.join(os.fspath(data), f"{name}.manifest.json")


def load_manifest(data: PathLike, name: str) -> Manifest:
    """Reads a set's manifest; a missing set says how to make it. Several sets, comma
    separated (names in `data` or manifest paths), are read as one (`combine_manifests`)."""
    names = [part.strip() for part in name.split(",")]
    if not all(names):
        raise ValueError(f"sets {name!r}: a set name is empty (two commas, or one at an end)")
    paths = [manifest_path(data, part) for part in names]
    for part, path in zip(names, paths, strict=True):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"no set {part!r}: {path} does not exist. Prepare the data first, e.g. "
                f"`loco prepare drums --out {os.path.dirname(path) or '.'}`."
            )
    real = [os.path.realpath(path) for path in paths]
    twice = sorted(
        {path for path, resolved in zip(paths, real, strict=True) if real.count(resolved) > 1}
    )
    if twice:
        raise ValueError(f"sets {name!r}: {', '.join(twice)} given twice")
    return combine_manifests([read_manifest(path) for path in paths])


def part_labels(parts: Sequence[Manifest]) -> list[str]:
    """Names that tell a combined set's parts apart: the set names, else folder/name, else
    the manifest paths."""
    candidates = (
        [part.name for part in parts],
        [f"{Path(part.path).parent.name}/{part.name}" for part in parts],
        [part.path for part in parts],
    )
    return next(
        (labels for labels in candidates if len(set(labels)) == len(labels)), candidates[-1]
    )


def frame_targets(
    event_frames: tf.Tensor, lengths: tf.Tensor, frames: int, widen: int, widen_weight: float
) -> tf.Tensor:
    """Onset targets and weights, `[..., frames, 2 * classes]`, from `[..., classes, events]`
    event frames (padded with -1) and `[...]` lengths (see the module docstring)."""
    # one_hot(-1) is all zeros, so the -1 padding adds nothing.
    hits = tf.reduce_sum(tf.one_hot(tf.cast(event_frames, tf.int32), frames), axis=-2)
    onset = tf.minimum(hits, 1.0)
    onset = tf.linalg.matrix_transpose(onset)  # [..., frames, classes]
    near = tf.zeros_like(onset)
    for shift in range(1, widen + 1):
        zeros = tf.zeros_like(onset[..., :shift, :])
        later = tf.concat([zeros, onset[..., :-shift, :]], axis=-2)
        earlier = tf.concat([onset[..., shift:, :], zeros], axis=-2)
        near = tf.maximum(near, tf.maximum(later, earlier))
    near = near * (1.0 - onset)
    valid = tf.cast(tf.range(frames) < tf.cast(lengths, tf.int32)[..., None], onset.dtype)
    weights = valid[..., None] * (1.0 - near + widen_weight * near)
    return tf.concat([onset + near, weights], axis=-1)


def _class_indices(manifest: Manifest, classes: Sequence[str]) -> list[int]:
    missing = [c for c in classes if c not in manifest.class_names]
    if missing:
        raise ValueError(f"{manifest.path}: classes {missing} not in {manifest.class_names}")
    return [manifest.class_names.index(c) for c in classes]


def augmentation(config: DrumTrainConfig) -> Augment | None:
    """The run's feature-level augmentation, or None when it has none."""
    augment = config.augment
    return augment if augment.active else None


def frames_dataset(manifest: Manifest, config: DrumTrainConfig, training: bool) -> tf.data.Dataset:
    """`({"features", "lengths"}, targets)` batches for the fully supervised twin.

    Read with `pipelines.dataset.evaluation_dataset` (the reader that parses event frames) in
    batches of one, one stream per shard (`unbatch()` crashes TF 2.21 on a window without
    events: its event frames have shape [1, classes, 0]); for training the shards are sampled
    at random in proportion to their sizes (as `training_dataset` interleaves them), shuffled,
    repeated and coloured as the count-trained network's segments are (`augmentation`).
    """
    indices = _class_indices(manifest, config.classes)
    frames = config.sequence_length

    def shard(path: str) -> tf.data.Dataset:
        return evaluation_dataset(
            glob.escape(path),
            1,
            indices,
            pad_to_frames=frames,
            feature_config=manifest.feature_config,
        ).map(lambda batch: {key: value[0] for key, value in batch.items()})

    def example(record):
        targets = frame_targets(
            record["event_frames"],
            record["lengths"],
            frames,
            config.widen_frames,
            config.widen_weight,
        )
        return {"features": record["features"], "lengths": record["lengths"]}, targets

    shards = [
        (path, info.num_examples)
        for path, info in zip(manifest.files, manifest.shards, strict=True)
        if info.num_examples
    ]
    if not shards:
        raise ValueError(f"{manifest.path}: the set is empty")
    if training:
        sizes = np.array([size for _, size in shards], dtype=np.float64)
        dataset = tf.data.Dataset.sample_from_datasets(
            [shard(path).repeat() for path, _ in shards],
            weights=list(sizes / sizes.sum()),
            seed=config.seed,
        )
        if config.shuffle_buffer > 1:
            dataset = dataset.shuffle(config.shuffle_buffer, seed=config.seed)
        augment = augmentation(config)
        if augment is not None:
            front_end = manifest.feature_config
            dataset = colour_examples(
                dataset, augment, front_end.amin, config.seed + 3, front_end.frame_rate
            )
        dataset = dataset.map(example, tf.data.AUTOTUNE)
        dataset = dataset.batch(config.batch_size, drop_remainder=True)
    else:
        dataset = shard(shards[0][0])
        for path, _ in shards[1:]:
            dataset = dataset.concatenate(shard(path))
        dataset = dataset.map(example, tf.data.AUTOTUNE).batch(config.batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def datasets(
    config: DrumTrainConfig, train_manifest: Manifest, validation_manifest: Manifest
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training and validation batches, padded to `sequence_length` frames.

    The validation set's number of batches is declared from its manifest, so that Keras knows
    where an epoch of it ends.
    """
    batches = math.ceil(validation_manifest.totals["num_examples"] / config.batch_size)
    known_length = tf.data.experimental.assert_cardinality(batches)
    if config.supervision == "frames":
        return (
            frames_dataset(train_manifest, config, training=True),
            frames_dataset(validation_manifest, config, training=False).apply(known_length),
        )
    augment = augmentation(config)
    train = training_dataset(
        train_manifest,
        config.batch_size,
        list(config.classes),
        shuffle_buffer=config.shuffle_buffer,
        augment=augment,
        pad_to_frames=config.sequence_length,
        seed=config.seed,
    )
    validation = training_dataset(
        validation_manifest,
        config.batch_size,
        list(config.classes),
        shuffle_buffer=0,
        pad_to_frames=config.sequence_length,
        repeat=False,
    )
    return train, validation.apply(known_length)


@dataclasses.dataclass
class AnnotatedFile:
    """A whole file's features and reference events.

    Attributes:
        name: the source id (with `@FRAME` when a set's windows of it leave a gap).
        features: `[frames, n_mels, 2]`.
        references: per class, event times in seconds from the start of `features`.
    """

    name: str
    features: np.ndarray
    references: list[np.ndarray]


def manifest_files(
    manifest: Manifest, classes: Sequence[str], batch_size: int = 64
) -> list[AnnotatedFile]:
    """A set's windows put back together into whole files, with their event frames.

    Windows of one source are joined in order of start frame; windows that overlap share their
    frames, and a gap between windows starts a new piece, named `source@start_frame`. The
    reference times are the labelled frames' times (`features.frame_times`), so they are on the
    3.75 ms frame grid: the records keep frames, not the annotated seconds. A combined set's
    parts are put back together each on its own (they may hold the same sources, rendered with
    other kits), their files named `PART:source` (`part_labels`).
    """
    if manifest.parts:
        return [
            dataclasses.replace(file, name=f"{label}:{file.name}")
            for part, label in zip(manifest.parts, part_labels(manifest.parts), strict=True)
            for file in manifest_files(part, classes, batch_size)
        ]
    config = manifest.feature_config
    windows: dict[str, list[tuple[int, np.ndarray, list[np.ndarray]]]] = {}
    batches = evaluation_dataset(
        manifest, batch_size, list(classes), pad_to_frames=None, feature_config=config
    )
    for batch in batches.as_numpy_iterator():
        for i in range(len(batch["lengths"])):
            length = int(batch["lengths"][i])
            start = int(batch["start_frame"][i])
            frames = [row[row >= 0] + start for row in batch["event_frames"][i]]
            source = batch["source"][i].decode("utf-8")
            windows.setdefault(source, []).append((start, batch["features"][i, :length], frames))
    files = []
    for source, parts in windows.items():
        parts.sort(key=lambda part: part[0])
        pieces: list[list[tuple[int, np.ndarray, list[np.ndarray]]]] = []
        stop = None
        for part in parts:
            if stop is None or part[0] > stop:
                pieces.append([])
                stop = part[0]
            pieces[-1].append(part)
            stop = max(stop, part[0] + len(part[1]))
        for piece in pieces:
            first = piece[0][0]
            last = max(start + len(features) for start, features, _ in piece)
            features = np.zeros((last - first, *piece[0][1].shape[1:]), np.float32)
            for start, part_features, _ in piece:
                features[start - first : start - first + len(part_features)] = part_features
            references = []
            for c in range(len(classes)):
                frames = np.unique(np.concatenate([part[2][c] for part in piece])) - first
                references.append(frame_times(len(features), config)[frames])
            name = source if len(pieces) == 1 else f"{source}@{first}"
            files.append(AnnotatedFile(name, features, references))
    return files


# ---------------------------------------------------------------------------------------------
# Whole-file inference.


def audio_feature_blocks(
    path: PathLike, feature_config: FeatureConfig, block_seconds: float = 30.0
) -> Iterator[np.ndarray]:
    """Features of an audio file, block by block, in bounded memory.

    The concatenated blocks equal `compute_features(load_audio(path), feature_config)`: the
    same channel mix, the same soxr resampler (streamed; the total length is fixed as librosa
    fixes it), the same frames, and the causal difference carried across blocks.

    Raises:
        AudioError: the file cannot be read, is empty, has NaN or infinite samples, or is
            digital silence (raised after its blocks, which are then all silence), each naming
            the file, as `pipelines.audio.load_audio` does.
    """
    config = feature_config
    try:
        sound = soundfile.SoundFile(os.fspath(path))
    except (soundfile.SoundFileError, OSError, RuntimeError) as error:
        raise unreadable(path, error) from error
    with sound:
        rate = sound.samplerate
        resampler = None
        if rate != config.sample_rate:
            resampler = soxr.ResampleStream(rate, config.sample_rate, 1, dtype="float32")
        block = max(1, int(block_seconds * rate))
        # Samples held back until the end, where librosa's length fix may trim them.
        holdback = 0 if resampler is None else 64
        buffer = np.zeros(0, np.float32)
        previous = None
        samples_in = samples_out = 0
        sound_seen = False
        while True:
            try:
                mono = _read_mono(sound, block)
            except (soundfile.SoundFileError, OSError, RuntimeError) as error:
                raise unreadable(path, error) from error
            last = len(mono) < block
            if not np.all(np.isfinite(mono)):
                raise AudioError(f"{path}: samples are NaN or infinite")
            sound_seen = sound_seen or bool(np.any(mono))
            samples_in += len(mono)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            samples_out += len(mono)
            buffer = np.concatenate([buffer, mono])
            if last and resampler is not None:
                # librosa.resample's fix_length: ceil(n * ratio) samples, zero-padded or cut.
                expected = int(np.ceil(samples_in * float(config.sample_rate) / rate))
                excess = samples_out - expected
                if excess > 0:
                    buffer = buffer[: len(buffer) - excess]
                else:
                    buffer = np.concatenate([buffer, np.zeros(-excess, np.float32)])
            usable = len(buffer) if last else max(0, len(buffer) - holdback)
            frames = num_frames(usable, config)
            if frames:
                features = compute_features(
                    buffer[: (frames - 1) * config.hop_length + config.n_fft], config
                )
                if previous is not None:
                    features[0, :, 1] = features[0, :, 0] - previous
                previous = features[-1, :, 0].copy()
                buffer = buffer[frames * config.hop_length :]
                yield features
            if last:
                break
    if samples_in == 0:
        raise AudioError(f"{path}: audio file is empty (no samples)")
    if not sound_seen:
        raise AudioError(f"{path}: audio is digital silence (every sample is zero)")


def _read_mono(sound: soundfile.SoundFile, frames: int) -> np.ndarray:
    """Up to `frames` frames of an open audio file, down-mixed to float32 as `mix_to_mono`
    mixes libsndfile's float32 samples, to the bit.

    16-bit PCM in one or two channels is read as integers: libsndfile's float32 sample is
    x / 32768, and the mean of two such samples, (a / 32768 + b / 32768) / 2, is exactly
    (a + b) / 65536 in float32, so the integers are added first and scaled once, which took
    half the time of reading floats (a minute of 44.1 kHz stereo: 7 ms against 15 ms). A NaN
    or infinite sample leaves the mix NaN or infinite (the caller checks the mix only).
    """
    if sound.subtype == "PCM_16" and sound.channels <= 2:
        data = sound.read(frames, dtype="int16", always_2d=True)
        if sound.channels == 1:
            mono = data[:, 0].astype(np.float32)
            mono *= np.float32(1 / 32768)
        else:
            mono = np.add(data[:, 0], data[:, 1], dtype=np.int32).astype(np.float32)
            mono *= np.float32(1 / 65536)
        return mono
    return mix_to_mono(sound.read(frames, dtype="float32", always_2d=True))


@functools.cache
def _thread_pools():
    """threadpoolctl's view of the loaded BLAS and OpenMP libraries (found once: it scans the
    process's shared libraries)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _blas_threads(threads: int | None):
    """A context in which BLAS libraries use `threads` threads (None: no change)."""
    if threads is None:
        return contextlib.nullcontext()
    return _thread_pools().limit(limits=threads, user_api="blas")


# Feature blocks `transcribe_many` computes ahead of the network. With one, the front end
# waited for the network to take each block; two made a folder of 20 files of 27 s (44.1 kHz
# stereo, drums/8, bfloat16, malloc tuned) 1.07x as fast in two interleaved runs of 7 (415x
# against 387x, 361x against 336x real time; three: 408x, 361x) and one 60 s file no slower
# (375x against 386x, 320x against 307x). A block of 10 s of features is 1.7 MB.
READ_AHEAD_BLOCKS = 2


# Idle read-ahead threads, each waiting on its own task queue (`_in_worker_thread`).
_idle_workers: list[queue.SimpleQueue] = []
_idle_workers_lock = threading.Lock()


def _forget_workers() -> None:
    """In a forked child: the parent's workers are not there, so none is idle."""
    global _idle_workers_lock
    _idle_workers.clear()
    _idle_workers_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_workers)


def _worker(tasks: queue.SimpleQueue) -> None:
    while True:
        task, finished = tasks.get()
        try:
            task()
        except BaseException:  # printed, as for any thread; the worker lives on
            traceback.print_exc()
        finally:
            del task  # an idle thread holds nothing of its last task (an open file, ...)
            with _idle_workers_lock:
                _idle_workers.append(tasks)
            finished.set()


def _in_worker_thread(task: Callable[[], None]) -> threading.Event:
    """Runs `task()` in an idle worker thread, or in a new one when none is idle; returns an
    event set once `task` has returned and its thread is idle again.

    A thread is reused rather than started per call because glibc gives a new thread an
    arena of its own, whose pages are faulted in afresh: one `transcribe` of a 60 s file made
    ~4,300 page faults and its first block of features took 18 ms instead of 7; with the
    thread reused, a few faults a call. The workers are daemon threads; another is started
    only while all are busy (a second read-ahead consumed alongside the first).
    """
    with _idle_workers_lock:
        tasks = _idle_workers.pop() if _idle_workers else None
    if tasks is None:
        tasks = queue.SimpleQueue()
        thread = threading.Thread(
            target=_worker, args=(tasks,), daemon=True, name="loco-read-ahead"
        )
        thread.start()
    finished = threading.Event()
    tasks.put((task, finished))
    return finished


def _read_ahead(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """Yields `items`, computing up to `depth` ahead in a worker thread (bounded memory).

    The front end (numpy, librosa) and the network (TensorFlow) both release the GIL in their
    heavy parts, so the next block's features are computed while the network runs on this one.
    An exception of `items` is raised here, in the caller's thread. The worker threads are
    reused from call to call (`_in_worker_thread`).
    """
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in items:
                if stop.is_set():
                    return
                results.put((item, None))
            results.put((done, None))
        except BaseException as error:  # handed to the consumer, which raises it
            results.put((done, error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator stopped early closes its file now
                close()

    finished = _in_worker_thread(produce)
    try:
        while True:
            item, error = results.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while not finished.is_set():  # unblock a producer waiting on a full queue
            try:
                results.get_nowait()
            except queue.Empty:
                finished.wait(0.01)


@dataclasses.dataclass
class Transcription:
    """What `DrumTranscriber.transcribe` found in one file.

    Attributes:
        path: the audio file.
        times: per class, hit times in seconds.
        probabilities: p(t) `[frames, classes]`.
        features: the features of the frames kept (see `transcribe`), or None.
        first_frame: the frame index of `features[0]`.
    """

    path: str
    times: list[np.ndarray]
    probabilities: np.ndarray
    features: np.ndarray | None = None
    first_frame: int = 0


class DrumTranscriber:
    """A trained drum model with its front end and decoding: audio -> p(t) -> hits.

    Args:
        model: the Keras model.
        feature_config: the front end it was trained with.
        classes: its output classes.
        decoding: per class, how p(t) becomes hits.
        chunk_frames: frames per inference chunk (`CausalStreamer`). The network runs on a
            chunk once it is complete, so chunks of about a block's frames (a 10 s block has
            2,667) keep it busy while the next block is analysed; 8,192 left most of a minute's
            frames to the end (bench: 1.1x slower end to end).
        block_seconds: seconds of audio read and analysed at a time.
        front_end_blas_threads: BLAS (OpenBLAS) threads while `transcribe` runs, or None to
            leave them as they are. The front end's one matrix product per block wakes every
            BLAS thread, and they spin-wait for more work afterwards, taking a core from the
            network running beside them (`_read_ahead`); with one, `bench/drums_bench.py`
            measured end to end 1.3–1.4x as fast on 2 cores (when this was added, with
            8,192-frame feature blocks).
        task: "drums" (classes KD, SD, HH) or "piano" (classes are MIDI pitches).
        encoder_dtype: "float32", or "bfloat16" for faster convolutions on CPUs with
            AVX512_BF16 (`CausalStreamer`).

    Attributes:
        description: model.json's contents for a transcriber made by `load`; else empty.
    """

    def __init__(
        self,
        model: keras.Model,
        feature_config: FeatureConfig,
        classes: Sequence[str],
        decoding: Sequence[DecodingParameters],
        chunk_frames: int = 4096,
        block_seconds: float = 10.0,
        task: str = "drums",
        encoder_dtype: str = "float32",
        front_end_blas_threads: int | None = 1,
    ):
        if len(decoding) != len(classes):
            raise ValueError(f"{len(decoding)} decoding parameters for {len(classes)} classes")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}: {task!r}")
        self.task = task
        self.model = model
        self.feature_config = feature_config
        self.classes = tuple(classes)
        self.decoding = tuple(decoding)
        self.block_seconds = block_seconds
        self.front_end_blas_threads = front_end_blas_threads
        self.description: dict[str, Any] = {}
        self.streamer = CausalStreamer(model, chunk_frames, encoder_dtype)

    @classmethod
    def load(cls, path: PathLike, **kwargs) -> DrumTranscriber:
        """Loads `model.keras` and `model.json` from a folder, or a `.keras` file beside its
        `.json`."""
        keras_path, _ = model_files(path)
        description = load_description(path)
        model = keras.saving.load_model(keras_path, compile=False)
        classes = description["classes"]
        decoding = [DecodingParameters.from_dict(description["decoding"][str(c)]) for c in classes]
        feature_config = FeatureConfig.from_dict(description["feature_config"])
        kwargs.setdefault("task", description.get("task", "drums"))
        transcriber = cls(model, feature_config, classes, decoding, **kwargs)
        transcriber.description = description
        return transcriber

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """p(t) `[frames, classes]` of a whole file's features, in one causal pass."""
        return self.streamer.run(features)

    def decode(self, probabilities: np.ndarray) -> list[np.ndarray]:
        """Hit times in seconds per class."""
        return decode_events(probabilities, self.feature_config, self.decoding)

    def transcribe(
        self, path: PathLike, keep_features: tuple[float, float] | None = None
    ) -> Transcription:
        """Reads, analyses and transcribes an audio file in bounded memory.

        Args:
            path: the audio file.
            keep_features: (start, stop) seconds of features to keep (e.g. for a plot).

        Raises:
            AudioError: the file is unusable (the message names it).
        """
        (result,) = self.transcribe_many([path], keep_features)
        if isinstance(result, AudioError):
            raise result
        return result

    def transcribe_many(
        self, paths: Iterable[PathLike], keep_features: tuple[float, float] | None = None
    ) -> Iterator[Transcription | AudioError]:
        """`transcribe` for each of `paths` in turn: per path, in order, its `Transcription`,
        or the `AudioError` that makes it unusable (the other files go on).

        One thread computes features ahead, across the end of a file into the next one, while
        the network runs on the blocks before: a file's first features no longer wait for the
        previous file's last chunk. On 20 files of 27 s (44.1 kHz stereo, drums/7) that was
        1.12x as fast as one `transcribe` after another with bfloat16 convolutions (515x
        against 459x real time) and 1.09x in float32 (343x against 314x); computing two blocks
        ahead instead of one made it 1.07x as fast again (`READ_AHEAD_BLOCKS`). Lazy: features
        are computed at most `READ_AHEAD_BLOCKS` blocks ahead of the network, so a file is read
        shortly before its results are needed, not the whole batch at once. Until the
        iteration ends (or the iterator is closed), BLAS runs on `front_end_blas_threads`
        threads in the whole process, as during `transcribe`.
        """
        first = last = 0
        if keep_features is not None:
            first = max(0, int(keep_features[0] * self.feature_config.frame_rate))
            last = int(math.ceil(keep_features[1] * self.feature_config.frame_rate))
        stream = None
        with _blas_threads(self.front_end_blas_threads):
            blocks = self._blocks_of_files(paths)
            for path, block in _read_ahead(blocks, READ_AHEAD_BLOCKS):
                if stream is None:
                    stream, probabilities, kept, position = self.streamer.start(), [], [], 0
                if isinstance(block, AudioError):
                    stream = None
                    yield block
                elif block is _END_OF_FILE:
                    p = np.concatenate([*probabilities, self.streamer.finish(stream)])
                    features = np.concatenate(kept) if kept else None
                    stream = None
                    yield Transcription(os.fspath(path), self.decode(p), p, features, first)
                else:
                    probabilities.append(self.streamer.push(stream, block))
                    if keep_features is not None and position < last:
                        if position + len(block) > first:
                            kept.append(block[max(0, first - position) : last - position])
                    position += len(block)

    def _blocks_of_files(
        self, paths: Iterable[PathLike]
    ) -> Iterator[tuple[PathLike, np.ndarray | AudioError | object]]:
        """(path, features block) for each block of each file, then (path, `_END_OF_FILE`),
        or (path, AudioError) where a file turns out to be unusable."""
        for path in paths:
            try:
                for block in audio_feature_blocks(path, self.feature_config, self.block_seconds):
                    yield path, block
            except AudioError as error:
                yield path, error
            else:
                yield path, _END_OF_FILE


# What `DrumTranscriber._blocks_of_files` gives after a file's last block.
_END_OF_FILE = object()


def model_files(path: PathLike) -> tuple[str, str]:
    """(`.keras`, `.json`) of a model folder or a `.keras` file; missing files raise."""
    path = Path(path)
    if path.is_dir():
        keras_path, json_path = path / MODEL_FILE, path / MODEL_JSON
    else:
        keras_path, json_path = path, path.with_suffix(".json")
    for needed in (keras_path, json_path):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{needed} not found: a drum model is a folder with {MODEL_FILE} and "
                f"{MODEL_JSON}, as `loco train drums --out FOLDER` writes it"
            )
    return os.fspath(keras_path), os.fspath(json_path)


def load_description(path: PathLike) -> dict[str, Any]:
    """A model's `model.json` (classes, configs, decoding); not a loco-tf model's raises."""
    _, json_path = model_files(path)
    with open(json_path, encoding="utf-8") as file:
        description = json.load(file)
    if not isinstance(description, dict) or description.get("format") != MODEL_FORMAT:
        raise ValueError(f"{json_path}: not a {MODEL_FORMAT} description")
    return description


def newest_version(folder: Path, model_file: str = MODEL_FILE) -> Path | None:
    """The highest-numbered `folder/<version>/` that holds `model_file`, or None: the shipped
    model of a recipe (`saved_models/<name>/`)."""
    if not folder.is_dir():
        return None
    versions = [
        p
        for p in folder.iterdir()
        if p.is_dir() and p.name.isdigit() and (p / model_file).is_file()
    ]
    return max(versions, key=lambda p: int(p.name)) if versions else None


def shipped_model() -> Path | None:
    """The newest model shipped in `saved_models/drums/<version>/`, or None."""
    return newest_version(SHIPPED_MODELS)


# ---------------------------------------------------------------------------------------------
# Training.


class _ResumedEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that continues the count of a run resumed by BackupAndRestore, from the
    validation losses of the epochs already in the history."""

    def __init__(self, previous_losses: Sequence[float], **kwargs):
        super().__init__(**kwargs)
        self.previous_losses = list(previous_losses)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.previous_losses:
            best = int(np.argmin(self.previous_losses))
            self.best = float(self.previous_losses[best])
            self.best_epoch = best
            self.wait = len(self.previous_losses) - 1 - best


def _read_history(path: Path) -> list[dict[str, float]]:
    """Rows of `history.csv`, one per completed epoch (the last row of a repeated epoch)."""
    if not path.is_file():
        return []
    rows: dict[int, dict[str, float]] = {}
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            try:
                rows[int(row["epoch"])] = {k: float(v) for k, v in row.items() if v != ""}
            except (KeyError, ValueError):
                continue
    return [rows[epoch] for epoch in sorted(rows)]


def prepare_run_folder(
    out: PathLike,
    settings: dict[str, Any],
    defaults: dict[str, Any],
    resumable: set[str],
    overwrite: bool,
) -> Path:
    """The run folder of a recipe's training, shared by the drum, piano and digit recipes.

    `settings` (a config's JSON-ready fields) are written to `train-config.json`. A folder
    that holds a run with other settings is refused, except for the fields in `resumable`
    (e.g. epochs); fields added since the run started take their `defaults`. `overwrite`
    deletes a previous run's files first.
    """
    out = Path(out)
    run_config = out / _RUN_CONFIG
    if overwrite and out.is_dir():
        for name in (_RUN_CONFIG, _FIT_DONE, _HISTORY, _BEST, MODEL_FILE, MODEL_JSON):
            (out / name).unlink(missing_ok=True)
        for name in (_BACKUP, "logs"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    if run_config.is_file():
        with open(run_config, encoding="utf-8") as file:
            previous = {**defaults, **json.load(file)}
        changed = sorted(
            k for k in settings if k not in resumable and previous.get(k) != settings[k]
        )
        if changed:
            raise ValueError(
                f"{out} holds a run with other settings ({', '.join(changed)}); use another "
                "--out, or --overwrite to start it again"
            )
    temporary = run_config.with_name(f"{run_config.name}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(settings, file, indent=2)
    os.replace(temporary, run_config)
    return out


@dataclasses.dataclass
class TrainResult:
    """A finished run.

    Attributes:
        out: the output folder.
        description: the contents of `model.json`.
        validation: scores on the validation files with the tuned decoding (None on a
            multi-worker task that is not the chief, which only trains).
        tunings: per class, the tuned decoding and its validation F1.
        history: per epoch, the logged losses and metrics.
        transcriber: the trained network with its tuned decoding and description, as
            `DrumTranscriber.load(out)` would give it (already compiled); None where
            `validation` is.
    """

    out: Path
    description: dict[str, Any]
    validation: Evaluation | None
    tunings: list[Tuning]
    history: list[dict[str, float]]
    transcriber: DrumTranscriber | None = None


def _start_from(model: keras.Model, config: DrumTrainConfig, feature_config) -> None:
    """Sets `model`'s weights to those of the trained model `config.init_from`."""
    model.set_weights(_init_from_weights(model, config, feature_config))


def _average_with_start(model: keras.Model, config: DrumTrainConfig, feature_config) -> None:
    """`model`'s weights become (1 - w) x its own + w x `config.init_from`'s."""
    w = config.average_weight
    start = _init_from_weights(model, config, feature_config)
    model.set_weights(
        [(1.0 - w) * own + w * other for own, other in zip(model.get_weights(), start, strict=True)]
    )


def averaging_across_supervisions(config: DrumTrainConfig) -> str | None:
    """A warning when `config` averages with a start trained on the other supervision, or None.

    Measured in session 19 (docs/drums-record.md, weak vs full for drums/8): drums/6 (counts)
    fine-tuned on frame targets scored 82.3 % micro F1 on the unseen test kits, its average
    with drums/6 65.5 %. The two losses place events differently (LoCo's peaks come late and
    are decoded with an offset), so the mean of the two networks is neither."""
    if not config.average_weight:
        return None
    start = load_description(config.init_from).get("train_config", {}).get("supervision", "counts")
    if start == config.supervision:
        return None
    return (
        f"warning: --average-weight {config.average_weight} averages this run's weights "
        f"(--supervision {config.supervision}) with those of {config.init_from} (trained with "
        f"--supervision {start}). Networks trained on counts and on frame targets place events "
        "differently, and such an average scored 17 points below its fine-tune alone "
        "(docs/drums-record.md, weak vs full for drums/8's last step); score the fine-tune "
        "alone too."
    )


def _init_from_weights(model: keras.Model, config: DrumTrainConfig, feature_config) -> list:
    """The weights of `config.init_from`, checked against `model` and the data's features."""
    keras_path, _ = model_files(config.init_from)
    try:
        description = load_description(config.init_from)
    except (OSError, ValueError) as error:  # unreadable, not JSON, or not a drum model's
        raise ValueError(f"--init-from {config.init_from}: {error}") from None
    if FeatureConfig.from_dict(description["feature_config"]) != feature_config:
        raise ValueError(
            f"--init-from {config.init_from}: its features are not the data's "
            f"({description['feature_config']} vs {feature_config.to_dict()})"
        )
    if list(description["classes"]) != list(config.classes):
        raise ValueError(
            f"--init-from {config.init_from}: its classes {description['classes']} are not "
            f"this run's {list(config.classes)}"
        )
    weights = keras.saving.load_model(keras_path, compile=False).get_weights()
    own = model.get_weights()
    if [w.shape for w in weights] == [w.shape for w in own]:
        return weights
    start = description["train_config"]
    mismatch = (
        f"--init-from {config.init_from}: its network is not this run's (--per-instrument and "
        "--band-size must match; --filters, --lstm-units and --dense-units must match or, to "
        "grow it, be at least its "
        f"{','.join(map(str, start['filters']))}, {start['lstm_units']} and "
        f"{start['dense_units']})"
    )
    # Growth is for one network of all classes: per-instrument or banded weights (the start's
    # or this run's) are several networks' arrays, which grow_conv_lstm_weights refuses.
    wider = conv_lstm_config(config, feature_config, len(config.classes))
    narrower = dataclasses.replace(
        wider,
        filters=tuple(start["filters"]),
        lstm_units=start["lstm_units"],
        dense_units=start["dense_units"],
    )
    try:
        return grow_conv_lstm_weights(weights, narrower, wider, own)
    except ValueError as error:
        raise ValueError(f"{mismatch}: {error}") from None


def load_checkpoint(model: keras.Model, path: PathLike) -> None:
    """Loads a `.keras` checkpoint's weights and optimiser state into `model` (its optimiser
    is built first when it has not trained yet, so the state has variables to go to)."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(path)


def fit_resumably(
    model: keras.Model,
    out: Path,
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    *,
    epochs: int,
    steps_per_epoch: int,
    validation_steps: int | None,
    patience: int,
    backup_every: int | None,
    tensorboard: bool,
    reduce_lr_patience: int = 0,
    reduce_lr_factor: float = 0.5,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    first_callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    log: Callable[[str], None] = print,
) -> list[dict[str, float]]:
    """`model.fit` in the run folder `out`, resumable; returns the per-epoch history.

    Writes `history.csv` (appended across resumptions), `best.keras` (the best validation loss
    so far, also across resumptions), a backup every epoch or `backup_every` batches (an
    interrupted run resumes from it; the last one is kept), early stopping on the validation
    loss with `patience`, the learning rate times `reduce_lr_factor` after `reduce_lr_patience`
    epochs without a better validation loss (0: constant; at most four times), TensorBoard logs
    if asked, and `fit-complete.json` at the end: a finished run is not fitted again, unless
    `epochs` is more than it did, in which case it trains on from its last backup (or, in a run
    without one, from `best.keras`) if early stopping had not ended it. `first_callbacks` run
    before the loggers (so they see what those add to the logs), `callbacks` after the
    recipe's own.
    """
    start = time.perf_counter()
    # Before a checkpoint loads; a MirroredVariable has no float().
    first_learning_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    history_path = out / _HISTORY
    previous = _read_history(history_path)
    losses = [row["val_loss"] for row in previous if "val_loss" in row]
    initial_epoch = 0
    fit = not (out / _FIT_DONE).is_file()
    if not fit and epochs > len(previous):
        waited = len(losses) - 1 - int(np.argmin(losses)) if losses else 0
        if waited >= patience:
            log(
                f"{out}: early stopping ended this run ({waited} epochs without a better "
                f"val_loss, patience {patience}); raise --patience to train it on"
            )
        else:
            fit = True
            log(f"Extending {out} from {len(previous)} to {epochs} epochs")
            # Unfinished again: interrupted, the extension resumes like any run.
            (out / _FIT_DONE).unlink()
            if not (out / _BACKUP).is_dir():
                # A run saved before backups were kept: on from its best checkpoint (weights
                # and optimiser state), numbering epochs on from its history.
                load_checkpoint(model, out / _BEST)
                initial_epoch = len(previous)
                log(f"(no backup of its last epoch: from {out / _BEST})")
    if fit:
        checkpoint = keras.callbacks.ModelCheckpoint(
            out / _BEST, monitor="val_loss", save_best_only=True
        )
        if losses:
            checkpoint.best = min(losses)
            log(f"Resuming {out}: {len(previous)} epochs done, best val_loss {min(losses):.4f}")
        recipe_callbacks = [
            *first_callbacks,
            keras.callbacks.CSVLogger(history_path, append=True),
            checkpoint,
            _ResumedEarlyStopping(losses, monitor="val_loss", patience=patience),
        ]
        if reduce_lr_patience:
            # After the CSV logger: the learning rate it adds to the logs would be a column
            # that the history of a resumed run does not have.
            recipe_callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_loss",
                    factor=reduce_lr_factor,
                    patience=reduce_lr_patience,
                    min_lr=first_learning_rate * reduce_lr_factor**4,
                    verbose=1 if verbose else 0,
                )
            )
        # Last, so that everything an epoch writes (the learning rate too) is in its backup.
        recipe_callbacks.append(
            keras.callbacks.BackupAndRestore(
                out / _BACKUP,
                save_freq=backup_every or "epoch",
                double_checkpoint=True,
                delete_checkpoint=False,
            )
        )
        if tensorboard:
            recipe_callbacks.insert(0, keras.callbacks.TensorBoard(out / "logs"))
        model.fit(
            train_data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_data=validation_data,
            validation_steps=validation_steps,
            callbacks=[*recipe_callbacks, *callbacks],
            verbose=verbose,
            shuffle=False,  # the datasets shuffle themselves
        )
        with open(out / _FIT_DONE, "w", encoding="utf-8") as file:
            json.dump({"seconds": time.perf_counter() - start}, file)
    return _read_history(history_path)


def train(
    config: DrumTrainConfig,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Trains a drum model, tunes its decoding on the validation files, saves it.

    A rerun with the same config and output folder resumes an interrupted run (from the last
    backup) or, when training had finished, goes straight to tuning and saving. `epochs`,
    `patience`, `reduce_lr_*` and `strategy` may change on a rerun: stopping a long run (Ctrl-C,
    kill) and rerunning it with `epochs` at most the epochs it completed ends it there, with its
    best checkpoint; rerunning a finished run with more `epochs` trains it on from its last
    epoch (`fit_resumably`), then tunes and saves again.

    Args:
        config: the run.
        callbacks: more Keras callbacks, called after the recipe's (a resumed run's weights
            are restored by the time their `on_train_begin` runs).
        verbose: `model.fit`'s verbosity (progress bars).
        overwrite: start again in an output folder that holds a run.
        log: where progress messages go.
    """
    # A multi-worker strategy must exist before TensorFlow does anything else.
    strategy = make_strategy(config.strategy)
    chief = is_chief(strategy)
    train_manifest = load_manifest(config.data, config.train_set)
    validation_manifest = load_manifest(config.data, config.validation_set)
    feature_config = train_manifest.feature_config
    if validation_manifest.feature_config != feature_config:
        raise ValueError(
            f"{validation_manifest.path} and {train_manifest.path} have different features"
        )
    for manifest in (train_manifest, validation_manifest):
        _class_indices(manifest, config.classes)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"batch_size {config.batch_size} (the global batch) must be a multiple of the "
            f"{strategy.num_replicas_in_sync} replicas of --strategy {config.strategy}"
        )
    # Only the chief writes the run folder; other workers back up into folders of their own.
    own = (
        config if chief else dataclasses.replace(config, out=str(worker_dir(config.out, strategy)))
    )
    out = prepare_run_folder(
        own.out, own.to_dict(), DrumTrainConfig().to_dict(), _RESUMABLE_CHANGES, overwrite
    )
    done = len(_read_history(out / _HISTORY))  # epochs trained before this call
    if chief and (warning := averaging_across_supervisions(config)):
        log(warning)
    keras.utils.set_random_seed(config.seed)
    with precision(config.mixed_precision), strategy.scope():
        model = build_drum_model(config, feature_config)
        if config.init_from and not done:
            # Only for a run that has not trained an epoch: a resumed or finished one has its
            # own weights (from its backup or checkpoint).
            _start_from(model, config, feature_config)
        if config.supervision == "counts":
            loss, metrics = LocoLoss(k_max=config.k_max), [count_error]
        else:
            loss, metrics = FrameCrossEntropy(config.sequence_length), []
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=loss,
            metrics=metrics,
            jit_compile=False,  # measured slower on CPU; the LoCo loss compiles its own loops
        )
    # A resumed run draws new windows, shuffles and colourings: restarted with the run's own
    # seed, the training stream would replay its first epochs.
    data_config = dataclasses.replace(config, seed=config.seed + 1000 * done) if done else config
    train_data, validation_data = datasets(data_config, train_manifest, validation_manifest)
    validation_steps = config.validation_steps
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Each worker reads its own shard files; every worker runs the same number of
        # validation batches (a set that does not divide evenly repeats a few windows).
        if len(train_manifest.files) < num_workers():
            raise ValueError(
                f"{train_manifest.path}: {len(train_manifest.files)} shard file(s) for "
                f"{num_workers()} workers; prepare it with fewer --files-per-shard"
            )
        train_data = shard_by(train_data, "FILE")
        batches = math.ceil(validation_manifest.totals["num_examples"] / config.batch_size)
        validation_steps = validation_steps or batches
        validation_data = shard_by(validation_data.repeat(), "DATA")

    history = fit_resumably(
        model,
        out,
        train_data,
        validation_data,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        validation_steps=validation_steps,
        patience=config.patience,
        backup_every=config.backup_every,
        tensorboard=config.tensorboard,
        reduce_lr_patience=config.reduce_lr_patience,
        reduce_lr_factor=config.reduce_lr_factor,
        callbacks=callbacks,
        verbose=verbose,
        log=log,
    )
    if not chief:  # the chief tunes, evaluates and saves; this worker's copy is not needed
        shutil.rmtree(out, ignore_errors=True)
        return TrainResult(out, {}, None, [], history)
    if (out / _BEST).is_file():
        load_checkpoint(model, out / _BEST)
    if config.average_weight:
        log(f"Averaging the weights with {config.init_from}'s (weight {config.average_weight})")
        _average_with_start(model, config, feature_config)

    log("Tuning the decoding on the validation files ...")
    files = manifest_files(validation_manifest, config.classes)
    neutral = [DecodingParameters()] * len(config.classes)
    transcriber = DrumTranscriber(model, feature_config, config.classes, neutral, task=config.task)
    probabilities = [transcriber.probabilities(file.features) for file in files]
    references = [file.references for file in files]
    groups = decoding_groups(len(config.classes), config.decoding_band_size)
    tunings = tune_decoding(probabilities, references, feature_config, groups=groups)
    transcriber.decoding = tuple(t.parameters for t in tunings)
    estimates = [transcriber.decode(p) for p in probabilities]
    validation = evaluate_onsets(
        references, estimates, config.classes, file_names=[f.name for f in files]
    )
    losses = [row["val_loss"] for row in history if "val_loss" in row]
    description = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_VERSION,
        "task": config.task,
        "classes": list(config.classes),
        "supervision": config.supervision,
        "train_config": config.to_dict(),
        "feature_config": feature_config.to_dict(),
        "model_config": dataclasses.asdict(
            conv_lstm_config(config, feature_config, max(b - a for a, b in class_bands(config)))
        ),
        **_decoding_description(config.classes, tunings),
        "validation": validation.to_dict(),
        "training": {
            "epochs": len(history),
            "best_epoch": int(np.argmin(losses)) + 1 if losses else None,
            "best_val_loss": float(min(losses)) if losses else None,
            "data": {
                "train": train_manifest.path,
                "validation": validation_manifest.path,
            },
        },
    }
    model.save(out / MODEL_FILE)
    with open(out / MODEL_JSON, "w", encoding="utf-8") as file:
        json.dump(description, file, indent=2)
    transcriber.description = json.loads(json.dumps(description))  # as `load` reads it
    return TrainResult(out, description, validation, tunings, history, transcriber)


def _decoding_description(classes: Sequence, tunings: Sequence[Tuning]) -> dict[str, Any]:
    """model.json's "decoding" (what `DrumTranscriber.load` reads) and "tuning" (how well it
    did on the files it was tuned on), per class."""
    pairs = [(str(c), t) for c, t in zip(classes, tunings, strict=True)]
    return {
        "decoding": {c: t.parameters.to_dict() for c, t in pairs},
        "tuning": {
            c: {
                "f1": t.f1,
                "precision": t.precision,
                "recall": t.recall,
                "median_delay_seconds": t.median_error_seconds,
                "window": t.window,
            }
            for c, t in pairs
        },
    }


def tuning_table(tunings: Sequence[Tuning], classes: Sequence[str]) -> str:
    """The tuned decoding per class, as text."""
    lines = [
        f"{'class':<5} {'threshold':>9} {'min dist':>8} {'delay ms':>9} {'F1 @50ms':>9}",
    ]
    for name, t in zip(classes, tunings, strict=True):
        lines.append(
            f"{name:<5} {t.parameters.threshold:9.2f} {t.parameters.min_distance:8d} "
            f"{1000 * t.median_error_seconds:+9.2f} {100 * t.f1:9.1f}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Re-tuning a trained model's decoding on other annotated files.


@dataclasses.dataclass
class Retuning:
    """What `retune` chose, against the decoding the model had, on the same tuning files.

    Attributes:
        classes: the model's classes.
        groups: class indices that share one decoding (each class alone for the drums).
        before: per class, the model's decoding.
        after: per class, the new tuning (`events.Tuning`; a group's classes share one).
        before_f1: per group, micro F1 at `window` of the old decoding on the tuning files.
        references: per group, reference events in the tuning files.
        files: tuning files.
        window: the tolerance tuned for, seconds.
    """

    classes: tuple
    groups: list[list[int]]
    before: list[DecodingParameters]
    after: list[Tuning]
    before_f1: list[float]
    references: list[int]
    files: int
    window: float

    def group_names(self) -> list[str]:
        """A name per group: its class ("KD"), or its first and last class ("21-30")."""
        names = [[str(self.classes[c]) for c in group] for group in self.groups]
        return [n[0] if len(n) == 1 else f"{n[0]}-{n[-1]}" for n in names]

    def table(self) -> str:
        """Old and new decoding per class (per band), with F1 on the tuning files."""
        header = (
            f"{'class':<9} {'events':>6}  {'threshold':>9} {'min dist':>8} {'offset ms':>9} "
            f"{'F1':>6}  ->  {'threshold':>9} {'min dist':>8} {'offset ms':>9} {'F1':>6}"
        )
        lines = [header]
        rows = zip(self.group_names(), self.groups, self.before_f1, self.references, strict=True)
        for name, group, f1, count in rows:
            old, new = self.before[group[0]], self.after[group[0]]
            lines.append(
                f"{name:<9} {count:6d}  {old.threshold:9.2f} {old.min_distance:8d} "
                f"{1000 * old.offset_seconds:+9.1f} {100 * f1:6.1f}  ->  "
                f"{new.parameters.threshold:9.2f} {new.parameters.min_distance:8d} "
                f"{1000 * new.parameters.offset_seconds:+9.1f} {100 * new.f1:6.1f}"
            )
        return "\n".join(lines)


def _tuning_files(results: Sequence[SetTranscription]) -> tuple[list, list]:
    """Every tuning file's p(t) and references, across the sets of `results`."""
    probabilities = [p for result in results for p in result.probabilities]
    references = [r for result in results for r in result.references]
    return probabilities, references


def retune(
    transcriber: DrumTranscriber,
    results: Sequence[SetTranscription],
    band_size: int = 0,
    window: float = 0.05,
) -> Retuning:
    """Tunes a model's decoding (threshold, spacing, offset per class) on annotated files.

    The network is unchanged; only how its p(t) becomes hits is chosen again, as training
    chose it on its validation files (`events.tune_decoding`), for files that sound unlike those:
    another kit, room or recording chain. `transcriber.decoding` is left as it is.

    Args:
        transcriber: the model.
        results: its transcriptions of the tuning files, with their p(t) (`transcribe_set`,
            `transcribe_folder`).
        band_size: classes per shared decoding (the model's `decoding_band_size`; 0: each
            class alone).
        window: the matching tolerance to tune for, seconds.

    Raises:
        ValueError: no files, or a result without its probabilities.
    """
    if any(result.probabilities is None for result in results):
        raise ValueError("retune needs the transcriptions' probabilities")
    probabilities, references = _tuning_files(results)
    if not probabilities:
        raise ValueError("no files to tune the decoding on")
    classes = transcriber.classes
    groups = decoding_groups(len(classes), band_size) or [[c] for c in range(len(classes))]
    tunings = tune_decoding(
        probabilities, references, transcriber.feature_config, window=window, groups=groups
    )
    estimates = [
        decode_events(p, transcriber.feature_config, transcriber.decoding) for p in probabilities
    ]
    evaluation = evaluate_onsets(references, estimates, classes, windows=(window,))
    before_f1, counts = [], []
    for group in groups:
        scores = [evaluation[(window, classes[c])] for c in group]
        matched, reference, estimate = (
            sum(getattr(score, field) for score in scores)
            for field in ("matched", "reference", "estimate")
        )
        before_f1.append(precision_recall_f1(matched, reference, estimate)[2])
        counts.append(reference)
    return Retuning(
        classes=classes,
        groups=groups,
        before=list(transcriber.decoding),
        after=tunings,
        before_f1=before_f1,
        references=counts,
        files=len(probabilities),
        window=window,
    )


def plot_retuning(
    transcriber: DrumTranscriber,
    results: Sequence[SetTranscription],
    retuning: Retuning,
    out: PathLike,
) -> None:
    """F1 on the tuning files against the threshold, per class (per band), with the old and
    the new decoding's spacing and offset; the two thresholds marked (`loco tune --plot`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probabilities, references = _tuning_files(results)
    thresholds = np.asarray(DEFAULT_THRESHOLDS)
    names = retuning.group_names()
    columns = min(5, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(3.2 * columns + 0.6, 3.2 * rows), squeeze=False
    )
    axes = axes.ravel()
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    panels = zip(axes[: len(names)], names, retuning.groups, retuning.references, strict=True)
    for ax, name, group, hits in panels:
        pooled = [p[:, c] for p in probabilities for c in group]
        pooled_refs = [r[c] for r in references for c in group]
        old, new = retuning.before[group[0]], retuning.after[group[0]].parameters
        for label, parameters, style in (("before", old, "--"), ("after", new, "-")):
            curve = threshold_curve(
                pooled, pooled_refs, transcriber.feature_config, parameters, thresholds,
                retuning.window,
            )  # fmt: skip
            line = ax.plot(thresholds, 100 * curve, style, label=label)[0]
            ax.axvline(parameters.threshold, color=line.get_color(), lw=0.8, ls=":")
        ax.set_title(f"{name} ({hits} hits)", fontsize=9)
        ax.set_xlabel("threshold")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    for ax in axes[::columns]:
        ax.set_ylabel(f"F1 @{1000 * retuning.window:.0f} ms, tuning files (%)")
    axes[len(names) - 1].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def check_retuned_output(model_path: PathLike, out: PathLike) -> str:
    """Raises ValueError unless `out` may receive a re-tuned copy of the model (it is not the
    model's own folder, and is new, empty or an earlier re-tuned copy); returns the model's
    `.keras` path."""
    keras_path, _ = model_files(model_path)
    out = Path(out)
    if out.resolve() in (Path(keras_path).resolve().parent, Path(model_path).resolve()):
        raise ValueError(f"{out} is the model's own folder: choose another output folder")
    if out.exists() and (not out.is_dir() or set(p.name for p in out.iterdir()) - _RETUNED_FILES):
        raise ValueError(
            f"{out} exists and is not a re-tuned model folder: choose a new or empty folder"
        )
    return keras_path


def save_retuned(
    model_path: PathLike, out: PathLike, retuning: Retuning, tuned_on: dict[str, Any]
) -> Path:
    """Writes `out/model.keras` (a copy) and `out/model.json` with `retuning`'s decoding.

    The description keeps everything else, and records under "retuned" where the decoding came
    from (`tuned_on`), the decoding it replaced and its F1 on the tuning files. The folder is
    written beside `out` and renamed into place, so `out` is never half written; an existing
    `out` from an earlier run is replaced.

    Raises:
        ValueError: `out` is the model's own folder, or holds something other than a model.
    """
    keras_path = check_retuned_output(model_path, out)
    out = Path(out)
    description = load_description(model_path)
    previous = description.get("decoding")
    description.update(_decoding_description(retuning.classes, retuning.after))
    description["retuned"] = {
        "from": os.fspath(model_path),
        **tuned_on,
        "files": retuning.files,
        "previous_decoding": previous,
        "previous_f1": dict(zip(retuning.group_names(), retuning.before_f1, strict=True)),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        shutil.copyfile(keras_path, temporary / MODEL_FILE)
        with open(temporary / MODEL_JSON, "w", encoding="utf-8") as file:
            json.dump(description, file, indent=2)
        if out.exists():
            shutil.rmtree(out)
        os.replace(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out


# ---------------------------------------------------------------------------------------------
# Evaluation.


@dataclasses.dataclass
class FileFailure:
    """A file that could not be used, and why (the message names it)."""

    path: str
    message: str


def evaluation_sets(
    data: PathLike, sets: Sequence[str] = (), prefix: str = "drums-test-"
) -> list[tuple[str, str]]:
    """(name, manifest path) of the sets to evaluate in `data`: `sets`, else every
    `PREFIX*` set (`drums-test-*`, `piano-test-*`); `data` may also be one manifest."""
    data = os.fspath(data)
    if data.endswith(".manifest.json"):
        return [(Path(data).name[: -len(".manifest.json")], data)]
    if sets:
        return [(name, manifest_path(data, name)) for name in sets]
    found = sorted(glob.glob(os.path.join(glob.escape(data), f"{prefix}*.manifest.json")))
    return [(Path(path).name[: -len(".manifest.json")], path) for path in found]


@dataclasses.dataclass
class SetTranscription:
    """Reference and detected event times of several files, ready to score.

    Attributes:
        names: the files' names.
        references, estimates: per file, per class, times in seconds.
        probabilities: per file, p(t) `[frames, classes]` (what `retune` tunes on).
    """

    names: list[str]
    references: list[list[np.ndarray]]
    estimates: list[list[np.ndarray]]
    probabilities: list[np.ndarray] | None = None

    def evaluate(self, classes: Sequence) -> Evaluation:
        """Onset scores per class and overall (`metrics.evaluate_onsets`)."""
        return evaluate_onsets(self.references, self.estimates, classes, file_names=self.names)


def transcribe_set(
    transcriber: DrumTranscriber,
    manifest: Manifest,
    decoding_offsets: bool = True,
    known_counts: bool = False,
) -> SetTranscription:
    """Runs a model on a prepared set's whole files (`manifest_files`).

    Args:
        transcriber: the model.
        manifest: the set.
        decoding_offsets: apply the tuned offsets; False scores the raw frame times (the
            network's own timing, for the §4.5 late-bias ablation).
        known_counts: decode each file with its true number of hits per class
            (`events.decode_with_counts`, as `loco annotate` does) instead of the thresholds.
    """
    if manifest.feature_config != transcriber.feature_config:
        raise ValueError(f"{manifest.path}: features differ from the model's front end")
    files = manifest_files(manifest, transcriber.classes)
    decoding = transcriber.decoding
    if not decoding_offsets:
        decoding = [dataclasses.replace(d, offset_seconds=0.0) for d in decoding]
    estimates, probabilities = [], []
    for file in files:
        p = transcriber.probabilities(file.features)
        probabilities.append(p)
        if known_counts:
            counts = [len(reference) for reference in file.references]
            estimates.append(decode_with_counts(p, counts, transcriber.feature_config, decoding))
        else:
            estimates.append(decode_events(p, transcriber.feature_config, decoding))
    return SetTranscription(
        [file.name for file in files],
        [file.references for file in files],
        estimates,
        probabilities,
    )


def evaluate_set(
    transcriber: DrumTranscriber,
    manifest: Manifest,
    decoding_offsets: bool = True,
    known_counts: bool = False,
) -> Evaluation:
    """Scores a model on a prepared set's whole files (see `transcribe_set`)."""
    result = transcribe_set(transcriber, manifest, decoding_offsets, known_counts)
    return result.evaluate(transcriber.classes)


def read_task_annotations(path: PathLike, task: str) -> list:
    """`readers.read_annotations` with the format detected from the file, except that a MIDI
    file is read as notes (pitches) for the piano and as drum hits for the drums."""
    midi = Path(path).suffix.lower() in (".mid", ".midi")
    return read_annotations(path, "midi-notes" if midi and task == "piano" else None)


def transcribe_folder(
    transcriber: DrumTranscriber,
    pairs: Sequence[tuple[PathLike, PathLike]],
    log: Callable[[str], None] = print,
) -> tuple[SetTranscription | None, list[FileFailure]]:
    """Runs a model on audio files with annotation files, each read in any supported format.

    A file that cannot be used is reported (`log`, and in the failures) and left out.
    """
    references, estimates, names, failures, probabilities = [], [], [], [], []
    annotated = []
    for audio_path, annotation_path in pairs:
        try:
            annotated.append((audio_path, read_task_annotations(annotation_path, transcriber.task)))
        except (AnnotationError, OSError) as error:
            failures.append(FileFailure(os.fspath(audio_path), str(error)))
            log(f"error: {error}")
    transcriptions = transcriber.transcribe_many(audio_path for audio_path, _ in annotated)
    for (audio_path, events), transcription in zip(annotated, transcriptions, strict=True):
        if isinstance(transcription, AudioError):
            failures.append(FileFailure(os.fspath(audio_path), str(transcription)))
            log(f"error: {transcription}")
            continue
        references.append(
            [
                np.array([e.time for e in events if e.label == name], dtype=np.float64)
                for name in transcriber.classes
            ]
        )
        estimates.append(transcription.times)
        probabilities.append(transcription.probabilities)
        names.append(os.fspath(audio_path))
    if not names:
        return None, failures
    return SetTranscription(names, references, estimates, probabilities), failures


# ---------------------------------------------------------------------------------------------
# Output files.


def write_csv(
    path: PathLike,
    times: Sequence[np.ndarray],
    classes: Sequence[str],
    header: tuple[str, str] = ("time", "class"),
) -> None:
    """`time,class` rows (or `header`, e.g. `onset,pitch`) sorted by time (then class order),
    times in seconds."""
    rows = sorted((float(t), c, name) for c, name in enumerate(classes) for t in times[c])
    temporary = f"{os.fspath(path)}.tmp-{os.getpid()}"
    with open(temporary, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for t, _, name in rows:
            writer.writerow([f"{t:.6f}", name])
    os.replace(temporary, path)  # a reader never sees half a file


def write_midi(
    path: PathLike,
    times: Sequence[np.ndarray],
    classes: Sequence[str],
    notes: dict[str, int] | None = GM_DRUM_NOTES,
    duration: float = 0.05,
    velocity: int = 100,
) -> None:
    """A General MIDI drum track (channel 10) with one note per hit (KD 36, SD 38, HH 42);
    with `notes=None`, a piano track (program 0) whose classes are MIDI pitches.

    A note lasts `duration` seconds, or until the next hit of the same note. Hits before 0 s
    (a negative offset on a hit at the very start) are placed at 0 s.
    """
    import pretty_midi

    # 9600 ticks per beat at 120 BPM: times within 0.03 ms (the default 220 rounds to 2.3 ms).
    midi = pretty_midi.PrettyMIDI(resolution=9600, initial_tempo=120.0)
    if notes is None:
        notes = {name: int(name) for name in classes}
        drums = pretty_midi.Instrument(program=0, is_drum=False, name="piano")
    else:
        drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    for c, name in enumerate(classes):
        starts = np.maximum(np.sort(np.asarray(times[c], dtype=np.float64)), 0.0)
        for i, start in enumerate(starts):
            stop = start + duration
            if i + 1 < len(starts):
                stop = min(stop, starts[i + 1])
            if stop > start:
                drums.notes.append(pretty_midi.Note(velocity, notes[name], start, stop))
    drums.notes.sort(key=lambda note: (note.start, note.pitch))
    midi.instruments.append(drums)
    temporary = f"{os.fspath(path)}.tmp-{os.getpid()}"
    midi.write(temporary)
    os.replace(temporary, path)


def expand_audio_paths(paths: Sequence[PathLike]) -> tuple[list[str], list[str]]:
    """The audio files to transcribe: files as given, and for a folder the audio files under
    it (`readers.AUDIO_EXTENSIONS`, searched recursively, sorted, hidden files skipped).

    Returns:
        (files, folders without audio files).
    """
    files, empty = [], []
    suffixes = set(AUDIO_EXTENSIONS)
    for path in paths:
        if not os.path.isdir(path):
            files.append(os.fspath(path))
            continue
        found = sorted(
            os.fspath(child)
            for child in Path(path).rglob("*")
            if child.suffix.lower() in suffixes
            and child.is_file()
            and not any(part.startswith(".") for part in child.relative_to(path).parts)
        )
        files.extend(found)
        if not found:
            empty.append(os.fspath(path))
    return files, empty


PREDICT_RECORD = "loco-predict.json"
ANNOTATE_RECORD = "loco-annotate.json"


def model_fingerprint(path: PathLike, **options: Any) -> str:
    """sha256 of a model's `model.keras` and `model.json` and of `options` (e.g. bfloat16):
    what decides the output of `loco predict` and `loco annotate`."""
    digest = hashlib.sha256()
    for file in model_files(path):
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update(json.dumps(options, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


class OutputRecord:
    """What `loco predict` (or `loco annotate`) wrote into an output folder
    (`loco-predict.json`, `loco-annotate.json`), so that a rerun skips the files it has done
    already, with the same model and options, from audio that has not changed since (same
    path, size and modification time) and whose outputs are still there. The record is
    rewritten atomically after each file, so a run killed mid-batch resumes at the file it
    was on.

    Args:
        out: the output folder.
        fingerprint: `model_fingerprint` of the model and options of this run.
        name: the record's file name in `out`.
    """

    def __init__(self, out: PathLike, fingerprint: str, name: str = PREDICT_RECORD):
        self.path = Path(out) / name
        self.fingerprint = fingerprint
        self.files: dict[str, dict[str, Any]] = {}
        try:
            with open(self.path, encoding="utf-8") as file:
                self.files = dict(json.load(file)["files"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no record (or an unreadable one): every file is transcribed

    def _entry(self, audio: PathLike, details: Mapping[str, Any] | None) -> dict[str, Any]:
        status = os.stat(audio)
        return {
            "audio": os.path.abspath(audio),
            "size": status.st_size,
            "mtime_ns": status.st_mtime_ns,
            "model": self.fingerprint,
            **(details or {}),
        }

    def done(
        self,
        audio: PathLike,
        stem: str,
        outputs: Sequence[PathLike],
        details: Mapping[str, Any] | None = None,
    ) -> bool:
        """Whether `audio` was done into `outputs` by this model, unchanged since, with the
        same `details` (JSON values that also decide the output, e.g. `loco annotate`'s
        counts)."""
        try:
            entry = self._entry(audio, details)
        except OSError:
            return False
        return self.files.get(stem) == entry and all(os.path.isfile(o) for o in outputs)

    def add(self, audio: PathLike, stem: str, details: Mapping[str, Any] | None = None) -> None:
        """Records that `audio` was done (under the name `stem`, with `details`)."""
        self.files[stem] = self._entry(audio, details)
        temporary = f"{self.path}.tmp-{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump({"files": self.files}, file, indent=1)
        os.replace(temporary, self.path)


def output_stems(paths: Sequence[PathLike]) -> list[str]:
    """A distinct output name per input file: its stem, with `-2`, `-3` ... for repeats."""
    stems, used = [], set()
    for path in paths:
        stem = Path(path).stem or "audio"
        name, n = stem, 1
        while name in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name)
        stems.append(name)
    return stems


# ---------------------------------------------------------------------------------------------
# Plot.


def plot_spectrogram(ax, transcription: Transcription, feature_config: FeatureConfig) -> None:
    """The log-mel channel of the features `transcription` kept, on its time axis, in `ax`."""
    features = transcription.features
    if features is not None and len(features):
        first = transcription.first_frame
        t0 = frame_times(first + 1, feature_config)[first]
        extent = [t0, t0 + len(features) / feature_config.frame_rate, 0, features.shape[1]]
        ax.imshow(features[:, :, 0].T, origin="lower", aspect="auto", extent=extent, cmap="magma")
    ax.set_ylabel("mel band")
    ax.set_title(f"{Path(transcription.path).name}: log-mel spectrogram")


def plot_transcription(
    transcription: Transcription,
    classes: Sequence[str],
    feature_config: FeatureConfig,
    decoding: Sequence[DecodingParameters],
    out: PathLike,
    references: Sequence[np.ndarray] | None = None,
    span: tuple[float, float] | None = None,
) -> None:
    """The paper's Fig. 1 for one file: spectrogram, p(t) per class, true and predicted hits.

    Args:
        transcription: with `features` kept for `span`.
        classes, feature_config, decoding: the model's.
        out: the image file (PNG, or any format matplotlib writes).
        references: per class, true hit times (dotted lines), when known.
        span: (start, stop) seconds shown; default the whole file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = transcription.probabilities
    times = frame_times(len(p), feature_config)
    start, stop = span if span is not None else (0.0, float(times[-1]) if len(times) else 0.0)
    shown = (times >= start) & (times <= stop)
    fig, axes = plt.subplots(
        1 + len(classes),
        1,
        figsize=(13, 2.2 + 1.6 * len(classes)),
        sharex=True,
        gridspec_kw={"height_ratios": [2.2] + [1] * len(classes)},
    )
    plot_spectrogram(axes[0], transcription, feature_config)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, (name, ax) in enumerate(zip(classes, axes[1:], strict=True)):
        colour = colours[c % len(colours)]
        ax.plot(times[shown], p[shown, c], color=colour, lw=1, label="p(t)")
        ax.axhline(decoding[c].threshold, color="grey", lw=0.8, ls="--", label="threshold")
        if references is not None:
            for i, t in enumerate(r for r in references[c] if start <= r <= stop):
                ax.axvline(t, color="black", lw=0.8, ls=":", label="true hit" if i == 0 else None)
        hits = transcription.times[c]
        hits = hits[(hits >= start) & (hits <= stop)]
        ax.plot(hits, np.full(len(hits), 1.05), "v", color=colour, ms=5, label="predicted hit")
        ax.set_ylim(0, 1.15)
        ax.set_ylabel(f"{name}\np(t)")
        ax.legend(loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=7, frameon=False)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(start, stop)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Experiments: weak vs full supervision, fixed vs variable segment lengths (§4.5).


def _test_evaluations(
    transcriber: DrumTranscriber, data: PathLike, decoding_offsets: bool = True
) -> dict[str, Evaluation]:
    return {
        name: evaluate_set(transcriber, read_manifest(path), decoding_offsets)
        for name, path in evaluation_sets(data)
    }


def compare_supervision(
    base: DrumTrainConfig, out: PathLike, log: Callable[[str], None] = print, **train_kwargs
) -> str:
    """Trains the LoCo model (counts) and its fully supervised twin (frames) with the same
    settings and data, scores both on every test set, and returns a table."""
    rows = []
    for supervision in SUPERVISIONS:
        config = dataclasses.replace(
            base, supervision=supervision, out=os.path.join(os.fspath(out), supervision)
        )
        log(f"=== {supervision} supervision -> {config.out}")
        result = train(config, log=log, **train_kwargs)
        transcriber = result.transcriber or DrumTranscriber.load(config.out)
        for name, evaluation in _test_evaluations(transcriber, base.data).items():
            rows.append((supervision, name, result, evaluation))
    return _experiment_table(rows, base.classes)


def run_length_ablation(
    base: DrumTrainConfig,
    fixed_train_set: str,
    out: PathLike,
    log: Callable[[str], None] = print,
    **train_kwargs,
) -> str:
    """§4.5: the same LoCo model trained on variable-length segments (`base.train_set`) and on
    fixed-length ones (`fixed_train_set`, e.g. a set prepared with `--min-crop 0`); both are
    validated and tested on the same sets. Returns a table with, per arm, the network's median
    delay (tuned on validation) and the test timing error without and with the offset.

    The variable-length arm is the default LoCo run and goes to `out/counts`, the folder
    `compare_supervision` uses for it: with the same `out`, the second of the two experiments
    finds that run finished and reuses it."""
    rows = []
    arms = (("variable", base.train_set, "counts"), ("fixed", fixed_train_set, "counts-fixed"))
    for arm, train_set, folder in arms:
        config = dataclasses.replace(
            base,
            supervision="counts",
            train_set=train_set,
            out=os.path.join(os.fspath(out), folder),
        )
        log(f"=== {arm}-length segments ({train_set}) -> {config.out}")
        result = train(config, log=log, **train_kwargs)
        transcriber = result.transcriber or DrumTranscriber.load(config.out)
        raw = _test_evaluations(transcriber, base.data, decoding_offsets=False)
        corrected = _test_evaluations(transcriber, base.data)
        for name in corrected:
            rows.append((arm, name, result, corrected[name], raw[name]))
    lines = [
        "Segment-length ablation (§4.5): timing error = estimate - reference, ms, over hits "
        "matched within 50 ms, all classes",
        f"{'arm':<9} {'test set':<22} {'val delay':>9} {'F1@50':>6} {'F1@20':>6} "
        f"{'raw mean':>9} {'raw std':>8} {'corr mean':>9} {'corr std':>8}",
    ]
    for arm, name, result, corrected, raw in rows:
        delays = [t.median_error_seconds for t in result.tunings]
        s50, s20, r50 = corrected[(0.05, ALL)], corrected[(0.02, ALL)], raw[(0.05, ALL)]
        lines.append(
            f"{arm:<9} {name:<22} {1000 * float(np.mean(delays)):+9.2f} "
            f"{100 * s50.f1:6.1f} {100 * s20.f1:6.1f} {1000 * r50.timing_mean:+9.2f} "
            f"{1000 * r50.timing_std:8.2f} {1000 * s50.timing_mean:+9.2f} "
            f"{1000 * s50.timing_std:8.2f}"
        )
    lines.append(
        "val delay: mean over classes of the median delay tuned on validation; raw: frame "
        "times without the offset; corr: with it."
    )
    return "\n".join(lines)


def _experiment_table(rows, classes: Sequence[str]) -> str:
    names = [*classes, ALL]
    header = f"{'model':<8} {'test set':<22} " + " ".join(
        f"{f'{n} F1@{w}':>11}" for w in (50, 20) for n in names
    )
    lines = ["F1 (%, micro) on whole test files; timing std in ms (all classes, 50 ms)", header]
    for label, name, _, evaluation in rows:
        cells = " ".join(
            f"{100 * evaluation[(w / 1000, n)].f1:11.1f}" for w in (50, 20) for n in names
        )
        std = 1000 * evaluation[(0.05, ALL)].timing_std
        lines.append(f"{label:<8} {name:<22} {cells}   std {std:.2f}")
    return "\n".join(lines)
