"""`loco prepare`: sets, counts against the generating labels, resuming, folders, bad input."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile
import tensorflow as tf
from click.testing import CliRunner

from loco_tf.pipelines import audio as audio_module
from loco_tf.pipelines import grooves, render
from loco_tf.pipelines import prepare as prepare_module
from loco_tf.pipelines.tfrecords import SegmentExample, read_manifest, serialize_example
from loco_tf.recipes.prepare_cli import prepare

SR = 32000
# The three-class reduction of GM drum notes, written out independently of the readers.
DRUM_NOTE_CLASS = {35: 0, 36: 0, 37: 1, 38: 1, 40: 1, 42: 2, 44: 2, 46: 2, 22: 2, 26: 2}
CLASSES = ("KD", "SD", "HH")
GROOVES = 6
GMD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "groove"


def can_render(kits=("timgm6mb",)):
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):
        return False
    return all(os.path.isfile(render.KITS[kit]) for kit in kits)


needs_rendering = pytest.mark.skipif(
    not can_render(), reason="rendering needs pyfluidsynth, libfluidsynth and TimGM6mb.sf2"
)


def invoke(*args):
    result = CliRunner().invoke(prepare, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.output
    return result


def read_records(manifest):
    records = []
    for path in manifest.files:
        for serialized in tf.data.TFRecordDataset(path):
            feature = tf.train.Example.FromString(serialized.numpy()).features.feature
            records.append(
                {
                    "source": feature["source"].bytes_list.value[0].decode(),
                    "start_frame": feature["start_frame"].int64_list.value[0],
                    "num_frames": feature["num_frames"].int64_list.value[0],
                    "counts": list(feature["counts"].int64_list.value),
                }
            )
    return records


def groove_notes(midi_path):
    """(time, class index) of every labelled note, read with pretty_midi alone."""
    (instrument,) = pretty_midi.PrettyMIDI(str(midi_path)).instruments
    return [
        (n.start, DRUM_NOTE_CLASS[n.pitch]) for n in instrument.notes if n.pitch in DRUM_NOTE_CLASS
    ]


def procedural_args(out, *extra):
    return [
        "drums",
        "--data-dir",
        out.parent / "no-gmd-here",
        "--procedural",
        GROOVES,
        "--kits",
        "timgm6mb",
        "--files-per-shard",
        1,
        "--no-progress",
        "--out",
        out,
        *extra,
    ]


@pytest.fixture(scope="module")
def procedural(tmp_path_factory):
    out = tmp_path_factory.mktemp("procedural") / "out"
    result = invoke(*procedural_args(out, "--workers", 2))
    assert result.exit_code == 0, result.output
    return out, result.output


@needs_rendering
def test_procedural_drums_writes_every_set(procedural):
    out, output = procedural
    assert "generating 6 procedural grooves" in output
    for name, files in [("drums-train", 4), ("drums-validation", 1), ("drums-test-timgm6mb", 1)]:
        manifest = read_manifest(out / f"{name}.manifest.json")
        assert manifest.class_names == CLASSES
        assert manifest.k_max == 31
        assert manifest.totals["num_sources"] == files
        assert all(os.path.isfile(path) for path in manifest.files)
        assert len(read_records(manifest)) == manifest.totals["num_examples"] > 0
        run = json.loads((out / f"{name}.prepare.json").read_text())
        assert run["complete"] and run["parameters"]["info"]["kit"] == "timgm6mb"
    assert not (out / "drums-validation-timgm6mb.manifest.json").exists()


@needs_rendering
def test_evaluation_counts_equal_the_generated_labels(procedural):
    out, _ = procedural
    midi_dir = out / "audio" / "procedural" / "seed-0" / "midi"
    generated = list(grooves.generate_grooves(GROOVES, seed=0))
    for name, groove in [("drums-validation", 4), ("drums-test-timgm6mb", 5)]:
        (instrument,) = generated[groove].instruments
        labelled = [
            DRUM_NOTE_CLASS[n.pitch] for n in instrument.notes if n.pitch in DRUM_NOTE_CLASS
        ]
        expected = np.bincount(labelled, minlength=3).tolist()
        assert read_manifest(out / f"{name}.manifest.json").totals["counts"] == expected
        cached = groove_notes(midi_dir / f"groove-{groove:05d}.mid")
        assert np.bincount([c for _, c in cached], minlength=3).tolist() == expected


@needs_rendering
def test_training_windows_count_the_labels_inside_them(procedural):
    out, _ = procedural
    latency = [render.render_latency("timgm6mb", kind, SR) for kind in CLASSES]
    events = {}
    for groove in range(4):
        name = f"groove-{groove:05d}.mid"
        notes = groove_notes(out / "audio" / "procedural" / "seed-0" / "midi" / name)
        # Frame of an event: the frame whose window centre (t * 120 + 512 samples) is nearest,
        # the first frame for the events before its centre.
        events[name] = [(max(0, round(((t + latency[c]) * SR - 512) / 120)), c) for t, c in notes]
    records = read_records(read_manifest(out / "drums-train.manifest.json"))
    lengths = {r["num_frames"] for r in records}
    assert min(lengths) >= round(0.5 * SR / 120) and max(lengths) <= 400 and len(lengths) > 10
    for record in records:
        start, stop = record["start_frame"], record["start_frame"] + record["num_frames"]
        expected = np.bincount(
            [c for frame, c in events[record["source"]] if start <= frame < stop], minlength=3
        )
        assert record["counts"] == list(expected), record


@needs_rendering
def test_rerun_skips_complete_sets(procedural):
    out, _ = procedural
    before = {p: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    result = invoke(*procedural_args(out, "--workers", 1))
    assert result.exit_code == 0, result.output
    assert result.output.count("already complete") == 3
    assert {p: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()} == before


@needs_rendering
def test_same_shards_with_one_worker_as_with_two(procedural, tmp_path):
    out, _ = procedural
    again = tmp_path / "out"
    assert invoke(*procedural_args(again, "--workers", 1)).exit_code == 0
    shards = sorted(p.name for p in out.glob("*.tfrecord"))
    assert shards == sorted(p.name for p in again.glob("*.tfrecord")) and len(shards) == 6
    for name in shards:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def serialized_digest():
    frames = (np.array([1]), np.array([], np.int64), np.array([0, 2]))
    example = SegmentExample(np.ones((3, 80, 2), np.float32), np.array([1, 0, 2]), "x", 7, frames)
    return hashlib.sha256(serialize_example(example)).hexdigest()


def test_records_are_the_same_bytes_in_another_process():
    """Shards are byte-identical across runs only if a record's bytes do not depend on the
    process: protobuf map order follows the string hash seed unless serialised
    deterministically."""
    env = {**os.environ, "PYTHONHASHSEED": "12345", "TF_CPP_MIN_LOG_LEVEL": "3"}
    script = "import test_prepare; print(test_prepare.serialized_digest())"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "PYTHONPATH": os.path.dirname(__file__)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    # The last line: pyfluidsynth prints where it found its library first when CI is set.
    assert result.stdout.strip().splitlines()[-1] == serialized_digest()


@needs_rendering
def test_resume_rewrites_only_what_is_missing_and_a_changed_set(procedural, tmp_path):
    source, _ = procedural
    out = tmp_path / "out"
    shutil.copytree(source, out)
    manifest_text = (out / "drums-train.manifest.json").read_text()
    lost = out / "drums-train-00001-of-00004.tfrecord"
    lost_bytes = lost.read_bytes()
    # What a kill -9 during drums-train leaves: some shards, no manifest, an incomplete run file.
    lost.unlink()
    (out / "drums-train.manifest.json").unlink()
    run_file = out / "drums-train.prepare.json"
    run = json.loads(run_file.read_text())
    run["complete"] = False
    run_file.write_text(json.dumps(run))
    (out / "drums-train-00002-of-00004.tfrecord.tmp-999999999").write_bytes(b"partial")
    kept = {p: p.stat().st_mtime_ns for p in out.glob("drums-train-*.tfrecord")}

    result = invoke(*procedural_args(out, "--workers", 1))
    assert result.exit_code == 0, result.output
    assert result.output.count("already complete") == 2
    assert lost.read_bytes() == lost_bytes
    assert (out / "drums-train.manifest.json").read_text() == manifest_text
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert not list(out.glob("*.tmp-*"))

    result = invoke(*procedural_args(out, "--workers", 1, "--train-hop", 1.0))
    assert result.exit_code == 0, result.output
    assert result.output.count("already complete") == 2  # validation and test are unchanged
    run = json.loads(run_file.read_text())
    assert run["complete"] and run["parameters"]["windows"]["hop_seconds"] == 1.0
    records = read_records(read_manifest(out / "drums-train.manifest.json"))
    starts = {r["start_frame"] for r in records}
    assert starts == set(range(0, max(starts) + 1, round(SR / 120)))


# ---------------------------------------------------------------------------------------------
# Folders of the user's own audio.


def drum_audio(times, seconds=4.0, rate=SR, channels=1):
    """Decaying noise bursts at `times`, the same in every channel."""
    rng = np.random.default_rng(0)
    audio = np.zeros(int(seconds * rate), np.float32)
    burst = (rng.normal(0, 0.3, rate // 40) * np.exp(-np.arange(rate // 40) / (rate / 200))).astype(
        np.float32
    )
    for t in times:
        start = int(t * rate)
        audio[start : start + burst.size] += burst[: audio.size - start]
    return np.repeat(audio[:, None], channels, axis=1) if channels > 1 else audio


EVENTS = [(0.1, "HH"), (0.25, "KD"), (0.6, "SD"), (0.9, "HH"), (1.0, "KD"), (1.9, "SD"),
          (2.2, "KD"), (2.6, "HH"), (3.1, "SD"), (3.7, "HH")]  # fmt: skip


def write_csv(path, events):
    path.write_text("time,label\n" + "".join(f"{t},{label}\n" for t, label in events))


def write_good(folder):
    soundfile.write(folder / "good.wav", drum_audio([t for t, _ in EVENTS]), SR)
    write_csv(folder / "good.csv", EVENTS)


def folder_args(folder, out, *extra):
    """Fixed 1.5 s windows every 1.5 s: each event is counted once."""
    return ["folder", folder, "--task", "drums", "--out", out, "--name", "mine", "--workers", 1,
            "--no-progress", "--hop", 1.5, "--min-crop", 0, *extra]  # fmt: skip


def test_folder_csv_drums(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    write_good(folder)
    # Audio at 44.1 kHz with its annotation in another folder under a suffixed name.
    soundfile.write(folder / "b.wav", drum_audio([t for t, _ in EVENTS[:5]], rate=44100), 44100)
    write_csv(folder / "sub" / "b_annotations.csv", EVENTS[:5])
    result = invoke(*folder_args(folder, tmp_path / "out"))
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "out" / "mine.manifest.json")
    assert manifest.totals["counts"] == [3 + 2, 3 + 1, 4 + 2]
    assert {s.id for shard in manifest.shards for s in shard.sources} == {"good.wav", "b.wav"}
    last_window = (4 * SR - 1024) // 120 + 1 - 800
    assert {r["num_frames"] for r in read_records(manifest)} == {400, last_window}


def test_sample_rate_copies_move_events_with_the_audio(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_good(folder)
    out = tmp_path / "out"
    result = invoke(
        *folder_args(folder, out, "--rate-factors", "0.9,0.95", "--compression", "gzip")
    )
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out / "mine.manifest.json")
    assert manifest.compression == "GZIP" and manifest.files[0].endswith(".tfrecord.gz")
    sources = {s.id: s for shard in manifest.shards for s in shard.sources}
    assert set(sources) == {"good.wav", "good.wav@rate=0.9", "good.wav@rate=0.95"}
    assert sources["good.wav@rate=0.9"].duration_seconds == pytest.approx(4.0 / 0.9, abs=1e-3)
    # Every event of each copy is in one of its fixed windows.
    assert manifest.totals["counts"] == [3 * 3, 3 * 3, 4 * 3]
    counts = {}
    for path in manifest.files:
        for serialized in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            feature = tf.train.Example.FromString(serialized.numpy()).features.feature
            source = feature["source"].bytes_list.value[0].decode()
            start = feature["start_frame"].int64_list.value[0]
            frames = feature["event_frames"].int64_list.value
            counts.setdefault(source, []).extend(start + f for f in frames)
    # The last HH (3.7 s) moves to 3.7 / factor s.
    for source, factor in [("good.wav", 1.0), ("good.wav@rate=0.9", 0.9)]:
        assert max(counts[source]) == round((3.7 / factor * SR - 512) / 120)


def test_folder_maps_piano(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    notes = [(0.2, 60), (0.2, 64), (0.8, 60), (1.7, 21), (2.5, 108), (3.0, 64)]
    soundfile.write(folder / "take.flac", drum_audio([t for t, _ in notes]), SR)
    (folder / "take.txt").write_text(
        "OnsetTime\tOffsetTime\tMidiPitch\n"
        + "".join(f"{t}\t{t + 0.3}\t{p}\n" for t, p in notes)
        + "1.0\t1.2\t10\n"  # outside the 88 keys: dropped by the MAPS reader
    )
    result = invoke("folder", folder, "--task", "piano", "--out", tmp_path / "out", "--no-progress",
                    "--workers", 1, "--hop", 1.5, "--min-crop", 0)  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "out" / "in.manifest.json")
    assert manifest.class_names == tuple(range(21, 109)) and manifest.k_max == 42
    counts = dict(zip(manifest.class_names, manifest.totals["counts"], strict=True))
    assert {p: c for p, c in counts.items() if c} == {21: 1, 60: 2, 64: 2, 108: 1}


def _write(path, audio, rate=SR, **kwargs):
    soundfile.write(path, audio, rate, **kwargs)
    return path


def bad_unreadable(folder):
    (folder / "bad.wav").write_bytes(b"RIFF, but not really a WAV file")
    write_csv(folder / "bad.csv", EVENTS)
    return folder / "bad.wav", "cannot read audio"


def bad_empty(folder):
    write_csv(folder / "bad.csv", EVENTS)
    return _write(folder / "bad.wav", np.zeros(0, np.float32)), "empty"


def bad_silent(folder):
    write_csv(folder / "bad.csv", EVENTS)
    return _write(folder / "bad.wav", np.zeros(2 * SR, np.float32)), "silence"


def bad_nan(folder):
    audio = drum_audio([0.5])
    audio[100:110] = np.nan
    write_csv(folder / "bad.csv", EVENTS)
    return _write(folder / "bad.wav", audio, subtype="FLOAT"), "NaN"


def bad_too_short(folder):
    write_csv(folder / "bad.csv", [(0.05, "KD")])
    return _write(folder / "bad.wav", drum_audio([0.05], seconds=0.2)), "shorter than"


def bad_annotation_without_audio(folder):
    write_csv(folder / "orphan.csv", EVENTS)
    return folder / "orphan.csv", "without an audio file"


def bad_audio_without_annotation(folder):
    return _write(folder / "lonely.wav", drum_audio([0.5])), "without an annotation file"


def bad_malformed_annotation(folder):
    _write(folder / "bad.wav", drum_audio([0.5]))
    (folder / "bad.csv").write_text("time,label\n0.5,KD\nhalf past,SD\n")
    return folder / "bad.csv", "line 3"


def warn_clipped(folder):
    audio = drum_audio([0.5, 1.5])
    audio[: SR // 10] = 1.0
    write_csv(folder / "bad.csv", [(0.5, "KD"), (1.5, "SD")])
    return _write(folder / "bad.wav", audio), "clipped"


def warn_long(folder):
    write_csv(folder / "bad.csv", EVENTS)
    return _write(folder / "bad.wav", drum_audio([t for t, _ in EVENTS])), "minutes long"


def warn_stereo(folder):
    write_csv(folder / "bad.csv", EVENTS)
    audio = drum_audio([t for t, _ in EVENTS], channels=2)
    return _write(folder / "bad.wav", audio), "2 channels"


def warn_low_rate(folder):
    write_csv(folder / "bad.csv", EVENTS)
    audio = drum_audio([t for t, _ in EVENTS], rate=8000)
    return _write(folder / "bad.wav", audio, rate=8000), "8000 Hz"


def warn_k_max(folder):
    hits = [(0.1 + 0.05 * i, "HH") for i in range(8)]
    write_csv(folder / "bad.csv", hits)
    return _write(folder / "bad.wav", drum_audio([t for t, _ in hits])), "k_max=5"


def warn_unknown_labels(folder):
    write_csv(folder / "bad.csv", [(0.5, "kick"), (1.0, "KD")])
    _write(folder / "bad.wav", drum_audio([0.5, 1.0]))
    return folder / "bad.csv", "kick"


def warn_events_outside(folder):
    write_csv(folder / "bad.csv", [(0.5, "KD"), (9.0, "SD")])
    _write(folder / "bad.wav", drum_audio([0.5]))
    return folder / "bad.csv", "outside the audio"


SKIPS = [
    bad_unreadable,
    bad_empty,
    bad_silent,
    bad_nan,
    bad_too_short,
    bad_annotation_without_audio,
    bad_audio_without_annotation,
    bad_malformed_annotation,
]
WARNINGS = [
    warn_clipped,
    warn_long,
    warn_stereo,
    warn_low_rate,
    warn_k_max,
    warn_unknown_labels,
    warn_events_outside,
]


def message_lines(output, kind, path):
    return [line for line in output.splitlines() if line.startswith(kind) and str(path) in line]


@pytest.mark.parametrize("case", SKIPS, ids=lambda case: case.__name__)
def test_bad_input_is_skipped_by_name_and_fails_the_run(case, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_good(folder)
    bad, reason = case(folder)
    out = tmp_path / "out"
    result = invoke(*folder_args(folder, out))
    assert result.exit_code == 1, result.output
    (line,) = message_lines(result.output, "skipped:", bad)
    assert reason in line
    assert "--allow-skips" in result.output and "skipped: 1 file(s)" in result.output
    manifest = read_manifest(out / "mine.manifest.json")
    assert [s.id for shard in manifest.shards for s in shard.sources] == ["good.wav"]
    assert manifest.totals["counts"] == [3, 3, 4]

    result = invoke(*folder_args(folder, out, "--allow-skips"))
    assert result.exit_code == 0, result.output
    assert message_lines(result.output, "skipped:", bad)


@pytest.mark.parametrize("case", WARNINGS, ids=lambda case: case.__name__)
def test_suspicious_input_is_processed_with_a_warning(case, tmp_path, monkeypatch):
    monkeypatch.setattr(audio_module, "LONG_SECONDS", 3.0 if case is warn_long else 1e9)
    folder = tmp_path / "in"
    folder.mkdir()
    write_good(folder)
    bad, reason = case(folder)
    result = invoke(*folder_args(folder, tmp_path / "out", "--k-max", 5))
    assert result.exit_code == 0, result.output
    (line,) = message_lines(result.output, "warning:", bad)
    assert reason in line
    manifest = read_manifest(tmp_path / "out" / "mine.manifest.json")
    assert {s.id for shard in manifest.shards for s in shard.sources} == {"good.wav", "bad.wav"}


@needs_rendering
def test_a_midi_file_that_cannot_be_rendered_is_skipped_by_name(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd, then nothing a MIDI reader accepts")
    good = tmp_path / "good.mid"
    grooves.generate_groove(1, grooves.GrooveConfig(bars=2)).write(str(good))
    sources = tuple(
        prepare_module.Source(
            id=path.name,
            audio_path=str(tmp_path / "audio" / f"{path.stem}.wav"),
            annotation_path=str(path),
            annotation_format="midi-drums",
            kit="timgm6mb",
        )
        for path in (bad, good)
    )
    spec = prepare_module.SetSpec(
        "drums-x", sources, prepare_module.DRUM_CLASSES, prepare_module.EVAL_WINDOWS
    )
    lines = []
    config = prepare_module.PrepareConfig(workers=1, progress=False)
    report = prepare_module.prepare_sets(
        prepare_module.Plan((spec,)), tmp_path / "out", config, log=lines.append
    )
    (skipped,) = report.all_skipped
    assert skipped.startswith(f"{bad}: ") and "rendering failed" in skipped
    assert lines == [f"skipped: {skipped}"]
    manifest = read_manifest(tmp_path / "out" / "drums-x.manifest.json")
    assert [s.id for shard in manifest.shards for s in shard.sources] == ["good.mid"]


def test_user_errors_are_one_line_messages(tmp_path):
    result = invoke("piano", "--data-dir", tmp_path / "nothing", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "ASAP not found" in result.output
    (tmp_path / "empty").mkdir()
    result = invoke("folder", tmp_path / "empty", "--task", "drums", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "nothing to prepare" in result.output
    result = invoke("drums", "--kits", "casio", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "unknown kit 'casio'" in result.output


@pytest.mark.skipif(
    not (GMD / "info.csv").is_file() or not can_render(("timgm6mb", "fluidr3")),
    reason="needs the Groove MIDI Dataset next to the repository, and both kits",
)
def test_gmd_keeps_its_split_and_renders_the_test_split_with_every_kit(tmp_path):
    import csv

    split_of = {}
    with open(GMD / "info.csv", newline="") as file:
        for row in csv.DictReader(file):
            split_of[row["midi_filename"]] = row["split"]
    out = tmp_path / "out"
    result = invoke("drums", "--data-dir", GMD, "--max-files", 3, "--kits", "timgm6mb,fluidr3",
                    "--out", out, "--workers", 1, "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    names = sorted(p.name.removesuffix(".manifest.json") for p in out.glob("*.manifest.json"))
    assert names == ["drums-test-fluidr3", "drums-test-timgm6mb", "drums-train", "drums-validation"]
    for name in names:
        manifest = read_manifest(out / f"{name}.manifest.json")
        run = json.loads((out / f"{name}.prepare.json").read_text())
        split = run["parameters"]["info"]["split"]
        ids = [s.id for shard in manifest.shards for s in shard.sources]
        assert ids and all(split_of[i] == split for i in ids)
        if split != "train":
            expected = np.zeros(3, int)
            for i in ids:
                for instrument in pretty_midi.PrettyMIDI(str(GMD / i)).instruments:
                    for note in instrument.notes:
                        if instrument.is_drum and note.pitch in DRUM_NOTE_CLASS:
                            expected[DRUM_NOTE_CLASS[note.pitch]] += 1
            assert manifest.totals["counts"] == list(expected), name
    kit_cache = out / "audio" / "gmd" / "fluidr3-32000"
    (wav,) = kit_cache.rglob("*.wav")
    assert split_of[wav.relative_to(kit_cache).with_suffix(".mid").as_posix()] == "test"


def _write_annotations(folder, fmt, events):
    """`events` in each format users bring; returns the annotation file's name."""
    enst = {"KD": "bd", "SD": "sd", "HH": "chh"}
    notes = {"KD": 36, "SD": 38, "HH": 42}
    if fmt == "idmt":
        body = "".join(
            f"<event><onsetSec>{t}</onsetSec><offsetSec>{t + 0.1}</offsetSec>"
            f"<instrument>{label}</instrument></event>"
            for t, label in events
        )
        (folder / "good.xml").write_text(
            '<?xml version="1.0" encoding="UTF-8"?><instrumentRecording><globalParameter>'
            "<audioFileName>good.wav</audioFileName></globalParameter>"
            f"<transcription>{body}</transcription></instrumentRecording>"
        )
        return "good.xml"
    if fmt == "enst":
        (folder / "good.txt").write_text("".join(f"{t:.6f} {enst[k]}\n" for t, k in events))
        return "good.txt"
    if fmt == "mdb":
        (folder / "good.txt").write_text("".join(f"{t:.6f}\t{k}\n" for t, k in events))
        return "good.txt"
    midi = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes = [pretty_midi.Note(100, notes[k], t, t + 0.05) for t, k in events]
    midi.instruments.append(drums)
    midi.write(str(folder / "good.mid"))
    return "good.mid"


