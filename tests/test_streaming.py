"""`lstm_recurrence` (the streamer's LSTM) against a float64 NumPy LSTM and Keras's layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from loco_tf import distribute, streaming
from loco_tf.features import FeatureConfig
from loco_tf.recipes import drums
from loco_tf.streaming import (
    CausalStreamer,
    FusedLSTM,
    encoder_dtype_for,
    inference_model,
    lstm_recurrence,
    native_bfloat16,
    padded_length,
    standard_lstm_weights,
    with_fused_lstms,
)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_lstm(x, mask, h, c, kernel, recurrent_kernel, bias):
    """The textbook LSTM in float64, gates in Keras's order (i, f, c, o); a masked step keeps
    the state and repeats the output."""
    x, h, c = (np.asarray(a, np.float64) for a in (x, h, c))
    outputs = []
    for t in range(x.shape[1]):
        gates = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = np.split(gates, 4, axis=-1)
        c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h_new = sigmoid(o) * np.tanh(c_new)
        keep = mask[:, t, None]
        h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


def test_lstm_recurrence_of_no_steps_keeps_the_state():
    h, c = tf.fill([2, 3], 0.5), tf.fill([2, 3], -0.25)
    weights = (tf.ones([4, 12]), tf.ones([3, 12]), tf.zeros([12]))
    outputs, h_out, c_out = lstm_recurrence(
        tf.zeros([2, 0, 4]), tf.zeros([2, 0], tf.bool), h, c, *weights
    )
    assert outputs.shape == (2, 0, 3)
    np.testing.assert_array_equal(h_out.numpy(), h.numpy())
    np.testing.assert_array_equal(c_out.numpy(), c.numpy())


@pytest.mark.parametrize("steps, unroll", [(37, 8), (16, 8), (5, 8), (13, 1), (29, 4)])
def test_lstm_recurrence_equals_numpy_lstm(steps, unroll):
    rng = np.random.default_rng(steps)
    batch, features, units = 2, 7, 5
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    kernel = rng.normal(0, 0.5, (features, 4 * units)).astype(np.float32)
    recurrent = rng.normal(0, 0.5, (units, 4 * units)).astype(np.float32)
    bias = rng.normal(0, 0.5, 4 * units).astype(np.float32)
    h = rng.normal(0, 0.5, (batch, units)).astype(np.float32)
    c = rng.normal(0, 0.5, (batch, units)).astype(np.float32)
    mask = np.ones((batch, steps), bool)
    mask[0, steps // 2 :] = False  # a padded tail
    mask[1, 1:3] = False  # skipped steps inside
    expected = numpy_lstm(x, mask, h, c, kernel, recurrent, bias)
    result = lstm_recurrence(
        tf.constant(x), tf.constant(mask), tf.constant(h), tf.constant(c),
        kernel, recurrent, bias, unroll=unroll,
    )  # fmt: skip
    for got, want in zip(result, expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, atol=2e-6, rtol=0)
    # A masked step repeats the previous output; the padded tail leaves the state at its start.
    np.testing.assert_array_equal(result[0].numpy()[1, 1], result[0].numpy()[1, 0])
    np.testing.assert_allclose(result[1].numpy()[0], expected[0][0, steps // 2 - 1], atol=2e-6)


def test_lstm_recurrence_equals_keras_layer_and_compiles():
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    layer = keras.layers.LSTM(6, return_sequences=True, return_state=True)
    x = rng.normal(size=(1, 50, 4)).astype(np.float32)
    mask = np.arange(50)[None] < 41
    h = rng.normal(0, 0.3, (1, 6)).astype(np.float32)
    c = rng.normal(0, 0.3, (1, 6)).astype(np.float32)
    expected = layer(x, mask=mask, initial_state=[h, c])
    weights = standard_lstm_weights(layer)
    compiled = tf.function(lambda *a: lstm_recurrence(*a, *weights), jit_compile=True)
    result = compiled(x, mask, h, c)
    np.testing.assert_allclose(result[0].numpy()[:, :41], expected[0].numpy()[:, :41], atol=1e-6)
    for got, want in zip(result[1:], expected[1:], strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)


def test_other_lstms_keep_the_keras_layer():
    assert standard_lstm_weights(keras.layers.LSTM(3, activation="relu")) is None
    assert standard_lstm_weights(keras.layers.LSTM(3, recurrent_activation="hard_sigmoid")) is None
    layer = keras.layers.LSTM(3, use_bias=False)
    layer.build((None, None, 2))
    assert standard_lstm_weights(layer) is None
    layer = keras.layers.LSTM(3)
    layer.build((None, None, 2))
    assert [w.shape for w in standard_lstm_weights(layer)] == [(2, 12), (3, 12), (12,)]


@pytest.mark.parametrize("chunk", [7, 4096])
def test_streamer_fused_and_keras_lstm_agree(chunk):
    keras.utils.set_random_seed(3)
    config = drums.DrumTrainConfig(filters=(4, 4, 4), lstm_units=6, dense_units=5)
    model = drums.build_drum_model(config, FeatureConfig())
    x = np.random.default_rng(1).normal(-40, 20, (301, 80, 2)).astype(np.float32)
    fused = CausalStreamer(model, chunk_frames=chunk)
    layer = CausalStreamer(model, chunk_frames=chunk, fused_lstm=False)
    assert fused._parts[0]["weights"] is not None
    np.testing.assert_allclose(fused.run(x), layer.run(x), atol=1e-6, rtol=0)


def test_padded_lengths_are_few():
    assert [padded_length(n, 4096) for n in (1, 1023, 1024, 1025, 4096)] == [1024] * 3 + [4096] * 2
    assert [padded_length(n, 8192) for n in (4097, 8192)] == [8192, 8192]
    assert [padded_length(n, 16384) for n in (4097, 16384)] == [16384, 16384]
    assert padded_length(5, 300) == 300  # never longer than a whole chunk


def test_the_check_compiles_the_length_of_a_whole_chunk():
    """The constructor's check pads its chunks to a whole chunk: a file over SHORTEST_CHUNK
    frames then runs without compiling the recurrence again (the check and such a file traced
    two lengths before, each compiled by XLA, ~1.3 s for the drum network). The values are
    `test_drums.py::test_chunked_inference_equals_one_pass`'s business."""
    keras.utils.set_random_seed(5)
    config = drums.DrumTrainConfig(filters=(4, 4, 4), lstm_units=6, dense_units=5)
    streamer = CausalStreamer(drums.build_drum_model(config, FeatureConfig()), chunk_frames=2048)
    x = np.random.default_rng(3).normal(-40, 20, (2048 + 100, 80, 2)).astype(np.float32)
    streamer.run(x[:1100])  # one chunk, padded to 2,048 frames
    assert streamer._recur.experimental_get_tracing_count() == 1
    streamer.run(x)  # 2,048 + 100 frames: the last chunk is padded to SHORTEST_CHUNK
    assert streamer._recur.experimental_get_tracing_count() == 2


