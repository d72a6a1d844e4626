"""The shipped drum model, exported and streamed, and `loco annotate` with known counts, on a
freshly rendered groove whose true hits are known."""

import csv

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from loco_tf.events import decode_with_counts
from loco_tf.export import ExportedModel, ExportSpec, export_saved_model
from loco_tf.metrics import evaluate_onsets
from loco_tf.pipelines import grooves, readers, render
from loco_tf.recipes.cli import main
from loco_tf.recipes.drums import DrumTranscriber, shipped_model

CLASSES = ("KD", "SD", "HH")
SR = 32000


@pytest.fixture(scope="module")
def groove(tmp_path_factory):
    if shipped_model() is None:
        pytest.skip("no shipped drum model")
    midi = grooves.generate_groove(seed=777)
    try:
        audio = render.render_midi(midi, "fluidr3", SR)
    except (ImportError, FileNotFoundError) as error:
        pytest.skip(f"rendering unavailable: {error}")
    folder = tmp_path_factory.mktemp("groove")
    soundfile.write(folder / "groove.wav", audio, SR)
    truth = readers.read_midi_drums(midi)
    references = [
        np.array([e.time + render.render_latency("fluidr3", c, SR) for e in truth if e.label == c])
        for c in CLASSES
    ]
    return folder, audio, references


def read_times(path):
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    return [np.array([float(r["time"]) for r in rows if r["class"] == c]) for c in CLASSES]


@pytest.mark.slow
def test_exported_shipped_model_streams_exactly_and_finds_the_hits(groove, tmp_path):
    _, audio, references = groove
    transcriber = DrumTranscriber.load(shipped_model())
    spec = ExportSpec(transcriber.classes, transcriber.feature_config, transcriber.decoding)
    exported = ExportedModel(export_saved_model(transcriber.model, spec, tmp_path, "drums"))
    offline = exported.predict(audio)
    stream = exported.stream()
    for start in range(0, len(audio), 4000):  # 125 ms chunks
        stream.push(audio[start : start + 4000])
    np.testing.assert_allclose(stream.all_probabilities()[0], offline["probabilities"], atol=1e-5)
    times = exported.event_times(offline)
    for got, want in zip(stream.events(), times, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    score = evaluate_onsets([references], [times], CLASSES).scores[(0.05, "all")]
    assert score.f1 >= 0.7


@pytest.mark.slow
def test_annotate_places_the_known_number_of_hits(groove, tmp_path):
    folder, _, references = groove
    counts = [len(r) for r in references]
    table = folder / "counts.csv"
    table.write_text(
        "audio,KD,SD,HH\n"
        f"groove.wav,{counts[0]},{counts[1]},{counts[2]}\n"
        "missing.wav,1,2,3\n"
        "groove.wav,one,2,3\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["annotate", str(table), "--out", str(out)])
    # The two bad rows are reported by name and line; the good one is written anyway.
    assert result.exit_code != 0
    assert "missing.wav" in result.output and "counts.csv:4" in result.output
    assert "Traceback" not in result.output
    times = read_times(out / "groove.csv")
    assert [len(t) for t in times] == counts
    annotated = evaluate_onsets([references], [times], CLASSES).scores[(0.05, "all")]
    assert annotated.precision == pytest.approx(annotated.recall)  # as many hits as the truth
    assert annotated.f1 >= 0.8
    rerun = CliRunner().invoke(main, ["annotate", str(table), "--out", str(out)])
    assert "groove.wav: up to date ->" in rerun.output
    # In float32, the stamps are those of one file's float32 p(t), decoded with the counts.
    out32 = tmp_path / "out32"
    args = ["annotate", str(table), "--out", str(out32), "--precision", "float32"]
    assert "Traceback" not in CliRunner().invoke(main, args).output
    transcriber = DrumTranscriber.load(shipped_model())
    p = transcriber.transcribe(folder / "groove.wav").probabilities
    want = decode_with_counts(p, counts, transcriber.feature_config, transcriber.decoding)
    for got, expected in zip(read_times(out32 / "groove.csv"), want, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)
