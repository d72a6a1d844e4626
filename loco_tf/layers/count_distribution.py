"""Per-frame event probabilities -> the distribution of the event count (eq. 6, 9, 14)."""

from __future__ import annotations

import keras
import tensorflow as tf

from loco_tf.layers.event_probabilities import valid_frames
from loco_tf.ops import LOG_PMF_METHODS, poisson_binomial_log_pmf


@keras.saving.register_keras_serializable(package="loco_tf")
class CountDistribution(keras.layers.Layer):
    """Pr(Y = k), k = 0 .. k_max, per class, with the last bin Pr(Y >= k_max).

    Turns per-frame event probabilities into the Poisson-binomial count distribution, computed
    exactly in log space. Use it for expected counts (sum_k k Pr(Y = k), or sum_t p(t) without
    truncation), count uncertainty, or a count loss of your own.

    Masking: padded frames (from a Keras mask or `lengths`) are treated as p = 0; the layer
    returns no mask. Computes in float32 under any dtype policy.

    Args:
        k_max: last bin (eq. 14).
        log_space: return log-probabilities instead of probabilities.
        method: "scan" (eq. 9 frame by frame, in log space; exact logs of any probability) or
            "tree" (the same distribution in float64 probabilities combined pairwise, depth
            log2(T): 27x as fast on a minute of frames, for probabilities of long sequences;
            see `loco_tf.ops.poisson_binomial_log_pmf`).
        **kwargs: standard layer arguments.

    Call arguments:
        event_probabilities: `[batch, time, classes]` p(t).
        mask: optional `[batch, time]` Keras mask.
        lengths: optional `[batch]` number of valid frames.

    Returns:
        `[batch, classes, k_max + 1]`.

    Example:
        >>> pmf = loco_tf.layers.CountDistribution(k_max=31)(p)
        >>> expected = keras.ops.sum(pmf * keras.ops.arange(32, dtype="float32"), axis=-1)
    """

    def __init__(self, k_max: int = 31, log_space: bool = False, method: str = "scan", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if method not in LOG_PMF_METHODS:
            raise ValueError(f"method must be one of {LOG_PMF_METHODS}, got {method!r}")
        self.k_max = int(k_max)
        self.log_space = bool(log_space)
        self.method = method
        self.supports_masking = True

    def call(self, event_probabilities, mask=None, lengths=None):
        valid = valid_frames(event_probabilities, mask, lengths)
        p = tf.cast(event_probabilities, tf.float32)
        if valid is not None:
            p = tf.where(valid[..., None], p, 0.0)
        log_pmf = poisson_binomial_log_pmf(p, k_max=self.k_max, method=self.method)
        return log_pmf if self.log_space else tf.exp(log_pmf)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1], self.k_max + 1)

    def compute_output_spec(self, event_probabilities, mask=None, lengths=None):
        shape = self.compute_output_shape(event_probabilities.shape)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(k_max=self.k_max, log_space=self.log_space, method=self.method)
        return config
