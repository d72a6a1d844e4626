"""tf.data input: exact round trip, fixed padding, no timing in training input, stacking,
spectral colouring, reverberation."""

import os

import numpy as np
import pytest
import tensorflow as tf

from loco_tf.features import FeatureConfig, compute_features
from loco_tf.pipelines.dataset import (
    EQ_POINTS,
    EVALUATION_SPEC,
    MASKS,
    REVERB_WET_DB,
    TRAINING_SPEC,
    Augment,
    colour_examples,
    colour_spectrum,
    evaluation_dataset,
    mask_bands,
    random_colouring,
    random_masks,
    random_reverb,
    reverb_parameters,
    reverberate,
    stack_extracts,
    training_dataset,
)
from loco_tf.pipelines.tfrecords import SegmentExample, write_shards

CONFIG = FeatureConfig()
CLASSES = ("KD", "SD", "HH")
FLOOR = -100.0


def ten_examples(seed=0):
    """Lengths 391..400, one per example, so an example can be found by its length."""
    rng = np.random.default_rng(seed)
    examples = []
    for i, frames in enumerate(range(391, 401)):
        event_frames = tuple(np.sort(rng.integers(0, frames, size=k)) for k in (i % 3, 1, i % 4))
        examples.append(
            SegmentExample(
                features=rng.normal(-40, 20, (frames, 80, 2)).astype(np.float32),
                counts=np.array([len(f) for f in event_frames]),
                source=f"file{i % 4}.wav",
                start_frame=frames * 10,
                event_frames=event_frames,
            )
        )
    return examples


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    examples = ten_examples()
    manifest = write_shards(examples, out, "drums", 3, class_names=CLASSES, feature_config=CONFIG)
    return manifest, examples


def everything(dataset):
    """All batches of a finite dataset, concatenated per component."""
    batches = list(dataset.as_numpy_iterator())
    return [
        np.concatenate(parts) for parts in zip(*[tf.nest.flatten(b) for b in batches], strict=True)
    ]


def test_round_trip_with_padding_to_400(shards):
    manifest, examples = shards
    dataset = training_dataset(manifest.path, 4, shuffle_buffer=0, repeat=False)
    assert dataset.element_spec[0]["features"].shape.as_list() == [None, 400, 80, 2]
    features, lengths, counts = everything(dataset)
    assert features.dtype == np.float32 and lengths.dtype == np.int32
    assert counts.dtype == np.float32
    assert sorted(lengths.tolist()) == list(range(391, 401))
    for row, length in enumerate(lengths):
        example = examples[length - 391]
        np.testing.assert_array_equal(features[row, :length], example.features)
        np.testing.assert_array_equal(features[row, length:], 0.0)
        np.testing.assert_array_equal(counts[row], example.counts)


def test_repeated_batches_have_one_static_shape(shards):
    manifest, _ = shards
    dataset = training_dataset(manifest.path, 4, seed=0)
    spec = dataset.element_spec
    assert spec[0]["features"].shape.as_list() == [4, 400, 80, 2]
    assert spec[0]["lengths"].shape.as_list() == [4]
    assert spec[1].shape.as_list() == [4, 3]
    batches = list(dataset.take(6).as_numpy_iterator())  # 24 examples: over two epochs
    assert len(batches) == 6


def test_same_seed_same_batches(shards):
    manifest, _ = shards

    def first_lengths(seed):
        dataset = training_dataset(manifest.path, 5, seed=seed, augment=Augment(0.5))
        return [x["lengths"].tolist() for x, _ in dataset.take(4).as_numpy_iterator()]

    assert first_lengths(11) == first_lengths(11)


def test_classes_select_and_order_count_columns(shards):
    manifest, examples = shards
    dataset = training_dataset(manifest.path, 10, ["HH", "KD"], shuffle_buffer=0, repeat=False)
    _, lengths, counts = everything(dataset)
    for length, row in zip(lengths, counts, strict=True):
        kd, _, hh = examples[length - 391].counts
        assert row.tolist() == [hh, kd]
    with pytest.raises(ValueError, match="not in"):
        training_dataset(manifest.path, 10, ["tom"])


