"""Model builders with dataclass configs."""

from loco_tf.models.conv_lstm import ConvLSTMConfig, build_conv_lstm

__all__ = ["ConvLSTMConfig", "build_conv_lstm"]
