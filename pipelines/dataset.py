"""tf.data input from the segment shards of `pipelines.tfrecords`.

`training_dataset`: shard files -> interleave(TFRecordDataset) -> parse -> shuffle -> augment
-> pad -> batch -> prefetch, yielding `({"features", "lengths"}, counts)`. Its parser reads
exactly three keys, `features`, `num_frames` and `counts` (`TRAINING_SPEC`): the evaluation-only
`event_frames` are never parsed, so no timing information can reach a model trained on it.

`evaluation_dataset`: the same records in file order, one flat dict per batch that also has the
event frames (padded with -1), the source id and the start frame, for scoring detections.

Fixed padding: every training batch is padded to `pad_to_frames` (400) frames, with zeros,
rather than bucketed by length. An XLA-compiled step (the loss's `tf.scan` included) compiles
once per input shape; one shape means one compilation, and the variable lengths that matter
(§4.5) are carried by `lengths`, with which the model zeroes the event probabilities of padded
frames.

Extract stacking (§7.1, "playing two samples simultaneously") is done here, on features:
powers add, so channel 0 mixes as `10 * log10(10 ** (a / 10) + 10 ** (b / 10))` (less one
`amin`, so that mixing with silence changes nothing), channel 1 is recomputed as the causal
difference of the mix, counts add and the length is the longer of the two. Augmentations that
move events in time (sample-rate variation, time stretching) are done on audio before feature
extraction, where event times are known (`pipelines.audio`).

Spectral colouring (`Augment.gain_db`, `eq_db`, `shift_bands`; `colour_spectrum`) is done here
too, and never moves an event: each segment gets a random level, a random smooth equaliser
(`EQ_POINTS` gains in dB spread evenly over the mel bands, linearly interpolated between them)
and a random shift of whole mel bands (a crude retuning: above ~1 kHz the mel scale is nearly
logarithmic, so a shift of b bands scales frequencies by about 2 ** (b / 15) here). They imitate
what separates one drum kit from another -- tuning, brightness, level -- and exist because a
network trained on three kits transcribes a fourth badly (the drum model card). On channel 0
the colouring is exact for a filter that is constant within each band: powers are multiplied,
silent bins (at the `amin` floor) stay silent, and nothing goes below the floor; channel 1 is
recomputed as the causal difference, with the frame before the segment (recovered as
`x[0] - d[0]`) coloured the same way.

Reverberation (`Augment.reverb_seconds`; `reverberate`) adds a room's late tail on features:
the statistical model of late reverberation (Polack's) in the power domain, where each mel band's
power gains an exponentially decaying echo of its past, `P'[t] = P[t] + w * sum_k d**k P[t - k]`
(k >= 1), with `d` the per-frame power decay of a reverberation time RT60 (60 dB in RT60
seconds) and `w` set so that the tail of a one-frame impulse carries `wet_db` of its energy. It
imitates the room sound of kits recorded with overhead and room microphones, which close-miked
and synthesised training kits lack. A tail only ever follows its sound, so no event moves; the
segment starts with no tail from before it (the frame before the segment is the tail's first
input). Channel 1 is recomputed as the causal difference, as for colouring.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Hashable, Sequence

import tensorflow as tf

from loco_tf.features import FeatureConfig
from loco_tf.pipelines.augment import Augment
from loco_tf.pipelines.tfrecords import (
    COUNTS,
    EVENT_FRAMES,
    EVENT_FRAMES_LENGTHS,
    FEATURES,
    NUM_FRAMES,
    SOURCE,
    START_FRAME,
    Manifest,
    read_manifest,
)

PathLike = str | os.PathLike

TRAINING_SPEC = {
    FEATURES: tf.io.FixedLenFeature([], tf.string),
    NUM_FRAMES: tf.io.FixedLenFeature([], tf.int64),
    COUNTS: tf.io.VarLenFeature(tf.int64),
}
EVALUATION_SPEC = {
    **TRAINING_SPEC,
    SOURCE: tf.io.FixedLenFeature([], tf.string),
    START_FRAME: tf.io.FixedLenFeature([], tf.int64),
    EVENT_FRAMES: tf.io.RaggedFeature(
        tf.int64,
        value_key=EVENT_FRAMES,
        partitions=[tf.io.RaggedFeature.RowLengths(EVENT_FRAMES_LENGTHS)],
    ),
}
_PARTNER_SHUFFLE_BUFFER = 256


def _resolve(
    source: PathLike | Manifest,
    classes: Sequence[Hashable] | None,
    feature_config: FeatureConfig | None,
) -> tuple[list[str], list[int] | None, FeatureConfig]:
    """Shard files, the count columns to keep, and the front end."""
    if not isinstance(source, Manifest) and not os.fspath(source).endswith(".manifest.json"):
        files = sorted(f for f in glob.glob(os.fspath(source)) if ".tmp-" not in f)
        if not files:
            raise FileNotFoundError(f"no TFRecord shards match {os.fspath(source)!r}")
        if classes is not None and not all(isinstance(c, int) for c in classes):
            raise ValueError("without a manifest, classes are column indices into `counts`")
        return files, None if classes is None else list(classes), feature_config or FeatureConfig()
    manifest = source if isinstance(source, Manifest) else read_manifest(source)
    if feature_config is not None and feature_config != manifest.feature_config:
        raise ValueError(
            f"{manifest.path}: the shards' features were computed with "
            f"{manifest.feature_config}, not {feature_config}"
        )
    if classes is None:
        classes = manifest.class_names
    missing = [c for c in classes if c not in manifest.class_names]
    if missing:
        raise ValueError(f"{manifest.path}: classes {missing} not in {manifest.class_names}")
    indices = [manifest.class_names.index(c) for c in classes]
    return manifest.files, indices, manifest.feature_config


def _records(files: list[str], shuffle: bool, seed: int | None) -> tf.data.Dataset:
    names = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        names = names.shuffle(len(files), seed=seed)

    def read(name):
        compression = tf.where(tf.strings.regex_full_match(name, r".*\.gz"), "GZIP", "")
        return tf.data.TFRecordDataset(name, compression_type=compression)

    # A shard holds whole files, so reading many shards at once mixes files before the shuffle.
    return names.interleave(
        read,
        cycle_length=min(len(files), 16) if shuffle else 1,
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE if shuffle else None,
    )


def _parse(serialized, spec, n_mels: int, class_indices: list[int] | None) -> dict:
    parsed = tf.io.parse_single_example(serialized, spec)
    length = tf.cast(parsed[NUM_FRAMES], tf.int32)
    features = tf.reshape(tf.io.decode_raw(parsed[FEATURES], tf.float32), [length, n_mels, 2])
    counts = tf.sparse.to_dense(parsed[COUNTS])
    if class_indices is not None:
        counts = tf.gather(counts, class_indices)
    example = {"features": features, "lengths": length, "counts": counts}
    if EVENT_FRAMES in parsed:
        event_frames = parsed[EVENT_FRAMES]
        if class_indices is not None:
            event_frames = tf.gather(event_frames, class_indices)
        example["event_frames"] = tf.cast(event_frames.to_tensor(default_value=-1), tf.int32)
        example["source"] = parsed[SOURCE]
        example["start_frame"] = parsed[START_FRAME]
    return example


def _floor_db(amin: float):
    """The dB value of the power floor `amin` (silence), as a float32 tensor."""
    return 10.0 * tf.math.log(tf.constant(amin, tf.float32)) / tf.math.log(10.0)


def _power_db(power, amin: float):
    """dB of a power, never below the floor `amin`."""
    return 10.0 * tf.math.log(tf.maximum(power, amin)) / tf.math.log(10.0)


def _mix_power_db(a, b, amin: float):
    """Log-mel dB of the sum of two powers; the silence floor `amin` is counted once."""
    return _power_db(tf.pow(10.0, a / 10.0) + tf.pow(10.0, b / 10.0) - amin, amin)


def stack_extracts(a: dict, b: dict, amin: float) -> dict:
    """Plays two examples at once (§7.1), on `{"features", "lengths", "counts"}` dicts.

    Channel 0 (dB) mixes powers, the shorter example being silence (the `amin` floor) past
    its end; channel 1 is the causal difference of the mix. At frame 0 the previous frame of
    each example is recovered from its own difference (`x[-1] = x[0] - d[0]`) and mixed too,
    so a segment cut from the middle of a file keeps its nonzero first difference.
    """
    length = tf.maximum(a["lengths"], b["lengths"])
    floor = _floor_db(amin)

    def log_mel(example):
        padding = [[0, length - example["lengths"]], [0, 0]]
        return tf.pad(example["features"][:, :, 0], padding, constant_values=floor)

    def previous(example):
        return example["features"][0, :, 0] - example["features"][0, :, 1]

    mixed = _mix_power_db(log_mel(a), log_mel(b), amin)
    mixed_previous = _mix_power_db(previous(a), previous(b), amin)
    difference = mixed - tf.concat([mixed_previous[tf.newaxis], mixed[:-1]], axis=0)
    return {
        "features": tf.stack([mixed, difference], axis=-1),
        "lengths": length,
        "counts": a["counts"] + b["counts"],
    }


def _log_mel_from_previous(features):
    """Channel 0 of `[T, n_mels, 2]` features with the frame before the segment prepended
    (recovered from the first difference as `x[0] - d[0]`): `[T + 1, n_mels]` dB."""
    previous = features[:1, :, 0] - features[:1, :, 1]
    return tf.concat([previous, features[:, :, 0]], axis=0)


def _features_from_previous(log_mel, lengths):
    """The inverse of `_log_mel_from_previous`: `[T, n_mels, 2]` features (dB and its causal
    difference) from `[T + 1, n_mels]` dB; frames from `lengths` on are zeros (padding)."""
    features = tf.stack([log_mel[1:], log_mel[1:] - log_mel[:-1]], axis=-1)
    real = tf.range(tf.shape(features)[0]) < lengths
    return tf.where(real[:, tf.newaxis, tf.newaxis], features, tf.zeros_like(features))


EQ_POINTS = 6
"""Equaliser gains of `Augment.eq_db`, spread evenly from the lowest to the highest mel band."""


def colour_spectrum(features, lengths, shift, gain_db, amin: float):
    """Colours one segment's features `[T, n_mels, 2]`: exact for a per-band filter.

    Args:
        features: log-mel dB (channel 0) and its causal difference (channel 1); frames from
            `lengths` on are padding and come back as zeros.
        lengths: int scalar, the real frames.
        shift: int scalar; band `b` of the result is band `clip(b - shift)` of the input.
        gain_db: float `[n_mels]`, the filter's power gain per (shifted) band, dB.
        amin: the front end's power floor; bins at it are silent and stay silent.

    Returns:
        The coloured features, same shape.
    """
    n_mels = tf.shape(features)[1]
    floor = _floor_db(amin)
    # The frame before the segment, from the first difference; then colour all frames alike.
    log_mel = _log_mel_from_previous(features)
    bands = tf.clip_by_value(tf.range(n_mels) - shift, 0, n_mels - 1)
    log_mel = tf.gather(log_mel, bands, axis=1)
    silent = log_mel <= floor + 1e-3
    log_mel = tf.where(silent, floor, tf.maximum(log_mel + gain_db, floor))
    return _features_from_previous(log_mel, lengths)


def random_colouring(augment: Augment, n_mels: int, seed):
    """Draws `(shift, gain_db [n_mels])` for `colour_spectrum` from a stateless seed `[2]`."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    shift = tf.random.stateless_uniform(
        [], seeds[0], -augment.shift_bands, augment.shift_bands + 1, dtype=tf.int32
    )
    level = tf.random.stateless_uniform([], seeds[1], -augment.gain_db, augment.gain_db)
    points = tf.random.stateless_uniform([EQ_POINTS], seeds[2], -augment.eq_db, augment.eq_db)
    # Linear interpolation of the equaliser points at every band.
    position = tf.linspace(0.0, EQ_POINTS - 1.0, n_mels)
    below = tf.minimum(tf.cast(tf.floor(position), tf.int32), EQ_POINTS - 2)
    fraction = position - tf.cast(below, tf.float32)
    curve = tf.gather(points, below) * (1.0 - fraction) + tf.gather(points, below + 1) * fraction
    return shift, level + curve


