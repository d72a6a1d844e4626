"""Audio loading, sanity checks and audio-domain augmentation.

`load_audio` returns mono float32 at the front end's sample rate and refuses audio that cannot
be used (unreadable, empty, NaN/inf, digital silence) with an `AudioError` naming the file.
`check_audio` reports audio that is usable but suspicious (clipped, very long); such files are
processed, and the warnings are for the caller to log.

The paper's augmentations that move events in time are done here, on audio, where the event
times are known: sample-rate variation (drums, §6.1) and time stretching (piano, §7.1). Both
shorten the audio by their factor, so event times divide by it (`scale_events`). Extract
stacking (§7.1) needs no event times and is done on features in `pipelines.dataset`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable

import librosa
import numpy as np
import soundfile

from loco_tf.features import FeatureConfig
from loco_tf.pipelines.readers import Event

PathLike = str | os.PathLike

CLIP_LEVEL = 0.999
CLIP_FRACTION = 0.01
LONG_SECONDS = 30 * 60.0


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file."""


def unreadable(path: PathLike, error: Exception) -> AudioError:
    """The error for a file libsndfile could not open or read, saying why when the file
    system can (libsndfile says "System error" for a missing file and "Format not
    recognised" for an empty one), and what to do about an unsupported format."""
    name = os.fspath(path)
    if not os.path.exists(name):
        reason = "no such file"
    elif os.path.isdir(name):
        reason = "it is a folder, not an audio file"
    elif os.path.isfile(name) and os.path.getsize(name) == 0:
        reason = "the file is empty (0 bytes)"
    else:
        stem, extension = os.path.splitext(os.path.basename(name))
        # A WAV file libsndfile cannot read (another codec inside) must not be converted onto
        # itself; names are quoted so that the command can be pasted into a shell.
        target = f"{stem}-pcm.wav" if extension.lower() == ".wav" else f"{stem}.wav"
        reason = (
            f"{error} (libsndfile reads WAV, FLAC, OGG/Vorbis, Opus, MP3 and AIFF; convert "
            f"other formats first, e.g. `ffmpeg -i {shlex.quote(name)} {shlex.quote(target)}`)"
        )
    return AudioError(f"{name}: cannot read audio: {reason}")


def _read(path: PathLike) -> tuple[np.ndarray, int]:
    """`[samples, channels]` float32 and the file's sample rate."""
    try:
        return soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, OSError) as error:
        raise unreadable(path, error) from error


def mix_to_mono(samples: np.ndarray) -> np.ndarray:
    """The mean over the channels of float32 `[samples, channels]`, `[samples]` float32.

    Equal to `samples.mean(axis=1, dtype=np.float32)` to the bit (the sum, then divided by the
    number of channels), but for one or two channels without numpy's reduction over a short
    axis, which took 37x as long for stereo (14 ms for 20 s at 44.1 kHz).
    """
    if samples.shape[1] == 1:
        return samples[:, 0].copy()
    if samples.shape[1] == 2:
        return (samples[:, 0] + samples[:, 1]) * np.float32(0.5)
    return samples.mean(axis=1, dtype=np.float32)


def load_audio(path: PathLike, config: FeatureConfig) -> np.ndarray:
    """Reads an audio file as mono float32 at `config.sample_rate`.

    Channels are averaged; other sample rates are resampled with soxr (librosa's default,
    "soxr_hq"), giving `ceil(samples * config.sample_rate / file_rate)` samples.

    Args:
        path: any format libsndfile reads (WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF ...).
        config: the front end; only `sample_rate` is used.

    Returns:
        `[samples]` float32.

    Raises:
        AudioError: the file is unreadable, has no samples, has NaN or infinite samples, or
            is digital silence (every sample zero).
    """
    audio, sample_rate = _read(path)
    if audio.size == 0:
        raise AudioError(f"{path}: audio file is empty (no samples)")
    if not np.all(np.isfinite(audio)):
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise AudioError(f"{path}: {bad} samples are NaN or infinite")
    mono = mix_to_mono(audio)
    if not np.any(mono):
        raise AudioError(f"{path}: audio is digital silence (every sample is zero)")
    if sample_rate != config.sample_rate:
        mono = librosa.resample(mono, orig_sr=sample_rate, target_sr=config.sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def check_audio(
    audio: np.ndarray, path: PathLike, sample_rate: int = FeatureConfig.sample_rate
) -> list[str]:
    """Warnings for usable but suspicious audio, each naming the file.

    Args:
        audio: samples as `load_audio` returns them.
        path: the file, for the messages.
        sample_rate: of `audio`, for its duration.

    Returns:
        A message for clipping (more than 1 % of samples at |x| >= 0.999) and one for very
        long audio (over 30 minutes); empty when there is nothing to say.
    """
    warnings = []
    if audio.size:
        clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL))
        if clipped > CLIP_FRACTION:
            warnings.append(
                f"{path}: {clipped:.1%} of samples are clipped (|x| >= {CLIP_LEVEL}); "
                "onsets of loud events may be distorted"
            )
    duration = audio.shape[0] / sample_rate
    if duration > LONG_SECONDS:
        warnings.append(
            f"{path}: audio is {duration / 60:.1f} minutes long (over {LONG_SECONDS / 60:.0f}); "
            "check that it is one recording"
        )
    return warnings


def change_sample_rate(audio: np.ndarray, factor: float) -> np.ndarray:
    """Plays `audio` `factor` times faster, like reading it at `factor` times its sample rate.

    Pitch and tempo both scale by `factor` (the paper's sample-rate variation, §6.1). The
    output has `ceil(samples / factor)` samples; event times divide by `factor`.
    """
    if factor <= 0:
        raise ValueError(f"factor must be positive: {factor}")
    # Only the ratio of the two rates matters; a nominal rate keeps soxr's rates ordinary.
    nominal = float(FeatureConfig.sample_rate)
    return librosa.resample(
        np.asarray(audio, dtype=np.float32), orig_sr=nominal * factor, target_sr=nominal
    )


def time_stretch(audio: np.ndarray, rate: float) -> np.ndarray:
    """Plays `audio` `rate` times faster at the same pitch (phase vocoder, librosa).

    The output has `round(samples / rate)` samples; event times divide by `rate`. The phase
    vocoder (librosa's 2048-sample frames) smears sharp onsets: a tone burst's half-peak point
    moves 15 ms late at rate 1.25 and 3 ms at 0.8 (measured at 32 kHz), so keep rates near 1.
    The paper stretches piano (§7.1); for drums, `change_sample_rate` keeps onsets sharp.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive: {rate}")
    return librosa.effects.time_stretch(np.asarray(audio, dtype=np.float32), rate=rate)


def scale_events(events: Iterable[Event], factor: float) -> list[Event]:
    """Event times after `change_sample_rate(audio, factor)` or `time_stretch(audio, factor)`."""
    return [Event(event.time / factor, event.label) for event in events]
