"""The drum recipe end to end on tiny rendered data: train (both supervisions), resume,
stream whole files, evaluate, predict, plot, and the messages for bad input."""

import csv
import dataclasses
import json
import multiprocessing
import os
import shutil
import sys
import threading
from pathlib import Path

import keras
import mido
import numpy as np
import pretty_midi
import pytest
import soundfile
import tensorflow as tf
from click.testing import CliRunner

from loco_tf import streaming
from loco_tf.features import FeatureConfig, compute_features
from loco_tf.models import ConvLSTMConfig, grow_conv_lstm_weights
from loco_tf.pipelines import render
from loco_tf.pipelines.audio import load_audio, mix_to_mono
from loco_tf.pipelines.grooves import GrooveConfig, generate_groove
from loco_tf.pipelines.readers import DRUM_CLASSES, Event, read_midi_drums
from loco_tf.pipelines.segments import segment
from loco_tf.pipelines.tfrecords import SegmentExample, read_manifest, write_shards
from loco_tf.recipes import drums, drums_cli

pytest.importorskip("fluidsynth", reason="rendering needs pyfluidsynth and libfluidsynth")

CONFIG = FeatureConfig()
KIT = "timgm6mb"
TINY = [
    "--filters", "4,4", "--lstm-units", "8", "--dense-units", "8", "--batch-size", "4",
    "--epochs", "2", "--steps-per-epoch", "2", "--shuffle-buffer", "8", "--progress", "none",
]  # fmt: skip


def tiny_config(data, out, **changes):
    values = dict(
        data=os.fspath(data),
        out=os.fspath(out),
        filters=(4, 4),
        lstm_units=8,
        dense_units=8,
        batch_size=4,
        epochs=2,
        steps_per_epoch=2,
        shuffle_buffer=8,
    )
    values.update(changes)
    return drums.DrumTrainConfig(**values)


def write_set(out, name, grooves, fixed, first_index):
    """Renders grooves, writes a set; returns [(wav path, events)]."""
    examples, files = [], []
    for offset, midi in enumerate(grooves):
        index = first_index + offset
        audio = render.render_midi(midi, KIT, CONFIG.sample_rate)
        wav = Path(out) / "audio" / f"groove-{index}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(wav, audio, CONFIG.sample_rate, subtype="FLOAT")
        latency = {c: render.render_latency(KIT, c, CONFIG.sample_rate) for c in DRUM_CLASSES}
        events = [Event(e.time + latency[e.label], e.label) for e in read_midi_drums(midi)]
        features = compute_features(audio, CONFIG)
        source = f"groove-{index}"
        if fixed:
            windows = segment(len(features), events, DRUM_CLASSES, CONFIG, 1.5, source=source)
        else:
            windows = segment(
                len(features), events, DRUM_CLASSES, CONFIG, 0.75, 0.5, rng=index, source=source
            )
        examples += [SegmentExample.from_segment(window, features) for window in windows]
        files.append((wav, events))
    write_shards(
        examples,
        out,
        name,
        2 if len(grooves) > 1 else 1,
        class_names=DRUM_CLASSES,
        feature_config=CONFIG,
        k_max=31,
    )
    return files


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """drums-train (4 two-bar grooves, variable windows), drums-train-fixed (the same, fixed
    windows), drums-validation and drums-test-timgm6mb (one groove each, fixed windows)."""
    out = tmp_path_factory.mktemp("data")
    grooves = [generate_groove(seed, GrooveConfig(bars=2)) for seed in range(6)]
    write_set(out, "drums-train", grooves[:4], fixed=False, first_index=0)
    write_set(out, "drums-train-fixed", grooves[:4], fixed=True, first_index=0)
    validation = write_set(out, "drums-validation", grooves[4:5], fixed=True, first_index=4)
    test = write_set(out, f"drums-test-{KIT}", grooves[5:], fixed=True, first_index=5)
    return {"dir": out, "validation": validation, "test": test}


def invoke(command, *args):
    result = CliRunner().invoke(command, [os.fspath(a) for a in args])
    assert "Traceback" not in result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def annotated_copy(folder, stem, wav, events):
    """FOLDER/STEM.wav, a copy of `wav`, with FOLDER/STEM.csv (time,label) of `events`."""
    folder.mkdir(exist_ok=True)
    (folder / f"{stem}.wav").write_bytes(Path(wav).read_bytes())
    with open(folder / f"{stem}.csv", "w") as file:
        file.write("time,label\n" + "".join(f"{e.time},{e.label}\n" for e in events))


@pytest.fixture(scope="module")
def model_dir(data, tmp_path_factory):
    """A tiny LoCo model trained with `loco train drums`."""
    out = tmp_path_factory.mktemp("runs") / "weak"
    result = invoke(drums_cli.train, "drums", "--data", data["dir"], "--out", out, *TINY)
    assert result.exit_code == 0, result.output
    assert "Decoding tuned on drums-validation" in result.output
    assert f"on drums-test-{KIT}" in result.output  # scored on the test set after training
    return out


# ---------------------------------------------------------------------------------------------
# Training.


@pytest.mark.slow
def test_train_writes_the_model_and_its_description(model_dir, data):
    with open(model_dir / drums.MODEL_JSON) as file:
        description = json.load(file)
    assert description["format"] == drums.MODEL_FORMAT
    assert description["classes"] == list(DRUM_CLASSES)
    assert description["supervision"] == "counts"
    manifest = read_manifest(data["dir"] / "drums-validation.manifest.json")
    assert FeatureConfig.from_dict(description["feature_config"]) == manifest.feature_config
    for name in DRUM_CLASSES:
        assert set(description["decoding"][name]) == {"threshold", "min_distance", "offset_seconds"}
    assert description["training"]["epochs"] == 2
    assert description["train_config"]["k_max"] == 31
    assert (model_dir / "backup").is_dir()  # kept: a rerun with more --epochs trains on from it
    assert (model_dir / "best.keras").is_file()
    with open(model_dir / "evaluation.json") as file:
        assert f"drums-test-{KIT}" in json.load(file)[os.fspath(model_dir)]
    # `loco train` scored the run with the network it trained (`TrainResult.transcriber`),
    # kept for `_load`: it is what loading the files gives.
    key = drums_cli._cache_key(model_dir, "float32")
    kept, loaded = drums_cli._LOADED[key], drums.DrumTranscriber.load(model_dir)
    assert kept.model is not loaded.model
    assert (kept.decoding, kept.description, kept.task) == (
        loaded.decoding,
        loaded.description,
        loaded.task,
    )
    features = read_manifest(data["dir"] / f"drums-test-{KIT}.manifest.json")
    features = drums.manifest_files(features, DRUM_CLASSES)[0].features
    np.testing.assert_allclose(
        kept.probabilities(features), loaded.probabilities(features), atol=1e-6
    )
    model = keras.saving.load_model(model_dir / drums.MODEL_FILE, compile=False)
    x = {"features": np.zeros((1, 20, 80, 2), np.float32), "lengths": np.array([20])}
    assert model(x).shape == (1, 20, 3)
    # The eq. 15 bias is where training starts: p = 1 - 0.5 ** (1 / 400) before any step.
    fresh = drums.build_drum_model(tiny_config(data["dir"], "unused"), CONFIG)
    bias = fresh.get_layer("event_probabilities").projection.bias.numpy()
    assert 1 / (1 + np.exp(-bias)) == pytest.approx(1 - 0.5 ** (1 / 400), rel=1e-5)


