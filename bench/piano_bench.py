"""Piano recipe cost: training steps of the piano configurations against the drum network's,
and inference speed of the CPU configuration.

    python bench/piano_bench.py [--repeats 5] [--audio-seconds 60]

Training: one `train_on_batch` (batch 32 x 400 frames x 80 mel x 2 channels, `LocoLoss`) of

- the drum network (§6.1: one 3-class ConvLSTM, k_max 31), the baseline;
- the piano CPU configuration (`piano.piano_config()`: one network for 88 pitches, LSTM 96,
  dense 64, k_max 42), what the shipped model was trained with;
- the paper's piano configuration (`piano.piano_config(full=True)`: nine band networks, each
  the drum network widened 2x).

Median of interleaved repeats, reported as ratios to the drum step. Inference: a 44.1 kHz WAV of
noise transcribed by the CPU configuration the way `loco predict --task piano` does it, in
seconds of audio per wall second, with the convolutions in float32 and in bfloat16
(`--precision`; the bench says which `loco predict` chooses here). Compare ratios within one
run (2 shared cores). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import keras
import numpy as np
import soundfile
from drums_bench import interleaved  # bench/ is on sys.path when this script runs

from loco_tf import LocoLoss
from loco_tf.events import DecodingParameters
from loco_tf.features import FeatureConfig
from loco_tf.recipes.drums import DrumTrainConfig, DrumTranscriber, build_drum_model
from loco_tf.recipes.piano import piano_config
from loco_tf.streaming import ENCODER_DTYPES, encoder_dtype_for

BATCH, FRAMES = 32, 400


def training_steps(repeats: int) -> tuple[dict[str, float], dict[str, int]]:
    rng = np.random.default_rng(0)
    features = FeatureConfig()
    inputs = {
        "features": rng.normal(-40, 20, (BATCH, FRAMES, features.n_mels, 2)).astype(np.float32),
        "lengths": rng.integers(FRAMES // 3, FRAMES + 1, BATCH).astype(np.int32),
    }
    configs = {
        "drums (3 classes, baseline)": DrumTrainConfig(),
        "piano CPU (1 net, 88 pitches)": piano_config(),
        "piano paper (9 band nets, 2x)": piano_config(full=True),
    }
    functions, parameters = {}, {}
    for name, config in configs.items():
        keras.utils.set_random_seed(0)
        model = build_drum_model(config, features)
        model.compile(optimizer="adam", loss=LocoLoss(k_max=config.k_max), jit_compile=False)
        counts = rng.poisson(1.0, (BATCH, len(config.classes))).astype(np.float32)
        functions[name] = lambda model=model, counts=counts: model.train_on_batch(inputs, counts)
        parameters[name] = model.count_params()
    return interleaved(functions, repeats), parameters


def inference(repeats: int, audio_seconds: float) -> dict[str, float]:
    """Seconds of audio per wall second, by the convolutions' dtype (`--precision`)."""
    features = FeatureConfig()
    config = piano_config()
    keras.utils.set_random_seed(0)
    model = build_drum_model(config, features)
    transcribers = {
        dtype: DrumTranscriber(
            model,
            features,
            config.classes,
            [DecodingParameters()] * 88,
            task="piano",
            encoder_dtype=dtype,
        )
        for dtype in ENCODER_DTYPES
    }
    rate = 44100
    audio = np.random.default_rng(0).normal(0, 0.1, int(audio_seconds * rate)).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "noise.wav")
        soundfile.write(path, audio, rate, subtype="PCM_16")
        functions = {
            dtype: (lambda t=transcriber: t.transcribe(path))
            for dtype, transcriber in transcribers.items()
        }
        seconds = interleaved(functions, repeats)
    return {dtype: audio_seconds / value for dtype, value in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--audio-seconds", type=float, default=60.0)
    args = parser.parse_args()

    steps, parameters = training_steps(args.repeats)
    speed = inference(max(3, args.repeats), args.audio_seconds)
    default = encoder_dtype_for("auto")
    baseline = steps["drums (3 classes, baseline)"]
    print(f"\nTraining step, batch {BATCH} x {FRAMES} frames (median of {args.repeats}):")
    print(f"  {'configuration':<32} {'params':>9} {'ms':>8} {'ratio to drums':>15}")
    for name, seconds in steps.items():
        print(
            f"  {name:<32} {parameters[name]:9d} {1000 * seconds:8.1f} {seconds / baseline:15.2f}"
        )
    print(f"\nInference (piano CPU configuration, {args.audio_seconds:.0f} s of 44.1 kHz audio, ")
    print("read + resample + features + network + peak picking), x real time:")
    for dtype, ratio in speed.items():
        print(f"  convolutions in {dtype:<10} {ratio:6.0f}")
    print(
        f"  bfloat16 / float32: {speed['bfloat16'] / speed['float32']:.2f} "
        f"(`loco predict --task piano` here, --precision auto: {default})"
    )
    print(
        json.dumps(
            {
                "bench": "piano",
                "train_step_ms": {k: round(1000 * v, 2) for k, v in steps.items()},
                "ratio_to_drums": {k: round(v / baseline, 3) for k, v in steps.items()},
                "parameters": parameters,
                "inference_x_real_time": {k: round(v, 1) for k, v in speed.items()},
                "predict_default_precision": default,
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