def test_a_file_pattern_reads_the_same_and_ignores_temporaries(shards, tmp_path):
    manifest, _ = shards
    folder = os.path.dirname(manifest.path)
    stray = os.path.join(folder, "drums-00000-of-00003.tfrecord.tmp-999999")
    with open(stray, "wb") as file:
        file.write(b"not a record")
    try:
        dataset = training_dataset(
            os.path.join(folder, "drums-*"), 10, [2, 0], shuffle_buffer=0, repeat=False
        )
        reference = training_dataset(
            manifest.path, 10, ["HH", "KD"], shuffle_buffer=0, repeat=False
        )
        for got, want in zip(everything(dataset), everything(reference), strict=True):
            np.testing.assert_array_equal(got, want)
    finally:
        os.remove(stray)


def test_training_input_never_reads_event_frames(shards, tmp_path):
    assert set(TRAINING_SPEC) == {"features", "num_frames", "counts"}
    assert not any("event" in key for key in TRAINING_SPEC)
    manifest, _ = shards
    # Corrupt every record's timing: other values, and a bytes type where int64 is expected.
    corrupted = tmp_path / "corrupted.tfrecord"
    with tf.io.TFRecordWriter(str(corrupted)) as writer:
        for path in manifest.files:
            for serialized in tf.data.TFRecordDataset(path):
                example = tf.train.Example.FromString(serialized.numpy())
                feature = example.features.feature
                feature["event_frames"].Clear()
                feature["event_frames"].bytes_list.value.append(b"\x00garbage")
                del feature["event_frames_lengths"].int64_list.value[:]
                feature["event_frames_lengths"].int64_list.value.extend([7, 7, 7])
                writer.write(example.SerializeToString())
    original = everything(training_dataset(manifest.path, 3, shuffle_buffer=0, repeat=False))
    tampered = everything(training_dataset(str(corrupted), 3, shuffle_buffer=0, repeat=False))
    for got, want in zip(tampered, original, strict=True):
        np.testing.assert_array_equal(got, want)
    # A reader that does parse the timing notices the corruption.
    with pytest.raises(tf.errors.InvalidArgumentError):
        everything(evaluation_dataset(str(corrupted), 3))


def test_evaluation_dataset_yields_event_frames(shards):
    manifest, examples = shards
    batches = list(evaluation_dataset(manifest.path, 4, ["SD", "HH"]).as_numpy_iterator())
    assert set(batches[0]) == {
        "features",
        "lengths",
        "counts",
        "event_frames",
        "source",
        "start_frame",
    }
    seen = 0
    for batch in batches:
        for row, length in enumerate(batch["lengths"]):
            example = examples[length - 391]
            frames = batch["event_frames"][row]
            for column, class_frames in enumerate(example.event_frames[1:]):
                assert frames[column][frames[column] >= 0].tolist() == class_frames.tolist()
                assert np.all(frames[column][len(class_frames) :] == -1)
            assert batch["counts"][row].tolist() == example.counts[1:].tolist()
            assert batch["source"][row].decode() == example.source
            assert batch["start_frame"][row] == example.start_frame
            np.testing.assert_array_equal(batch["features"][row, :length], example.features)
            seen += 1
    assert seen == 10
    assert set(EVALUATION_SPEC) > set(TRAINING_SPEC)


def test_a_segment_longer_than_the_padding_is_an_error(shards):
    manifest, _ = shards
    dataset = training_dataset(manifest.path, 2, pad_to_frames=395, shuffle_buffer=0, repeat=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="pad_to_frames"):
        everything(dataset)


def as_example(features, counts):
    return {
        "features": tf.constant(features, tf.float32),
        "lengths": tf.constant(features.shape[0], tf.int32),
        "counts": tf.constant(counts, tf.int64),
    }


def test_stacking_with_silence_returns_the_original():
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(40_000)).astype(np.float32)
    features = compute_features(audio, CONFIG)[50:90]
    silent = np.stack([np.full((60, 80), FLOOR), np.zeros((60, 80))], -1)
    stacked = stack_extracts(as_example(features, [1, 2]), as_example(silent, [0, 1]), 1e-10)
    assert int(stacked["lengths"]) == 60
    assert stacked["counts"].numpy().tolist() == [1, 3]
    np.testing.assert_allclose(stacked["features"][:40], features, atol=1e-3, rtol=0)
    np.testing.assert_allclose(stacked["features"][40:, :, 0], FLOOR, atol=1e-3)


