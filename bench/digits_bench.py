"""Digit network speed: VGG-13 once over all Hilbert windows against Keras's `TimeDistributed`.

    python bench/digits_bench.py [--repeats 5] [--width 0.125] [--batch 16]

`build_vgg_lstm` runs its VGG-13 on all T windows of a batch as one batch
(`loco_tf.layers.BatchedTimeDistributed`). The baseline, in the same run, is the same model
with Keras 3's `TimeDistributed`, which calls the VGG once per window (T copies of it in the
traced graph). For each: the first `train_on_batch` (tracing and graph optimisation included),
then the median of interleaved training steps and of `predict_on_batch` calls; the paper's
88 x 88 canvases (T = 64), `LocoLoss(k_max=8)`, batch normalisation as the CPU recipe has it.

Numbers are for this machine and its load at the time (2 cores, shared); compare ratios within
one run. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from unittest import mock

import keras
import numpy as np

from loco_tf import LocoLoss
from loco_tf.models import VGGLSTMConfig, build_vgg_lstm, vgg13_filters
from loco_tf.models import vgg_lstm as vgg_lstm_module

ARMS = ("BatchedTimeDistributed", "Keras TimeDistributed (baseline)")


def build(arm: str, config: VGGLSTMConfig) -> keras.Model:
    keras.utils.set_random_seed(0)
    if arm == ARMS[0]:
        model = build_vgg_lstm(config)
    else:
        with mock.patch.object(
            vgg_lstm_module, "BatchedTimeDistributed", keras.layers.TimeDistributed
        ):
            model = build_vgg_lstm(config)
    model.compile(optimizer="adam", loss=LocoLoss(k_max=8), jit_compile=False)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=float, default=0.125, help="VGG-13 width (1 = paper)")
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    config = VGGLSTMConfig(filters=vgg13_filters(args.width))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch, config.image_size, config.image_size, 1))
    images = images.astype(np.float32)
    counts = rng.integers(0, 3, (args.batch, config.num_classes)).astype(np.float32)

    first, models = {}, {}
    for arm in ARMS:
        start = time.perf_counter()
        models[arm] = build(arm, config)
        models[arm].train_on_batch(images, counts)
        first[arm] = time.perf_counter() - start
        models[arm].predict_on_batch(images)  # traced before timing
    steps = {arm: [] for arm in ARMS}
    predictions = {arm: [] for arm in ARMS}
    for _ in range(args.repeats):
        for arm in ARMS:
            start = time.perf_counter()
            models[arm].train_on_batch(images, counts)
            steps[arm].append(time.perf_counter() - start)
            start = time.perf_counter()
            models[arm].predict_on_batch(images)
            predictions[arm].append(time.perf_counter() - start)
    step = {arm: statistics.median(values) for arm, values in steps.items()}
    predict = {arm: statistics.median(values) for arm, values in predictions.items()}

    base = ARMS[1]
    print(
        f"\nVGG-13 x {args.width:g} + LSTM, {config.image_size} x {config.image_size} canvases, "
        f"T = {config.steps} windows, batch {args.batch} (medians of {args.repeats}):"
    )
    print(f"  {'arm':<34} {'first step s':>12} {'step ms':>9} {'predict ms':>11}")
    for arm in ARMS:
        print(f"  {arm:<34} {first[arm]:12.2f} {1000 * step[arm]:9.1f} {1000 * predict[arm]:11.1f}")
    print(
        f"  baseline / batched: first step {first[base] / first[ARMS[0]]:.2f} x, training step "
        f"{step[base] / step[ARMS[0]]:.2f} x, predict {predict[base] / predict[ARMS[0]]:.2f} x"
    )
    print(
        json.dumps(
            {
                "bench": "digits",
                "width": args.width,
                "batch": args.batch,
                "windows": config.steps,
                "first_step_s": {k: round(v, 3) for k, v in first.items()},
                "train_step_ms": {k: round(1000 * v, 2) for k, v in step.items()},
                "predict_ms": {k: round(1000 * v, 2) for k, v in predict.items()},
                "first_step_speedup": round(first[base] / first[ARMS[0]], 3),
                "train_step_speedup": round(step[base] / step[ARMS[0]], 3),
                "predict_speedup": round(predict[base] / predict[ARMS[0]], 3),
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
