"""Model builders with dataclass configs."""

from loco_tf.models.conv_lstm import ConvLSTMConfig, build_conv_lstm
from loco_tf.models.vgg_lstm import VGG13_FILTERS, VGGLSTMConfig, build_vgg_lstm, vgg13_filters

__all__ = [
    "VGG13_FILTERS",
    "ConvLSTMConfig",
    "VGGLSTMConfig",
    "build_conv_lstm",
    "build_vgg_lstm",
    "vgg13_filters",
]
