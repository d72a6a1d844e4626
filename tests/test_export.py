"""SavedModel export: every signature against the Keras model, NumPy references, streaming."""

import io
import json
import os
import subprocess

import keras
import numpy as np
import pytest
import soundfile
import tensorflow as tf
from click.testing import CliRunner
from reference import batch_log_pmf

from loco_tf.events import DecodingParameters, decode_events
from loco_tf.export import (
    EXPORT_JSON,
    PAD_TIME,
    WARMUP_FILE,
    ExportedModel,
    ExportSpec,
    export_saved_model,
)
from loco_tf.features import FeatureConfig, compute_features
from loco_tf.models import ConvLSTMConfig, build_conv_lstm

CLASSES = ("KD", "SD", "HH")
CONFIG = FeatureConfig()
SR = CONFIG.sample_rate
# Low thresholds so that an untrained network's p(t) has events to compare.
DECODING = (
    DecodingParameters(0.0, 1, -0.01),
    DecodingParameters(0.0, 4, 0.0),
    DecodingParameters(0.0, 16, 0.02),
)


def random_model(seed=0, per_instrument=False):
    keras.utils.set_random_seed(seed)
    if not per_instrument:
        return build_conv_lstm(ConvLSTMConfig(num_classes=3, filters=(4, 4, 8, 8, 8, 8)))
    features = keras.Input((None, 80, 2), name="features")
    lengths = keras.Input((), dtype="int32", name="lengths")
    inputs = {"features": features, "lengths": lengths}
    nets = [
        build_conv_lstm(ConvLSTMConfig(num_classes=1, filters=(4,) * 6, lstm_units=8), f"n{i}")
        for i in range(3)
    ]
    outputs = keras.layers.Concatenate()([net(inputs) for net in nets])
    return keras.Model(inputs, outputs)


def noise(seconds, seed=0, batch=None):
    rng = np.random.default_rng(seed)
    shape = (int(seconds * SR),) if batch is None else (batch, int(seconds * SR))
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("exports")
    model = random_model()
    path = export_saved_model(model, ExportSpec(CLASSES, CONFIG, DECODING, k_max=7), base, "drums")
    return model, path, ExportedModel(path)


def keras_probabilities(model, features):
    lengths = np.array([len(features)], np.int32)
    return model({"features": features[None], "lengths": lengths}).numpy()[0]


def test_layout_version_and_description(exported, tmp_path):
    model, path, _ = exported
    assert path.name == "1" and path.parent.name == "drums"
    for name in ("saved_model.pb", "variables", EXPORT_JSON, WARMUP_FILE):
        assert (path / name).exists(), name
    description = json.loads((path / EXPORT_JSON).read_text())
    assert description["classes"] == list(CLASSES) and description["k_max"] == 7
    assert FeatureConfig.from_dict(description["feature_config"]) == CONFIG

    # The next export is version 2; version 1 is left byte for byte as it was.
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    second = export_saved_model(
        model, ExportSpec(CLASSES, CONFIG, DECODING), path.parent.parent, "drums"
    )
    assert second.name == "2"
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp folders
    with pytest.raises(ValueError, match="model name"):
        export_saved_model(model, ExportSpec(CLASSES, CONFIG, DECODING), tmp_path, "../x")


