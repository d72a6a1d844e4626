"""Causal models run chunk by chunk: exactly the one-pass output, in bounded memory.

A `build_conv_lstm` network depends on the past only (causal convolutions, a forward LSTM), so
it can run over a stream: the convolutions get each chunk together with the last `context`
frames they have seen, and the LSTM starts from the state the previous chunk left. The output
equals one pass over the whole sequence (to float32 rounding); `CausalStreamer` checks that on a
probe when it is built, and `loco_tf.export` builds the same thing into a SavedModel signature.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from loco_tf._choices import INFERENCE_PRECISIONS


@keras.saving.register_keras_serializable(package="loco_tf")
class FusedLSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` that runs `lstm_recurrence` outside training: the same numbers to
    float32 rounding, faster in a TensorFlow graph without XLA too (the exported drum model's
    signatures, `bench/serving_bench.py`). Training, and LSTMs `lstm_recurrence` does not
    cover (`standard_lstm_weights`), use the Keras layer. `with_fused_lstms` swaps it into a
    model.
    """

    def call(self, sequences, initial_state=None, mask=None, training=False):
        weights = None if training else standard_lstm_weights(self, values=False)
        if weights is None:
            return super().call(sequences, initial_state, mask, training)
        if initial_state is None:
            initial_state = [tf.zeros([tf.shape(sequences)[0], self.units], sequences.dtype)] * 2
        outputs, h, c = lstm_recurrence(
            sequences, mask, *initial_state, *weights, unroll=GRAPH_LSTM_UNROLL
        )
        if not self.return_sequences:
            outputs = h
        return (outputs, h, c) if self.return_state else outputs


def with_fused_lstms(model: keras.Model) -> keras.Model:
    """A copy of `model` (nested models too) whose LSTM layers are `FusedLSTM`s, with the same
    weights; for inference."""

    def clone(layer):
        cls = FusedLSTM if type(layer) is keras.layers.LSTM else layer.__class__
        return cls.from_config(layer.get_config())

    return _clone_with_weights(model, clone)


def _clone_with_weights(model: keras.Model, clone) -> keras.Model:
    """`keras.models.clone_model` with `clone` for every layer of `model` and of its nested
    models, and `model`'s weights."""
    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def with_dtype_policy(model: keras.Model, policy: str) -> keras.Model:
    """A copy of `model` (nested models too) whose layers compute under the dtype `policy`
    ("float32", "mixed_bfloat16", ...), with the same weights. Under Keras's mixed policies
    the variables are float32 whatever the compute dtype, so no weight is rounded.

    Inference runs a model trained with `--mixed-precision` in float32 through it
    (`inference_model`); `CausalStreamer(encoder_dtype="bfloat16")` runs its encoder in
    bfloat16 with it.
    """

    def clone(layer):
        config = layer.get_config()
        if not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    return _clone_with_weights(model, clone)


