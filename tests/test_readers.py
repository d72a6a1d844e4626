"""Annotation readers: each test writes a small file in the dataset's format and parses it."""

import csv
from pathlib import Path

import mido
import pretty_midi
import pytest

from loco_tf.pipelines import readers
from loco_tf.pipelines.readers import AnnotationError, Event

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared beside the checkout


def assert_events(actual: list[Event], expected: list[Event]) -> None:
    assert [e.label for e in actual] == [e.label for e in expected]
    assert [e.time for e in actual] == pytest.approx([e.time for e in expected], abs=1e-6)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def idmt_xml(events: str, root: str = "instrumentRecording") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<{root}>\n"
        "  <globalParameter><audioFileName>RealDrum01_00#MIX.wav</audioFileName>"
        "</globalParameter>\n"
        f"  <transcription>{events}</transcription>\n"
        f"</{root}>\n"
    )


def idmt_event(onset: str, instrument: str) -> str:
    return (
        f"<event><pitch>0</pitch><onsetSec>{onset}</onsetSec><offsetSec>0</offsetSec>"
        f"<instrument>{instrument}</instrument></event>\n"
    )


# IDMT-SMT-Drums


def test_idmt_reads_events_sorted_and_tolerates_whitespace(tmp_path):
    path = write(
        tmp_path / "RealDrum01_00#MIX.xml",
        idmt_xml(
            idmt_event("0.5", "SD")
            + idmt_event("\n   0.0\n ", " KD ")
            + idmt_event("0.25", "HH")
            + idmt_event("0.25", "KD")
        ),
    )
    assert readers.read_idmt_xml(path) == [
        Event(0.0, "KD"),
        Event(0.25, "HH"),
        Event(0.25, "KD"),
        Event(0.5, "SD"),
    ]


def test_idmt_without_events_is_empty(tmp_path):
    assert readers.read_idmt_xml(write(tmp_path / "a.xml", idmt_xml(""))) == []


def test_idmt_errors_name_the_file(tmp_path):
    broken = write(tmp_path / "broken.xml", "<instrumentRecording>\n<transcription>\n</oops>\n")
    with pytest.raises(AnnotationError, match=r"broken\.xml line 3: malformed XML"):
        readers.read_idmt_xml(broken)

    wrong_root = write(tmp_path / "root.xml", idmt_xml(idmt_event("1", "KD"), root="score"))
    with pytest.raises(AnnotationError, match=r"root\.xml: expected root .*got <score>"):
        readers.read_idmt_xml(wrong_root)

    no_onset = write(
        tmp_path / "onset.xml",
        idmt_xml(idmt_event("1", "KD") + "<event><instrument>SD</instrument></event>"),
    )
    with pytest.raises(AnnotationError, match=r"onset\.xml event 2: expected <onsetSec>"):
        readers.read_idmt_xml(no_onset)

    bad_time = write(tmp_path / "time.xml", idmt_xml(idmt_event("soon", "KD")))
    with pytest.raises(AnnotationError, match=r"time\.xml event 1: onsetSec 'soon'"):
        readers.read_idmt_xml(bad_time)


def test_idmt_unknown_instrument_raises_unless_not_strict(tmp_path):
    path = write(tmp_path / "tt.xml", idmt_xml(idmt_event("1.0", "TT") + idmt_event("2", "HH")))
    with pytest.raises(AnnotationError, match=r"tt\.xml event 1: unknown IDMT label 'TT'"):
        readers.read_idmt_xml(path)
    assert readers.read_idmt_xml(path, strict=False) == [Event(2.0, "HH")]


# ENST-Drums


ENST_TEXT = """\
0.000000 bd
0.000000 chh
0.250000 ohh
0.500000 sd
0.500000 c1
0.750000 rs
1.000000 cs
1.250000 sd-
1.500000 lt
1.750000 rc3
2.000000 hh
2.250000 sweep
2.500000 lmt
"""


def test_enst_reduces_labels(tmp_path):
    path = write(tmp_path / "107_minus-one_salsa_sticks.txt", ENST_TEXT)
    assert readers.read_enst(path) == [
        Event(0.0, "HH"),
        Event(0.0, "KD"),
        Event(0.25, "HH"),
        Event(0.5, "SD"),
        Event(0.75, "SD"),
        Event(1.0, "SD"),
        Event(1.25, "SD"),
        Event(2.0, "HH"),
    ]