@pytest.mark.parametrize("per_instrument", [False, True])
def test_with_fused_lstms_gives_the_same_model_outputs(per_instrument):
    keras.utils.set_random_seed(4)
    config = drums.DrumTrainConfig(
        filters=(4, 4, 4), lstm_units=6, dense_units=5, per_instrument=per_instrument
    )
    model = drums.build_drum_model(config, FeatureConfig())
    fused = with_fused_lstms(model)
    kinds = [
        type(layer) for layer in fused._flatten_layers() if isinstance(layer, keras.layers.LSTM)
    ]
    assert kinds == [FusedLSTM] * (3 if per_instrument else 1)
    x = np.random.default_rng(2).normal(-40, 20, (2, 90, 80, 2)).astype(np.float32)
    inputs = {"features": x, "lengths": np.array([90, 61])}
    expected = model(inputs).numpy()
    np.testing.assert_allclose(fused(inputs).numpy(), expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(tf.function(fused)(inputs).numpy(), expected, atol=1e-6, rtol=0)
    # The original model is untouched.
    assert not any(isinstance(layer, FusedLSTM) for layer in model._flatten_layers())


def test_fused_lstm_layer_options_and_training():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 11, 3)).astype(np.float32)
    h, c = (rng.normal(0, 0.3, (2, 4)).astype(np.float32) for _ in range(2))
    for options in ({}, {"return_sequences": True}, {"return_state": True}):
        keras.utils.set_random_seed(6)
        reference = keras.layers.LSTM(4, **options)
        fused = FusedLSTM.from_config(reference.get_config())
        expected = reference(x, initial_state=[h, c])
        fused.build(x.shape)
        fused.set_weights(reference.get_weights())
        result = fused(x, initial_state=[h, c])
        for got, want in zip(tf.nest.flatten(result), tf.nest.flatten(expected), strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
        # Training takes Keras's path, gradients and all.
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nest.flatten(fused(x, training=True))[0])
        gradients = tape.gradient(loss, fused.trainable_weights)
        assert all(g is not None and np.all(np.isfinite(g)) for g in gradients)