REVERB_WET_DB = (-20.0, 0.0)
"""Range of `Augment.reverb_seconds`'s tail level: the tail's share of a one-frame impulse's
energy, relative to the impulse (0 dB: the tail carries as much energy as the sound itself)."""


def reverb_parameters(rt60_seconds, wet_db, frame_rate: float):
    """`(decay, weight)` of `reverberate` for a reverberation time and tail level.

    The power falls 60 dB in `rt60_seconds`, so by `decay = 10 ** (-6 / (rt60 * frame_rate))`
    per frame (0 for an RT60 of 0: no tail); a one-frame impulse's tail then carries
    `weight * decay / (1 - decay)` of its energy, which `weight` sets to `10 ** (wet_db / 10)`.
    """
    rt60 = tf.cast(rt60_seconds, tf.float32)
    frames = rt60 * frame_rate
    decay = tf.where(frames > 0.0, tf.pow(10.0, -6.0 / tf.maximum(frames, 1e-6)), 0.0)
    ratio = tf.pow(10.0, tf.cast(wet_db, tf.float32) / 10.0)
    weight = tf.where(decay > 0.0, ratio * (1.0 - decay) / tf.maximum(decay, 1e-12), 0.0)
    return decay, weight


def reverberate(features, lengths, decay, weight, amin: float):
    """Adds a late-reverberation tail to one segment's features `[T, n_mels, 2]`.

    In each band, with `P` the power above the floor (`10 ** (dB / 10) - amin`) of the frame
    before the segment (recovered as `x[0] - d[0]`) and the segment's frames, the result is
    `P[t] + weight * sum_{k >= 1} decay ** k * P[t - k]` over those frames (a lower-triangular
    product), back in dB over the floor; channel 1 is the causal difference again. Frames from
    `lengths` on are padding: they feed no tail and come back as zeros.
    """
    floor = _floor_db(amin)
    log_mel = _log_mel_from_previous(features)
    steps = tf.shape(log_mel)[0]
    real = tf.range(steps) <= lengths  # the frame before, then `lengths` frames
    power = tf.where(real[:, tf.newaxis], tf.maximum(tf.pow(10.0, log_mel / 10.0) - amin, 0.0), 0.0)
    lag = tf.range(steps)[:, tf.newaxis] - tf.range(steps)[tf.newaxis, :]
    # decay ** lag below the diagonal (0 ** lag = 0 there: no tail), 0 on and above it.
    kernel = tf.where(lag >= 1, tf.pow(decay, tf.cast(tf.maximum(lag, 1), tf.float32)), 0.0)
    wet = power + weight * tf.linalg.matmul(kernel, power)
    return _features_from_previous(tf.maximum(_power_db(wet + amin, amin), floor), lengths)


