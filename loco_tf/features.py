"""The audio front end: one `FeatureConfig` and the log-mel + causal-difference features.

`FeatureConfig` is the single source of truth for the features. The preprocessing pipeline
computes them here (`compute_features`: librosa's window and mel filter matrix, scipy's FFT;
equal to `librosa.feature.melspectrogram` to 1e-5 dB, and faster); the in-graph front end that
an exported model carries is built from the same config and the same filter matrix
(`mel_filterbank`), so both compute the same numbers from the same parameters.

Features are `[frames, n_mels, 2]` float32:

- channel 0: log-mel power in dB, `10 * log10(max(S, amin))`, where `S` is librosa's
  mel power spectrogram (periodic Hann window, `center=False`, power 2, Slaney mel scale and
  Slaney area normalisation);
- channel 1: the causal first difference of channel 0 along time, `x[t] - x[t - 1]`, with 0 at
  the first frame. The paper stacks mel spectrograms with their first derivatives (§6.1); the
  difference is causal, not centred, because the network is causal and must give the same
  per-frame output when it streams audio frame by frame as when it sees a whole file (§4.3).

Framing: frame `t` covers samples `[t * hop_length, t * hop_length + n_fft)` (no padding), so
`N` samples give `(N - n_fft) // hop_length + 1` frames and audio shorter than `n_fft` gives
none. A frame's time is the centre of its window, `(t * hop_length + n_fft / 2) / sample_rate`;
`frame_times` and `event_frames` use that one convention in both directions.

Why hop 120 at 32 kHz: 3.75 ms frames make the paper's 1.5 s segment exactly 400 frames
(T_max = 400, §6.1), at a resolution well inside the 50 ms (and 20 ms) onset tolerances. The
pipeline computes features once per file and cuts segments out of the file's feature matrix
(in frames), so every segment of `segment_frames` frames is exactly 400 frames, and segment
boundaries lose no context. (A 1.5 s clip analysed on its own would give only
`(48000 - 1024) // 120 + 1 = 392` frames; it needs `n_fft - hop_length` = 904 more samples of
context to give 400.)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import librosa
import numpy as np
import scipy.fft
import scipy.sparse

# Frames per `_log_mel` call in `compute_features`. Uncentred frames do not depend on their
# neighbours, so the size changes no value (tests/test_features.py checks that to the bit), only
# speed and memory: 1,024 frames keep the windowed frames (4 MB) and their spectrum in cache,
# and computed the features of a minute with half the CPU time of 8,192-frame blocks (the
# front end 1.4-2.1x as fast as its baseline row in `bench/drums_bench.py`).
_FRAMES_PER_BLOCK = 1024
# Threads of each block's FFT (see `_log_mel`).
_FFT_WORKERS = 1


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the audio front end, shared by preprocessing and exported models.

    Attributes:
        sample_rate: Hz; audio is resampled to it before analysis.
        hop_length: samples between frames; 120 at 32 kHz is 3.75 ms, so `segment_seconds`
            = 1.5 s is exactly 400 frames.
        n_fft: FFT and window length in samples (periodic Hann window).
        n_mels: mel bands (Slaney mel scale, Slaney normalisation).
        fmin: lowest mel band edge, Hz.
        fmax: highest mel band edge, Hz; at most `sample_rate / 2`.
        amin: power floor before taking dB, so silence is `10 * log10(amin)` dB, not -inf.
        segment_seconds: length of a training segment (the paper's 1.5 s).
    """

    sample_rate: int = 32000
    hop_length: int = 120
    n_fft: int = 1024
    n_mels: int = 80
    fmin: float = 30.0
    fmax: float = 16000.0
    amin: float = 1e-10
    segment_seconds: float = 1.5

    def __post_init__(self):
        if self.sample_rate <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(f"sample_rate, hop_length and n_mels must be positive: {self}")
        if self.n_fft < self.hop_length:
            raise ValueError(f"n_fft ({self.n_fft}) is shorter than hop_length: frames skip audio")
        if not 0.0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2: {self}")
        if self.amin <= 0.0:
            raise ValueError(f"amin must be positive: {self.amin}")
        if self.segment_seconds <= 0.0:
            raise ValueError(f"segment_seconds must be positive: {self.segment_seconds}")

    @property
    def frame_rate(self) -> float:
        """Frames per second (266.67 by default)."""
        return self.sample_rate / self.hop_length

    @property
    def segment_frames(self) -> int:
        """Frames in a segment of `segment_seconds` (400 by default)."""
        return round(self.segment_seconds * self.frame_rate)

    @property
    def floor_db(self) -> float:
        """The dB value of silence, `10 * log10(amin)` (-100 dB by default)."""
        return 10.0 * math.log10(self.amin)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FeatureConfig:
        """The inverse of `to_dict`; unknown keys raise, so a manifest from a newer front end
        is not silently read with the wrong features."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown FeatureConfig fields {unknown}")
        return cls(**values)


def num_frames(num_samples: int, config: FeatureConfig) -> int:
    """Frames that `compute_features` gives for `num_samples` samples."""
    if num_samples < config.n_fft:
        return 0
    return (num_samples - config.n_fft) // config.hop_length + 1


@functools.cache
def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """librosa's mel filter matrix, `[n_mels, n_fft // 2 + 1]` float32 (Slaney scale and norm).

    `compute_features` uses exactly this matrix; the exported front end embeds it as a constant.
    Cached per config: do not write into it.
    """
    matrix = librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
    )
    matrix.flags.writeable = False
    return matrix


@functools.cache
def _window(n_fft: int) -> np.ndarray:
    """librosa's periodic Hann window (what `librosa.stft(window="hann")` applies), float32."""
    window = librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)
    window.flags.writeable = False
    return window


