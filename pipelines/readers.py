"""Dataset annotation readers: one sorted list of `Event(time, label)` per audio file.

Every reader returns events sorted by (time, label), with `time` in seconds from the start of
the file. Labels that fall outside the reduction are dropped; labels a reader does not know at
all raise `AnnotationError` (pass `strict=False` to drop them instead), so that a file read with
the wrong reader, or a label list that is out of date, is reported by name rather than silently
thinned.

Drums are reduced to three classes, "KD", "SD", "HH", as in Wu et al. (2018), "A Review of
Automatic Drum Transcription": kick -> KD; snare, including rim shot, side stick and cross
stick -> SD; closed, open and pedal hi-hat -> HH; toms, cymbals and all other percussion are
dropped. Per dataset:

- IDMT-SMT-Drums (XML, `read_idmt_xml`): KD -> KD, SD -> SD, HH -> HH (the dataset has only
  these three).
- ENST-Drums (text "time label", `read_enst`): bd -> KD; sd, sd-, rs (rim shot),
  cs (cross stick) -> SD; chh, ohh, hh -> HH. Dropped: toms lt, lmt, mt, lft, ltr, mtr;
  cymbals c, c1, c4, cr, cr1, cr2, cr5, rc, rc1, rc2, rc3, rc4, ch, ch1, ch5, spl, spl2;
  cb (cowbell), sticks, sweep (a brush sweep has no onset).
- MDB Drums (text "time<TAB>class", `read_mdb`), class level: KD -> KD, SD -> SD, HH -> HH;
  TT, CY, OT dropped. Subclass level: KD -> KD; SD, SDB (brush), SDD (drag), SDF (flam),
  SDG (ghost), SDNS (snares off), SST (side stick) -> SD; CHH, OHH, PHH -> HH. Dropped: toms
  HIT, MHT, HFT, LFT; cymbals RDC, RDB, CRC, CHC, SPC; TMB (tambourine).
- MIDI drums (`read_midi_drums`: notes of drum instruments, i.e. GM channel 10, including the
  Roland TD-11 notes of the Groove MIDI Dataset): 35, 36 -> KD; 37 (side stick), 38,
  40 (snare rim / electric snare) -> SD; 42, 44, 46, 22 (TD-11 hi-hat closed edge),
  26 (TD-11 hi-hat open edge) -> HH. Every other note is dropped: toms (41, 43, 45, 47, 48,
  50, TD-11 58), cymbals (49, 51, 52, 53, 55, 57, 59), hand clap 39, and the rest. Ghost notes
  (low velocity) are hits and stay.

Pitched notes (MAPS text "onset offset pitch", `read_maps`; MIDI non-drum notes,
`read_midi_notes`) keep their MIDI pitch as an int label; only the 88 piano keys, pitches
21..108, are kept.

Plain CSV ("time,label", `read_csv_events`) keeps labels as given: int when the label is an
integer, else the stripped string.

Also here: the Groove MIDI Dataset `info.csv` and ASAP `metadata.csv` readers, a piece-disjoint
split for ASAP, and `pair_audio_with_annotations`, which matches audio files with annotation
files in a folder and names the ones left over.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import hashlib
import io
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pretty_midi

PathLike = str | os.PathLike

DRUM_CLASSES = ("KD", "SD", "HH")
PIANO_PITCHES = range(21, 109)


class Event(NamedTuple):
    """One annotated event.

    Attributes:
        time: seconds from the start of the audio file.
        label: a drum class ("KD", "SD", "HH"), a MIDI pitch (int, 21..108), or, for plain
            CSV, the label as given.
    """

    time: float
    label: str | int


class AnnotationError(ValueError):
    """An annotation or metadata file is malformed; the message names the file (and line)."""


# Each map sends a dataset label to its class, or to None when the label is known and dropped.

IDMT_TO_CLASS: dict[str, str | None] = {"KD": "KD", "SD": "SD", "HH": "HH"}

ENST_TO_CLASS: dict[str, str | None] = {
    "bd": "KD",
    "sd": "SD",
    "sd-": "SD",
    "rs": "SD",  # rim shot
    "cs": "SD",  # cross stick
    "chh": "HH",
    "ohh": "HH",
    "hh": "HH",
    **dict.fromkeys(("lt", "lmt", "mt", "lft", "ltr", "mtr"), None),  # toms
    **dict.fromkeys(
        ("c", "c1", "c4", "cr", "cr1", "cr2", "cr5", "rc", "rc1", "rc2", "rc3", "rc4"), None
    ),  # crash and ride cymbals
    **dict.fromkeys(("ch", "ch1", "ch5", "spl", "spl2"), None),  # china and splash cymbals
    "cb": None,  # cowbell
    "sticks": None,
    "sweep": None,  # brush sweep: a sustained sound, no onset
}

MDB_TO_CLASS: dict[str, str | None] = {
    # Class-level files (*_class.txt).
    "KD": "KD",
    "SD": "SD",
    "HH": "HH",
    "TT": None,
    "CY": None,
    "OT": None,
    # Subclass-level files (*_subclass.txt); KD and SD are shared with the class level.
    "SDB": "SD",  # brush
    "SDD": "SD",  # drag
    "SDF": "SD",  # flam
    "SDG": "SD",  # ghost note
    "SDNS": "SD",  # snares off
    "SST": "SD",  # side stick
    "CHH": "HH",
    "OHH": "HH",
    "PHH": "HH",
    **dict.fromkeys(("HIT", "MHT", "HFT", "LFT"), None),  # toms
    **dict.fromkeys(("RDC", "RDB", "CRC", "CHC", "SPC"), None),  # cymbals
    "TMB": None,  # tambourine
}

GM_DRUM_TO_CLASS: dict[int, str] = {
    35: "KD",  # acoustic bass drum
    36: "KD",  # bass drum 1
    37: "SD",  # side stick
    38: "SD",  # acoustic snare
    40: "SD",  # electric snare; TD-11 snare rim
    42: "HH",  # closed hi-hat; TD-11 hi-hat closed bow
    44: "HH",  # pedal hi-hat
    46: "HH",  # open hi-hat; TD-11 hi-hat open bow
    22: "HH",  # TD-11 hi-hat closed edge (Groove MIDI Dataset)
    26: "HH",  # TD-11 hi-hat open edge (Groove MIDI Dataset)
}
"""Drum note -> class; notes not listed here are dropped."""

GMD_RENDER_REMAP: dict[int, int] = {22: 42, 26: 46, 58: 43}
"""For rendering only: TD-11 notes without a sample in FluidR3_GM / TimGM6mb, sent to the GM
note that sounds like them. Annotations keep the original notes (see `GM_DRUM_TO_CLASS`)."""

FORMATS = ("idmt", "enst", "mdb", "maps", "midi-drums", "midi-notes", "csv")
SPLITS = ("train", "validation", "test")
ANNOTATION_STEM_SUFFIXES = ("_annotations", "_annotation")

_MAPS_HEADER = ("onsettime", "offsettime", "midipitch")
_INTEGER = re.compile(r"[+-]?\d+")


def _sorted(events: Iterable[Event]) -> list[Event]:
    # Ints sort before strings at equal times, so mixed CSV labels never compare int with str.
    return sorted(events, key=lambda e: (e.time, isinstance(e.label, str), e.label))


def _read_text(path: PathLike) -> str:
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _nonblank_lines(path: PathLike) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            yield number, line


def _parse_time(token: str, where: str, what: str = "time") -> float:
    try:
        value = float(token)
    except ValueError:
        raise AnnotationError(f"{where}: {what} {token!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise AnnotationError(f"{where}: {what} {token!r} must be finite and >= 0")
    return value


def _reduce(
    label: str, label_map: Mapping[str, str | None], dataset: str, where: str, strict: bool
) -> str | None:
    if label in label_map:
        return label_map[label]
    if strict:
        known = ", ".join(sorted(label_map))
        raise AnnotationError(f"{where}: unknown {dataset} label {label!r} (known: {known})")
    return None


def _read_time_label_text(
    path: PathLike,
    label_map: Mapping[str, str | None],
    dataset: str,
    expected: str,
    normalise: Callable[[str], str],
    strict: bool,
) -> list[Event]:
    events = []
    for number, line in _nonblank_lines(path):
        where = f"{path} line {number}"
        fields = line.split()
        if len(fields) != 2:
            raise AnnotationError(f"{where}: expected {expected!r}, got {line.strip()!r}")
        time = _parse_time(fields[0], where)
        drum_class = _reduce(normalise(fields[1]), label_map, dataset, where, strict)
        if drum_class is not None:
            events.append(Event(time, drum_class))
    return _sorted(events)


def read_enst(path: PathLike, *, strict: bool = True) -> list[Event]:
    """Reads an ENST-Drums annotation: one "time label" per line, whitespace separated.

    Labels are reduced with `ENST_TO_CLASS` (case-insensitive). An empty file has no events.

    Args:
        path: the annotation file.
        strict: raise on a label missing from `ENST_TO_CLASS`; when False, drop it.
    """
    return _read_time_label_text(path, ENST_TO_CLASS, "ENST", "time label", str.lower, strict)


def read_mdb(path: PathLike, *, strict: bool = True) -> list[Event]:
    """Reads an MDB Drums annotation: one "time<TAB>class" per line, class or subclass level.

    Any whitespace separates the two fields. Labels are reduced with `MDB_TO_CLASS`
    (case-insensitive). An empty file has no events.

    Args:
        path: the annotation file.
        strict: raise on a label missing from `MDB_TO_CLASS`; when False, drop it.
    """
    return _read_time_label_text(path, MDB_TO_CLASS, "MDB", "time<TAB>class", str.upper, strict)


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local_name(child.tag) == name:
            return (child.text or "").strip()
    return None


def read_idmt_xml(path: PathLike, *, strict: bool = True) -> list[Event]:
    """Reads an IDMT-SMT-Drums XML annotation.

    The root is `<instrumentRecording>`; each `<transcription>/<event>` holds `<onsetSec>` and
    `<instrument>` (KD, SD or HH, reduced with `IDMT_TO_CLASS`). Whitespace around values is
    ignored. A file without events has no events.

    Args:
        path: the annotation file.
        strict: raise on an instrument missing from `IDMT_TO_CLASS`; when False, drop it.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, _ = exc.position
        raise AnnotationError(f"{path} line {line}: malformed XML ({exc})") from exc
    if _local_name(root.tag) != "instrumentRecording":
        raise AnnotationError(
            f"{path}: expected root element <instrumentRecording>, got <{_local_name(root.tag)}>"
        )
    events = []
    index = 0
    for element in root.iter():
        if _local_name(element.tag) != "event":
            continue
        index += 1
        where = f"{path} event {index}"
        onset = _child_text(element, "onsetSec")
        instrument = _child_text(element, "instrument")
        if onset is None or instrument is None:
            raise AnnotationError(f"{where}: expected <onsetSec> and <instrument> children")
        time = _parse_time(onset, where, "onsetSec")
        drum_class = _reduce(instrument.upper(), IDMT_TO_CLASS, "IDMT", where, strict)
        if drum_class is not None:
            events.append(Event(time, drum_class))
    return _sorted(events)


