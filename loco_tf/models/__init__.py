"""Model builders with dataclass configs."""

from loco_tf.models.conv_lstm import ConvLSTMConfig, build_conv_lstm, grow_conv_lstm_weights
from loco_tf.models.vgg_lstm import VGG13_FILTERS, VGGLSTMConfig, build_vgg_lstm, vgg13_filters

__all__ = [
    "VGG13_FILTERS",
    "ConvLSTMConfig",
    "VGGLSTMConfig",
    "build_conv_lstm",
    "build_vgg_lstm",
    "grow_conv_lstm_weights",
    "vgg13_filters",
]