@functools.cache
def _sparse_mel(config: FeatureConfig) -> scipy.sparse.csr_array:
    """`mel_filterbank(config)` as a sparse matrix of its non-zero weights (float32).

    A Slaney filter spans only the bins between its neighbours' centres, so the dense matrix is
    97 % zeros (997 weights of 80 x 513 by default). scipy's sparse product adds each output's
    terms in one fixed order, whatever the number of frames or threads; a BLAS product does not
    promise that (OpenBLAS's Haswell kernels round differently for another number of rows or
    threads), and features must not depend on how a file was cut into blocks or on how many
    workers prepared it."""
    matrix = scipy.sparse.csr_array(mel_filterbank(config))
    matrix.data.flags.writeable = False
    return matrix


def _log_mel(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """`librosa.feature.melspectrogram(center=False, power=2)` in dB, computed directly.

    The same frames, window, float32 FFT and filter matrix as librosa's (tests/test_features.py
    checks the two agree), and faster (`bench/drums_bench.py`): scipy's FFT over a strided view
    of the frames, the squares of the spectrum in place, the mel product over the filters'
    non-zero weights only (`_sparse_mel`), and the log in float32. Every step computes each
    value the same way whatever the number of frames, so blocks of any size give the same
    features to the bit (tests/test_features.py). The FFT runs on one thread: on blocks of
    `_FRAMES_PER_BLOCK` frames more threads cost more CPU time than they saved in wall time,
    and the front end runs beside the network, which needs the other core.
    """
    frames = np.lib.stride_tricks.sliding_window_view(audio, config.n_fft)[:: config.hop_length]
    spectrum = scipy.fft.rfft(frames * _window(config.n_fft), axis=1, workers=_FFT_WORKERS)
    squares = spectrum.view(np.float32)  # real, imaginary, real, ... per frame
    np.square(squares, out=squares)
    power = squares[:, 0::2] + squares[:, 1::2]
    # [bins, frames], as the sparse product reads it (a copy; adding into the transposed
    # layout directly took longer)
    mel = _sparse_mel(config) @ np.ascontiguousarray(power.T)  # [n_mels, frames]
    # 10 log10(max(S, amin)); float32 amin is a little above 1e-10, so silence comes out just
    # under `floor_db` and is set to it exactly.
    np.maximum(mel, np.float32(config.amin), out=mel)
    np.log10(mel, out=mel)
    mel *= np.float32(10.0)
    return np.maximum(mel, np.float32(config.floor_db), out=mel).T


def compute_features(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Log-mel power (dB) and its causal first difference.

    Args:
        audio: mono samples at `config.sample_rate`, shape `[samples]`.
        config: the front end.

    Returns:
        `[frames, n_mels, 2]` float32 with `frames = (samples - n_fft) // hop_length + 1`
        (0 when `samples < n_fft`); channel 0 is dB, channel 1 is `x[t] - x[t - 1]` (0 at
        frame 0).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono, shape [samples]; got shape {audio.shape}")
    frames = num_frames(audio.shape[0], config)
    result = np.empty((frames, config.n_mels, 2), dtype=np.float32)
    log_mel, difference = result[:, :, 0], result[:, :, 1]
    for first in range(0, frames, _FRAMES_PER_BLOCK):
        last = min(first + _FRAMES_PER_BLOCK, frames)
        samples = audio[first * config.hop_length : (last - 1) * config.hop_length + config.n_fft]
        log_mel[first:last] = _log_mel(samples, config)
    difference[:1] = 0.0
    np.subtract(log_mel[1:], log_mel[:-1], out=difference[1:])
    return result


def frame_times(n: int, config: FeatureConfig) -> np.ndarray:
    """Time in seconds of frames `0 .. n - 1`: the centre of each frame's window."""
    return (np.arange(n) * config.hop_length + config.n_fft / 2) / config.sample_rate


def event_frames(times_seconds, config: FeatureConfig, n_frames: int) -> np.ndarray:
    """The frame whose window centre is nearest to each time, clipped to `[0, n_frames - 1]`.

    The inverse of `frame_times` for times on the frame grid; ties round half to even.

    Args:
        times_seconds: event times, seconds from the start of the audio.
        config: the front end.
        n_frames: frames in the feature matrix.

    Returns:
        int64 frame indices, same shape as `times_seconds`.
    """
    times = np.asarray(times_seconds, dtype=np.float64)
    if n_frames < 1:
        if times.size:
            raise ValueError(f"cannot place {times.size} events in 0 frames")
        return np.zeros(times.shape, dtype=np.int64)
    position = (times * config.sample_rate - config.n_fft / 2) / config.hop_length
    return np.clip(np.round(position), 0, n_frames - 1).astype(np.int64)
