"""SavedModel export for TF Serving: audio in, event probabilities, counts and times out.

`export_saved_model` writes `BASE/NAME/VERSION/` in TF Serving's layout (the next integer
version; an existing version is never touched) with four signatures, all built from stock TF ops
(no tensorflow-io, no custom ops, no `py_function`, no XLA), so a stock `tensorflow_model_server`
can load it:

``serving_default``
    inputs ``waveform`` float32 `[batch, samples]` (mono, at the model's sample rate, zero
    padded) and ``lengths`` int32 `[batch]` (valid samples of each row).
``wav``
    input ``wav`` string `[batch]`: whole WAV files (`tf.audio.decode_wav`: 16-bit PCM, any
    number of channels, which are averaged). A WAV at another sample rate is an error that says
    so (there is no stock resampling op).

Both return: ``probabilities`` `[batch, frames, classes]` p(t), zero after each row's
``frame_lengths`` `[batch]`; ``count_distribution`` `[batch, classes, k_max + 1]` (the
Poisson-binomial of eq. 9 with the tail bin of eq. 14); ``expected_count`` `[batch, classes]`
(sum of p(t), the untruncated mean); ``event_times`` `[batch, classes, events]` seconds, padded
with -1, and ``num_events`` `[batch, classes]` int32, the number of valid times in each row.

``stream_start`` / ``stream``
    Causal streaming (paper §4.3: p(t) depends on the past only, so this is exact, not an
    approximation). ``stream_start(batch_size)`` returns the initial state; ``stream(chunk,
    **state)`` takes ``chunk`` float32 `[batch, samples]` (any length, the same for every row:
    the rows advance together) and the state, and returns ``probabilities`` `[batch, new
    frames, classes]` of the frames the chunk completed, ``first_frame`` (the index of the first
    of them) and the new state. The state is: ``audio_buffer`` `[batch, n_fft - 1]` and
    ``buffered`` (samples not yet in a frame), ``previous_log_mel`` `[batch, n_mels]` (for the
    difference channel), ``feature_history`` `[batch, context, n_mels, 2]` (the frames the
    causal convolutions still need), ``frames_done`` and ``lstm_state`` `[batch, 2 * units]`
    per network, concatenated. Concatenated chunk outputs equal ``serving_default`` on the whole
    audio (tested to 1e-5).

The front end is `loco_tf.layers.LogMelFrontEnd`, built from the same `FeatureConfig` as the
preprocessing; a frame covers samples `[t * hop, t * hop + n_fft)`, so a file of `S` samples
has `(S - n_fft) // hop + 1` frames and audio shorter than one window has none (zero events).

`assets.extra/tf_serving_warmup_requests` holds one `serving_default` request (one second of
silence) in TF Serving's warm-up format, and `loco_export.json` the classes, feature config and
decoding, for clients.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from loco_tf.events import DecodingParameters
from loco_tf.features import FeatureConfig
from loco_tf.layers import CountDistribution, LogMelFrontEnd
from loco_tf.ops.peaks import pick_peaks
from loco_tf.streaming import (
    GRAPH_LSTM_UNROLL,
    causal_networks,
    inference_model,
    run_lstm,
    split_causal_network,
    with_fused_lstms,
)

EXPORT_JSON = "loco_export.json"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
SIGNATURES = ("serving_default", "wav", "stream_start", "stream")
PAD_TIME = -1.0
"""`event_times` padding; `num_events` says how many entries of each row are real."""


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What an exported model needs besides its weights.

    Attributes:
        classes: output class names, in order.
        feature_config: the front end the model was trained with.
        decoding: per class, how p(t) becomes event times.
        k_max: last bin of the count distribution (eq. 14).
    """

    classes: tuple[str, ...]
    feature_config: FeatureConfig
    decoding: tuple[DecodingParameters, ...]
    k_max: int = 31

    def __post_init__(self):
        if len(self.decoding) != len(self.classes):
            raise ValueError(
                f"{len(self.decoding)} decoding parameters for {len(self.classes)} classes"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "feature_config": self.feature_config.to_dict(),
            "decoding": {
                str(c): d.to_dict() for c, d in zip(self.classes, self.decoding, strict=True)
            },
            "k_max": self.k_max,
            "pad_time": PAD_TIME,
        }


