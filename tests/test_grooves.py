"""The procedural groove generator: determinism, grid, swing, ghosts, fills, bounds."""

import dataclasses

import numpy as np
import pretty_midi
import pytest

from loco_tf.pipelines import grooves

TOMS = {45, 48, 50}
STRICT = grooves.GrooveConfig(timing_jitter_ms=0.0, fill_probability=0.0)


def notes_of(midi):
    (instrument,) = midi.instruments
    assert instrument.is_drum
    return [(n.start, n.end, n.pitch, n.velocity) for n in instrument.notes]


def tempo_of(midi):
    _, tempi = midi.get_tempo_changes()
    (tempo,) = tempi
    return float(tempo)


def test_same_seed_same_notes_different_seeds_differ():
    assert notes_of(grooves.generate_groove(7)) == notes_of(grooves.generate_groove(7))
    assert notes_of(grooves.generate_groove(7)) != notes_of(grooves.generate_groove(8))


def test_generate_grooves_is_deterministic_and_prefix_stable():
    first = [notes_of(m) for m in grooves.generate_grooves(4, seed=3)]
    again = [notes_of(m) for m in grooves.generate_grooves(6, seed=3)]
    assert first == again[:4]
    assert len({str(notes) for notes in again}) == 6


@pytest.mark.parametrize("tempo_range", [(70.0, 150.0), (96.0, 97.0), (130.0, 180.0)])
def test_tempo_within_range(tempo_range):
    config = grooves.GrooveConfig(tempo_bpm=tempo_range)
    for seed in range(20):
        midi = grooves.generate_groove(seed, config)
        assert tempo_range[0] - 1e-3 <= tempo_of(midi) <= tempo_range[1] + 1e-3


def test_16th_grooves_respect_their_tempo_cap():
    config = grooves.GrooveConfig(hihat_subdivisions=(16,), max_16th_tempo_bpm=110.0)
    assert all(tempo_of(grooves.generate_groove(s, config)) <= 110.0 + 1e-3 for s in range(20))


@pytest.mark.parametrize("seed", range(6))
def test_every_bar_has_downbeat_kick_and_backbeats(seed):
    midi = grooves.generate_groove(seed, STRICT)
    beat = 60.0 / tempo_of(midi)
    notes = notes_of(midi)
    on_beat = {}
    for start, _, pitch, velocity in notes:
        index = start / beat
        if abs(index - round(index)) < 1e-6:
            on_beat.setdefault(round(index), []).append((pitch, velocity))
    for bar in range(STRICT.bars):
        assert any(p == 36 for p, _ in on_beat[4 * bar])
        for backbeat in (4 * bar + 1, 4 * bar + 3):
            assert any(p in (37, 38) and v >= 85 for p, v in on_beat[backbeat])


def test_ghost_notes_fill_every_offbeat_step_when_certain():
    config = dataclasses.replace(STRICT, ghost_probability=1.0, open_hat_probability=0.0)
    for seed in range(6):
        notes = notes_of(grooves.generate_groove(seed, config))
        hats = [n for n in notes if n[2] == 42]
        ghosts = [n for n in notes if n[2] == 38 and n[3] < 40]
        # One closed hat per grid step; every step off the beat carries a ghost.
        assert len(ghosts) == len(hats) - 4 * config.bars > 0
        assert all(12 <= v <= 35 for *_, v in ghosts)


def test_no_ghost_notes_when_impossible():
    config = dataclasses.replace(STRICT, ghost_probability=0.0)
    for seed in range(6):
        assert not [n for n in notes_of(grooves.generate_groove(seed, config)) if n[3] < 40]