def _layers(model: keras.Model):
    """Every layer of `model`, those of nested models too."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def inference_model(model: keras.Model) -> keras.Model:
    """`model` if every layer computes in float32, else a float32 copy (`with_dtype_policy`).

    A model trained under a mixed precision policy (`loco train drums --mixed-precision`)
    computes in float16 or bfloat16, and its chunks would not match one pass to float32
    rounding: the streamer and the export run it in float32 instead, with the same weights.
    """
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in _layers(model)):
        return model
    return with_dtype_policy(model, "float32")


def causal_networks(model: keras.Model) -> list[keras.Model]:
    """The ConvLSTM networks of `model`: the model itself when it has the LSTM, else the
    networks side by side in it (per-instrument or band models).

    Raises:
        ValueError: `model` has no LSTM, so it is not a causal ConvLSTM model.
    """
    if any(isinstance(layer, keras.layers.LSTM) for layer in model.layers):
        return [model]
    networks = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if not networks:
        raise ValueError(f"model {model.name} has no LSTM: it is not a causal ConvLSTM model")
    return networks


def split_causal_network(network: keras.Model) -> dict[str, Any]:
    """Splits a `build_conv_lstm`-like network at its LSTM for chunked inference.

    Returns a dict: `encoder` (a Keras model, features -> LSTM input, causal convolutions),
    `lstm` (a copy of the LSTM that takes an initial state and returns its final one),
    `weights` (its weights for `lstm_recurrence`, or None: `standard_lstm_weights`), `head`
    (the layers after the LSTM), `context` (past frames the encoder's output depends on) and
    `units`.

    Raises:
        ValueError: a layer mixes time steps in a way a stream cannot reproduce.
    """
    lstms = [layer for layer in network.layers if isinstance(layer, keras.layers.LSTM)]
    if len(lstms) != 1:
        raise ValueError(f"model {network.name} has {len(lstms)} LSTM layers; streaming needs one")
    (lstm,) = lstms
    context = 0
    for layer in network.layers:
        if isinstance(layer, keras.layers.Conv2D):
            if layer.strides[0] != 1 or layer.dilation_rate[0] != 1:
                raise ValueError(f"{layer.name}: only stride and dilation 1 in time stream")
            context += layer.kernel_size[0] - 1
        elif isinstance(layer, keras.layers.MaxPooling2D) and layer.pool_size[0] != 1:
            raise ValueError(f"{layer.name}: pooling over time cannot be streamed")
    encoder = keras.Model(network.get_layer("features").output, lstm.input)
    stateful = keras.layers.LSTM.from_config(
        {**lstm.get_config(), "return_state": True, "name": f"{lstm.name}_streaming"}
    )
    stateful.build(lstm.input.shape)
    stateful.set_weights(lstm.get_weights())
    index = network.layers.index(lstm)
    head = [
        layer
        for layer in network.layers[index + 1 :]
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    return {
        "encoder": encoder,
        "lstm": stateful,
        "weights": standard_lstm_weights(lstm),
        "head": head,
        "context": context,
        "units": lstm.units,
    }


ENCODER_DTYPES = ("float32", "bfloat16")
# /proc/cpuinfo flags of x86 CPUs with bfloat16 arithmetic (dot products, conversions): AVX-512
# BF16 (Cooper Lake, Zen 4 and later) and AMX (Sapphire Rapids and later). oneDNN's bfloat16
# convolutions use them; elsewhere they are emulated and may be slower than float32.
NATIVE_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def native_bfloat16(cpuinfo: str | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether bfloat16 convolutions run on native instructions here: the CPU lists one of
    `NATIVE_BFLOAT16_FLAGS` in /proc/cpuinfo (`cpuinfo`, its text, for tests) and TensorFlow's
    oneDNN kernels, which use them, are not switched off (`TF_ENABLE_ONEDNN_OPTS=0`). False
    where /proc/cpuinfo cannot be read (not Linux)."""
    environ = os.environ if environ is None else environ
    if environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false"):
        return False
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                cpuinfo = handle.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags" and NATIVE_BFLOAT16_FLAGS & set(value.split()):
            return True
    return False


def encoder_dtype_for(precision: str, native: bool | None = None) -> str:
    """The `CausalStreamer` `encoder_dtype` of a precision choice (`INFERENCE_PRECISIONS`):
    "float32" and "bfloat16" are themselves; "auto" is "bfloat16" where `native_bfloat16()` (or
    `native`) holds, else "float32". On the 2-core AVX512_BF16 CPU of the README the drum
    network took half its float32 time in bfloat16, for scores within 0.1 point of float32's."""
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"precision must be one of {INFERENCE_PRECISIONS}: {precision!r}")
    if precision != "auto":
        return precision
    return "bfloat16" if (native_bfloat16() if native is None else native) else "float32"


# The recurrence is compiled (XLA) once per padded chunk length, ~1.3 s each for the drum
# network on this CPU while a 4,096-frame chunk then runs in ~30 ms: a last chunk is padded to
# SHORTEST_CHUNK x 4^k frames (at most `chunk_frames`), so a stream needs few lengths, and the
# constructor's check compiles the length of a whole chunk, which every file over
# SHORTEST_CHUNK frames (10 s of drums) reuses.
SHORTEST_CHUNK = 1024

