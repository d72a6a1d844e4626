"""The audio front end against hand-computed frame counts and a float64 NumPy reference."""

import json
import math

import librosa
import numpy as np
import pytest
import threadpoolctl

from loco_tf import features
from loco_tf.features import (
    FeatureConfig,
    compute_features,
    event_frames,
    frame_times,
    mel_filterbank,
    num_frames,
)

CONFIG = FeatureConfig()


def test_defaults_give_400_frame_segments():
    assert CONFIG.frame_rate == pytest.approx(32000 / 120)
    assert 1000 / CONFIG.frame_rate == pytest.approx(3.75)
    assert CONFIG.segment_frames == 400
    assert CONFIG.floor_db == pytest.approx(-100.0)


def test_config_round_trips_through_json():
    config = FeatureConfig(sample_rate=22050, hop_length=256, fmax=11025.0, n_mels=40)
    assert FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert FeatureConfig.from_dict(json.loads(json.dumps(CONFIG.to_dict()))) == CONFIG


def test_config_rejects_unknown_fields_and_bad_values():
    with pytest.raises(ValueError, match="unknown"):
        FeatureConfig.from_dict({**CONFIG.to_dict(), "window": "hamming"})
    with pytest.raises(ValueError, match="fmax"):
        FeatureConfig(fmax=20000.0)
    with pytest.raises(ValueError, match="amin"):
        FeatureConfig(amin=0.0)


# (samples, frames) by hand: frames = (samples - 1024) // 120 + 1, none below n_fft.
FRAME_COUNTS = [
    (0, 0),
    (1023, 0),
    (1024, 1),
    (1143, 1),
    (1144, 2),
    (48000, 392),  # a 1.5 s clip on its own
    (48904, 400),  # 1.5 s plus n_fft - hop = 904 samples of context
]


@pytest.mark.parametrize("samples, frames", FRAME_COUNTS)
def test_frame_count(samples, frames):
    audio = np.random.default_rng(samples).uniform(-0.5, 0.5, samples).astype(np.float32)
    result = compute_features(audio, CONFIG)
    assert result.shape == (frames, 80, 2)
    assert result.dtype == np.float32
    assert num_frames(samples, CONFIG) == frames


def reference_log_mel(audio, config):
    """float64: periodic Hann frames [t*hop, t*hop + n_fft), |rfft|^2, librosa's mel, dB."""
    n_fft, hop = config.n_fft, config.hop_length
    frames = (len(audio) - n_fft) // hop + 1
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    index = np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]
    power = np.abs(np.fft.rfft(audio.astype(np.float64)[index] * window, axis=1)) ** 2
    mel = librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=n_fft,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        htk=False,
        norm="slaney",
        dtype=np.float64,
    )
    return 10 * np.log10(np.maximum(power @ mel.T, config.amin))


