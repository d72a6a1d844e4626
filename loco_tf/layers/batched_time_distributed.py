"""`TimeDistributed` that runs its layer once, on every time step at once."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="loco_tf")
class BatchedTimeDistributed(keras.layers.TimeDistributed):
    """Applies `layer` to every time step of `[batch, time, ...]` as one batch of
    `batch * time` inputs.

    Keras 3's `TimeDistributed` calls its layer once per time step when the time axis has a
    static length (a Python loop), so a graph holds as many copies of the layer as there are
    steps: the digit model's VGG-13, 16 or 64 copies, each traced and optimised. Folding time
    into the batch gives one copy and one large convolution per layer (what Keras 2's
    `TimeDistributed` did for an unknown batch size).

    The outputs equal `TimeDistributed`'s for layers that treat batch items independently. A
    `BatchNormalization` inside the layer, in training, normalises over all `batch * time`
    inputs at once instead of step by step (inference, with its moving statistics, is the
    same). Masks are not supported.
    """

    def call(self, inputs, training=None, mask=None):
        if mask is not None:
            raise ValueError(f"{self.name}: BatchedTimeDistributed does not take a mask")
        shape = ops.shape(inputs)
        folded = ops.reshape(inputs, (-1, *inputs.shape[2:]))
        outputs = self.layer(folded, training=training)
        return ops.reshape(outputs, (shape[0], shape[1], *outputs.shape[1:]))

    def compute_mask(self, inputs, mask=None):
        return None
