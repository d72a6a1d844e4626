"""glibc's malloc defaults against `loco_tf.allocator.tune_malloc`, in fresh processes.

    python bench/malloc_bench.py [--rounds 5] [--repeats 5] [--files 20] [--seconds 27]

malloc's settings hold for a whole process and cannot be put back, so each measurement is a
child process: one with glibc's defaults, one that calls `tune_malloc()` first (what the `loco`
command does), taking turns for `--rounds` rounds (the order swapped every round). Each child
times, as medians of `--repeats` calls after one warm-up call:
- the front end alone on one 60 s file (read, down-mix, resample, log-mel; BLAS on one thread,
  as in `transcribe`);
- one 60 s file transcribed end to end (`DrumTranscriber.transcribe`, bfloat16 convolutions);
- a folder of `--files` files of `--seconds` s (`transcribe_many`, bfloat16), as `loco predict
  FOLDER` runs it;
- a LoCo training step of the drum network (batch 32 x 400 frames, as bench/drums_bench.py);
and reports its peak resident memory. The audio is 44.1 kHz 16-bit stereo noise; the network
is the paper's, untrained (its cost does not depend on its weights). Reported: the median over
rounds of each child's figure, in seconds of audio per wall second (milliseconds for the
training step), and tuned / defaults. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
MODES = ("glibc defaults", "tune_malloc")
ROWS = {
    "front end, 60 s file": "x real time",
    "transcribe, 60 s file, bfloat16": "x real time",
    "transcribe_many, folder, bfloat16": "x real time",
    "LoCo training step": "ms",
}


def child(mode: str, folder: str, repeats: int, files: int, seconds: float) -> dict:
    """One process's measurements (run with `--child`)."""
    from loco_tf.allocator import tune_malloc

    tuned = tune_malloc() if mode == MODES[1] else False
    if mode == MODES[1] and not tuned:
        raise SystemExit("tune_malloc() changed nothing here (not glibc, or MALLOC_* set)")
    import threadpoolctl

    sys.path.insert(0, BENCH)
    import drums_bench
    from drums_bench import bench_transcriber, paper_model

    def median_seconds(function, repeats: int) -> float:
        return drums_bench.interleaved({"call": function}, repeats)["call"]

    from loco_tf.features import FeatureConfig
    from loco_tf.recipes.drums import audio_feature_blocks

    config = FeatureConfig()
    model = paper_model(config)
    transcriber = bench_transcriber(model, config, "bfloat16")
    long_file = os.path.join(folder, "long.wav")
    batch = [os.path.join(folder, f"take{index:02d}.wav") for index in range(files)]

    def front_end():
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            return sum(len(block) for block in audio_feature_blocks(long_file, config))

    result = {
        "front end, 60 s file": 60.0 / median_seconds(front_end, repeats),
        "transcribe, 60 s file, bfloat16": 60.0
        / median_seconds(lambda: transcriber.transcribe(long_file), repeats),
        "transcribe_many, folder, bfloat16": files
        * seconds
        / median_seconds(lambda: list(transcriber.transcribe_many(batch)), repeats),
    }
    step = drums_bench.training_steps(repeats)["LoCo (counts)"]
    result["LoCo training step"] = 1000.0 * step
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"mode": mode, "rows": result, "peak_rss_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="Child processes per mode.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed calls in each child.")
    parser.add_argument("--files", type=int, default=20, help="Files in the folder row.")
    parser.add_argument("--seconds", type=float, default=27.0, help="Seconds of each file.")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.repeats, args.files, args.seconds)))
        return

    import numpy as np

    sys.path.insert(0, BENCH)
    from drums_bench import write_noise

    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        write_noise(os.path.join(folder, "long.wav"), 60.0, rng)
        for index in range(args.files):
            write_noise(os.path.join(folder, f"take{index:02d}.wav"), args.seconds, rng)
        for round_ in range(args.rounds):
            order = MODES if round_ % 2 == 0 else MODES[::-1]
            for mode in order:
                command = [
                    sys.executable, os.path.abspath(__file__), "--child", mode,
                    "--folder", folder, "--repeats", str(args.repeats),
                    "--files", str(args.files), "--seconds", str(args.seconds),
                ]  # fmt: skip
                environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
                done = subprocess.run(
                    command, capture_output=True, text=True, env=environment, check=False
                )
                if done.returncode != 0:
                    sys.exit(f"child ({mode}) failed:\n{done.stderr[-3000:]}")
                results[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {round_ + 1}/{args.rounds}, {mode}: done", file=sys.stderr)

    medians = {
        mode: {row: statistics.median(r["rows"][row] for r in runs) for row in ROWS}
        for mode, runs in results.items()
    }
    peaks = {
        mode: statistics.median(r["peak_rss_mib"] for r in runs) for mode, runs in results.items()
    }
    print(f"\nMedians over {args.rounds} child processes per mode ({args.repeats} calls each):")
    print(f"  {'':36} {'unit':>12} {MODES[0]:>15} {MODES[1]:>12} {'tuned/default':>14}")
    ratios = {}
    for row, unit in ROWS.items():
        default, tuned = medians[MODES[0]][row], medians[MODES[1]][row]
        # A speed-up either way: higher x real time, or fewer ms.
        ratios[row] = tuned / default if unit != "ms" else default / tuned
        print(f"  {row:36} {unit:>12} {default:15.1f} {tuned:12.1f} {ratios[row]:13.2f}x")
    print(
        f"  {'peak resident memory':36} {'MiB':>12} {peaks[MODES[0]]:15.0f} {peaks[MODES[1]]:12.0f}"
    )
    print("  (the last column is a speed-up: above 1 means tune_malloc was faster)")
    print(
        json.dumps(
            {
                "bench": "malloc",
                "rounds": args.rounds,
                "medians": {m: {k: round(v, 2) for k, v in r.items()} for m, r in medians.items()},
                "speedup_tuned_over_defaults": {k: round(v, 3) for k, v in ratios.items()},
                "peak_rss_mib": {m: round(v) for m, v in peaks.items()},
                "runs": results,
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
