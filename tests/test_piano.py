"""The piano recipe: banded networks, band-shared decoding, note scores against mir_eval
references, MIDI output, and `loco prepare/train/predict/evaluate/plot` for the piano end to end
on a tiny rendered ASAP-like folder."""

import csv
import json
import os

import keras
import mir_eval
import numpy as np
import pretty_midi
import pytest
import soundfile
from click.testing import CliRunner

from loco_tf.events import tune_decoding
from loco_tf.features import FeatureConfig
from loco_tf.metrics import evaluate_onsets
from loco_tf.pipelines import render
from loco_tf.recipes import drums, piano
from loco_tf.recipes.cli import main

CONFIG = FeatureConfig()


# ---------------------------------------------------------------------------------------------
# Configurations and bands.


def test_the_paper_configuration_has_nine_bands_of_ten_pitches_the_cpu_one_network():
    full = piano.piano_config(full=True)
    assert drums.class_bands(full) == [(a, min(a + 10, 88)) for a in range(0, 88, 10)]
    assert drums.class_bands(full)[-1] == (80, 88)
    assert full.k_max == 42 and full.classes == tuple(range(21, 109))
    assert full.filters == (16, 16, 32, 32, 32, 32)  # the drum network's 8-16, widened 2x
    assert drums.class_bands(piano.piano_config()) == [(0, 88)]
    assert drums.class_bands(drums.DrumTrainConfig(per_instrument=True)) == [(0, 1), (1, 2), (2, 3)]


def test_band_networks_are_independent():
    """Changing one band network's weights changes that band's outputs only."""
    config = drums.DrumTrainConfig(
        classes=tuple(range(7)), band_size=3, filters=(4, 4), lstm_units=5, dense_units=4
    )
    model = drums.build_drum_model(config, CONFIG, name="piano")
    nets = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert [net.name for net in nets] == ["piano_0_2", "piano_3_5", "piano_6"]
    rng = np.random.default_rng(0)
    x = {
        "features": rng.normal(size=(2, 50, CONFIG.n_mels, 2)).astype("float32"),
        "lengths": np.array([50, 30], dtype="int32"),
    }
    before = np.asarray(model(x))
    assert before.shape == (2, 50, 7)
    kernel = nets[1].layers[2].kernel  # the middle band's first convolution
    kernel.assign(kernel + 0.5)
    after = np.asarray(model(x))
    changed = np.abs(after - before).max(axis=(0, 1)) > 1e-6
    assert changed.tolist() == [False, False, False, True, True, True, False]


# ---------------------------------------------------------------------------------------------
# Decoding tuned per band.


def _random_probabilities(rng, files=3, frames=600, classes=4):
    p = rng.uniform(0, 0.2, size=(files, frames, classes))
    refs = []
    for f in range(files):
        per_class = []
        for c in range(classes):
            frames_on = np.sort(rng.choice(np.arange(20, frames - 20, 25), 6, replace=False))
            p[f, frames_on + 2, c] = rng.uniform(0.4, 1.0, size=frames_on.size)
            per_class.append(frames_on * CONFIG.hop_length / CONFIG.sample_rate)
        refs.append(per_class)
    return list(p), refs


def test_groups_of_one_class_tune_as_each_class_alone():
    p, refs = _random_probabilities(np.random.default_rng(1))
    alone = tune_decoding(p, refs, CONFIG)
    grouped = tune_decoding(p, refs, CONFIG, groups=[[0], [1], [2], [3]])
    assert grouped == alone


def test_a_group_is_tuned_on_its_classes_pooled_as_separate_sequences():
    p, refs = _random_probabilities(np.random.default_rng(2))
    tunings = tune_decoding(p, refs, CONFIG, groups=[[0, 2], [1, 3]])
    # Reference: the pooled sequences as one class, built by hand.
    pooled = [p_f[:, c : c + 1] for p_f in p for c in (0, 2)]
    pooled_refs = [[r[c]] for r in refs for c in (0, 2)]
    (expected,) = tune_decoding(pooled, pooled_refs, CONFIG)
    assert tunings[0] == tunings[2] == expected
    other = tune_decoding(
        [p_f[:, c : c + 1] for p_f in p for c in (1, 3)],
        [[r[c]] for r in refs for c in (1, 3)],
        CONFIG,
    )
    assert tunings[1] == tunings[3] == other[0]
    with pytest.raises(ValueError, match="exactly once"):
        tune_decoding(p, refs, CONFIG, groups=[[0, 1], [1, 2, 3]])


