"""The paper's causal ConvLSTM event detector (§6.1), as a Keras functional model."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from loco_tf.layers import EventProbabilities


@dataclasses.dataclass(frozen=True)
class ConvLSTMConfig:
    """Architecture of the §6.1 drum network; the piano network widens it 2-4x (§7.1).

    Convolutions are causal in time (padded on the past side only), so p(t) depends on frames
    up to t alone (paper eq. 5) and the model can run on a stream chunk by chunk.

    Attributes:
        n_bins: frequency bins of the input (mel bands).
        channels: input channels (log-mel and its time difference: 2).
        num_classes: event classes, one sigmoid each.
        filters: filters of the six 3x4 convolutions ("8 to 16 filters").
        kernel_size: (time, frequency) kernel of every convolution.
        pool_after: indices of the convolutions followed by max-pooling over frequency by 2.
        lstm_units: the recurrent unit (24 in the paper).
        dense_units: the fully connected layer before the output (16 in the paper).
        prior_zero_mass, sequence_length: omega and T of the eq. 15 output bias.
    """

    n_bins: int = 80
    channels: int = 2
    num_classes: int = 3
    filters: tuple[int, ...] = (8, 8, 16, 16, 16, 16)
    kernel_size: tuple[int, int] = (3, 4)
    pool_after: tuple[int, ...] = (1, 3, 5)
    lstm_units: int = 24
    dense_units: int = 16
    prior_zero_mass: float = 0.5
    sequence_length: int = 400


def build_conv_lstm(config: ConvLSTMConfig = ConvLSTMConfig(), name: str = "conv_lstm"):
    """Builds the model: `{"features": [batch, time, bins, channels], "lengths": [batch]}` ->
    event probabilities `[batch, time, classes]`, zero after each sample's length.

    Example:
        >>> model = build_conv_lstm(ConvLSTMConfig(num_classes=3))
        >>> model.compile("adam", loss=loco_tf.LocoLoss(k_max=31))
    """
    features = keras.Input((None, config.n_bins, config.channels), name="features")
    lengths = keras.Input((), dtype="int32", name="lengths")
    k_time, k_freq = config.kernel_size
    x = features
    for index, filters in enumerate(config.filters):
        # Past-only padding in time, "same" padding in frequency.
        x = keras.layers.ZeroPadding2D(((k_time - 1, 0), ((k_freq - 1) // 2, k_freq // 2)))(x)
        x = keras.layers.Conv2D(filters, config.kernel_size, activation="relu")(x)
        if index in config.pool_after:
            x = keras.layers.MaxPooling2D((1, 2))(x)
    bins_left = x.shape[2]
    x = keras.layers.Reshape((-1, bins_left * x.shape[3]))(x)
    x = keras.layers.LSTM(config.lstm_units, return_sequences=True)(x)
    x = keras.layers.Dense(config.dense_units, activation="relu")(x)
    probabilities = EventProbabilities(
        config.num_classes,
        prior_zero_mass=config.prior_zero_mass,
        sequence_length=config.sequence_length,
        name="event_probabilities",
    )(x, lengths=lengths)
    return keras.Model({"features": features, "lengths": lengths}, probabilities, name=name)


def grow_conv_lstm_weights(
    weights: list, config: ConvLSTMConfig, wider: ConvLSTMConfig, base: list
) -> list:
    """The weights of a trained `config` network placed in the wider network `wider`, so that
    the wider one computes the same p(t) (function-preserving growth, Net2Net's aim).

    Every unit of the trained network keeps its weights, and the weights from the new units
    into the old ones are zero: the old units compute what they did, and the output, which
    reads old units only, is unchanged. The new units' own weights are `base`'s (e.g. the wider
    model's fresh initialisation), so they compute something from the start, and gradient
    descent on the zero weights lets them join in.

    Args:
        weights: `build_conv_lstm(config).get_weights()` of the trained network.
        config: its architecture.
        wider: the architecture to grow into: `config` but for `filters` (as many),
            `lstm_units` and `dense_units`, each at least as large.
        base: `build_conv_lstm(wider).get_weights()`: the values of the new units' weights.

    Returns:
        Weights for `build_conv_lstm(wider).set_weights`.
    """
    _check_growth(config, wider)
    # Per weight array: where the old inputs and old outputs sit in the wider array, and the
    # axes they are on (no input axis for a bias).
    plan = []
    inputs = np.arange(config.channels)
    for filters in config.filters:
        outputs = np.arange(filters)
        plan += [(inputs, outputs, 2, 3), (None, outputs, None, 0)]
        inputs = outputs
    # The LSTM reads the last convolution's [bins, channels] flattened, channels fastest.
    bins = np.arange(_bins_after_convolutions(config))
    flat = (bins[:, None] * wider.filters[-1] + inputs[None, :]).reshape(-1)
    lstm = np.arange(config.lstm_units)
    gates = np.concatenate([gate * wider.lstm_units + lstm for gate in range(4)])  # i, f, c, o
    dense = np.arange(config.dense_units)
    classes = np.arange(config.num_classes)
    plan += [(flat, gates, 0, 1), (lstm, gates, 0, 1), (None, gates, None, 0)]
    plan += [(lstm, dense, 0, 1), (None, dense, None, 0)]
    plan += [(dense, classes, 0, 1), (None, classes, None, 0)]
    if not len(plan) == len(weights) == len(base):
        raise ValueError(
            f"expected {len(plan)} weight arrays (a conv-LSTM's), got {len(weights)} and "
            f"{len(base)}"
        )
    return [
        _embed(np.asarray(old), np.asarray(fresh), *where)
        for where, old, fresh in zip(plan, weights, base, strict=True)
    ]


def _check_growth(config: ConvLSTMConfig, wider: ConvLSTMConfig) -> None:
    if len(wider.filters) != len(config.filters):
        raise ValueError(
            f"a grown network has as many convolutions as its start ({len(config.filters)}), "
            f"not {len(wider.filters)}"
        )
    same = dataclasses.replace(
        wider, filters=config.filters, lstm_units=config.lstm_units, dense_units=config.dense_units
    )
    if same != config:
        raise ValueError(
            f"only the filters, LSTM and dense units may grow; the rest must be equal ({config} "
            f"vs {wider})"
        )
    sizes = [*zip(config.filters, wider.filters, strict=True)]
    sizes += [(config.lstm_units, wider.lstm_units), (config.dense_units, wider.dense_units)]
    if any(new < old for old, new in sizes):
        raise ValueError(
            "a network can only grow, every size at least its start's: filters "
            f"{config.filters} -> {wider.filters}, LSTM {config.lstm_units} -> "
            f"{wider.lstm_units}, dense {config.dense_units} -> {wider.dense_units}"
        )


def _bins_after_convolutions(config: ConvLSTMConfig) -> int:
    bins = config.n_bins
    for index in range(len(config.filters)):
        if index in config.pool_after:
            bins //= 2
    return bins


def _embed(old, fresh, inputs, outputs, in_axis, out_axis):
    """`fresh` with `old` written at its `inputs` x `outputs` and zero weights from the other
    inputs into `outputs`."""
    grown = np.array(fresh, dtype=old.dtype)
    if in_axis is not None:
        new_inputs = np.ones(grown.shape[in_axis], bool)
        new_inputs[inputs] = False
        moved = np.moveaxis(grown, (in_axis, out_axis), (0, 1))  # a view of `grown`
        moved[np.ix_(np.flatnonzero(new_inputs), outputs)] = 0.0
    index = [np.arange(size) for size in old.shape]
    if in_axis is not None:
        index[in_axis] = inputs
    index[out_axis] = outputs
    grown[np.ix_(*index)] = old
    return grown
