"""Keras layers: the event-probability head, the count distribution, the audio front end, and a
`TimeDistributed` that runs its layer once over all time steps."""

from loco_tf.layers.audio_frontend import LogMelFrontEnd
from loco_tf.layers.batched_time_distributed import BatchedTimeDistributed
from loco_tf.layers.count_distribution import CountDistribution
from loco_tf.layers.event_probabilities import EventProbabilities

__all__ = [
    "BatchedTimeDistributed",
    "CountDistribution",
    "EventProbabilities",
    "LogMelFrontEnd",
]
