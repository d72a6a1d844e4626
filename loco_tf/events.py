"""Decoding events from per-frame event probabilities p(t)."""

from __future__ import annotations

import numpy as np
import scipy.signal


def pick_peaks(
    event_probabilities: np.ndarray, threshold: float = 0.5, min_distance: int = 1
) -> np.ndarray:
    """Frames where p(t) is a local maximum of at least `threshold` (scipy.signal.find_peaks).

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
    peaks, _ = scipy.signal.find_peaks(
        np.pad(p, 1), height=threshold, distance=max(1, int(min_distance))
    )
    return peaks - 1
