"""Drum kits mixed from Hydrogen drumkits: each label class's instruments from another kit.

A model trained on whole kits learns each kit's kick, snare and hi-hat together: its studio, its
levels, which snare goes with which hi-hat. Kits it never heard pair them otherwise. `write_mixes`
writes Hydrogen drumkit folders that take the kick (notes 35, 36), the snare and side stick
(37, 38, 40) and the hi-hats (42, 44, 46) from three different kits of a list, and every other
note (toms, cymbals, clap, percussion) from a fourth (the kick's kit when the list has only
three), so one set of recordings gives many pairings.

An instrument keeps everything its source kit plays it with (`hydrogen.instrument_for`: the
kit's own note, its `GM_LAYOUTS` entry or a class stand-in): its components, velocity layers,
gains, pitch and volume, so `hydrogen.render_midi` plays it in the mixed kit exactly as in its
own. Kits keep their own levels: nothing is normalised across sources (training's gain and EQ
augmentation varies the balance further). Optionally (``pitch_semitones``, ``gain_db``) each
role of a mix is also tuned and levelled anew: one pitch shift and one gain, drawn per role and
mix, added to every layer's ``<pitch>`` and multiplied into every instrument's ``<gain>`` of
that role (of the roles in ``vary``: all by default), so one kit's hi-hat gives several hi-hats,
and the classes' balance varies between mixes. Every instrument is written once per note, with
the note as ``<midiOutNote>``; the hi-hats keep their kit's mute group (as group 0), the rest's
kit its groups (shifted past it). (One difference remains: an instrument a kit plays on two of
its own notes becomes two instruments, which cut each other's voices if they are in a mute
group.) The samples are symbolic links to the source kits' files (a mix costs no disk), in the
folder ``samples``.

Mixes are a pure function of (kits, seed, index, pitch_semitones, gain_db, vary): a rerun keeps
the mixes it finds; a folder holding another mix is an error. Each mix is written to a temporary
folder and renamed into place. Pass the folders as kits (``loco prepare drums --train-kits
DIR/mix-00,...``); never mix a kit you test on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from xml.sax.saxutils import escape

import numpy as np

from loco_tf.pipelines.hydrogen import (
    CLASS_NOTES,
    Drumkit,
    Instrument,
    instrument_for,
    load_drumkit,
    write_drumkit,
)
from loco_tf.pipelines.readers import GM_DRUM_TO_CLASS

ROLES = ("KD", "SD", "HH", "rest")
"""What a mix takes from each of its source kits: a label class's notes, or all other notes."""

MIX_PREFIX = "mix"
SAMPLES = "samples"


def draw_mix(kits: Sequence[str], seed: int, index: int) -> dict[str, str]:
    """Role -> source kit of mix ``index``: three different kits for KD, SD and HH, and for the
    rest a fourth where there is one."""
    if len(kits) < 3:
        raise ValueError(f"mixing needs at least three kits, got {len(kits)}")
    order = np.random.default_rng([seed, index]).permutation(len(kits))
    return {role: kits[order[i % len(kits)]] for i, role in enumerate(ROLES)}


def draw_variation(
    seed: int,
    index: int,
    pitch_semitones: float,
    gain_db: float,
    vary: Sequence[str] = ROLES,
) -> dict[str, tuple[float, float]]:
    """Role -> (pitch shift in semitones, gain in dB) of mix ``index``: each uniform in
    [-pitch_semitones, pitch_semitones] and [-gain_db, gain_db], rounded to 0.01, for the roles
    in ``vary``; (0, 0) for the others and when both bounds are 0. Drawn apart from `draw_mix`,
    so the kits a mix takes do not depend on them, and for every role whatever ``vary`` is, so
    a role's draw does not depend on which others vary."""
    draws = np.random.default_rng([seed, index, 1]).uniform(-1.0, 1.0, size=(len(ROLES), 2))
    return {
        role: (
            round(float(pitch) * pitch_semitones, 2) + 0.0,
            round(float(gain) * gain_db, 2) + 0.0,
        )
        if role in vary
        else (0.0, 0.0)
        for role, (pitch, gain) in zip(ROLES, draws, strict=True)
    }


