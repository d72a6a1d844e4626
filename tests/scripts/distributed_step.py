"""One training step of a small drum network on a fixed global batch, under a strategy.

`one_step` gives the loss Keras reports and the weights before and after the step, so a test can
compare one device (in the test's own process) with two replicas (mirrored) or two worker
processes (multiworker, TF_CONFIG set by the test): `distributed_train.py STEP.npz` runs it
under those.
"""

import numpy as np

from loco_tf import distribute

GLOBAL_BATCH, FRAMES = 8, 64


def one_step(strategy) -> dict[str, np.ndarray]:
    """The loss of one SGD step on the global batch, the weights before and after it, and the
    number of replicas."""
    import keras
    import tensorflow as tf

    from loco_tf import LocoLoss
    from loco_tf.models import ConvLSTMConfig, build_conv_lstm

    rng = np.random.default_rng(0)
    features = rng.normal(size=(GLOBAL_BATCH, FRAMES, 80, 2)).astype("float32")
    lengths = rng.integers(32, FRAMES + 1, size=GLOBAL_BATCH).astype("int32")
    counts = rng.integers(0, 4, size=(GLOBAL_BATCH, 3)).astype("float32")

    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_conv_lstm(
            ConvLSTMConfig(filters=(4, 4), lstm_units=8, dense_units=8, sequence_length=FRAMES)
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=LocoLoss(k_max=7))
    initial = [w.copy() for w in model.get_weights()]
    inputs = {"features": features, "lengths": lengths}
    dataset = tf.data.Dataset.from_tensor_slices((inputs, counts))
    dataset = distribute.shard_by(dataset.batch(GLOBAL_BATCH), "DATA")
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    return {
        "loss": np.array(history.history["loss"][-1]),
        "replicas": np.array(strategy.num_replicas_in_sync),
        **{f"w{i}": w for i, w in enumerate(model.get_weights())},
        **{f"initial{i}": w for i, w in enumerate(initial)},
    }
