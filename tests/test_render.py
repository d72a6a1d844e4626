"""MIDI -> audio rendering with FluidSynth: onsets, latency, re-map, determinism, batch files."""

import os
import sys

import numpy as np
import pretty_midi
import pytest
import soundfile

from loco_tf.pipelines import grooves, render

pytest.importorskip(
    "fluidsynth",
    reason="rendering needs pyfluidsynth and libfluidsynth (pip install pyfluidsynth; "
    "sudo apt-get install fluidsynth)",
)

KITS = [
    pytest.param(
        kit,
        marks=pytest.mark.skipif(
            not os.path.isfile(path), reason=f"SoundFont {path} of kit {kit!r} is not installed"
        ),
    )
    for kit, path in render.KITS.items()
]
QUICK_KITS = [kit for kit in KITS if not render.KITS[kit.values[0]].endswith(".sf3")]
"""The kits whose SoundFont loads fast: an .sf3 (MuseScore's) is decompressed on every render,
~2.2 s here. The generic render behaviours are tested on these; every kit's latency constants
are still measured against fresh renders (`test_latency_constants_match_a_fresh_measurement`)."""
SR = 44100


def one_hit(pitch, start, is_drum=True, program=0, velocity=100, duration=0.1):
    midi = pretty_midi.PrettyMIDI()
    instrument = pretty_midi.Instrument(program=program, is_drum=is_drum)
    instrument.notes.append(pretty_midi.Note(velocity, pitch, start, start + duration))
    midi.instruments.append(instrument)
    return midi


def first_above(audio, fraction):
    """Reference onset: first sample whose magnitude reaches ``fraction`` of the peak."""
    magnitude = np.abs(audio.astype(np.float64))
    return int(np.flatnonzero(magnitude >= fraction * magnitude.max())[0])


@pytest.mark.parametrize("kit", QUICK_KITS)
@pytest.mark.parametrize("kind", ["KD", "SD", "HH", "piano"])
def test_one_hit_sounds_at_midi_time_plus_latency(kit, kind):
    if kind == "piano" and kit in render.DRUM_ONLY_KITS:
        with pytest.raises(ValueError, match="drums only"):
            render.render_latency(kit, kind)
        return
    pitch, is_drum, program = render.LATENCY_PROBES[kind]
    start = 0.7317  # deliberately off FluidSynth's 64-sample block grid
    audio = render.render_midi(one_hit(pitch, start, is_drum, program), kit, SR)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.max(np.abs(audio)) == pytest.approx(1.0)
    assert np.max(np.abs(audio[: int((start - 0.01) * SR)])) == 0.0
    onset_s = first_above(audio, 0.1) / SR
    assert onset_s == pytest.approx(start + render.render_latency(kit, kind), abs=0.002)


@pytest.mark.parametrize("kit", KITS)
def test_latency_constants_match_a_fresh_measurement(kit):
    for kind, (pitch, is_drum, program) in render.LATENCY_PROBES.items():
        if kind == "piano" and kit in render.DRUM_ONLY_KITS:
            continue
        measured = render.measure_render_latency(kit, pitch, is_drum, program, SR)
        recorded = render.RENDER_LATENCY_S[kit][kind]
        assert 0.0 <= recorded < 0.01
        assert measured == pytest.approx(recorded, abs=0.002), (kit, kind, measured)


def test_latency_at_another_rate_is_measured_not_copied():
    latency = render.render_latency("timgm6mb", "KD", sample_rate=16000)
    assert latency == pytest.approx(
        render.measure_render_latency("timgm6mb", 36, sample_rate=16000), abs=1e-12
    )


@pytest.mark.parametrize("kit", QUICK_KITS)
def test_drum_remap_sounds_the_silent_gmd_hihat_edge_without_mutating_input(kit):
    edge = one_hit(22, 0.3)
    edge.instruments.append(pretty_midi.Instrument(program=0, is_drum=False))
    edge.instruments[1].notes.append(pretty_midi.Note(80, 22, 0.3, 0.4))
    remapped = render.remap_drum_notes(edge, {22: 42})
    assert [n.pitch for n in remapped.instruments[0].notes] == [42]
    assert [n.pitch for n in remapped.instruments[1].notes] == [22]  # not a drum
    assert [n.pitch for n in edge.instruments[0].notes] == [22]

    drums_only = one_hit(22, 0.3)
    assert not np.any(render.render_midi(drums_only, kit, SR))  # silent in both GM kits
    heard = render.render_midi(drums_only, kit, SR, drum_remap={22: 42})
    assert [n.pitch for n in drums_only.instruments[0].notes] == [22]
    assert np.array_equal(heard, render.render_midi(one_hit(42, 0.3), kit, SR))


