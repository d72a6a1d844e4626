"""Drum recipe speed: a LoCo training step against the fully supervised twin's, and inference.

    python bench/drums_bench.py [--repeats 15] [--audio-seconds 60] [--sizes F,F,.../LSTM/DENSE]
                                [--batch-files 20] [--batch-seconds 27]

Training: one `train_on_batch` of the §6.1 network (one 3-class ConvLSTM, batch 32 x 400
frames x 80 mel x 2 channels) with `LocoLoss(k_max=31)` (counts) and with the twin's
`FrameCrossEntropy` (frame targets), and the per-instrument variant (three 1-class networks)
with `LocoLoss`; median of interleaved repeats. Target: LoCo <= 1.1 x the twin.

Inference: a stereo 16-bit WAV file of noise at 44.1 kHz (a user's usual file: the down-mix and
resampling are included), transcribed the way `loco predict` does it
(`DrumTranscriber.transcribe`: read, down-mix, resample,
log-mel features, chunked causal network, peak picking), and its two halves alone: the front end
(`audio_feature_blocks`) and the network on precomputed features (`CausalStreamer.run`); end to
end and the network again with bfloat16 convolutions (`loco predict --precision bfloat16`, its
default on CPUs with native bfloat16: the bench says which row `loco predict` runs here).
Baselines in the same run: the front end as it was before (features in blocks of 8,192
frames, the FFT on all cores, the dense mel product and a float64 log, 16-bit files read as
floats), and the same features from `librosa.feature.melspectrogram`; the network with Keras's
LSTM layer instead of `lstm_recurrence`; end to end with a new read-ahead thread per call
instead of a reused one; and, for end to end, all of those together (the transcriber as it was
before).
And a folder of shorter files (by default 20 of 27 s, the mean length of 20 GMD test takes), with
bfloat16: one `transcribe` per file against `transcribe_many`, as `loco predict` runs them.
Reported as seconds of audio per wall second, median of interleaved repeats. The network's cost
does not depend on its weights or on the audio, so an untrained network and noise measure it.
Target: >= 500 x real time end to end.

Like the `loco` command, the bench first sets glibc's malloc to reuse freed blocks
(`loco_tf.allocator.tune_malloc`; `--glibc-malloc` keeps the defaults, as runs before
2026-11-29 had them). Numbers are for this machine and its load at the time (2 cores, shared);
compare ratios within one run. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import threading
import time

import keras
import librosa
import numpy as np
import scipy.fft
import soundfile

from loco_tf import LocoLoss, features
from loco_tf.allocator import tune_malloc
from loco_tf.events import DecodingParameters
from loco_tf.features import FeatureConfig, compute_features
from loco_tf.pipelines.audio import load_audio, mix_to_mono
from loco_tf.recipes import drums
from loco_tf.recipes.drums import (
    CausalStreamer,
    DrumTrainConfig,
    DrumTranscriber,
    FrameCrossEntropy,
    audio_feature_blocks,
    build_drum_model,
    conv_lstm_config,
    frame_targets,
)
from loco_tf.streaming import encoder_dtype_for

BATCH, FRAMES, CLASSES = 32, 400, 3
BEFORE = "bf16 before (old front end, Keras LSTM, thread per call)"
THREAD_PER_CALL = "bf16, a read-ahead thread per call (before)"


def log_mel_before(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """`features._log_mel` as it was: the power in new arrays, the whole (mostly zero) mel
    matrix in one product, the log in float64."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, config.n_fft)[:: config.hop_length]
    window = features._window(config.n_fft)
    spectrum = scipy.fft.rfft(frames * window, axis=1, workers=features._FFT_WORKERS)
    power = np.square(spectrum.real)
    power += np.square(spectrum.imag)
    mel = power @ features.mel_filterbank(config).T
    return 10.0 * np.log10(np.maximum(mel.astype(np.float64), config.amin))


def read_mono_before(sound: soundfile.SoundFile, frames: int) -> np.ndarray:
    """`drums._read_mono` as it was: every file read as float32 samples, then mixed."""
    return mix_to_mono(sound.read(frames, dtype="float32", always_2d=True))


@contextlib.contextmanager
def front_end_before():
    """The front end as it was: features in blocks of 8,192 frames, each FFT on all cores,
    `log_mel_before`, `read_mono_before`."""
    saved = features._FRAMES_PER_BLOCK, features._FFT_WORKERS, features._log_mel
    saved_read = drums._read_mono
    features._FRAMES_PER_BLOCK, features._FFT_WORKERS = 8192, -1
    features._log_mel, drums._read_mono = log_mel_before, read_mono_before
    try:
        yield
    finally:
        features._FRAMES_PER_BLOCK, features._FFT_WORKERS, features._log_mel = saved
        drums._read_mono = saved_read