def test_saved_model_cli_lists_the_signatures(exported):
    _, path, _ = exported
    result = subprocess.run(
        ["saved_model_cli", "show", "--dir", str(path), "--tag_set", "serve"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for signature in ("serving_default", "wav", "stream_start", "stream"):
        assert f'"{signature}"' in result.stdout


def test_serving_default_equals_the_keras_model_and_numpy_references(exported):
    model, _, loaded = exported
    waveform = noise(2.0, batch=2)
    lengths = np.array([2 * SR, SR + 777], np.int32)
    out = loaded.predict(waveform, lengths)
    frames = (lengths - CONFIG.n_fft) // CONFIG.hop_length + 1
    np.testing.assert_array_equal(out["frame_lengths"], frames)
    for b in range(2):
        # In-graph front end vs the NumPy/librosa pipeline: the model's outputs agree to 1e-5.
        features = compute_features(waveform[b, : lengths[b]], CONFIG)
        assert len(features) == frames[b]
        expected = keras_probabilities(model, features)
        p = out["probabilities"][b]
        np.testing.assert_allclose(p[: frames[b]], expected, atol=1e-5)
        assert not np.any(p[frames[b] :])  # zero after the row's frames
        np.testing.assert_allclose(out["expected_count"][b], expected.sum(0), rtol=1e-5)
        # Count distribution: float64 NumPy recursion with the eq. 14 tail bin.
        reference = np.exp(batch_log_pmf(expected[None].astype(np.float64), [frames[b]], 7))[0]
        np.testing.assert_allclose(out["count_distribution"][b], reference, atol=1e-5)
        # Event times: the in-graph decoder equals the NumPy one on the same p(t).
        times = loaded.event_times({k: v[b] for k, v in out.items()})
        for got, want in zip(times, decode_events(p[: frames[b]], CONFIG, DECODING), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)
        assert len(times[0]) > 0
        padding = np.arange(out["event_times"].shape[2]) >= out["num_events"][b][:, None]
        assert np.all(out["event_times"][b][padding] == PAD_TIME)


def test_wav_signature_decodes_mixes_and_checks_the_rate(exported):
    _, _, loaded = exported
    stereo = noise(1.5, seed=3, batch=2).T
    buffer = io.BytesIO()
    soundfile.write(buffer, stereo, SR, subtype="PCM_16", format="WAV")
    decoded = soundfile.read(io.BytesIO(buffer.getvalue()), dtype="float32")[0].mean(axis=1)
    wav = loaded.signatures["wav"](wav=tf.constant([buffer.getvalue()]))
    direct = loaded.predict(decoded)
    np.testing.assert_allclose(wav["probabilities"].numpy()[0], direct["probabilities"], atol=1e-6)

    other = io.BytesIO()
    soundfile.write(other, stereo, 16000, subtype="PCM_16", format="WAV")
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"must be {SR} Hz"):
        loaded.signatures["wav"](wav=tf.constant([other.getvalue()]))


def test_bad_input_gives_a_clear_error_or_zero_events(exported):
    _, _, loaded = exported
    signature = loaded.signatures["serving_default"]
    wrong_rank = "not compatible with expected shape"
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match=wrong_rank):
        signature(waveform=tf.zeros([SR]), lengths=tf.constant([SR]))  # rank 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="float tensor but is a double"):
        signature(waveform=tf.zeros([1, SR], tf.float64), lengths=tf.constant([SR]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="must not exceed"):
        signature(waveform=tf.zeros([1, 100]), lengths=tf.constant([200]))
    nan = np.zeros((1, SR), np.float32)
    nan[0, 5] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
        signature(waveform=tf.constant(nan), lengths=tf.constant([SR]))
    for samples in (0, 500):  # empty, and shorter than one window: no frames, no events
        out = loaded.predict(np.zeros((1, samples), np.float32))
        assert out["frame_lengths"].tolist() == [0]
        assert out["num_events"].tolist() == [[0, 0, 0]]
        np.testing.assert_allclose(out["count_distribution"][0, :, 0], 1.0)
    silence = loaded.predict(np.zeros(SR, np.float32))
    assert silence["probabilities"].shape == ((SR - CONFIG.n_fft) // CONFIG.hop_length + 1, 3)


@pytest.mark.parametrize("per_instrument", [False, True])
def test_streaming_equals_offline(exported, tmp_path, per_instrument):
    loaded = exported[2]  # one network
    if per_instrument:
        spec = ExportSpec(CLASSES, CONFIG, DECODING)
        loaded = ExportedModel(export_saved_model(random_model(1, True), spec, tmp_path, "m"))
    audio = noise(2.5, seed=5)
    offline = loaded.predict(audio)
    stream = loaded.stream()
    rng = np.random.default_rng(0)
    start, firsts = 0, []
    # Chunks of every kind: empty, shorter than a hop, shorter than a window, long.
    sizes = [0, 50, 700, 1024, 119, 5000, 0, 33, 12000]
    while start < len(audio):
        size = sizes.pop(0) if sizes else int(rng.integers(1, 9000))
        firsts.append(stream.frames_done)
        stream.push(audio[start : start + size])
        start += size
    streamed = stream.all_probabilities()[0]
    assert streamed.shape == offline["probabilities"].shape
    np.testing.assert_allclose(streamed, offline["probabilities"], atol=1e-5)
    assert stream.frames_done == offline["frame_lengths"]
    for got, want in zip(stream.events(), loaded.event_times(offline), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_warmup_request_runs_through_the_signature(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    _, path, loaded = exported
    (record,) = list(tf.data.TFRecordDataset(str(path / WARMUP_FILE)).as_numpy_iterator())
    log = prediction_log_pb2.PredictionLog.FromString(record)
    request = log.predict_log.request
    assert request.model_spec.name == "drums"
    assert request.model_spec.signature_name == "serving_default"
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    out = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    assert out["probabilities"].shape == (1, 259, 3)


ONEDNN_BOOL_LINE = (
    "E0000 00:00:1795957495.475312    3336 util.cc:131] oneDNN supports DT_BOOL only on platforms "
    "with AVX-512. Falling back to the default Eigen-based implementation if present.\n"
)


def test_loco_export_command(tmp_path, monkeypatch, capfd):
    import loco_tf.export
    from loco_tf import _startup
    from loco_tf.recipes.cli import main
    from loco_tf.recipes.drums import shipped_model

    model_dir = shipped_model()
    if model_dir is None:
        pytest.skip("no shipped drum model")
    # As the command (not a library call): TensorFlow's oneDNN line on booleans, which the
    # export writes on this machine, is left out of its stderr; other lines are not.
    monkeypatch.setattr(_startup, "is_command_line", lambda: True)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    real_export = loco_tf.export.export_saved_model

    def export_writing_to_stderr(*args, **kwargs):
        os.write(2, (ONEDNN_BOOL_LINE + "a line of the export\n").encode())
        return real_export(*args, **kwargs)

    monkeypatch.setattr(loco_tf.export, "export_saved_model", export_writing_to_stderr)
    result = CliRunner().invoke(
        main, ["export", str(model_dir), "--name", "drums", "--base-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    stderr = capfd.readouterr().err + result.stderr
    assert "a line of the export" in stderr
    assert "DT_BOOL" not in stderr
    assert "max |p(t) export - p(t) Keras" in result.output
    difference = float(result.output.split("= ")[-1].split()[0])
    assert difference < 1e-4
    version = tmp_path / "drums" / "1"
    assert (version / "model.keras").is_file() and (version / "saved_model.pb").is_file()
    bad = CliRunner().invoke(main, ["export", str(tmp_path), "--name", "x"])
    assert bad.exit_code != 0 and "cannot load the model" in bad.output
    assert os.listdir(tmp_path) == ["drums"]