def random_reverb(augment: Augment, frame_rate: float, seed):
    """Draws `(decay, weight)` for `reverberate` from a stateless seed `[2]`: RT60 uniform in
    [0, `augment.reverb_seconds`], tail level uniform in `REVERB_WET_DB`."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    rt60 = tf.random.stateless_uniform([], seeds[0], 0.0, augment.reverb_seconds)
    wet_db = tf.random.stateless_uniform([], seeds[1], *REVERB_WET_DB)
    return reverb_parameters(rt60, wet_db, frame_rate)


MASKS = 2
"""Frequency masks per segment with `Augment.mask_bands`."""


def mask_bands(features, lengths, starts, widths):
    """Masks bands of one segment's features `[T, n_mels, 2]`: in each mask, bands
    `starts[i]` to `starts[i] + widths[i] - 1`, every frame holds the band's mean level (dB)
    over the segment's real frames and the frame before it, and the causal difference is 0.

    This is SpecAugment's frequency masking (Park et al. 2019) on these features: a masked band
    tells nothing of when anything happens, so the network has to find each instrument in the
    other bands too. The level is kept (not set to silence), so a mask does not add a change
    of level at its edges. Frames from `lengths` on are padding and come back as zeros.
    """
    log_mel = _log_mel_from_previous(features)
    n_mels = tf.shape(features)[1]
    real = tf.cast(tf.range(tf.shape(log_mel)[0]) <= lengths, log_mel.dtype)[:, tf.newaxis]
    mean = tf.reduce_sum(log_mel * real, axis=0) / tf.reduce_sum(real)
    bands = tf.range(n_mels)[tf.newaxis, :]
    starts = tf.reshape(tf.cast(starts, tf.int32), [-1, 1])
    widths = tf.reshape(tf.cast(widths, tf.int32), [-1, 1])
    masked = tf.reduce_any((bands >= starts) & (bands < starts + widths), axis=0)
    log_mel = tf.where(masked[tf.newaxis, :], mean[tf.newaxis, :], log_mel)
    return _features_from_previous(log_mel, lengths)


def random_masks(augment: Augment, n_mels: int, seed):
    """Draws `(starts, widths)` `[MASKS]` for `mask_bands` from a stateless seed `[2]`: widths
    uniform in [0, `augment.mask_bands`], starts uniform where the mask fits in the bands."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    widths = tf.random.stateless_uniform(
        [MASKS], seeds[0], 0, min(augment.mask_bands, n_mels) + 1, dtype=tf.int32
    )
    places = tf.random.stateless_uniform([MASKS], seeds[1])
    starts = tf.cast(tf.floor(places * tf.cast(n_mels - widths + 1, tf.float32)), tf.int32)
    return tf.minimum(starts, n_mels - widths), widths