def test_enst_empty_file_has_no_events(tmp_path):
    assert readers.read_enst(write(tmp_path / "empty.txt", "")) == []
    assert readers.read_enst(write(tmp_path / "blank.txt", "\n  \n")) == []


def test_enst_malformed_lines_name_file_and_line(tmp_path):
    path = write(tmp_path / "annotations" / "foo.txt", "0.1 bd\n0.2 sd\nabc\n")
    with pytest.raises(AnnotationError) as info:
        readers.read_enst(path)
    assert str(info.value) == f"{path} line 3: expected 'time label', got 'abc'"

    path = write(tmp_path / "time.txt", "0.1 bd\nx sd\n")
    with pytest.raises(AnnotationError, match=r"time\.txt line 2: time 'x' is not a number"):
        readers.read_enst(path)

    path = write(tmp_path / "neg.txt", "-0.1 bd\n")
    with pytest.raises(AnnotationError, match=r"neg\.txt line 1: time '-0.1' must be"):
        readers.read_enst(path)

    path = write(tmp_path / "label.txt", "0.1 bd\n\n0.2 zz\n")
    with pytest.raises(AnnotationError, match=r"label\.txt line 3: unknown ENST label 'zz'"):
        readers.read_enst(path)
    assert readers.read_enst(path, strict=False) == [Event(0.1, "KD")]


# MDB Drums


def test_mdb_class_level(tmp_path):
    path = write(
        tmp_path / "MusicDelta_Punk_class.txt",
        "0.1\tKD\n0.1\tHH\n0.2\tTT\n0.3\tSD\n0.4\tCY\n0.5\tOT\n",
    )
    assert readers.read_mdb(path) == [Event(0.1, "HH"), Event(0.1, "KD"), Event(0.3, "SD")]


def test_mdb_subclass_level(tmp_path):
    text = (
        "0.10\tKD\n0.20\tSST\n0.30\tSDG\n0.40\tCHH\n0.50\tOHH\n0.60\tPHH\n"
        "0.70\tHIT\n0.80\tCRC\n0.90\tRDC\n1.00\tLFT\n1.10\tSDF\n1.20\tSDNS\n1.30\tTMB\n"
    )
    path = write(tmp_path / "MusicDelta_Punk_subclass.txt", text)
    assert readers.read_mdb(path) == [
        Event(0.1, "KD"),
        Event(0.2, "SD"),
        Event(0.3, "SD"),
        Event(0.4, "HH"),
        Event(0.5, "HH"),
        Event(0.6, "HH"),
        Event(1.1, "SD"),
        Event(1.2, "SD"),
    ]


def test_mdb_errors_name_file_and_line(tmp_path):
    path = write(tmp_path / "mdb.txt", "0.1\tKD\n0.2\tSD\textra\n")
    with pytest.raises(AnnotationError, match=r"mdb\.txt line 2: expected 'time<TAB>class'"):
        readers.read_mdb(path)
    path = write(tmp_path / "unknown.txt", "0.1\tXYZ\n")
    with pytest.raises(AnnotationError, match=r"unknown\.txt line 1: unknown MDB label 'XYZ'"):
        readers.read_mdb(path)


# MAPS


def test_maps_reads_onsets_as_pitches(tmp_path):
    text = (
        "OnsetTime\tOffsetTime\tMidiPitch\n"
        "0.500000\t1.200000\t60\n"
        "0.000000\t0.300000\t21\n"
        "0.500000\t0.900000\t108\n"
        "0.700000\t0.800000\t20\n"
        "0.800000\t0.900000\t109\n"
    )
    path = write(tmp_path / "MAPS_MUS-alb_se3_AkPnBcht.txt", text)
    assert readers.read_maps(path) == [Event(0.0, 21), Event(0.5, 60), Event(0.5, 108)]


def test_maps_header_only_is_empty(tmp_path):
    path = write(tmp_path / "maps.txt", "OnsetTime\tOffsetTime\tMidiPitch\n")
    assert readers.read_maps(path) == []