class ServingModule(tf.Module):
    """The exported graph: a model with its front end, count distribution and decoder.

    Args:
        model: a `{"features", "lengths"}` -> `[batch, time, classes]` causal ConvLSTM model
            (`loco_tf.models.build_conv_lstm`, or several side by side).
        spec: classes, feature config, decoding and k_max.
        fused_lstm: run the LSTMs with `lstm_recurrence` (`FusedLSTM`; the same numbers to
            float32 rounding) rather than Keras's layer. A serving graph runs without XLA;
            there this made `stream` 1.10-1.16x and `serving_default` 1.06-1.11x as fast
            (`bench/serving_bench.py`, three runs).
        count_method: how `serving_default` computes the whole file's count distribution
            (`CountDistribution`'s method): "tree", pairwise in float64, or "scan", eq. 9
            frame by frame (what exports made before session 11 run).
    """

    def __init__(
        self,
        model: keras.Model,
        spec: ExportSpec,
        fused_lstm: bool = True,
        count_method: str = "tree",
    ):
        super().__init__(name="loco_serving")
        config = spec.feature_config
        self.spec = spec
        model = inference_model(model)  # a mixed-precision model is served in float32
        self.model = with_fused_lstms(model) if fused_lstm else model
        self.front_end = LogMelFrontEnd(config)
        self.count_distribution = CountDistribution(spec.k_max, method=count_method)
        self.parts = [split_causal_network(network) for network in causal_networks(model)]
        self.encoders = [part["encoder"] for part in self.parts]
        self.lstms = [
            functools.partial(run_lstm, part, fused=fused_lstm, unroll=GRAPH_LSTM_UNROLL)
            for part in self.parts
        ]
        self.heads = [part["head"] for part in self.parts]
        self.context = max(part["context"] for part in self.parts)
        self.units = [part["units"] for part in self.parts]
        self.thresholds = tf.constant([d.threshold for d in spec.decoding], tf.float32)
        self.min_distances = tf.constant([d.min_distance for d in spec.decoding], tf.int32)
        self.offsets = tf.constant([d.offset_seconds for d in spec.decoding], tf.float32)
        n_fft, hop = config.n_fft, config.hop_length
        buffer = n_fft - 1
        state_specs = {
            "audio_buffer": tf.TensorSpec([None, buffer], tf.float32, "audio_buffer"),
            "buffered": tf.TensorSpec([], tf.int32, "buffered"),
            "previous_log_mel": tf.TensorSpec(
                [None, config.n_mels], tf.float32, "previous_log_mel"
            ),
            "feature_history": tf.TensorSpec(
                [None, self.context, config.n_mels, 2], tf.float32, "feature_history"
            ),
            "frames_done": tf.TensorSpec([], tf.int32, "frames_done"),
            "lstm_state": tf.TensorSpec([None, 2 * sum(self.units)], tf.float32, "lstm_state"),
        }
        self._n_fft, self._hop, self._buffer = n_fft, hop, buffer

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None], tf.float32, "waveform"),
                tf.TensorSpec([None], tf.int32, "lengths"),
            ]
        )
        def serving_default(waveform, lengths):
            return self._offline(waveform, lengths)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, "wav")])
        def wav(wav):
            def decode(contents):
                audio, rate = tf.audio.decode_wav(contents)
                return tf.reduce_mean(audio, axis=1), rate

            audio, rates = tf.map_fn(
                decode,
                wav,
                fn_output_signature=(
                    tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0),
                    tf.TensorSpec([], tf.int32),
                ),
            )
            check = tf.debugging.assert_equal(
                rates,
                config.sample_rate,
                message=f"WAV sample rate must be {config.sample_rate} Hz, the model's; "
                "resample the audio first",
            )
            with tf.control_dependencies([check]):
                waveform = audio.to_tensor()
            return self._offline(waveform, tf.cast(audio.row_lengths(), tf.int32))

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, "batch_size")])
        def stream_start(batch_size):
            return {
                "audio_buffer": tf.zeros([batch_size, buffer]),
                "buffered": tf.constant(0),
                "previous_log_mel": tf.zeros([batch_size, config.n_mels]),
                "feature_history": tf.zeros([batch_size, self.context, config.n_mels, 2]),
                "frames_done": tf.constant(0),
                "lstm_state": tf.zeros([batch_size, 2 * sum(self.units)]),
            }

        @tf.function(
            input_signature=[tf.TensorSpec([None, None], tf.float32, "chunk"), state_specs]
        )
        def stream(chunk, state):
            return self._stream(chunk, state)

        self.serving_default = serving_default
        self.wav = wav
        self.stream_start = stream_start
        self.stream = stream

    # -- offline -------------------------------------------------------------------------------

    def _offline(self, waveform, lengths):
        # A signature does not check the rank it is fed; EnsureShape does, naming the input:
        # "Shape of tensor waveform [5] is not compatible with expected shape [?,?]".
        waveform = tf.ensure_shape(waveform, [None, None], name="waveform")
        lengths = tf.ensure_shape(lengths, [None], name="lengths")
        # Checked in order, so each message names the first thing wrong.
        with tf.control_dependencies([waveform, lengths]):
            samples = tf.shape(waveform)[-1]
            batch = tf.debugging.assert_equal(
                tf.shape(lengths)[0],
                tf.shape(waveform)[0],
                message="waveform and lengths must have the same batch size",
            )
        with tf.control_dependencies([batch]):
            checks = [
                tf.debugging.assert_non_negative(lengths, message="lengths must be >= 0"),
                tf.debugging.assert_less_equal(
                    lengths, samples, message="lengths must not exceed the waveform's samples"
                ),
                tf.debugging.assert_all_finite(waveform, "waveform has NaN or infinite samples"),
            ]
        with tf.control_dependencies(checks):
            # Shorter than one window: pad so the graph has one (empty, masked) frame.
            waveform = tf.pad(waveform, [[0, 0], [0, tf.maximum(self._n_fft - samples, 0)]])
        features = self.front_end(waveform)
        frame_lengths = self.front_end.frame_lengths(lengths)
        probabilities = self.model({"features": features, "lengths": frame_lengths})
        return self._outputs(probabilities, frame_lengths)

    def _outputs(self, probabilities, frame_lengths):
        probabilities = tf.cast(probabilities, tf.float32)
        times, counts = self._decode(probabilities, frame_lengths)
        return {
            "probabilities": probabilities,
            "frame_lengths": frame_lengths,
            "count_distribution": self.count_distribution(probabilities, lengths=frame_lengths),
            "expected_count": tf.reduce_sum(probabilities, axis=1),
            "event_times": times,
            "num_events": counts,
        }

    def _decode(self, probabilities, frame_lengths):
        """Event times `[batch, classes, events]` (padded) and their numbers."""
        batch, classes = tf.shape(probabilities)[0], tf.shape(probabilities)[2]
        rows = tf.reshape(tf.transpose(probabilities, [0, 2, 1]), [batch * classes, -1])
        row_lengths = tf.repeat(frame_lengths, classes)
        row_class = tf.tile(tf.range(classes), [batch])
        config = self.spec.feature_config

        def decode(item):
            p, length, c = item
            frames = pick_peaks(p[:length], self.thresholds[c], self.min_distances[c])
            centre = (tf.cast(frames, tf.float32) * config.hop_length + config.n_fft / 2) / float(
                config.sample_rate
            )
            return centre + self.offsets[c]

        times = tf.map_fn(
            decode,
            (rows, row_lengths, row_class),
            fn_output_signature=tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0),
        )
        counts = tf.cast(tf.reshape(times.row_lengths(), [batch, classes]), tf.int32)
        padded = times.to_tensor(default_value=PAD_TIME)
        return tf.reshape(padded, [batch, classes, -1]), counts

    # -- streaming -----------------------------------------------------------------------------

    def _stream(self, chunk, state):
        config = self.spec.feature_config
        n_fft, hop, size = self._n_fft, self._hop, self._buffer
        buffered, done = state["buffered"], state["frames_done"]
        chunk = tf.ensure_shape(chunk, [None, None], name="chunk")
        checks = [
            tf.debugging.assert_all_finite(chunk, "chunk has NaN or infinite samples"),
            tf.debugging.assert_equal(
                tf.shape(chunk)[0],
                tf.shape(state["audio_buffer"])[0],
                message="chunk and state must have the same batch size (see stream_start)",
            ),
        ]
        with tf.control_dependencies(checks):
            audio = tf.concat([state["audio_buffer"][:, size - buffered :], chunk], axis=1)
        total = tf.shape(audio)[1]
        n = tf.maximum((total - n_fft) // hop + 1, 0)
        used = (n - 1) * hop + n_fft
        front = self.front_end(audio[:, : tf.maximum(used, 0)])  # [batch, n, mels, 2]
        log_mel = front[..., 0]
        previous = tf.where(done > 0, state["previous_log_mel"][:, None], log_mel[:, :1])
        difference = log_mel - tf.concat([previous, log_mel[:, :-1]], axis=1)
        features = tf.stack([log_mel, difference], axis=-1)

        kept = tf.minimum(done, self.context)
        history = state["feature_history"][:, self.context - kept :]
        encoder_input = tf.concat([history, features], axis=1)
        lstm_state = state["lstm_state"]
        outputs, new_states, offset = [], [], 0
        for encoder, lstm, head, units in zip(
            self.encoders, self.lstms, self.heads, self.units, strict=True
        ):
            h = lstm_state[:, offset : offset + units]
            c = lstm_state[:, offset + units : offset + 2 * units]
            offset += 2 * units

            def run(encoder=encoder, lstm=lstm, head=head, h=h, c=c):
                encoded = encoder(encoder_input)[:, kept:]
                sequence, h_new, c_new = lstm(encoded, h, c)
                for layer in head:
                    sequence = layer(sequence)
                return tf.cast(sequence, tf.float32), h_new, c_new

            def skip(h=h, c=c):
                width = len(self.spec.classes) if len(self.parts) == 1 else 1
                return tf.zeros([tf.shape(chunk)[0], 0, width]), h, c

            sequence, h, c = tf.cond(n > 0, run, skip)
            outputs.append(sequence)
            new_states += [h, c]
        probabilities = tf.concat(outputs, axis=-1)

        remaining = audio[:, n * hop :]
        pad = size - tf.shape(remaining)[1]
        last_log_mel = tf.concat([state["previous_log_mel"][:, None], log_mel], axis=1)[:, -1]
        history_all = tf.concat([history, features], axis=1)
        keep = tf.minimum(kept + n, self.context)
        new_history = history_all[:, tf.shape(history_all)[1] - keep :]
        new_history = tf.pad(new_history, [[0, 0], [self.context - keep, 0], [0, 0], [0, 0]])
        return {
            "probabilities": probabilities,
            "first_frame": done,
            "audio_buffer": tf.pad(remaining, [[0, 0], [pad, 0]]),
            "buffered": total - n * hop,
            "previous_log_mel": last_log_mel,
            "feature_history": tf.ensure_shape(new_history, [None, self.context, config.n_mels, 2]),
            "frames_done": done + n,
            "lstm_state": tf.concat(new_states, axis=1),
        }


# -- writing ---------------------------------------------------------------------------------


def next_version(model_dir: os.PathLike | str) -> int:
    """1 + the largest integer version folder in `model_dir` (1 when there is none)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return 1
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def _warmup_request(model_name: str, spec: ExportSpec) -> bytes:
    """One serving_default PredictionLog (1 s of silence) in TF Serving's warm-up format."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    rate = spec.feature_config.sample_rate
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default")
    )
    request.inputs["waveform"].CopyFrom(tf.make_tensor_proto(np.zeros((1, rate), np.float32)))
    request.inputs["lengths"].CopyFrom(tf.make_tensor_proto(np.array([rate], np.int32)))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    return log.SerializeToString()


