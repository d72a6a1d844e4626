"""Decoding events from per-frame event probabilities p(t): peaks -> frames -> seconds.

LoCo concentrates each event's mass on one or two frames (paper §4.5), so decoding is a
threshold and a local-maximum test (`pick_peaks`), then frame -> time with the front end's
convention (`loco_tf.features.frame_times`: a frame's time is the centre of its window) plus a
constant offset. The offset exists because a causal network can only fire once it has heard
enough of the onset; it fires a constant few milliseconds after it, and a constant is removed
by measuring it on validation data (`tune_decoding`).

`tune_decoding` picks, per class, the threshold and minimum peak distance that maximise F1 on
validation files (summed over files, as in Wu et al. 2018), and the offset as minus the median
signed timing error (estimate - reference) of the matched pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.signal

from loco_tf.features import FeatureConfig, frame_times
from loco_tf.metrics import match_onsets

DEFAULT_THRESHOLDS = (0.02, *np.round(np.arange(0.05, 0.951, 0.05), 2).tolist())
# Frames: 3.75 ms to 60 ms (16 frames), below the 120 ms between 16th notes at 125 BPM.
DEFAULT_MIN_DISTANCES = (1, 2, 4, 8, 16)


def pick_peaks(
    event_probabilities: np.ndarray, threshold: float = 0.5, min_distance: int = 1
) -> np.ndarray:
    """Frames where p(t) is a local maximum of at least `threshold` (scipy.signal.find_peaks),
    no two closer than `min_distance` (the higher peak wins; `_apart`).

    LoCo concentrates each event's mass on one or two frames (paper §4.5), so a threshold and
    local-maximum test recover the events; `min_distance` (frames) removes near duplicates.

    Args:
        event_probabilities: `[time]` p(t) of one class.
        threshold: smallest peak probability.
        min_distance: smallest distance between two peaks, in frames (>= 1).

    Returns:
        Sorted int frame indices.
    """
    p = np.asarray(event_probabilities, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pick_peaks expects one class's p(t) of shape [time], got {p.shape}.")
    # Pad with zeros so that a peak on the first or last frame counts as a local maximum.
    peaks, properties = scipy.signal.find_peaks(np.pad(p, 1), height=threshold)
    peaks = peaks - 1
    if min_distance > 1 and len(peaks) > 1:
        peaks = peaks[_apart(peaks, properties["peak_heights"], int(min_distance))]
    return peaks


def _apart(peaks: np.ndarray, heights: np.ndarray, distance: int) -> np.ndarray:
    """Which peaks to keep so that none is closer than `distance` to a higher one: the highest
    first, each removing its close neighbours (as scipy's `distance`), with ties visited right
    to left. scipy orders ties by an unstable sort (`np.argsort`, which on AVX-512 machines is
    x86-simd-sort), which an exported graph cannot reproduce; this order `loco_tf.ops.peaks`
    reproduces exactly."""
    keep = np.ones(len(peaks), dtype=bool)
    for j in np.argsort(heights, kind="stable")[::-1]:
        if keep[j]:
            low = np.searchsorted(peaks, peaks[j] - distance, side="right")
            high = np.searchsorted(peaks, peaks[j] + distance, side="left")
            keep[low:high] = False
            keep[j] = True
    return keep


@dataclasses.dataclass(frozen=True)
class DecodingParameters:
    """How one class's p(t) becomes event times.

    Attributes:
        threshold: smallest peak probability (`pick_peaks`).
        min_distance: smallest distance between two events, in frames.
        offset_seconds: added to every frame time; minus the network's typical delay.
    """

    threshold: float = 0.5
    min_distance: int = 1
    offset_seconds: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {self.threshold}")
        if self.min_distance < 1:
            raise ValueError(f"min_distance must be at least 1 frame, got {self.min_distance}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DecodingParameters:
        """The inverse of `to_dict`."""
        return cls(
            threshold=float(values["threshold"]),
            min_distance=int(values["min_distance"]),
            offset_seconds=float(values["offset_seconds"]),
        )


def frames_to_seconds(
    frames, feature_config: FeatureConfig, offset_seconds: float = 0.0
) -> np.ndarray:
    """Times of frame indices (`features.frame_times`: window centres) plus an offset."""
    frames = np.asarray(frames, dtype=np.int64)
    if frames.size == 0:
        return np.zeros(frames.shape, dtype=np.float64)
    if frames.min() < 0:
        raise ValueError("frame indices must be non-negative")
    return frame_times(int(frames.max()) + 1, feature_config)[frames] + offset_seconds


def decode_events(
    event_probabilities: np.ndarray,
    feature_config: FeatureConfig,
    parameters: DecodingParameters | Sequence[DecodingParameters] = DecodingParameters(),
) -> list[np.ndarray]:
    """Event times in seconds, per class, from `[time, classes]` p(t).

    Args:
        event_probabilities: `[time, classes]` p(t) of one file.
        feature_config: the front end the frames come from.
        parameters: one `DecodingParameters` for every class, or one per class.

    Returns:
        Per class, sorted float64 times in seconds (the offset may move a time below 0 s).
    """
    p = np.asarray(event_probabilities)
    if p.ndim != 2:
        raise ValueError(f"expected p(t) of shape [time, classes], got {p.shape}")
    if isinstance(parameters, DecodingParameters):
        parameters = [parameters] * p.shape[1]
    if len(parameters) != p.shape[1]:
        raise ValueError(f"{len(parameters)} decoding parameters for {p.shape[1]} classes")
    return [
        frames_to_seconds(
            pick_peaks(p[:, c], params.threshold, params.min_distance),
            feature_config,
            params.offset_seconds,
        )
        for c, params in enumerate(parameters)
    ]


def decode_with_counts(
    event_probabilities: np.ndarray,
    counts: Sequence[int],
    feature_config: FeatureConfig,
    parameters: DecodingParameters | Sequence[DecodingParameters] = DecodingParameters(),
) -> list[np.ndarray]:
    """Event times when the number of events per class is known (the paper's Remark in §3:
    counts are cheap to annotate; the model places them).

    For each class, the `counts[c]` highest peaks of p(t) (`pick_peaks` with threshold 0 and the
    class's `min_distance`), whatever their height; the thresholds are not used. If p(t) has
    fewer peaks than events, every peak is returned.

    Returns:
        Per class, sorted float64 times in seconds (frame times plus the class's offset).
    """
    p = np.asarray(event_probabilities)
    if p.ndim != 2:
        raise ValueError(f"expected p(t) of shape [time, classes], got {p.shape}")
    if isinstance(parameters, DecodingParameters):
        parameters = [parameters] * p.shape[1]
    if not len(counts) == len(parameters) == p.shape[1]:
        raise ValueError(
            f"{len(counts)} counts and {len(parameters)} decoding parameters for "
            f"{p.shape[1]} classes"
        )
    times = []
    for c, (count, params) in enumerate(zip(counts, parameters, strict=True)):
        if int(count) < 0:
            raise ValueError(f"counts must be >= 0, got {count} for class {c}")
        peaks = pick_peaks(p[:, c], 0.0, params.min_distance)
        order = np.argsort(p[peaks, c], kind="stable")[::-1][: int(count)]
        frames = np.sort(peaks[order])
        times.append(frames_to_seconds(frames, feature_config, params.offset_seconds))
    return times


@dataclasses.dataclass(frozen=True)
class Tuning:
    """What `tune_decoding` chose for one class, and how well it did on the tuning data.

    Attributes:
        parameters: the chosen threshold, minimum distance and offset.
        f1, precision, recall: at `window`, summed over files, with the chosen parameters.
        median_error_seconds: the network's median delay, i.e. the median signed error
            (estimate - reference) of frame times without an offset; the offset is its negative.
        matched: matched pairs with the chosen parameters.
        window: the tolerance tuned for, seconds.
    """

    parameters: DecodingParameters
    f1: float
    precision: float
    recall: float
    median_error_seconds: float
    matched: int
    window: float


def _score(
    p_per_file: Sequence[np.ndarray],
    times_per_file: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    threshold: float,
    min_distance: int,
    window: float,
) -> tuple[tuple[float, float, float], np.ndarray]:
    """(F1, precision, recall) from counts summed over files, and the matched errors."""
    matched = estimated = 0
    errors = [np.zeros(0)]
    for p, times, reference in zip(p_per_file, times_per_file, references, strict=True):
        estimate = times[pick_peaks(p, threshold, min_distance)]
        matching = match_onsets(reference, estimate, window)
        matched += matching.matched
        estimated += len(estimate)
        errors.append(matching.errors)
    n_reference = sum(len(r) for r in references)
    precision = matched / estimated if estimated else 0.0
    recall = matched / n_reference if n_reference else 0.0
    f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
    return (f1, precision, recall), np.concatenate(errors)


def threshold_curve(
    event_probabilities: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    feature_config: FeatureConfig,
    parameters: DecodingParameters,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    window: float = 0.05,
) -> np.ndarray:
    """F1 of one class at each threshold, with `parameters`' minimum distance and offset.

    F1 from true/false positives summed over the files (micro), as `tune_decoding` scores; how
    sharply F1 depends on the threshold, e.g. to plot a decoding against another.

    Args:
        event_probabilities: per file, p(t) `[time]` of the class.
        references: per file, its reference times in seconds.
        feature_config: the front end the frames come from.
        parameters: the minimum distance and offset to decode with (its threshold is unused).
        thresholds: where to score.
        window: matching tolerance in seconds.

    Returns:
        `[len(thresholds)]` F1.
    """
    if len(event_probabilities) != len(references):
        raise ValueError(f"{len(event_probabilities)} files of p(t), {len(references)} of refs")
    p_c = [np.asarray(p).reshape(-1) for p in event_probabilities]
    refs_c = [np.sort(np.asarray(r, dtype=np.float64)) for r in references]
    times = [frame_times(len(p), feature_config) + parameters.offset_seconds for p in p_c]
    return np.array(
        [_score(p_c, times, refs_c, t, parameters.min_distance, window)[0][0] for t in thresholds]
    )


def tune_decoding(
    event_probabilities: Sequence[np.ndarray],
    references: Sequence[Sequence[np.ndarray]],
    feature_config: FeatureConfig,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    min_distances: Sequence[int] = DEFAULT_MIN_DISTANCES,
    window: float = 0.05,
    groups: Sequence[Sequence[int]] | None = None,
) -> list[Tuning]:
    """Per class, the decoding that maximises F1 on tuning files, and the timing offset.

    Two passes per class: (1) grid search over threshold x min_distance without an offset;
    the offset is then minus the median signed error of the matched pairs; (2) the grid search
    again with that offset, and the offset corrected by the median error that remains; the
    scores returned are those of the final parameters. F1 is computed from true/false positives
    summed over the files (micro, Wu et al. 2018); ties keep the first in grid order
    (min_distance, then threshold, ascending).

    Args:
        event_probabilities: per file, `[time, classes]` p(t).
        references: per file, per class, reference event times in seconds.
        feature_config: the front end the frames come from.
        thresholds, min_distances: the grid.
        window: matching tolerance in seconds (50 ms: the task's, Wu et al. 2018).
        groups: class indices that share one decoding, tuned on all their events together
            (each file's classes count as separate sequences); for many rare classes, such as
            the piano's 88 pitches, where one class alone has too few events to tune on. Every
            class must be in exactly one group. None: each class on its own.

    Returns:
        One `Tuning` per class (a group's classes get the group's).
    """
    if groups is not None:
        n_classes = np.asarray(event_probabilities[0]).shape[1] if event_probabilities else 0
        members = sorted(c for group in groups for c in group)
        if members != list(range(n_classes)):
            raise ValueError(f"groups must hold each of the {n_classes} classes exactly once")
        tunings: list[Tuning | None] = [None] * n_classes
        for group in groups:
            pooled = [np.asarray(p)[:, c : c + 1] for p in event_probabilities for c in group]
            pooled_refs = [[r[c]] for r in references for c in group]
            (tuning,) = tune_decoding(
                pooled,
                pooled_refs,
                feature_config,
                thresholds=thresholds,
                min_distances=min_distances,
                window=window,
            )
            for c in group:
                tunings[c] = tuning
        return tunings
    if len(event_probabilities) != len(references):
        raise ValueError(f"{len(event_probabilities)} files of p(t), {len(references)} of refs")
    if not event_probabilities:
        raise ValueError("no files to tune the decoding on")
    n_classes = np.asarray(event_probabilities[0]).shape[1]
    grid = [(int(d), float(t)) for d in min_distances for t in thresholds]
    tunings = []
    for c in range(n_classes):
        p_c = [np.asarray(p)[:, c] for p in event_probabilities]
        refs_c = [np.sort(np.asarray(r[c], dtype=np.float64)) for r in references]
        offset = 0.0
        for _ in range(2):
            times = [frame_times(len(p), feature_config) + offset for p in p_c]
            results = [_score(p_c, times, refs_c, t, d, window) for d, t in grid]
            best = max(range(len(grid)), key=lambda i: (results[i][0][0], -i))
            min_distance, threshold = grid[best]
            errors = results[best][1]
            offset -= float(np.median(errors)) if errors.size else 0.0
        times = [frame_times(len(p), feature_config) + offset for p in p_c]
        (f1, precision, recall), errors = _score(
            p_c, times, refs_c, threshold, min_distance, window
        )
        tunings.append(
            Tuning(
                parameters=DecodingParameters(threshold, min_distance, offset),
                f1=f1,
                precision=precision,
                recall=recall,
                median_error_seconds=0.0 - offset,  # 0.0, not -0.0, when there is no delay
                matched=int(errors.size),
                window=window,
            )
        )
    return tunings