def _parse_pitch(token: str, where: str) -> int:
    if not _INTEGER.fullmatch(token) or not 0 <= int(token) <= 127:
        raise AnnotationError(f"{where}: MIDI pitch {token!r} is not an integer in 0..127")
    return int(token)


def read_maps(path: PathLike) -> list[Event]:
    """Reads a MAPS annotation: header "OnsetTime OffsetTime MidiPitch", then one note a line.

    Returns one event per note at its onset, labelled with its pitch; pitches outside
    `PIANO_PITCHES` are dropped. The header is optional; a header-only or empty file has no
    events.
    """
    events = []
    for index, (number, line) in enumerate(_nonblank_lines(path)):
        fields = line.split()
        if index == 0 and tuple(field.lower() for field in fields) == _MAPS_HEADER:
            continue
        where = f"{path} line {number}"
        if len(fields) != 3:
            raise AnnotationError(f"{where}: expected 'onset offset pitch', got {line.strip()!r}")
        onset = _parse_time(fields[0], where, "onset")
        offset = _parse_time(fields[1], where, "offset")
        if offset < onset:
            raise AnnotationError(f"{where}: offset {offset} is before onset {onset}")
        pitch = _parse_pitch(fields[2], where)
        if pitch in PIANO_PITCHES:
            events.append(Event(onset, pitch))
    return _sorted(events)


