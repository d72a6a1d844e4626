"""Runs the drum recipe's `train` under a strategy, optionally interrupted mid-epoch.

    python distributed_train.py STRATEGY DATA OUT CPU_DEVICES INTERRUPT_EPOCH [STEP]

INTERRUPT_EPOCH >= 0 raises in batch 1 of that epoch (exit status 3), as a killed job would
stop; -1 trains to the end. Prints the epochs this run went through and whether it wrote the
model, for the test to read. With STEP, first takes `distributed_step.one_step` under the
strategy and writes it to STEP-I.npz, I being the worker's index in TF_CONFIG (0 without it):
the same processes serve both checks, as each costs a TensorFlow start.
"""

import sys

from loco_tf import distribute

strategy_name, data, out, cpu_devices, interrupt = sys.argv[1:6]
step_out = sys.argv[6] if len(sys.argv) > 6 else None
if int(cpu_devices):
    distribute.split_cpu(int(cpu_devices))
# Made first, before any other TF work; `drums.train` gets this one again (`make_strategy`).
strategy = distribute.make_strategy(strategy_name)

import keras  # noqa: E402

from loco_tf.recipes import drums  # noqa: E402


class Stop(Exception):
    pass


class Watch(keras.callbacks.Callback):
    def __init__(self, interrupt_epoch):
        super().__init__()
        self.interrupt_epoch, self.epoch, self.epochs = interrupt_epoch, None, []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epochs.append(epoch)

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.interrupt_epoch and batch == 1:
            raise Stop


if step_out:
    import json
    import os

    import numpy as np
    from distributed_step import one_step

    worker = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0)
    np.savez(f"{step_out}-{worker}.npz", **one_step(strategy))

config = drums.DrumTrainConfig(
    data=data, out=out, filters=(4, 4), lstm_units=8, dense_units=8, batch_size=4, epochs=3,
    steps_per_epoch=3, shuffle_buffer=8, strategy=strategy_name,
)  # fmt: skip
watch = Watch(int(interrupt))
try:
    result = drums.train(config, callbacks=[watch], verbose=0, log=lambda message: None)
except Stop:
    print("epochs", watch.epochs, "interrupted", flush=True)
    sys.exit(3)
print("epochs", watch.epochs, "validation", result.validation is not None, flush=True)
