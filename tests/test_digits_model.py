"""The §8.2 VGG-13 + LSTM digit network: architecture, time = Hilbert window, saving, fitting."""

import dataclasses

import keras
import numpy as np
import pytest

import loco_tf
from loco_tf.hilbert import positions
from loco_tf.layers import BatchedTimeDistributed
from loco_tf.models import VGG13_FILTERS, VGGLSTMConfig, build_vgg_lstm, vgg13_filters
from loco_tf.models.vgg_lstm import build_vgg13_features

TINY = VGGLSTMConfig(image_size=56, filters=vgg13_filters(1 / 16), lstm_units=8, dense_units=6)


def test_filters_follow_vgg13():
    assert VGG13_FILTERS == (64, 64, 128, 128, 256, 256, 512, 512, 512, 512)
    assert vgg13_filters(1 / 8) == (8, 8, 16, 16, 32, 32, 64, 64, 64, 64)
    assert vgg13_filters(1.0) == VGG13_FILTERS
    with pytest.raises(ValueError, match="width must be positive"):
        vgg13_filters(0)
    with pytest.raises(ValueError, match="2\\*\\*n window positions"):
        VGGLSTMConfig(image_size=90)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_architecture_is_vgg13_on_windows_then_lstm_dense_sigmoid(batch_norm):
    config = VGGLSTMConfig(filters=vgg13_filters(1 / 8), batch_norm=batch_norm)
    model = build_vgg_lstm(config)
    assert config.steps == 64 and model.output_shape == (None, 64, 10)
    vgg = model.get_layer("time_distributed").layer
    convs = [layer for layer in vgg.layers if isinstance(layer, keras.layers.Conv2D)]
    pools = [layer for layer in vgg.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert [c.filters for c in convs] == list(vgg13_filters(1 / 8))
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    assert len(pools) == 5 and all(p.pool_size == (2, 2) for p in pools)
    assert vgg.output_shape == (None, 64)  # 32 px -> 1 x 1 after five poolings
    assert model.get_layer("lstm").units == 48 and model.get_layer("dense").units == 24
    head = model.get_layer("event_probabilities")
    assert head.num_classes == 10 and head.sequence_length == 64


@pytest.mark.parametrize("batch_norm", [False, True])
def test_batched_time_distributed_equals_keras_time_distributed_and_traces_once(batch_norm):
    """Against Keras's `TimeDistributed` with the same inner model: the same outputs (in
    training too without batch normalisation, whose statistics are then over batch x time);
    the inner model is called once per trace instead of once per time step."""
    keras.utils.set_random_seed(1)
    config = dataclasses.replace(TINY, batch_norm=batch_norm)
    inner = build_vgg13_features(config)
    calls = []
    original = inner.call

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    inner.call = counted
    inputs = keras.Input((5, 32, 32, 1))
    reference = keras.Model(inputs, keras.layers.TimeDistributed(inner)(inputs))
    batched = keras.Model(inputs, BatchedTimeDistributed(inner)(inputs))
    x = np.random.default_rng(2).normal(size=(3, 5, 32, 32, 1)).astype(np.float32)
    for training in (False, True):
        calls.clear()
        got = batched(x, training=training).numpy()
        assert len(calls) == 1
        calls.clear()
        expected = reference(x, training=training).numpy()
        assert len(calls) == 5
        if training and batch_norm:
            assert np.abs(got - expected).max() > 1e-3  # statistics over 15 windows, not 3
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="does not take a mask"):
        BatchedTimeDistributed(inner)(x, mask=np.ones((3, 5), bool))


def test_time_step_t_sees_window_t_only_after_it():
    """The LSTM runs along the Hilbert curve: changing pixels that only windows from step s on
    contain leaves p(t < s) as it was and changes p(s)."""
    keras.utils.set_random_seed(0)
    model = build_vgg_lstm(TINY)
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (1, 56, 56, 1)).astype(np.float32)
    corners = positions(56, 32, 8)
    for row, col in [(55, 55), (0, 0), (30, 2)]:
        first = min(
            t for t, (r, c) in enumerate(corners) if r <= row < r + 32 and c <= col < c + 32
        )
        changed = image.copy()
        changed[0, row, col, 0] = 255.0 - changed[0, row, col, 0]
        before, after = model(image).numpy(), model(changed).numpy()
        np.testing.assert_array_equal(before[0, :first], after[0, :first])
        assert np.abs(before[0, first] - after[0, first]).max() > 0


def test_round_trips_through_a_keras_file(tmp_path):
    model = build_vgg_lstm(TINY)
    images = np.random.default_rng(1).uniform(0, 255, (2, 56, 56, 1)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), atol=1e-6)


def test_a_tiny_model_fits_counts():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(2)
    images = np.zeros((8, 56, 56, 1), np.float32)
    counts = np.zeros((8, 10), np.float32)
    for i in range(8):  # i bright squares of "class 3" at distinct places
        for k in range(i % 3):
            row, col = 4 + 26 * k, int(rng.integers(0, 28))
            images[i, row : row + 20, col : col + 20] = 255.0
        counts[i, 3] = i % 3
    model = build_vgg_lstm(TINY)
    model.compile(keras.optimizers.Adam(1e-2), loss=loco_tf.LocoLoss(k_max=4))
    history = model.fit(images, counts, batch_size=8, epochs=25, verbose=0).history["loss"]
    assert np.isfinite(history).all()
    assert history[-1] < 0.7 * history[0]
