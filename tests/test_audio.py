"""Audio loading: errors that name the file, down-mix, resampling; warnings; augmentation."""

import numpy as np
import pytest
import soundfile

from loco_tf.features import FeatureConfig
from loco_tf.pipelines.audio import (
    AudioError,
    change_sample_rate,
    check_audio,
    load_audio,
    mix_to_mono,
    scale_events,
    time_stretch,
)
from loco_tf.pipelines.readers import Event

CONFIG = FeatureConfig()
SR = 32000


def sine(freq, seconds, sample_rate=SR, amplitude=0.5):
    return (
        amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * sample_rate)) / sample_rate)
    ).astype(np.float32)


def peak_hz(audio, sample_rate=SR):
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return np.argmax(spectrum) * sample_rate / len(audio)


def onset_seconds(audio, sample_rate=SR):
    """First sample whose magnitude reaches half the peak."""
    return np.argmax(np.abs(audio) >= 0.5 * np.abs(audio).max()) / sample_rate


def burst(onset, seconds, freq=1000.0):
    """Silence, then a sine from `onset` seconds on."""
    audio = sine(freq, seconds)
    audio[: int(onset * SR)] = 0.0
    return audio


def test_reads_mono_float32_unchanged(tmp_path):
    audio = sine(440, 0.5)
    soundfile.write(tmp_path / "a.wav", audio, SR, subtype="FLOAT")
    loaded = load_audio(tmp_path / "a.wav", CONFIG)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, audio)


