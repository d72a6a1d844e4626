"""Drum kits assembled from packs of one-shot samples, written as Hydrogen drumkits.

A kit the model never heard is the hard test of a drum transcriber (README: unseen kits), and the
kits to train on are few. Debian packs over a hundred loose one-shot drum samples: LMMS's
(``lmms-common``: 16 kicks, 16 snares, 9 hi-hats, toms, cymbals) and Sonic Pi's
(``sonic-pi-samples``: 18 kicks, 11 snares, 3 hi-hats, toms, cymbals). `write_kits` draws kits
from them: each role of `ROLES` (kick, snare, side stick, clap, closed / pedal / open hi-hat,
three toms, crash, ride) gets one sample drawn from every chosen pack's files for it, with a
random pitch shift (`PITCH_SEMITONES`) and level (`GAIN_RANGE`), so even a sample two kits share
sounds different in each. A kit is a Hydrogen drumkit folder (``drumkit.xml`` and copies of its
samples, laid out as Debian's Hydrogen kits are; not tried in Hydrogen itself): every
instrument has its General MIDI note as ``<midiOutNote>`` and the three hi-hats share a mute
group, so `hydrogen.render_midi` plays it in GM order, the closed hi-hat choking the open one.
Pass its folder as a kit (``loco prepare drums --train-kits DIR/oneshot-00,...``).

Kits are a pure function of (packs, seed, index): a rerun finds the kits it wrote and keeps
them; a folder that holds another kit is an error, not overwritten. Each kit is written to a
temporary folder and renamed into place, so an interrupted run leaves no half kit.

Not a kit to test on: the samples of one pack share a producer and its processing, so a model
trained on some of them has heard the others' studio.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import warnings
from collections.abc import Sequence
from xml.sax.saxutils import escape

import numpy as np
import soundfile

from loco_tf.pipelines.hydrogen import write_drumkit


@dataclasses.dataclass(frozen=True)
class Pack:
    """A folder of one-shot samples and, per role, the file-name patterns of its samples.

    Attributes:
        folder: where the samples are.
        package: the Debian package that installs them, for the error message.
        patterns: role -> ``fnmatch`` patterns of file names.
    """

    folder: str
    package: str
    patterns: dict[str, tuple[str, ...]]


# fmt: off
PACKS: dict[str, Pack] = {
    "lmms": Pack("/usr/share/lmms/samples/drums", "lmms-common", {
        "kick": ("bassdrum*", "kick*"),
        "snare": ("snare0*", "snare_[aehms]*", "nasty_snare*"),
        "side stick": ("sidestick*", "rim*", "snare_rim*"),
        "clap": ("clap*",),
        "closed hi-hat": ("hihat_closed*",),
        "pedal hi-hat": ("hihat_foot_pedal*",),
        "open hi-hat": ("hihat_opened*",),
        "tom": ("tom*",),
        "crash": ("crash*",),
        "ride": ("ride*",),
    }),
    "sonic-pi": Pack("/usr/share/sonic-pi/samples", "sonic-pi-samples", {
        "kick": ("bd_*", "drum_bass_*", "drum_heavy_kick*", "elec_*_kick*"),
        "snare": ("drum_snare_*", "sn_*", "elec_*snare*"),
        "side stick": ("elec_tick*", "elec_wood*"),
        "clap": ("perc_snap*",),
        "closed hi-hat": ("drum_cymbal_closed*",),
        "pedal hi-hat": ("drum_cymbal_pedal*",),
        "open hi-hat": ("drum_cymbal_open*",),
        "tom": ("drum_tom_*",),
        "crash": ("drum_cymbal_hard*", "drum_splash_*"),
        "ride": ("drum_cymbal_soft*",),
    }),
}
# fmt: on
"""The sample packs `write_kits` draws from, by name."""

ROLES: dict[str, tuple[str, tuple[int, ...]]] = {
    "Kick": ("kick", (36, 35)),
    "Snare": ("snare", (38, 40)),
    "Side Stick": ("side stick", (37,)),
    "Clap": ("clap", (39,)),
    "Closed Hi-Hat": ("closed hi-hat", (42,)),
    "Pedal Hi-Hat": ("pedal hi-hat", (44,)),
    "Open Hi-Hat": ("open hi-hat", (46,)),
    "Low Tom": ("tom", (41, 43)),
    "Mid Tom": ("tom", (45, 47)),
    "High Tom": ("tom", (48, 50)),
    "Crash": ("crash", (49, 57, 55, 52)),
    "Ride": ("ride", (51, 59, 53)),
}
"""Instrument name -> (the `Pack.patterns` role it draws from, the General MIDI notes it plays).
A drumkit instrument has one ``<midiOutNote>``, so an instrument with several notes is written
once per note (the same sample, pitch and level)."""

HI_HATS = frozenset({"Closed Hi-Hat", "Pedal Hi-Hat", "Open Hi-Hat"})
"""Instruments of the hi-hat mute group: each cuts the others' sound."""

PITCH_SEMITONES = 2.0
"""An instrument's pitch shift is drawn uniformly from +-this many semitones."""

GAIN_RANGE = (0.5, 1.0)
"""An instrument's level (``<gain>``) is drawn uniformly from this range."""

KIT_PREFIX = "oneshot-"


class PackError(FileNotFoundError):
    """A pack that is unknown, not installed, or lacks samples for a role; says what to do."""


@dataclasses.dataclass(frozen=True)
class Choice:
    """One instrument of a drawn kit: its sample file, pitch (semitones) and level."""

    name: str
    path: str
    pitch: float
    gain: float