@pytest.mark.parametrize("fmt", ["idmt", "enst", "mdb", "midi-drums"])
@pytest.mark.parametrize("explicit", [True, False])
def test_folder_drums_in_every_annotation_format(fmt, explicit, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    soundfile.write(folder / "good.wav", drum_audio([t for t, _ in EVENTS]), SR)
    _write_annotations(folder, fmt, EVENTS)
    extra = ["--format", fmt] if explicit else []
    result = invoke(*folder_args(folder, tmp_path / "out", *extra))
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "out" / "mine.manifest.json")
    assert manifest.class_names == ("KD", "SD", "HH")
    assert manifest.totals["counts"] == [3, 3, 4]


def test_folder_piano_from_midi_notes(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    notes = [(0.2, 60), (0.2, 64), (0.8, 60), (1.7, 21), (3.0, 64)]
    soundfile.write(folder / "take.wav", drum_audio([t for t, _ in notes]), SR)
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(80, p, t, t + 0.3) for t, p in notes]
    midi.instruments.append(piano)
    midi.write(str(folder / "take.mid"))
    result = invoke("folder", folder, "--task", "piano", "--format", "midi-notes",
                    "--out", tmp_path / "out", "--no-progress", "--workers", 1,
                    "--hop", 1.5, "--min-crop", 0)  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "out" / "in.manifest.json")
    counts = dict(zip(manifest.class_names, manifest.totals["counts"], strict=True))
    assert {p: c for p, c in counts.items() if c} == {21: 1, 60: 2, 64: 2}


