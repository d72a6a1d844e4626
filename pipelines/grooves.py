"""Procedural drum grooves: kick / snare / hi-hat patterns as General MIDI drum tracks.

The default training data where no dataset is present. Each groove is 4/4 at one tempo, on one
grid (8ths or 16ths, the hi-hat's subdivision) that everything plays on: hi-hats on every step
(accented on the beat, sometimes opened), snare backbeats on 2 and 4 (sometimes a side-stick
groove), a kick pattern drawn once per groove and varied per bar, snare ghost notes between the
beats, and fills on the last beat or two of a bar (snare and toms, pedal hi-hat under them, a
crash with the kick on the next downbeat). Straight 8ths make rock, 16ths with ghosts funk, and
8ths swung by a third of a step (the off-beat at 2/3 of the beat) a shuffle.

Swing delays every odd grid step by ``swing`` x (one step); humanisation then moves each note by
Gaussian timing jitter. Toms (45, 48, 50) and crash (49) are distractors: they are not KD, SD or
HH and the label reduction drops them.

Everything random comes from ``numpy.random.default_rng(seed)``: the same seed gives the same
notes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pretty_midi

KICK = 36
SIDE_STICK = 37
SNARE = 38
CLOSED_HH = 42
PEDAL_HH = 44
OPEN_HH = 46
LOW_TOM = 45
HIGH_MID_TOM = 48
HIGH_TOM = 50
CRASH = 49
TOMS = (HIGH_TOM, HIGH_MID_TOM, LOW_TOM)

BEATS_PER_BAR = 4
# Ticks per beat when a groove is written to a .mid file: pretty_midi's default (220) would
# quantise notes to 2.7 ms at 100 BPM; 9600 keeps them within 0.03 ms of the generated times.
MIDI_RESOLUTION = 9600

# Kick positions besides the downbeat, as (beat, fraction of the beat): probability in a groove.
_KICK_8THS = {(2, 0.0): 0.7, (2, 0.5): 0.35, (1, 0.5): 0.2, (3, 0.5): 0.15, (0, 0.5): 0.15}
_KICK_16THS = {(0, 0.75): 0.15, (1, 0.75): 0.12, (2, 0.25): 0.1, (2, 0.75): 0.12}


@dataclasses.dataclass(frozen=True)
class GrooveConfig:
    """Ranges and probabilities of the groove generator; ``(low, high)`` ranges are uniform.

    Attributes:
        tempo_bpm: tempo range in beats (quarter notes) per minute.
        max_16th_tempo_bpm: 16th-note grooves are drawn no faster than this (one-handed hats).
        bars: bars per groove (4/4).
        hihat_subdivisions: grid choices, 8 (8th notes) and/or 16 (16th notes).
        swing_probability: probability that a groove swings at all.
        swing: range of the swing amount of a swung groove: the fraction of one grid step by
            which every off-beat step is delayed (1/3 is a triplet shuffle).
        ghost_probability: probability of a snare ghost note on each step between the beats.
        fill_probability: probability that a bar ends with a fill.
        open_hat_probability: probability that an off-beat hi-hat is open.
        side_stick_probability: probability that a groove plays its backbeat on side stick.
        kick_velocity / snare_velocity / ghost_velocity / hihat_velocity / tom_velocity /
            crash_velocity: MIDI velocity ranges; hi-hats take the upper half on the beat.
        timing_jitter_ms: standard deviation of the humanising timing jitter, clipped at two.
        note_duration_s: duration of every note.
        program: GM drum kit program (0 is the standard kit).
    """

    tempo_bpm: tuple[float, float] = (70.0, 150.0)
    max_16th_tempo_bpm: float = 125.0
    bars: int = 8
    hihat_subdivisions: tuple[int, ...] = (8, 16)
    swing_probability: float = 0.4
    swing: tuple[float, float] = (0.1, 1 / 3)
    ghost_probability: float = 0.2
    fill_probability: float = 0.2
    open_hat_probability: float = 0.08
    side_stick_probability: float = 0.1
    kick_velocity: tuple[int, int] = (75, 120)
    snare_velocity: tuple[int, int] = (85, 127)
    ghost_velocity: tuple[int, int] = (12, 35)
    hihat_velocity: tuple[int, int] = (45, 105)
    tom_velocity: tuple[int, int] = (75, 120)
    crash_velocity: tuple[int, int] = (90, 127)
    timing_jitter_ms: float = 5.0
    note_duration_s: float = 0.1
    program: int = 0

    def __post_init__(self):
        ranges = {
            "tempo_bpm": self.tempo_bpm,
            "swing": self.swing,
            "kick_velocity": self.kick_velocity,
            "snare_velocity": self.snare_velocity,
            "ghost_velocity": self.ghost_velocity,
            "hihat_velocity": self.hihat_velocity,
            "tom_velocity": self.tom_velocity,
            "crash_velocity": self.crash_velocity,
        }
        for name, (low, high) in ranges.items():
            if low > high:
                raise ValueError(f"{name}: low {low} > high {high}")
        for name in ranges:
            if name.endswith("velocity") and not 1 <= ranges[name][0] <= ranges[name][1] <= 127:
                raise ValueError(f"{name} must lie in 1..127, got {ranges[name]}")
        if not 0 <= self.swing[0] <= self.swing[1] < 1:
            raise ValueError(f"swing must lie in [0, 1), got {self.swing}")
        if self.tempo_bpm[0] <= 0 or self.bars < 1 or self.note_duration_s <= 0:
            raise ValueError("tempo_bpm, bars and note_duration_s must be positive")
        if not self.hihat_subdivisions or not set(self.hihat_subdivisions) <= {8, 16}:
            raise ValueError(
                f"hihat_subdivisions must be 8 and/or 16, got {self.hihat_subdivisions}"
            )
        for name in (
            "swing_probability",
            "ghost_probability",
            "fill_probability",
            "open_hat_probability",
            "side_stick_probability",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.timing_jitter_ms < 0:
            raise ValueError(f"timing_jitter_ms must be >= 0, got {self.timing_jitter_ms}")


def _velocity(rng: np.random.Generator, low_high: tuple[int, int]) -> int:
    return int(rng.integers(low_high[0], low_high[1] + 1))


def _kick_pattern(rng: np.random.Generator, steps_per_beat: int) -> set[int]:
    candidates = dict(_KICK_8THS)
    if steps_per_beat == 4:
        candidates |= _KICK_16THS
    steps = {0}
    for (beat, fraction), probability in candidates.items():
        if rng.random() < probability:
            steps.add(beat * steps_per_beat + round(fraction * steps_per_beat))
    return steps


def _vary_kicks(rng: np.random.Generator, base: set[int], steps_per_beat: int) -> set[int]:
    """A bar's kicks: the groove's pattern, one kick added or dropped in a quarter of the bars."""
    kicks = set(base)
    if rng.random() < 0.25:
        optional = sorted(kicks - {0})
        off_beats = [s for s in range(BEATS_PER_BAR * steps_per_beat) if s % steps_per_beat]
        free = sorted(set(off_beats) - kicks)
        if optional and (not free or rng.random() < 0.5):
            kicks.discard(int(rng.choice(optional)))
        elif free:
            kicks.add(int(rng.choice(free)))
    return kicks


def _fill(
    rng: np.random.Generator, steps: range, steps_per_beat: int, config: GrooveConfig
) -> dict[tuple[int, int], int]:
    """Fill hits {(step, note): velocity}: snare and toms down the kit, pedal hat on the beats."""
    hits: dict[tuple[int, int], int] = {}
    voices = (SNARE, *TOMS)
    played = [s for i, s in enumerate(steps) if i == 0 or rng.random() < 0.85]
    for i, step in enumerate(played):
        position = int(
            np.clip(i / len(played) * len(voices) + rng.normal(0.0, 0.5), 0, len(voices) - 1)
        )
        if i == len(played) - 1:
            position = max(position, 1)  # a fill ends on a tom
        hits[(step, voices[position])] = _velocity(rng, config.tom_velocity)
    for step in steps:
        if step % steps_per_beat == 0:
            hits[(step, PEDAL_HH)] = _velocity(rng, config.hihat_velocity)
    return hits


def generate_groove(seed: int, config: GrooveConfig | None = None) -> pretty_midi.PrettyMIDI:
    """One procedural drum groove as a single GM drum instrument.

    Args:
        seed: seed of ``numpy.random.default_rng``; the same seed gives identical notes.
        config: ranges and probabilities; `GrooveConfig()` by default.

    Returns:
        A PrettyMIDI at the groove's tempo (4/4) with one ``is_drum`` instrument. Every note
        starts at or after 0 and ends by ``bars * 4 * 60 / tempo`` seconds.
    """
    if config is None:
        config = GrooveConfig()
    rng = np.random.default_rng(seed)

    subdivision = int(rng.choice(config.hihat_subdivisions))
    low, high = config.tempo_bpm
    if subdivision == 16:
        high = max(low, min(high, config.max_16th_tempo_bpm))
    tempo = float(rng.uniform(low, high))
    swung = rng.random() < config.swing_probability
    swing = float(rng.uniform(*config.swing)) if swung else 0.0
    backbeat_note = SIDE_STICK if rng.random() < config.side_stick_probability else SNARE

    steps_per_beat = subdivision // BEATS_PER_BAR
    steps_per_bar = subdivision
    base_kicks = _kick_pattern(rng, steps_per_beat)
    backbeats = {steps_per_beat, 3 * steps_per_beat}

    # {(absolute step, note): velocity}: one entry per note and step, so no note can double.
    hits: dict[tuple[int, int], int] = {}
    crash_next = False
    for bar in range(config.bars):
        first = bar * steps_per_bar
        fill_steps = range(0)
        if rng.random() < config.fill_probability:
            fill_beats = 1 if rng.random() < 0.6 else 2
            fill_steps = range(steps_per_bar - fill_beats * steps_per_beat, steps_per_bar)
        kicks = _vary_kicks(rng, base_kicks, steps_per_beat)
        for step in range(steps_per_bar):
            on_beat = step % steps_per_beat == 0
            if step in fill_steps:
                if on_beat and step in kicks:
                    hits[(first + step, KICK)] = _velocity(rng, config.kick_velocity)
                continue
            if step == 0 and crash_next:
                hits[(first, CRASH)] = _velocity(rng, config.crash_velocity)
                hits[(first, KICK)] = _velocity(rng, config.kick_velocity)
            else:
                low_v, high_v = config.hihat_velocity
                middle = (low_v + high_v) // 2
                hat_range = (middle, high_v) if on_beat else (low_v, middle)
                open_hat = not on_beat and rng.random() < config.open_hat_probability
                hits[(first + step, OPEN_HH if open_hat else CLOSED_HH)] = _velocity(rng, hat_range)
            if step in kicks:
                hits[(first + step, KICK)] = _velocity(rng, config.kick_velocity)
            if step in backbeats:
                hits[(first + step, backbeat_note)] = _velocity(rng, config.snare_velocity)
            elif not on_beat and rng.random() < config.ghost_probability:
                hits[(first + step, SNARE)] = _velocity(rng, config.ghost_velocity)
        if fill_steps:
            for (step, note), velocity in _fill(rng, fill_steps, steps_per_beat, config).items():
                hits[(first + step, note)] = velocity
        crash_next = bool(fill_steps)

    step_s = 60.0 / tempo / steps_per_beat
    length_s = config.bars * steps_per_bar * step_s
    jitter_s = config.timing_jitter_ms / 1000.0
    instrument = pretty_midi.Instrument(program=config.program, is_drum=True, name="groove")
    for (step, note), velocity in sorted(hits.items()):
        start = (step + swing * (step % 2)) * step_s
        start += float(np.clip(rng.normal(0.0, jitter_s), -2 * jitter_s, 2 * jitter_s))
        start = min(max(start, 0.0), length_s - 1e-3)
        end = min(start + config.note_duration_s, length_s)
        instrument.notes.append(pretty_midi.Note(velocity, note, start, end))
    instrument.notes.sort(key=lambda n: (n.start, n.pitch))

    midi = pretty_midi.PrettyMIDI(resolution=MIDI_RESOLUTION, initial_tempo=tempo)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(BEATS_PER_BAR, 4, 0.0))
    midi.instruments.append(instrument)
    return midi


def generate_grooves(
    n: int, seed: int, config: GrooveConfig | None = None
) -> Iterator[pretty_midi.PrettyMIDI]:
    """Yields ``n`` grooves; groove ``i`` depends only on ``(seed, i)``, not on ``n``."""
    for index in range(n):
        groove_seed = np.random.SeedSequence([seed, index]).generate_state(1)[0]
        yield generate_groove(int(groove_seed), config)