def _load_midi(source: PathLike | pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    if isinstance(source, pretty_midi.PrettyMIDI):
        return source
    with open(source, "rb") as f:
        try:
            return pretty_midi.PrettyMIDI(f)
        # mido and pretty_midi raise many unrelated types (OSError, EOFError, KeyError,
        # ValueError, ...) for a broken file; all of them mean the same thing here.
        except Exception as exc:
            raise AnnotationError(f"{source}: not a readable MIDI file ({exc})") from exc


def read_midi_drums(path_or_pretty_midi: PathLike | pretty_midi.PrettyMIDI) -> list[Event]:
    """Reads the drum notes of a MIDI file (drum instruments, GM channel 10) as KD/SD/HH.

    Notes are reduced with `GM_DRUM_TO_CLASS`, which includes the Groove MIDI Dataset's TD-11
    hi-hat edge notes 22 and 26; other notes are dropped. Times are the notes' own start times
    (no rendering re-map, see `GMD_RENDER_REMAP`); notes of every velocity are kept.

    Args:
        path_or_pretty_midi: a MIDI file, or a loaded `pretty_midi.PrettyMIDI`.
    """
    midi = _load_midi(path_or_pretty_midi)
    events = []
    for instrument in midi.instruments:
        if not instrument.is_drum:
            continue
        for note in instrument.notes:
            drum_class = GM_DRUM_TO_CLASS.get(note.pitch)
            if drum_class is not None:
                events.append(Event(float(note.start), drum_class))
    return _sorted(events)


def read_midi_notes(path_or_pretty_midi: PathLike | pretty_midi.PrettyMIDI) -> list[Event]:
    """Reads the pitched (non-drum) note onsets of a MIDI file, labelled with their pitch.

    Pitches outside `PIANO_PITCHES` (21..108) are dropped.

    Args:
        path_or_pretty_midi: a MIDI file, or a loaded `pretty_midi.PrettyMIDI`.
    """
    midi = _load_midi(path_or_pretty_midi)
    events = [
        Event(float(note.start), int(note.pitch))
        for instrument in midi.instruments
        if not instrument.is_drum
        for note in instrument.notes
        if note.pitch in PIANO_PITCHES
    ]
    return _sorted(events)


def read_csv_events(path: PathLike) -> list[Event]:
    """Reads a plain CSV of "time,label" rows, with an optional header row.

    The first row is a header when its first field is not a number. Columns after the second
    are ignored; blank rows are skipped. Labels are kept as given: int when the label is an
    integer ("60"), else the stripped string ("KD").
    """
    reader = csv.reader(io.StringIO(_read_text(path)))
    events = []
    first = True
    for row in reader:
        if not any(field.strip() for field in row):
            continue
        where = f"{path} line {reader.line_num}"
        if first:
            first = False
            try:
                float(row[0])
            except ValueError:
                continue
        if len(row) < 2 or not row[1].strip():
            raise AnnotationError(f"{where}: expected 'time,label', got {','.join(row)!r}")
        time = _parse_time(row[0].strip(), where)
        label = row[1].strip()
        events.append(Event(time, int(label) if _INTEGER.fullmatch(label) else label))
    return _sorted(events)


def detect_format(path: PathLike) -> str:
    """Guesses the annotation format of `path` from its extension and, for .txt, its content.

    .xml -> "idmt"; .mid/.midi -> "midi-drums"; .csv -> "csv"; .txt -> "maps" when the first
    line is the MAPS header, else "mdb" when the first line is tab separated with an uppercase
    label, else "enst" (also for an empty file).
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".xml":
        return "idmt"
    if suffix in (".mid", ".midi"):
        return "midi-drums"
    if suffix == ".csv":
        return "csv"
    if suffix == ".txt":
        for _, line in _nonblank_lines(path):
            fields = line.split()
            if tuple(field.lower() for field in fields) == _MAPS_HEADER:
                return "maps"
            if "\t" in line and len(fields) == 2 and fields[1].isupper():
                return "mdb"
            return "enst"
        return "enst"
    raise AnnotationError(
        f"{path}: cannot tell the annotation format from the extension {suffix!r}; "
        f"known extensions: .xml, .mid, .midi, .csv, .txt; or pass format= one of "
        f"{', '.join(FORMATS)}"
    )


def read_annotations(
    path: PathLike, format: str | None = None, *, strict: bool = True
) -> list[Event]:
    """Reads an annotation file in any supported format.

    Args:
        path: the annotation file.
        format: one of `FORMATS`; None detects it with `detect_format`.
        strict: for the drum text/XML formats (idmt, enst, mdb), raise on unknown labels;
            when False, drop them.

    Raises:
        ValueError: `format` is not one of `FORMATS`.
        AnnotationError: the file is malformed, or its format cannot be detected.
    """
    if format is None:
        format = detect_format(path)
    if format == "idmt":
        return read_idmt_xml(path, strict=strict)
    if format == "enst":
        return read_enst(path, strict=strict)
    if format == "mdb":
        return read_mdb(path, strict=strict)
    if format == "maps":
        return read_maps(path)
    if format == "midi-drums":
        return read_midi_drums(path)
    if format == "midi-notes":
        return read_midi_notes(path)
    if format == "csv":
        return read_csv_events(path)
    raise ValueError(f"unknown annotation format {format!r}; known: {', '.join(FORMATS)}")


@dataclasses.dataclass(frozen=True)
class GrooveRecord:
    """One row of the Groove MIDI Dataset's info.csv (paths relative to the dataset root)."""

    drummer: str
    session: str
    id: str
    style: str
    bpm: int
    beat_type: str
    time_signature: str
    midi_filename: str
    audio_filename: str | None  # None for the MIDI-only rows
    duration: float
    split: str


@dataclasses.dataclass(frozen=True)
class AsapRecord:
    """One performance in ASAP's metadata.csv (paths relative to the dataset root).

    `folder` names the piece; several performances share it.
    """

    composer: str
    title: str
    folder: str
    midi_score: str
    midi_performance: str
    performance_annotations: str
    audio_performance: str | None  # None when ASAP has no audio for this performance


def _metadata_rows(path: PathLike, required: Sequence[str]) -> Iterator[tuple[str, dict]]:
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    missing = [name for name in required if name not in (reader.fieldnames or [])]
    if missing:
        raise AnnotationError(f"{path}: missing column(s) {', '.join(missing)}")
    for row in reader:
        where = f"{path} line {reader.line_num}"
        if None in row or any(row[name] is None for name in required):
            raise AnnotationError(f"{where}: expected {len(reader.fieldnames)} columns")
        yield where, row


def read_gmd_info(path: PathLike) -> list[GrooveRecord]:
    """Reads the Groove MIDI Dataset's info.csv into `GrooveRecord`s, in file order."""
    fields = [field.name for field in dataclasses.fields(GrooveRecord)]
    records = []
    for where, row in _metadata_rows(path, fields):
        if row["split"] not in SPLITS:
            raise AnnotationError(f"{where}: split {row['split']!r} is not one of {SPLITS}")
        try:
            bpm = int(row["bpm"])
        except ValueError:
            raise AnnotationError(f"{where}: bpm {row['bpm']!r} is not an integer") from None
        values = {name: row[name] for name in fields}
        values.update(
            bpm=bpm,
            duration=_parse_time(row["duration"], where, "duration"),
            audio_filename=row["audio_filename"] or None,
        )
        records.append(GrooveRecord(**values))
    return records


def read_asap_metadata(path: PathLike) -> list[AsapRecord]:
    """Reads ASAP's metadata.csv into `AsapRecord`s, one per performance, in file order."""
    fields = [field.name for field in dataclasses.fields(AsapRecord)]
    records = []
    for where, row in _metadata_rows(path, fields):
        if not row["folder"]:
            raise AnnotationError(f"{where}: empty folder (the piece)")
        values = {name: row[name] for name in fields}
        values["audio_performance"] = row["audio_performance"] or None
        records.append(AsapRecord(**values))
    return records


def _folder_of(record: Any) -> str:
    if isinstance(record, Mapping):
        return record["folder"]
    return record.folder


def split_by_piece(
    records: Sequence[Any],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    key: Callable[[Any], str] = _folder_of,
) -> dict[str, list[Any]]:
    """Splits records into train/validation/test so that no piece is in two splits.

    Pieces (by default the record's `folder`, as in ASAP) are put in a seeded order by SHA-256,
    which unlike `hash()` is the same in every process; cutting that order at the cumulative
    fractions of the record count assigns each piece to the split holding the middle of its
    records. So record counts follow `fractions` to within one piece, and the result depends
    only on the records and the seed.

    Args:
        records: records with a piece name (`key`).
        fractions: the train, validation and test fractions of records; sum to 1.
        seed: selects the order of pieces.
        key: the piece name of a record.

    Returns:
        {"train": [...], "validation": [...], "test": [...]}, records in input order.
    """
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be {len(SPLITS)} non-negative numbers, got {fractions}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {fractions} (sum {sum(fractions)})")
    sizes: dict[str, int] = {}
    for record in records:
        piece = key(record)
        sizes[piece] = sizes.get(piece, 0) + 1

    def order(piece: str) -> bytes:
        return hashlib.sha256(f"{seed}\0{piece}".encode()).digest()

    total = len(records)
    boundaries = [total * sum(fractions[: i + 1]) for i in range(len(SPLITS))]
    split_of: dict[str, str] = {}
    before = 0
    for piece in sorted(sizes, key=order):
        middle = before + sizes[piece] / 2
        split_of[piece] = SPLITS[min(bisect.bisect_right(boundaries, middle), len(SPLITS) - 1)]
        before += sizes[piece]
    result: dict[str, list[Any]] = {name: [] for name in SPLITS}
    for record in records:
        result[split_of[key(record)]].append(record)
    return result


def _shared_depth(a: Path, b: Path) -> int:
    depth = 0
    for part_a, part_b in zip(a.parts, b.parts, strict=False):
        if part_a != part_b:
            break
        depth += 1
    return depth


AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aif", ".aiff")
"""Audio file extensions looked for in folders (what libsndfile reads)."""


def pair_audio_with_annotations(
    folder: PathLike,
    audio_exts: Sequence[str] = AUDIO_EXTENSIONS,
    annotation_exts: Sequence[str] = (".txt", ".csv", ".xml", ".mid", ".midi"),
) -> tuple[list[tuple[Path, Path]], list[Path], list[Path]]:
    """Matches audio files with annotation files under `folder` (searched recursively).

    An annotation matches an audio file when its stem equals the audio stem ("x.wav" and
    "x.txt"), or the audio stem plus one of `ANNOTATION_STEM_SUFFIXES` ("x_annotations.txt").
    Annotations may sit in other folders (IDMT and ENST keep audio and annotations apart). Of
    several matches, the nearest one wins (the one sharing the deepest folder with the audio
    file), then an exact stem over a suffixed one; a tie left after that raises
    `AnnotationError` naming the files. Several audio files may share one annotation (ENST's
    mixes of one take). Extensions compare case-insensitively; hidden files (".name") are
    skipped.

    Returns:
        (pairs, audio_without_annotation, annotations_without_audio): pairs of
        (audio_path, annotation_path) and the unmatched files, each sorted by path.
    """
    root = Path(folder)
    audio_suffixes = {ext.lower() for ext in audio_exts}
    annotation_suffixes = {ext.lower() for ext in annotation_exts}
    audio, annotations = [], []
    for path in sorted(root.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() in audio_suffixes:
            audio.append(path)
        elif path.suffix.lower() in annotation_suffixes:
            annotations.append(path)

    by_stem: dict[str, list[tuple[Path, bool]]] = {}
    for annotation in annotations:
        by_stem.setdefault(annotation.stem, []).append((annotation, True))
        for suffix in ANNOTATION_STEM_SUFFIXES:
            if annotation.stem.endswith(suffix) and len(annotation.stem) > len(suffix):
                by_stem.setdefault(annotation.stem[: -len(suffix)], []).append((annotation, False))

    pairs, audio_without, used = [], [], set()
    for audio_path in audio:
        ranked = [
            ((-_shared_depth(annotation.parent, audio_path.parent), 0 if exact else 1), annotation)
            for annotation, exact in by_stem.get(audio_path.stem, [])
        ]
        if not ranked:
            audio_without.append(audio_path)
            continue
        best = min(rank for rank, _ in ranked)
        chosen = [annotation for rank, annotation in ranked if rank == best]
        if len(chosen) > 1:
            names = ", ".join(str(path) for path in chosen)
            raise AnnotationError(f"{audio_path}: more than one annotation file matches: {names}")
        pairs.append((audio_path, chosen[0]))
        used.add(chosen[0])
    annotations_without = [path for path in annotations if path not in used]
    return pairs, audio_without, annotations_without
