"""Independent float64 NumPy references for the count distribution (not the package's code)."""

from __future__ import annotations

import itertools

import numpy as np


def brute_force_pmf(p: np.ndarray, k_max: int) -> np.ndarray:
    """eq. 6 by enumerating all 2**T event patterns; last bin = Pr(Y >= k_max)."""
    pmf = np.zeros(k_max + 1)
    for pattern in itertools.product((0, 1), repeat=len(p)):
        events = np.array(pattern, dtype=bool)
        pmf[min(events.sum(), k_max)] += np.prod(np.where(events, p, 1.0 - p))
    return pmf


def log_pmf_recursion(p: np.ndarray, k_max: int) -> np.ndarray:
    """eq. 9 + eq. 14 in float64 log space with np.logaddexp, one frame at a time."""
    with np.errstate(divide="ignore"):
        log_p, log_q = np.log(p), np.log1p(-p)
        log_pmf = np.full(k_max + 1, -np.inf)
    log_pmf[0] = 0.0
    for lp, lq in zip(log_p, log_q, strict=True):
        moved = np.concatenate([[-np.inf], log_pmf[:-1] + lp])
        tail = np.logaddexp(log_pmf[-1], moved[-1])
        log_pmf = np.logaddexp(log_pmf + lq, moved)
        log_pmf[-1] = tail
    return log_pmf


def batch_log_pmf(p: np.ndarray, lengths: np.ndarray, k_max: int) -> np.ndarray:
    """`[batch, time, classes]` -> `[batch, classes, k_max + 1]`, frames past a length dropped."""
    batch, _, classes = p.shape
    return np.array(
        [
            [log_pmf_recursion(p[b, : lengths[b], c], k_max) for c in range(classes)]
            for b in range(batch)
        ]
    )