# ---------------------------------------------------------------------------------------------
# Note scores.


def _random_notes(rng, classes, files=4):
    """References, and estimates that find ~70 % of them within +-3 ms std plus false ones."""
    references, estimates = [], []
    for _ in range(files):
        ref, est = [], []
        for _ in classes:
            r = np.sort(rng.uniform(0, 20, size=rng.integers(0, 12)))
            found = r[rng.random(r.size) < 0.7]
            found = found + rng.normal(0, 0.03, found.size)
            extra = rng.uniform(0, 20, rng.integers(0, 4))
            ref.append(r)
            est.append(np.sort(np.concatenate([found, extra])))
        references.append(ref)
        estimates.append(est)
    return references, estimates


def test_note_scores_equal_per_pitch_onset_matching_and_mir_eval_per_piece():
    classes = (59, 60, 61, 72)  # neighbouring semitones must never match each other
    rng = np.random.default_rng(3)
    references, estimates = _random_notes(rng, classes)
    scores = piano.evaluate_notes(references, estimates, classes, ["a", "b", "c", "d"])
    # Independent reference 1: maximum matching per pitch with mir_eval's onset matcher.
    matched = sum(
        len(mir_eval.util.match_events(r, e, 0.05))
        for ref, est in zip(references, estimates, strict=True)
        for r, e in zip(ref, est, strict=True)
    )
    total_ref = sum(len(r) for ref in references for r in ref)
    total_est = sum(len(e) for est in estimates for e in est)
    assert (scores.matched, scores.reference, scores.estimate) == (matched, total_ref, total_est)
    assert scores.micro_f1 == pytest.approx(2 * matched / (total_ref + total_est))
    # ... which is also the onset evaluation's micro "all" score.
    onsets = evaluate_onsets(references, estimates, classes, windows=(0.05,))
    assert onsets[(0.05, "all")].matched == matched
    # Independent reference 2: the per-piece mean of mir_eval.onset's F-measure over pitches
    # pooled per piece is the per-piece transcription score.
    for piece, (ref, est) in enumerate(zip(references, estimates, strict=True)):
        m = sum(len(mir_eval.util.match_events(r, e, 0.05)) for r, e in zip(ref, est, strict=True))
        n_ref, n_est = sum(map(len, ref)), sum(map(len, est))
        assert scores.per_piece[piece][2] == pytest.approx(2 * m / (n_ref + n_est))
    assert scores.f1 == pytest.approx(np.mean([f for _, _, f in scores.per_piece]))


def test_note_scores_known_answer_and_empty_pieces():
    classes = (60, 62)
    references = [[np.array([1.0, 2.0]), np.array([3.0])], [np.array([]), np.array([])]]
    estimates = [[np.array([1.04, 2.2]), np.array([3.0, 4.0])], [np.array([]), np.array([5.0])]]
    scores = piano.evaluate_notes(references, estimates, classes, ["x", "y"])
    # Piece x: 1.04 and 3.0 match (2.2 is 200 ms late), 3 references, 4 detections.
    assert scores.per_piece[0] == pytest.approx((0.5, 2 / 3, 2 * 2 / 7))
    assert scores.per_piece[1] == (0.0, 0.0, 0.0)  # no references, one false positive
    assert (scores.reference, scores.estimate, scores.matched) == (3, 5, 2)
    assert scores.micro_precision == pytest.approx(0.4)
    assert scores.micro_recall == pytest.approx(2 / 3)


def test_band_table_sums_the_band_counts():
    classes = tuple(range(21, 45))  # bands 21-30, 31-40, 41-44
    references = [[np.array([1.0 + c])] for c in range(len(classes))]
    estimates = [[np.array([1.0 + c + (0.01 if c < 10 else 0.5)])] for c in range(len(classes))]
    evaluation = evaluate_onsets([sum(references, [])], [sum(estimates, [])], classes)
    rows = piano.band_table(evaluation).splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["A0-F#1", "G1-E2", "F2-G#2"]
    assert rows[0].split()[1:6] == ["10", "10", "100.0", "100.0", "100.0"]
    assert rows[0].split()[6] == "+10.0"
    assert rows[1].split()[1:6] == ["10", "10", "0.0", "0.0", "0.0"]
    assert rows[2].split()[1:3] == ["4", "4"]


