"""Onset-detection scores with mir_eval: precision, recall, F1 and timing error.

A detection is correct when it lies within a tolerance window of a reference event, each
reference and each detection being matched at most once; the matching is mir_eval's maximum
bipartite matching (`mir_eval.util.match_events`, as in `mir_eval.onset.f_measure`). Scores
are given per class and for all classes together, at each window (50 ms, the drum
transcription task's tolerance in Wu et al. 2018, and 20 ms), two ways:

- micro: true positives, false positives and false negatives summed over files (and, for
  "all", over classes) before computing precision, recall and F1, as in Wu et al. (2018);
- per file: precision, recall and F1 of each file, then their mean over files, as the paper's
  authors' code reports (and as the paper's piano table says: "the mean over all pieces'
  score").

Conventions: with references but no detections (or detections but no references), precision,
recall and F1 are 0, as in `mir_eval.onset.f_measure`. With neither, they are undefined
(0 / 0): NaN for a micro score, and such a file is left out of the per-file mean of that class
(a silent file for a class is neither a success nor a failure). The timing error is
estimate - reference over the matched pairs, in seconds; its standard deviation is the
population one (ddof = 0). NaN when nothing was matched.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Sequence
from typing import Any

import mir_eval
import numpy as np

DEFAULT_WINDOWS = (0.05, 0.02)
ALL = "all"


@dataclasses.dataclass(frozen=True)
class Matching:
    """The matching of one file's detections of one class against its references.

    Attributes:
        reference: number of reference events.
        estimate: number of detections.
        matched: matched pairs (true positives).
        errors: estimate - reference of each matched pair, seconds, in reference order.
    """

    reference: int
    estimate: int
    matched: int
    errors: np.ndarray


def _times(values) -> np.ndarray:
    times = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if times.size and not np.all(np.isfinite(times)):
        raise ValueError("event times must be finite")
    return times


def match_onsets(reference, estimate, window: float = 0.05) -> Matching:
    """Matches detections to references within `window` seconds (mir_eval.util.match_events).

    Args:
        reference: reference event times, seconds (any order).
        estimate: detected event times, seconds (any order).
        window: tolerance, seconds; a pair matches when |estimate - reference| <= window.
    """
    reference, estimate = _times(reference), _times(estimate)
    if reference.size == 0 or estimate.size == 0:
        return Matching(reference.size, estimate.size, 0, np.zeros(0))
    pairs = mir_eval.util.match_events(reference, estimate, window)
    errors = np.array([estimate[j] - reference[i] for i, j in pairs], dtype=np.float64)
    return Matching(reference.size, estimate.size, len(pairs), errors)


def precision_recall_f1(matched: int, reference: int, estimate: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (NaN for all three when both counts are 0)."""
    if reference == 0 and estimate == 0:
        return math.nan, math.nan, math.nan
    precision = matched / estimate if estimate else 0.0
    recall = matched / reference if reference else 0.0
    return precision, recall, float(mir_eval.util.f_measure(precision, recall))


@dataclasses.dataclass(frozen=True)
class Scores:
    """Scores of one class (or all classes) at one window.

    Attributes:
        precision, recall, f1: micro: from counts summed over files.
        file_precision, file_recall, file_f1: means over files of per-file scores.
        files: files in the per-file means (those with references or detections).
        reference, estimate, matched: summed counts.
        timing_mean, timing_std: mean and standard deviation (ddof 0) of the signed timing
            error estimate - reference over matched pairs, seconds.
    """

    precision: float
    recall: float
    f1: float
    file_precision: float
    file_recall: float
    file_f1: float
    files: int
    reference: int
    estimate: int
    matched: int
    timing_mean: float
    timing_std: float


def _scores(per_file: Sequence[Matching]) -> Scores:
    reference = sum(m.reference for m in per_file)
    estimate = sum(m.estimate for m in per_file)
    matched = sum(m.matched for m in per_file)
    precision, recall, f1 = precision_recall_f1(matched, reference, estimate)
    file_scores = [
        precision_recall_f1(m.matched, m.reference, m.estimate)
        for m in per_file
        if m.reference or m.estimate
    ]
    if file_scores:
        file_precision, file_recall, file_f1 = (float(v) for v in np.mean(file_scores, axis=0))
    else:
        file_precision = file_recall = file_f1 = math.nan
    errors = np.concatenate([np.zeros(0), *(m.errors for m in per_file)])
    return Scores(
        precision=precision,
        recall=recall,
        f1=f1,
        file_precision=file_precision,
        file_recall=file_recall,
        file_f1=file_f1,
        files=len(file_scores),
        reference=reference,
        estimate=estimate,
        matched=matched,
        timing_mean=float(errors.mean()) if errors.size else math.nan,
        timing_std=float(errors.std()) if errors.size else math.nan,
    )