def test_maps_errors_name_file_and_line(tmp_path):
    header = "OnsetTime\tOffsetTime\tMidiPitch\n"
    path = write(tmp_path / "pitch.txt", header + "0.1\t0.2\t60\n0.3\t0.4\tC4\n")
    with pytest.raises(AnnotationError, match=r"pitch\.txt line 3: MIDI pitch 'C4'"):
        readers.read_maps(path)
    path = write(tmp_path / "order.txt", header + "0.5\t0.4\t60\n")
    with pytest.raises(AnnotationError, match=r"order\.txt line 2: offset 0.4 is before onset"):
        readers.read_maps(path)
    path = write(tmp_path / "cols.txt", header + "0.5\t60\n")
    with pytest.raises(AnnotationError, match=r"cols\.txt line 2: expected 'onset offset pitch'"):
        readers.read_maps(path)


# MIDI

DRUM_NOTES = [  # (GM / TD-11 note, start seconds, velocity)
    (36, 0.0, 100),
    (42, 0.25, 80),
    (38, 0.5, 20),  # ghost note: stays
    (22, 0.75, 90),
    (26, 1.0, 90),
    (58, 1.25, 90),  # TD-11 tom rim: dropped
    (49, 1.5, 90),  # crash: dropped
]
PIANO_NOTES = [(60, 0.1), (21, 0.3), (108, 0.3), (15, 0.2), (120, 0.4)]


def build_midi() -> pretty_midi.PrettyMIDI:
    midi = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    for pitch, start, velocity in DRUM_NOTES:
        drums.notes.append(pretty_midi.Note(velocity, pitch, start, start + 0.1))
    piano = pretty_midi.Instrument(program=0, name="piano")
    for pitch, start in PIANO_NOTES:
        piano.notes.append(pretty_midi.Note(64, pitch, start, start + 0.5))
    midi.instruments.extend([drums, piano])
    return midi


EXPECTED_DRUMS = [
    Event(0.0, "KD"),
    Event(0.25, "HH"),
    Event(0.5, "SD"),
    Event(0.75, "HH"),
    Event(1.0, "HH"),
]
EXPECTED_NOTES = [Event(0.1, 60), Event(0.3, 21), Event(0.3, 108)]


def test_midi_file_drums_on_channel_10_and_piano_notes(tmp_path):
    path = tmp_path / "groove.mid"
    build_midi().write(str(path))
    drum_channels = {
        message.channel
        for track in mido.MidiFile(path).tracks
        for message in track
        if message.type == "note_on" and message.note in {36, 38, 42}
    }
    assert drum_channels == {9}  # GM channel 10, counted from 0

    assert_events(readers.read_midi_drums(path), EXPECTED_DRUMS)
    assert_events(readers.read_midi_notes(path), EXPECTED_NOTES)


def test_midi_from_pretty_midi_object():
    midi = build_midi()
    assert readers.read_midi_drums(midi) == EXPECTED_DRUMS
    assert readers.read_midi_notes(midi) == EXPECTED_NOTES


def test_midi_maps_and_render_remap():
    assert {n for n, c in readers.GM_DRUM_TO_CLASS.items() if c == "KD"} == {35, 36}
    assert {n for n, c in readers.GM_DRUM_TO_CLASS.items() if c == "SD"} == {37, 38, 40}
    assert {n for n, c in readers.GM_DRUM_TO_CLASS.items() if c == "HH"} == {22, 26, 42, 44, 46}
    assert readers.GMD_RENDER_REMAP == {22: 42, 26: 46, 58: 43}


def test_midi_unreadable_file_names_it(tmp_path):
    path = write(tmp_path / "not_midi.mid", "this is text")
    with pytest.raises(AnnotationError, match=r"not_midi\.mid: not a readable MIDI file"):
        readers.read_midi_drums(path)


# CSV


def test_csv_with_header_and_mixed_labels(tmp_path):
    path = write(tmp_path / "events.csv", "\ufefftime,label\n0.5,KD\n0.25, 60 \n\n0.25,HH\n")
    assert readers.read_csv_events(path) == [
        Event(0.25, 60),
        Event(0.25, "HH"),
        Event(0.5, "KD"),
    ]


def test_csv_without_header(tmp_path):
    path = write(tmp_path / "events.csv", "1.0,SD\n0.0,kick drum,extra\n")
    assert readers.read_csv_events(path) == [Event(0.0, "kick drum"), Event(1.0, "SD")]
    assert readers.read_csv_events(write(tmp_path / "empty.csv", "")) == []