def test_stacking_mixes_power_and_recomputes_the_causal_difference():
    rng = np.random.default_rng(1)
    config = FeatureConfig()
    a_file = compute_features((0.2 * rng.standard_normal(60_000)).astype(np.float32), config)
    b_file = compute_features(np.sin(np.arange(60_000) * 0.05).astype(np.float32), config)
    a, b = a_file[100:130], b_file[200:220]
    stacked = stack_extracts(as_example(a, [2, 0, 1]), as_example(b, [1, 1, 0]), config.amin)
    assert stacked["counts"].numpy().tolist() == [3, 1, 1]
    assert int(stacked["lengths"]) == 30
    # Reference in float64: mix the powers of the two files frame by frame, b silent past its
    # 20 frames, then take the causal difference of the mix inside the file.
    power_a = 10 ** (a_file[99:130, :, 0].astype(np.float64) / 10)
    b_padded = np.concatenate([b_file[199:220, :, 0], np.full((10, 80), FLOOR)])
    power_b = 10 ** (b_padded.astype(np.float64) / 10)
    mixed = 10 * np.log10(power_a + power_b)
    np.testing.assert_allclose(stacked["features"][:, :, 0], mixed[1:], atol=1e-3, rtol=0)
    np.testing.assert_allclose(stacked["features"][:, :, 1], np.diff(mixed, axis=0), atol=2e-3)


def test_stacking_in_the_training_dataset_adds_counts(tmp_path):
    rng = np.random.default_rng(2)
    examples = [
        SegmentExample(
            features=rng.normal(-40, 10, (200 + 10 * i, 80, 2)).astype(np.float32),
            counts=np.array([1, 0]),
            source=f"f{i}",
            start_frame=0,
            event_frames=(np.array([5]), np.array([], np.int64)),
        )
        for i in range(8)
    ]
    manifest = write_shards(
        examples, tmp_path, "x", 2, class_names=("a", "b"), feature_config=CONFIG
    )

    def first_batches(probability):
        dataset = training_dataset(
            manifest.path, 8, seed=3, augment=Augment(probability), shuffle_buffer=8
        )
        return list(dataset.take(8).as_numpy_iterator())

    for inputs, counts in first_batches(1.0):
        assert counts.tolist() == [[2.0, 0.0]] * 8
        assert np.all(inputs["lengths"] >= 200)
    for _, counts in first_batches(0.0):
        assert counts.tolist() == [[1.0, 0.0]] * 8
    stacked = np.concatenate([counts[:, 0] for _, counts in first_batches(0.5)])
    assert 0.25 < np.mean(stacked == 2.0) < 0.75


def test_augment_probability_is_checked():
    with pytest.raises(ValueError):
        Augment(stack_probability=1.5)


def coloured_reference(file_log_mel, start, stop, shift, gain_db, amin=1e-10):
    """float64 NumPy: frames start-1..stop of a file's log-mel as powers (floor bins silent),
    bands moved by `shift` (edge band repeated), powers times 10 ** (gain / 10), back to dB."""
    log_mel = file_log_mel[start - 1 : stop].astype(np.float64)
    power = np.where(log_mel <= FLOOR + 1e-3, 0.0, 10 ** (log_mel / 10))
    bands = np.clip(np.arange(log_mel.shape[1]) - shift, 0, log_mel.shape[1] - 1)
    power = power[:, bands] * 10 ** (np.asarray(gain_db, np.float64) / 10)
    coloured = 10 * np.log10(np.maximum(power, amin))
    return coloured[1:], np.diff(coloured, axis=0)


@pytest.mark.parametrize("shift", [0, 3, -5])
def test_colouring_is_a_per_band_filter_on_the_powers(shift):
    rng = np.random.default_rng(4)
    # Noise, then digital silence: the segment straddles both, so floor bins are in it.
    audio = np.concatenate([0.1 * rng.standard_normal(30_000), np.zeros(20_000)])
    file_features = compute_features(audio.astype(np.float32), CONFIG)
    segment = file_features[200:280]
    assert np.any(segment[:, :, 0] <= FLOOR + 1e-3) and np.any(segment[:, :, 0] > -50)
    gain_db = rng.uniform(-12, 12, 80).astype(np.float32)
    padded = np.concatenate([segment, np.zeros((20, 80, 2), np.float32)])  # 80 real frames
    coloured = colour_spectrum(tf.constant(padded), 80, shift, tf.constant(gain_db), 1e-10)
    log_mel, difference = coloured_reference(file_features[:, :, 0], 200, 280, shift, gain_db)
    np.testing.assert_allclose(coloured[:80, :, 0], log_mel, atol=1e-3, rtol=0)
    np.testing.assert_allclose(coloured[:80, :, 1], difference, atol=2e-3, rtol=0)
    assert np.all(coloured[80:].numpy() == 0.0)  # padding stays zeros
    # Silent bins stay at the floor whatever the gain.
    silent = file_features[200:280, :, 0][:, np.clip(np.arange(80) - shift, 0, 79)] <= FLOOR + 1e-3
    assert np.all(coloured[:80, :, 0].numpy()[silent] == pytest.approx(FLOOR))


