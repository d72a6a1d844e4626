"""Keras layers: the event-probability head, the count distribution, the audio front end."""

from loco_tf.layers.audio_frontend import LogMelFrontEnd
from loco_tf.layers.count_distribution import CountDistribution
from loco_tf.layers.event_probabilities import EventProbabilities

__all__ = ["CountDistribution", "EventProbabilities", "LogMelFrontEnd"]