def export_saved_model(
    model: keras.Model,
    spec: ExportSpec,
    base_dir: os.PathLike | str,
    name: str,
    extra_files: Sequence[os.PathLike | str] = (),
) -> Path:
    """Writes `base_dir/name/VERSION/` (the next version) for TF Serving; returns its path.

    The export is written to a temporary folder beside it and renamed into place when complete,
    so a version folder is either whole or absent, and an existing version is never modified.

    Args:
        model: the causal ConvLSTM model.
        spec: classes, feature config, decoding and k_max.
        base_dir: the model base folder (e.g. `saved_models`).
        name: the model name (a folder name: letters, digits, `-`, `_`, `.`).
        extra_files: files copied into the version folder too (e.g. the `.keras` model and its
            description, so `loco predict` can use the same folder); TF Serving ignores them.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"model name {name!r}: use letters, digits, '.', '_' and '-'")
    model_dir = Path(base_dir) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir)
    target = model_dir / str(version)
    temporary = model_dir / f".{version}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    module = ServingModule(model, spec)
    signatures = {
        "serving_default": module.serving_default,
        "wav": module.wav,
        "stream_start": module.stream_start,
        "stream": module.stream,
    }
    try:
        tf.saved_model.save(module, os.fspath(temporary), signatures=signatures)
        (temporary / "assets.extra").mkdir(exist_ok=True)
        with tf.io.TFRecordWriter(os.fspath(temporary / WARMUP_FILE)) as writer:
            writer.write(_warmup_request(name, spec))
        (temporary / EXPORT_JSON).write_text(
            json.dumps({"name": name, "version": version, **spec.to_dict()}, indent=2) + "\n",
            encoding="utf-8",
        )
        for extra in extra_files:
            shutil.copy2(extra, temporary / Path(extra).name)
        os.rename(temporary, target)  # fails if `target` appeared meanwhile: never overwrites
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


# -- using an export from Python ---------------------------------------------------------------


class ExportedModel:
    """An exported model loaded with `tf.saved_model.load`, called through its signatures.

    Example:
        >>> model = ExportedModel("saved_models/drums/2")
        >>> result = model.predict(waveform)              # [samples] or [batch, samples]
        >>> stream = model.stream()
        >>> for chunk in chunks:
        ...     p = stream.push(chunk)                    # p(t) of the frames completed so far
        >>> times = stream.events()                       # equal to the offline event times

    Args:
        path: a version folder written by `export_saved_model`.
    """

    def __init__(self, path: os.PathLike | str):
        path = Path(path)
        description = path / EXPORT_JSON
        if not description.is_file():
            raise FileNotFoundError(f"{description} not found: not a loco-tf export")
        values = json.loads(description.read_text(encoding="utf-8"))
        classes = tuple(values["classes"])
        self.spec = ExportSpec(
            classes,
            FeatureConfig.from_dict(values["feature_config"]),
            tuple(DecodingParameters.from_dict(values["decoding"][str(c)]) for c in classes),
            int(values["k_max"]),
        )
        self.path = path
        self.saved_model = tf.saved_model.load(os.fspath(path))
        self.signatures = self.saved_model.signatures

    @property
    def sample_rate(self) -> int:
        return self.spec.feature_config.sample_rate

    def predict(self, waveform: np.ndarray, lengths: np.ndarray | None = None) -> dict:
        """`serving_default` on `[samples]` or `[batch, samples]` audio; NumPy outputs (a single
        waveform's outputs without the batch axis)."""
        waveform = np.asarray(waveform, dtype=np.float32)
        single = waveform.ndim == 1
        if single:
            waveform = waveform[None]
        if waveform.ndim != 2:
            raise ValueError(
                f"waveform must be [samples] or [batch, samples], got {waveform.shape}"
            )
        if lengths is None:
            lengths = np.full(len(waveform), waveform.shape[1], np.int32)
        outputs = self.signatures["serving_default"](
            waveform=tf.constant(waveform), lengths=tf.constant(np.asarray(lengths, np.int32))
        )
        outputs = {key: value.numpy() for key, value in outputs.items()}
        return {key: value[0] for key, value in outputs.items()} if single else outputs

    def event_times(self, outputs: dict) -> list[np.ndarray]:
        """Per class, the valid times of one waveform's `predict` outputs."""
        return [
            outputs["event_times"][c, : outputs["num_events"][c]].astype(np.float64)
            for c in range(len(self.spec.classes))
        ]

    def stream(self, batch_size: int = 1) -> Stream:
        """A new stream (`Stream`) through the `stream` signature."""
        return Stream(self, batch_size)


class Stream:
    """Causal streaming through an export's `stream` signature.

    `push` a chunk of audio (any number of samples, `[samples]` or `[batch, samples]`) and get
    p(t) `[frames, classes]` (or `[batch, frames, classes]`) of the frames it completed; the
    concatenation equals `ExportedModel.predict` on the whole audio. `events` decodes all
    probabilities so far with the export's decoder (`loco_tf.events.decode_events`, which the
    graph's decoder reproduces), so at the end of a stream it returns the offline events.
    """

    def __init__(self, model: ExportedModel, batch_size: int = 1):
        self.model = model
        self.batch_size = int(batch_size)
        self.state = model.signatures["stream_start"](batch_size=tf.constant(self.batch_size))
        self.probabilities: list[np.ndarray] = []

    def push(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float32)
        single = chunk.ndim == 1
        if single:
            chunk = chunk[None]
        if chunk.ndim != 2 or len(chunk) != self.batch_size:
            raise ValueError(
                f"chunk must be [samples] or [{self.batch_size}, samples], got {chunk.shape}"
            )
        outputs = dict(self.model.signatures["stream"](chunk=tf.constant(chunk), **self.state))
        probabilities = outputs.pop("probabilities").numpy()
        outputs.pop("first_frame")
        self.state = outputs
        self.probabilities.append(probabilities)
        return probabilities[0] if single else probabilities

    @property
    def frames_done(self) -> int:
        return int(self.state["frames_done"])

    def all_probabilities(self) -> np.ndarray:
        """p(t) `[batch, frames, classes]` of every frame so far."""
        classes = len(self.model.spec.classes)
        empty = np.zeros((self.batch_size, 0, classes), np.float32)
        return np.concatenate([empty, *self.probabilities], axis=1)

    def events(self, row: int = 0) -> list[np.ndarray]:
        """Per class, event times in seconds of one stream row so far."""
        from loco_tf.events import decode_events

        spec = self.model.spec
        return decode_events(self.all_probabilities()[row], spec.feature_config, spec.decoding)
