"""The `loco` command's quiet start: TensorFlow's start-up lines are left out, nothing else."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

import loco_tf
from loco_tf import _startup

# Lines TensorFlow 2.21 printed on this machine when imported and when it first looked for a GPU.
NOISE = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795939402.227455    4385 port.cc:153] oneDNN custom operations are on. You may see \
slightly different numerical results due to floating-point round-off errors from different \
computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1795939402.227812    4385 cudart_stub.cc:31] Could not find cuda drivers on your \
machine, GPU will not be used.
I0000 00:00:1795939402.273542    4385 cpu_feature_guard.cc:227] This TensorFlow binary is \
optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other \
operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1795939405.341286    4385 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA \
error: Failed call to cuInit: UNKNOWN ERROR (303)
E0000 00:00:1795957495.475312    3336 util.cc:131] oneDNN supports DT_BOOL only on platforms with \
AVX-512. Falling back to the default Eigen-based implementation if present.
"""

KEPT = """\
E0000 00:00:1795939405.341286    4385 op_kernel.cc:1857] OP_REQUIRES failed at conv_ops.cc:99
/usr/lib/python3/site-packages/foo.py:3: DeprecationWarning: bar is deprecated
W0000 00:00:1795939405.341286    4385 cuda_executor.cc:10] something else about CUDA
To enable the following instructions: do something else
E0000 00:00:1795957495.475312    3336 util.cc:131] oneDNN supports DT_HALF only on some platforms.
"""


def test_only_the_start_up_noise_is_left_out():
    mixed = "".join(
        a + b for a, b in zip(NOISE.splitlines(True), KEPT.splitlines(True), strict=False)
    )
    assert _startup.filter_start_up(NOISE) == ""
    assert _startup.filter_start_up(mixed) == KEPT
    assert _startup.filter_start_up(NOISE + KEPT) == KEPT


def _write_to_fd2(text: str) -> None:
    os.write(2, text.encode())  # as C++ code writes, below Python's sys.stderr


def test_what_is_written_meanwhile_comes_back_without_the_noise(capfd):
    with _startup.quiet_start_up(True):
        _write_to_fd2(NOISE + KEPT)
    assert capfd.readouterr().err == KEPT
    with _startup.quiet_start_up(False):
        _write_to_fd2(NOISE)
    assert capfd.readouterr().err == NOISE


def test_everything_comes_back_if_the_start_fails(capfd):
    with pytest.raises(ImportError), _startup.quiet_start_up(True):
        _write_to_fd2(NOISE)
        raise ImportError("a broken install")
    assert capfd.readouterr().err == NOISE


def test_the_user_can_ask_for_everything(capfd, monkeypatch):
    monkeypatch.setenv("LOCO_TF_VERBOSE", "1")
    with _startup.quiet_start_up(True):
        _write_to_fd2(NOISE)
    assert capfd.readouterr().err == NOISE


LIST_DEVICES = "tensorflow.config.list_physical_devices()"


def _tensorflow_log_level_unset() -> dict[str, str]:
    """This environment without TF_CPP_MIN_LOG_LEVEL: TensorFlow's start-up lines as a user sees
    them."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def test_the_command_starts_quietly():
    # A fresh `python -m loco_tf --version` (which no longer imports TensorFlow: a command's work
    # does, see the predict test below). With CI set, as continuous-integration services do:
    # pyfluidsynth (imported by pretty_midi) then prints where it found its library on stdout
    # unless the package holds that line back.
    environment = _tensorflow_log_level_unset()
    environment["CI"] = "true"
    result = subprocess.run(
        [sys.executable, "-m", "loco_tf", "--version"],
        capture_output=True, text=True, env=environment, timeout=120, check=True,
    )  # fmt: skip
    assert result.stdout == f"loco, version {loco_tf.__version__}\n"
    assert result.stderr == ""
    # A library import keeps TensorFlow's lines (they are its business there).
    result = subprocess.run(
        [sys.executable, "-c", f"import loco_tf, tensorflow; {LIST_DEVICES}"],
        capture_output=True, text=True, env=environment, timeout=120, check=True,
    )  # fmt: skip
    assert "cudart_stub.cc" in result.stderr or "port.cc" in result.stderr


# Every command's --help, in one process that is the `loco` command (argv[0] "loco").
EVERY_HELP = """
import sys
sys.argv[0] = "loco"
import click
from loco_tf.recipes.cli import main

def paths(command, path):
    if isinstance(command, click.Group):
        for name, subcommand in command.commands.items():
            yield from paths(subcommand, [*path, name])
    else:
        yield path
        for task in getattr(command, "tasks", {}):  # `loco evaluate digits ...`
            yield [*path, task]

shown = 0
for path in [[], *paths(main, [])]:
    main.main([*path, "--help"], prog_name="loco", standalone_mode=False)
    shown += 1
main.main(["--version"], prog_name="loco", standalone_mode=False)
print("commands", shown, "tensorflow", "tensorflow" in sys.modules, "keras", "keras" in sys.modules)
"""


def test_help_and_version_need_no_tensorflow():
    result = subprocess.run(
        [sys.executable, "-c", EVERY_HELP],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert result.stderr == ""
    usages = [
        "loco [OPTIONS] COMMAND", "loco train drums [OPTIONS]", "loco train piano [OPTIONS]",
        "loco evaluate digits [OPTIONS]", "loco prepare drums [OPTIONS]",
        "loco predict [OPTIONS] AUDIO",
    ]  # fmt: skip
    for usage in usages:
        assert f"Usage: {usage}" in result.stdout
    assert "--epochs INTEGER" in result.stdout  # the options built from the run configs
    summary = result.stdout.splitlines()[-1].split()
    assert summary[0] == "commands" and int(summary[1]) >= 15
    assert summary[2:] == ["tensorflow", "False", "keras", "False"]


def test_a_command_at_work_imports_tensorflow_quietly(tmp_path):
    # `loco predict` on a file of noise: the shipped model runs, and stderr has nothing of
    # TensorFlow's start (it is imported when the command's work begins).
    audio = tmp_path / "noise.wav"
    rng = np.random.default_rng(0)
    soundfile.write(audio, (0.1 * rng.standard_normal(32000)).astype(np.float32), 32000)
    environment = _tensorflow_log_level_unset()
    command = [sys.executable, "-m", "loco_tf", "predict", str(audio), "--out", str(tmp_path)]
    result = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=300, check=True
    )
    assert result.stdout.startswith(f"{audio}: 1.0 s, hits KD ")
    assert (tmp_path / "noise.csv").is_file() and (tmp_path / "noise.mid").is_file()
    assert result.stderr == ""


WORKER_SCRIPT = """
import sys

sys.argv[0] = "loco"  # this program is the command; its spawned worker is given this argv
import multiprocessing

import loco_tf


def work(_):
    import loco_tf.pipelines.tfrecords  # imports TensorFlow, as `loco prepare`'s workers do

    return "tensorflow" in sys.modules


if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        print("worker imported tensorflow:", pool.map(work, [0])[0])
"""


def test_a_worker_of_the_command_imports_tensorflow_quietly(tmp_path):
    # `loco prepare` renders in spawned worker processes; each imports TensorFlow on its own.
    script = tmp_path / "command_with_a_worker.py"
    script.write_text(WORKER_SCRIPT)
    environment = _tensorflow_log_level_unset()
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True, text=True, env=environment, timeout=300, check=True,
    )  # fmt: skip
    assert result.stdout == "worker imported tensorflow: True\n"
    assert result.stderr == ""
