"""Growing a trained conv-LSTM into a wider one (`grow_conv_lstm_weights`)."""

import numpy as np
import pytest
import tensorflow as tf

from loco_tf import LocoLoss
from loco_tf.models import ConvLSTMConfig, build_conv_lstm, grow_conv_lstm_weights

SMALL = ConvLSTMConfig(n_bins=16, filters=(3, 4, 4), pool_after=(0, 2), lstm_units=5, dense_units=4)
WIDE = ConvLSTMConfig(n_bins=16, filters=(5, 4, 7), pool_after=(0, 2), lstm_units=8, dense_units=6)


def random_weights(model, rng):
    """Random weights everywhere (no zero biases), so that a misplaced one shows."""
    return [rng.normal(0, 0.4, w.shape).astype(np.float32) for w in model.get_weights()]


def features(rng, batch=2, frames=60, bins=16):
    return {
        "features": rng.normal(0, 1, (batch, frames, bins, 2)).astype(np.float32),
        "lengths": np.array([frames, frames - 17][:batch], np.int32),
    }


def test_a_grown_network_computes_the_same_probabilities():
    rng = np.random.default_rng(0)
    small, wide = build_conv_lstm(SMALL), build_conv_lstm(WIDE)
    small.set_weights(random_weights(small, rng))
    base = random_weights(wide, rng)
    wide.set_weights(grow_conv_lstm_weights(small.get_weights(), SMALL, WIDE, base))
    x = features(rng)
    expected = small(x).numpy()
    assert expected.std() > 0.05  # not saturated: a wrong weight would move it
    np.testing.assert_allclose(wide(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    # The new units are base's and compute something: the last convolution's new filters and
    # the LSTM's new units' gate columns are base's own values.
    grown = wide.get_weights()
    np.testing.assert_array_equal(grown[4][..., 4:], base[4][..., 4:])  # conv 3 kernel
    for gate in range(4):  # LSTM kernel columns i, f, c, o of units 5-7
        columns = slice(gate * 8 + 5, gate * 8 + 8)
        np.testing.assert_array_equal(grown[6][:, columns], base[6][:, columns])
    # Growing to the same sizes gives the start's weights back.
    same = grow_conv_lstm_weights(small.get_weights(), SMALL, SMALL, random_weights(small, rng))
    for got, want in zip(same, small.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_the_new_units_learn():
    """The zero weights from new units into old ones get a gradient, so one step changes p(t)
    through them; the network is not stuck being the small one."""
    rng = np.random.default_rng(1)
    small, wide = build_conv_lstm(SMALL), build_conv_lstm(WIDE)
    small.set_weights(random_weights(small, rng))
    wide.set_weights(
        grow_conv_lstm_weights(small.get_weights(), SMALL, WIDE, random_weights(wide, rng))
    )
    x = features(rng)
    counts = tf.constant([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(LocoLoss(k_max=8)(counts, wide(x)))
    # get_weights() order: 3 convolutions (kernel, bias), the LSTM's 3, dense, output.
    gradients = [g.numpy() for g in tape.gradient(loss, wide.trainable_variables)]
    dense_kernel = gradients[9]  # [5 -> 8 LSTM units, 4 -> 6 dense units]
    assert np.abs(dense_kernel[5:, :4]).max() > 1e-6  # new LSTM units -> old dense units
    output = gradients[11]
    assert np.abs(output[4:]).max() > 1e-6  # new dense units -> the classes


@pytest.mark.parametrize(
    ("wider", "message"),
    [
        (ConvLSTMConfig(n_bins=16, filters=(5, 3, 7), pool_after=(0, 2), lstm_units=8),
         "only grow"),
        (ConvLSTMConfig(n_bins=16, filters=(5, 4), pool_after=(0, 2)), "as many convolutions"),
        (ConvLSTMConfig(n_bins=16, filters=(5, 4, 7), pool_after=(0, 1), lstm_units=8,
                        dense_units=6), "may grow"),
    ],
)  # fmt: skip
def test_a_network_that_does_not_only_grow_is_refused(wider, message):
    small = build_conv_lstm(SMALL)
    with pytest.raises(ValueError, match=message):
        grow_conv_lstm_weights(small.get_weights(), SMALL, wider, small.get_weights())


def test_weights_of_several_networks_are_refused():
    """A per-instrument or banded model's weights are several networks' arrays: no growth."""
    small, wide = build_conv_lstm(SMALL), build_conv_lstm(WIDE)
    with pytest.raises(ValueError, match="expected 13 weight arrays .* got 26 and 13"):
        grow_conv_lstm_weights(small.get_weights() * 2, SMALL, WIDE, wide.get_weights())
    with pytest.raises(ValueError, match="expected 13 weight arrays .* got 13 and 39"):
        grow_conv_lstm_weights(small.get_weights(), SMALL, WIDE, wide.get_weights() * 3)


def test_the_growth_keeps_keras_dtypes():
    small, wide = build_conv_lstm(SMALL), build_conv_lstm(WIDE)
    grown = grow_conv_lstm_weights(small.get_weights(), SMALL, WIDE, wide.get_weights())
    assert [w.shape for w in grown] == [w.shape for w in wide.get_weights()]
    assert all(w.dtype == np.float32 for w in grown)
    wide.set_weights(grown)
