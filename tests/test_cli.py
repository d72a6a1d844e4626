"""The `loco` command line."""

import pytest
from click.testing import CliRunner

import loco_tf
from loco_tf.recipes.cli import main


def test_help_and_version():
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and loco_tf.__version__ in result.output


def test_unknown_command_is_a_clean_error():
    result = CliRunner().invoke(main, ["trian"])
    assert result.exit_code == 2 and "No such command" in result.output


@pytest.mark.slow
def test_drum_demo_runs_end_to_end_on_a_tiny_budget(tmp_path):
    """`loco demo` (the README's first command) on 6 files (GMD beside the checkout, procedural
    grooves without it) and 1 short epoch: every stage runs and writes its outputs; the scores
    of such a model mean nothing."""
    pytest.importorskip("fluidsynth")
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--max-files", "6", "--epochs", "1"]
    result = CliRunner().invoke(main, [*args, "--steps-per-epoch", "3"])
    assert result.exit_code == 0, result.output
    assert "[4/4]" in result.output and "Traceback" not in result.output
    assert "drums-test-timgm6mb" in result.output  # the unseen-kit test set was scored
    assert (out / "run" / "model.keras").is_file()
    assert (out / "run" / "evaluation.json").is_file()
    assert (out / "plots" / "test-timgm6mb.png").stat().st_size > 10_000
