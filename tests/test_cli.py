"""The `loco` command line."""

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