def pack_samples(packs: Sequence[str]) -> dict[str, list[str]]:
    """Role -> the sorted sample paths of the named packs for it.

    Raises:
        PackError: an unknown pack, a pack folder that is missing (the message names the Debian
            package to install), or a role no pack has a readable sample for.

    A sample file libsndfile cannot read is left out, with a warning that names it.
    """
    if not packs:
        raise PackError(f"no sample pack given; known packs: {', '.join(PACKS)}")
    samples: dict[str, list[str]] = {role: [] for role, _ in ROLES.values()}
    for name in packs:
        if name not in PACKS:
            raise PackError(f"unknown sample pack {name!r}; known packs: {', '.join(PACKS)}")
        pack = PACKS[name]
        if not os.path.isdir(pack.folder):
            raise PackError(
                f"sample pack {name!r} not found at {pack.folder}; install it: sudo apt-get "
                f"install {pack.package}"
            )
        files = sorted(os.listdir(pack.folder))
        for role, patterns in pack.patterns.items():
            matched = [f for f in files if any(fnmatch.fnmatch(f, p) for p in patterns)]
            samples[role].extend(
                path for f in matched if _readable(path := os.path.join(pack.folder, f))
            )
    empty = [role for role, paths in samples.items() if not paths]
    if empty:
        raise PackError(f"packs {', '.join(packs)} have no sample for: {', '.join(empty)}")
    return samples


def _readable(path: str) -> bool:
    """Whether libsndfile reads ``path``; warns, naming it, when not (LMMS's kick04.ogg is a
    WAV file whose header libsndfile rejects)."""
    try:
        soundfile.info(path)
    except RuntimeError as error:  # libsndfile's errors
        warnings.warn(f"skipping the unreadable sample {path}: {error}", stacklevel=3)
        return False
    return True


def draw_kit(samples: dict[str, list[str]], seed: int, index: int) -> list[Choice]:
    """The instruments of kit ``index``: a pure function of the samples, ``seed`` and ``index``.

    Each instrument's sample is drawn from its role's samples; the three toms draw three
    different ones where the packs have three.
    """
    rng = np.random.default_rng([seed, index])
    taken: dict[str, set[str]] = {}
    choices = []
    for name, (role, _) in ROLES.items():
        pool = samples[role]
        fresh = [path for path in pool if path not in taken.setdefault(role, set())] or pool
        path = fresh[rng.integers(len(fresh))]
        taken[role].add(path)
        pitch = float(np.round(rng.uniform(-PITCH_SEMITONES, PITCH_SEMITONES), 2))
        gain = float(np.round(rng.uniform(*GAIN_RANGE), 3))
        choices.append(Choice(name, path, pitch, gain))
    return choices


def drumkit_xml(kit_name: str, choices: Sequence[Choice], packs: Sequence[str]) -> str:
    """The ``drumkit.xml`` of a drawn kit; its samples are named ``NN-<file name>``."""
    instruments = []
    for number, choice in enumerate(choices):
        _, notes = ROLES[choice.name]
        mute_group = 0 if choice.name in HI_HATS else -1
        for note in notes:
            instruments.append(
                "  <instrument>\n"
                f"   <id>{len(instruments)}</id>\n"
                f"   <name>{escape(choice.name)}</name>\n"
                "   <volume>1</volume>\n"
                f"   <gain>{choice.gain}</gain>\n"
                f"   <muteGroup>{mute_group}</muteGroup>\n"
                f"   <midiOutNote>{note}</midiOutNote>\n"
                "   <layer>\n"
                f"    <filename>{escape(_sample_name(number, choice.path))}</filename>\n"
                "    <min>0</min>\n    <max>1</max>\n    <gain>1</gain>\n"
                f"    <pitch>{choice.pitch}</pitch>\n"
                "   </layer>\n"
                "  </instrument>\n"
            )
    sources = ", ".join(
        f"{choice.name}: {os.path.basename(choice.path)}" for choice in choices
    )  # fmt: skip
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<drumkit_info>\n"
        f" <name>{escape(kit_name)}</name>\n"
        " <author>loco-tf (pipelines/oneshot.py)</author>\n"
        f" <info>Drawn from the one-shot sample packs {escape(', '.join(packs))}: "
        f"{escape(sources)}</info>\n"
        " <license>that of each sample's pack (see its Debian copyright file)</license>\n"
        " <instrumentList>\n" + "".join(instruments) + " </instrumentList>\n"
        "</drumkit_info>\n"
    )


def _sample_name(number: int, path: str) -> str:
    return f"{number:02d}-{os.path.basename(path)}"


def write_kits(
    out: str, count: int, *, packs: Sequence[str] = ("lmms", "sonic-pi"), seed: int = 0
) -> list[str]:
    """Writes kits ``out/oneshot-00`` ... (``count`` of them) and returns their folders.

    A kit already there with the same ``drumkit.xml`` is kept as it is (a rerun resumes).

    Raises:
        PackError: see `pack_samples`.
        FileExistsError: a kit folder holds something else (another seed or packs); the
            message names it.
    """
    samples = pack_samples(packs)
    os.makedirs(out, exist_ok=True)
    folders = []
    for index in range(count):
        name = f"{KIT_PREFIX}{index:02d}"
        folder = os.path.join(out, name)
        choices = draw_kit(samples, seed, index)
        write_drumkit(
            folder,
            drumkit_xml(name, choices, packs),
            {_sample_name(number, c.path): c.path for number, c in enumerate(choices)},
            drawn_by=f"--seed {seed} --packs {','.join(packs)} draws",
        )
        folders.append(folder)
    return folders