def _merge(matchings: Sequence[Matching]) -> Matching:
    """One file's matchings of several classes as one (for the "all" scores)."""
    return Matching(
        sum(m.reference for m in matchings),
        sum(m.estimate for m in matchings),
        sum(m.matched for m in matchings),
        np.concatenate([np.zeros(0), *(m.errors for m in matchings)]),
    )


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Scores per window and class, `ALL` included: `evaluation.scores[(0.05, "KD")]`.

    Attributes:
        classes: the class names, in order.
        windows: the tolerances, seconds.
        files: the files' names, in order.
        scores: `Scores` per (window, class name or `ALL`).
    """

    classes: tuple[Hashable, ...]
    windows: tuple[float, ...]
    files: tuple[str, ...]
    scores: dict[tuple[float, Hashable], Scores]

    def __getitem__(self, key: tuple[float, Hashable]) -> Scores:
        return self.scores[key]

    def table(self, title: str = "") -> str:
        """The scores as a text table, percent and milliseconds."""

        def percent(value: float) -> str:
            return "    -" if math.isnan(value) else f"{100 * value:5.1f}"

        def ms(value: float) -> str:
            return "    -" if math.isnan(value) else f"{1000 * value:+5.1f}"

        lines = [title] if title else []
        lines.append(
            f"{len(self.files)} files. micro: counts summed over files (Wu et al. 2018); "
            "per file: mean of per-file scores; timing: estimate - reference, ms"
        )
        header = (
            f"{'window':>6}  {'class':<5} {'refs':>6} {'dets':>6}   "
            f"{'P':>5} {'R':>5} {'F1':>5}   {'fileP':>5} {'fileR':>5} {'fileF1':>6}   "
            f"{'mean':>5} {'std':>5}"
        )
        lines += [header, "-" * len(header)]
        for window in self.windows:
            for name in (*self.classes, ALL):
                s = self.scores[(window, name)]
                lines.append(
                    f"{1000 * window:4.0f}ms  {str(name):<5} {s.reference:6d} {s.estimate:6d}   "
                    f"{percent(s.precision)} {percent(s.recall)} {percent(s.f1)}   "
                    f"{percent(s.file_precision)} {percent(s.file_recall)} "
                    f"{percent(s.file_f1)} "
                    f"  {ms(s.timing_mean)} {ms(s.timing_std).replace('+', ' ')}"
                )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: {"files": n, "windows": {"0.05": {class: {field: value}}}} (NaN -> None)."""

        def clean(value):
            return None if isinstance(value, float) and math.isnan(value) else value

        return {
            "files": len(self.files),
            "windows": {
                f"{window:g}": {
                    str(name): {
                        k: clean(v)
                        for k, v in dataclasses.asdict(self.scores[(window, name)]).items()
                    }
                    for name in (*self.classes, ALL)
                }
                for window in self.windows
            },
        }


def evaluate_onsets(
    references: Sequence[Sequence[Any]],
    estimates: Sequence[Sequence[Any]],
    classes: Sequence[Hashable],
    windows: Sequence[float] = DEFAULT_WINDOWS,
    file_names: Sequence[str] | None = None,
) -> Evaluation:
    """Scores detections against references, per class and overall, at each window.

    Args:
        references: per file, per class (in the order of `classes`), reference times in s.
        estimates: per file, per class, detected times in s.
        classes: the class names.
        windows: tolerances in seconds.
        file_names: the files' names, for the record; default "0", "1", ...

    Returns:
        An `Evaluation`.
    """
    if len(references) != len(estimates):
        raise ValueError(f"{len(references)} files of references, {len(estimates)} of estimates")
    for per_class in (*references, *estimates):
        if len(per_class) != len(classes):
            raise ValueError(f"expected {len(classes)} classes per file, got {len(per_class)}")
    if file_names is None:
        file_names = [str(i) for i in range(len(references))]
    scores = {}
    for window in windows:
        matchings = [
            [match_onsets(r, e, window) for r, e in zip(ref, est, strict=True)]
            for ref, est in zip(references, estimates, strict=True)
        ]
        for c, name in enumerate(classes):
            scores[(window, name)] = _scores([per_file[c] for per_file in matchings])
        scores[(window, ALL)] = _scores([_merge(per_file) for per_file in matchings])
    return Evaluation(tuple(classes), tuple(windows), tuple(file_names), scores)