def test_random_colourings_stay_in_their_ranges_and_repeat_with_the_seed():
    augment = Augment(gain_db=6.0, eq_db=10.0, shift_bands=4)
    draws = [random_colouring(augment, 80, tf.constant([s, 7])) for s in range(200)]
    shifts = {int(shift) for shift, _ in draws}
    assert shifts == set(range(-4, 5))
    curves = np.stack([gain.numpy() for _, gain in draws])
    assert np.all(np.abs(curves) <= 16.0 + 1e-5) and curves.std() > 3.0
    # Piecewise linear between EQ_POINTS knots: second differences vanish inside each piece.
    knots = np.linspace(0, 79, EQ_POINTS)
    inside = [b for b in range(1, 79) if not np.any(np.abs(knots - b) < 1.0)]
    np.testing.assert_allclose(np.diff(curves, 2, axis=1)[:, np.array(inside) - 1], 0, atol=1e-4)
    again = random_colouring(augment, 80, tf.constant([3, 7]))
    assert int(again[0]) == int(draws[3][0])
    np.testing.assert_array_equal(again[1], draws[3][1])
    shift, gain = random_colouring(Augment(), 80, tf.constant([3, 7]))
    assert int(shift) == 0 and np.all(gain.numpy() == 0.0)


def augmented_batches(manifest, count, augment):
    """The first `count` training batches of 5 from the shards with `augment` (seed 1)."""
    dataset = training_dataset(manifest.path, 5, seed=1, augment=augment, shuffle_buffer=10)
    return list(dataset.take(count).as_numpy_iterator())


def test_training_dataset_colours_levels_but_keeps_counts_and_lengths(shards):
    manifest, examples = shards

    plain = augmented_batches(manifest, 4, None)
    coloured = augmented_batches(manifest, 4, Augment(gain_db=6.0))
    for (x, counts), (xc, counts_c) in zip(plain, coloured, strict=True):
        np.testing.assert_array_equal(counts, counts_c)
        np.testing.assert_array_equal(x["lengths"], xc["lengths"])
        for example in range(5):
            frames = x["lengths"][example]
            # A level change only: one constant dB offset per segment, within the range.
            # (The fixture's random dB values reach the floor, where gains stop.)
            before = x["features"][example, :frames, :, 0]
            offset = (xc["features"][example, :frames, :, 0] - before)[before > FLOOR + 6.0]
            assert np.ptp(offset) < 1e-3 and 0 < abs(offset.mean()) <= 6.0
            below = before <= FLOOR
            np.testing.assert_allclose(
                xc["features"][example, :frames, :, 0][below], FLOOR, atol=1e-4
            )
            assert np.all(xc["features"][example, frames:] == 0.0)


def test_colouring_ranges_are_checked():
    with pytest.raises(ValueError, match="ranges"):
        Augment(eq_db=-1.0)


def reverberated_reference(file_log_mel, start, stop, decay, weight, amin=1e-10):
    """float64 NumPy, as a recursion: frames start-1..stop as powers above the floor, each
    band's tail `tail[t] = decay * (tail[t - 1] + P[t - 1])` (no tail before frame start-1),
    `P + weight * tail` back to dB over the floor."""
    log_mel = file_log_mel[start - 1 : stop].astype(np.float64)
    power = np.maximum(10 ** (log_mel / 10) - amin, 0.0)
    tail = np.zeros_like(power)
    for t in range(1, len(power)):
        tail[t] = decay * (tail[t - 1] + power[t - 1])
    wet = 10 * np.log10(power + weight * tail + amin)
    return wet[1:], np.diff(wet, axis=0)


