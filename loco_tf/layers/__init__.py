"""Keras layers: the event-probability head and the count distribution."""

from loco_tf.layers.count_distribution import CountDistribution
from loco_tf.layers.event_probabilities import EventProbabilities

__all__ = ["CountDistribution", "EventProbabilities"]
