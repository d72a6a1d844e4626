"""tf.distribute: one device, two mirrored replicas and two worker processes give the same
training step, and the drum recipe trains, backs up and resumes under both strategies (the same
processes check both: each starts TensorFlow, ~6 s of CPU); mixed precision."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from loco_tf import LocoLoss, distribute
from loco_tf.features import compute_features
from loco_tf.recipes import drums

SCRIPTS = Path(__file__).parent / "scripts"
TIMEOUT = 600


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run(*args, env=None):
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finish(process):
    out, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, out, err


def two_workers(*args):
    """Runs `args` in two processes that form a two-worker cluster on localhost."""
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = [
        run(*args, env={"TF_CONFIG": json.dumps({"cluster": cluster,
                                                 "task": {"type": "worker", "index": i}})})
        for i in range(2)
    ]  # fmt: skip
    return [finish(p) for p in processes]


def test_strategy_names_and_errors(monkeypatch):
    assert distribute.make_strategy("default").num_replicas_in_sync == 1
    # One strategy per name and process (a multi-worker one sets up collective ops once).
    assert distribute.make_strategy("mirrored") is distribute.make_strategy("mirrored")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.make_strategy("multiworker")
    with pytest.raises(ValueError, match="unknown strategy"):
        distribute.make_strategy("parameter-server")
    # Once TensorFlow runs, the CPU cannot be split any more, and the error says so.
    tf.constant(1.0) + 1.0
    with pytest.raises(RuntimeError, match="call split_cpu first"):
        distribute.split_cpu(3)
    with pytest.raises(ValueError, match="strategy must be one of"):
        drums.DrumTrainConfig(strategy="mirror")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    pytest.importorskip("fluidsynth")
    from loco_tf.recipes.prepare_cli import prepare

    out = tmp_path_factory.mktemp("data")
    args = ["drums", "--data-dir", "none", "--procedural", "8", "--kits", "timgm6mb",
            "--files-per-shard", "1", "--no-progress", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(prepare, args)
    assert result.exit_code == 0, result.output
    return out


def epochs_of(output):
    line = next(line for line in output.splitlines() if line.startswith("epochs"))
    return json.loads(line.split("epochs ")[1].split("]")[0] + "]")


@pytest.fixture(scope="module")
def one_device_step():
    """`distributed_step.one_step` on one device: this process's default strategy."""
    spec = importlib.util.spec_from_file_location(
        "distributed_step", SCRIPTS / "distributed_step.py"
    )
    step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step)
    reference = step.one_step(distribute.make_strategy("default"))
    assert int(reference["replicas"]) == 1
    weights = [k for k in reference if k.startswith("w")]
    moved = max(np.abs(reference[k] - reference[k.replace("w", "initial")]).max() for k in weights)
    assert moved > 1e-3  # the step changed the weights: comparing them means something
    return reference


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["mirrored", "multiworker"])
def test_a_strategy_steps_as_one_device_and_the_recipe_trains_backs_up_and_resumes(
    tiny_data, one_device_step, tmp_path, strategy
):
    """Two replicas (mirrored) or two worker processes: one step on a fixed global batch gives
    the loss and weights of one device; then the drum recipe trains, is stopped, and resumes."""
    script = SCRIPTS / "distributed_train.py"
    out = tmp_path / "run"
    step = tmp_path / "step"

    def launch(interrupt, *more):
        if strategy == "mirrored":
            return [finish(run(script, strategy, tiny_data, out, 2, interrupt, *more))]
        return two_workers(script, strategy, tiny_data, out, 0, interrupt, *more)

    for code, stdout, err in launch(1, step):  # stopped in epoch 1, after the epoch-0 backup
        assert code == 3, err[-3000:]
        assert epochs_of(stdout) == [0, 1]
    # Each process (one mirrored, two workers): the global batch's loss, and the weights after
    # one SGD step on it.
    processes = 1 if strategy == "mirrored" else 2
    assert sorted(p.name for p in tmp_path.glob("step-*.npz")) == [
        f"step-{i}.npz" for i in range(processes)
    ]
    for i in range(processes):
        other = np.load(tmp_path / f"step-{i}.npz")
        assert int(other["replicas"]) == 2
        np.testing.assert_allclose(other["loss"], one_device_step["loss"], rtol=1e-6)
        for key in (k for k in one_device_step if k.startswith("w")):
            np.testing.assert_allclose(other[key], one_device_step[key], atol=1e-6)
    assert (out / "backup").is_dir() and not (out / drums.MODEL_FILE).exists()
    results = launch(-1)
    for code, stdout, err in results:
        assert code == 0, err[-3000:]
        assert epochs_of(stdout) == [1, 2]  # resumed at the interrupted epoch
    # The chief tuned and saved the model; the other worker left no files behind.
    assert (out / drums.MODEL_FILE).is_file()
    assert sum("validation True" in stdout for _, stdout, _ in results) == 1
    assert not [p for p in out.iterdir() if p.name.startswith(".worker")]
    history = drums._read_history(out / "history.csv")
    assert [int(row["epoch"]) for row in history] == [0, 1, 2]
    assert all(np.isfinite(row["loss"]) for row in history)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_step_is_finite_and_close_to_float32(tiny_data, policy):
    config = drums.DrumTrainConfig(data=str(tiny_data), filters=(4, 4), lstm_units=8,
                                   dense_units=8, batch_size=8)  # fmt: skip
    manifest = drums.load_manifest(tiny_data, "drums-train")
    batch = next(iter(drums.datasets(config, manifest, manifest)[0]))
    results = {}
    for name in ("float32", policy):
        keras.utils.set_random_seed(0)
        with distribute.precision(name):
            model = drums.build_drum_model(config, manifest.feature_config)
            loss = LocoLoss(k_max=31)
            with tf.GradientTape() as tape:
                p = model(batch[0], training=True)
                value = loss(batch[1], p)
            gradients = tape.gradient(value, model.trainable_variables)
        assert p.dtype == tf.float32 and value.dtype == tf.float32
        conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
        assert conv.compute_dtype == name.replace("mixed_", "")  # the network runs in half
        assert conv.kernel.dtype == "float32"  # the variables stay float32
        results[name] = (float(value), [g.numpy().astype(np.float64) for g in gradients])
    reference, mixed = results["float32"], results[policy]
    assert np.isfinite(mixed[0]) and all(np.all(np.isfinite(g)) for g in mixed[1])
    assert mixed[0] == pytest.approx(reference[0], rel=2e-2)
    flat = [np.concatenate([g.ravel() for g in r[1]]) for r in (reference, mixed)]
    cosine = flat[0] @ flat[1] / np.linalg.norm(flat[0]) / np.linalg.norm(flat[1])
    assert cosine > 0.98
    assert keras.config.dtype_policy().name == "float32"  # restored after the block


