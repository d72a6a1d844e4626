"""Preprocessing speed and tf.data read throughput against what a training step consumes.

    python bench/pipeline_bench.py [--grooves 96] [--kit fluidr3] [--workers 2]

Preprocessing runs on a fixed set of procedural grooves (`pipelines.grooves`, seed 0; no dataset
needed) and is reported in audio seconds per wall second, stage by stage:

- start-up: spawning the worker processes, each importing `loco_tf` (TensorFlow); a run pays it
  once, and the next two stages run in those processes, already started;
- render: MIDI -> WAV with FluidSynth (`render.render_files`, one file per task);
- features + segments: load the WAVs, log-mel features, windows with their counts
  (`prepare.process_sources`, renders cached);
- TFRecord writing: serialising and writing those windows (`tfrecords.write_shards`, one
  process, as in a run);
- end to end: `loco prepare drums` without GMD (`prepare.drum_sets` + `prepare.prepare_sets`)
  into an empty folder: grooves, start-up, renders, features, shards, manifests.

Then the input pipeline: `dataset.training_dataset` windows per second at batch 32, without and
with extract stacking, next to the windows per second that one training step of the paper's drum
network (ConvLSTM, B = 32, T = 400, 80 mel x 2 channels, `LocoLoss(k_max=31)`) consumes. The
input pipeline keeps up when it delivers more windows per second than the step consumes.

A run pays fixed costs besides: the worker start-up above and, in each worker, librosa's first
call (~2 s), so end to end on 30 minutes of grooves reads lower than on hours of GMD (`loco
prepare drums` with defaults, 4.1 h: about 85x here). Numbers are for this machine and its load
at the time; compare ratios, not absolutes. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time

import numpy as np
import soundfile

from loco_tf.pipelines import prepare, render
from loco_tf.pipelines.dataset import Augment, training_dataset
from loco_tf.pipelines.grooves import generate_grooves
from loco_tf.pipelines.tfrecords import SegmentExample, write_shards


def _audio_seconds(paths) -> float:
    return sum(soundfile.info(path).duration for path in paths)


def bench_preprocessing(folder: str, grooves: int, kit: str, workers: int) -> dict[str, float]:
    midi_dir = os.path.join(folder, "midi")
    os.makedirs(midi_dir)
    jobs = []
    for index, groove in enumerate(generate_grooves(grooves, seed=0)):
        midi_path = os.path.join(midi_dir, f"groove-{index:05d}.mid")
        groove.write(midi_path)
        wav_path = os.path.join(folder, "wav", f"groove-{index:05d}.wav")
        jobs.append(render.RenderJob(midi_path, wav_path, kit))
    sample_rate = prepare.FeatureConfig.sample_rate
    kinds = prepare.DRUM_CLASSES
    latency = tuple((kind, render.render_latency(kit, kind, sample_rate)) for kind in kinds)
    spec = prepare.SetSpec(
        name="bench",
        sources=tuple(
            prepare.Source(
                id=os.path.basename(job.midi_path),
                audio_path=job.wav_path,
                annotation_path=job.midi_path,
                annotation_format="midi-drums",
                kit=kit,
                latency=latency,
            )
            for job in jobs
        ),
        classes=prepare.DRUM_CLASSES,
        windows=prepare.TRAIN_WINDOWS,
    )
    config = prepare.PrepareConfig(workers=workers, progress=False)

    with prepare.Workers(workers) as pool:
        # Start-up: spawning the processes, each importing loco_tf (TensorFlow); once per run.
        start = time.perf_counter()
        list(pool.imap(prepare.kit_name, ["a.sf2", "b.sf2"]))
        startup_s = time.perf_counter() - start

        render_one = functools.partial(
            render.render_files, workers=1, sample_rate=sample_rate, progress=False
        )
        start = time.perf_counter()
        results = [r for rs in pool.imap(render_one, [[job] for job in jobs]) for r in rs]
        render_s = time.perf_counter() - start
        assert all(r.status == "rendered" for r in results), [r.error for r in results]

        start = time.perf_counter()
        processed = list(prepare.process_sources(spec, config, pool))
        features_s = time.perf_counter() - start
        assert not any(p.skipped for p in processed), [p.skipped for p in processed]
    audio_s = _audio_seconds(job.wav_path for job in jobs)

    examples = [
        SegmentExample.from_segment(window, copy.features)
        for p in processed
        for copy in p.copies
        for window in copy.segments
    ]
    start = time.perf_counter()
    write_shards(
        examples,
        os.path.join(folder, "write"),
        "bench",
        max(1, grooves // 8),
        class_names=prepare.DRUM_CLASSES,
        feature_config=config.feature_config,
    )
    write_s = time.perf_counter() - start

    out = os.path.join(folder, "end-to-end")
    start = time.perf_counter()
    plan = prepare.drum_sets(out, None, (kit,), procedural=grooves, seed=0)
    report = prepare.prepare_sets(plan, out, config, log=lambda line: None)
    end_to_end_s = time.perf_counter() - start
    return {
        "audio_seconds": audio_s,
        "windows": len(examples),
        "startup_s": startup_s,
        "render_s": render_s,
        "features_s": features_s,
        "write_s": write_s,
        "end_to_end_audio_seconds": sum(s.audio_seconds for s in report.sets),
        "end_to_end_s": end_to_end_s,
        "train_manifest": os.path.join(out, "drums-train.manifest.json"),
    }


def bench_reading(manifest: str, batches: int, stack_probability: float) -> float:
    """Windows per second of `training_dataset` at batch 32, after a warm-up."""
    augment = Augment(stack_probability=stack_probability) if stack_probability else None
    dataset = training_dataset(manifest, 32, augment=augment, shuffle_buffer=256, seed=0)
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return 32 * batches / (time.perf_counter() - start)


def bench_train_step(steps: int) -> float:
    """Seconds per `train_on_batch` of the §6.1 drum network at B=32, T=400, after a warm-up."""
    import keras

    import loco_tf
    from loco_tf.models import ConvLSTMConfig, build_conv_lstm

    model = build_conv_lstm(ConvLSTMConfig())
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loco_tf.LocoLoss(k_max=31))
    rng = np.random.default_rng(0)
    x = {
        "features": rng.normal(-40.0, 20.0, (32, 400, 80, 2)).astype(np.float32),
        "lengths": np.full((32,), 400, np.int32),
    }
    y = rng.integers(0, 12, (32, 3)).astype(np.float32)
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grooves", type=int, default=96, help="procedural grooves (~19 s each)")
    parser.add_argument("--kit", default="fluidr3", help="rendering kit")
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--batches", type=int, default=40, help="tf.data batches timed")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="loco-pipeline-bench-") as folder:
        pre = bench_preprocessing(folder, args.grooves, args.kit, args.workers)
        read_plain = bench_reading(pre["train_manifest"], args.batches, 0.0)
        read_stacked = bench_reading(pre["train_manifest"], args.batches, 0.5)
    step_s = bench_train_step(args.steps)
    consumed = 32 / step_s

    audio = pre["audio_seconds"]
    procs = f"{args.workers} proc"
    rows = [
        ("render", procs, audio, pre["render_s"]),
        ("features + segments", procs, audio, pre["features_s"]),
        ("TFRecord writing", "1 proc", audio, pre["write_s"]),
        ("end to end (prepare drums)", procs, pre["end_to_end_audio_seconds"], pre["end_to_end_s"]),
    ]
    print(
        f"preprocessing: {args.grooves} procedural grooves, kit {args.kit}, {audio:.0f} s of "
        f"audio, {pre['windows']} training windows, {os.cpu_count()} cores"
    )
    print(f"{'stage':<28}{'workers':>9}{'audio s':>10}{'wall s':>9}{'audio s / wall s':>19}")
    print(f"{'worker start-up (once)':<28}{procs:>9}{'':>10}{pre['startup_s']:>9.1f}")
    for name, workers, seconds, wall in rows:
        print(f"{name:<28}{workers:>9}{seconds:>10.0f}{wall:>9.1f}{seconds / wall:>18.0f}x")
    print()
    print(f"{'input pipeline, batch 32':<44}{'windows / s':>14}")
    print(f"{'tf.data training_dataset':<44}{read_plain:>14.0f}")
    print(f"{'tf.data training_dataset, stacking p=0.5':<44}{read_stacked:>14.0f}")
    print(f"{'ConvLSTM train step consumes (32 / step)':<44}{consumed:>14.1f}"
          f"   ({step_s:.2f} s per step)")  # fmt: skip
    print(
        json.dumps(
            {
                "bench": "pipeline",
                "grooves": args.grooves,
                "kit": args.kit,
                "workers": args.workers,
                "audio_seconds": round(audio, 1),
                "worker_startup_s": round(pre["startup_s"], 2),
                "render_x": round(audio / pre["render_s"], 1),
                "features_segments_x": round(audio / pre["features_s"], 1),
                "tfrecord_write_x": round(audio / pre["write_s"], 1),
                "end_to_end_x": round(pre["end_to_end_audio_seconds"] / pre["end_to_end_s"], 1),
                "read_windows_per_s": round(read_plain, 1),
                "read_stacked_windows_per_s": round(read_stacked, 1),
                "train_step_s": round(step_s, 3),
                "train_step_windows_per_s": round(consumed, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
