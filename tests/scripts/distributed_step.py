"""One training step of a small drum network on a fixed global batch, under a strategy.

    python distributed_step.py STRATEGY OUT.npz [CPU_DEVICES]

Writes the loss Keras reports and the weights after the step, so a test can compare one device
with two replicas (mirrored) or two worker processes (multiworker, TF_CONFIG set by the test).
"""

import sys

import numpy as np

from loco_tf import distribute

strategy_name, out = sys.argv[1], sys.argv[2]
if len(sys.argv) > 3:
    distribute.split_cpu(int(sys.argv[3]))
strategy = distribute.make_strategy(strategy_name)  # first, before any other TF work

import keras  # noqa: E402

keras.config.disable_traceback_filtering()
import tensorflow as tf  # noqa: E402

from loco_tf import LocoLoss  # noqa: E402
from loco_tf.models import ConvLSTMConfig, build_conv_lstm  # noqa: E402

GLOBAL_BATCH, FRAMES = 8, 64
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
dataset = tf.data.Dataset.from_tensor_slices(({"features": features, "lengths": lengths}, counts))
dataset = distribute.shard_by(dataset.batch(GLOBAL_BATCH), "DATA")
history = model.fit(dataset, epochs=1, verbose=0)
np.savez(
    out,
    loss=np.array(history.history["loss"][-1]),
    replicas=np.array(strategy.num_replicas_in_sync),
    **{f"w{i}": w for i, w in enumerate(model.get_weights())},
    **{f"initial{i}": w for i, w in enumerate(initial)},
)
print("done", strategy.num_replicas_in_sync, flush=True)