def test_stereo_is_averaged(tmp_path):
    left, right = sine(440, 0.25), sine(1000, 0.25, amplitude=0.25)
    soundfile.write(tmp_path / "s.flac", np.stack([left, right], 1), SR, subtype="PCM_24")
    loaded = load_audio(tmp_path / "s.flac", CONFIG)
    assert loaded.shape == left.shape
    np.testing.assert_allclose(loaded, (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize(
    "rate, samples, expected",
    [(22050, 22050, 32000), (8000, 4000, 16000), (22050, 1001, 1453), (48000, 4800, 3200)],
)
def test_other_rates_are_resampled(tmp_path, rate, samples, expected):
    # expected = ceil(samples * 32000 / rate): 1001 * 32000 / 22050 = 1452.7 -> 1453
    audio = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(samples) / rate)
    soundfile.write(tmp_path / "r.wav", audio, rate, subtype="FLOAT")
    loaded = load_audio(tmp_path / "r.wav", CONFIG)
    assert loaded.shape == (expected,)
    if samples >= 4000:
        assert peak_hz(loaded) == pytest.approx(1000, abs=SR / expected)


def write_bytes(path, content):
    path.write_bytes(content)
    return path


def cases(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    nan = sine(440, 0.1)
    nan[100] = np.nan
    soundfile.write(tmp_path / "nan.wav", nan, SR, subtype="FLOAT")
    inf = sine(440, 0.1)
    inf[7] = np.inf
    soundfile.write(tmp_path / "inf.wav", inf, SR, subtype="FLOAT")
    soundfile.write(tmp_path / "silent.wav", np.zeros(3200, np.float32), SR)
    write_bytes(tmp_path / "text.wav", b"time,label\n0.5,KD\n")
    return {
        "text.wav": "cannot read",
        "missing.wav": "cannot read",
        "empty.wav": "empty",
        "nan.wav": "NaN",
        "inf.wav": "infinite",
        "silent.wav": "silence",
    }


def test_unusable_audio_raises_naming_the_file(tmp_path):
    for name, reason in cases(tmp_path).items():
        path = tmp_path / name
        with pytest.raises(AudioError, match=reason) as error:
            load_audio(path, CONFIG)
        assert str(path) in str(error.value)
        assert isinstance(error.value, ValueError)


def test_stereo_that_cancels_is_silence(tmp_path):
    left = sine(440, 0.1)
    soundfile.write(tmp_path / "c.wav", np.stack([left, -left], 1), SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="silence"):
        load_audio(tmp_path / "c.wav", CONFIG)


def test_clipping_warning():
    audio = sine(440, 1.0, amplitude=0.5)
    assert check_audio(audio, "quiet.wav") == []
    audio[:400] = 1.0  # 1.25 % of 32000 samples
    (warning,) = check_audio(audio, "loud.wav")
    assert "loud.wav" in warning and "clipped" in warning
    audio[:400] = 0.5
    audio[:300] = -0.9995  # 0.94 %: under the 1 % threshold
    assert check_audio(audio, "loud.wav") == []


def test_long_audio_warning():
    rate = 10  # 30 minutes at 10 Hz is 18,000 samples
    assert check_audio(np.full(18_000, 0.1, np.float32), "a.wav", sample_rate=rate) == []
    (warning,) = check_audio(np.full(18_010, 0.1, np.float32), "b.wav", sample_rate=rate)
    assert "b.wav" in warning and "30.0 minutes" in warning


def test_change_sample_rate_scales_pitch_tempo_and_event_times():
    audio = burst(0.5, 1.0)
    faster = change_sample_rate(audio, 1.25)
    assert faster.shape == (25600,)  # 32000 / 1.25
    assert peak_hz(faster[16000:]) == pytest.approx(1250, abs=5)
    assert onset_seconds(faster) == pytest.approx(0.5 / 1.25, abs=0.001)
    slower = change_sample_rate(audio, 0.8)
    assert slower.shape == (40000,)
    assert onset_seconds(slower) == pytest.approx(0.5 / 0.8, abs=0.001)
    (moved,) = scale_events([Event(0.5, "KD")], 1.25)
    assert moved == Event(0.4, "KD")


def test_time_stretch_keeps_pitch_and_scales_event_times():
    audio = burst(0.5, 1.0)
    stretched = time_stretch(audio, 1.25)
    assert stretched.shape == (25600,)
    assert peak_hz(stretched[16000:]) == pytest.approx(1000, abs=5)
    # The phase vocoder (2048-sample frames) smears the onset by a few milliseconds.
    assert onset_seconds(stretched) == pytest.approx(0.5 / 1.25, abs=0.02)
    with pytest.raises(ValueError):
        time_stretch(audio, 0.0)
    with pytest.raises(ValueError):
        change_sample_rate(audio, -1.0)


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_mix_to_mono_is_the_channel_mean_to_the_bit(channels):
    rng = np.random.default_rng(channels)
    samples = rng.normal(0, 0.3, (4001, channels)).astype(np.float32)
    samples[::7] *= 1e-30  # tiny values too
    mono = mix_to_mono(samples)
    assert mono.dtype == np.float32 and mono.shape == (4001,)
    np.testing.assert_array_equal(mono, samples.mean(axis=1, dtype=np.float32))
    # Not a view: the caller may write into it.
    mono[0] = 7.0
    assert samples[0, 0] != 7.0


def test_unreadable_files_say_why_and_what_to_do(tmp_path):
    from loco_tf.pipelines.audio import AudioError, load_audio
    from loco_tf.recipes.drums import audio_feature_blocks

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    (tmp_path / "folder.wav").mkdir()
    m4a = tmp_path / "take.m4a"
    m4a.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(200))
    # A WAV file of another codec: the suggested output must not be the input itself.
    other_wav = tmp_path / "other.wav"
    other_wav.write_bytes(b"RIFF" + bytes(40))
    spaced = tmp_path / "my take.m4a"
    spaced.write_bytes(m4a.read_bytes())
    cases = {
        tmp_path / "missing.wav": "cannot read audio: no such file",
        empty: "cannot read audio: the file is empty (0 bytes)",
        tmp_path / "folder.wav": "cannot read audio: it is a folder, not an audio file",
        m4a: f"convert other formats first, e.g. `ffmpeg -i {m4a} take.wav`",
        other_wav: f"e.g. `ffmpeg -i {other_wav} other-pcm.wav`",
        spaced: f"e.g. `ffmpeg -i '{spaced}' 'my take.wav'`",
    }
    for path, message in cases.items():
        for read in (load_audio, lambda p, c: list(audio_feature_blocks(p, c))):
            with pytest.raises(AudioError) as error:
                read(path, FeatureConfig())
            assert str(error.value).startswith(f"{path}: cannot read audio: ")
            assert message in str(error.value)