def mix_notes(sources: dict[str, Drumkit]) -> dict[int, tuple[str, Instrument]]:
    """MIDI note -> (role, the instrument its source kit plays for it)."""
    notes: dict[int, tuple[str, Instrument]] = {}
    rest = sources["rest"]
    for note, instrument in rest.notes.items():
        if note not in GM_DRUM_TO_CLASS:
            notes[note] = ("rest", instrument)
    for drum_class, class_notes in CLASS_NOTES.items():
        # The class's notes its kit has; a missing one finds the same stand-in in the mix
        # (`instrument_for`), so it stays the same instrument and does not cut its voices.
        kit = sources[drum_class]
        for note in class_notes:
            if note in kit.notes:
                notes[note] = (drum_class, kit.notes[note])
    return dict(sorted(notes.items()))


def sample_name(role: str, kit: Drumkit, path: str) -> str:
    """Where a mix links a source kit's sample: ``samples/ROLE/`` + its path in the kit (a
    sample outside the kit's folder, ``../x.wav``, goes to ``samples/ROLE/outside/.._x.wav``)."""
    relative = os.path.relpath(path, kit.folder)
    if relative.split(os.sep)[0] == os.pardir:
        relative = os.path.join("outside", relative.replace(os.sep, "_"))
    return os.path.join(SAMPLES, role, relative)


def mix_xml(
    name: str,
    sources: dict[str, Drumkit],
    notes: dict[int, tuple[str, Instrument]],
    variation: dict[str, tuple[float, float]] | None = None,
) -> str:
    """The ``drumkit.xml`` of a mix of ``sources`` (role -> kit) playing ``notes``, each role's
    layers shifted and instruments levelled by ``variation`` (role -> (semitones, dB);
    `draw_variation`), if given."""
    variation = variation or {}
    groups: dict[tuple[str, int], int] = {}  # (role, source mute group) -> the mix's
    for role in ("HH", "rest"):  # the hi-hats' group first: 0
        for _, (source_role, instrument) in notes.items():
            if source_role == role and instrument.mute_group >= 0:
                groups.setdefault((role, instrument.mute_group), len(groups))
    instruments = []
    for note, (role, instrument) in notes.items():
        kit = sources[role]
        group = groups.get((role, instrument.mute_group), -1)
        shift, level = variation.get(role, (0.0, 0.0))
        gain = instrument.gain * 10.0 ** (level / 20.0) if level else instrument.gain
        components = "".join(
            "   <instrumentComponent>\n"
            "    <component_id>0</component_id>\n"
            f"    <gain>{component.gain!r}</gain>\n"
            + "".join(
                "    <layer>\n"
                f"     <filename>{escape(sample_name(role, kit, layer.path))}</filename>\n"
                f"     <min>{layer.min_velocity!r}</min>\n"
                f"     <max>{layer.max_velocity!r}</max>\n"
                f"     <gain>{layer.gain!r}</gain>\n"
                f"     <pitch>{layer.pitch + shift if shift else layer.pitch!r}</pitch>\n"
                "    </layer>\n"
                for layer in component.layers
            )
            + "   </instrumentComponent>\n"
            for component in instrument.components
        )
        instruments.append(
            "  <instrument>\n"
            f"   <id>{len(instruments)}</id>\n"
            f"   <name>{escape(f'{instrument.name} ({kit.name})')}</name>\n"
            f"   <volume>{instrument.volume!r}</volume>\n"
            f"   <gain>{gain!r}</gain>\n"
            f"   <muteGroup>{group}</muteGroup>\n"
            f"   <midiOutNote>{note}</midiOutNote>\n" + components + "  </instrument>\n"
        )
    info = "; ".join(
        f"{role}: {sources[role].name}"
        + (
            " ({:+g} semitones, {:+g} dB)".format(*variation[role])
            if any(variation.get(role, ()))
            else ""
        )
        for role in ROLES
    )
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<drumkit_info>\n"
        f" <name>{escape(name)}</name>\n"
        " <author>loco-tf (pipelines/kitmix.py)</author>\n"
        f" <info>Mixed from Hydrogen drumkits: {escape(info)}</info>\n"
        " <license>that of each source kit</license>\n"
        " <componentList>\n  <drumkitComponent>\n   <id>0</id>\n   <name>Main</name>\n"
        "   <volume>1</volume>\n  </drumkitComponent>\n </componentList>\n"
        " <instrumentList>\n" + "".join(instruments) + " </instrumentList>\n"
        "</drumkit_info>\n"
    )


