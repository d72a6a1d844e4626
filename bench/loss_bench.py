"""Forward + backward time of the LoCo loss, and its share of a §6.1 drum-network training step.

Compares, in one run and interleaved round by round (the machine is shared and noisy):
  (a) baseline: eq. 9 in probability space with `tf.scan` and autodiff (written here, the way
      the original code computes it; it underflows, see tests/test_ops.py),
  (b) loco_tf "scan": the exact log-space `tf.scan` with autodiff,
  (c) loco_tf "forward_backward": the exact log-space fast path (analytic gradient, XLA loops),
at batch 32, T = 400, 3 classes, k_max + 1 = 32. Prints a table and one JSON line of ratios to (a).

    python bench/loss_bench.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import loco_tf  # noqa: E402
from loco_tf.models import ConvLSTMConfig, build_conv_lstm  # noqa: E402

BATCH, FRAMES, CLASSES, K_MAX = 32, 400, 3, 31


def probability_space_nll(counts, p):
    """The baseline: eq. 9 and eq. 14 in probability space, tf.scan, autodiff."""
    init = tf.concat([tf.ones([BATCH, CLASSES, 1]), tf.zeros([BATCH, CLASSES, K_MAX])], -1)

    def step(pmf, p_t):
        p_t = p_t[..., None]
        shifted = tf.concat([tf.zeros_like(pmf[..., :1]), pmf[..., :-1]], -1)
        new = (1 - p_t) * pmf + p_t * shifted
        tail = pmf[..., -1:] + p_t * pmf[..., -2:-1]
        return tf.concat([new[..., :-1], tail], -1)

    pmf = tf.scan(step, tf.transpose(p, [1, 0, 2]), initializer=init)[-1]
    likelihood = tf.gather(pmf, tf.minimum(counts, K_MAX), batch_dims=2)
    return -tf.reduce_sum(tf.math.log(likelihood), -1)


def loco_nll(method):
    def nll(counts, p):
        log_likelihood = loco_tf.ops.poisson_binomial_log_likelihood(
            counts, p, k_max=K_MAX, method=method
        )
        return -tf.reduce_sum(log_likelihood, -1)

    return nll


def forward_backward(nll):
    @tf.function
    def run(counts, p):
        with tf.GradientTape() as tape:
            tape.watch(p)
            loss = tf.reduce_mean(nll(counts, p))
        return loss, tape.gradient(loss, p)

    return run


def time_interleaved(functions: dict, args, repeats: int) -> dict:
    for function in functions.values():  # trace, compile, warm up
        for _ in range(3):
            function(*args)
    samples = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            out = function(*args)
            np.asarray(out[0])  # wait for the result
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def training_step_seconds(loss, repeats: int, features, lengths, counts) -> float:
    keras.utils.set_random_seed(0)
    model = build_conv_lstm(ConvLSTMConfig(num_classes=CLASSES, sequence_length=FRAMES))
    model.compile(optimizer="adam", loss=loss)
    inputs = {"features": features, "lengths": lengths}
    for _ in range(3):
        model.train_on_batch(inputs, counts)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.train_on_batch(inputs, counts)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--step-repeats", type=int, default=8)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    p = tf.constant(1 / (1 + np.exp(-rng.normal(-4, 2, (BATCH, FRAMES, CLASSES)))), tf.float32)
    counts = tf.constant(rng.integers(0, 12, (BATCH, CLASSES)), tf.int32)
    paths = {
        "(a) probability-space tf.scan (baseline)": forward_backward(probability_space_nll),
        "(b) log-space tf.scan": forward_backward(loco_nll("scan")),
        "(c) log-space forward_backward": forward_backward(loco_nll("forward_backward")),
    }
    seconds = time_interleaved(paths, (counts, p), args.repeats)
    baseline = seconds["(a) probability-space tf.scan (baseline)"]
    default = loco_tf.LocoLoss().method
    default_key = next(k for k in seconds if k.endswith(default))

    features = rng.normal(size=(BATCH, FRAMES, 80, 2)).astype(np.float32)
    lengths = np.full(BATCH, FRAMES, np.int32)
    step = training_step_seconds(
        loco_tf.LocoLoss(k_max=K_MAX), args.step_repeats, features, lengths, counts.numpy()
    )

    print(
        f"LoCo loss, forward + backward, batch {BATCH}, T = {FRAMES}, {CLASSES} classes, "
        f"k_max + 1 = {K_MAX + 1}, median of {args.repeats} interleaved runs"
    )
    print(f"{'path':44s} {'ms':>8s} {'ratio to (a)':>13s}")
    for name, value in seconds.items():
        marker = "  <- LocoLoss default" if name == default_key else ""
        print(f"{name:44s} {value * 1e3:8.2f} {value / baseline:13.3f}{marker}")
    share = seconds[default_key] / step
    print(
        f"\n§6.1 drum network training step (batch {BATCH} x {FRAMES} frames x 80 mel x 2): "
        f"{step * 1e3:.0f} ms; the default loss's forward + backward is {share:.1%} of it."
    )
    print(
        json.dumps(
            {
                "bench": "loss",
                "batch": BATCH,
                "frames": FRAMES,
                "classes": CLASSES,
                "bins": K_MAX + 1,
                "ms": {name.split(" ", 1)[0]: round(v * 1e3, 3) for name, v in seconds.items()},
                "ratio_to_baseline": {
                    "log_scan": round(seconds["(b) log-space tf.scan"] / baseline, 3),
                    "forward_backward": round(
                        seconds["(c) log-space forward_backward"] / baseline, 3
                    ),
                },
                "default_method": default,
                "default_ratio": round(seconds[default_key] / baseline, 3),
                "target_default_ratio": 0.5,
                "train_step_ms": round(step * 1e3, 1),
                "loss_share_of_train_step": round(share, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