def colour_examples(
    dataset: tf.data.Dataset,
    augment: Augment,
    amin: float,
    seed: int | None,
    frame_rate: float | None = None,
) -> tf.data.Dataset:
    """Reverberates (`random_reverb`, `reverberate`; with `augment.reverb_seconds`), then
    colours (`random_colouring`, `colour_spectrum`; with `augment.colours`) and then masks
    (`random_masks`, `mask_bands`; with `augment.mask_bands`) every
    `{"features", "lengths", ...}` example of `dataset` at random; the other keys pass
    through. `frame_rate` is the features' frames per second, which the reverberation's decay
    depends on; it has no default, so that features from another front end cannot silently
    get a wrong decay.

    Raises:
        ValueError: reverberation without `frame_rate`.
    """
    if augment.reverb_seconds and frame_rate is None:
        raise ValueError(
            "colour_examples: reverberation (augment.reverb_seconds) needs the features' "
            "frame_rate (FeatureConfig.frame_rate)"
        )

    def colour(example, pair):
        features = example["features"]
        if augment.reverb_seconds:
            # Its own stream, so the colouring draws do not depend on whether reverb is on.
            reverb_seed = tf.random.experimental.stateless_fold_in(tf.cast(pair, tf.int64), 1)
            decay, weight = random_reverb(augment, frame_rate, reverb_seed)
            features = reverberate(features, example["lengths"], decay, weight, amin)
        if augment.colours:
            shift, gain_db = random_colouring(augment, features.shape[1], pair)
            features = colour_spectrum(features, example["lengths"], shift, gain_db, amin)
        if augment.mask_bands:
            mask_seed = tf.random.experimental.stateless_fold_in(tf.cast(pair, tf.int64), 2)
            starts, widths = random_masks(augment, features.shape[1], mask_seed)
            features = mask_bands(features, example["lengths"], starts, widths)
        return {**example, "features": features}

    seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
    return tf.data.Dataset.zip(dataset, seeds).map(colour, tf.data.AUTOTUNE)