@pytest.mark.parametrize("rt60, wet_db", [(0.3, -6.0), (0.8, 0.0)])
def test_reverberation_is_an_exponential_tail_on_the_powers(rt60, wet_db):
    rng = np.random.default_rng(5)
    # Two noise bursts and digital silence: the tail must fill the silence after each burst.
    audio = np.zeros(60_000)
    audio[5_000:9_000] = 0.3 * rng.standard_normal(4_000)
    audio[30_000:31_000] = 0.3 * rng.standard_normal(1_000)
    file_features = compute_features(audio.astype(np.float32), CONFIG)
    start, stop = 20, 420  # 400 frames; the segment starts inside the first burst
    padded = np.concatenate([file_features[start:stop], np.zeros((30, 80, 2), np.float32)])
    decay, weight = reverb_parameters(rt60, wet_db, CONFIG.frame_rate)
    assert float(decay) == pytest.approx(10 ** (-6 / (rt60 * CONFIG.frame_rate)), rel=1e-5)
    # A one-frame impulse's tail carries wet_db of its energy: weight * d / (1 - d).
    d = float(decay)
    assert 10 * np.log10(float(weight) * d / (1 - d)) == pytest.approx(wet_db, abs=1e-3)
    out = reverberate(tf.constant(padded), stop - start, decay, weight, 1e-10).numpy()
    log_mel, difference = reverberated_reference(
        file_features[:, :, 0], start, stop, float(decay), float(weight)
    )
    np.testing.assert_allclose(out[:400, :, 0], log_mel, atol=2e-3, rtol=0)
    np.testing.assert_allclose(out[:400, :, 1], difference, atol=4e-3, rtol=0)
    assert np.all(out[400:] == 0.0)  # padding stays zeros
    # Never quieter than the dry sound, and the silence after the first burst is filled.
    assert np.all(out[:400, :, 0] >= file_features[start:stop, :, 0] - 1e-3)
    silent = file_features[start:stop, :, 0] <= FLOOR + 1e-3
    assert silent.sum() > 1000 and np.median(out[:400, :, 0][silent]) > FLOOR + 20


def test_no_reverberation_time_changes_nothing():
    rng = np.random.default_rng(6)
    log_mel = np.maximum(rng.normal(-40, 20, (51, 80)), FLOOR).astype(np.float32)
    features = np.stack([log_mel[1:], log_mel[1:] - log_mel[:-1]], axis=-1)
    features[45:] = 0.0
    decay, weight = reverb_parameters(0.0, -6.0, CONFIG.frame_rate)
    assert float(decay) == 0.0 and float(weight) == 0.0
    out = reverberate(tf.constant(features), 45, decay, weight, 1e-10).numpy()
    np.testing.assert_allclose(out[:45, :, 0], features[:45, :, 0], atol=1e-3)
    np.testing.assert_allclose(out[:45, :, 1], features[:45, :, 1], atol=2e-3)
    assert np.all(out[45:] == 0.0)


def test_random_reverbs_stay_in_their_ranges_and_repeat_with_the_seed():
    augment = Augment(reverb_seconds=0.8)
    draws = [random_reverb(augment, CONFIG.frame_rate, tf.constant([s, 9])) for s in range(300)]
    decays = np.array([float(d) for d, _ in draws])
    weights = np.array([float(w) for _, w in draws])
    rt60 = -6 / (np.log10(decays) * CONFIG.frame_rate)
    assert rt60.min() >= 0 and rt60.max() <= 0.8 + 1e-4 and rt60.max() > 0.7 and rt60.min() < 0.1
    wet_db = 10 * np.log10(weights * decays / (1 - decays))
    assert REVERB_WET_DB[0] - 1e-3 <= wet_db.min() and wet_db.max() <= REVERB_WET_DB[1] + 1e-3
    assert wet_db.max() - wet_db.min() > 15
    again = random_reverb(augment, CONFIG.frame_rate, tf.constant([3, 9]))
    assert float(again[0]) == decays[3] and float(again[1]) == weights[3]
    with pytest.raises(ValueError, match="ranges"):
        Augment(reverb_seconds=-0.1)
    # The decay depends on the frame rate, so reverberation does not guess it.
    examples = tf.data.Dataset.from_tensors({"features": tf.zeros((4, 80, 2)), "lengths": 4})
    with pytest.raises(ValueError, match="frame_rate"):
        colour_examples(examples, augment, 1e-10, seed=0)
    colour_examples(examples, Augment(gain_db=3.0), 1e-10, seed=0)  # colouring alone needs none


