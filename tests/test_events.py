"""Decoding p(t): peak picking, frames -> seconds, and tuning on synthetic p(t)."""

import numpy as np
import pytest

from loco_tf.events import (
    DecodingParameters,
    decode_events,
    frames_to_seconds,
    pick_peaks,
    tune_decoding,
)
from loco_tf.features import FeatureConfig, frame_times

CONFIG = FeatureConfig()
FRAME = CONFIG.hop_length / CONFIG.sample_rate  # 3.75 ms


def test_pick_peaks_hand_cases():
    p = np.array([0.9, 0.1, 0.6, 0.7, 0.2, 0.4, 0.0, 0.8])
    assert pick_peaks(p, 0.5).tolist() == [0, 3, 7]  # edges count, 0.6 is not a maximum
    assert pick_peaks(p, 0.3).tolist() == [0, 3, 5, 7]
    assert pick_peaks(p, 0.85).tolist() == [0]
    # Within 3 frames of a higher peak, a lower one goes.
    assert pick_peaks(p, 0.3, min_distance=3).tolist() == [0, 3, 7]
    assert pick_peaks(np.zeros(5), 0.1).tolist() == []
    with pytest.raises(ValueError):
        pick_peaks(np.zeros((2, 2)))


def test_frames_to_seconds_follows_frame_times():
    frames = np.array([0, 5, 399])
    expected = frame_times(400, CONFIG)[frames]
    assert frames_to_seconds(frames, CONFIG) == pytest.approx(expected)
    # The window centre of frame t: (t * 120 + 512) / 32000.
    assert frames_to_seconds([10], CONFIG, 0.002)[0] == pytest.approx((1200 + 512) / 32000 + 0.002)
    assert frames_to_seconds([], CONFIG).shape == (0,)


def test_decode_events_per_class_parameters():
    p = np.zeros((50, 2))
    p[[10, 30], 0] = [0.9, 0.4]
    p[[20, 22], 1] = [0.8, 0.7]
    times = decode_events(
        p,
        CONFIG,
        [DecodingParameters(0.3, 1, -0.01), DecodingParameters(0.5, 4, 0.0)],
    )
    assert times[0] == pytest.approx(frame_times(50, CONFIG)[[10, 30]] - 0.01)
    assert times[1] == pytest.approx(frame_times(50, CONFIG)[[20]])


def synthetic(seed, lag, files=4, frames=4000, events=60, duplicate=None):
    """p(t) of a network that fires `lag` frames after each event, with noise below 0.3; the
    references are the events' frame times."""
    rng = np.random.default_rng(seed)
    probabilities, references = [], []
    for _ in range(files):
        p = rng.uniform(0.0, 0.3, (frames, 1)) * (rng.random((frames, 1)) < 0.05)
        event_frames = np.sort(rng.choice(np.arange(20, frames - 20, 12), events, replace=False))
        p[event_frames + lag, 0] = rng.uniform(0.6, 0.95, events)
        if duplicate is not None:  # a second peak `duplicate` frames after the first
            p[event_frames + lag + duplicate, 0] = 0.7
        probabilities.append(p)
        references.append([frame_times(frames, CONFIG)[event_frames]])
    return probabilities, references


@pytest.mark.parametrize("lag", [3, -2])
def test_tuning_finds_threshold_and_offset(lag):
    probabilities, references = synthetic(0, lag)
    (tuning,) = tune_decoding(probabilities, references, CONFIG)
    # Any threshold between the noise (< 0.3) and the events (>= 0.6) separates them.
    assert 0.3 <= tuning.parameters.threshold <= 0.6
    assert tuning.f1 == 1.0 and tuning.matched == 4 * 60
    assert tuning.median_error_seconds == pytest.approx(lag * FRAME)
    assert tuning.parameters.offset_seconds == pytest.approx(-lag * FRAME)
    estimates = decode_events(probabilities[0], CONFIG, tuning.parameters)
    assert estimates[0] == pytest.approx(references[0][0], abs=1e-9)


def test_tuning_uses_the_minimum_distance_for_duplicates():
    # Duplicates 2 frames after each event at 0.7 sit above some events (0.6 .. 0.95) and above
    # the noise, so no threshold removes them all without losing events; a distance does.
    probabilities, references = synthetic(1, 1, duplicate=2)
    thresholds = (0.35, 0.5, 0.65, 0.75)
    for min_distance in (1, 2):
        (tuning,) = tune_decoding(
            probabilities, references, CONFIG, thresholds=thresholds, min_distances=(min_distance,)
        )
        assert tuning.f1 < 0.9
    (tuning,) = tune_decoding(probabilities, references, CONFIG, thresholds=thresholds)
    assert tuning.f1 == 1.0
    assert tuning.parameters.min_distance > 2
    assert tuning.parameters.threshold == 0.35  # the first of the grid that works


def test_tuning_rejects_mismatched_inputs():
    with pytest.raises(ValueError):
        tune_decoding([np.zeros((5, 1))], [], CONFIG)
    with pytest.raises(ValueError):
        tune_decoding([], [], CONFIG)
    with pytest.raises(ValueError):
        DecodingParameters(threshold=1.5)
    assert DecodingParameters.from_dict(DecodingParameters(0.4, 3, -0.004).to_dict()) == (
        DecodingParameters(0.4, 3, -0.004)
    )