def test_csv_errors_name_file_and_line(tmp_path):
    path = write(tmp_path / "bad.csv", "time,label\n0.1,KD\n0.2\n")
    with pytest.raises(AnnotationError, match=r"bad\.csv line 3: expected 'time,label'"):
        readers.read_csv_events(path)
    path = write(tmp_path / "time.csv", "time,label\n0.1,KD\nlater,SD\n")
    with pytest.raises(AnnotationError, match=r"time\.csv line 3: time 'later' is not a number"):
        readers.read_csv_events(path)


# Dispatch


def test_dispatch_by_extension_and_content(tmp_path):
    enst = write(tmp_path / "enst.txt", "0.1 bd\n0.2 sd\n")
    mdb = write(tmp_path / "mdb.txt", "0.1\tKD\n0.2\tSST\n")
    maps = write(tmp_path / "maps.txt", "OnsetTime\tOffsetTime\tMidiPitch\n0.1\t0.2\t60\n")
    idmt = write(tmp_path / "idmt.xml", idmt_xml(idmt_event("0.1", "HH")))
    table = write(tmp_path / "table.csv", "0.1,KD\n")
    midi = tmp_path / "drums.MID"
    build_midi().write(str(midi))

    expected = {
        enst: ("enst", [Event(0.1, "KD"), Event(0.2, "SD")]),
        mdb: ("mdb", [Event(0.1, "KD"), Event(0.2, "SD")]),
        maps: ("maps", [Event(0.1, 60)]),
        idmt: ("idmt", [Event(0.1, "HH")]),
        table: ("csv", [Event(0.1, "KD")]),
        midi: ("midi-drums", EXPECTED_DRUMS),
    }
    for path, (name, events) in expected.items():
        assert readers.detect_format(path) == name, path
        assert_events(readers.read_annotations(path), events)
        assert_events(readers.read_annotations(path, format=name), events)
    assert_events(readers.read_annotations(midi, format="midi-notes"), EXPECTED_NOTES)
    assert readers.detect_format(write(tmp_path / "empty.txt", "")) == "enst"


def test_dispatch_errors_list_known_formats(tmp_path):
    path = write(tmp_path / "a.txt", "0.1 bd\n")
    with pytest.raises(ValueError, match="unknown annotation format 'jams'; known: idmt, enst"):
        readers.read_annotations(path, format="jams")
    with pytest.raises(AnnotationError, match=r"a\.lab: cannot tell .* midi-notes, csv"):
        readers.read_annotations(write(tmp_path / "a.lab", "0.1 bd\n"))


def test_dispatch_passes_strict(tmp_path):
    path = write(tmp_path / "a.txt", "0.1 bd\n0.2 zz\n")
    with pytest.raises(AnnotationError, match="unknown ENST label 'zz'"):
        readers.read_annotations(path)
    assert readers.read_annotations(path, strict=False) == [Event(0.1, "KD")]


# Metadata

GMD_HEADER = (
    "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,"
    "duration,split\n"
)


def test_read_gmd_info(tmp_path):
    path = write(
        tmp_path / "info.csv",
        GMD_HEADER
        + "drummer1,drummer1/eval_session,drummer1/eval_session/1,funk/groove1,138,beat,4-4,"
        "drummer1/eval_session/1.mid,drummer1/eval_session/1.wav,27.872308,test\n"
        + "drummer3,drummer3/session1,drummer3/session1/7,rock,96,fill,4-4,"
        "drummer3/session1/7.mid,,4.5,train\n",
    )
    first, second = readers.read_gmd_info(path)
    assert first == readers.GrooveRecord(
        drummer="drummer1",
        session="drummer1/eval_session",
        id="drummer1/eval_session/1",
        style="funk/groove1",
        bpm=138,
        beat_type="beat",
        time_signature="4-4",
        midi_filename="drummer1/eval_session/1.mid",
        audio_filename="drummer1/eval_session/1.wav",
        duration=27.872308,
        split="test",
    )
    assert (second.audio_filename, second.split, second.duration) == (None, "train", 4.5)