# Time steps per iteration of `lstm_recurrence`'s loop. More steps make the loop faster and its
# XLA compilation slower: for the drum network, a minute of frames took 91, 81 and 77 ms with 1,
# 4 and 8 (Keras's layer: 100 ms), while building a `CausalStreamer` and running it on its
# first 10 s took 1.9, 2.8 and 3.5 s (Keras's layer: 1.9 s). Each new chunk length compiles
# once per streamer, so 4 is the default. Graphs without XLA (a SavedModel under TF Serving)
# compile nothing; there 8 made the export's `stream` 1.10-1.16x as fast as Keras's layer (three
# runs) and 4 1.05x (one run; `bench/serving_bench.py`): `FusedLSTM` and the export use
# `GRAPH_LSTM_UNROLL`.
LSTM_UNROLL = 4
GRAPH_LSTM_UNROLL = 8


def standard_lstm_weights(lstm: keras.layers.LSTM, values: bool = True) -> tuple | None:
    """(kernel, recurrent_kernel, bias) of a forward LSTM whose cell `lstm_recurrence`
    computes exactly (tanh activation, sigmoid gates, with bias); None for any other.

    `values`: NumPy copies (True), or the layer's variables as tensors, to use in its graph.
    """
    config = lstm.get_config()
    standard = (
        config["activation"] == "tanh"
        and config["recurrent_activation"] == "sigmoid"
        and config["use_bias"]
        and not config["go_backwards"]
    )
    if not standard:
        return None
    if values:
        return tuple(lstm.get_weights())
    cell = lstm.cell
    return tuple(tf.convert_to_tensor(w) for w in (cell.kernel, cell.recurrent_kernel, cell.bias))


