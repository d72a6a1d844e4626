"""MIDI -> audio with real sampled instruments (a General MIDI SoundFont, or a Hydrogen drumkit).

Kits known by name (`KITS`): ``"fluidr3"`` is FluidR3_GM.sf2 from Debian's
``fluid-soundfont-gm`` (MIT), ``"timgm6mb"`` is the TimGM6mb.sf2 that ships inside the
``pretty_midi`` package, ``"musescore"`` (MuseScore_General_Lite.sf3) and ``"csound"``
(sf_GMbank.sf2) are Debian's other General MIDI banks, and ``"blackpearl"`` / ``"redzeppelin"``
are AVLinux's recorded acoustic drum kits (``avldrums.lv2-soundfont``, CC BY-SA; drums only).
`scripts/setup.sh` installs the Debian ones when run as root. Any other ``.sf2``/``.sf3`` path
works as a kit too; its latency is measured on demand.

Hydrogen drumkits (a folder of recorded samples and a ``drumkit.xml``) are kits too, drums only:
``hydrogen:NAME`` for a kit of Debian's ``hydrogen-drumkits`` (a folder in `HYDROGEN_DRUMKITS`)
or the path of a drumkit folder. `render_midi` plays them with `hydrogen.render_midi`, not
FluidSynth: each note starts at its exact sample (no block grid), so their latency, measured on
demand like that of any kit not in `RENDER_LATENCY_S`, is the sample's own attack: at 44.1 kHz,
KD/SD/HH +10.88/+6.71/+6.62 ms in ForzeeStereo (whose samples open with 5 ms of silence),
+5.58/+0.82/+0.07 ms in ColomboAcousticDrumkit, +1.50/+1.00/+0.11 ms in Millo_MultiLayered2.
Not every drumkit puts kick, snare and hi-hat on GM's notes (see `hydrogen`). `kit_source` checks
any kit and says which of the two kinds it is.

Not every name is a different drum sound. Correlating renders of the same kick/snare/hi-hat
pattern (32 kHz): musescore vs fluidr3 0.89 and csound vs timgm6mb 0.93 (their drum kits share
samples; their latencies below agree to 0.01 ms), every other pair below 0.25. `kit_similarity`
(``loco prepare compare-kits``) checks single hits instead: csound vs timgm6mb 1.00 for kick,
snare and hi-hat (the same recordings), musescore vs fluidr3 1.00, 1.00 and 0.73. So a model
tested on timgm6mb as an unseen kit must not train on csound, and musescore adds little to
fluidr3; the distinct drum sounds are fluidr3, timgm6mb, blackpearl and redzeppelin.

Rendering drives libfluidsynth directly instead of going through
``pretty_midi.PrettyMIDI.fluidsynth``: one synthesiser per file renders every instrument on its own
channel (pretty_midi builds, and loads the SoundFont into, one synthesiser per instrument), the
output is float (no 16-bit clipping, no dither), and event times are placed on FluidSynth's block
grid, which makes the render latency a constant of the kit and the note.

Timing. FluidSynth starts a voice only at the boundary of a 64-sample block, i.e. at the first
block after the call that triggers it. Every MIDI event is therefore scheduled at the block
boundary nearest its time, so an onset lands within half a block (+-0.73 ms at 44.1 kHz, +-2 ms at
16 kHz) of ``MIDI time + latency``, with zero mean, where the latency is the sampled instrument's
own attack, measured below.

Render latency. ``measure_render_latency`` renders one isolated note at a block boundary near
0.5 s (velocity 100) and calls the *onset* the first sample whose magnitude reaches
``ONSET_FRACTION`` (10 %, i.e. -20 dB) of the rendered peak: the point where the attack has
clearly risen out of silence, robust to the near-silent leading samples some SoundFont samples
carry. Measured here (libfluidsynth 2.3.1, 44.1 kHz) with ``python -m loco_tf.pipelines.render``,
which prints these tables::

    kit             KD (36)   SD (38)   HH (42)   piano (program 0, pitch 60)
    fluidr3        +2.34 ms  +2.11 ms  +0.91 ms  +1.95 ms
    timgm6mb       +0.59 ms  +0.66 ms  +0.79 ms  +3.76 ms
    musescore      +2.34 ms  +2.11 ms  +0.91 ms  +1.79 ms
    csound         +0.59 ms  +0.66 ms  +0.79 ms  +4.04 ms
    blackpearl     +1.29 ms  +1.45 ms  +0.86 ms  (no piano)
    redzeppelin    +1.52 ms  +0.84 ms  +1.11 ms  (no piano)

    other notes of the classes (not used for correction):
    kit           SD rim 37  HH pedal 44  HH open 46
    fluidr3        +3.36 ms     +1.04 ms    +0.84 ms
    timgm6mb       +0.54 ms     +6.35 ms    +0.91 ms
    musescore      +3.29 ms     +1.16 ms    +0.84 ms
    csound         +0.54 ms     +6.35 ms    +0.98 ms
    blackpearl     +0.68 ms     +7.44 ms    +0.98 ms
    redzeppelin    +1.11 ms     +7.44 ms    +0.98 ms

DESIGN.md's "+2 to +4 ms" holds for FluidR3's kick, snare and side stick; its hi-hats start
within 1 ms and its piano about 2 ms late. Velocity moves the values by at most 0.55 ms (FluidR3's
snare velocity layers; velocities 20 to 127). Sample rate moves them by up to 1.7 ms (16 and
22.05 kHz), so `RENDER_LATENCY_S` holds the 44.1 kHz values and `render_latency` measures (once
per process) at any other rate.

Policy: the labels are CORRECTED, not left at MIDI time. The network hears an event at
``MIDI time + latency``, so a label derived from a rendered MIDI note is
``note.start + render_latency(kit, kind, sample_rate)``, with the class's probe note standing
for the whole class. ``tests/test_render.py`` re-measures `RENDER_LATENCY_S` and fails if any
value drifts by more than 2 ms (a different libfluidsynth or SoundFont version).

Determinism. Reverb and chorus are switched off and each file gets a fresh synthesiser, so the
same MIDI renders to bit-identical audio on every run and in every worker process; there is no
random state (the groove generator in `grooves` owns the seeds). The effects are off also because
labels are onsets: a dry render keeps each onset where the sample puts it.
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import functools
import multiprocessing
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import numpy as np
import pretty_midi
import soundfile
from tqdm import tqdm

from loco_tf.pipelines import hydrogen

KITS: dict[str, str] = {
    "fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "timgm6mb": os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2"),
    "musescore": "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
    "csound": "/usr/share/sounds/sf2/sf_GMbank.sf2",
    "blackpearl": "/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2",
    "redzeppelin": "/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2",
}

_MISSING_KIT_FIX = {
    "fluidr3": "install fluid-soundfont-gm: sudo apt-get install fluid-soundfont-gm",
    "timgm6mb": "reinstall pretty_midi, whose wheel ships it: pip install --force-reinstall "
    "pretty_midi",
    "musescore": "sudo apt-get install musescore-general-soundfont-small",
    "csound": "sudo apt-get install csound-soundfont",
    "blackpearl": "sudo apt-get install avldrums.lv2-soundfont",
    "redzeppelin": "sudo apt-get install avldrums.lv2-soundfont",
}

DRUM_ONLY_KITS = frozenset({"blackpearl", "redzeppelin"})
"""Kits with drums only (AVLinux's recorded acoustic kits: one preset, bank 0); they have no
piano, so the piano recipe cannot use them. Hydrogen kits have drums only too (`drums_only`)."""

HYDROGEN_PREFIX = "hydrogen:"
HYDROGEN_DRUMKITS = "/usr/share/hydrogen/data/drumkits"
"""Where Debian's ``hydrogen-drumkits`` puts its kits; the kit ``hydrogen:NAME`` is folder NAME."""

ONSET_FRACTION = 0.1
"""Onset criterion of `measure_render_latency`: first sample with |y| >= this fraction of peak."""

# The note that stands for each label class when its latency is measured.
LATENCY_PROBES: dict[str, tuple[int, bool, int]] = {
    # kind: (MIDI note, is_drum, program)
    "KD": (36, True, 0),
    "SD": (38, True, 0),
    "HH": (42, True, 0),
    "piano": (60, False, 0),
}

RENDER_LATENCY_S: dict[str, dict[str, float]] = {
    "fluidr3": {"KD": 0.00234, "SD": 0.00211, "HH": 0.00091, "piano": 0.00195},
    "timgm6mb": {"KD": 0.00059, "SD": 0.00066, "HH": 0.00079, "piano": 0.00376},
    "musescore": {"KD": 0.00234, "SD": 0.00211, "HH": 0.00091, "piano": 0.00179},
    "csound": {"KD": 0.00059, "SD": 0.00066, "HH": 0.00079, "piano": 0.00404},
    "blackpearl": {"KD": 0.00129, "SD": 0.00145, "HH": 0.00086},
    "redzeppelin": {"KD": 0.00152, "SD": 0.00084, "HH": 0.00111},
}
"""Measured render latency in seconds per kit and class at `LATENCY_SAMPLE_RATE`."""

LATENCY_SAMPLE_RATE = 44100

_PIANO_KITS = set(KITS) - DRUM_ONLY_KITS

_BLOCK = 64  # FluidSynth's FLUID_BUFSIZE: voices start only on these sample boundaries.
_DRUM_BANK = 128
_FIX_FLUIDSYNTH = (
    "rendering needs pyfluidsynth and the system libfluidsynth: pip install pyfluidsynth, and "
    "sudo apt-get install fluidsynth (Debian/Ubuntu) or brew install fluid-synth (macOS)"
)


@dataclasses.dataclass(frozen=True)
class KitSource:
    """Where a kit's sounds are.

    Attributes:
        kind: "soundfont" (rendered by FluidSynth) or "hydrogen" (a Hydrogen drumkit folder,
            rendered by `hydrogen.render_midi`).
        path: the SoundFont file or the drumkit folder.
    """

    kind: Literal["soundfont", "hydrogen"]
    path: str


def hydrogen_folder(kit: str) -> str | None:
    """The drumkit folder of a Hydrogen kit, None for any other kit.

    A Hydrogen kit is ``hydrogen:NAME`` (folder NAME in `HYDROGEN_DRUMKITS`, whether installed
    or not) or the path of an existing folder; `kit_source` checks that it holds a drumkit.
    """
    if kit.startswith(HYDROGEN_PREFIX):
        return os.path.join(HYDROGEN_DRUMKITS, kit[len(HYDROGEN_PREFIX) :])
    if kit in KITS or kit.lower().endswith((".sf2", ".sf3")) or not os.path.isdir(kit):
        return None
    return kit


def drums_only(kit: str) -> bool:
    """Whether a kit has no piano: `DRUM_ONLY_KITS` and every Hydrogen kit."""
    return kit in DRUM_ONLY_KITS or hydrogen_folder(kit) is not None


def _check_installed_drumkit(name: str) -> None:
    """Raises unless ``name`` is a drumkit folder in `HYDROGEN_DRUMKITS`."""
    if not name or os.path.basename(name) != name:
        raise ValueError(f"hydrogen:{name}: NAME must be a folder name in {HYDROGEN_DRUMKITS}")
    folder = os.path.join(HYDROGEN_DRUMKITS, name)
    if not os.path.isdir(folder):
        installed = os.listdir(HYDROGEN_DRUMKITS) if os.path.isdir(HYDROGEN_DRUMKITS) else []
        fix = (
            f"installed ones: {', '.join(sorted(installed))}"
            if installed
            else "sudo apt-get install hydrogen-drumkits"
        )
        raise FileNotFoundError(f"Hydrogen drumkit {name!r} not found at {folder}; {fix}")


def kit_source(kit: str) -> KitSource:
    """Checks a kit and returns where its sounds are.

    Args:
        kit: a name in `KITS`, a path to a ``.sf2``/``.sf3`` file, ``hydrogen:NAME`` (a drumkit
            in `HYDROGEN_DRUMKITS`) or the path of a Hydrogen drumkit folder (with
            ``drumkit.xml``), whose ``drumkit.xml`` is read here.

    Raises:
        FileNotFoundError: the kit is not installed or its file is missing; the message names
            the path and the fix.
        ValueError: ``kit`` is none of the above, or its ``drumkit.xml`` is unreadable.
    """
    folder = hydrogen_folder(kit)
    if folder is not None:
        if kit.startswith(HYDROGEN_PREFIX):
            _check_installed_drumkit(kit[len(HYDROGEN_PREFIX) :])
        hydrogen.load_drumkit(folder)
        return KitSource("hydrogen", folder)
    if kit in KITS:
        path = KITS[kit]
        fix = _MISSING_KIT_FIX[kit]
    elif kit.lower().endswith((".sf2", ".sf3")):
        path = kit
        fix = "pass the path of an existing .sf2 or .sf3 file"
    else:
        raise ValueError(
            f"unknown kit {kit!r}: use one of {sorted(KITS)}, a path to a .sf2/.sf3 file, "
            f"hydrogen:NAME (a drumkit in {HYDROGEN_DRUMKITS}) or a Hydrogen drumkit folder"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SoundFont for kit {kit!r} not found at {path}; {fix}")
    return KitSource("soundfont", path)


def gm_order_warning(kit: str) -> str | None:
    """A warning for a Hydrogen kit whose kick, snare or hi-hat note plays an instrument not
    named like one (`hydrogen.gm_order_doubts`), else None; SoundFonts are in GM order."""
    folder = hydrogen_folder(kit)
    if folder is None:
        return None
    doubts = hydrogen.gm_order_doubts(hydrogen.load_drumkit(folder))
    if not doubts:
        return None
    return (
        f"kit {kit}: {'; '.join(doubts)}. Is it in General MIDI order? The labels "
        "come from the notes; a kit that is not needs a layout (hydrogen.GM_LAYOUTS)"
    )


def remap_drum_notes(
    midi: pretty_midi.PrettyMIDI, drum_remap: Mapping[int, int]
) -> pretty_midi.PrettyMIDI:
    """Returns a copy of ``midi`` whose drum notes are re-mapped by ``drum_remap``.

    Only instruments with ``is_drum`` change; ``midi`` itself is left as it is. Used to give the
    Groove MIDI Dataset's Roland TD-11 notes their GM sound for rendering only (22 -> 42 and
    26 -> 46 are silent in both kits, 58 is a GM vibraslap -> 43), while the annotations keep
    the original notes.
    """
    remapped = copy.deepcopy(midi)
    for instrument in remapped.instruments:
        if instrument.is_drum:
            for note in instrument.notes:
                note.pitch = drum_remap.get(note.pitch, note.pitch)
    return remapped


def _import_fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError) as error:  # OSError: libfluidsynth found but unloadable.
        raise ImportError(f"{_FIX_FLUIDSYNTH} ({error})") from error
    write_float = fluidsynth.cfunc(
        "fluid_synth_write_float",
        ctypes.c_int,
        ("synth", ctypes.c_void_p, 1),
        ("len", ctypes.c_int, 1),
        ("lout", ctypes.c_void_p, 1),
        ("loff", ctypes.c_int, 1),
        ("lincr", ctypes.c_int, 1),
        ("rout", ctypes.c_void_p, 1),
        ("roff", ctypes.c_int, 1),
        ("rincr", ctypes.c_int, 1),
    )
    if write_float is None:
        raise ImportError(f"libfluidsynth lacks fluid_synth_write_float; {_FIX_FLUIDSYNTH}")
    return fluidsynth, write_float


def _channels(instruments: Sequence[pretty_midi.Instrument]) -> list[int]:
    """One MIDI channel per instrument; drum kits on channels 9, 25, ... (GM drum channels)."""
    drum = iter(range(9, 256, 16))
    melodic = iter(c for c in range(256) if c % 16 != 9)
    try:
        return [next(drum) if inst.is_drum else next(melodic) for inst in instruments]
    except StopIteration:
        raise ValueError("too many instruments to render (more than 256 channels)") from None


def _block(time_s: float, sample_rate: int) -> int:
    return max(0, round(time_s * sample_rate / _BLOCK)) * _BLOCK


def _events(
    instruments: Sequence[pretty_midi.Instrument], channels: Sequence[int], sample_rate: int
) -> list[tuple[int, int, str, int, int, int]]:
    """Synth calls as (sample, order, kind, channel, a, b), sorted for rendering.

    At equal samples a note-off precedes control changes and note-ons, so a re-struck note
    restarts; a note whose off would round onto its own on is held for one block instead.
    """
    events = []
    for inst, chan in zip(instruments, channels, strict=True):
        for note in inst.notes:
            on = _block(note.start, sample_rate)
            off = max(_block(note.end, sample_rate), on + _BLOCK)
            events.append((on, 2, "on", chan, note.pitch, note.velocity))
            events.append((off, 0, "off", chan, note.pitch, 0))
        for cc in inst.control_changes:
            events.append((_block(cc.time, sample_rate), 1, "cc", chan, cc.number, cc.value))
        for bend in inst.pitch_bends:
            events.append((_block(bend.time, sample_rate), 1, "bend", chan, bend.pitch, 0))
    events.sort(key=lambda event: event[:2])
    return events


def render_midi(
    midi: pretty_midi.PrettyMIDI,
    kit: str,
    sample_rate: int = 44100,
    drum_remap: Mapping[int, int] | None = None,
    *,
    tail_s: float = 1.0,
) -> np.ndarray:
    """Renders a MIDI performance to mono audio with a sampled-instrument kit.

    Args:
        midi: the performance; not modified.
        kit: any kit `kit_source` accepts. A Hydrogen kit renders the drum instruments only.
        sample_rate: output sample rate in Hz.
        drum_remap: note number re-map applied to drum instruments only (on a copy), e.g.
            ``{22: 42, 26: 46, 58: 43}`` for the Groove MIDI Dataset.
        tail_s: seconds rendered after the last note ends, so releases are not cut.

    Returns:
        float32 array of shape ``(samples,)``, peak-normalised to 1 (all zeros if silent).
        An onset sounds at its MIDI time + ``render_latency(kit, kind)``, give or take half a
        64-sample block with a SoundFont (see the module docstring), exactly with a Hydrogen kit.

    Raises:
        ImportError: pyfluidsynth or libfluidsynth is missing (SoundFont kits).
        FileNotFoundError: the kit's SoundFont, drumkit or a sample it plays is missing.
        ValueError: an unknown kit, or a Hydrogen kit that cannot play the MIDI
            (`hydrogen.render_midi`).
    """
    if drum_remap:
        midi = remap_drum_notes(midi, drum_remap)
    source = kit_source(kit)
    if source.kind == "hydrogen":
        return hydrogen.render_midi(midi, source.path, sample_rate, tail_s=tail_s)
    fluidsynth, write_float = _import_fluidsynth()
    path = source.path
    instruments = midi.instruments
    channels = _channels(instruments)
    events = _events(instruments, channels, sample_rate)
    n_samples = max(
        int(np.ceil((midi.get_end_time() + tail_s) * sample_rate)),
        events[-1][0] + _BLOCK if events else 0,
    )
    stereo = np.zeros((n_samples, 2), dtype=np.float32)
    buffer = stereo.ctypes.data

    synth = fluidsynth.Synth(
        samplerate=float(sample_rate),
        **{"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.polyphony": 1024},
    )
    try:
        sfid = synth.sfload(path)
        if sfid < 0:
            raise RuntimeError(f"libfluidsynth could not load the SoundFont {path}")
        for inst, chan in zip(instruments, channels, strict=True):
            bank = _DRUM_BANK if inst.is_drum else 0
            # Kits without this program fall back to the standard kit / piano, as GM players do;
            # a drum-only SoundFont (one preset in bank 0, e.g. the AVL kits) plays its kit.
            choices = ((bank, inst.program), (bank, 0), (0, 0))
            choice = next((c for c in choices if synth.sfpreset_name(sfid, *c) is not None), None)
            if choice is None or synth.program_select(chan, sfid, *choice) != 0:
                raise RuntimeError(f"the SoundFont {path} has no preset for {inst.name or chan}")

        position = 0

        def render_until(stop: int) -> None:
            nonlocal position
            if stop > position:
                n, left = stop - position, 2 * position  # left/right interleave in `stereo`
                status = write_float(synth.synth, n, buffer, left, 2, buffer, left + 1, 2)
                if status != 0:
                    raise RuntimeError("libfluidsynth failed to render audio")
                position = stop

        for sample, _, kind, chan, a, b in events:
            render_until(sample)
            if kind == "on":
                synth.noteon(chan, a, b)
            elif kind == "off":
                synth.noteoff(chan, a)
            elif kind == "cc":
                synth.cc(chan, a, b)
            else:
                synth.pitch_bend(chan, a)
        render_until(n_samples)
    finally:
        synth.delete()

    mono = stereo.mean(axis=1, dtype=np.float32)
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak > 0.0:
        mono /= peak
    return mono


def onset_sample(audio: np.ndarray, fraction: float = ONSET_FRACTION) -> int:
    """First sample whose magnitude reaches ``fraction`` of the peak magnitude (-1 if silent)."""
    magnitude = np.abs(audio)
    peak = magnitude.max(initial=0.0)
    if peak <= 0.0:
        return -1
    return int(np.argmax(magnitude >= fraction * peak))


def measure_render_latency(
    kit: str,
    note: int,
    is_drum: bool = True,
    program: int = 0,
    sample_rate: int = 44100,
    *,
    velocity: int = 100,
) -> float:
    """Seconds from a note's MIDI start to its rendered onset (`onset_sample` criterion).

    Renders the note alone, starting on the block boundary nearest 0.5 s so that the value is
    the instrument's own attack, free of block rounding.
    """
    audio, start = _render_note_alone(kit, note, is_drum, program, sample_rate, velocity)
    onset = onset_sample(audio)
    if onset < 0:
        raise ValueError(f"note {note} (drum={is_drum}, program={program}) is silent in {kit!r}")
    return onset / sample_rate - start


def _render_note_alone(
    kit: str, note: int, is_drum: bool, program: int, sample_rate: int, velocity: int
) -> tuple[np.ndarray, float]:
    """`(audio, start seconds)`: one note rendered alone, starting on the block boundary nearest
    0.5 s (so its onset is the instrument's own attack, free of block rounding)."""
    start = _block(0.5, sample_rate) / sample_rate
    midi = pretty_midi.PrettyMIDI()
    instrument = pretty_midi.Instrument(program=program, is_drum=is_drum)
    duration = 0.1 if is_drum else 0.5
    instrument.notes.append(pretty_midi.Note(velocity, note, start, start + duration))
    midi.instruments.append(instrument)
    return render_midi(midi, kit, sample_rate, tail_s=0.5), start


SIMILARITY_NOTES: dict[str, int] = {"KD": 36, "SD": 38, "HH": 42}
"""The note that stands for each label class in `kit_similarity`."""


def _single_hit(kit: str, note: int, sample_rate: int, velocity: int) -> np.ndarray:
    """The render of one drum note alone, from its onset (`onset_sample`) on."""
    audio, _ = _render_note_alone(kit, note, True, 0, sample_rate, velocity)
    onset = onset_sample(audio)
    if onset < 0:
        raise ValueError(f"drum note {note} is silent in {kit!r}: nothing to compare")
    return audio[onset:]


def peak_correlation(a: np.ndarray, b: np.ndarray, length: int, max_lag: int) -> float:
    """max over lags |l| <= `max_lag` of |<a[l:l+n], b[:n]>| / (|a[l:l+n]| |b[:n]|).

    `a` and `b` start at their onsets; `n` is `length` samples (or less where a signal ends),
    and `a` is read from `max_lag` samples before its start (zeros there), so that two renders
    whose onsets the 10 % criterion placed a little differently still line up. 1.0 means one
    hit is the other, scaled; 0.0 when either is silent.
    """
    b = np.asarray(b, np.float64)[:length]
    n = len(b)
    a = np.concatenate([np.zeros(max_lag), np.asarray(a, np.float64), np.zeros(2 * max_lag + n)])
    a = a[: n + 2 * max_lag]
    dots = np.correlate(a, b, mode="valid")  # one per lag, -max_lag .. max_lag
    energy = np.concatenate([[0.0], np.cumsum(a * a)])
    norms = np.sqrt(energy[n:] - energy[:-n]) * np.linalg.norm(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(norms > 0.0, np.abs(dots) / norms, 0.0)
    return float(min(ratios.max(initial=0.0), 1.0))


def kit_hits(kit: str, sample_rate: int = 32000, velocity: int = 100) -> dict[str, np.ndarray]:
    """Class -> a single hit of its `SIMILARITY_NOTES` note, rendered alone, from its onset."""
    return {
        kind: _single_hit(kit, note, sample_rate, velocity)
        for kind, note in SIMILARITY_NOTES.items()
    }


def hits_similarity(
    hits_a: Mapping[str, np.ndarray],
    hits_b: Mapping[str, np.ndarray],
    sample_rate: int = 32000,
    *,
    seconds: float = 0.12,
    max_lag_seconds: float = 0.002,
) -> dict[str, float]:
    """`peak_correlation` of two `kit_hits` results, class by class."""
    length = round(seconds * sample_rate)
    lag = round(max_lag_seconds * sample_rate)
    return {kind: peak_correlation(hits_a[kind], hits_b[kind], length, lag) for kind in hits_a}


def kit_similarity(kit_a: str, kit_b: str, sample_rate: int = 32000, **options) -> dict[str, float]:
    """How alike two kits' kick, snare and hi-hat are: is one kit the other's samples?

    For each class of `SIMILARITY_NOTES`, a single hit at velocity 100 is rendered with each
    kit (`kit_hits`) and the first 120 ms after their onsets are compared by
    `peak_correlation` (lags up to 2 ms; `hits_similarity`'s `options`). Waveforms, not
    spectra: two kits score near 1.0 only when they play the same recording (one sample at two
    levels gives 1.0), while two recordings of one drum, or two different drums, score far
    lower. Pick unseen test kits with it: a test kit that scores near 1.0 against a training
    kit is not unseen.

    Returns:
        Class -> peak correlation in [0, 1].
    """
    hits_a = kit_hits(kit_a, sample_rate)
    return hits_similarity(hits_a, kit_hits(kit_b, sample_rate), sample_rate, **options)


def render_latency(
    kit: str, kind: Literal["KD", "SD", "HH", "piano"], sample_rate: int = LATENCY_SAMPLE_RATE
) -> float:
    """Render latency in seconds to ADD to MIDI note times to get label times.

    Args:
        kit: any kit `kit_source` accepts.
        kind: label class, ``"KD"``, ``"SD"``, ``"HH"`` or ``"piano"`` (see `LATENCY_PROBES`).
        sample_rate: the rate the audio is rendered at. `RENDER_LATENCY_S` answers for the
            named kits at `LATENCY_SAMPLE_RATE`; anything else is measured once and cached.
    """
    if kind not in LATENCY_PROBES:
        raise KeyError(f"unknown kind {kind!r}; use one of {sorted(LATENCY_PROBES)}")
    if kind == "piano" and drums_only(kit):
        raise ValueError(f"kit {kit!r} has drums only; render piano with {sorted(_PIANO_KITS)}")
    if kit in RENDER_LATENCY_S and sample_rate == LATENCY_SAMPLE_RATE:
        return RENDER_LATENCY_S[kit][kind]
    return _measured_latency(kit, kind, sample_rate)


@functools.cache
def _measured_latency(kit: str, kind: str, sample_rate: int) -> float:
    return measure_render_latency(kit, *LATENCY_PROBES[kind], sample_rate)


@dataclasses.dataclass(frozen=True)
class RenderJob:
    """One file for `render_files`: MIDI in, WAV out, with a kit and an optional drum re-map."""

    midi_path: str
    wav_path: str
    kit: str = "fluidr3"
    drum_remap: Mapping[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class RenderResult:
    """Outcome of one `RenderJob`.

    Attributes:
        job: the job.
        status: "rendered", "skipped" (the WAV existed) or "failed".
        error: for a failed job, the MIDI file's path, the exception type and its message.
    """

    job: RenderJob
    status: Literal["rendered", "skipped", "failed"]
    error: str | None = None


def _write_wav_atomically(path: str, audio: np.ndarray, sample_rate: int, subtype: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    os.close(handle)
    try:
        soundfile.write(temp_path, audio, sample_rate, subtype=subtype, format="WAV")
        os.replace(temp_path, path)
    except BaseException:
        os.remove(temp_path)
        raise


def _run_job(job: RenderJob, sample_rate: int, subtype: str) -> RenderResult:
    try:
        midi = pretty_midi.PrettyMIDI(job.midi_path)
        audio = render_midi(midi, job.kit, sample_rate, job.drum_remap)
        _write_wav_atomically(job.wav_path, audio, sample_rate, subtype)
    except Exception as error:  # One bad file must not stop a long batch; it is reported.
        return RenderResult(job, "failed", f"{job.midi_path}: {type(error).__name__}: {error}")
    return RenderResult(job, "rendered")


def _run_indexed(item: tuple[int, RenderJob, functools.partial]) -> tuple[int, RenderResult]:
    index, job, run = item
    return index, run(job)


def _completed(
    pending: list[tuple[int, RenderJob]], run: functools.partial, workers: int
) -> Iterator[tuple[int, RenderResult]]:
    """(job index, result) pairs as jobs finish, in worker processes when that pays."""
    work = [(index, job, run) for index, job in pending]
    if workers <= 1 or len(work) <= 1:
        yield from map(_run_indexed, work)
        return
    # spawn, not fork: the caller may hold threads (TensorFlow) that fork would break.
    with multiprocessing.get_context("spawn").Pool(min(workers, len(work))) as pool:
        yield from pool.imap_unordered(_run_indexed, work)


def render_files(
    jobs: Sequence[RenderJob],
    workers: int = 2,
    sample_rate: int = 44100,
    subtype: str = "PCM_16",
    progress: bool = True,
) -> list[RenderResult]:
    """Renders MIDI files to WAV files in parallel, resumably.

    Each output is written to a temporary file in its folder and renamed into place, so a WAV
    that exists is complete; existing outputs are skipped, so a rerun resumes. A file that
    fails is reported in its result and the others go on.

    Args:
        jobs: the files to render.
        workers: processes; 1 renders in this process.
        sample_rate: output sample rate in Hz.
        subtype: soundfile WAV subtype, e.g. "PCM_16" or "FLOAT".
        progress: show a tqdm progress bar.

    Returns:
        One `RenderResult` per job, in the order of ``jobs``.
    """
    results = [RenderResult(job, "skipped") for job in jobs]
    pending = [(i, job) for i, job in enumerate(jobs) if not os.path.exists(job.wav_path)]
    run = functools.partial(_run_job, sample_rate=sample_rate, subtype=subtype)
    failed = 0
    with tqdm(
        total=len(jobs), initial=len(jobs) - len(pending), desc="render", disable=not progress
    ) as bar:
        for index, result in _completed(pending, run, workers):
            results[index] = result
            failed += result.status == "failed"
            bar.set_postfix(failed=failed, refresh=False)
            bar.update()
    return results


def _print_latency_table(sample_rate: int = 44100) -> None:
    """Prints the module docstring's latency tables, measured afresh."""
    others = {"SD rim 37": (37, True, 0), "HH pedal 44": (44, True, 0), "HH open 46": (46, True, 0)}
    print(f"render latency at {sample_rate} Hz, onset at {ONSET_FRACTION:.0%} of peak")
    for probes in (LATENCY_PROBES, others):
        print(f"{'kit':<10}" + "".join(f"{kind:>13}" for kind in probes))
        for kit in KITS:
            cells = [
                f"{'(no piano)':>13}"
                if kind == "piano" and kit in DRUM_ONLY_KITS
                else f"{1000 * measure_render_latency(kit, *probe, sample_rate):+10.2f} ms"
                for kind, probe in probes.items()
            ]
            print(f"{kit:<10}" + "".join(cells))


if __name__ == "__main__":
    _print_latency_table()
