"""Drum MIDI -> audio with Hydrogen drumkits (folders of recorded samples), without Hydrogen.

A Hydrogen drumkit is a folder holding ``drumkit.xml`` and its sample files (WAV, FLAC, AIFF);
Debian's ``hydrogen-drumkits`` installs a dozen in /usr/share/hydrogen/data/drumkits. Every
format those kits are written in is read (`load_drumkit`), with or without the XML namespace:
an instrument (``<instrument>``: ``<name>``, ``<volume>``, optional ``<gain>``,
``<midiOutNote>`` and ``<muteGroup>``) holds its samples as one ``<filename>`` (the oldest
single-sample kits), as ``<layer>`` elements, or as ``<instrumentComponent>`` elements of layers
(Hydrogen 0.9.7 and later, where every component sounds at once). A layer (``<filename>``,
``<min>``, ``<max>``, ``<gain>``, ``<pitch>``) plays for velocities in [min, max] (velocity/127).
Instruments without a sample (the unnamed placeholders many kits carry) are left out.

Notes. A kit whose instruments carry different ``<midiOutNote>`` values (ForzeeStereo) is played
by those notes, the first instrument winning a note two of them share (Hydrogen's fixed MIDI
mapping). Otherwise note 36 + the instrument's position in the file plays it: Hydrogen's default
MIDI input, which indexes the instrument list, not the ``<id>`` (ColomboAcousticDrumkit lists id
10, its side stick, second, where note 37 finds it). A kit that never set the notes writes 60
(middle C) for every instrument (Audiophob, The Black Pearl 1.0); one shared note is taken as no
mapping at all. A note of a label class (`readers.GM_DRUM_TO_CLASS`) that the kit has no
instrument for still sounds, since its label exists: it plays the kit's instrument for the first
of the class's `CLASS_NOTES` the kit has (ForzeeStereo's kick is note 35, so 36 plays it too).
Other notes without an instrument (toms, cymbals, percussion the kit lacks) are skipped.

Not every kit is laid out in General MIDI's order. Of Debian's kits, notes 36, 38 and 42 play a
kick, a snare and a closed hi-hat in Audiophob, ColomboAcousticDrumkit, ForzeeStereo,
Millo-Drums_v.1, Millo_MultiLayered2, Millo_MultiLayered3 (but its 38 is a roll: four strokes a
note), The Black Pearl 1.0 and rumpf_kit_z01_h2; not in BJA_Pacific (38 a closed hi-hat, 42 a
crash), ElectricEmpireKit (36 to 47 are kicks), HardElectro1 (38 a kick) or VariBreaks (38 a
kick, 42 a tom), and Gimme A Hand and circAfrique are hand percussion. Rendered by position,
those four would label a hi-hat SD, so `GM_LAYOUTS` lays them out by instrument name instead:
a kit whose ``<name>`` is a key there is played by that table alone (a name it lists that the
kit lacks is an error), with the class stand-ins above for the notes it leaves out.

Rendering (`render_midi`), Hydrogen's sampler reduced to what a drum render needs: every drum
note-on plays, from its first sample, the layer its velocity picks (the first whose range holds
it, else the nearest, as Hydrogen does for velocities in a gap between layers), in each
component, scaled by velocity/127 x layer gain x component gain x instrument volume x instrument
gain. It is one-shot: note-offs are ignored, as Hydrogen ignores them for drums. A note of an
instrument in a mute group (``<muteGroup>`` >= 0, e.g. the closed hi-hat with the open one)
cuts the still-sounding voices of the group's other instruments, which fade out linearly over
`CHOKE_FADE_S` so the cut does not click. Stereo samples are averaged to mono; a sample at
another rate, or with a ``<pitch>`` in semitones, is resampled with librosa (soxr). Left out,
for a dry, deterministic render whose onsets are the samples' own: pan, the envelope (ADSR; every
Debian kit has Attack 0), filters, random pitch, and round-robin or random layer choice.

Timing. A note is mixed in at the exact sample ``round(time x rate)``: there is no block grid as
in FluidSynth, so the render latency of a class (`render.render_latency`, measured on demand) is
just its sample's own attack.

Loaded kits, and samples loaded and resampled per rate and pitch, are cached in the process: a
render worker reads each sample file once. A sample file is read when a note first plays it, so
a kit whose unused placeholder instruments name missing files (Millo_MultiLayered2) still
renders. A missing sample that a note of a label class plays raises an error naming it (the
label would be a hit nobody hears); one that another note plays is silence, as in Hydrogen, with
a warning once per file (Millo_MultiLayered2's cowbell and placeholders, which GMD plays).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import shutil
import tempfile
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import librosa
import numpy as np
import pretty_midi
import soundfile

from loco_tf.pipelines.audio import mix_to_mono
from loco_tf.pipelines.readers import GM_DRUM_TO_CLASS

DRUMKIT_FILE = "drumkit.xml"


class KitError(ValueError):
    """A Hydrogen drumkit that cannot be used as asked; the message names the kit or file."""


CHOKE_FADE_S = 0.005
"""Seconds over which a voice cut by its mute group fades to silence."""

CLASS_NOTES: dict[str, tuple[int, ...]] = {
    "KD": (36, 35),  # bass drum 1, acoustic bass drum
    "SD": (38, 40, 37),  # acoustic snare, electric snare, side stick
    "HH": (42, 44, 46),  # closed, pedal, open hi-hat
}
"""Per label class, the notes whose instrument stands in for a class note the kit has no
instrument for, in order of preference; the first is the class's probe note
(`render.LATENCY_PROBES`)."""

# fmt: off
GM_LAYOUTS: dict[str, dict[int, str]] = {
    "BJA_Pacific": {
        36: "BassDrum", 38: "Snare", 40: "Snare Dry",
        42: "Hi Hat Closed", 44: "Hi Hat Free", 46: "Hi Hat Opened",
        41: "Floor Tom", 43: "Floor Tom", 45: "Tom", 47: "Tom", 48: "Tom", 50: "Tom",
        49: "Crash Left", 57: "Crash Right", 52: "Crash Right", 55: "Crash Left",
        51: "Ride", 59: "Ride 2", 53: "Ride Bell",
    },
    "VariBreaks": {
        36: "VariBreaks Kick 1", 35: "VariBreaks Kick 2", 38: "VariBreaks Snare 1",
        40: "VariBreaks Snare 2", 37: "VariBreaks Snare 3",
        42: "VariBreaks Hat 1 Cl", 44: "VariBreaks Hat 1 Pd", 46: "VariBreaks Hat 1 Op",
        41: "VariBreaks Tom Low", 43: "VariBreaks Tom Low", 45: "VariBreaks Tom Mid",
        47: "VariBreaks Tom Mid", 48: "VariBreaks Tom Hi", 50: "VariBreaks Tom Hi",
    },
    "ElectricEmpireKit": {
        36: "Kick Hard 1", 35: "Kick Low 1", 38: "Snare 1", 40: "Snare 2", 37: "Click",
        39: "Clap", 42: "Hat Closed Bs", 44: "Hat Closed Dirty", 46: "Hat Op Dirty",
        41: "Drum 1", 43: "Drum 1", 45: "Drum 2", 47: "Drum 2", 48: "Conga 1", 50: "Conga 2",
    },
    "HardElectro1": {
        36: "Kick 1", 35: "Kick 2", 38: "Snare", 39: "Clap 1", 40: "Snare",
        42: "Closed HH 1", 44: "Closed HH 2", 46: "Open HH",
    },
}
# fmt: on
"""Drumkit ``<name>`` -> General MIDI note -> instrument ``<name>``, for Debian's drumkits whose
instruments are not in GM order (module docstring). Each plays its own kick, snare and hi-hats
on the class notes (`CLASS_NOTES`), toms and cymbals on theirs where it has them (a kit without
cymbals leaves their notes silent); a hi-hat mute group is the kit's own (VariBreaks has one)."""