def mixed_and_float32_models(policy, per_instrument):
    """The same drum network built under `policy` and under float32, with equal weights."""
    config = drums.DrumTrainConfig(
        filters=(4, 4, 4), lstm_units=6, dense_units=5, per_instrument=per_instrument
    )
    models = {}
    for name in (policy, "float32"):
        keras.utils.set_random_seed(7)
        with distribute.precision(name):
            models[name] = drums.build_drum_model(config, FeatureConfig())
    models["float32"].set_weights(models[policy].get_weights())
    return models[policy], models["float32"]


@pytest.mark.parametrize(
    "policy, per_instrument", [("mixed_bfloat16", False), ("mixed_float16", True)]
)
def test_a_mixed_precision_model_streams_in_float32(policy, per_instrument):
    """A model trained with --mixed-precision runs in float32 for inference: chunks equal one
    float32 pass of the same weights (before, the streamer refused it: its bfloat16 chunks
    differed from one pass by 3.2e-5)."""
    mixed, float32 = mixed_and_float32_models(policy, per_instrument)
    assert inference_model(float32) is float32
    copy = inference_model(mixed)
    assert {layer.dtype_policy.compute_dtype for layer in copy._flatten_layers()} == {"float32"}
    assert any(  # the trained model is untouched
        layer.dtype_policy.compute_dtype != "float32" for layer in mixed._flatten_layers()
    )
    x = np.random.default_rng(3).normal(-40, 20, (260, 80, 2)).astype(np.float32)
    inputs = {"features": x[None], "lengths": np.array([len(x)])}
    expected = float32(inputs).numpy()[0]
    np.testing.assert_allclose(copy(inputs).numpy()[0], expected, atol=1e-6, rtol=0)
    streamed = CausalStreamer(mixed, chunk_frames=7).run(x)
    np.testing.assert_allclose(streamed, expected, atol=1e-5, rtol=0)
    # Half precision itself is further off than the streamer's 1e-5 check allows.
    assert np.abs(mixed(inputs).numpy()[0] - expected).max() > 1e-5


# /proc/cpuinfo excerpts: an AVX512_BF16 core (AMD Zen 4), an AMX one (Sapphire Rapids, which
# also lists avx512_bf16; here only amx_bf16, to test that flag alone), and one without.
ZEN4 = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_tile amx_bf16 amx_int8\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw\npower management: avx512_bf16\n"


def test_native_bfloat16_reads_the_cpu_flags_and_respects_onednn_off():
    assert native_bfloat16(ZEN4, environ={})
    assert native_bfloat16(AMX, environ={})
    assert not native_bfloat16(SKYLAKE, environ={})  # the word on a line other than flags
    assert not native_bfloat16("", environ={})
    assert not native_bfloat16(ZEN4.replace("avx512_bf16", "avx512_bf16x"), environ={})
    # TensorFlow's oneDNN kernels switched off: bfloat16 would not use the instructions.
    assert not native_bfloat16(ZEN4, environ={"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert native_bfloat16(ZEN4, environ={"TF_ENABLE_ONEDNN_OPTS": "1"})


def test_encoder_dtype_for_auto_follows_the_cpu(monkeypatch):
    assert encoder_dtype_for("auto", native=True) == "bfloat16"
    assert encoder_dtype_for("auto", native=False) == "float32"
    for native in (True, False):  # explicit choices do not look at the CPU
        assert encoder_dtype_for("float32", native=native) == "float32"
        assert encoder_dtype_for("bfloat16", native=native) == "bfloat16"
    monkeypatch.setattr(streaming, "native_bfloat16", lambda: False)
    assert encoder_dtype_for("auto") == "float32"
    with pytest.raises(ValueError, match="precision must be one of"):
        encoder_dtype_for("float16")