def test_config_options_mirror_the_dataclass():
    options = {p.name for p in drums_cli.train.commands["drums"].params}
    fields = {f.name for f in drums.dataclasses.fields(drums.DrumTrainConfig)}
    assert fields - {"task"} <= options  # the command sets the task
    assert fields - {"task"} <= {p.name for p in drums_cli.train.commands["piano"].params}
    config = drums.DrumTrainConfig()
    assert drums.DrumTrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="supervision"):
        drums.DrumTrainConfig(supervision="boxes")


def test_frame_targets_by_hand():
    # Class 0 has onsets at frames 2 and 3 (neighbours), class 1 at frame 0; length 6 of 8.
    event_frames = tf.constant([[2, 3, -1], [0, -1, -1]])
    y = drums.frame_targets(event_frames, tf.constant(6), 8, widen=1, widen_weight=0.25).numpy()
    targets, weights = y[:, :2], y[:, 2:]
    assert targets[:, 0].tolist() == [0, 1, 1, 1, 1, 0, 0, 0]
    assert weights[:, 0].tolist() == [1, 0.25, 1, 1, 0.25, 1, 0, 0]
    assert targets[:, 1].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert weights[:, 1].tolist() == [1, 0.25, 1, 1, 1, 1, 0, 0]
    empty = drums.frame_targets(tf.zeros((2, 0), tf.int32), tf.constant(8), 8, 1, 0.25)
    assert empty.numpy()[:, :2].sum() == 0 and empty.numpy()[:, 2:].sum() == 16


def test_frame_cross_entropy_by_hand():
    p = np.array([[[0.8], [0.1], [0.0]]], np.float32)  # third frame is padding (weight 0)
    y = np.array([[[1.0, 1.0], [0.0, 0.5], [0.0, 0.0]]], np.float32)
    loss = drums.FrameCrossEntropy(sequence_length=3)(y, p).numpy()
    assert loss == pytest.approx((-np.log(0.8) - 0.5 * np.log(0.9)) / 3, rel=1e-5)


@pytest.mark.slow
def test_fully_supervised_twin_per_instrument(data, tmp_path):
    config = tiny_config(data["dir"], tmp_path / "full", supervision="frames", per_instrument=True)
    result = drums.train(config, verbose=0, log=lambda message: None)
    assert result.description["supervision"] == "frames"
    model = keras.saving.load_model(tmp_path / "full" / drums.MODEL_FILE, compile=False)
    branches = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    assert branches == ["drums_KD", "drums_SD", "drums_HH"]
    # The twin's targets come from the same records: the validation batches carry every event.
    manifest = read_manifest(data["dir"] / "drums-validation.manifest.json")
    batches = drums.frames_dataset(manifest, config, training=False)
    onsets = sum(float(tf.reduce_sum(y[..., :3] * tf.cast(y[..., 3:] == 1, tf.float32)))
                 for _, y in batches)  # fmt: skip
    assert onsets == sum(manifest.totals["counts"])


def test_the_twin_hears_the_same_colouring_and_keeps_its_targets(data, tmp_path):
    manifest = read_manifest(data["dir"] / "drums-train.manifest.json")
    plain = tiny_config(data["dir"], tmp_path, supervision="frames", shuffle_buffer=0)
    coloured = dataclasses.replace(plain, eq_db=10.0, shift_bands=3)
    assert drums.augmentation(plain) is None
    batch = next(iter(drums.frames_dataset(manifest, plain, training=True)))
    batch_c = next(iter(drums.frames_dataset(manifest, coloured, training=True)))
    np.testing.assert_array_equal(batch[1], batch_c[1])  # the same onset targets
    np.testing.assert_array_equal(batch[0]["lengths"], batch_c[0]["lengths"])
    assert np.abs(batch[0]["features"] - batch_c[0]["features"]).max() > 1.0
    with pytest.raises(ValueError, match="ranges"):
        dataclasses.replace(plain, gain_db=-3.0)
    # Frequency masking (`--mask-bands`) reaches the twin's pipeline too.
    assert drums.augmentation(dataclasses.replace(plain, mask_bands=6)).mask_bands == 6
    masked = dataclasses.replace(plain, mask_bands=20)
    batch_m = next(iter(drums.frames_dataset(manifest, masked, training=True)))
    np.testing.assert_array_equal(batch[1], batch_m[1])
    flat = np.all(batch_m[0]["features"][..., 1] == 0.0, axis=1)  # [batch, bands]
    assert flat.any() and not np.all(batch[0]["features"][..., 1] == 0.0, axis=1).any()
    with pytest.raises(ValueError, match="ranges"):
        dataclasses.replace(plain, mask_bands=-1)
    with pytest.raises(ValueError, match="pitches"):
        dataclasses.replace(plain, task="piano", shift_bands=2)


class Interrupt(Exception):
    pass