def test_training_dataset_reverberates_without_touching_counts_or_colouring(shards):
    manifest, _ = shards

    plain = augmented_batches(manifest, 3, None)
    wet = augmented_batches(manifest, 3, Augment(reverb_seconds=0.8))
    coloured = augmented_batches(manifest, 3, Augment(gain_db=6.0))
    both = augmented_batches(manifest, 3, Augment(gain_db=6.0, reverb_seconds=0.8))
    for (x, counts), (xw, counts_w), (xc, _), (xb, _) in zip(
        plain, wet, coloured, both, strict=True
    ):
        np.testing.assert_array_equal(counts, counts_w)
        np.testing.assert_array_equal(x["lengths"], xw["lengths"])
        for example in range(5):
            frames = x["lengths"][example]
            dry = x["features"][example, :frames, :, 0]
            reverberant = xw["features"][example, :frames, :, 0]
            assert np.all(reverberant >= dry - 1e-3) and np.any(reverberant > dry + 1.0)
            assert np.all(xw["features"][example, frames:] == 0.0)
            # Reverb draws its own random numbers: the colouring's gain is the same with it.
            loud = dry > FLOOR + 6.0
            offset = (xc["features"][example, :frames, :, 0] - dry)[loud].mean()
            # Colouring a reverberated segment by a level: the reverberated one, offset.
            shifted = xb["features"][example, :frames, :, 0] - reverberant
            shifted = shifted[reverberant > FLOOR + 6.0]
            assert np.ptp(shifted) < 1e-3 and shifted.mean() == pytest.approx(offset, abs=1e-3)


def test_band_masks_hold_each_band_at_its_mean_level():
    rng = np.random.default_rng(8)
    log_mel = np.maximum(rng.normal(-40, 20, (41, 80)), FLOOR).astype(np.float32)
    features = np.stack([log_mel[1:], log_mel[1:] - log_mel[:-1]], axis=-1)  # 40 frames
    features[30:] = 0.0  # padding: 30 real frames, and the frame before them
    out = mask_bands(tf.constant(features), 30, [5, 70], [3, 10]).numpy()
    masked = np.zeros(80, bool)
    masked[5:8] = masked[70:80] = True
    # float64 reference: the mean over the frame before and the 30 real frames.
    mean = log_mel[:31].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(out[:30, masked, 0], np.broadcast_to(mean[masked], (30, 13)), 1e-5)
    assert np.all(out[:30, masked, 1] == 0.0)  # the frame before is masked too: no step
    np.testing.assert_allclose(out[:30, ~masked], features[:30, ~masked], atol=1e-5)
    assert np.all(out[30:] == 0.0)
    # Overlapping masks are one mask; zero widths change nothing.
    overlap = mask_bands(tf.constant(features), 30, [5, 6], [3, 4]).numpy()
    np.testing.assert_allclose(overlap[:30, 5:10, 0], np.broadcast_to(mean[5:10], (30, 5)), 1e-5)
    none = mask_bands(tf.constant(features), 30, [5, 6], [0, 0]).numpy()
    np.testing.assert_allclose(none, features, atol=1e-5)


def test_random_masks_stay_in_the_bands_and_repeat_with_the_seed():
    augment = Augment(mask_bands=12)
    draws = [random_masks(augment, 80, tf.constant([s, 5])) for s in range(400)]
    starts = np.stack([s.numpy() for s, _ in draws])
    widths = np.stack([w.numpy() for _, w in draws])
    assert starts.shape == widths.shape == (400, MASKS)
    assert set(widths.ravel()) == set(range(13))  # every width in [0, 12]
    assert starts.min() == 0 and np.all(starts + widths <= 80) and (starts + widths).max() == 80
    again = random_masks(augment, 80, tf.constant([3, 5]))
    np.testing.assert_array_equal(again[0], starts[3])
    np.testing.assert_array_equal(again[1], widths[3])
    with pytest.raises(ValueError, match="ranges"):
        Augment(mask_bands=-1)
    assert Augment(mask_bands=4).changes_features and not Augment().changes_features


def test_training_dataset_masks_bands_and_keeps_counts(shards):
    manifest, _ = shards

    plain = augmented_batches(manifest, 3, None)
    masked = augmented_batches(manifest, 3, Augment(mask_bands=20))
    changed = []
    for (x, counts), (xm, counts_m) in zip(plain, masked, strict=True):
        np.testing.assert_array_equal(counts, counts_m)
        np.testing.assert_array_equal(x["lengths"], xm["lengths"])
        for example in range(5):
            frames = x["lengths"][example]
            # Channel 0 (the fixture's channel 1 is not its difference, and comes back as it).
            difference = (
                xm["features"][example, :frames, :, 0] - x["features"][example, :frames, :, 0]
            )
            differs = np.any(np.abs(difference) > 1e-3, axis=0)
            # At most two runs of changed bands, each at most 20 wide, and flat in time.
            assert differs.sum() <= 2 * 20
            flat = xm["features"][example, 1:frames, differs, 1]
            assert np.all(flat == 0.0)
            assert np.all(xm["features"][example, frames:] == 0.0)
            changed.append(differs.sum())
    assert max(changed) > 0
