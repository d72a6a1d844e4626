"""The paper's digit detector (§8.2): VGG-13 convolutions on Hilbert-scan windows, an LSTM."""

from __future__ import annotations

import dataclasses

import keras

from loco_tf.hilbert import HilbertScan, grid_order
from loco_tf.layers import BatchedTimeDistributed, EventProbabilities

VGG13_FILTERS = (64, 64, 128, 128, 256, 256, 512, 512, 512, 512)
"""Filters of VGG-13's ten 3x3 convolutions, two per block (Simonyan and Zisserman, 2014)."""


def vgg13_filters(width: float = 1.0) -> tuple[int, ...]:
    """VGG-13's filters times `width` (e.g. 1/8 for a CPU), at least one per convolution."""
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}.")
    return tuple(max(1, round(filters * width)) for filters in VGG13_FILTERS)


@dataclasses.dataclass(frozen=True)
class VGGLSTMConfig:
    """Architecture of the §8.2 digit network.

    An image is cut into `window` x `window` sub-images every `stride` pixels along a Hilbert
    curve (`loco_tf.hilbert.HilbertScan`, §8.1); each sub-image goes through the convolutional
    part of VGG-13 (five blocks of two 3x3 "same" convolutions with ReLU, each block followed by
    2x2 max-pooling), the sequence of their features through an LSTM, a ReLU dense layer and a
    sigmoid per class.

    Attributes:
        image_size: side of the square input image in pixels; must equal
            `window + stride * (2**n - 1)`.
        channels: input channels (1 for MNIST).
        window: side of a sub-image; 32 takes VGG's five poolings down to 1 x 1.
        stride: pixels between neighbouring windows (the curve's granularity; the paper's 8).
        num_classes: event classes (10 digits), one sigmoid each.
        filters: the ten convolutions' filters, two per block (`vgg13_filters(width)`).
        lstm_units: the recurrent unit (48 in the paper).
        dense_units: the fully connected layer before the output (24 in the paper).
        input_scale: the input is multiplied by this first (1/255: pixel values in, [0, 1] on).
        batch_norm: batch normalisation after each convolution, before its ReLU (VGG-13 with
            batch norm, as torchvision's `vgg13_bn`); not in the paper, an option for short
            training budgets.
        prior_zero_mass: omega of the eq. 15 output bias (T is the number of windows).
    """

    image_size: int = 88
    channels: int = 1
    window: int = 32
    stride: int = 8
    num_classes: int = 10
    filters: tuple[int, ...] = VGG13_FILTERS
    lstm_units: int = 48
    dense_units: int = 24
    input_scale: float = 1 / 255
    batch_norm: bool = False
    prior_zero_mass: float = 0.5

    def __post_init__(self):
        grid_order(self.image_size, self.window, self.stride)  # raises on a bad geometry
        if len(self.filters) != len(VGG13_FILTERS):
            raise ValueError(
                f"filters: VGG-13 has {len(VGG13_FILTERS)} convolutions, got {len(self.filters)}"
            )

    @property
    def steps(self) -> int:
        """T, the number of windows in the scan (and the sequence length of eq. 15)."""
        return 4 ** grid_order(self.image_size, self.window, self.stride)


def build_vgg13_features(config: VGGLSTMConfig, name: str = "vgg13") -> keras.Model:
    """The convolutional part of VGG-13 on one `[window, window, channels]` sub-image ->
    `[features]` (the last block's output, flattened)."""
    window = keras.Input((config.window, config.window, config.channels), name="window")
    x = window
    for index, filters in enumerate(config.filters):
        block, conv = index // 2 + 1, index % 2 + 1
        name = f"block{block}_conv{conv}"
        if config.batch_norm:
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
            x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
        else:
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
        if conv == 2:
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    return keras.Model(window, keras.layers.Flatten(name="flatten")(x), name=name)


def build_vgg_lstm(config: VGGLSTMConfig = VGGLSTMConfig(), name: str = "vgg_lstm") -> keras.Model:
    """Builds the model: images `[batch, size, size, channels]` (pixel values, scaled by
    `input_scale`) -> event probabilities `[batch, T, classes]`, T windows in Hilbert order.

    Time step t is the window at `loco_tf.hilbert.window_centres(image_size, window, stride)[t]`.
    The sub-model `vgg13` (`model.get_layer("time_distributed").layer`) gives the
    representation of a single sub-image; it runs once on all T windows of the batch
    (`BatchedTimeDistributed`; models saved before it, with Keras's `TimeDistributed`, load as
    they were).

    Example:
        >>> model = build_vgg_lstm(VGGLSTMConfig(filters=vgg13_filters(1 / 8)))
        >>> model.compile("adam", loss=loco_tf.LocoLoss(k_max=8))
        >>> model.fit(images, counts)  # counts: [batch, 10] digits of each class per image
    """
    images = keras.Input((config.image_size, config.image_size, config.channels), name="image")
    x = keras.layers.Rescaling(config.input_scale, name="rescale")(images)
    x = HilbertScan(config.image_size, config.window, config.stride, name="hilbert_scan")(x)
    x = BatchedTimeDistributed(build_vgg13_features(config), name="time_distributed")(x)
    x = keras.layers.LSTM(config.lstm_units, return_sequences=True, name="lstm")(x)
    x = keras.layers.Dense(config.dense_units, activation="relu", name="dense")(x)
    probabilities = EventProbabilities(
        config.num_classes,
        prior_zero_mass=config.prior_zero_mass,
        sequence_length=config.steps,
        name="event_probabilities",
    )(x)
    return keras.Model(images, probabilities, name=name)