class InterruptAt(keras.callbacks.Callback):
    """Raises in the middle of an epoch, as a kill -9 would stop the run."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise Interrupt


class Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.start_weights, self.epoch_end_weights = [], None, {}
        self.start_iterations = None

    def on_train_begin(self, logs=None):
        self.start_weights = [w.copy() for w in self.model.get_weights()]
        self.start_iterations = int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end_weights[epoch] = [w.copy() for w in self.model.get_weights()]


@pytest.mark.slow
def test_an_interrupted_run_resumes_from_its_backup(data, tmp_path):
    config = tiny_config(data["dir"], tmp_path / "run", epochs=3, steps_per_epoch=3)
    first = Record()
    with pytest.raises(Interrupt):
        drums.train(config, callbacks=[first, InterruptAt(1, 1)], verbose=0)
    assert first.epochs == [0, 1]
    assert (tmp_path / "run" / "backup").is_dir()
    assert not (tmp_path / "run" / drums.MODEL_FILE).exists()

    second = Record()
    drums.train(config, callbacks=[second], verbose=0, log=lambda message: None)
    # It starts at the interrupted epoch, from the weights and optimiser state of the backup
    # taken at the end of epoch 0, not from scratch.
    assert second.epochs == [1, 2]
    assert second.start_iterations == 3
    for restored, saved in zip(second.start_weights, first.epoch_end_weights[0], strict=True):
        np.testing.assert_array_equal(restored, saved)
    history = drums._read_history(tmp_path / "run" / "history.csv")
    assert [int(row["epoch"]) for row in history] == [0, 1, 2]
    assert (tmp_path / "run" / drums.MODEL_FILE).is_file()
    # Other settings in the same folder are refused rather than mixed into the run.
    with pytest.raises(ValueError, match="learning_rate"):
        drums.train(dataclasses_replace(config, learning_rate=0.5), verbose=0)


@pytest.mark.slow
def test_a_stopped_run_ends_with_fewer_epochs_and_trains_on_with_more(data, tmp_path):
    config = tiny_config(data["dir"], tmp_path / "run", epochs=4, steps_per_epoch=2)
    first = Record()
    with pytest.raises(Interrupt):  # stopped in epoch 2: the last backup is epoch 1's
        drums.train(config, callbacks=[first, InterruptAt(2, 0)], verbose=0)
    # Rerun with the epochs it completed: it ends there, with its best checkpoint.
    record = Record()
    result = drums.train(
        dataclasses_replace(config, epochs=2), callbacks=[record], verbose=0, log=print
    )
    assert record.epochs == []  # nothing more is fitted
    assert [int(row["epoch"]) for row in result.history] == [0, 1]
    assert (tmp_path / "run" / drums.MODEL_FILE).is_file()
    assert result.description["training"]["epochs"] == 2
    # The finished run, rerun with more epochs, trains on from its last backup, not from scratch.
    second = Record()
    result = drums.train(
        dataclasses_replace(config, epochs=3), callbacks=[second], verbose=0, log=print
    )
    assert second.epochs == [2]
    assert second.start_iterations == 4
    for restored, saved in zip(second.start_weights, first.epoch_end_weights[1], strict=True):
        np.testing.assert_array_equal(restored, saved)
    assert [int(row["epoch"]) for row in result.history] == [0, 1, 2]
    assert result.description["training"]["epochs"] == 3
    # The same command again changes nothing.
    third = Record()
    drums.train(dataclasses_replace(config, epochs=3), callbacks=[third], verbose=0)
    assert third.epochs == []


@pytest.mark.slow
def test_averaging_with_a_start_of_the_other_supervision_is_warned_about(model_dir, data, tmp_path):
    # model_dir was trained on counts: averaging a frames run with it is warned about at the
    # start of the run; the same average of a counts run, or no average, is not.
    frames = tiny_config(
        data["dir"], tmp_path / "frames", epochs=1, steps_per_epoch=1, init_from=str(model_dir),
        supervision="frames", average_weight=0.5,
    )  # fmt: skip
    messages = []
    drums.train(frames, verbose=0, log=messages.append)
    warnings = [m for m in messages if m.startswith("warning: --average-weight")]
    assert len(warnings) == 1 and "--supervision counts" in warnings[0]
    assert messages.index(warnings[0]) < messages.index(
        "Tuning the decoding on the validation files ..."
    )
    counts = dataclasses_replace(frames, supervision="counts", out=os.fspath(tmp_path / "counts"))
    assert drums.averaging_across_supervisions(counts) is None
    assert (
        drums.averaging_across_supervisions(dataclasses_replace(frames, average_weight=0.0)) is None
    )


@pytest.mark.slow
def test_a_run_can_start_from_a_trained_models_weights(model_dir, data, tmp_path):
    source = keras.saving.load_model(model_dir / drums.MODEL_FILE, compile=False)
    config = tiny_config(
        data["dir"], tmp_path / "tuned", epochs=1, steps_per_epoch=1, init_from=str(model_dir)
    )
    record = Record()
    drums.train(config, callbacks=[record], verbose=0, log=lambda message: None)
    for started, trained in zip(record.start_weights, source.get_weights(), strict=True):
        np.testing.assert_array_equal(started, trained)
    assert record.start_iterations == 0  # the optimiser starts afresh
    # Added to the finished run, average_weight saves (1 - w) x best + w x the source's weights.
    best = keras.saving.load_model(tmp_path / "tuned" / "best.keras", compile=False)
    result = drums.train(
        dataclasses_replace(config, average_weight=0.25), verbose=0, log=lambda message: None
    )
    saved = keras.saving.load_model(tmp_path / "tuned" / drums.MODEL_FILE, compile=False)
    for average, own, start in zip(
        saved.get_weights(), best.get_weights(), source.get_weights(), strict=True
    ):
        np.testing.assert_allclose(average, 0.75 * own + 0.25 * start, rtol=1e-6, atol=1e-7)
    assert result.description["train_config"]["average_weight"] == 0.25
    moved = zip(best.get_weights(), source.get_weights(), strict=True)
    assert any(not np.array_equal(own, start) for own, start in moved)  # a real average
    with pytest.raises(ValueError, match="give init_from"):
        dataclasses_replace(config, init_from="", average_weight=0.5)
    # A network of other sizes, or other classes, is refused with the option's name.
    other = tiny_config(data["dir"], tmp_path / "a", lstm_units=6, init_from=str(model_dir))
    with pytest.raises(ValueError, match="--init-from .* network is not this run's"):
        drums.train(other, verbose=0)
    other = tiny_config(data["dir"], tmp_path / "b", classes=("KD", "SD"), init_from=str(model_dir))
    with pytest.raises(ValueError, match="--init-from .* classes"):
        drums.train(other, verbose=0)
    # A folder whose model.json is not a loco-tf drum model's is refused, naming the file.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copy(model_dir / drums.MODEL_FILE, foreign / drums.MODEL_FILE)
    (foreign / drums.MODEL_JSON).write_text('{"classes": ["KD", "SD", "HH"]}')
    other = tiny_config(data["dir"], tmp_path / "c", init_from=str(foreign))
    with pytest.raises(ValueError, match=r"--init-from .*model\.json: not a .* description"):
        drums.train(other, verbose=0)
    (foreign / drums.MODEL_JSON).write_text("{not json")
    with pytest.raises(ValueError, match=r"--init-from .*foreign"):
        drums.train(other, verbose=0)
    # A wider network grows from it: the run starts from the same p(t), and the average's
    # start is the grown network (its new units' own weights taken as the run's).
    grown = tiny_config(
        data["dir"], tmp_path / "grown", filters=(5, 4), lstm_units=10, dense_units=9,
        epochs=1, steps_per_epoch=1, init_from=str(model_dir),
    )  # fmt: skip
    record = Record()
    drums.train(grown, callbacks=[record], verbose=0, log=lambda message: None)
    wide = keras.models.clone_model(record.model)
    wide.set_weights(record.start_weights)
    rng = np.random.default_rng(0)
    x = {
        "features": rng.normal(-30, 15, (2, 50, *source.inputs[0].shape[2:])).astype("float32"),
        "lengths": np.array([50, 31], np.int32),
    }
    np.testing.assert_allclose(wide(x), source(x), rtol=1e-5, atol=1e-6)
    assert wide.count_params() > source.count_params()
    best = keras.saving.load_model(tmp_path / "grown" / "best.keras", compile=False)
    drums.train(dataclasses_replace(grown, average_weight=0.5), verbose=0, log=lambda message: None)
    saved = keras.saving.load_model(tmp_path / "grown" / drums.MODEL_FILE, compile=False)
    start = grow_conv_lstm_weights(
        source.get_weights(),
        ConvLSTMConfig(n_bins=wide.inputs[0].shape[2], filters=(4, 4), lstm_units=8, dense_units=8),
        ConvLSTMConfig(
            n_bins=wide.inputs[0].shape[2], filters=(5, 4), lstm_units=10, dense_units=9
        ),
        best.get_weights(),
    )
    for average, own, begin in zip(saved.get_weights(), best.get_weights(), start, strict=True):
        np.testing.assert_allclose(average, 0.5 * own + 0.5 * begin, rtol=1e-6, atol=1e-7)


def dataclasses_replace(config, **changes):
    return drums.dataclasses.replace(config, **changes)


# ---------------------------------------------------------------------------------------------
# Whole files.


@pytest.mark.parametrize("per_instrument", [False, True])
def test_chunked_inference_equals_one_pass(per_instrument):
    keras.utils.set_random_seed(1)
    config = drums.DrumTrainConfig(
        filters=(4, 4, 4), lstm_units=6, dense_units=5, per_instrument=per_instrument
    )
    model = drums.build_drum_model(config, CONFIG)
    x = np.random.default_rng(0).normal(0, 10, (1, 300, 80, 2)).astype(np.float32)
    expected = model({"features": x, "lengths": np.array([300])}).numpy()[0]
    for chunk in (7, 64, 4096):
        streamer = drums.CausalStreamer(model, chunk_frames=chunk)
        assert streamer.context == 3 * 2  # three convolutions of 3 frames in time
        np.testing.assert_allclose(streamer.run(x[0]), expected, atol=2e-6)
        # Pushed in uneven pieces, the stream gives the same.
        stream = streamer.start()
        pieces = [streamer.push(stream, x[0, a:b]) for a, b in ((0, 5), (5, 140), (140, 300))]
        pieces.append(streamer.finish(stream))
        np.testing.assert_allclose(np.concatenate(pieces), expected, atol=2e-6)
    assert streamer.finish(streamer.start()).shape == (0, 3)


def test_bfloat16_encoder_is_close_to_float32_and_still_streams():
    keras.utils.set_random_seed(2)
    config = drums.DrumTrainConfig(filters=(4, 4, 4), lstm_units=6, dense_units=5)
    model = drums.build_drum_model(config, CONFIG)
    x = np.random.default_rng(0).normal(-40, 20, (1, 300, 80, 2)).astype(np.float32)
    expected = model({"features": x, "lengths": np.array([300])}).numpy()[0]
    whole = drums.CausalStreamer(model, chunk_frames=4096, encoder_dtype="bfloat16").run(x[0])
    difference = np.abs(whole - expected).max()
    assert 0.0 < difference < 0.05  # bfloat16 rounding: not float32, not far from it
    chunked = drums.CausalStreamer(model, chunk_frames=7, encoder_dtype="bfloat16").run(x[0])
    np.testing.assert_allclose(chunked, whole, atol=1e-3)
    with pytest.raises(ValueError, match="encoder_dtype"):
        drums.CausalStreamer(model, encoder_dtype="float16")


def test_audio_blocks_equal_load_audio_features(tmp_path):
    rng = np.random.default_rng(0)
    for rate, channels in ((44100, 2), (32000, 1), (22050, 1)):
        audio = rng.normal(0, 0.1, (int(rate * 2.3) + 17, channels)).astype(np.float32)
        path = tmp_path / f"noise-{rate}.wav"
        soundfile.write(path, audio, rate, subtype="FLOAT")
        expected = compute_features(load_audio(path, CONFIG), CONFIG)
        blocks = list(drums.audio_feature_blocks(path, CONFIG, block_seconds=0.3))
        assert len(blocks) > 3
        np.testing.assert_allclose(np.concatenate(blocks), expected, atol=1e-4)


@pytest.mark.parametrize(
    "suffix, subtype, channels",
    [(".wav", "PCM_16", 2), (".wav", "PCM_16", 1), (".flac", "PCM_16", 2),
     (".aiff", "PCM_16", 2), (".wav", "PCM_24", 2), (".wav", "PCM_16", 3)],
)  # fmt: skip
def test_sixteen_bit_audio_is_mixed_as_libsndfile_floats(tmp_path, suffix, subtype, channels):
    # `_read_mono` mixes 16-bit PCM from its integers; the mix must be `mix_to_mono` of
    # libsndfile's own float32 samples to the bit, full scale and all.
    rng = np.random.default_rng(4)
    audio = rng.integers(-32768, 32768, (5003, channels)).astype(np.float64) / 32768
    audio[:4] = [
        [-1.0] * channels,
        [32767 / 32768] * channels,
        [0.0] * channels,
        [-1.0, 1.0, 0][:channels],
    ]
    path = tmp_path / f"take{suffix}"
    soundfile.write(path, audio, 32000, subtype=subtype)
    with soundfile.SoundFile(path) as sound:
        expected = mix_to_mono(sound.read(dtype="float32", always_2d=True))
    with soundfile.SoundFile(path) as sound:
        mixed = [drums._read_mono(sound, 1000) for _ in range(6)]
    assert [len(m) for m in mixed] == [1000] * 5 + [3]
    assert all(m.dtype == np.float32 for m in mixed)
    np.testing.assert_array_equal(np.concatenate(mixed), expected)
    assert np.any(expected != 0) and np.any(expected == -1.0)


def test_sets_are_put_back_into_whole_files(data):
    manifest = read_manifest(data["dir"] / f"drums-test-{KIT}.manifest.json")
    (file,) = drums.manifest_files(manifest, DRUM_CLASSES)
    ((wav, events),) = data["test"]
    features = compute_features(load_audio(wav, CONFIG), CONFIG)
    # Fixed 400-frame windows every 400 frames; a last window under 200 frames is dropped.
    assert len(file.features) == 400 * (len(features) // 400) + (
        len(features) % 400 if len(features) % 400 >= 200 else 0
    )
    np.testing.assert_array_equal(file.features, features[: len(file.features)])
    n = len(file.features)
    for c, name in enumerate(DRUM_CLASSES):
        times = np.array([e.time for e in events if e.label == name])
        # Each event at the frame whose window centre is nearest (clipped to the first frame),
        # those in the frames kept.
        frames = np.round((times * 32000 - 512) / 120).clip(0, None)
        expected = np.unique((frames[frames < n] * 120 + 512) / 32000)
        np.testing.assert_allclose(file.references[c], expected)


def copy_set(data_dir, name, folder):
    """A copy of the set `name` of `data_dir` (manifest and shards) in `folder`; its manifest."""
    manifest = read_manifest(Path(data_dir) / f"{name}.manifest.json")
    folder.mkdir(parents=True, exist_ok=True)
    for path in [manifest.path, *manifest.files]:
        shutil.copy(path, folder)
    return folder / f"{name}.manifest.json"


@pytest.mark.slow
def test_several_sets_train_as_one_and_their_files_stay_apart(data, tmp_path):
    """`--train-set A,B` / `--validation-set A,B`: both sets' shards, read in full; the same
    performances in two sets (a kit's own renders beside the data) stay two files; a training
    run takes them; bad combinations are refused, naming the file."""
    data_dir = data["dir"]
    own = copy_set(data_dir, "drums-validation", tmp_path / "own")
    single = read_manifest(data_dir / "drums-validation.manifest.json")
    combined = drums.load_manifest(data_dir, f"drums-validation, {own}")
    assert combined.path == f"{single.path},{own}"
    assert combined.files == single.files + [
        os.fspath(own.parent / Path(f).name) for f in single.files
    ]
    assert combined.totals["num_examples"] == 2 * single.totals["num_examples"]
    assert combined.totals["counts"] == [2 * count for count in single.totals["counts"]]
    # One pass of the reader over the combined set: every window of both, counts included.
    batches = drums.training_dataset(combined, 64, DRUM_CLASSES, shuffle_buffer=0, repeat=False)
    counts = np.concatenate([counts.numpy() for _, counts in batches])
    assert len(counts) == 2 * single.totals["num_examples"]
    np.testing.assert_array_equal(counts.sum(axis=0), combined.totals["counts"])
    # Whole files: the same source in both parts gives two files, each the set's own.
    (file,) = drums.manifest_files(single, DRUM_CLASSES)
    files = drums.manifest_files(combined, DRUM_CLASSES)
    assert [f.name for f in files] == [
        f"{data_dir.name}/drums-validation:{file.name}",
        f"own/drums-validation:{file.name}",
    ]
    for part in files:
        np.testing.assert_array_equal(part.features, file.features)
        for got, expected in zip(part.references, file.references, strict=True):
            np.testing.assert_array_equal(got, expected)

    other = copy_set(data_dir, f"drums-test-{KIT}", tmp_path / "kit")
    out = tmp_path / "run"
    result = invoke(
        drums_cli.train, "drums", "--data", data_dir, "--out", out, *TINY,
        "--train-set", f"drums-train,{other}", "--validation-set", f"drums-validation,{own}",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"Decoding tuned on drums-validation,{own}" in result.output
    with open(out / drums.MODEL_JSON) as file:
        trained_on = json.load(file)["training"]["data"]
    assert trained_on == {
        "train": f"{data_dir / 'drums-train.manifest.json'},{other}",
        "validation": f"{single.path},{own}",
    }

    # Refused, naming what is wrong.
    with pytest.raises(FileNotFoundError, match="no set 'drums-nothing'"):
        drums.load_manifest(data_dir, "drums-validation,drums-nothing")
    with pytest.raises(ValueError, match="given twice"):
        drums.load_manifest(
            data_dir, f"drums-validation,{data_dir / 'drums-validation.manifest.json'}"
        )
    with pytest.raises(ValueError, match="is empty"):
        drums.load_manifest(data_dir, "drums-validation,")
    content = json.loads(own.read_text())
    for key, value, message in [
        ("class_names", ["SD", "KD", "HH"], "has the classes"),
        ("feature_config", {**content["feature_config"], "n_mels": 40}, "different features"),
    ]:
        changed = tmp_path / "changed" / own.name
        changed.parent.mkdir(exist_ok=True)
        changed.write_text(json.dumps({**content, key: value}))
        with pytest.raises(ValueError, match=message) as error:
            drums.load_manifest(data_dir, f"drums-validation,{changed}")
        assert os.fspath(changed) in str(error.value)


@pytest.mark.slow
def test_transcribe_a_long_file_in_small_blocks(model_dir, tmp_path):
    # Small blocks and chunks stand for a long file: many of each, the same numbers.
    transcriber = drums.DrumTranscriber.load(model_dir, chunk_frames=300, block_seconds=0.7)
    rng = np.random.default_rng(2)
    path = tmp_path / "long.wav"
    soundfile.write(path, rng.normal(0, 0.1, 44100 * 12).astype(np.float32), 44100)
    transcription = transcriber.transcribe(path, keep_features=(2.0, 3.0))
    features = compute_features(load_audio(path, CONFIG), CONFIG)
    x = {"features": features[None], "lengths": np.array([len(features)])}
    np.testing.assert_allclose(
        transcription.probabilities, transcriber.model(x).numpy()[0], atol=2e-5
    )
    first = transcription.first_frame
    assert first == int(2.0 * CONFIG.frame_rate)
    np.testing.assert_allclose(
        transcription.features, features[first : first + len(transcription.features)], atol=1e-4
    )
    # BLAS held to one thread (the default) computes the same numbers as BLAS left alone.
    free = drums.DrumTranscriber.load(
        model_dir, chunk_frames=300, block_seconds=0.7, front_end_blas_threads=None
    )
    np.testing.assert_allclose(
        free.transcribe(path).probabilities, transcription.probabilities, atol=1e-6
    )


def test_many_files_in_one_pass_give_each_files_own_transcription(tmp_path):
    # `transcribe_many` computes features across the end of one file into the next: each file
    # must still get exactly what `transcribe` gives it alone (the stream starts afresh), and
    # an unusable file its error, in its place, without disturbing the others.
    from loco_tf.events import DecodingParameters
    from loco_tf.pipelines.audio import AudioError

    keras.utils.set_random_seed(3)
    model = drums.build_drum_model(
        drums.DrumTrainConfig(filters=(4, 4, 4), lstm_units=6, dense_units=5), CONFIG
    )
    decoding = [DecodingParameters(threshold=0.0, min_distance=3)] * 3
    transcriber = drums.DrumTranscriber(
        model, CONFIG, DRUM_CLASSES, decoding, chunk_frames=300, block_seconds=0.7
    )
    rng = np.random.default_rng(6)
    paths = []
    for name, rate, shape in (
        ("a.wav", 44100, (44100 * 3, 2)), ("b.wav", 32000, (70400,)), ("missing.wav", 0, None),
        ("silent.wav", 32000, None), ("c.wav", 22050, (33075,)),
    ):  # fmt: skip
        path = tmp_path / name
        if name == "silent.wav":
            soundfile.write(path, np.zeros(32000, np.float32), rate)
        elif shape is not None:
            soundfile.write(path, rng.normal(0, 0.2, shape).astype(np.float32), rate)
        paths.append(path)
    keep = (0.5, 1.25)
    results = list(transcriber.transcribe_many(paths, keep_features=keep))
    assert [type(r).__name__ for r in results] == [
        "Transcription", "Transcription", "AudioError", "AudioError", "Transcription",
    ]  # fmt: skip
    assert "missing.wav: cannot read audio" in str(results[2])
    assert "silent.wav: audio is digital silence" in str(results[3])
    for path, result in zip(paths, results, strict=True):
        if isinstance(result, AudioError):
            continue
        alone = transcriber.transcribe(path, keep_features=keep)
        assert result.path == os.fspath(path)
        np.testing.assert_array_equal(result.probabilities, alone.probabilities)
        np.testing.assert_array_equal(result.features, alone.features)
        assert result.first_frame == alone.first_frame
        for times, expected in zip(result.times, alone.times, strict=True):
            np.testing.assert_array_equal(times, expected)
    # And the files after a good one and after the silent one against the model's own pass.
    for index in (1, 4):
        features = compute_features(load_audio(paths[index], CONFIG), CONFIG)
        x = {"features": features[None], "lengths": np.array([len(features)])}
        expected = model(x).numpy()[0]
        np.testing.assert_allclose(results[index].probabilities, expected, atol=2e-5)
        assert sum(len(t) for t in results[index].times) > 0  # the decoding found something


def test_read_ahead_reuses_its_worker_thread_and_cleans_up():
    # The worker thread is reused from call to call (a fresh thread's arena cost ~4,300 page
    # faults a `transcribe`), another is started only while one is busy, and a stopped or
    # failed read-ahead still closes its items and leaves the worker usable.
    def items(count, seen, closed=None):
        try:
            for item in range(count):
                seen.append(threading.current_thread())
                yield item
        finally:
            if closed is not None:
                closed.append(True)

    first, second = [], []
    assert list(drums._read_ahead(items(5, first), 2)) == list(range(5))
    assert list(drums._read_ahead(items(5, second), 2)) == list(range(5))
    assert len(set(first)) == 1 and set(first) == set(second)
    assert threading.current_thread() not in first
    # Two consumed in turn run side by side, in two threads, without waiting on each other.
    a, b = [], []
    pairs = list(zip(drums._read_ahead(items(20, a)), drums._read_ahead(items(20, b)), strict=True))
    assert pairs == [(i, i) for i in range(20)]
    assert len(set(a)) == 1 and len(set(b)) == 1 and set(a) != set(b)
    # Stopped early: the items' generator is closed by the time the consumer's close returns.
    seen, closed = [], []
    stream = drums._read_ahead(items(1000, seen, closed), 2)
    assert next(stream) == 0
    stream.close()
    assert closed == [True] and len(seen) < 10

    # An exception of the items reaches the consumer; the worker goes on.
    def failing():
        yield 1
        raise RuntimeError("bad block")

    with pytest.raises(RuntimeError, match="bad block"):
        list(drums._read_ahead(failing()))
    after = []
    assert list(drums._read_ahead(items(3, after))) == [0, 1, 2]
    assert set(after) <= set(first) | set(a) | set(b)  # an existing worker, not a new one
    # A task that raises is printed, as any thread's exception would be; its thread lives on.
    threads = []

    def fails():
        threads.append(threading.current_thread())
        raise ZeroDivisionError("a task's own error")

    assert drums._in_worker_thread(fails).wait(10)
    assert drums._in_worker_thread(lambda: threads.append(threading.current_thread())).wait(10)
    assert threads[0] is threads[1] and threads[0].name == "loco-read-ahead"
    # A forked child has none of its parent's threads: its read-ahead starts its own.
    child = multiprocessing.get_context("fork").Process(
        target=lambda: sys.exit(list(drums._read_ahead(iter(range(3)))) != [0, 1, 2])
    )
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, "the forked child's read-ahead hung or failed"


def test_blas_threads_are_limited_inside_and_restored_after():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {
            i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"
        }

    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded
    before = blas_threads()
    assert before
    with drums._blas_threads(1):
        assert set(blas_threads().values()) == {1}
    assert blas_threads() == before
    with drums._blas_threads(None):
        assert blas_threads() == before


# ---------------------------------------------------------------------------------------------
# Commands.


@pytest.mark.slow
def test_evaluate_prints_tables_for_sets_and_models(model_dir, data, tmp_path):
    result = invoke(
        drums_cli.evaluate,
        model_dir,
        model_dir,
        "--data",
        data["dir"],
        "--json",
        tmp_path / "s.json",
    )
    assert result.exit_code == 0, result.output
    assert f"on drums-test-{KIT}" in result.output
    assert "50ms  KD" in result.output and "20ms  all" in result.output
    assert "F1 (%, micro, whole files)" in result.output  # two models: a comparison
    with open(tmp_path / "s.json") as file:
        assert set(json.load(file)) == {os.fspath(model_dir)}
    result = invoke(drums_cli.evaluate, model_dir, "--data", data["dir"], "--set", "nope")
    assert result.exit_code == 1 and "nope" in result.output


@pytest.mark.slow
def test_evaluate_a_folder_reports_bad_files_and_scores_the_rest(model_dir, data, tmp_path):
    folder = tmp_path / "folder"
    ((wav, events),) = data["test"]
    annotated_copy(folder, "good", wav, events)
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    (folder / "broken.csv").write_text("time,label\n1.0,KD\n")
    soundfile.write(folder / "silent.wav", np.zeros(32000, np.float32), 32000)
    (folder / "silent.csv").write_text("time,label\n")
    soundfile.write(folder / "lonely.wav", np.ones(32000, np.float32) * 0.1, 32000)
    result = invoke(drums_cli.evaluate, model_dir, model_dir, "--data", folder)
    assert result.exit_code == 1
    assert "broken.wav: cannot read audio" in result.output
    assert "silent.wav: audio is digital silence" in result.output
    # Reported once, not once per model.
    assert result.output.count("lonely.wav: no annotation file found") == 1
    assert "1 files." in result.output  # the good file was scored
    assert f"{sum(1 for e in events if e.label == 'HH'):6d}" in result.output


@pytest.mark.slow
def test_tune_retunes_on_a_set_or_a_folder_and_the_result_loads(model_dir, data, tmp_path):
    tuned = tmp_path / "tuned"
    plot = tmp_path / "f1.png"
    result = invoke(
        drums_cli.tune, model_dir, "--data", data["dir"], "--out", tuned, "--plot", plot
    )
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert "re-tuned on 1 files (drums-validation)" in result.output
    assert "warning: only" in result.output  # one two-bar groove has few hits per class
    # The decoding written is what `retune` finds on the validation set's p(t).
    model = drums.DrumTranscriber.load(model_dir)
    manifest = read_manifest(data["dir"] / "drums-validation.manifest.json")
    expected = drums.retune(model, [drums.transcribe_set(model, manifest)])
    loaded = drums.DrumTranscriber.load(tuned)
    assert loaded.decoding == tuple(t.parameters for t in expected.after)
    # Training tuned on the same files: re-tuning there finds the same decoding again.
    assert loaded.decoding == model.decoding
    assert drums.load_description(tuned)["retuned"]["sets"] == ["drums-validation"]
    assert loaded.description == drums.load_description(tuned)  # `load` keeps model.json
    result = invoke(drums_cli.evaluate, tuned, "--data", data["dir"])
    assert result.exit_code == 0 and f"on drums-test-{KIT}" in result.output

    # A folder of audio with annotations: the same file gives the same decoding.
    folder = tmp_path / "mine"
    ((wav, events),) = data["validation"]
    annotated_copy(folder, "take", wav, events)
    result = invoke(drums_cli.tune, model_dir, "--data", folder, "--out", tmp_path / "t2")
    assert result.exit_code == 0, result.output
    from_folder = drums.DrumTranscriber.load(tmp_path / "t2").decoding
    assert [d.threshold for d in from_folder] == [d.threshold for d in loaded.decoding]

    # Bad input: a set that is not there, and the model's own folder as --out.
    result = invoke(
        drums_cli.tune, model_dir, "--data", data["dir"], "--set", "nope", "--out", tuned
    )
    assert result.exit_code == 1 and "cannot read the set nope" in result.output
    result = invoke(drums_cli.tune, model_dir, "--data", data["dir"], "--out", model_dir)
    assert result.exit_code == 1 and "own folder" in result.output


def test_csv_and_midi_content(tmp_path):
    times = [np.array([0.5, 1.0]), np.array([0.75]), np.array([0.5, 0.52, 2.0])]
    drums.write_csv(tmp_path / "x.csv", times, DRUM_CLASSES)
    with open(tmp_path / "x.csv") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["time", "class"]
    assert [(float(t), c) for t, c in rows[1:]] == [
        (0.5, "KD"), (0.5, "HH"), (0.52, "HH"), (0.75, "SD"), (1.0, "KD"), (2.0, "HH"),
    ]  # fmt: skip
    drums.write_midi(tmp_path / "x.mid", times, DRUM_CLASSES)
    midi = pretty_midi.PrettyMIDI(os.fspath(tmp_path / "x.mid"))
    (instrument,) = midi.instruments
    assert instrument.is_drum
    notes = sorted((n.start, n.pitch) for n in instrument.notes)
    assert [pitch for _, pitch in notes] == [36, 42, 42, 38, 36, 42]
    np.testing.assert_allclose([t for t, _ in notes], [0.5, 0.5, 0.52, 0.75, 1.0, 2.0], atol=1e-4)
    # A repeated note ends where the next one starts: no overlap on one key.
    hats = sorted((n.start, n.end) for n in instrument.notes if n.pitch == 42)
    assert hats[0][1] <= hats[1][0] + 1e-3
    channels = {m.channel for m in mido.MidiFile(tmp_path / "x.mid") if m.type == "note_on"}
    assert channels == {9}  # General MIDI channel 10


@pytest.mark.slow
def test_predict_writes_files_and_reports_bad_input(model_dir, data, tmp_path):
    ((wav, _),) = data["test"]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x00" * 100)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    out = tmp_path / "out"
    result = invoke(
        drums_cli.predict, wav, tmp_path / "missing.wav", bad, silent, wav,
        "--out", out, "--model", model_dir,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "missing.wav: cannot read audio" in result.output
    assert "bad.wav: cannot read audio" in result.output
    assert "silent.wav: audio is digital silence" in result.output
    assert "3 of 5 file(s) failed" in result.output
    stem = Path(wav).stem
    for name in (stem, f"{stem}-2"):  # the same file twice gets two names
        with open(out / f"{name}.csv") as file:
            assert next(csv.reader(file)) == ["time", "class"]
        midi = pretty_midi.PrettyMIDI(os.fspath(out / f"{name}.mid"))
        assert all(i.is_drum for i in midi.instruments)
        assert {n.pitch for i in midi.instruments for n in i.notes} <= {36, 38, 42}


def test_a_model_of_another_task_is_refused_before_it_loads(model_dir, data, tmp_path, monkeypatch):
    ((wav, _),) = data["test"]

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(drums.DrumTranscriber, "load", no_load)
    out = tmp_path / "out"
    result = invoke(drums_cli.predict, wav, "--task", "piano", "--model", model_dir, "--out", out)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"{model_dir} is a drums model; --task piano needs a piano model" in result.output


def test_a_model_loaded_again_shares_its_network_until_its_files_change(model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    first, second = drums_cli._load(folder), drums_cli._load(folder)
    assert second.model is first.model and second.streamer is first.streamer  # not reloaded
    first.description["decoding"] = "changed"  # each load has its own description
    assert second.description["decoding"] != "changed"
    assert drums_cli._load(folder, encoder_dtype="bfloat16").model is not first.model
    # Rewritten (a re-tuned decoding): loaded afresh, with the new decoding.
    description = json.loads((folder / drums.MODEL_JSON).read_text())
    description["decoding"]["KD"]["threshold"] = 0.123
    (folder / drums.MODEL_JSON).write_text(json.dumps(description))
    third = drums_cli._load(folder)
    assert third.model is not first.model and third.decoding[0].threshold == 0.123
    assert first.decoding[0].threshold != 0.123


def test_predict_takes_folders_and_a_rerun_resumes(model_dir, data, tmp_path, monkeypatch):
    ((wav, _),) = data["test"]
    audio, _ = soundfile.read(wav, dtype="float32")
    rate = soundfile.info(wav).samplerate
    folder = tmp_path / "takes"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    soundfile.write(folder / "a.wav", audio[: 3 * rate], rate)
    soundfile.write(folder / "sub" / "b.flac", audio[rate : 4 * rate], rate)
    soundfile.write(folder / ".hidden" / "c.wav", audio[: 2 * rate], rate)
    (folder / "notes.txt").write_text("not audio")
    (tmp_path / "nothing").mkdir()
    out = tmp_path / "out"
    monkeypatch.setattr(streaming, "native_bfloat16", lambda: False)

    def run(*options):
        result = invoke(drums_cli.predict, folder, "--out", out, "--model", model_dir, *options)
        lines = result.output.splitlines()
        return result, [line for line in lines if "up to date ->" in line]

    result, up_to_date = run()
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.csv")) == ["a.csv", "b.csv"]
    assert not up_to_date
    written = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    # A rerun finds both files done and writes nothing.
    result, up_to_date = run()
    assert result.exit_code == 0 and len(up_to_date) == 2, result.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == written
    # Changed audio, or a lost output, is transcribed again; the other file is not.
    soundfile.write(folder / "a.wav", audio[: 2 * rate], rate)
    (out / "b.mid").unlink()
    result, up_to_date = run()
    assert result.exit_code == 0 and not up_to_date, result.output
    # Another precision or --overwrite redo everything. --precision auto (the default) is
    # float32 on a CPU without native bfloat16 (as here, from the start) and bfloat16 on one
    # with it; --bfloat16 is --precision bfloat16.
    assert len(run()[1]) == len(run("--precision", "float32")[1]) == 2
    assert not run("--precision", "bfloat16")[1]
    assert len(run("--bfloat16")[1]) == 2
    monkeypatch.setattr(streaming, "native_bfloat16", lambda: True)
    assert len(run()[1]) == 2
    assert not run("--bfloat16", "--overwrite")[1]
    # A folder without audio is an error for that input; the others are done.
    result = invoke(
        drums_cli.predict, tmp_path / "nothing", folder, "--out", out, "--model", model_dir
    )
    assert result.exit_code == 1
    assert "nothing: no audio files in this folder" in result.output
    assert "1 of 3 file(s) failed" in result.output


def test_transcribe_unless_done_transcribes_the_rest_in_one_pass_in_order():
    class Transcriber:
        passes = 0

        def transcribe_many(self, paths):
            self.passes += 1
            return (f"p({path})" for path in paths)

    transcriber = Transcriber()
    results = drums_cli.transcribe_unless_done(
        transcriber, ["a", "b", "c", "d"], [True, False, True, False]
    )
    assert list(results) == [None, "p(b)", None, "p(d)"]
    assert transcriber.passes == 1


def test_annotate_reruns_only_the_files_whose_counts_model_or_audio_changed(
    model_dir, data, tmp_path, monkeypatch
):
    from loco_tf.events import decode_with_counts
    from loco_tf.recipes import serving_cli

    ((wav, _),) = data["test"]
    audio, _ = soundfile.read(wav, dtype="float32")
    rate = soundfile.info(wav).samplerate
    soundfile.write(tmp_path / "a.wav", audio[: 3 * rate], rate)
    soundfile.write(tmp_path / "b.wav", audio[rate : 4 * rate], rate)
    table, out = tmp_path / "counts.csv", tmp_path / "out"
    monkeypatch.setattr(streaming, "native_bfloat16", lambda: False)

    def run(a_counts="2,3,4", *options):
        table.write_text(f"audio,KD,SD,HH\na.wav,{a_counts}\nb.wav,1,0,5\n")
        result = invoke(serving_cli.annotate, table, "--out", out, "--model", model_dir, *options)
        assert result.exit_code == 0, result.output
        return sorted(
            line.split(":")[0]
            for line in result.output.splitlines()
            if " -> " in line and "up to date" not in line
        )

    transcriber = drums.DrumTranscriber.load(model_dir)

    def check(stem, counts):
        """OUT/STEM.csv holds the model's p(t) of STEM.wav decoded with `counts`."""
        with open(out / f"{stem}.csv", newline="") as file:
            rows = list(csv.DictReader(file))
        p = transcriber.transcribe(tmp_path / f"{stem}.wav").probabilities
        want = decode_with_counts(p, counts, transcriber.feature_config, transcriber.decoding)
        for name, expected in zip(DRUM_CLASSES, want, strict=True):
            got = [float(r["time"]) for r in rows if r["class"] == name]
            np.testing.assert_allclose(got, expected, atol=1e-6)

    a, b = os.fspath(tmp_path / "a.wav"), os.fspath(tmp_path / "b.wav")
    assert run() == [a, b]
    check("a", [2, 3, 4])
    check("b", [1, 0, 5])
    written = (out / "b.csv").stat().st_mtime_ns
    assert run() == []  # nothing changed: nothing done
    # A corrected count redoes that row only, with the new count.
    assert run("1,3,4") == [a]
    check("a", [1, 3, 4])
    assert (out / "b.csv").stat().st_mtime_ns == written
    # Changed audio, a lost output, another precision or --overwrite redo what they touch.
    soundfile.write(tmp_path / "a.wav", audio[: 2 * rate], rate)
    assert run("1,3,4") == [a]
    (out / "b.csv").unlink()
    assert run("1,3,4") == [b]
    assert run("1,3,4", "--precision", "bfloat16") == [a, b]
    assert run("1,3,4", "--precision", "bfloat16") == []
    assert run("1,3,4", "--precision", "bfloat16", "--overwrite") == [a, b]


def test_predict_with_bfloat16_convolutions(model_dir, data, tmp_path, monkeypatch):
    ((wav, _),) = data["test"]

    def run(out, *options):
        return invoke(
            drums_cli.predict, wav, "--out", tmp_path / out, "--model", model_dir, *options
        )

    plain = run("a", "--precision", "float32")
    fast = run("b", "--precision", "bfloat16")
    assert plain.exit_code == fast.exit_code == 0, fast.output
    with open(tmp_path / "b" / f"{Path(wav).stem}.csv") as file:
        assert next(csv.reader(file)) == ["time", "class"]
    loads, load = [], drums_cli._load

    def spy(model_path, task=None, encoder_dtype="float32"):
        loads.append(encoder_dtype)
        return load(model_path, task, encoder_dtype)

    monkeypatch.setattr(drums_cli, "_load", spy)
    # auto follows the CPU; the explicit choices do not look at it. Nothing is printed about
    # it (a command's stderr stays quiet: test_startup).
    monkeypatch.setattr(streaming, "native_bfloat16", lambda: True)
    assert run("c").output == run("d", "--precision", "bfloat16").output.replace("/d/", "/c/")
    run("e", "--precision", "float32")
    monkeypatch.setattr(streaming, "native_bfloat16", lambda: False)
    run("f")
    run("g", "--bfloat16")
    assert loads == ["bfloat16", "bfloat16", "float32", "float32", "bfloat16"]
    # --bfloat16, the older spelling, may repeat --precision bfloat16, not contradict it.
    result = run("h", "--bfloat16", "--precision", "float32")
    assert result.exit_code == 2 and "--bfloat16 contradicts --precision float32" in result.output
    assert run("h", "--bfloat16", "--precision", "bfloat16").exit_code == 0


def test_predict_without_a_model_says_how_to_train_one(tmp_path, monkeypatch):
    monkeypatch.setattr(drums, "SHIPPED_MODELS", tmp_path / "none")
    result = invoke(drums_cli.predict, tmp_path / "x.wav", "--out", tmp_path)
    assert result.exit_code == 1
    assert "loco train drums" in result.output
    result = invoke(drums_cli.predict, tmp_path / "x.wav", "--out", tmp_path, "--model", tmp_path)
    assert result.exit_code == 1 and "model.keras" in result.output


@pytest.mark.slow
def test_plot_writes_a_png(model_dir, data, tmp_path):
    ((wav, events),) = data["test"]
    annotation = tmp_path / "hits.csv"
    annotation.write_text("time,label\n" + "".join(f"{e.time},{e.label}\n" for e in events))
    out = tmp_path / "fig.png"
    result = invoke(
        drums_cli.plot, wav, "--model", model_dir, "--out", out, "--annotation", annotation,
        "--duration", "3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = invoke(drums_cli.plot, tmp_path / "nope.wav", "--model", model_dir, "--out", out)
    assert result.exit_code == 1 and "nope.wav" in result.output


@pytest.mark.slow
def test_experiments_print_their_tables(data, tmp_path):
    base = tiny_config(data["dir"], tmp_path, epochs=1)
    quiet = {"verbose": 0, "log": lambda message: None}
    table = drums.run_length_ablation(
        base, os.fspath(data["dir"] / "drums-train-fixed.manifest.json"), tmp_path / "ab", **quiet
    )
    lines = table.splitlines()
    assert any(line.startswith("variable") and f"drums-test-{KIT}" in line for line in lines)
    assert any(line.startswith("fixed") and f"drums-test-{KIT}" in line for line in lines)
    fixed = json.loads((tmp_path / "ab" / "counts-fixed" / drums.MODEL_JSON).read_text())
    assert fixed["training"]["data"]["train"].endswith("drums-train-fixed.manifest.json")
    fitted = (tmp_path / "ab" / "counts" / "fit-complete.json").read_text()
    table = drums.compare_supervision(base, tmp_path / "ab", **quiet)
    assert any(line.startswith("counts") for line in table.splitlines())
    assert any(line.startswith("frames") for line in table.splitlines())
    # The LoCo run of the ablation was reused, not trained again.
    assert (tmp_path / "ab" / "counts" / "fit-complete.json").read_text() == fitted
