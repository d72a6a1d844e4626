"""The §8.3 digit metrics against brute force and hand-computed answers."""

import itertools

import numpy as np
import pytest

from loco_tf.hilbert import positions
from loco_tf.pipelines.digits import Canvas
from loco_tf.recipes.digits import (
    Detections,
    box_centres,
    detect,
    localisation_scores,
    match_centres,
    recognition_accuracy,
)


def brute_force_pairs(true, estimated):
    """Distances of the min(n, m) pairs of least total distance, by trying every injection."""
    n, m = len(true), len(estimated)
    if not n or not m:
        return []
    best, best_pairs = np.inf, None
    if n <= m:
        for chosen in itertools.permutations(range(m), n):
            d = [np.hypot(*(true[i] - estimated[j])) for i, j in enumerate(chosen)]
            if sum(d) < best:
                best, best_pairs = sum(d), d
    else:
        for chosen in itertools.permutations(range(n), m):
            d = [np.hypot(*(true[i] - estimated[j])) for j, i in enumerate(chosen)]
            if sum(d) < best:
                best, best_pairs = sum(d), d
    return best_pairs


def test_box_centres_are_pixel_centres():
    # A 28 x 28 box at (10, 20) covers pixels 10..37 and 20..47: centre (23.5, 33.5).
    np.testing.assert_allclose(box_centres([[3, 10, 20, 28, 28]]), [[23.5, 33.5]])
    np.testing.assert_allclose(box_centres([[0, 0, 0, 1, 3]]), [[0.0, 1.0]])


def test_matching_equals_brute_force():
    rng = np.random.default_rng(0)
    for n, m in [(3, 3), (2, 5), (5, 2), (4, 4), (1, 0), (0, 2)]:
        true = rng.uniform(0, 100, (n, 2))
        estimated = rng.uniform(0, 100, (m, 2))
        pairs, distances = match_centres(true, estimated)
        assert len(pairs) == min(n, m) == len(set(pairs[:, 0])) == len(set(pairs[:, 1]))
        assert distances.sum() == pytest.approx(sum(brute_force_pairs(true, estimated)))


def test_localisation_mean_distance_equals_brute_force_over_canvases_and_classes():
    rng = np.random.default_rng(1)
    canvases, detections, expected = [], [], []
    for _ in range(20):
        boxes = np.array(
            [[rng.integers(3), *rng.integers(0, 60, 2), 28, 28] for _ in range(rng.integers(5))],
            np.int64,
        ).reshape(-1, 5)
        labels = rng.integers(3, size=rng.integers(5))
        centres = rng.uniform(0, 88, (len(labels), 2))
        canvases.append(Canvas(np.zeros((88, 88), np.uint8), np.zeros(10), boxes))
        detections.append(Detections(labels, np.zeros(len(labels)), centres, np.ones(len(labels))))
        for c in range(3):
            true = boxes[boxes[:, 0] == c, 1:3] + 13.5
            expected += brute_force_pairs(true, centres[labels == c])
    scores = localisation_scores(canvases, detections, tolerance=20.0)
    assert scores.pairs == len(expected)
    assert scores.mean_distance == pytest.approx(np.mean(expected))
    assert scores.recall == pytest.approx(np.sum(np.array(expected) <= 20.0) / scores.digits)


def test_detections_sit_at_window_centres_and_are_scored_by_hand():
    # 88 px canvas, 32 px windows every 8 px: 64 steps. A 7 at (8, 16) has centre (21.5, 29.5);
    # a 1 at (50, 40) has centre (63.5, 53.5).
    corners = positions(88, 32, 8)
    step_seven = int(np.flatnonzero((corners == [0, 8]).all(axis=1))[0])  # centre (15.5, 23.5)
    step_one = int(np.flatnonzero((corners == [32, 24]).all(axis=1))[0])  # centre (47.5, 39.5)
    p = np.zeros((64, 10))
    p[step_seven, 7] = 0.9
    p[step_seven + 1, 7] = 0.6  # the same event's tail: not a peak
    p[step_one, 1] = 0.7
    p[5, 3] = 0.3  # below the threshold
    found = detect(p, corners + 15.5, threshold=0.5)
    assert sorted(found.labels.tolist()) == [1, 7]
    canvas = Canvas(
        np.zeros((88, 88), np.uint8),
        np.zeros(10),
        np.array([[7, 8, 16, 28, 28], [1, 50, 40, 28, 28], [4, 0, 0, 28, 28]]),
    )
    scores = localisation_scores([canvas], [found], tolerance=14.0)
    seven, one = np.hypot(6, 6), np.hypot(16, 14)
    assert scores.pairs == 2 and scores.mean_distance == pytest.approx((seven + one) / 2)
    assert scores.precision == pytest.approx(1 / 2)  # the 1 is 21.3 px off
    assert scores.recall == pytest.approx(1 / 3)
    assert scores.exact_counts == 0.0  # the 4 was missed


def test_recognition_is_argmax_of_expected_counts():
    p = np.zeros((3, 4, 10))
    p[0, 1, 2] = 0.9  # a 2
    p[1, :, 5] = 0.3  # spread mass: expected count 1.2 for 5 beats a 0.9 peak of 6
    p[1, 0, 6] = 0.9
    p[2, 2, 9] = 0.8
    assert recognition_accuracy(p, np.array([2, 5, 4])) == pytest.approx(2 / 3)