def write_mixes(
    out: str,
    kits: Sequence[str],
    count: int,
    *,
    seed: int = 0,
    pitch_semitones: float = 0.0,
    gain_db: float = 0.0,
    vary: Sequence[str] = ROLES,
    prefix: str = MIX_PREFIX,
) -> list[str]:
    """Writes mixes ``out/mix-00`` ... (``count`` of them) of ``kits`` and returns their folders.

    Args:
        out: the folder for the mixes.
        kits: Hydrogen kits (``hydrogen:NAME`` or drumkit folders), at least three.
        count: how many mixes.
        seed: seed of the draws (`draw_mix`, `draw_variation`).
        pitch_semitones: each role's pitch shift is drawn in [-pitch_semitones, pitch_semitones].
        gain_db: each role's gain is drawn in [-gain_db, gain_db] dB.
        vary: the roles (of `ROLES`; or one comma-separated string) that are shifted and
            levelled; the others play as in their kits.
        prefix: the mixes' folder names are ``PREFIX-00``, ...; a kit's folder name is its name
            in prepared data (`prepare.kit_name`), so two sets of mixes trained together need
            two prefixes.

    Raises:
        ValueError: fewer than three kits, a kit that is not a Hydrogen drumkit, or one
            without an instrument for a label class (checked before anything is written);
            the message names it. A ``vary`` role not in `ROLES`, or none.
        FileExistsError: a mix folder holds another mix (other kits or seed).
    """
    from loco_tf.pipelines.render import kit_source

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", prefix):
        raise ValueError(f"prefix {prefix!r}: use letters, digits, '.', '_' and '-'")
    if not (pitch_semitones >= 0 and gain_db >= 0):  # also refuses NaN
        raise ValueError(
            f"pitch_semitones and gain_db are bounds, >= 0; got {pitch_semitones}, {gain_db}"
        )
    if isinstance(vary, str):  # "HH" or "KD,SD": not its characters
        vary = [role.strip() for role in vary.split(",")]
    unknown = [role for role in vary if role not in ROLES]
    if unknown or not vary:
        raise ValueError(
            f"vary: roles are {', '.join(ROLES)}; got {', '.join(map(repr, vary)) or 'none'}"
        )
    varied = tuple(role for role in ROLES if role in vary)  # == ROLES when all vary
    folders = {}
    for kit in dict.fromkeys(kits):
        source = kit_source(kit)
        if source.kind != "hydrogen":
            raise ValueError(f"{kit} is not a Hydrogen drumkit: only those can be mixed")
        drumkit = load_drumkit(source.path)
        for notes in CLASS_NOTES.values():  # any kit may be drawn for any class
            instrument_for(drumkit, notes[0])
        folders[kit] = source.path
    os.makedirs(out, exist_ok=True)
    written = []
    for index in range(count):
        name = f"{prefix}-{index:02d}"
        roles = draw_mix(list(folders), seed, index)
        sources = {role: load_drumkit(folders[kit]) for role, kit in roles.items()}
        notes = mix_notes(sources)
        variation = None
        if pitch_semitones or gain_db:
            variation = draw_variation(seed, index, pitch_semitones, gain_db, varied)
        samples = {
            sample_name(role, sources[role], layer.path): layer.path
            for role, instrument in notes.values()
            for component in instrument.components
            for layer in component.layers
        }
        folder = os.path.join(out, name)
        write_drumkit(
            folder,
            mix_xml(name, sources, notes, variation),
            samples,
            link=True,
            drawn_by=f"--seed {seed} draws from {','.join(folders)}"
            + (
                f" (--pitch-semitones {pitch_semitones:g} --gain-db {gain_db:g}"
                + ("" if varied == ROLES else f" --vary {','.join(varied)}")
                + ")"
                if variation
                else ""
            ),
        )
        written.append(folder)
    return written
