"""glibc malloc settings for loco-tf's work: large arrays made and dropped block after block.

The front end makes arrays of a few megabytes per block of frames (the windowed frames, their
spectrum, the power) and TensorFlow makes tensors of that size per layer and chunk. glibc's
malloc maps an allocation of over 128 KiB with `mmap` and gives it back when it is freed; past
its first frees it raises that limit (to at most 32 MiB) and serves such sizes from the heap,
but it also gives the heap's free top back to the kernel once it exceeds twice the limit. So
the same memory is given back and asked for again, and every page of it comes back as a page
fault that the kernel zeroes. `tune_malloc` sets both limits once (arrays under 16 MiB from the
heap; up to 64 MiB of free top kept), so that freed blocks are reused.

Measured with `python bench/malloc_bench.py --rounds 5` (glibc's defaults against these
settings, five fresh processes each, taking turns; 2 cores, 2026-11-29): the front end alone
1.20x as fast (856x against 712x real time; every tuned run above every default run), one 60 s
file end to end 1.15x (414x against 361x, bfloat16), a folder of 20 files 1.13x (431x against
383x), a training step unchanged (1.02x); a second such run, later: 1.18x, 1.05x, 1.13x and
0.98x. The churn itself is what tests/test_allocator.py
counts: three 4 MiB arrays made and dropped cost about 1,000 page faults a cycle with the
defaults, none tuned. The cost is memory: freed heap stays with the process instead of
going back to the kernel (the bench's peak resident memory, TensorFlow included, 2,517 MiB
against 2,357 MiB).

The `loco` command applies it when a command starts (`_startup.start_command`). A program
that imports loco-tf is left as it is; it can call `tune_malloc()` itself. Nothing is changed
when the C library is not glibc, when the user has set glibc's own `MALLOC_*` tunables (theirs
stand), or when `LOCO_TF_TUNE_MALLOC=0`.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt(3) parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 16 << 20
"""Allocations below this many bytes come from the heap (reused) rather than from `mmap`."""
TRIM_THRESHOLD = 64 << 20
"""Free memory at the top of the heap that is kept rather than given back to the kernel."""

# glibc's environment tunables of the same settings: a user who set one has chosen.
_GLIBC_VARIABLES = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Sets glibc's mmap and trim thresholds for this process (see the module's docstring).

    Args:
        mmap_threshold: bytes; larger allocations are mapped, smaller ones use the heap.
        trim_threshold: bytes of free heap top kept; at least `mmap_threshold` is sensible.

    Returns:
        True if both were set; False if nothing was changed: not glibc, glibc's `MALLOC_*`
        variables or `GLIBC_TUNABLES` set, `LOCO_TF_TUNE_MALLOC=0`, or mallopt refused.
    """
    if mmap_threshold <= 0 or trim_threshold <= 0:
        raise ValueError(
            f"thresholds must be positive bytes: mmap {mmap_threshold}, trim {trim_threshold}"
        )
    if os.environ.get("LOCO_TF_TUNE_MALLOC", "") == "0":
        return False
    if any(name in os.environ for name in _GLIBC_VARIABLES):
        return False
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # Setting either turns off glibc's own adjustment of both, so both are set.
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    )
