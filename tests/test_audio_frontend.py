"""The in-graph front end computes the pipeline's features."""

import keras
import numpy as np
import pytest

from loco_tf.features import FeatureConfig, compute_features, num_frames
from loco_tf.layers import LogMelFrontEnd


def _audio(seconds, config, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * config.sample_rate)) / config.sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) * (t % 0.25 < 0.05)  # bursts
    return (tone + 0.01 * rng.normal(size=t.size)).astype(np.float32)


@pytest.mark.parametrize("seconds", [0.02, 0.5, 1.5])
def test_in_graph_features_equal_the_pipeline_features(seconds):
    config = FeatureConfig()
    audio = _audio(seconds, config)
    expected = compute_features(audio, config)
    actual = LogMelFrontEnd(config)(audio[None]).numpy()[0]
    assert actual.shape == expected.shape == (num_frames(audio.size, config), 80, 2)
    # float32 tf.signal.stft vs librosa: measured up to 2e-4 dB on a -100 .. +40 dB scale.
    np.testing.assert_allclose(actual, expected, atol=1e-3, rtol=0)


def test_frame_lengths_and_silence_floor():
    config = FeatureConfig()
    layer = LogMelFrontEnd(config)
    lengths = layer.frame_lengths(np.array([0, config.n_fft - 1, config.n_fft, 48000])).numpy()
    assert lengths.tolist() == [num_frames(n, config) for n in [0, 1023, 1024, 48000]]
    silent = layer(np.zeros((1, 4000), np.float32)).numpy()
    np.testing.assert_allclose(silent[..., 0], config.floor_db, atol=1e-3)
    assert (silent[..., 1] == 0).all()


def test_front_end_config_round_trip_and_custom_config():
    config = FeatureConfig(sample_rate=16000, hop_length=60, n_fft=512, n_mels=40, fmax=8000.0)
    layer = LogMelFrontEnd(config)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert clone.feature_config == config
    audio = _audio(0.3, config, seed=1)
    np.testing.assert_allclose(
        clone(audio[None]).numpy()[0], compute_features(audio, config), atol=1e-3
    )


def test_quiet_tails_differ_more_but_stay_small():
    """Decaying hits whose tails reach the -100 dB floor, like rendered drums: float32 STFT
    rounding grows relative to the level far below the peak. Measured on a rendered groove:
    8e-5 dB above -40 dB, 6e-4 dB above -60 dB, 0.014 dB in the deepest tails."""
    config = FeatureConfig()
    rng = np.random.default_rng(3)
    t = np.arange(2 * config.sample_rate) / config.sample_rate
    audio = rng.normal(size=t.size) * np.exp(-(t % 0.5) * 25.0)  # -108 dB after 0.5 s
    audio = audio.astype(np.float32)
    expected = compute_features(audio, config)
    actual = LogMelFrontEnd(config)(audio[None]).numpy()[0]
    level = expected[..., 0]
    error = np.abs(actual - expected)[..., 0]
    assert level.min() < -80  # the signal does reach deep tails
    assert error[level > -40].max() < 1e-3
    assert error[level > -60].max() < 5e-3
    assert error.max() < 0.05
