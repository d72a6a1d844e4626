"""The shipped piano model finds the note onsets of a held-out ASAP performance, freshly rendered,
and `loco predict --task piano` uses it by default."""

import csv
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile
from click.testing import CliRunner

from loco_tf.pipelines import render
from loco_tf.recipes import piano
from loco_tf.recipes.cli import main
from loco_tf.recipes.drums import DrumTranscriber
from loco_tf.streaming import encoder_dtype_for

ASAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "asap"
PIECE = "Bach/Fugue/bwv_865/Teo01M.mid"  # a test-split piece of `loco prepare piano`
SECONDS = 30.0


@pytest.mark.slow
def test_shipped_piano_model_finds_the_onsets_of_a_held_out_performance(tmp_path):
    path = piano.shipped_model()
    assert path is not None, "saved_models/piano/<version>/ is missing"
    if not (ASAP / PIECE).is_file():
        pytest.skip(f"ASAP not found at {ASAP}")
    midi = pretty_midi.PrettyMIDI(str(ASAP / PIECE))
    for instrument in midi.instruments:
        instrument.notes = [n for n in instrument.notes if n.start < SECONDS]
        instrument.control_changes = [c for c in instrument.control_changes if c.time < SECONDS]
    try:
        audio = render.render_midi(midi, "fluidr3", 32000)
    except (ImportError, FileNotFoundError) as error:
        pytest.skip(f"rendering unavailable: {error}")
    wav = tmp_path / "excerpt.wav"
    soundfile.write(wav, audio, 32000)
    latency = render.render_latency("fluidr3", "piano", 32000)
    references = [
        np.array([n.start + latency for i in midi.instruments for n in i.notes if n.pitch == pitch])
        for pitch in piano.PIANO_CLASSES
    ]
    transcriber = DrumTranscriber.load(path)
    assert transcriber.task == "piano"
    estimates = transcriber.transcribe(wav).times
    scores = piano.evaluate_notes([references], [estimates], piano.PIANO_CLASSES, [PIECE])
    # The model card reports the test split's per-piece F1 with this piano sound; one 30 s
    # excerpt of one piece varies, so the bar is lower.
    assert scores.f1 >= 0.5, scores.table()

    result = CliRunner().invoke(
        main, ["predict", str(wav), "--task", "piano", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    with open(tmp_path / "excerpt.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["onset", "pitch"]
    # `loco predict` runs in bfloat16 on CPUs with it (`--precision auto`): the same onsets
    # as the transcriber in that precision.
    default = DrumTranscriber.load(path, encoder_dtype=encoder_dtype_for("auto"))
    assert len(rows) - 1 == sum(len(e) for e in default.transcribe(wav).times)
