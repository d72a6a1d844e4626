"""The LoCo loss: negative log-likelihood of the observed count (paper eq. 7)."""

from __future__ import annotations

import warnings

import keras
import tensorflow as tf

from loco_tf.ops import poisson_binomial_log_likelihood

_warned_about_tail = False


def _warn_counts_in_tail(max_count: int, k_max: int) -> None:
    global _warned_about_tail
    if max_count > k_max and not _warned_about_tail:
        _warned_about_tail = True
        warnings.warn(
            f"A count of {max_count} exceeds k_max={k_max}: such counts score the tail bin "
            f"Pr(Y >= {k_max}) (eq. 14), which cannot tell {k_max} from {max_count} events. "
            "Raise k_max or shorten the segments. (Shown once.)",
            stacklevel=3,
        )


def _in_xla_context() -> bool:
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # the check is only for a warning: assume XLA, stay silent
        return True
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


@keras.saving.register_keras_serializable(package="loco_tf")
class LocoLoss(keras.losses.Loss):
    """-log Pr(Y = y): the LoCo loss of Schroeter et al. (ICML 2019), eq. 7.

    The per-frame event probabilities p(t) define, per class, a Poisson-binomial count Y
    (eq. 6) computed exactly in log space by the recursion of eq. 9, truncated at `k_max` with a
    tail bin (eq. 14). The loss of a sample is the sum over classes of -log Pr(Y_c = y_c), the
    negative log-likelihood of its observed counts; the batch is reduced the Keras way.

    Counts above `k_max` score the tail bin Pr(Y >= k_max); a warning says so once.
    A count the probabilities make impossible (more events than frames with p > 0) has loss +inf.

    The loss computes in float32 (default `dtype`) whatever the model's policy, so it is safe
    under `mixed_float16`. Padded frames of `y_pred` must be 0: p = 0 is the identity step of the
    recursion (use `loco_tf.layers.EventProbabilities`, which zeroes them and returns no mask).

    Args:
        k_max: last count bin; the paper uses 31 for drums (T = 400) and 42 for piano.
        from_logits: `y_pred` holds pre-sigmoid values instead of probabilities (padded frames
            then need a logit of -inf).
        method: `"forward_backward"` (analytic gradient from forward and backward messages,
            XLA-compiled; the faster path) or `"scan"` (autodiff through a `tf.scan`); same values.
        reduction, name, dtype: as for `keras.losses.Loss`.

    Call arguments:
        y_true: `[batch, classes]` event counts (any numeric dtype).
        y_pred: `[batch, time, classes]` event probabilities p(t).

    Example:
        >>> model.compile(optimizer="adam", loss=loco_tf.LocoLoss(k_max=31))
        >>> model.fit(spectrograms, counts)  # counts: [batch, classes]

    References:
        Schroeter, Sidorov, Marshall. Weakly-Supervised Temporal Localization via Occurrence
        Count Learning. ICML 2019.
    """

    def __init__(
        self,
        k_max: int = 31,
        from_logits: bool = False,
        method: str = "forward_backward",
        reduction: str = "sum_over_batch_size",
        name: str = "loco_loss",
        dtype: str = "float32",
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.k_max = int(k_max)
        self.from_logits = bool(from_logits)
        self.method = method

    def call(self, y_true, y_pred):
        y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
        if y_true.shape.rank is not None and y_true.shape.rank != 2:
            raise ValueError(
                "LocoLoss expects y_true of shape [batch, classes] (event counts), "
                f"got {y_true.shape}."
            )
        if y_pred.shape.rank is not None and y_pred.shape.rank != 3:
            raise ValueError(
                "LocoLoss expects y_pred of shape [batch, time, classes] (per-frame event "
                f"probabilities), got {y_pred.shape}."
            )
        counts = tf.cast(tf.round(y_true), tf.int32)
        self._check_tail(counts)
        inputs = {"logits" if self.from_logits else "event_probabilities": y_pred}
        log_likelihood = poisson_binomial_log_likelihood(
            counts, k_max=self.k_max, method=self.method, **inputs
        )
        return -tf.reduce_sum(log_likelihood, axis=-1)

    def _check_tail(self, counts: tf.Tensor) -> None:
        if _warned_about_tail:
            return
        if tf.executing_eagerly():
            _warn_counts_in_tail(int(tf.reduce_max(counts)), self.k_max)
        elif not _in_xla_context():  # py_function cannot be compiled by XLA
            tf.py_function(
                lambda m: _warn_counts_in_tail(int(m), self.k_max), [tf.reduce_max(counts)], []
            )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(k_max=self.k_max, from_logits=self.from_logits, method=self.method)
        return config
