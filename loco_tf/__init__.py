"""loco-tf: learn where events happen in time from labels that only say how many happened.

LoCo (Localization through Counting; Schroeter, Sidorov and Marshall, ICML 2019) as Keras 3 /
TensorFlow objects: the exact log-space count loss, the layers around it, and the eq. 15 bias.
"""

from loco_tf import _startup

with _startup.quiet_start_up(_startup.is_command_line()):
    import tensorflow as _tf

    if _startup.is_command_line():
        _tf.config.list_physical_devices()  # its line about CUDA comes now, while held back

from loco_tf import events, hilbert, metrics, models, ops  # noqa: E402
from loco_tf._version import __version__
from loco_tf.initializers import CountPriorBias, count_prior_bias
from loco_tf.layers import CountDistribution, EventProbabilities
from loco_tf.losses import LocoLoss

__all__ = [
    "CountDistribution",
    "CountPriorBias",
    "EventProbabilities",
    "LocoLoss",
    "__version__",
    "count_prior_bias",
    "events",
    "hilbert",
    "metrics",
    "models",
    "ops",
]
