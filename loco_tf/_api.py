"""The package's public names, imported at once (see `loco_tf/__init__.py`)."""

# ruff: noqa: F401  (imported to be found here)

from loco_tf import events, hilbert, metrics, models, ops
from loco_tf.initializers import CountPriorBias, count_prior_bias
from loco_tf.layers import CountDistribution, EventProbabilities
from loco_tf.losses import LocoLoss