def test_read_gmd_info_errors(tmp_path):
    row = "d,s,i,rock,96,fill,4-4,a.mid,a.wav,4.5,{split}\n"
    path = write(
        tmp_path / "info.csv", GMD_HEADER + row.format(split="train") + row.format(split="dev")
    )
    with pytest.raises(AnnotationError, match=r"info\.csv line 3: split 'dev'"):
        readers.read_gmd_info(path)
    path = write(tmp_path / "short.csv", "drummer,session,id\nd,s,i\n")
    with pytest.raises(AnnotationError, match=r"short\.csv: missing column\(s\) style, bpm"):
        readers.read_gmd_info(path)


ASAP_HEADER = (
    "composer,title,folder,xml_score,midi_score,midi_performance,performance_annotations,"
    "midi_score_annotations,maestro_midi_performance,maestro_audio_performance,start,end,"
    "audio_performance\n"
)


def asap_row(composer: str, title: str, folder: str, performer: str, audio: bool) -> str:
    wav = f"{folder}/{performer}.wav" if audio else ""
    return (
        f"{composer},{title},{folder},{folder}/xml_score.musicxml,{folder}/midi_score.mid,"
        f"{folder}/{performer}.mid,{folder}/{performer}_annotations.txt,"
        f"{folder}/midi_score_annotations.txt,,,,,{wav}\n"
    )


def test_read_asap_metadata(tmp_path):
    path = write(
        tmp_path / "metadata.csv",
        ASAP_HEADER
        + asap_row("Bach", "Fugue_bwv_846", "Bach/Fugue/bwv_846", "Shi05M", audio=True)
        + asap_row("Bach", "Fugue_bwv_846", "Bach/Fugue/bwv_846", "Lee01M", audio=False),
    )
    first, second = readers.read_asap_metadata(path)
    assert first == readers.AsapRecord(
        composer="Bach",
        title="Fugue_bwv_846",
        folder="Bach/Fugue/bwv_846",
        midi_score="Bach/Fugue/bwv_846/midi_score.mid",
        midi_performance="Bach/Fugue/bwv_846/Shi05M.mid",
        performance_annotations="Bach/Fugue/bwv_846/Shi05M_annotations.txt",
        audio_performance="Bach/Fugue/bwv_846/Shi05M.wav",
    )
    assert (second.midi_performance, second.audio_performance) == (
        "Bach/Fugue/bwv_846/Lee01M.mid",
        None,
    )
    path = write(tmp_path / "bad.csv", ASAP_HEADER + "Bach,Fugue,Bach/Fugue\n")
    with pytest.raises(AnnotationError, match=r"bad\.csv line 2: expected 13 columns"):
        readers.read_asap_metadata(path)


# split_by_piece


def make_records(n_pieces: int = 60) -> list[dict]:
    # Pieces with 1..4 performances each, like ASAP's folders.
    return [
        {"folder": f"Composer{p % 7}/piece_{p}", "performance": k}
        for p in range(n_pieces)
        for k in range(1 + p % 4)
    ]


def test_split_by_piece_is_disjoint_complete_and_near_fractions():
    records = make_records()
    splits = readers.split_by_piece(records, fractions=(0.8, 0.1, 0.1), seed=0)
    assert set(splits) == {"train", "validation", "test"}
    pieces = {name: {r["folder"] for r in split} for name, split in splits.items()}
    assert not pieces["train"] & pieces["validation"]
    assert not pieces["train"] & pieces["test"]
    assert not pieces["validation"] & pieces["test"]
    flat = [r for split in splits.values() for r in split]
    assert sorted(flat, key=lambda r: (r["folder"], r["performance"])) == sorted(
        records, key=lambda r: (r["folder"], r["performance"])
    )
    # Each cut lands inside at most one piece (<= 4 records), so counts are within 4.
    total = len(records)
    for name, fraction in zip(("train", "validation", "test"), (0.8, 0.1, 0.1), strict=True):
        assert abs(len(splits[name]) - fraction * total) <= 4, name


def test_split_by_piece_is_deterministic_and_seeded():
    records = make_records()
    first = readers.split_by_piece(records, seed=0)
    assert readers.split_by_piece(list(records), seed=0) == first
    assert readers.split_by_piece(records, seed=1) != first


