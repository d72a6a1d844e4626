"""loco-tf: learn where events happen in time from labels that only say how many happened.

LoCo (Localization through Counting; Schroeter, Sidorov and Marshall, ICML 2019) as Keras 3 /
TensorFlow objects: the exact log-space count loss, the layers around it, and the eq. 15 bias.
"""

from loco_tf import events, hilbert, metrics, models, ops
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
