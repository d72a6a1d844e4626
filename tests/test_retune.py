"""`retune` and `save_retuned` (what `loco tune` does) on p(t) built by hand, checked against
mir_eval and against the thresholds that separate the true peaks from the false ones."""

import json
import types

import mir_eval
import numpy as np
import pytest

from loco_tf.events import DecodingParameters, threshold_curve
from loco_tf.features import FeatureConfig, frame_times
from loco_tf.recipes import drums

CONFIG = FeatureConfig()
CLASSES = ("KD", "SD", "HH")
DELAY = 3  # frames from each reference to its peak in p(t)


def synthetic_file(seed: int, frames: int = 2400):
    """p(t) [frames, 3] and references per class: KD's true peaks at 0.3 among false ones at
    0.1, SD's true at 0.8 (false 0.1), HH's true at 0.65 among false ones at 0.55; every
    true peak DELAY frames after its reference."""
    rng = np.random.default_rng(seed)
    times = frame_times(frames, CONFIG)
    p = np.full((frames, 3), 0.01, np.float32)
    references = []
    for c, (true, false) in enumerate([(0.3, 0.1), (0.8, 0.1), (0.65, 0.55)]):
        slots = rng.choice(np.arange(20, frames - 20, 40), size=30, replace=False)
        hits, spurious = np.sort(slots[:20]), slots[20:]
        p[hits + DELAY, c] = true
        p[spurious + DELAY, c] = false
        references.append(times[hits])
    return p, references


def transcription(files) -> drums.SetTranscription:
    return drums.SetTranscription(
        names=[f"f{i}" for i in range(len(files))],
        references=[refs for _, refs in files],
        estimates=[[np.zeros(0)] * 3 for _ in files],
        probabilities=[p for p, _ in files],
    )


def model_like(threshold: float = 0.5):
    """What `retune` reads of a `DrumTranscriber`."""
    return types.SimpleNamespace(
        classes=CLASSES,
        feature_config=CONFIG,
        decoding=tuple(DecodingParameters(threshold, 1, 0.0) for _ in CLASSES),
    )


def test_retune_finds_the_thresholds_that_separate_true_from_false_peaks():
    files = [synthetic_file(seed) for seed in range(3)]
    result = drums.retune(model_like(0.5), [transcription(files[:2]), transcription(files[2:])])
    assert result.files == 3 and result.group_names() == list(CLASSES)
    assert result.references == [60, 60, 60]
    delay = DELAY / CONFIG.frame_rate
    for c, (low, high) in enumerate([(0.1, 0.3), (0.1, 0.8), (0.55, 0.65)]):
        tuning = result.after[c]
        assert low < tuning.parameters.threshold <= high
        assert tuning.f1 == 1.0
        assert tuning.parameters.offset_seconds == pytest.approx(-delay, abs=1e-9)
    # Before: the old decoding (threshold 0.5, no offset) scored with mir_eval, summed over
    # files. KD finds nothing; SD finds every hit; HH also takes every false peak.
    hh = [mir_eval.onset.f_measure(refs[2], frame_times(len(p), CONFIG)[p[:, 2] > 0.5])
          for p, refs in files]  # fmt: skip
    assert hh[0][0] == pytest.approx(2 * 20 / (20 + 30))  # every file: 20 of 30 are true
    assert result.before_f1[0] == 0.0
    assert result.before_f1[1] == pytest.approx(1.0)
    assert result.before_f1[2] == pytest.approx(2 * 60 / (60 + 90))
    assert [d.threshold for d in result.before] == [0.5] * 3
    table = result.table()
    assert table.splitlines()[1].split()[:2] == ["KD", "60"]
    assert "->" in table


def test_retune_in_one_band_tunes_the_classes_together():
    files = [synthetic_file(seed) for seed in range(2)]
    result = drums.retune(model_like(0.5), [transcription(files)], band_size=3)
    assert result.groups == [[0, 1, 2]] and result.group_names() == ["KD-HH"]
    assert result.after[0] == result.after[1] == result.after[2]
    assert result.references == [120]
    # Pooled at 0.5: KD 0 of 40 found, SD 40 of 40, HH 40 true + 20 false.
    assert result.before_f1 == [pytest.approx(2 * 80 / (120 + 100))]