def test_split_by_piece_reads_folder_attribute_and_rejects_bad_fractions(tmp_path):
    records = [readers.AsapRecord("C", "T", f"C/p{i}", "s", "m", "a", None) for i in range(10)]
    splits = readers.split_by_piece(records, fractions=(0.5, 0.3, 0.2))
    assert [len(splits[name]) for name in ("train", "validation", "test")] == [5, 3, 2]
    with pytest.raises(ValueError, match="sum to 1"):
        readers.split_by_piece(records, fractions=(0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="3 non-negative"):
        readers.split_by_piece(records, fractions=(0.9, 0.1))


# Pairing


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_pair_audio_with_annotations_reports_missing_partners(tmp_path):
    idmt_audio = touch(tmp_path / "idmt" / "audio" / "RealDrum01_00#MIX.wav")
    idmt_xml_file = touch(tmp_path / "idmt" / "annotation_xml" / "RealDrum01_00#MIX.xml")
    # One ENST annotation serves two mixes of the same take.
    enst_wet = touch(tmp_path / "enst" / "audio" / "wet_mix" / "001_hits.WAV")
    enst_dry = touch(tmp_path / "enst" / "audio" / "dry_mix" / "001_hits.flac")
    enst_txt = touch(tmp_path / "enst" / "annotation" / "001_hits.txt")
    # ASAP-like: the performance MIDI (exact stem) beats the beat file (suffixed stem).
    asap_wav = touch(tmp_path / "asap" / "Shi05M.wav")
    asap_mid = touch(tmp_path / "asap" / "Shi05M.mid")
    asap_beats = touch(tmp_path / "asap" / "Shi05M_annotations.txt")
    suffixed_wav = touch(tmp_path / "take.ogg")
    suffixed_txt = touch(tmp_path / "take_annotations.csv")
    lonely_audio = touch(tmp_path / "no_labels.mp3")
    lonely_annotation = touch(tmp_path / "notes" / "no_audio.mid")
    touch(tmp_path / "idmt" / "audio" / "._RealDrum01_00#MIX.wav")  # macOS resource fork
    touch(tmp_path / "readme.md")

    pairs, audio_without, annotations_without = readers.pair_audio_with_annotations(tmp_path)
    assert sorted(pairs) == sorted(
        [
            (idmt_audio, idmt_xml_file),
            (enst_wet, enst_txt),
            (enst_dry, enst_txt),
            (asap_wav, asap_mid),
            (suffixed_wav, suffixed_txt),
        ]
    )
    assert audio_without == [lonely_audio]
    assert annotations_without == sorted([asap_beats, lonely_annotation])


def test_pair_prefers_the_nearest_annotation_and_rejects_ties(tmp_path):
    audio = touch(tmp_path / "drummer_1" / "audio" / "take.wav")
    near = touch(tmp_path / "drummer_1" / "annotation" / "take.txt")
    far = touch(tmp_path / "drummer_2" / "annotation" / "take.txt")
    pairs, _, annotations_without = readers.pair_audio_with_annotations(tmp_path)
    assert pairs == [(audio, near)]
    assert annotations_without == [far]

    touch(tmp_path / "drummer_1" / "annotation" / "take.csv")
    with pytest.raises(AnnotationError, match=r"take\.wav: more than one annotation file"):
        readers.pair_audio_with_annotations(tmp_path)


# The real datasets, when this machine has them (never required).


@pytest.mark.skipif(not (SHARED / "groove" / "info.csv").is_file(), reason="no Groove data")
def test_real_groove_info_and_one_midi_file():
    records = readers.read_gmd_info(SHARED / "groove" / "info.csv")
    with open(SHARED / "groove" / "info.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(records) == len(rows)
    assert {r.split for r in records} == {"train", "validation", "test"}
    events = readers.read_midi_drums(SHARED / "groove" / records[0].midi_filename)
    assert events and {e.label for e in events} <= set(readers.DRUM_CLASSES)
    assert events == sorted(events)


@pytest.mark.skipif(not (SHARED / "asap" / "metadata.csv").is_file(), reason="no ASAP data")
def test_real_asap_split_keeps_pieces_apart():
    records = readers.read_asap_metadata(SHARED / "asap" / "metadata.csv")
    splits = readers.split_by_piece(records)
    pieces = [{r.folder for r in split} for split in splits.values()]
    assert sum(len(p) for p in pieces) == len({r.folder for r in records})
    assert sum(len(s) for s in splits.values()) == len(records)