_NO_MUTE_GROUP = -1
_DEFAULT_NOTE_OFFSET = 36  # Hydrogen's MIDI input: note 36 plays the first instrument.


@dataclasses.dataclass(frozen=True)
class Layer:
    """One sample of an instrument component.

    Attributes:
        path: the sample file.
        min_velocity: lowest velocity (velocity/127, in [0, 1]) that plays this layer.
        max_velocity: highest velocity that plays it.
        gain: amplitude factor.
        pitch: shift in semitones (the sample is played faster for a positive pitch).
    """

    path: str
    min_velocity: float = 0.0
    max_velocity: float = 1.0
    gain: float = 1.0
    pitch: float = 0.0


@dataclasses.dataclass(frozen=True)
class Component:
    """Layers that split the velocity range; every component of an instrument sounds at once.

    Attributes:
        layers: in the file's order (the first matching one plays).
        gain: amplitude factor: the component's gain times its drumkit component's volume.
    """

    layers: tuple[Layer, ...]
    gain: float = 1.0


@dataclasses.dataclass(frozen=True)
class Instrument:
    """One drum of a kit.

    Attributes:
        name: ``<name>``, for messages.
        components: at least one, each with at least one layer.
        volume: ``<volume>``, amplitude factor.
        gain: ``<gain>``, amplitude factor.
        mute_group: instruments of one group >= 0 cut each other; -1 for none.
        midi_out_note: ``<midiOutNote>`` as written, None when absent.
    """

    name: str
    components: tuple[Component, ...]
    volume: float = 1.0
    gain: float = 1.0
    mute_group: int = _NO_MUTE_GROUP
    midi_out_note: int | None = None