def test_retune_needs_probabilities_and_files():
    files = [synthetic_file(0)]
    without = transcription(files)
    without.probabilities = None
    with pytest.raises(ValueError, match="probabilities"):
        drums.retune(model_like(), [without])
    with pytest.raises(ValueError, match="no files"):
        drums.retune(model_like(), [])


def fake_model(folder, decoding):
    """A model folder as far as `save_retuned` reads it (it copies model.keras's bytes)."""
    folder.mkdir(parents=True)
    (folder / drums.MODEL_FILE).write_bytes(b"weights \x00\x01")
    description = {
        "format": drums.MODEL_FORMAT,
        "classes": list(CLASSES),
        "decoding": {c: d.to_dict() for c, d in zip(CLASSES, decoding, strict=True)},
        "validation": {"kept": True},
    }
    (folder / drums.MODEL_JSON).write_text(json.dumps(description))
    return folder


def test_save_retuned_writes_a_loadable_copy_and_keeps_the_original(tmp_path):
    files = [synthetic_file(seed) for seed in range(2)]
    model = model_like(0.5)
    result = drums.retune(model, [transcription(files)])
    source = fake_model(tmp_path / "model", model.decoding)
    before = (source / drums.MODEL_JSON).read_text()
    out = drums.save_retuned(source, tmp_path / "tuned", result, {"data": "d", "sets": ["s"]})
    assert (out / drums.MODEL_FILE).read_bytes() == b"weights \x00\x01"
    assert (source / drums.MODEL_JSON).read_text() == before
    description = drums.load_description(out)
    for c, tuning in zip(CLASSES, result.after, strict=True):
        assert DecodingParameters.from_dict(description["decoding"][c]) == tuning.parameters
        assert description["tuning"][c]["f1"] == 1.0
    retuned = description["retuned"]
    assert retuned["sets"] == ["s"] and retuned["files"] == 2
    assert retuned["previous_decoding"]["KD"]["threshold"] == 0.5
    assert retuned["previous_f1"]["KD"] == 0.0
    assert description["validation"] == {"kept": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "tuned"]  # no temporaries

    # A rerun replaces its own output; anything else is refused.
    again = drums.retune(model_like(0.05), [transcription(files[:1])])
    drums.save_retuned(source, out, again, {"data": "other"})
    assert drums.load_description(out)["retuned"]["data"] == "other"
    assert drums.load_description(out)["retuned"]["files"] == 1
    with pytest.raises(ValueError, match="own folder"):
        drums.save_retuned(source, source, result, {})
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a re-tuned model folder"):
        drums.save_retuned(source, tmp_path / "busy", result, {})
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


@pytest.mark.filterwarnings("ignore:Estimated onsets are empty")  # mir_eval, at 0.9
def test_threshold_curve_against_mir_eval():
    p, references = synthetic_file(7)
    times = frame_times(len(p), CONFIG)
    thresholds = [0.07, 0.2, 0.42, 0.6, 0.7, 0.9]  # none equal to a peak's height
    parameters = DecodingParameters(0.5, 4, -DELAY / CONFIG.frame_rate)
    for c in range(3):
        curve = threshold_curve([p[:, c]], [references[c]], CONFIG, parameters, thresholds)
        shifted = times + parameters.offset_seconds
        expected = [
            mir_eval.onset.f_measure(references[c], shifted[p[:, c] > t])[0] for t in thresholds
        ]
        np.testing.assert_allclose(curve, expected, atol=1e-12)
    # The retuned decoding's own F1 is the curve's value at its threshold.
    result = drums.retune(model_like(0.5), [transcription([(p, references)])])
    tuning = result.after[2]
    at = threshold_curve(
        [p[:, 2]], [references[2]], CONFIG, tuning.parameters, [tuning.parameters.threshold]
    )
    assert at[0] == pytest.approx(tuning.f1)
    with pytest.raises(ValueError, match="files"):
        threshold_curve([p[:, 0]], [], CONFIG, parameters)