@needs_rendering
def test_a_listed_midi_file_that_is_missing_is_skipped_by_name(tmp_path):
    asap = tmp_path / "asap"
    header = (
        "composer,title,folder,xml_score,midi_score,midi_performance,performance_annotations,"
        "midi_score_annotations,maestro_midi_performance,maestro_audio_performance,start,end,"
        "audio_performance\n"
    )
    rows = []
    for piece in range(6):
        folder = f"Bach/Piece{piece}"
        (asap / folder).mkdir(parents=True)
        rows.append(f"Bach,P{piece},{folder},,,{folder}/take.mid,,,,,,,\n")
        if piece == 0:
            continue  # listed, never written
        midi = pretty_midi.PrettyMIDI()
        piano = pretty_midi.Instrument(program=0)
        piano.notes = [pretty_midi.Note(80, 60 + piece, 0.2 * k, 0.2 * k + 0.15) for k in range(8)]
        midi.instruments.append(piano)
        midi.write(str(asap / folder / "take.mid"))
    (asap / "metadata.csv").write_text(header + "".join(rows))
    args = ["piano", "--data-dir", asap, "--kits", "timgm6mb", "--max-files", 0, "--workers", 1,
            "--no-progress", "--out", tmp_path / "out"]  # fmt: skip
    result = invoke(*args)
    missing = str(asap / "Bach/Piece0/take.mid")
    assert result.exit_code == 1, result.output
    assert f"{missing}: MIDI file listed in {asap / 'metadata.csv'} is missing" in result.output
    assert invoke(*args, "--allow-skips").exit_code == 0


