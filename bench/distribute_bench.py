"""Training throughput of the drum network under tf.distribute: windows per second.

    python bench/distribute_bench.py [--steps 20] [--batch 32]

Three configurations, each in fresh processes (device setup happens before TensorFlow starts):
one device (the baseline), `MirroredStrategy` over 2 logical CPU devices, and
`MultiWorkerMirroredStrategy` with 2 worker processes on localhost. Each runs `model.fit` with
the LoCo loss on synthetic 400-frame windows (global batch `--batch`); the first epoch warms up
(tracing, XLA compilation of the loss) and the second is timed. Scaling efficiency =
throughput / (baseline throughput x replicas). On this 2-core machine both replicas share the
same two cores, so efficiency well below 1 is expected: the figures measure the overhead of the
distribution machinery, not a speed-up; on N GPUs or N machines each replica has its own device.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time
import numpy as np
from loco_tf import distribute
name, cpus, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if cpus:
    distribute.split_cpu(cpus)
strategy = distribute.make_strategy(name)
import keras, tensorflow as tf
from loco_tf import LocoLoss
from loco_tf.models import ConvLSTMConfig, build_conv_lstm
rng = np.random.default_rng(0)
n = batch * 4
features = rng.normal(size=(n, 400, 80, 2)).astype("float32")
lengths = np.full(n, 400, "int32")
counts = rng.integers(0, 6, size=(n, 3)).astype("float32")
data = tf.data.Dataset.from_tensor_slices(({"features": features, "lengths": lengths}, counts))
data = distribute.shard_by(data.repeat().batch(batch), "DATA").prefetch(2)
keras.utils.set_random_seed(0)
with strategy.scope():
    model = build_conv_lstm(ConvLSTMConfig())
    model.compile(optimizer="adam", loss=LocoLoss(k_max=31))
class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start
clock = Clock()
model.fit(data, epochs=2, steps_per_epoch=steps, verbose=0, callbacks=[clock])
print("RESULT", json.dumps({"seconds": clock.seconds, "replicas": strategy.num_replicas_in_sync}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(args, env=None):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _result(process) -> dict:
    out, err = process.communicate(timeout=3600)
    if process.returncode != 0:
        raise RuntimeError(err[-3000:])
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after a warm-up)")
    parser.add_argument("--batch", type=int, default=32, help="global batch (windows)")
    args = parser.parse_args()
    rows = []
    start = time.perf_counter()
    one = _result(_launch(["default", 0, args.steps, args.batch]))
    rows.append(("1 device", 1, one["seconds"]))
    two = _result(_launch(["mirrored", 2, args.steps, args.batch]))
    rows.append(("mirrored, 2 logical CPUs", two["replicas"], two["seconds"]))
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    workers = [
        _launch(
            ["multiworker", 0, args.steps, args.batch],
            {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
        )
        for i in range(2)
    ]
    results = [_result(worker) for worker in workers]
    rows.append(("multiworker, 2 processes", 2, max(r["seconds"] for r in results)))

    baseline = args.batch * args.steps / rows[0][2]
    print(f"drum network (§6.1), LoCo loss, global batch {args.batch} x 400 frames, "
          f"{args.steps} timed steps; {os.cpu_count()} CPU cores")  # fmt: skip
    print(
        f"{'configuration':<28} {'replicas':>8} {'windows/s':>10} {'ratio':>7} {'efficiency':>10}"
    )
    table = []
    for name, replicas, seconds in rows:
        throughput = args.batch * args.steps / seconds
        ratio = throughput / baseline
        efficiency = ratio / replicas
        print(f"{name:<28} {replicas:>8} {throughput:>10.1f} {ratio:>7.3f} {efficiency:>10.3f}")
        table.append(
            {"configuration": name, "replicas": replicas, "windows_per_second": throughput,
             "ratio": ratio, "efficiency": efficiency}
        )  # fmt: skip
    print(json.dumps({"bench": "distribute", "batch": args.batch, "steps": args.steps,
                      "wall_seconds": time.perf_counter() - start, "rows": table}))  # fmt: skip


if __name__ == "__main__":
    main()
