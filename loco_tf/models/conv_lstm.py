"""The paper's causal ConvLSTM event detector (§6.1), as a Keras functional model."""

from __future__ import annotations

import dataclasses

import keras

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