def test_silence_renders_to_zeros_without_nans():
    audio = render.render_midi(pretty_midi.PrettyMIDI(), "timgm6mb", SR, tail_s=0.25)
    assert audio.shape == (int(0.25 * SR),)
    assert not np.any(audio)


@pytest.mark.parametrize("kit", QUICK_KITS)
def test_renders_are_bit_identical(kit):
    midi = grooves.generate_groove(4, grooves.GrooveConfig(bars=2))
    first = render.render_midi(midi, kit, SR)
    assert np.array_equal(first, render.render_midi(midi, kit, SR))
    assert len(first) == int(np.ceil((midi.get_end_time() + 1.0) * SR))


def test_missing_soundfont_names_the_file_and_the_fix(monkeypatch, tmp_path):
    missing = str(tmp_path / "FluidR3_GM.sf2")
    monkeypatch.setitem(render.KITS, "fluidr3", missing)
    with pytest.raises(FileNotFoundError, match="apt-get install fluid-soundfont-gm") as error:
        render.render_midi(one_hit(36, 0.1), "fluidr3")
    assert missing in str(error.value)
    with pytest.raises(ValueError, match="unknown kit"):
        render.kit_source("no-such-kit")


def test_missing_fluidsynth_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)
    with pytest.raises(ImportError, match="pip install pyfluidsynth"):
        render.render_midi(one_hit(36, 0.1), "timgm6mb")


def write_grooves(folder, count):
    paths = []
    for seed in range(count):
        path = folder / f"groove{seed}.mid"
        grooves.generate_groove(seed, grooves.GrooveConfig(bars=1)).write(str(path))
        paths.append(path)
    return paths


def test_render_files_in_parallel_reports_bad_files_and_resumes(tmp_path):
    good = write_grooves(tmp_path, 2)
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"not a MIDI file")
    kits = ["timgm6mb", "fluidr3" if os.path.isfile(render.KITS["fluidr3"]) else "timgm6mb"]
    jobs = [
        render.RenderJob(str(good[0]), str(tmp_path / "out" / "a.wav"), kits[0]),
        render.RenderJob(str(bad), str(tmp_path / "out" / "broken.wav"), kits[0]),
        render.RenderJob(str(good[1]), str(tmp_path / "out" / "b.wav"), kits[1], {22: 42}),
    ]
    results = render.render_files(jobs, workers=2, subtype="FLOAT", progress=False)
    assert [r.job for r in results] == jobs
    assert [r.status for r in results] == ["rendered", "failed", "rendered"]
    assert "broken.mid" in results[1].error
    assert sorted(os.listdir(tmp_path / "out")) == ["a.wav", "b.wav"]  # nothing partial

    for job in (jobs[0], jobs[2]):
        written, rate = soundfile.read(job.wav_path, dtype="float32")
        expected = render.render_midi(pretty_midi.PrettyMIDI(job.midi_path), job.kit, SR)
        assert rate == SR
        assert np.array_equal(written, expected)  # the worker process rendered the same bits

    stamps = [os.stat(j.wav_path).st_mtime_ns for j in (jobs[0], jobs[2])]
    again = render.render_files(jobs, workers=2, progress=False)
    assert [r.status for r in again] == ["skipped", "failed", "skipped"]
    assert stamps == [os.stat(j.wav_path).st_mtime_ns for j in (jobs[0], jobs[2])]


def test_a_failed_write_leaves_no_wav_behind(tmp_path, monkeypatch):
    (midi_path,) = write_grooves(tmp_path, 1)

    def write_half_then_fail(path, *args, **kwargs):
        with open(path, "wb") as partial:
            partial.write(b"RIFF....WAVE")
        raise OSError("disk full")

    monkeypatch.setattr(render.soundfile, "write", write_half_then_fail)
    job = render.RenderJob(str(midi_path), str(tmp_path / "groove0.wav"), "timgm6mb")
    (result,) = render.render_files([job], workers=1, progress=False)
    assert result.status == "failed"
    assert "groove0.mid" in result.error and "disk full" in result.error
    assert sorted(os.listdir(tmp_path)) == ["groove0.mid"]
