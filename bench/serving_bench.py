"""Speed of the exported drum model's signatures: `FusedLSTM` and the tree count distribution
against their baselines.

    python bench/serving_bench.py [--repeats 5] [--audio-seconds 60] [--chunk-seconds 1]

Builds the export's `ServingModule` (what `loco export` saves and TF Serving runs: a TensorFlow
graph, no XLA) for the §6.1 drum network three times: as exported (its LSTM run by
`lstm_recurrence`, `FusedLSTM`; the whole file's count distribution by `method="tree"`), and as
baselines in the same run, with Keras's LSTM layer and with the count distribution by
`tf.scan` over every frame (eq. 9, `method="scan"`, what exports before session 11 run). Times
`serving_default` on a whole file (front end, network, count distribution, decoding) and the
`stream` signature fed the same audio in chunks (front end, network). Reported as seconds of
audio per wall second, median of interleaved repeats. An untrained network and noise measure
it: the cost depends on neither the weights nor the audio.

Numbers are for this machine and its load at the time; compare ratios within one run. Prints a
table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from loco_tf.events import DecodingParameters
from loco_tf.export import ExportSpec, ServingModule
from loco_tf.features import FeatureConfig
from loco_tf.recipes.drums import DrumTrainConfig, build_drum_model

CLASSES = ("KD", "SD", "HH")
DEFAULT = "FusedLSTM, tree counts (as exported)"
KERAS_LSTM = "Keras LSTM (baseline)"
SCAN_COUNTS = "tf.scan counts (baseline)"


def signatures(module: ServingModule, audio: np.ndarray, chunk: int) -> dict:
    waveform = tf.constant(audio[None])
    lengths = tf.constant([len(audio)], tf.int32)

    def offline():
        return module.serving_default(waveform, lengths)["num_events"].numpy()

    def stream():
        state = module.stream_start(tf.constant(1))
        for first in range(0, len(audio), chunk):
            out = module.stream(tf.constant(audio[None, first : first + chunk]), state)
            state = {name: out[name] for name in state}
        return out["probabilities"].numpy()

    return {"offline": offline, "stream": stream}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--audio-seconds", type=float, default=60.0)
    parser.add_argument("--chunk-seconds", type=float, default=1.0)
    args = parser.parse_args()

    config = FeatureConfig()
    keras.utils.set_random_seed(0)
    model = build_drum_model(DrumTrainConfig(), config)
    spec = ExportSpec(CLASSES, config, (DecodingParameters(),) * 3, 31)
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, int(args.audio_seconds * config.sample_rate)).astype(np.float32)
    chunk = int(args.chunk_seconds * config.sample_rate)
    functions = {}
    configurations = (
        (True, "tree", DEFAULT),
        (False, "tree", KERAS_LSTM),
        (True, "scan", SCAN_COUNTS),
    )
    for fused, count_method, label in configurations:
        module = ServingModule(model, spec, fused_lstm=fused, count_method=count_method)
        for name, function in signatures(module, audio, chunk).items():
            if name == "offline" or count_method == "tree":  # stream has no count distribution
                functions[(name, label)] = function
    results = {key: [] for key in functions}
    for function in functions.values():  # trace before timing
        function()
    for _ in range(args.repeats):
        for key, function in functions.items():
            start = time.perf_counter()
            function()
            results[key].append(time.perf_counter() - start)
    speed = {key: args.audio_seconds / statistics.median(v) for key, v in results.items()}

    print(f"\nExported drum model on {args.audio_seconds:.0f} s of audio at 32 kHz")
    print(f"(stream: {args.chunk_seconds:g} s chunks; median of {args.repeats}):")
    print(f"  {'signature':<18} {'configuration':<38} {'x real time':>12}")
    for (name, label), value in speed.items():
        print(f"  {name:<18} {label:<38} {value:12.0f}")
    ratios = {
        name: speed[(name, DEFAULT)] / speed[(name, KERAS_LSTM)] for name in ("offline", "stream")
    }
    tree_ratio = speed[("offline", DEFAULT)] / speed[("offline", SCAN_COUNTS)]
    print(
        f"  FusedLSTM against Keras's LSTM: offline {ratios['offline']:.2f} x, "
        f"stream {ratios['stream']:.2f} x"
    )
    print(f"  tree count distribution against tf.scan: offline {tree_ratio:.2f} x")
    print(
        json.dumps(
            {
                "bench": "serving",
                "x_real_time": {f"{n} / {label}": round(v, 1) for (n, label), v in speed.items()},
                "fused_over_keras": {n: round(r, 3) for n, r in ratios.items()},
                "tree_over_scan_offline": round(tree_ratio, 3),
                "chunk_seconds": args.chunk_seconds,
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