@dataclasses.dataclass(frozen=True)
class Drumkit:
    """A parsed Hydrogen drumkit.

    Attributes:
        name: the kit's ``<name>``.
        folder: the folder of its ``drumkit.xml``.
        instruments: the instruments with a sample, in the file's order.
        notes: MIDI note -> the instrument it plays (see the module docstring).
    """

    name: str
    folder: str
    instruments: tuple[Instrument, ...]
    notes: Mapping[int, Instrument]


def drumkit_file(folder: str) -> str:
    """Path of a drumkit folder's ``drumkit.xml``.

    Raises:
        FileNotFoundError: the folder holds no ``drumkit.xml``; the message names the path.
    """
    path = os.path.join(folder, DRUMKIT_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no Hydrogen drumkit here: {path} does not exist")
    return path


def write_drumkit(
    folder: str, xml: str, samples: Mapping[str, str], *, link: bool = False, drawn_by: str = ""
) -> None:
    """Writes a drumkit folder: ``drumkit.xml`` and its samples, or keeps the same kit there.

    The kit is written to a temporary folder beside ``folder`` and renamed into place, so an
    interrupted write leaves no half kit.

    Args:
        folder: the kit's folder.
        xml: the text of its ``drumkit.xml``.
        samples: file name in the kit (may hold ``/``) -> the file to copy or link there.
        link: symbolic links to the files instead of copies.
        drawn_by: what made the kit (e.g. ``--seed 0``), for the error below.

    Raises:
        FileExistsError: ``folder`` holds something else; the message names it.
    """
    existing = os.path.join(folder, DRUMKIT_FILE)
    if os.path.exists(folder):
        if os.path.isfile(existing):
            with open(existing, encoding="utf-8") as file:
                if file.read() == xml:
                    return
        raise FileExistsError(
            f"{folder} holds another kit than {drawn_by or 'this one'}; "
            "remove it or choose another --out"
        )
    parent = os.path.dirname(os.path.abspath(folder))
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.", dir=parent)
    try:
        for name, source in samples.items():
            target = os.path.join(staging, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if link:
                os.symlink(os.path.abspath(source), target)
            else:
                shutil.copyfile(source, target)
        with open(os.path.join(staging, DRUMKIT_FILE), "w", encoding="utf-8") as file:
            file.write(xml)
        os.chmod(staging, 0o755)  # mkdtemp made it private
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_drumkit(folder: str) -> Drumkit:
    """Reads a drumkit folder (cached per folder in this process).

    Raises:
        FileNotFoundError: no ``drumkit.xml`` in ``folder``.
        ValueError: ``drumkit.xml`` is not XML or not a drumkit; the message names the file.
    """
    return _load_drumkit(os.path.abspath(folder))


@functools.cache
def _load_drumkit(folder: str) -> Drumkit:
    path = drumkit_file(folder)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise KitError(f"{path} is not readable XML: {error}") from None
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]  # Newer kits put everything in a namespace.
    instrument_list = root.find("instrumentList")
    if root.tag != "drumkit_info" or instrument_list is None:
        raise KitError(f"{path} is not a Hydrogen drumkit (no drumkit_info/instrumentList)")
    component_volumes = {
        component.findtext("id", "0").strip(): _number(component, "volume", 1.0, path)
        for component in root.iterfind("componentList/drumkitComponent")
    }
    by_position = [
        _instrument(element, folder, component_volumes, path)
        for element in instrument_list.iterfind("instrument")
    ]
    instruments = tuple(instrument for instrument in by_position if instrument is not None)
    name = root.findtext("name", os.path.basename(folder)).strip()
    return Drumkit(
        name=name,
        folder=folder,
        instruments=instruments,
        notes=_note_map(by_position, GM_LAYOUTS.get(name), path),
    )


def _number(element: ET.Element, tag: str, default: float, path: str) -> float:
    text = element.findtext(tag)
    if text is None or not text.strip():
        return default
    try:
        return float(text)
    except ValueError:
        raise KitError(f"{path}: <{tag}> is not a number: {text!r}") from None


def _layer(element: ET.Element, folder: str, path: str) -> Layer | None:
    filename = (element.findtext("filename") or "").strip()
    if not filename:
        return None
    return Layer(
        path=os.path.join(folder, filename),
        min_velocity=_number(element, "min", 0.0, path),
        max_velocity=_number(element, "max", 1.0, path),
        gain=_number(element, "gain", 1.0, path),
        pitch=_number(element, "pitch", 0.0, path),
    )


def _components(
    element: ET.Element, folder: str, component_volumes: Mapping[str, float], path: str
) -> tuple[Component, ...]:
    """The instrument's components, in any of the three formats (module docstring)."""
    components = []
    for component in element.iterfind("instrumentComponent"):
        layers = tuple(filter(None, (_layer(e, folder, path) for e in component.iter("layer"))))
        if layers:
            volume = component_volumes.get(component.findtext("component_id", "0").strip(), 1.0)
            gain = _number(component, "gain", 1.0, path) * volume
            components.append(Component(layers, gain))
    layers = tuple(filter(None, (_layer(e, folder, path) for e in element.iterfind("layer"))))
    if layers:
        components.append(Component(layers))
    single = _layer(element, folder, path)  # <filename> right in the instrument
    if single is not None and not components:
        components.append(Component((single,)))
    return tuple(components)


def _instrument(
    element: ET.Element, folder: str, component_volumes: Mapping[str, float], path: str
) -> Instrument | None:
    components = _components(element, folder, component_volumes, path)
    if not components:
        return None
    note = _number(element, "midiOutNote", math.nan, path)
    return Instrument(
        name=(element.findtext("name") or "").strip(),
        components=components,
        volume=_number(element, "volume", 1.0, path),
        gain=_number(element, "gain", 1.0, path),
        mute_group=int(_number(element, "muteGroup", _NO_MUTE_GROUP, path)),
        midi_out_note=None if math.isnan(note) else int(note),
    )


def _note_map(
    by_position: list[Instrument | None], layout: Mapping[int, str] | None, path: str
) -> dict[int, Instrument]:
    """MIDI note -> instrument; ``by_position`` holds None where an instrument has no sample,
    ``layout`` is the kit's `GM_LAYOUTS` entry if it has one."""
    instruments = [instrument for instrument in by_position if instrument is not None]
    if layout is not None:
        by_name = {instrument.name: instrument for instrument in instruments}
        missing = sorted(set(layout.values()) - set(by_name))
        if missing:
            raise KitError(
                f"{path}: the kit's GM layout (hydrogen.GM_LAYOUTS) plays instruments it has "
                f"no sample for: {', '.join(missing)}"
            )
        return {note: by_name[name] for note, name in layout.items()}
    out_notes = {i.midi_out_note for i in instruments if i.midi_out_note is not None}
    notes: dict[int, Instrument] = {}
    if len(out_notes) > 1:
        for instrument in instruments:
            if instrument.midi_out_note is not None:
                notes.setdefault(instrument.midi_out_note, instrument)
        return notes
    for position, instrument in enumerate(by_position):
        if instrument is not None:
            notes[_DEFAULT_NOTE_OFFSET + position] = instrument
    return notes


def instrument_for(kit: Drumkit, note: int) -> Instrument | None:
    """The instrument a drum note plays: the kit's own, a class stand-in, or None (skipped).

    Raises:
        ValueError: ``note`` belongs to a label class the kit has no instrument for.
    """
    if note in kit.notes:
        return kit.notes[note]
    drum_class = GM_DRUM_TO_CLASS.get(note)
    if drum_class is None:
        return None
    for stand_in in CLASS_NOTES[drum_class]:
        if stand_in in kit.notes:
            return kit.notes[stand_in]
    raise KitError(
        f"Hydrogen kit {kit.name!r} ({kit.folder}) has no instrument for {drum_class} "
        f"(none for notes {', '.join(map(str, CLASS_NOTES[drum_class]))})"
    )


CLASS_WORDS: dict[str, tuple[str, ...]] = {
    "KD": ("kick", "bass", "bd"),
    "SD": ("snare", "sd"),
    "HH": ("hat", "hh"),
}
"""Per label class, words one of which the name of the instrument on its first `CLASS_NOTES`
note has in a kit in GM order (lower case, spaces and hyphens dropped)."""


def gm_order_doubts(kit: Drumkit) -> list[str]:
    """The label classes whose note plays an instrument not named like the class.

    Every Debian kit in GM order (or laid out by `GM_LAYOUTS`) names its kick, snare and hi-hat
    so; hand percussion kits (Gimme A Hand: a cajon on 36, maracas on 38, a bongo on 42) do not.
    A name is only a hint, so this is for a warning: e.g. ``["KD: note 36 plays 'Cajon Thump'"]``.
    """
    doubts = []
    for drum_class, words in CLASS_WORDS.items():
        note = CLASS_NOTES[drum_class][0]
        try:
            instrument = instrument_for(kit, note)
        except KitError:
            continue  # rendering a note of the class says so
        name = instrument.name.lower().replace(" ", "").replace("-", "")
        if not any(word in name for word in words):
            doubts.append(f"{drum_class}: note {note} plays {instrument.name!r}")
    return doubts


def choose_layer(component: Component, velocity: float) -> Layer:
    """The first layer whose range holds ``velocity`` (in [0, 1]), else the nearest one."""
    for layer in component.layers:
        if layer.min_velocity <= velocity <= layer.max_velocity:
            return layer
    return min(
        component.layers,
        key=lambda layer: max(layer.min_velocity - velocity, velocity - layer.max_velocity),
    )


@functools.cache
def _sample(path: str, sample_rate: int, pitch: float) -> np.ndarray:
    """A layer's sample as mono float32 at ``sample_rate``, pitch applied (read-only)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the Hydrogen drumkit's sample {path} is missing")
    try:
        audio, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except RuntimeError as error:  # libsndfile's errors
        raise KitError(f"cannot read the Hydrogen drumkit's sample {path}: {error}") from None
    mono = mix_to_mono(audio)
    # Played 2**(pitch/12) times faster = recorded at that much higher a rate.
    source_rate = file_rate * 2.0 ** (pitch / 12.0)
    if not math.isclose(source_rate, sample_rate):
        mono = librosa.resample(mono, orig_sr=source_rate, target_sr=sample_rate)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    mono.flags.writeable = False
    return mono


@functools.cache
def _warn_missing(path: str) -> None:
    message = f"the Hydrogen drumkit's sample {path} is missing; its notes are silent"
    warnings.warn(message, stacklevel=3)  # where render_midi was called


@dataclasses.dataclass
class _Voice:
    start: int
    audio: np.ndarray
    gain: float
    instrument: Instrument
    cut: int | None = None  # sample where a mute-group note cut it


def render_midi(
    midi: pretty_midi.PrettyMIDI, folder: str, sample_rate: int = 44100, *, tail_s: float = 1.0
) -> np.ndarray:
    """Renders the drum notes of a MIDI performance with a Hydrogen drumkit.

    Args:
        midi: the performance; its non-drum instruments are ignored (a drumkit has no piano).
        folder: the drumkit folder (holding ``drumkit.xml``).
        sample_rate: output sample rate in Hz.
        tail_s: seconds rendered after the MIDI's end time; voices still sounding are cut there.

    Returns:
        float32 array of ``ceil((end time + tail_s) * sample_rate)`` samples, peak-normalised to
        1 (all zeros if silent). A note's sample starts at exactly ``round(time * sample_rate)``.

    Raises:
        FileNotFoundError: no ``drumkit.xml``, or a sample file that a note of a label class
            plays is missing.
        ValueError: unreadable ``drumkit.xml`` or sample; a note of a label class the kit has no
            instrument for (`instrument_for`).
    """
    kit = load_drumkit(folder)
    n_samples = int(np.ceil((midi.get_end_time() + tail_s) * sample_rate))
    notes = sorted(
        (
            (max(0, round(note.start * sample_rate)), note)
            for instrument in midi.instruments
            if instrument.is_drum
            for note in instrument.notes
        ),
        key=lambda started: started[0],
    )
    voices: list[_Voice] = []
    sounding: dict[int, list[_Voice]] = {}  # mute group -> its voices not yet cut
    for start, note in notes:
        instrument = instrument_for(kit, note.pitch)
        if instrument is None or start >= n_samples:
            continue
        group = instrument.mute_group
        if group != _NO_MUTE_GROUP:
            still = []
            for voice in sounding.get(group, []):
                if start >= voice.start + len(voice.audio):
                    continue  # over by itself
                if voice.instrument is instrument:
                    still.append(voice)  # an instrument does not cut its own voices
                else:
                    voice.cut = start
            sounding[group] = still
        velocity = note.velocity / 127
        for component in instrument.components:
            layer = choose_layer(component, velocity)
            gain = velocity * layer.gain * component.gain * instrument.volume * instrument.gain
            try:
                audio = _sample(layer.path, sample_rate, layer.pitch)
            except FileNotFoundError:
                if note.pitch in GM_DRUM_TO_CLASS:
                    raise  # its label would be a hit nobody hears
                _warn_missing(layer.path)
                continue
            voice = _Voice(start, audio, gain, instrument)
            voices.append(voice)
            if group != _NO_MUTE_GROUP:
                sounding[group].append(voice)

    fade_length = max(1, round(CHOKE_FADE_S * sample_rate))
    fade = np.linspace(1.0, 0.0, fade_length + 1, dtype=np.float32)[1:]  # ends on silence
    mono = np.zeros(n_samples, dtype=np.float32)
    for voice in voices:
        length = len(voice.audio)
        if voice.cut is not None:
            length = min(length, voice.cut - voice.start + fade_length)
        length = min(length, n_samples - voice.start)
        part = voice.audio[:length] * np.float32(voice.gain)
        if voice.cut is not None:
            fading = part[voice.cut - voice.start :]
            fading *= fade[: len(fading)]
        mono[voice.start : voice.start + length] += part
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak > 0.0:
        mono /= peak
    return mono
