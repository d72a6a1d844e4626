"""`loco prepare digits`, `loco train digits`, `loco evaluate digits`, `loco plot --task digits`
end to end on a tiny budget, the messages for bad input, and the drum commands left as they were.
"""

import json

import pytest
from click.testing import CliRunner
from test_digits_sets import write_fake_mnist

from loco_tf.recipes.cli import main

TINY = [
    "--width", "0.0625", "--lstm-units", "4", "--dense-units", "4", "--batch-size", "4",
    "--epochs", "2", "--steps-per-epoch", "2", "--shuffle-buffer", "8", "--progress", "none",
]  # fmt: skip


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    write_fake_mnist(folder / "mnist", train=40, test=12)
    result = invoke(
        "prepare", "digits", "--data-dir", folder / "mnist", "--out", folder / "data",
        "--size", "56", "--max-digits", "2", "--train-canvases", "24",
        "--validation-canvases", "8", "--test-canvases", "8", "--validation-images", "8",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "digits-test-single: 12 canvases, 12 digits" in result.output
    return folder


@pytest.mark.slow
def test_train_evaluate_plot_end_to_end(data, tmp_path):
    run = tmp_path / "run"
    result = invoke("train", "digits", "--data", data / "data", "--out", run, *TINY)
    assert result.exit_code == 0, result.output
    assert "single-digit recognition" in result.output and "Traceback" not in result.output
    for name in ("model.keras", "model.json", "evaluation.json", "history.csv"):
        assert (run / name).is_file(), name
    assert (run / "backup").is_dir()  # kept: a rerun with more --epochs trains on from it
    description = json.loads((run / "model.json").read_text())
    assert description["model_config"]["filters"] == [4, 4, 8, 8, 16, 16, 32, 32, 32, 32]
    assert description["model_config"]["image_size"] == 56
    assert description["training"]["epochs"] == 2

    again = invoke("train", "digits", "--data", data / "data", "--out", run, *TINY)
    assert again.exit_code == 0 and "Epoch" not in again.output  # finished: nothing to train
    other = invoke("train", "digits", "--data", data / "data", "--out", run, *TINY, "--seed", 3)
    assert other.exit_code == 1 and "other settings (seed)" in other.output

    scores = tmp_path / "scores.json"
    result = invoke("evaluate", "digits", run, "--data", data / "data", "--json", scores)
    assert result.exit_code == 0, result.output
    content = json.loads(scores.read_text())
    assert content["recognition_canvases"] == 12
    assert content["localisation"]["canvases"] == 8
    assert 0.0 <= content["recognition_accuracy"] <= 1.0

    figure = tmp_path / "fig.png"
    args = ["--model", run, "--data", data / "data", "--out", figure, "--canvases", "4"]
    result = invoke("plot", "--task", "digits", *args)
    assert result.exit_code == 0, result.output
    assert figure.stat().st_size > 10_000


def test_bad_input_is_a_clean_message(data, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("train", "digits", "--data", empty, "--out", tmp_path / "r", *TINY)
    assert result.exit_code == 1 and "loco prepare digits" in result.output
    assert "digits-train.manifest.json does not exist" in result.output
    result = invoke(
        "train", "digits", "--data", data / "data", "--out", tmp_path / "r", "--stride", "10"
    )
    assert result.exit_code == 1 and "2**n window positions" in result.output
    result = invoke("evaluate", "digits", empty, "--data", data / "data")
    assert result.exit_code == 1 and "model.keras not found" in result.output
    result = invoke(
        "plot", "--task=digits", "--model", empty, "--data", data / "data", "--out", "x.png"
    )
    assert result.exit_code == 1 and "model.keras not found" in result.output

    mnist = tmp_path / "mnist"
    write_fake_mnist(mnist)
    (mnist / "train-images-idx3-ubyte.gz").unlink()
    result = invoke("prepare", "digits", "--data-dir", mnist, "--out", tmp_path / "d")
    assert result.exit_code == 1 and "train-images-idx3-ubyte.gz: not found" in result.output
    (mnist / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    result = invoke("prepare", "digits", "--data-dir", mnist, "--out", tmp_path / "d")
    assert result.exit_code == 1 and "train-images-idx3-ubyte.gz: cannot read" in result.output
    assert "Traceback" not in result.output


def test_drum_commands_keep_their_usage():
    result = invoke("evaluate", "--help")
    assert result.exit_code == 0 and "MODELS..." in result.output
    assert "loco evaluate digits" in result.output
    result = invoke("evaluate", "digits", "--help")
    assert result.exit_code == 0 and "[MODEL]" in result.output and "--tolerance" in result.output
    result = invoke("evaluate", "no-such-model", "--data", ".")
    assert result.exit_code == 2 and "does not exist" in result.output
    result = invoke("plot", "--help")
    assert result.exit_code == 0 and "AUDIO" in result.output
    assert "[drums|piano|digits]" in result.output
    result = invoke("plot", "--task", "digits", "--help")
    assert result.exit_code == 0 and "--canvases" in result.output
    result = invoke("train", "--help")
    assert all(task in result.output for task in ("digits", "drums", "piano"))


def test_full_is_the_paper_network_unless_an_option_says_otherwise(data, tmp_path, monkeypatch):
    """The options `loco train digits --full` hands to training (training itself is
    `test_train_evaluate_plot_end_to_end`'s)."""
    from loco_tf.recipes import digits

    given = []

    def record(config, **kwargs):
        given.append(config)
        raise ValueError("recorded")

    monkeypatch.setattr(digits, "train", record)
    args = ["--data", data / "data", "--out", tmp_path / "full", "--full", "--width", "0.0625"]
    result = invoke("train", "digits", *args, "--epochs", "1")
    assert result.exit_code == 1 and "recorded" in result.output
    (config,) = given
    assert config.batch_norm is False and config.patience == 6  # from --full
    assert config.width == 0.0625 and config.epochs == 1  # given explicitly
    assert config.lstm_units == 48 and config.dense_units == 24
    defaults = digits.DigitTrainConfig()
    changed = {k for k, v in digits.FULL.items() if getattr(defaults, k) != v} - {"width", "epochs"}
    assert changed and all(getattr(config, k) == digits.FULL[k] for k in changed)


def test_the_run_config_defaults_to_the_set_names_the_data_is_written_with():
    # `recipes.configs` spells them out (it imports no TensorFlow, `pipelines.digits` does).
    from loco_tf.pipelines import digits as digit_data
    from loco_tf.recipes.configs import DigitTrainConfig

    defaults = DigitTrainConfig()
    assert (defaults.train_set, defaults.validation_set) == (
        digit_data.TRAIN,
        digit_data.VALIDATION,
    )