def _pad(example: dict, frames: int) -> dict:
    features = example["features"]
    checked = tf.debugging.assert_less_equal(
        example["lengths"], frames, message=f"a segment is longer than pad_to_frames={frames}"
    )
    with tf.control_dependencies([checked]):
        features = tf.pad(features, [[0, frames - example["lengths"]], [0, 0], [0, 0]])
    return {**example, "features": tf.ensure_shape(features, [frames, *features.shape[1:]])}


def training_dataset(
    source: PathLike | Manifest,
    batch_size: int,
    classes: Sequence[Hashable] | None = None,
    *,
    shuffle_buffer: int = 1024,
    augment: Augment | None = None,
    pad_to_frames: int = 400,
    seed: int | None = None,
    repeat: bool = True,
    feature_config: FeatureConfig | None = None,
) -> tf.data.Dataset:
    """Batches of `({"features", "lengths"}, counts)` for `model.fit`.

    Args:
        source: a manifest (path ending in `.manifest.json`, or a `Manifest`) or a glob
            pattern of shard files (temporary `.tmp-<pid>` files are never read).
        batch_size: examples per batch.
        classes: with a manifest, the class names to count, in output order; with a pattern,
            column indices into the stored counts. None keeps all.
        shuffle_buffer: examples in the shuffle buffer (each ~256 KB at 400 x 80 x 2); 0 or 1
            turns shuffling off, along with the shuffling of shard order.
        augment: feature-level augmentation, or None.
        pad_to_frames: T of every batch; padding frames are zeros. A longer segment raises.
        seed: makes shard order, shuffling and augmentation repeatable.
        repeat: repeat forever (batches then all have `batch_size` examples); False gives one
            pass, the last batch possibly smaller.
        feature_config: the front end, needed for `n_mels` and `amin` with a pattern
            (default `FeatureConfig()`); with a manifest it must match the manifest's or be
            None.

    Returns:
        A dataset of `({"features": float32 [B, pad_to_frames, n_mels, 2], "lengths": int32
        [B]}, counts float32 [B, classes])`.
    """
    files, class_indices, config = _resolve(source, classes, feature_config)

    def parse(serialized):
        return _parse(serialized, TRAINING_SPEC, config.n_mels, class_indices)

    def examples(buffer, stream_seed):
        stream = _records(files, buffer > 1, stream_seed).map(parse, tf.data.AUTOTUNE)
        return stream.shuffle(buffer, seed=stream_seed) if buffer > 1 else stream

    dataset = examples(shuffle_buffer, seed)
    if repeat:
        dataset = dataset.repeat()
    if augment is not None and augment.stack_probability > 0.0:
        probability = augment.stack_probability
        # Partners are always shuffled: two unshuffled streams would run in the same order and
        # stack every example with itself.
        partner_buffer = max(shuffle_buffer, _PARTNER_SHUFFLE_BUFFER)
        partners = examples(partner_buffer, None if seed is None else seed + 1).repeat()
        coins = tf.data.Dataset.random(seed=None if seed is None else seed + 2)

        def maybe_stack(example, partner, coin):
            chosen = tf.cast(coin % 1_000_000, tf.float32) / 1e6 < probability
            return tf.cond(
                chosen, lambda: stack_extracts(example, partner, config.amin), lambda: example
            )

        dataset = tf.data.Dataset.zip(dataset, partners, coins).map(maybe_stack, tf.data.AUTOTUNE)
    if augment is not None and augment.changes_features:
        dataset = colour_examples(
            dataset,
            augment,
            config.amin,
            None if seed is None else seed + 3,
            frame_rate=config.frame_rate,
        )
    dataset = dataset.map(lambda example: _pad(example, pad_to_frames), tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=repeat)
    dataset = dataset.map(
        lambda batch: (
            {"features": batch["features"], "lengths": batch["lengths"]},
            tf.cast(batch["counts"], tf.float32),
        )
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(
    source: PathLike | Manifest,
    batch_size: int,
    classes: Sequence[Hashable] | None = None,
    *,
    pad_to_frames: int | None = 400,
    feature_config: FeatureConfig | None = None,
) -> tf.data.Dataset:
    """Batches of every record once, in file order, with event frames for scoring.

    Args:
        source, classes, feature_config: as for `training_dataset`.
        batch_size: examples per batch (the last may be smaller).
        pad_to_frames: T of every batch, or None for the longest segment in each batch.

    Returns:
        A dataset of dicts: "features" float32 `[B, T, n_mels, 2]` (zero padding),
        "lengths" int32 `[B]`, "counts" float32 `[B, C]`, "event_frames" int32 `[B, C, E]`
        (frames relative to the segment start, padded with -1), "source" string `[B]`,
        "start_frame" int64 `[B]`. A dict rather than an `(x, y, ...)` tuple, so that Keras
        never takes the extra fields for sample weights.
    """
    files, class_indices, config = _resolve(source, classes, feature_config)
    dataset = _records(files, shuffle=False, seed=None).map(
        lambda serialized: _parse(serialized, EVALUATION_SPEC, config.n_mels, class_indices),
        tf.data.AUTOTUNE,
    )
    if pad_to_frames is not None:
        dataset = dataset.map(lambda example: _pad(example, pad_to_frames), tf.data.AUTOTUNE)
    dataset = dataset.padded_batch(
        batch_size,
        padding_values={
            "features": 0.0,
            "lengths": 0,
            "counts": tf.constant(0, tf.int64),
            "event_frames": -1,
            "source": "",
            "start_frame": tf.constant(0, tf.int64),
        },
    )
    return dataset.map(lambda batch: {**batch, "counts": tf.cast(batch["counts"], tf.float32)})