def _thread_per_call(task):
    """`drums._in_worker_thread` as it was before: a new thread for every read-ahead."""
    finished = threading.Event()

    def run():
        try:
            task()
        finally:
            finished.set()

    threading.Thread(target=run, daemon=True).start()
    return finished


@contextlib.contextmanager
def thread_per_call():
    """The read-ahead as it was: a new thread per `transcribe` call (a new glibc arena, whose
    pages are faulted in afresh) instead of a reused worker."""
    saved = drums._in_worker_thread
    drums._in_worker_thread = _thread_per_call
    try:
        yield
    finally:
        drums._in_worker_thread = saved


def interleaved(functions: dict, repeats: int) -> dict[str, float]:
    """Median seconds per call, the functions called in turn after one warm-up call each."""
    for function in functions.values():
        function()
    samples = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def training_steps(repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    config = FeatureConfig()
    inputs = {
        "features": rng.normal(-40, 20, (BATCH, FRAMES, config.n_mels, 2)).astype(np.float32),
        "lengths": rng.integers(FRAMES // 3, FRAMES + 1, BATCH).astype(np.int32),
    }
    event_frames = rng.integers(0, FRAMES, (BATCH, CLASSES, 8)).astype(np.int32)
    counts = (event_frames < inputs["lengths"][:, None, None]).sum(-1).astype(np.float32)
    targets = frame_targets(event_frames, inputs["lengths"], FRAMES, 1, 0.25).numpy()

    def step(per_instrument: bool, loss, labels):
        keras.utils.set_random_seed(0)
        model = build_drum_model(DrumTrainConfig(per_instrument=per_instrument), config)
        model.compile(optimizer="adam", loss=loss, jit_compile=False)
        return lambda: model.train_on_batch(inputs, labels)

    functions = {
        "LoCo (counts)": step(False, LocoLoss(k_max=31), counts),
        "twin (frames, BCE)": step(False, FrameCrossEntropy(FRAMES), targets),
        "LoCo per-instrument (3 nets)": step(True, LocoLoss(k_max=31), counts),
    }
    for function in functions.values():  # trace and compile before timing
        function()
    return interleaved(functions, repeats)


def paper_model(config: FeatureConfig) -> keras.Model:
    """The §6.1 network, untrained (seed 0): its cost does not depend on its weights."""
    keras.utils.set_random_seed(0)
    return build_drum_model(DrumTrainConfig(), config)


def bench_transcriber(
    model: keras.Model, config: FeatureConfig, encoder_dtype: str = "float32"
) -> DrumTranscriber:
    """`model` as `loco predict` runs it, with default decoding (its hits are not scored)."""
    return DrumTranscriber(
        model, config, ("KD", "SD", "HH"), [DecodingParameters()] * 3,
        encoder_dtype=encoder_dtype,
    )  # fmt: skip


def write_noise(path: str, seconds: float, rng: np.random.Generator) -> None:
    """`seconds` of noise as a 16-bit stereo WAV at 44.1 kHz, a user's usual recording (the
    down-mix and the resampling are part of what is timed)."""
    audio = rng.normal(0, 0.1, (int(seconds * 44100), 2)).astype(np.float32)
    soundfile.write(path, audio, 44100, subtype="PCM_16")


def inference(
    model: keras.Model, repeats: int, audio_seconds: float, wider: DrumTrainConfig | None = None
) -> dict[str, float]:
    config = FeatureConfig()
    transcriber = bench_transcriber(model, config)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "noise.wav")
        write_noise(path, audio_seconds, np.random.default_rng(0))
        feature_matrix = compute_features(load_audio(path, config), config)
        streamer: CausalStreamer = transcriber.streamer
        fast = bench_transcriber(model, config, "bfloat16")
        before = bench_transcriber(model, config, "bfloat16")
        before.streamer = CausalStreamer(model, before.streamer.chunk_frames, "bfloat16", False)

        def transcribe_before():
            with front_end_before(), thread_per_call():
                before.transcribe(path)

        def thread_per_call_transcribe():
            with thread_per_call():
                fast.transcribe(path)

        def front_end(before: bool):
            with front_end_before() if before else contextlib.nullcontext():
                return sum(len(b) for b in audio_feature_blocks(path, config))

        extra = {}
        if wider is not None:  # the same chunked pass for a network of other sizes
            wide = bench_transcriber(build_drum_model(wider, config), config, "bfloat16")
            extra = {
                sized_row("network", wider): lambda: wide.streamer.run(feature_matrix),
                sized_row("end to end", wider): lambda: wide.transcribe(path),
            }
        times = interleaved(
            {
                **extra,
                "end to end (transcribe)": lambda: transcriber.transcribe(path),
                "end to end, bfloat16 convolutions": lambda: fast.transcribe(path),
                THREAD_PER_CALL: thread_per_call_transcribe,
                BEFORE: transcribe_before,
                "front end (read + resample + log-mel)": lambda: front_end(False),
                "front end before (8192-frame blocks, dense mel)": lambda: front_end(True),
                "front end baseline: librosa melspectrogram": lambda: librosa_front_end(
                    path, config
                ),
                "network (chunked causal pass)": lambda: streamer.run(feature_matrix),
                "network, bfloat16 convolutions": lambda: fast.streamer.run(feature_matrix),
                "network, bfloat16, Keras LSTM (before)": lambda: before.streamer.run(
                    feature_matrix
                ),
            },
            repeats,
        )
    return {name: audio_seconds / seconds for name, seconds in times.items()}


def batch_inference(
    model: keras.Model, repeats: int, files: int, seconds: float
) -> dict[str, float]:
    """A folder of `files` files of `seconds` each (44.1 kHz stereo noise), bfloat16: one
    `transcribe` after another against `transcribe_many` (what `loco predict` does), which
    computes the next file's features while the network finishes this one's."""
    transcriber = bench_transcriber(model, FeatureConfig(), "bfloat16")
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        paths = [os.path.join(folder, f"take{index:02d}.wav") for index in range(files)]
        for path in paths:
            write_noise(path, seconds, rng)
        times = interleaved(
            {
                f"{files} files of {seconds:g} s, bfloat16, one transcribe each": lambda: [
                    transcriber.transcribe(path) for path in paths
                ],
                f"{files} files of {seconds:g} s, bfloat16, transcribe_many": lambda: list(
                    transcriber.transcribe_many(paths)
                ),
            },
            repeats,
        )
    return {name: files * seconds / elapsed for name, elapsed in times.items()}


def sized_row(stage: str, config: DrumTrainConfig) -> str:
    """The table's row name of `stage` ("network" or "end to end") for `--sizes`' network."""
    return f"{stage}, bfloat16, {sizes_name(config)}"


def sizes_name(config: DrumTrainConfig) -> str:
    """`config`'s sizes as --sizes takes them: FILTERS/LSTM/DENSE."""
    return f"{','.join(map(str, config.filters))}/{config.lstm_units}/{config.dense_units}"


def parse_sizes(text: str) -> DrumTrainConfig:
    """`FILTERS/LSTM/DENSE`, e.g. `16,16,32,32,32,32/48/32`, as a `DrumTrainConfig`."""
    try:
        filters, lstm, dense = text.split("/")
        return DrumTrainConfig(
            filters=tuple(int(f) for f in filters.split(",")),
            lstm_units=int(lstm),
            dense_units=int(dense),
        )
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"--sizes wants FILTERS/LSTM/DENSE, e.g. 16,16,32,32,32,32/48/32, not {text!r} "
            f"({error})"
        ) from None


