"""Onset scores: hand-computed cases and mir_eval's own functions as references."""

import json
import math

import mir_eval
import numpy as np
import pytest

from loco_tf.metrics import ALL, evaluate_onsets, match_onsets, precision_recall_f1


def test_hand_computed_file():
    reference = [1.0, 2.0, 3.0]
    estimate = [1.03, 2.0, 2.5, 3.06]
    # 50 ms: 1.0-1.03 and 2.0-2.0 match, 3.06 is 60 ms away, 2.5 is nowhere near.
    scores = evaluate_onsets([[reference]], [[estimate]], ["SD"], windows=(0.05, 0.02))
    s50, s20 = scores[(0.05, "SD")], scores[(0.02, "SD")]
    assert (s50.reference, s50.estimate, s50.matched) == (3, 4, 2)
    assert s50.precision == pytest.approx(0.5)
    assert s50.recall == pytest.approx(2 / 3)
    assert s50.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s50.timing_mean == pytest.approx(0.015)
    assert s50.timing_std == pytest.approx(0.015)
    # 20 ms: only the exact hit.
    assert s20.matched == 1
    assert s20.f1 == pytest.approx(2 * 0.25 * (1 / 3) / (0.25 + 1 / 3))
    assert s20.timing_mean == pytest.approx(0.0)


def test_matching_is_one_to_one_and_signed():
    matching = match_onsets([1.0], [0.99, 1.01, 1.02], 0.05)
    assert (matching.reference, matching.estimate, matching.matched) == (1, 3, 1)
    matching = match_onsets([1.0, 2.0], [1.02, 1.97], 0.05)
    assert sorted(matching.errors) == pytest.approx([-0.03, 0.02])


def random_file(rng, n_reference, n_estimate, length=20.0):
    reference = np.sort(rng.uniform(0, length, n_reference))
    hits = reference[rng.random(n_reference) < 0.7]
    hits = hits + rng.normal(0, 0.02, hits.size)
    extra = rng.uniform(0, length, n_estimate)
    return reference, np.sort(np.concatenate([hits, extra]))


def test_per_file_and_micro_scores_agree_with_mir_eval():
    rng = np.random.default_rng(3)
    files = [random_file(rng, rng.integers(5, 40), rng.integers(0, 10)) for _ in range(6)]
    references = [[r] for r, _ in files]
    estimates = [[e] for _, e in files]
    for window in (0.05, 0.02):
        scores = evaluate_onsets(references, estimates, ["HH"], windows=(window,))
        s = scores[(window, "HH")]
        per_file = [mir_eval.onset.f_measure(r, e, window=window) for r, e in files]
        assert s.file_f1 == pytest.approx(np.mean([f for f, _, _ in per_file]))
        assert s.file_precision == pytest.approx(np.mean([p for _, p, _ in per_file]))
        assert s.file_recall == pytest.approx(np.mean([r for _, _, r in per_file]))
        matched = sum(len(mir_eval.util.match_events(r, e, window)) for r, e in files)
        n_reference = sum(len(r) for r, _ in files)
        n_estimate = sum(len(e) for _, e in files)
        assert s.matched == matched
        assert s.precision == pytest.approx(matched / n_estimate)
        assert s.recall == pytest.approx(matched / n_reference)
        assert s.f1 == pytest.approx(mir_eval.util.f_measure(s.precision, s.recall))
        errors = [
            e[j] - r[i] for r, e in files for i, j in mir_eval.util.match_events(r, e, window)
        ]
        assert s.timing_mean == pytest.approx(np.mean(errors))
        assert s.timing_std == pytest.approx(np.std(errors))


def test_all_classes_pool_counts_within_each_file():
    # File 0: KD perfect (2/2), SD all wrong (0 of 2 detections, 1 reference).
    # File 1: KD missed (no detection, 1 reference), SD perfect (1/1).
    references = [[[1.0, 2.0], [3.0]], [[1.0], [2.0]]]
    estimates = [[[1.0, 2.0], [5.0, 6.0]], [[], [2.0]]]
    scores = evaluate_onsets(references, estimates, ["KD", "SD"], windows=(0.05,))
    total = scores[(0.05, ALL)]
    assert (total.reference, total.estimate, total.matched) == (5, 5, 3)
    assert total.precision == pytest.approx(3 / 5)
    assert total.recall == pytest.approx(3 / 5)
    # Per file over both classes: file 0 has P 2/4, R 2/3; file 1 has P 1/1, R 1/2.
    f0 = mir_eval.util.f_measure(2 / 4, 2 / 3)
    f1 = mir_eval.util.f_measure(1.0, 1 / 2)
    assert total.file_f1 == pytest.approx((f0 + f1) / 2)
    assert total.file_precision == pytest.approx((0.5 + 1.0) / 2)
    kick = scores[(0.05, "KD")]
    assert kick.file_f1 == pytest.approx((1.0 + 0.0) / 2)  # refs and no detections: F1 = 0


def test_empty_conventions():
    assert all(math.isnan(v) for v in precision_recall_f1(0, 0, 0))
    assert precision_recall_f1(0, 3, 0) == (0.0, 0.0, 0.0)
    assert precision_recall_f1(0, 0, 2) == (0.0, 0.0, 0.0)
    # A file with neither references nor detections of a class is left out of its mean.
    references = [[[1.0]], [[]]]
    estimates = [[[1.0]], [[]]]
    s = evaluate_onsets(references, estimates, ["KD"], windows=(0.05,))[(0.05, "KD")]
    assert s.files == 1 and s.file_f1 == 1.0 and s.f1 == 1.0
    s = evaluate_onsets([[[]]], [[[]]], ["KD"], windows=(0.05,))[(0.05, "KD")]
    assert math.isnan(s.f1) and math.isnan(s.file_f1) and math.isnan(s.timing_mean)


def test_table_and_json():
    scores = evaluate_onsets([[[1.0], []]], [[[1.01], []]], ["KD", "SD"])
    text = scores.table("title")
    assert "title" in text and "KD" in text and "all" in text and "20ms" in text
    content = json.loads(json.dumps(scores.to_dict()))
    assert content["windows"]["0.05"]["KD"]["f1"] == 1.0
    assert content["windows"]["0.05"]["SD"]["f1"] is None
    assert content["windows"]["0.02"]["all"]["timing_mean"] == pytest.approx(0.01)


def test_shape_errors():
    with pytest.raises(ValueError, match="files"):
        evaluate_onsets([[[1.0]]], [], ["KD"])
    with pytest.raises(ValueError, match="classes"):
        evaluate_onsets([[[1.0]]], [[[1.0], [2.0]]], ["KD"])
    with pytest.raises(ValueError, match="finite"):
        match_onsets([np.nan], [1.0])