def lstm_recurrence(inputs, mask, h, c, kernel, recurrent_kernel, bias, unroll=LSTM_UNROLL):
    """A forward LSTM over a sequence, as `keras.layers.LSTM` computes it, faster on a CPU.

    Keras's cell multiplies each step's input by `kernel` inside the loop; here that is one
    matrix product over all steps before it, and the loop runs `unroll` steps per iteration
    (see `LSTM_UNROLL`).
    Under `jit_compile`, the drum network ran 1.16-1.27x as fast with it as with the Keras
    layer (`bench/drums_bench.py`, bfloat16 convolutions; 1.18x with the default unroll).
    Gates in Keras's order (input, forget, cell, output); a masked step keeps the state and
    repeats the previous output, as Keras does.

    Args:
        inputs: `[batch, time, features]` float32.
        mask: `[batch, time]` bool; False steps are skipped. None: every step counts.
        h, c: the initial state, `[batch, units]` each.
        kernel, recurrent_kernel, bias: the layer's weights (`standard_lstm_weights`).
        unroll: steps per loop iteration.

    Returns:
        The outputs `[batch, time, units]` and the final h and c.
    """
    units = recurrent_kernel.shape[0]
    batch, steps = tf.shape(inputs)[0], tf.shape(inputs)[1]
    if mask is None:
        mask = tf.ones([batch, steps], tf.bool)
    # Whole groups, at least one (an empty sequence keeps the initial state).
    padding = tf.maximum((steps + unroll - 1) // unroll, 1) * unroll - steps
    projected = tf.einsum("btf,fg->btg", inputs, kernel) + bias
    projected = tf.pad(projected, [[0, 0], [0, padding], [0, 0]])
    keep = tf.pad(mask, [[0, 0], [0, padding]])  # padded steps are masked
    # Time-major, in groups of `unroll` steps: [groups, unroll, batch, ...].
    projected = tf.reshape(tf.transpose(projected, [1, 0, 2]), [-1, unroll, batch, 4 * units])
    keep = tf.reshape(tf.transpose(keep, [1, 0]), [-1, unroll, batch, 1])

    def steps_of_group(carry, group):
        h, c, _ = carry
        gates_in, keep_in = group
        outputs = []
        for step in range(unroll):
            gates = gates_in[step] + tf.matmul(h, recurrent_kernel)
            i, f, g, o = tf.split(gates, 4, axis=-1)
            c_new = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h_new = tf.sigmoid(o) * tf.tanh(c_new)
            h = tf.where(keep_in[step], h_new, h)
            c = tf.where(keep_in[step], c_new, c)
            outputs.append(h)
        return h, c, tf.stack(outputs)

    empty = tf.zeros([unroll, batch, units], h.dtype)
    finals_h, finals_c, outputs = tf.scan(steps_of_group, (projected, keep), (h, c, empty))
    outputs = tf.reshape(outputs, [-1, batch, units])[:steps]
    return tf.transpose(outputs, [1, 0, 2]), finals_h[-1], finals_c[-1]


def run_lstm(part: dict[str, Any], sequence, h, c, mask=None, fused=True, unroll=LSTM_UNROLL):
    """(outputs, h, c) of a `split_causal_network` part's LSTM over `sequence` from the state
    (h, c): with `lstm_recurrence` when `fused` and it covers the layer, else with the layer.
    `mask` as `lstm_recurrence`'s."""
    if fused and part["weights"] is not None:
        return lstm_recurrence(sequence, mask, h, c, *part["weights"], unroll=unroll)
    return part["lstm"](sequence, mask=mask, initial_state=[h, c])


def padded_length(frames: int, chunk_frames: int) -> int:
    """The length a chunk of `frames` frames is padded to: SHORTEST_CHUNK x 4^k, at most
    `chunk_frames`."""
    length = SHORTEST_CHUNK
    while length < frames:
        length *= 4
    return min(length, chunk_frames)


class CausalStreamer:
    """Runs a causal ConvLSTM model over a sequence of any length, chunk by chunk.

    Works for `build_conv_lstm` models and for models made of several of them side by side
    (`build_drum_model(per_instrument=True)`). Each network is split at its LSTM: the causal
    convolutions (the encoder) get each chunk together with the last `context` frames of the
    previous one, the number of past frames their output depends on, and the LSTM starts from
    the previous chunk's final state. The result equals one pass over the whole sequence; the
    constructor checks that on a short probe and refuses models for which it does not hold.
    A model trained in mixed precision runs in float32 (`inference_model`).

    Args:
        model: the trained model (`{"features", "lengths"}` -> `[batch, time, classes]`).
        chunk_frames: frames per chunk; memory grows with it, and so does speed, slightly.
        encoder_dtype: "float32", or "bfloat16" to run the convolutions in bfloat16 (weights
            stay float32 and are cast; the LSTM and the head stay float32). On this 2-core
            CPU with AVX512_BF16 the drum network took half its float32 time; p(t) moved by
            up to 0.08 (drums/2 on its test files, with the same F1). CPUs without native
            bfloat16 may gain nothing. The chunking check runs in float32 first.
        fused_lstm: run a standard LSTM with `lstm_recurrence` (the same numbers to float32
            rounding, faster) rather than the Keras layer; other LSTMs always use the layer.
    """

    def __init__(
        self,
        model: keras.Model,
        chunk_frames: int = 8192,
        encoder_dtype: str = "float32",
        fused_lstm: bool = True,
    ):
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be positive, got {chunk_frames}")
        if encoder_dtype not in ENCODER_DTYPES:
            raise ValueError(f"encoder_dtype must be one of {ENCODER_DTYPES}: {encoder_dtype!r}")
        self.chunk_frames = int(chunk_frames)
        self.fused_lstm = bool(fused_lstm)
        model = inference_model(model)
        self._parts = [split_causal_network(network) for network in causal_networks(model)]
        self.context = max(part["context"] for part in self._parts)
        feature_shape = model.get_layer("features").output.shape
        self.feature_shape = tuple(feature_shape[2:])
        self._encode = self._encoder_function()
        # One trace with a free time axis; XLA still compiles each padded length once. Traced
        # per length, the six lengths of a long file made TensorFlow warn of retracing.
        self._recur = tf.function(self._recur_all, jit_compile=True, reduce_retracing=True)
        self._check(model)
        self.encoder_dtype = encoder_dtype
        if encoder_dtype == "bfloat16":
            for part in self._parts:
                part["encoder"] = with_dtype_policy(part["encoder"], "mixed_bfloat16")
            self._encode = self._encoder_function()  # traced afresh, with the copies

    def _encoder_function(self):
        return tf.function(
            self._encode_all,
            input_signature=[tf.TensorSpec((1, None, *self.feature_shape), tf.float32)],
        )

    def _encode_all(self, features):
        return tuple(tf.cast(part["encoder"](features), tf.float32) for part in self._parts)

    def _recur_all(self, encoded, mask, states):
        outputs, new_states = [], []
        for part, z, (h, c) in zip(self._parts, encoded, states, strict=True):
            sequence, h, c = run_lstm(part, z, h, c, mask, self.fused_lstm)
            for layer in part["head"]:
                sequence = layer(sequence)
            outputs.append(sequence)
            new_states.append((h, c))
        return tf.concat(outputs, axis=-1), tuple(new_states)

    def start(self) -> dict[str, Any]:
        """A new stream's state (no frames seen)."""
        states = tuple(
            (tf.zeros((1, part["units"])), tf.zeros((1, part["units"]))) for part in self._parts
        )
        return {"states": states, "history": None, "pending": []}

    def push(self, stream: dict[str, Any], features: np.ndarray) -> np.ndarray:
        """Feeds `features` `[frames, bins, channels]`; returns p(t) `[frames', classes]` of the
        whole chunks complete so far (frames' may be 0). `finish` returns the rest."""
        stream["pending"].append(np.asarray(features, dtype=np.float32))
        pending = np.concatenate(stream["pending"])
        whole = len(pending) - len(pending) % self.chunk_frames
        outputs = [
            self._chunk(stream, pending[first : first + self.chunk_frames])
            for first in range(0, whole, self.chunk_frames)
        ]
        stream["pending"] = [pending[whole:]]
        return np.concatenate(outputs) if outputs else np.zeros((0, self._classes), np.float32)

    def finish(self, stream: dict[str, Any]) -> np.ndarray:
        """p(t) of the frames `push` has not returned yet; the stream ends here."""
        pending = stream["pending"]
        stream["pending"] = []
        if not sum(len(part) for part in pending):
            return np.zeros((0, self._classes), np.float32)
        return self._chunk(stream, np.concatenate(pending))

    def _chunk(
        self, stream: dict[str, Any], chunk: np.ndarray, pad_to: int | None = None
    ) -> np.ndarray:
        history = stream["history"]
        skip = 0 if history is None else len(history)
        encoder_input = chunk if history is None else np.concatenate([history, chunk])
        encoded = self._encode(tf.constant(encoder_input[None]))
        # The recurrence is compiled for a few lengths only: a whole chunk, or a last chunk
        # padded to SHORTEST_CHUNK x 4^k; padded steps are masked (the LSTM state skips them).
        n = len(chunk)
        length = pad_to or padded_length(n, self.chunk_frames)  # n <= chunk_frames here
        padding = [[0, 0], [0, length - n], [0, 0]]
        encoded = tuple(tf.pad(z[:, skip:], padding) for z in encoded)
        mask = tf.constant((np.arange(length) < n)[None])
        p, stream["states"] = self._recur(encoded, mask, stream["states"])
        stream["history"] = encoder_input[len(encoder_input) - self.context :]
        return p.numpy()[0, :n]

    def run(self, features: np.ndarray) -> np.ndarray:
        """p(t) `[frames, classes]` of a whole sequence `[frames, bins, channels]`."""
        stream = self.start()
        head = self.push(stream, features)
        return np.concatenate([head, self.finish(stream)])

    def _check(self, model: keras.Model) -> None:
        # Chunks a little longer than the context, each padded to a whole chunk: the check
        # compiles the recurrence for the length of every file over SHORTEST_CHUNK frames.
        probe = np.random.default_rng(0).normal(size=(3 * self.context + 7, *self.feature_shape))
        probe = probe.astype(np.float32)
        expected = model(
            {"features": probe[None], "lengths": np.array([len(probe)], np.int32)}
        ).numpy()[0]
        self._classes = expected.shape[-1]
        stream, step = self.start(), self.context + 3
        streamed = np.concatenate([
            self._chunk(stream, probe[first : first + step], max(step, self.chunk_frames))
            for first in range(0, len(probe), step)
        ])  # fmt: skip
        if not np.allclose(streamed, expected, atol=1e-5):
            raise ValueError(
                f"model {model.name}: chunked inference differs from one pass by "
                f"{np.abs(streamed - expected).max():.2g}; it cannot be streamed"
            )