@pytest.mark.parametrize(("subdivision", "swing"), [(8, 1 / 3), (8, 0.25), (16, 0.2)])
def test_swing_delays_offbeat_steps_by_the_fraction(subdivision, swing):
    config = dataclasses.replace(
        STRICT, hihat_subdivisions=(subdivision,), swing_probability=1.0, swing=(swing, swing)
    )
    for seed in range(4):
        midi = grooves.generate_groove(seed, config)
        step = 60.0 / tempo_of(midi) / (subdivision // 4)
        offbeats = 0
        for start, *_ in notes_of(midi):
            position = start / step
            index = int(np.floor(position + 1e-6))
            expected = swing if index % 2 else 0.0
            assert position - index == pytest.approx(expected, abs=1e-6)
            offbeats += index % 2
        assert offbeats > 0


def test_shuffle_places_offbeat_eighths_at_two_thirds_of_the_beat():
    config = dataclasses.replace(
        STRICT, hihat_subdivisions=(8,), swing_probability=1.0, swing=(1 / 3, 1 / 3)
    )
    midi = grooves.generate_groove(0, config)
    beat = 60.0 / tempo_of(midi)
    phases = {round(round(n[0] / beat, 6) % 1.0, 6) for n in notes_of(midi) if n[2] == 42}
    assert phases == {0.0, round(2 / 3, 6)}


@pytest.mark.parametrize("jitter_ms", [0.0, 5.0, 25.0])
def test_notes_unique_and_within_length(jitter_ms):
    config = grooves.GrooveConfig(
        timing_jitter_ms=jitter_ms, ghost_probability=1.0, fill_probability=0.5
    )
    for seed in range(10):
        midi = grooves.generate_groove(seed, config)
        length = config.bars * 4 * 60.0 / tempo_of(midi)
        notes = notes_of(midi)
        assert len({(start, pitch) for start, _, pitch, _ in notes}) == len(notes)
        for start, end, _, velocity in notes:
            assert 0.0 <= start < end <= length + 1e-9
            assert end - start <= config.note_duration_s + 1e-9
            assert 1 <= velocity <= 127


def test_fills_end_bars_on_toms_and_bring_a_crash():
    config = dataclasses.replace(STRICT, fill_probability=1.0)
    for seed in range(6):
        midi = grooves.generate_groove(seed, config)
        bar = 4 * 60.0 / tempo_of(midi)
        notes = notes_of(midi)
        for index in range(config.bars):
            fill_window = (index * bar + bar / 2 - 1e-6, (index + 1) * bar)
            toms = [n for n in notes if n[2] in TOMS and fill_window[0] <= n[0] < fill_window[1]]
            assert toms, f"bar {index} of seed {seed} has no tom in its fill"
            if index > 0:
                downbeat = {n[2] for n in notes if abs(n[0] - index * bar) < 1e-6}
                assert {49, 36} <= downbeat
        assert all(n[0] % bar >= bar / 2 - 1e-6 for n in notes if n[2] in TOMS | {44})


def test_no_fills_means_no_toms_crash_or_pedal_hat():
    for seed in range(10):
        pitches = {n[2] for n in notes_of(grooves.generate_groove(seed, STRICT))}
        assert not pitches & (TOMS | {49, 44})
        assert {36, 42} <= pitches


def test_default_grooves_use_the_whole_kit():
    pitches = set()
    for midi in grooves.generate_grooves(40, seed=0):
        pitches |= {n[2] for n in notes_of(midi)}
    assert pitches == {36, 37, 38, 42, 44, 46} | TOMS | {49}


def test_written_midi_keeps_the_times(tmp_path):
    midi = grooves.generate_groove(11)
    path = tmp_path / "groove.mid"
    midi.write(str(path))
    (instrument,) = pretty_midi.PrettyMIDI(str(path)).instruments
    assert instrument.is_drum
    written = sorted((n.pitch, n.start) for n in instrument.notes)
    original = sorted((n[2], n[0]) for n in notes_of(midi))
    assert [p for p, _ in written] == [p for p, _ in original]
    assert np.allclose([t for _, t in written], [t for _, t in original], atol=1e-4)


@pytest.mark.parametrize(
    "bad",
    [
        {"tempo_bpm": (150.0, 70.0)},
        {"swing": (0.0, 1.0)},
        {"ghost_probability": 1.5},
        {"hihat_subdivisions": (12,)},
        {"snare_velocity": (0, 127)},
        {"bars": 0},
    ],
)
def test_config_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        grooves.GrooveConfig(**bad)