def librosa_front_end(path: str, config: FeatureConfig) -> np.ndarray:
    """The features as `librosa.feature.melspectrogram` gives them (what `compute_features`
    called before it computed the same numbers itself): the baseline of the front end."""
    audio = load_audio(path, config)
    power = librosa.feature.melspectrogram(
        y=audio, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        window="hann", center=False, power=2.0, n_mels=config.n_mels, fmin=config.fmin,
        fmax=config.fmax,
    )  # fmt: skip
    log_mel = 10.0 * np.log10(np.maximum(power.astype(np.float64), config.amin)).T
    return np.stack([log_mel, np.diff(log_mel, axis=0, prepend=log_mel[:1])], axis=-1)


def network_macs_per_second(config: DrumTrainConfig, feature_config: FeatureConfig) -> float:
    """Multiply-accumulates of the network per second of audio, counted from its layers (as
    `conv_lstm_config` builds them: kernel, pooling, sizes): what any implementation must
    compute, to set the measured speed against."""
    network = conv_lstm_config(config, feature_config, CLASSES)
    bins, channels, macs = network.n_bins, network.channels, 0
    k_time, k_freq = network.kernel_size
    for index, filters in enumerate(network.filters):
        macs += bins * filters * channels * k_time * k_freq
        channels = filters
        if index in network.pool_after:
            bins //= 2
    inputs = bins * channels
    macs += 4 * network.lstm_units * (inputs + network.lstm_units)
    macs += network.lstm_units * network.dense_units + network.dense_units * CLASSES
    return macs * feature_config.frame_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--audio-seconds", type=float, default=60.0)
    parser.add_argument("--batch-files", type=int, default=20, help="Files in the batch rows.")
    parser.add_argument(
        "--batch-seconds", type=float, default=27.0, help="Seconds of each batch file."
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=None,
        help="Also time a network of these sizes, FILTERS/LSTM/DENSE (e.g. 16,16,32,32,32,32/48/"
        "32, a model grown with `loco train drums --init-from`), beside the paper's.",
    )
    parser.add_argument(
        "--glibc-malloc",
        action="store_true",
        help="Keep glibc's malloc defaults (by default the bench tunes it as `loco` does; "
        "bench/malloc_bench.py compares the two).",
    )
    args = parser.parse_args()
    tuned = False if args.glibc_malloc else tune_malloc()

    steps = training_steps(args.repeats)
    model = paper_model(FeatureConfig())
    speed = inference(model, max(3, args.repeats // 3), args.audio_seconds, args.sizes)
    batch = batch_inference(model, max(3, args.repeats // 3), args.batch_files, args.batch_seconds)
    loco, twin = steps["LoCo (counts)"], steps["twin (frames, BCE)"]
    print(f"\nTraining step, batch {BATCH} x {FRAMES} frames (median of {args.repeats}):")
    print(f"  {'model':<32} {'ms':>8} {'ratio to twin':>14}")
    for name, seconds in steps.items():
        print(f"  {name:<32} {1000 * seconds:8.1f} {seconds / twin:14.3f}")
    print(f"  LoCo / twin = {loco / twin:.3f} (target <= 1.1)")
    print(f"\nInference on {args.audio_seconds:.0f} s of 44.1 kHz stereo audio:")
    print(f"  {'stage':<56} {'x real time':>12}")
    for name, ratio in speed.items():
        print(f"  {name:<56} {ratio:12.0f}")
    for name, ratio in batch.items():
        print(f"  {name:<56} {ratio:12.0f}")
    default = encoder_dtype_for("auto")
    default_row = (
        "end to end, bfloat16 convolutions" if default == "bfloat16" else "end to end (transcribe)"
    )
    print(
        f"  (target >= 500 x end to end; `loco predict` here, --precision auto: {default}, "
        f"{speed[default_row]:.0f} x)"
    )
    print(f"  malloc: {'tune_malloc, as the loco command' if tuned else 'glibc defaults'}")
    gain = speed["end to end, bfloat16 convolutions"] / speed[BEFORE]
    reuse = speed["end to end, bfloat16 convolutions"] / speed[THREAD_PER_CALL]
    front = speed["front end (read + resample + log-mel)"]
    front /= speed["front end before (8192-frame blocks, dense mel)"]
    recurrence = speed["network, bfloat16 convolutions"]
    recurrence /= speed["network, bfloat16, Keras LSTM (before)"]
    print(
        f"  against the baselines: end to end {gain:.2f} x, front end {front:.2f} x, "
        f"network (bfloat16) {recurrence:.2f} x, the reused read-ahead thread {reuse:.2f} x"
    )
    macs = network_macs_per_second(DrumTrainConfig(), FeatureConfig())
    network = speed["network (chunked causal pass)"]
    print(
        f"  the network computes {macs / 1e6:.0f} M multiply-adds per audio second: at "
        f"{network:.0f} x real time that is {2 * macs * network / 1e9:.1f} GFLOP/s; 500 x "
        f"would need {2 * macs * 500 / 1e9:.0f} GFLOP/s for the network alone"
    )
    if args.sizes is not None:
        wide_macs = network_macs_per_second(args.sizes, FeatureConfig())
        wide = speed[sized_row("network", args.sizes)]
        print(
            f"  network {sizes_name(args.sizes)} (filters/LSTM/dense): {wide_macs / 1e6:.0f} M "
            "multiply-adds per audio "
            f"second ({wide_macs / macs:.2f} x the paper's); its network (bfloat16) runs at "
            f"{wide / speed['network, bfloat16 convolutions']:.2f} x the paper's speed"
        )
    print(
        json.dumps(
            {
                "bench": "drums",
                "train_step_ms": {k: round(1000 * v, 2) for k, v in steps.items()},
                "loco_over_twin": round(loco / twin, 4),
                "inference_x_real_time": {k: round(v, 1) for k, v in speed.items()},
                "batch_x_real_time": {k: round(v, 1) for k, v in batch.items()},
                "end_to_end_bf16_over_baseline": round(gain, 3),
                "front_end_over_baseline": round(front, 3),
                "network_bf16_over_keras_lstm": round(recurrence, 3),
                "reused_thread_over_thread_per_call": round(reuse, 3),
                "predict_default_precision": default,
                "predict_default_x_real_time": round(speed[default_row], 1),
                "network_macs_per_audio_second": round(macs),
                "sizes": None if args.sizes is None else sizes_name(args.sizes),
                "tune_malloc": tuned,
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
