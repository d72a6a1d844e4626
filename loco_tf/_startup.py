"""A quiet start for the `loco` command: TensorFlow's start-up log lines are left out.

Importing TensorFlow 2.21 prints six lines on stderr on this kind of machine (oneDNN is on,
no CUDA driver, the CPU's instruction sets, each from two libraries) and its first look at the
devices an error line ("failed call to cuInit") on a machine without a GPU. They come from
C++ before absl's logging is set up, so `TF_CPP_MIN_LOG_LEVEL` does not silence them all, and
a user of the command line reads them as a fault. For the `loco` command (and `python -m
loco_tf`) this module catches file descriptor 2 while TensorFlow and the package are imported
and TensorFlow finds its devices (`start_command`, run by the command just before a command's
work, so that `--help` and `--version` need no TensorFlow), and writes back every line that is
not one of those: warnings, errors and anything else still show. It also sets
`TF_CPP_MIN_LOG_LEVEL=1` (TensorFlow's informational lines off) unless the user has set it.
`LOCO_TF_VERBOSE=1` shows everything. Importing `loco_tf` as a library changes nothing.
`loco export` holds its work the same way, for one error-level line about oneDNN that says
nothing either (below).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# The start-up lines of TensorFlow's C++ libraries that say nothing a user must act on.
_START_UP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\] .*"
    r"|E\d{4} [\d:. ]+\d+ cuda_(platform|driver|executor)\.cc:\d+\] failed call to cuInit: .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate "
    r"compiler flags\."
    # Not start-up, but as empty: an error-level line oneDNN writes for boolean ops during
    # `loco export` (here on a CPU that has AVX-512); TensorFlow runs those ops with Eigen
    # instead, which is all it means.
    r"|E\d{4} [\d:. ]+\d+ util\.cc:\d+\] oneDNN supports DT_BOOL only on platforms with "
    r"AVX-512\. Falling back to the default Eigen-based implementation if present\."
)


def is_command_line() -> bool:
    """Whether this process is the `loco` command or `python -m loco_tf`."""
    program = sys.argv[0] if sys.argv else ""
    if os.path.basename(program) in ("loco", "loco.exe"):
        return True
    # `python [options] -m loco_tf ...`: sys.argv[0] is "-m" while the package is imported,
    # then __main__.py's path (which the command's spawned workers are given); the
    # interpreter's own arguments name the module.
    if program.endswith(os.path.join("loco_tf", "__main__.py")):
        return True
    arguments = list(getattr(sys, "orig_argv", []))
    return "-mloco_tf" in arguments or any(
        arguments[i : i + 2] == ["-m", "loco_tf"] for i in range(len(arguments))
    )


def is_worker_process() -> bool:
    """Whether this process is a worker started by multiprocessing's "spawn" method (which
    gives it the parent's sys.argv: a worker of the `loco` command is the command too)."""
    return "--multiprocessing-fork" in getattr(sys, "orig_argv", [])


def filter_start_up(text: str) -> str:
    """`text` without TensorFlow's start-up noise lines."""
    kept = [line for line in text.splitlines(True) if not _START_UP_NOISE.fullmatch(line.strip())]
    return "".join(kept)


@contextlib.contextmanager
def quiet_start_up(enabled: bool) -> Iterator[None]:
    """Within the context, what is written to file descriptor 2 is held back, then written
    without TensorFlow's start-up noise (`filter_start_up`); all of it if the context raises."""
    if not enabled or os.environ.get("LOCO_TF_VERBOSE", "") not in ("", "0"):
        yield
        return
    # TensorFlow's informational lines once logging is set up (XLA's "Compiled cluster" and
    # the like): off for the command unless the user set the level.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (e.g. an embedded host)
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            text = text if failed else filter_start_up(text)
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


def start_command() -> None:
    """For the `loco` command, before a command's work: glibc's malloc tuned for the
    command's large arrays (`allocator.tune_malloc`), then TensorFlow and the whole package
    imported, and TensorFlow's devices listed, with its start-up lines held back. Elsewhere
    (a program importing `loco_tf`, which imports all of it at once) nothing happens."""
    if not is_command_line():
        return
    from loco_tf import allocator

    allocator.tune_malloc()
    with quiet_start_up(True):
        import tensorflow as tf

        import loco_tf._api  # noqa: F401  (what a library import of loco_tf imports)

        tf.config.list_physical_devices()  # its line about CUDA comes now, while held back
