"""`tune_malloc`: freed blocks of a few MiB are reused instead of given back to the kernel."""

import os
import platform
import subprocess
import sys

import pytest

from loco_tf import _startup, allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Page faults per cycle of three 4 MiB arrays made and dropped (the shape of the front end's
# work per block), counted by the kernel, after one warm-up cycle.
FAULTS = """
import resource, sys
import numpy as np
from loco_tf.allocator import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc()
def cycle():
    arrays = [np.ones(1 << 20, np.float32) for _ in range(3)]
    del arrays
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    cycle()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults_per_cycle(mode: str) -> float:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MALLOC_") and key != "LOCO_TF_TUNE_MALLOC"
    }
    done = subprocess.run(
        [sys.executable, "-c", FAULTS, mode],
        capture_output=True,
        text=True,
        env={**environment, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="mallopt's thresholds are glibc's")
def test_tune_malloc_reuses_freed_blocks():
    default, tuned = _faults_per_cycle("default"), _faults_per_cycle("tuned")
    # glibc's defaults give the 12 MiB back and fault it in again every cycle (3,072 pages of
    # 4 KiB; fewer with huge pages); tuned, the heap keeps it.
    assert default > 500, f"glibc's defaults no longer churn here ({default} faults a cycle)"
    assert tuned < 20, f"{tuned} page faults a cycle after tune_malloc (defaults: {default})"


@pytest.mark.parametrize(
    "variable, value",
    [
        ("LOCO_TF_TUNE_MALLOC", "0"),
        ("MALLOC_TRIM_THRESHOLD_", "1000000"),
        ("MALLOC_MMAP_THRESHOLD_", "1000000"),
        ("MALLOC_TOP_PAD_", "0"),
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000"),
    ],
)
def test_tune_malloc_leaves_a_users_choice(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    called = []
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: called.append(a))
    assert allocator.tune_malloc() is False
    assert called == []  # mallopt was never reached


def test_tune_malloc_refuses_nonsense_thresholds():
    with pytest.raises(ValueError, match="positive bytes"):
        allocator.tune_malloc(mmap_threshold=0)
    with pytest.raises(ValueError, match="positive bytes"):
        allocator.tune_malloc(trim_threshold=-1)


def test_the_command_tunes_malloc_and_a_library_import_does_not(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "tune_malloc", lambda: calls.append(1) or True)
    monkeypatch.setattr(_startup, "is_command_line", lambda: False)
    _startup.start_command()
    assert calls == []
    monkeypatch.setattr(_startup, "is_command_line", lambda: True)
    _startup.start_command()
    assert calls == [1]
