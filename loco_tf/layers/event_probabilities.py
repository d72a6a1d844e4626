"""The event-probability head: p(t) per class, zero on padded frames, no Keras mask."""

from __future__ import annotations

import keras
import tensorflow as tf

from loco_tf.initializers import CountPriorBias


def valid_frames(inputs: tf.Tensor, mask=None, lengths=None) -> tf.Tensor | None:
    """`[batch, time]` boolean of real (non-padded) frames from a Keras mask or lengths."""
    if lengths is not None:
        frames = tf.range(tf.shape(inputs)[1])
        valid = frames[None, :] < tf.cast(tf.reshape(lengths, [-1]), tf.int32)[:, None]
        return valid if mask is None else valid & tf.cast(mask, tf.bool)
    return None if mask is None else tf.cast(mask, tf.bool)


@keras.saving.register_keras_serializable(package="loco_tf")
class EventProbabilities(keras.layers.Layer):
    """Per-frame event probabilities p(t) = sigmoid(W h(t) + b), one per class (paper eq. 5).

    The bias starts at eq. 15, so that a freshly built model puts about `prior_zero_mass` on a
    zero count for sequences of `sequence_length` frames (paper §5.2).

    Masking: padded frames, known from an incoming Keras mask (e.g. after `keras.layers.Masking`
    and an LSTM) or from `lengths`, get p = 0 — the identity step of the count recursion — and
    the layer returns no mask. A mask must not reach `LocoLoss`: Keras would apply a per-frame mask
    to the per-sample loss.

    The output is float32 under any dtype policy: probabilities near 0 and 1 matter to the loss.

    Args:
        num_classes: number of event classes (e.g. 3 for KD/SD/HH).
        prior_zero_mass: omega of eq. 15, the initial Pr(Y = 0).
        sequence_length: T of eq. 15, the training sequence length in frames.
        kernel_initializer: initializer of the projection's kernel.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `[batch, time, features]` per-frame features (e.g. LSTM outputs).
        mask: optional `[batch, time]` Keras mask, propagated automatically.
        lengths: optional `[batch]` number of valid frames.

    Example:
        >>> h = keras.layers.LSTM(24, return_sequences=True)(features)
        >>> p = loco_tf.layers.EventProbabilities(3, sequence_length=400)(h)
    """

    def __init__(
        self,
        num_classes: int,
        prior_zero_mass: float = 0.5,
        sequence_length: int = 400,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.prior_zero_mass = float(prior_zero_mass)
        self.sequence_length = int(sequence_length)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.projection = keras.layers.Dense(
            self.num_classes,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=CountPriorBias(self.prior_zero_mass, self.sequence_length),
            dtype=self.dtype_policy,
            name="projection",
        )
        self.supports_masking = True

    def build(self, input_shape):
        self.projection.build(input_shape)

    def call(self, inputs, mask=None, lengths=None):
        logits = tf.cast(self.projection(inputs), tf.float32)
        probabilities = tf.sigmoid(logits)
        valid = valid_frames(inputs, mask, lengths)
        if valid is not None:
            probabilities = tf.where(valid[..., None], probabilities, 0.0)
        return probabilities

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def compute_output_spec(self, inputs, mask=None, lengths=None):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype="float32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            prior_zero_mass=self.prior_zero_mass,
            sequence_length=self.sequence_length,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