@pytest.mark.skipif(
    not can_render(("timgm6mb", "fluidr3")), reason="needs the timgm6mb and fluidr3 kits"
)
def test_training_kits_take_turns_file_by_file_and_the_test_split_gets_every_kit(tmp_path):
    plan = prepare_module.drum_sets(
        tmp_path,
        None,
        kits=("timgm6mb",),
        train_kits=("fluidr3", "timgm6mb"),
        procedural=21,
    )
    by_name = {spec.name: spec for spec in plan.sets}
    assert sorted(by_name) == ["drums-test-timgm6mb", "drums-train", "drums-validation"]
    for name in ("drums-train", "drums-validation"):
        spec = by_name[name]
        kits = [source.kit for source in spec.sources]
        assert set(kits) == {"fluidr3", "timgm6mb"}
        assert abs(kits.count("fluidr3") - kits.count("timgm6mb")) <= 1
        assert spec.info["kit"] == "fluidr3+timgm6mb"
        assert spec.info["training_kits"] == ["fluidr3", "timgm6mb"]
        for source in spec.sources:
            # Each file is rendered into its own kit's cache, labelled with that kit's latency.
            assert f"{os.sep}{source.kit}-{SR}{os.sep}" in source.audio_path
            assert dict(source.latency)["KD"] == render.render_latency(source.kit, "KD", SR)
    test = by_name["drums-test-timgm6mb"]
    assert {source.kit for source in test.sources} == {"timgm6mb"}
    assert test.info["kit_used_in_training"] is True
    # The assignment depends on the files, not on the order they are listed in.
    again = prepare_module._kit_rotation(
        [s.id for s in reversed(by_name["drums-train"].sources)], ["fluidr3", "timgm6mb"]
    )
    assert again[::-1] == [s.kit for s in by_name["drums-train"].sources]


def test_a_drum_only_kit_cannot_render_piano():
    with pytest.raises(ValueError, match="drums only"):
        render.render_latency("blackpearl", "piano")