@pytest.mark.slow
def test_a_mixed_precision_run_is_tuned_saved_exported_and_streamed(tiny_data, tmp_path):
    """`loco train drums --mixed-precision` to the end: before inference ran the network in
    float32, tuning the decoding refused the half-precision network ("chunked inference
    differs from one pass by 3.2e-05") and the export's `stream` signature failed to trace."""
    from loco_tf.export import ExportedModel
    from loco_tf.recipes.serving_cli import export

    config = drums.DrumTrainConfig(
        data=str(tiny_data), out=str(tmp_path / "run"), filters=(4, 4), lstm_units=8,
        dense_units=8, batch_size=8, epochs=1, steps_per_epoch=2,
        mixed_precision="mixed_bfloat16",
    )  # fmt: skip
    drums.train(config, verbose=0, log=lambda message: None)
    transcriber = drums.DrumTranscriber.load(tmp_path / "run")
    policies = {layer.dtype_policy.name for layer in transcriber.model._flatten_layers()}
    assert "mixed_bfloat16" in policies  # the saved model keeps its training policy
    result = CliRunner().invoke(
        export, [str(tmp_path / "run"), "--name", "m", "--base-dir", str(tmp_path / "exports")]
    )
    assert result.exit_code == 0, result.output
    exported = ExportedModel(tmp_path / "exports" / "m" / "1")
    audio = (0.1 * np.random.default_rng(0).standard_normal(40000)).astype(np.float32)
    offline = exported.predict(audio)["probabilities"]
    stream = exported.stream()
    for start in range(0, len(audio), 9000):
        stream.push(audio[start : start + 9000])
    np.testing.assert_allclose(stream.all_probabilities()[0], offline, atol=1e-5)
    # The export computes what the transcriber computes (float32, the same weights).
    features = compute_features(audio, transcriber.feature_config)
    np.testing.assert_allclose(transcriber.probabilities(features), offline, atol=1e-4, rtol=0)


def test_the_lstm_qualifies_for_cudnn_on_a_gpu():
    """Keras runs an LSTM with cuDNN on a GPU only with these settings and at most a
    right-padded mask; the drum network keeps them (it passes no mask at all: padded frames
    are zeroed after the LSTM by EventProbabilities)."""
    config = drums.DrumTrainConfig(filters=(4, 4), lstm_units=8, dense_units=8)
    model = drums.build_drum_model(config, drums.FeatureConfig())
    (lstm,) = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    assert lstm.activation is keras.activations.tanh
    assert lstm.recurrent_activation is keras.activations.sigmoid
    assert lstm.recurrent_dropout == 0 and not lstm.unroll and lstm.use_bias
    assert lstm.use_cudnn in ("auto", True)
    node = lstm._inbound_nodes[0]
    assert node.arguments.kwargs.get("mask") is None
