"""Segmenting against hand-computed windows and counts."""

import numpy as np
import pytest

from loco_tf.features import FeatureConfig, frame_times
from loco_tf.pipelines.readers import Event
from loco_tf.pipelines.segments import segment

CONFIG = FeatureConfig()  # 400-frame segments; 0.75 s = 200 frames


def at_frames(frames, label):
    """Events exactly at the given frames' centre times."""
    times = frame_times(max(frames) + 1, CONFIG)
    return [Event(float(times[f]), label) for f in frames]


def starts_and_lengths(segments):
    return [(s.start_frame, s.n_frames) for s in segments]


def test_fixed_windows_keep_a_last_window_of_half_a_segment():
    assert starts_and_lengths(segment(1000, [], ["a"], CONFIG, 1.5)) == [
        (0, 400),
        (400, 400),
        (800, 200),
    ]
    # 199 frames left is less than half a segment: dropped.
    assert starts_and_lengths(segment(999, [], ["a"], CONFIG, 1.5)) == [(0, 400), (400, 400)]
    # A file shorter than a segment but at least half of one is one partial window.
    assert starts_and_lengths(segment(300, [], ["a"], CONFIG, 1.5)) == [(0, 300)]
    assert segment(150, [], ["a"], CONFIG, 1.5) == []
    assert segment(0, [], ["a"], CONFIG, 1.5) == []


def test_overlapping_windows_stop_at_the_first_that_reaches_the_end():
    segments = segment(1000, [], ["a"], CONFIG, 0.75)
    assert starts_and_lengths(segments) == [(0, 400), (200, 400), (400, 400), (600, 400)]


def test_counts_and_event_frames_by_hand():
    events = (
        at_frames([5, 399, 400, 650, 999], "a")
        + at_frames([10, 410], "b")
        + at_frames([20, 30], "ignored")
    )
    segments = segment(1000, events, ["a", "b"], CONFIG, 1.5, source="file.wav")
    assert [s.counts.tolist() for s in segments] == [[2, 1], [2, 1], [1, 0]]
    assert [s.counts.dtype for s in segments] == [np.int64] * 3
    assert [[f.tolist() for f in s.event_frames] for s in segments] == [
        [[5, 399], [10]],
        [[0, 250], [10]],
        [[199], []],
    ]
    assert {s.source for s in segments} == {"file.wav"}


def test_overlapping_windows_count_an_event_in_each_window_it_falls_in():
    segments = segment(1000, at_frames([250, 450], "a"), ["a"], CONFIG, 0.75)
    # windows [0, 400), [200, 600), [400, 800), [600, 1000)
    assert [int(s.counts[0]) for s in segments] == [1, 2, 1, 0]


def test_class_order_follows_classes_and_int_labels_work():
    events = at_frames([1, 2, 3], 60) + at_frames([4], 62)
    (only,) = segment(400, events, [62, 61, 60], CONFIG, 1.5)
    assert only.counts.tolist() == [1, 0, 3]


def test_events_outside_the_audio_are_ignored():
    # 1000 frames cover samples up to 999 * 120 + 1024 = 120904, i.e. 3.77825 s.
    events = [Event(-0.01, "a"), Event(0.0, "a"), Event(3.778, "a"), Event(3.8, "a")]
    segments = segment(1000, events, ["a"], CONFIG, 1.5)
    assert [s.event_frames[0].tolist() for s in segments] == [[0], [], [199]]


def test_variable_lengths_are_uniform_in_frames_and_seeded():
    features_len = 100_000
    events = at_frames(list(range(3, features_len, 37)), "a")
    segments = segment(features_len, events, ["a"], CONFIG, 1.5, min_seconds=0.75, rng=7)
    # Drawn per window start, uniformly from [200, 400] frames (0.75 s .. 1.5 s).
    draws = np.random.default_rng(7).integers(200, 401, size=len(segments))
    assert [s.n_frames for s in segments[:-1]] == draws[:-1].tolist()
    assert [s.start_frame for s in segments] == list(range(0, 400 * len(segments), 400))
    lengths = np.array([s.n_frames for s in segments])
    assert lengths.min() <= 205 and lengths.max() >= 395
    # Counts by brute force over every event.
    frames = np.arange(3, features_len, 37)
    for s in segments:
        inside = frames[(frames >= s.start_frame) & (frames < s.stop_frame)]
        assert s.counts[0] == len(inside)
        np.testing.assert_array_equal(s.event_frames[0], inside - s.start_frame)


def test_same_seed_same_segments():
    def lengths(rng):
        return [s.n_frames for s in segment(20_000, [], ["a"], CONFIG, 0.75, 0.5, rng)]

    assert lengths(3) == lengths(3) == lengths(np.random.default_rng(3))
    assert lengths(3) != lengths(4)


def test_variable_lengths_keep_a_last_window_of_min_length():
    # With min_seconds = segment_seconds every draw is 400: the 200-frame tail is too short.
    assert starts_and_lengths(segment(1000, [], ["a"], CONFIG, 1.5, min_seconds=1.5, rng=0)) == [
        (0, 400),
        (400, 400),
    ]
    # With min 0.5 s = 133 frames: the 200 frames left after 800 are at least the minimum, so
    # the last window is kept whatever its draw, cut at the end when the draw is longer.
    segments = segment(1000, [], ["a"], CONFIG, 1.5, min_seconds=0.5, rng=0)
    draws = np.random.default_rng(0).integers(133, 401, size=3)
    assert [s.n_frames for s in segments] == [*draws[:2].tolist(), min(draws[2], 200)]


def test_bad_arguments():
    with pytest.raises(ValueError, match="hop_seconds"):
        segment(1000, [], ["a"], CONFIG, 0.001)
    with pytest.raises(ValueError, match="min_seconds"):
        segment(1000, [], ["a"], CONFIG, 1.5, min_seconds=2.0)