def make_signal(seconds, sample_rate=32000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tones = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t**1.1)
    return (tones + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


@pytest.mark.parametrize("block", [None, 7])
def test_matches_numpy_reference(monkeypatch, block):
    if block is not None:  # the blockwise computation must not change any value
        monkeypatch.setattr(features, "_FRAMES_PER_BLOCK", block)
    audio = make_signal(0.4)
    result = compute_features(audio, CONFIG)
    reference = reference_log_mel(audio, CONFIG)
    assert result.shape[0] == reference.shape[0] == (len(audio) - 1024) // 120 + 1
    np.testing.assert_allclose(result[:, :, 0], reference, atol=1e-3, rtol=0)
    difference = np.diff(reference, axis=0, prepend=reference[:1])
    np.testing.assert_allclose(result[:, :, 1], difference, atol=2e-3, rtol=0)


def test_block_size_and_threads_change_no_value(monkeypatch):
    # Blocks bound memory and keep the work in cache; neither their size (down to one frame)
    # nor the number of BLAS threads may change a bit of the features. (A BLAS mel product
    # failed this under OpenBLAS's Haswell kernels: another number of rows or threads, another
    # rounding. The sparse product adds in one fixed order.)
    audio = make_signal(3.0, seed=5)
    results = []
    for block in (8192, 1024, 100, 7, 1):
        monkeypatch.setattr(features, "_FRAMES_PER_BLOCK", block)
        results.append(compute_features(audio, CONFIG))
    with threadpoolctl.threadpool_limits(1):
        results.append(compute_features(audio, CONFIG))
    with threadpoolctl.threadpool_limits(2):
        results.append(compute_features(audio, CONFIG))
    assert results[0].shape[0] == (len(audio) - 1024) // 120 + 1 > 700
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


def test_matches_librosa_melspectrogram():
    # `_log_mel` computes librosa's uncentred mel power spectrogram itself (faster); it must
    # stay librosa's, silence and all.
    audio = np.concatenate([make_signal(0.5, seed=3), np.zeros(5000, np.float32)])
    power = librosa.feature.melspectrogram(
        y=audio, sr=32000, n_fft=1024, hop_length=120, window="hann", center=False,
        power=2.0, n_mels=80, fmin=30.0, fmax=16000.0,
    )  # fmt: skip
    expected = 10 * np.log10(np.maximum(power.astype(np.float64), 1e-10)).T
    result = compute_features(audio, CONFIG)[:, :, 0]
    assert np.any(expected == -100.0)
    np.testing.assert_allclose(result, expected, atol=1e-3, rtol=0)
    # The log is taken in float32, where amin is a little above 1e-10: silence is still -100.
    np.testing.assert_array_equal(result[expected == -100.0], np.float32(CONFIG.floor_db))


@pytest.mark.parametrize("n_mels", [80, 7, 128])
def test_sparse_mel_holds_every_weight_of_the_filter_matrix(n_mels):
    # `_log_mel` multiplies by the filters' non-zero weights only: they must be the whole
    # filter matrix, every weight in place, in float32.
    config = FeatureConfig(n_mels=n_mels)
    dense = features.mel_filterbank(config)
    sparse = features._sparse_mel(config)
    assert sparse.dtype == np.float32
    assert sparse.nnz == np.count_nonzero(dense) < dense.size / 4
    np.testing.assert_array_equal(sparse.toarray(), dense)


def test_difference_is_causal_and_streams():
    audio = make_signal(0.3, seed=1)
    full = compute_features(audio, CONFIG)
    assert np.all(full[0, :, 1] == 0)
    np.testing.assert_array_equal(full[1:, :, 1], full[1:, :, 0] - full[:-1, :, 0])
    # Frames computed from a prefix of the audio equal the first frames of the whole: no frame
    # depends on audio after its window.
    prefix = compute_features(audio[: 1024 + 30 * 120], CONFIG)
    assert prefix.shape[0] == 31
    np.testing.assert_array_equal(prefix, full[:31])


def test_silence_is_the_amin_floor():
    result = compute_features(np.zeros(4096, np.float32), CONFIG)
    np.testing.assert_array_equal(result[:, :, 0], np.float32(-100.0))
    np.testing.assert_array_equal(result[:, :, 1], 0.0)


def test_sine_peaks_in_its_mel_band():
    t = np.arange(8192) / 32000
    result = compute_features(np.sin(2 * np.pi * 1000 * t).astype(np.float32), CONFIG)
    centres = librosa.mel_frequencies(n_mels=82, fmin=30.0, fmax=16000.0)[1:-1]
    peak_band = np.argmax(result[:, :, 0].mean(axis=0))
    assert abs(centres[peak_band] - 1000) < (centres[peak_band + 1] - centres[peak_band - 1])


def test_mel_filterbank_is_librosas_slaney_matrix():
    matrix = mel_filterbank(CONFIG)
    assert matrix.shape == (80, 513)
    assert matrix.dtype == np.float32
    # Slaney normalisation: each triangle has area 2 / (upper edge - lower edge) * width / 2 = 1
    # in Hz, i.e. peak 2 / (f[m + 2] - f[m]).
    edges = librosa.mel_frequencies(n_mels=82, fmin=30.0, fmax=16000.0)
    fft_hz = np.arange(513) * 32000 / 1024
    lower, centre, upper = edges[40], edges[41], edges[42]
    triangle = np.maximum(
        0, np.minimum((fft_hz - lower) / (centre - lower), (upper - fft_hz) / (upper - centre))
    )
    np.testing.assert_allclose(matrix[40], triangle * 2 / (upper - lower), rtol=1e-5, atol=1e-9)


def test_frame_times_are_window_centres():
    times = frame_times(3, CONFIG)
    np.testing.assert_allclose(times, [512 / 32000, 632 / 32000, 752 / 32000])


def test_event_frames_round_trips_frame_times():
    n = 1000
    np.testing.assert_array_equal(event_frames(frame_times(n, CONFIG), CONFIG, n), np.arange(n))
    # Within half a hop (1.875 ms) of a centre maps to that frame.
    shifted = frame_times(n, CONFIG) + 0.49 * 120 / 32000
    np.testing.assert_array_equal(event_frames(shifted, CONFIG, n), np.arange(n))


def test_event_frames_clip_to_the_matrix():
    frames = event_frames([0.0, 0.005, 100.0], CONFIG, n_frames=50)
    np.testing.assert_array_equal(frames, [0, 0, 49])
    assert frames.dtype == np.int64
    # 1 s: (32000 - 512) / 120 = 262.4 -> 262
    assert event_frames([1.0], CONFIG, 1000)[0] == 262
    assert event_frames([], CONFIG, 0).shape == (0,)
    with pytest.raises(ValueError):
        event_frames([0.5], CONFIG, 0)


def test_segment_frames_follow_the_config():
    config = FeatureConfig(sample_rate=16000, hop_length=160, fmax=8000.0, segment_seconds=2.0)
    assert config.segment_frames == 200
    assert math.isclose(config.frame_rate, 100.0)