def test_piano_midi_has_one_note_per_onset_at_its_pitch(tmp_path):
    times = [np.array([0.5, 1.25]), np.array([]), np.array([0.75])]
    path = tmp_path / "notes.mid"
    drums.write_midi(path, times, (60, 61, 64), notes=None, duration=piano.NOTE_SECONDS)
    midi = pretty_midi.PrettyMIDI(str(path))
    (instrument,) = midi.instruments
    assert not instrument.is_drum and instrument.program == 0
    notes = sorted(
        (round(n.start, 4), n.pitch, round(n.end - n.start, 4)) for n in instrument.notes
    )
    assert notes == [(0.5, 60, 0.25), (0.75, 64, 0.25), (1.25, 60, 0.25)]


# ---------------------------------------------------------------------------------------------
# The commands end to end on a tiny ASAP-like folder.


def _can_render():
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):
        return False
    return os.path.isfile(render.KITS["timgm6mb"])


def loco(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Ten one-performance 'pieces' of random notes (pitches 55..66, ~6 s), prepared with
    `loco prepare piano` (timgm6mb), and a tiny banded model trained on them with --full, in
    two bands of 44 pitches rather than --full's nine of 10 (each band network costs its own
    graph tracing, ~10 s a command here; the nine bands are test_the_paper_configuration...)."""
    if not _can_render():
        pytest.skip("rendering needs pyfluidsynth, libfluidsynth and TimGM6mb.sf2")
    root = tmp_path_factory.mktemp("piano")
    asap = root / "asap"
    header = (
        "composer,title,folder,xml_score,midi_score,midi_performance,performance_annotations,"
        "midi_score_annotations,maestro_midi_performance,maestro_audio_performance,start,end,"
        "audio_performance\n"
    )
    rng = np.random.default_rng(0)
    rows, notes = [], {}
    for index in range(10):
        folder = f"Composer/Piece{index}"
        (asap / folder).mkdir(parents=True)
        rows.append(f"Composer,P{index},{folder},,,{folder}/take.mid,,,,,,,\n")
        midi = pretty_midi.PrettyMIDI()
        instrument = pretty_midi.Instrument(program=0)
        starts = np.round(np.sort(rng.uniform(0.2, 6.0, size=24)), 3)
        for start in starts:
            pitch = int(rng.integers(55, 67))
            instrument.notes.append(pretty_midi.Note(90, pitch, start, start + 0.3))
        midi.instruments.append(instrument)
        midi.write(str(asap / folder / "take.mid"))
        notes[folder] = instrument.notes
    (asap / "metadata.csv").write_text(header + "".join(rows))
    data = root / "data"
    result = loco("prepare", "piano", "--data-dir", asap, "--kits", "timgm6mb", "--max-files",
                  0, "--workers", 1, "--no-progress", "--out", data,
                  "--stretch-factors", "1.1")  # fmt: skip
    assert result.exit_code == 0, result.output
    run = root / "run"
    result = loco("train", "piano", "--full", "--data", data, "--out", run,
                  "--filters", "4,4", "--lstm-units", 6, "--dense-units", 6, "--band-size", 44,
                  "--batch-size", 4,
                  "--epochs", 1, "--steps-per-epoch", 2, "--shuffle-buffer", 8,
                  "--progress", "none")  # fmt: skip
    assert result.exit_code == 0, result.output
    test_manifest = json.loads((data / "piano-test-timgm6mb.manifest.json").read_text())
    train_manifest = json.loads((data / "piano-train.manifest.json").read_text())
    return {"data": data, "run": run, "asap": asap, "notes": notes, "output": result.output,
            "test": test_manifest, "train": train_manifest}  # fmt: skip


def test_prepare_piano_refuses_a_drum_only_kit(tmp_path):
    for option in ("--kits", "--train-kits"):
        result = loco("prepare", "piano", option, "fluidr3,blackpearl", "--out", tmp_path)
        assert result.exit_code == 2, result.output
        assert f"Invalid value for {option}: blackpearl has drums only" in result.output


def test_train_piano_full_trains_band_networks_and_scores_the_test_set(tiny):
    description = json.loads((tiny["run"] / "model.json").read_text())
    assert description["task"] == "piano"
    assert description["classes"] == list(range(21, 109))
    config = description["train_config"]
    # --full: stacking; options given explicitly win over --full's bands and widths.
    assert (config["band_size"], config["stack_probability"]) == (44, 0.25)
    assert (config["filters"], config["lstm_units"]) == ([4, 4], 6)
    assert config["k_max"] == 42
    model = keras.saving.load_model(tiny["run"] / "model.keras", compile=False)
    networks = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert [network.output.shape[-1] for network in networks] == [44, 44]
    # One decoding per band of 10 pitches (--decoding-band-size).
    decoding = [description["decoding"][str(p)] for p in range(21, 109)]
    for start in range(0, 88, 10):
        assert all(d == decoding[start] for d in decoding[start : start + 10])
    output = tiny["output"]
    assert "mean over pieces" in output and "A0-F#1" in output
    # The test set's reference notes are the notes of its pieces' MIDI files.
    (source,) = [s["id"] for shard in tiny["test"]["shards"] for s in shard["sources"]]
    folder = os.path.dirname(source)
    assert f"of {len(tiny['notes'][folder])} notes found" in output
    scores = json.loads((tiny["run"] / "evaluation.json").read_text())
    (sets,) = scores.values()
    assert set(sets) == {"piano-test-timgm6mb"}
    assert sets["piano-test-timgm6mb"]["notes"]["reference"] == len(tiny["notes"][folder])


def test_time_stretched_copies_of_every_training_performance(tiny):
    ids = [s["id"] for shard in tiny["train"]["shards"] for s in shard["sources"]]
    originals = [i for i in ids if "@" not in i]
    assert len(originals) == 8  # 8 of the 10 pieces are in the training split
    assert sorted(i for i in ids if "@" in i) == sorted(f"{i}@stretch=1.1" for i in originals)


def test_predict_plot_and_evaluate_piano(tiny, tmp_path):
    (source,) = [s for shard in tiny["test"]["shards"] for s in shard["sources"]]
    wav = tiny["data"] / "audio" / "asap" / "timgm6mb-32000" / source["id"].replace(".mid", ".wav")
    assert wav.is_file()
    out = tmp_path / "out"
    silent, bad = tmp_path / "silent.wav", tmp_path / "bad.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    bad.write_text("not audio")
    result = loco("predict", tmp_path / "missing.wav", silent, bad, wav, "--task", "piano",
                  "--model", tiny["run"], "--out", out)  # fmt: skip
    assert result.exit_code == 1
    assert "missing.wav" in result.output and "3 of 4 file(s) failed" in result.output
    assert "silent.wav: audio is digital silence" in result.output
    assert "bad.wav" in result.output and "Traceback" not in result.output
    with open(out / "take.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["onset", "pitch"]
    assert all(21 <= int(pitch) <= 108 for _, pitch in rows[1:])
    midi = pretty_midi.PrettyMIDI(str(out / "take.mid"))
    assert not any(i.is_drum for i in midi.instruments)  # (no track at all when no notes)
    assert sum(len(i.notes) for i in midi.instruments) == len(rows) - 1
    # A piano model is not a drum model.
    result = loco("predict", wav, "--task", "drums", "--model", tiny["run"], "--out", out)
    assert result.exit_code == 1 and "is a piano model; --task drums needs" in result.output
    # The piano roll, with the true onsets from the performance's MIDI file (read as notes).
    midi_path = tiny["asap"] / os.path.dirname(source["id"]) / "take.mid"
    png = tmp_path / "roll.png"
    result = loco("plot", wav, "--task", "piano", "--model", tiny["run"], "--annotation",
                  midi_path, "--out", png, "--duration", 4)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 10_000
    # Evaluate on a folder of audio + MIDI: the MIDI is read as piano notes.
    folder = tmp_path / "folder"
    folder.mkdir()
    os.symlink(wav, folder / "take.wav")
    os.symlink(midi_path, folder / "take.mid")
    result = loco("evaluate", tiny["run"], "--data", folder)
    assert result.exit_code == 0, result.output
    notes = len(tiny["notes"][os.path.dirname(source["id"])])
    assert f"of {notes} notes found" in result.output
