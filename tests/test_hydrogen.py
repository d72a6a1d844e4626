"""Hydrogen drumkits: every format parsed, renders against a NumPy mix, kits in render/prepare."""

import os
import re
import shutil

import numpy as np
import pretty_midi
import pytest
import soundfile
from click.testing import CliRunner

from loco_tf.pipelines import grooves, hydrogen, kitmix, readers, render
from loco_tf.pipelines import prepare as prepare_module
from loco_tf.recipes.prepare_cli import prepare

SR = 32000
NAMESPACE = 'xmlns="http://www.hydrogen-music.org/drumkit"'


def burst(lead_in, length, seed):
    """A sample: ``lead_in`` zeros, then decaying noise whose first sample is its peak."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(lead_in + length)
    audio[lead_in:] = 0.4 * rng.uniform(-1.0, 1.0, length) * np.exp(-np.arange(length) / 600)
    audio[lead_in] = 0.5
    return audio


def write_kit(folder, instruments_xml, samples, rate=SR, *, namespace=False, head=""):
    """A drumkit folder: ``drumkit.xml`` around ``instruments_xml``, and float WAV samples."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, audio in samples.items():
        soundfile.write(folder / name, audio, rate, subtype="FLOAT")
    (folder / "drumkit.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<drumkit_info {NAMESPACE if namespace else ''}>\n"
        f"<name>{folder.name}</name>\n{head}"
        f"<instrumentList>\n{instruments_xml}</instrumentList>\n</drumkit_info>\n"
    )
    return str(folder)


def layer(filename, low=0.0, high=1.0, gain=1.0, pitch=0.0):
    return (
        f"<layer><filename>{filename}</filename><min>{low}</min><max>{high}</max>"
        f"<gain>{gain}</gain><pitch>{pitch}</pitch></layer>"
    )


def instrument(ident, name, body, volume=1.0, extra=""):
    return (
        f"<instrument><id>{ident}</id><name>{name}</name><volume>{volume}</volume>"
        f"{extra}{body}</instrument>\n"
    )


def drum_midi(*notes):
    """A MIDI file of (pitch, start, velocity) drum notes."""
    midi = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    for pitch, start, velocity in notes:
        drums.notes.append(pretty_midi.Note(velocity, pitch, start, start + 0.05))
    midi.instruments.append(drums)
    return midi


def reference_mix(midi, placed, normalise=True):
    """float64 mix of ``(start time, sample, gain)`` at round(time * SR), 1 s after the end."""
    mix = np.zeros(int(np.ceil((midi.get_end_time() + 1.0) * SR)))
    for time, sample, gain in placed:
        start = round(time * SR)
        stop = min(len(mix), start + len(sample))
        mix[start:stop] += gain * sample[: stop - start]
    return mix / np.max(np.abs(mix)) if normalise else mix


KICK, SNARE, HAT = burst(40, 2000, 0), burst(7, 1500, 1), burst(0, 900, 2)


def test_single_file_instruments_play_at_their_exact_sample_by_list_position(tmp_path):
    # The oldest format (Millo-Drums_v.1): one <filename> per instrument. The ids are out of
    # order and one placeholder has no sample: note 36 + POSITION picks the instrument.
    kit = write_kit(
        tmp_path / "old",
        instrument(3, "Kick", "<filename>kick.wav</filename>", volume=0.8)
        + instrument(0, "placeholder", "<filename></filename>")
        + instrument(1, "Snare", "<filename>snare.wav</filename>", volume=0.5)
        + instrument(2, "Unused", "<filename>hat.wav</filename>"),
        {"kick.wav": KICK, "snare.wav": SNARE, "hat.wav": HAT},
    )
    drumkit = hydrogen.load_drumkit(kit)
    assert [i.name for i in drumkit.instruments] == ["Kick", "Snare", "Unused"]
    assert {note: i.name for note, i in drumkit.notes.items()} == {
        36: "Kick",
        38: "Snare",
        39: "Unused",
    }
    midi = drum_midi((36, 0.10031, 100), (38, 0.25077, 64), (36, 0.2611, 127))
    expected = reference_mix(
        midi,
        [
            (0.10031, KICK, 100 / 127 * 0.8),
            (0.25077, SNARE, 64 / 127 * 0.5),
            (0.2611, KICK, 127 / 127 * 0.8),  # overlaps the first kick: both sound
        ],
    )
    audio = hydrogen.render_midi(midi, kit, SR)
    assert audio.dtype == np.float32 and audio.shape == expected.shape
    np.testing.assert_allclose(audio, expected, atol=2e-6)


def test_velocity_picks_its_layer_with_its_gain_and_a_gap_the_nearest_layer(tmp_path):
    soft, hard = burst(10, 800, 3), burst(10, 800, 4)
    kit = write_kit(
        tmp_path / "layers",
        instrument(
            0,
            "Kick",
            layer("soft.wav", 0.0, 0.3, gain=0.5) + layer("hard.wav", 0.6, 1.0, gain=1.5),
            volume=0.9,
            extra="<gain>1.1</gain><muteGroup>-1</muteGroup>",
        ),
        {"soft.wav": soft, "hard.wav": hard},
    )
    # velocity/127: 0.236 soft; 0.394 in the gap, nearer soft; 0.551 in the gap, nearer hard;
    # 0.787 hard.
    times = {30: 0.1, 50: 0.2, 70: 0.3, 100: 0.4}
    picked = {30: (soft, 0.5), 50: (soft, 0.5), 70: (hard, 1.5), 100: (hard, 1.5)}
    midi = drum_midi(*((36, time, velocity) for velocity, time in times.items()))
    expected = reference_mix(
        midi,
        [(time, picked[v][0], v / 127 * picked[v][1] * 0.9 * 1.1) for v, time in times.items()],
    )
    np.testing.assert_allclose(hydrogen.render_midi(midi, kit, SR), expected, atol=2e-6)


def test_components_in_a_namespace_sound_together_and_midi_out_notes_map_the_kit(tmp_path):
    # Hydrogen >= 0.9.7: <instrumentComponent>s, each sounding, with a gain times its drumkit
    # component's volume. Distinct midiOutNotes (ForzeeStereo) map the notes, not positions.
    close, room = burst(5, 700, 5), burst(60, 1800, 6)
    components = (
        "<instrumentComponent><component_id>0</component_id><gain>3</gain>"
        + layer("close.wav")
        + "</instrumentComponent><instrumentComponent><component_id>1</component_id>"
        + layer("room.wav", gain=0.7)
        + "</instrumentComponent>"
    )
    kit = write_kit(
        tmp_path / "components",
        instrument(0, "Kick", components, extra="<midiOutNote>35</midiOutNote>")
        + instrument(1, "Snare", layer("snare.wav"), extra="<midiOutNote>40</midiOutNote>")
        + instrument(2, "Hat", layer("hat.wav"), extra="<midiOutNote>42</midiOutNote>"),
        {"close.wav": close, "room.wav": room, "snare.wav": SNARE, "hat.wav": HAT},
        namespace=True,
        head="<componentList><drumkitComponent><id>0</id><volume>0.5</volume></drumkitComponent>"
        "<drumkitComponent><id>1</id><volume>2</volume></drumkitComponent></componentList>\n",
    )
    assert {n: i.name for n, i in hydrogen.load_drumkit(kit).notes.items()} == {
        35: "Kick",
        40: "Snare",
        42: "Hat",
    }
    # 36 and 38 have no instrument but are KD and SD: the kick (35) and snare (40) stand in.
    midi = drum_midi((36, 0.05, 127), (38, 0.2, 127), (35, 0.3, 127))
    expected = reference_mix(
        midi,
        [
            (0.05, close, 3 * 0.5),
            (0.05, room, 0.7 * 2),
            (0.2, SNARE, 1.0),
            (0.3, close, 3 * 0.5),
            (0.3, room, 0.7 * 2),
        ],
    )
    np.testing.assert_allclose(hydrogen.render_midi(midi, kit, SR), expected, atol=2e-6)


def test_a_kit_with_one_midi_out_note_for_all_is_mapped_by_position(tmp_path):
    # Hydrogen writes 60 for every instrument of a kit nobody mapped (Audiophob).
    kit = write_kit(
        tmp_path / "unmapped",
        instrument(0, "Kick", layer("k.wav"), extra="<midiOutNote>60</midiOutNote>")
        + instrument(1, "Stick", layer("s.wav"), extra="<midiOutNote>60</midiOutNote>"),
        {"k.wav": KICK, "s.wav": SNARE},
    )
    assert {n: i.name for n, i in hydrogen.load_drumkit(kit).notes.items()} == {
        36: "Kick",
        37: "Stick",
    }


def hat_kit(folder):
    closed, opened, ride = burst(0, 400, 7), np.full(6000, 0.3), burst(0, 5000, 8)
    return (
        write_kit(
            folder,
            instrument(0, "Kick", layer("ride.wav"))  # note 36, no mute group
            + instrument(1, "x", "")
            + instrument(2, "x", "")
            + instrument(3, "x", "")
            + instrument(4, "x", "")
            + instrument(5, "x", "")
            + instrument(6, "Closed", layer("closed.wav"), extra="<muteGroup>0</muteGroup>")
            + instrument(7, "x", "")
            + instrument(8, "x", "")
            + instrument(9, "x", "")
            + instrument(10, "Open", layer("open.wav"), extra="<muteGroup>0</muteGroup>"),
            {"closed.wav": closed, "open.wav": opened, "ride.wav": ride},
        ),
        closed,
        opened,
        ride,
    )


def test_a_mute_group_note_cuts_the_other_instruments_voice_after_a_short_fade(tmp_path):
    kit, closed, opened, ride = hat_kit(tmp_path / "hats")
    cut_time, fade = 0.1, round(hydrogen.CHOKE_FADE_S * SR)
    midi = drum_midi((46, 0.05, 127), (36, 0.06, 127), (46, 0.07, 127), (42, cut_time, 127))
    audio = hydrogen.render_midi(midi, kit, SR).astype(np.float64)
    cut = round(cut_time * SR)
    # Without the cut, both open hats would ring to 0.05 + 6000 / SR = 0.2375 s.
    uncut = reference_mix(
        midi,
        [(0.05, opened, 1), (0.06, ride, 1), (0.07, opened, 1), (cut_time, closed, 1)],
        normalise=False,
    )
    scale = audio[:cut] @ uncut[:cut] / (uncut[:cut] @ uncut[:cut])  # the render's normaliser
    # Up to the closing note, the second open hat did not cut the first (same instrument).
    np.testing.assert_allclose(audio[:cut], scale * uncut[:cut], atol=2e-6)
    # After the fade the open hats are silent: the ride (no group) and the closed hat remain.
    rest = scale * reference_mix(midi, [(0.06, ride, 1), (cut_time, closed, 1)], normalise=False)
    np.testing.assert_allclose(audio[cut + fade :], rest[cut + fade :], atol=2e-6)
    # Within the fade the two open hats' part (0.3 each) shrinks to nothing, without a jump.
    hats = (audio - rest)[cut : cut + fade] / (scale * 2 * 0.3)
    assert hats[0] <= 1.0 and np.all(np.diff(hats) < 0) and abs(hats[-1]) < 1e-5


@pytest.mark.parametrize(
    "file_rate, pitch, file_hz",
    [(48000, 0.0, 1000.0), (32000, 12.0, 500.0), (16000, -12.0, 2000.0)],
    ids=["48kHz", "octave-up", "16kHz-octave-down"],
)
def test_samples_are_resampled_to_the_output_rate_and_pitched(tmp_path, file_rate, pitch, file_hz):
    # A sine that sounds at 1 kHz once played at its rate and pitch: 10 ms of silence, 0.1 s.
    lead, length = round(0.01 * file_rate), round(0.1 * file_rate)
    speed = 2.0 ** (pitch / 12)
    tone = np.concatenate(
        [np.zeros(lead), 0.5 * np.sin(2 * np.pi * file_hz * np.arange(length) / file_rate)]
    )
    kit = write_kit(
        tmp_path / "tone",
        instrument(0, "Kick", layer("tone.wav", pitch=pitch)),
        {"tone.wav": tone},
        file_rate,
    )
    start = 0.25
    audio = hydrogen.render_midi(drum_midi((36, start, 127)), kit, SR).astype(np.float64)
    # At SR the tone starts 10 ms / speed after the note and lasts 0.1 s / speed.
    onset = round(start * SR) + round(0.01 * SR / speed)
    n = round(0.1 * SR / speed)
    edge = 128  # the resampling filter rings this long (most at 8 -> 32 kHz)
    assert np.max(np.abs(audio[: onset - edge])) < 2e-3
    assert np.max(np.abs(audio[onset + n + edge :])) < 2e-3
    inside = audio[onset + edge : onset + n - edge]
    reference = np.sin(2 * np.pi * 1000.0 * np.arange(edge, n - edge) / SR)
    np.testing.assert_allclose(inside / np.max(np.abs(inside)), reference, atol=2e-3)


def three_piece_kit(folder, names=("Kick", "Snare", "Hat")):
    """KICK on note 36, SNARE on 38 and HAT on 42 (by position), placeholders between; the
    instruments are called `names`."""
    return write_kit(
        folder,
        instrument(0, names[0], layer("kick.wav"))
        + instrument(1, "x", "")
        + instrument(2, names[1], layer("snare.wav"))
        + instrument(3, "x", "")
        + instrument(4, "x", "")
        + instrument(5, "x", "")
        + instrument(6, names[2], layer("hat.wav")),
        {"kick.wav": KICK, "snare.wav": SNARE, "hat.wav": HAT},
    )


def test_render_latency_of_a_drumkit_is_its_samples_onset(tmp_path):
    kit = three_piece_kit(tmp_path / "latency")
    for kind, sample in (("KD", KICK), ("SD", SNARE), ("HH", HAT)):
        expected = render.onset_sample(sample) / SR
        assert render.render_latency(kit, kind, SR) == pytest.approx(expected, abs=1e-9)
    assert render.render_latency(kit, "KD", SR) == pytest.approx(40 / SR, abs=1e-9)
    with pytest.raises(ValueError, match="drums only"):
        render.render_latency(kit, "piano", SR)
    # render.render_midi re-maps, then plays the kit with hydrogen.render_midi.
    midi = drum_midi((36, 0.1, 90), (42, 0.2, 90))
    remapped = render.render_midi(drum_midi((36, 0.1, 90), (38, 0.2, 90)), kit, SR, {38: 42})
    np.testing.assert_array_equal(remapped, hydrogen.render_midi(midi, kit, SR))


def test_a_class_note_without_instrument_falls_back_other_notes_are_skipped(tmp_path):
    kit = three_piece_kit(tmp_path / "fallback")  # 36, 38, 42
    # 35 (KD), 40 and 37 (SD), 46 and 44 (HH) fall back; 49 (crash) and 60 have no instrument.
    notes = [(35, 0.1, 100), (40, 0.2, 100), (37, 0.3, 100), (46, 0.4, 100), (44, 0.5, 100)]
    midi = drum_midi(*notes, (49, 0.6, 100), (60, 0.65, 100))
    piano = pretty_midi.Instrument(program=0)  # not a drum: a drumkit has no piano
    piano.notes.append(pretty_midi.Note(100, 36, 0.15, 0.6))
    midi.instruments.append(piano)
    stand_in = {35: KICK, 40: SNARE, 37: SNARE, 46: HAT, 44: HAT}
    expected = reference_mix(midi, [(t, stand_in[p], v / 127) for p, t, v in notes])
    np.testing.assert_allclose(hydrogen.render_midi(midi, kit, SR), expected, atol=2e-6)

    no_hats = write_kit(
        tmp_path / "no-hats", instrument(0, "Kick", layer("k.wav")), {"k.wav": KICK}
    )
    hydrogen.render_midi(drum_midi((36, 0.1, 100)), no_hats, SR)  # no hi-hat note: fine
    with pytest.raises(ValueError, match=r"'no-hats' .* has no instrument for HH"):
        hydrogen.render_midi(drum_midi((36, 0.1, 100), (42, 0.2, 100)), no_hats, SR)


def test_a_gm_layout_plays_a_kit_by_instrument_name_not_position(tmp_path, monkeypatch):
    # By position 36 would be the hat, 37 the kick and 38 the snare: the layout overrides it.
    kit = write_kit(
        tmp_path / "LayoutKit",
        instrument(0, "Hat", layer("hat.wav"))
        + instrument(1, "Kick", layer("kick.wav"))
        + instrument(2, "Snare", layer("snare.wav")),
        {"kick.wav": KICK, "snare.wav": SNARE, "hat.wav": HAT},
    )
    monkeypatch.setitem(hydrogen.GM_LAYOUTS, "LayoutKit", {36: "Kick", 38: "Snare", 42: "Hat"})
    # 36, 38, 42 by name; 37 (SD) and 46 (HH) fall back to the class's instrument; 45 (a tom)
    # is not in the layout: silent.
    notes = [(36, 0.1, 100), (38, 0.2, 90), (42, 0.3, 80), (37, 0.4, 70), (46, 0.5, 60)]
    midi = drum_midi(*notes, (45, 0.6, 100))
    sample = {36: KICK, 38: SNARE, 42: HAT, 37: SNARE, 46: HAT}
    expected = reference_mix(midi, [(t, sample[p], v / 127) for p, t, v in notes])
    np.testing.assert_allclose(hydrogen.render_midi(midi, kit, SR), expected, atol=2e-6)

    wrong = write_kit(tmp_path / "WrongKit", instrument(0, "Kick", layer("k.wav")), {"k.wav": KICK})
    monkeypatch.setitem(hydrogen.GM_LAYOUTS, "WrongKit", {36: "Kick", 38: "Snare", 42: "Hats"})
    with pytest.raises(ValueError, match="no sample for: Hats, Snare"):
        hydrogen.load_drumkit(wrong)


@pytest.mark.skipif(
    not os.path.isdir(render.HYDROGEN_DRUMKITS), reason="needs Debian's hydrogen-drumkits"
)
@pytest.mark.parametrize("name", sorted(hydrogen.GM_LAYOUTS))
def test_debians_non_gm_kits_play_the_classes_on_their_notes(name):
    kit = hydrogen.load_drumkit(os.path.join(render.HYDROGEN_DRUMKITS, name))
    words = {"KD": ("kick", "bassdrum"), "SD": ("snare", "click"), "HH": ("hat", "hh")}
    for note, drum_class in readers.GM_DRUM_TO_CLASS.items():
        played = hydrogen.instrument_for(kit, note).name.lower().replace(" ", "")
        assert any(word in played for word in words[drum_class]), (note, played)


def test_bad_kits_are_errors_that_name_the_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty / "drumkit.xml"))):
        hydrogen.load_drumkit(str(empty))
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty / "drumkit.xml"))):
        render.kit_source(str(empty))

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "drumkit.xml").write_text("<drumkit_info><instrumentList>")
    with pytest.raises(ValueError, match=re.escape(f"{broken / 'drumkit.xml'} is not readable")):
        render.kit_source(str(broken))

    song = tmp_path / "song"
    song.mkdir()
    (song / "drumkit.xml").write_text("<song><instrumentList/></song>")
    with pytest.raises(ValueError, match="is not a Hydrogen drumkit"):
        hydrogen.load_drumkit(str(song))

    missing = write_kit(tmp_path / "missing", instrument(0, "Kick", layer("gone.flac")), {})
    hydrogen.load_drumkit(missing)  # samples are read when played
    with pytest.raises(FileNotFoundError, match=re.escape(os.path.join(missing, "gone.flac"))):
        hydrogen.render_midi(drum_midi((36, 0.1, 100)), missing, SR)

    # A missing sample of a note outside the label classes (note 37 + 2 = 39, a hand clap) is
    # silence, with a warning: the kick still renders exactly.
    holes = write_kit(
        tmp_path / "holes",
        instrument(0, "Kick", layer("kick.wav"))
        + instrument(1, "x", "")
        + instrument(2, "x", "")
        + instrument(3, "Clap", layer("clap-gone.flac")),
        {"kick.wav": KICK},
    )
    midi = drum_midi((36, 0.1, 100), (39, 0.2, 100))
    with pytest.warns(UserWarning, match="clap-gone.flac is missing"):
        audio = hydrogen.render_midi(midi, holes, SR)
    np.testing.assert_allclose(audio, reference_mix(midi, [(0.1, KICK, 100 / 127)]), atol=2e-6)


def test_kit_source_kit_name_and_drums_only_know_every_kind_of_kit(tmp_path, monkeypatch):
    kit = write_kit(tmp_path / "My Kit_v.1", instrument(0, "Kick", layer("k.wav")), {"k.wav": KICK})
    assert render.kit_source(kit) == render.KitSource("hydrogen", kit)
    assert render.drums_only(kit) and render.drums_only("hydrogen:Whatever")
    assert not render.drums_only("fluidr3") and render.drums_only("blackpearl")
    assert prepare_module.kit_name(kit) == "h2-my-kit-v-1"
    assert prepare_module.kit_name(kit + os.sep) == "h2-my-kit-v-1"
    assert prepare_module.kit_name("hydrogen:ForzeeStereo") == "h2-forzeestereo"
    assert prepare_module.kit_name("hydrogen:The Black Pearl 1.0") == "h2-the-black-pearl-1-0"
    assert prepare_module.kit_name("fluidr3") == "fluidr3"
    assert prepare_module.kit_name("/x/My_Font.sf2") == "My_Font"

    monkeypatch.setattr(render, "HYDROGEN_DRUMKITS", str(tmp_path))
    assert render.kit_source("hydrogen:My Kit_v.1") == render.KitSource("hydrogen", kit)
    with pytest.raises(FileNotFoundError, match="installed ones: My Kit_v.1"):
        render.kit_source("hydrogen:Nope")
    monkeypatch.setattr(render, "HYDROGEN_DRUMKITS", str(tmp_path / "not-installed"))
    with pytest.raises(FileNotFoundError, match="sudo apt-get install hydrogen-drumkits"):
        render.kit_source("hydrogen:ForzeeStereo")
    with pytest.raises(ValueError, match="folder name"):
        render.kit_source(f"hydrogen:{kit}")
    with pytest.raises(ValueError, match="unknown kit 'casio'"):
        render.kit_source("casio")
    assert render.kit_source("timgm6mb") == render.KitSource("soundfont", render.KITS["timgm6mb"])


def test_prepare_plans_a_drumkit_as_a_test_kit_and_the_cli_takes_it(tmp_path):
    kit = three_piece_kit(tmp_path / "Tiny Kit")
    plan = prepare_module.drum_sets(tmp_path / "out", None, kits=(kit,), procedural=3)
    by_name = {spec.name: spec for spec in plan.sets}
    assert sorted(by_name) == ["drums-test-h2-tiny-kit", "drums-train", "drums-validation"]
    assert plan.warnings == ()  # Kick, Snare, Hat: named like the classes
    for source in by_name["drums-test-h2-tiny-kit"].sources:
        assert f"{os.sep}h2-tiny-kit-{SR}{os.sep}" in source.audio_path
        assert dict(source.latency) == pytest.approx({"KD": 40 / SR, "SD": 7 / SR, "HH": 0.0})

    runner = CliRunner()
    result = runner.invoke(prepare, ["piano", "--kits", f"fluidr3,{kit}", "--out", tmp_path])
    assert result.exit_code == 2 and "has drums only" in result.output
    result = runner.invoke(prepare, ["drums", "--kits", "hydrogen:../x", "--out", tmp_path])
    assert result.exit_code == 2 and "folder name" in result.output
    # A kit without a hi-hat cannot render HH labels: one line naming it, no traceback.
    no_hat = write_kit(
        tmp_path / "NoHat", instrument(0, "Kick", layer("kick.wav")), {"kick.wav": KICK}
    )
    args = ["drums", "--data-dir", "none", "--procedural", "3", "--no-progress"]
    result = runner.invoke(prepare, [*args, "--kits", f"{no_hat}", "--out", tmp_path / "o"])
    assert result.exit_code == 1 and result.exception.__class__ is SystemExit
    assert "NoHat" in result.output and "no instrument for" in result.output
    assert "Traceback" not in result.output

    # A kit not in GM order by its names (hand percussion) is prepared, with a warning.
    hands = three_piece_kit(tmp_path / "Hands", names=("Cajon", "Snare", "Bongo Lo"))
    assert hydrogen.gm_order_doubts(hydrogen.load_drumkit(hands)) == [
        "KD: note 36 plays 'Cajon'",
        "HH: note 42 plays 'Bongo Lo'",
    ]
    result = runner.invoke(prepare, [*args, "--kits", hands, "--out", tmp_path / "h"])
    assert result.exit_code == 0, result.output
    warning = f"warning: kit {hands}: KD: note 36 plays 'Cajon'; HH: note 42 plays 'Bongo Lo'."
    assert warning in result.output and "warnings: 1 (listed above)" in result.output


FORZEE = os.path.join(render.HYDROGEN_DRUMKITS, "ForzeeStereo")


@pytest.mark.skipif(
    not os.path.isdir(FORZEE), reason="needs Debian's hydrogen-drumkits (ForzeeStereo)"
)
def test_forzee_stereo_renders_a_groove():
    midi = grooves.generate_groove(3, grooves.GrooveConfig(bars=2))
    audio = render.render_midi(midi, "hydrogen:ForzeeStereo", SR)
    assert audio.dtype == np.float32
    assert len(audio) == int(np.ceil((midi.get_end_time() + 1.0) * SR))
    assert np.max(np.abs(audio)) == pytest.approx(1.0)
    # An isolated kick sounds at its note time + the kit's KD latency (its sample's attack).
    for kind in ("KD", "SD", "HH"):
        note = render.LATENCY_PROBES[kind][0]
        hit = render.render_midi(drum_midi((note, 0.3, 100)), "hydrogen:ForzeeStereo", SR)
        latency = render.render_latency("hydrogen:ForzeeStereo", kind, SR)
        assert 0.0 <= latency < 0.02
        assert render.onset_sample(hit) == round(0.3 * SR) + round(latency * SR)


def reference_peak_correlation(a, b, length, max_lag):
    """float64 loop: `a` shifted by each lag in [-max_lag, max_lag] (zeros outside it) against
    the first `length` samples of `b`; the largest |cosine|."""
    b = np.asarray(b, np.float64)[:length]
    best = 0.0
    for shift in range(-max_lag, max_lag + 1):
        x = np.array([a[i + shift] if 0 <= i + shift < len(a) else 0.0 for i in range(len(b))])
        norms = np.linalg.norm(x) * np.linalg.norm(b)
        if norms > 0:
            best = max(best, abs(float(x @ b)) / norms)
    return best


def test_peak_correlation_matches_a_loop_over_lags():
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal(700), rng.standard_normal(900)
    for length, lag in ((500, 0), (500, 20), (800, 7)):  # 800: a ends inside the window
        expected = reference_peak_correlation(a, b, length, lag)
        assert render.peak_correlation(a, b, length, lag) == pytest.approx(expected, abs=1e-12)
    # b is a, 13 samples later and scaled: found once the lags reach 13, not before.
    shifted = -0.3 * np.concatenate([np.zeros(13), a])
    assert render.peak_correlation(a, shifted, 600, 13) == pytest.approx(1.0, abs=1e-12)
    assert render.peak_correlation(a, shifted, 600, 12) < 0.2
    assert render.peak_correlation(a, np.zeros(600), 600, 5) == 0.0


def test_kit_similarity_is_one_for_the_same_samples_and_the_waveform_correlation_otherwise(
    tmp_path,
):
    kit = three_piece_kit(tmp_path / "a")
    quieter = write_kit(  # the same samples at another gain and volume
        tmp_path / "b",
        instrument(0, "Kick", layer("k.wav", gain=0.3))
        + instrument(1, "x", "")
        + instrument(2, "Snare", layer("s.wav"), volume=0.5)
        + instrument(3, "x", "")
        + instrument(4, "x", "")
        + instrument(5, "x", "")
        + instrument(6, "Hat", layer("h.wav", gain=2.0)),
        {"k.wav": KICK, "s.wav": SNARE, "h.wav": HAT},
    )
    other_kick = burst(40, 2000, 5)
    other = write_kit(
        tmp_path / "c",
        instrument(0, "Kick", layer("k.wav"))
        + instrument(1, "x", "")
        + instrument(2, "Snare", layer("s.wav"))
        + instrument(3, "x", "")
        + instrument(4, "x", "")
        + instrument(5, "x", "")
        + instrument(6, "Hat", layer("h.wav")),
        {"k.wav": other_kick, "s.wav": SNARE, "h.wav": HAT},
    )
    same = render.kit_similarity(kit, quieter, SR)
    assert same == pytest.approx({"KD": 1.0, "SD": 1.0, "HH": 1.0}, abs=1e-9)
    different = render.kit_similarity(kit, other, SR)
    # The renders start at the samples' onsets (their first, peak, sample).
    expected = reference_peak_correlation(KICK[40:], other_kick[40:], round(0.12 * SR), 64)
    # (The renders are float32.)
    assert different["KD"] == pytest.approx(expected, abs=1e-5) and expected < 0.3
    assert different["SD"] == pytest.approx(1.0, abs=1e-9)
    assert different["HH"] == pytest.approx(1.0, abs=1e-9)


def test_compare_kits_prints_a_row_per_kit_and_names_the_ones_that_failed(tmp_path):
    kit = three_piece_kit(tmp_path / "a")
    same = three_piece_kit(tmp_path / "same")
    missing = str(tmp_path / "missing")
    result = CliRunner().invoke(prepare, ["compare-kits", kit, same, missing])
    assert result.exit_code == 1
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[2:]}
    assert rows[same][:3] == ["1.00", "1.00", "1.00"] and "KD/SD/HH" in " ".join(rows[same])
    error_row = next(line for line in result.output.splitlines() if line.startswith(missing))
    assert "error:" in error_row and "1 of 2 kits failed" in result.output
    result = CliRunner().invoke(prepare, ["compare-kits", missing, kit])
    assert result.exit_code == 1 and "the reference kit" in result.output


def mix_source(folder, seed, components=False):
    """A kit in GM order by midiOutNote: kick, side stick, snare, closed and open hi-hat (one
    mute group), a tom and a crash, each with a soft and a loud layer (in ``loud/``); with
    ``components`` the kick is two components of another drumkit component volume."""
    (folder / "loud").mkdir(parents=True)
    notes = {"kick": 36, "stick": 37, "snare": 38, "closed": 42, "open": 46, "tom": 41, "crash": 49}
    samples, body = {}, ""
    for i, (name, note) in enumerate(notes.items()):
        samples[f"{name}.wav"] = burst(seed + i, 500 + 60 * i, 10 * seed + i)
        samples[f"loud/{name}.wav"] = burst(seed, 700 + 50 * i, 10 * seed + i + 100)
        layers = layer(f"{name}.wav", 0.0, 0.5, gain=0.9) + layer(f"loud/{name}.wav", 0.5, 1.0)
        if components and name == "kick":
            layers = (
                f"<instrumentComponent><component_id>0</component_id><gain>2</gain>{layers}"
                "</instrumentComponent><instrumentComponent><component_id>1</component_id>"
                f"{layer('crash.wav', pitch=1.5)}</instrumentComponent>"
            )
        group = "<muteGroup>0</muteGroup>" if name in ("closed", "open") else ""
        extra = f"<midiOutNote>{note}</midiOutNote>{group}<gain>{0.5 + 0.1 * i}</gain>"
        body += instrument(i, name, layers, volume=0.8, extra=extra)
    head = (
        "<componentList><drumkitComponent><id>1</id><volume>0.3</volume></drumkitComponent>"
        "</componentList>\n"
    )
    return write_kit(folder, body, samples, head=head if components else "")


MIX_ROLE_NOTES = {"KD": (36, 35), "SD": (38, 37, 40), "HH": (46, 42, 44), "rest": (41, 49)}


def invoke_mix_kits(kits, out, *options):
    """`loco prepare mix-kits --kits KITS --out OUT OPTIONS...` through click's test runner."""
    args = ["mix-kits", "--kits", ",".join(map(str, kits)), "--out", str(out), *map(str, options)]
    return CliRunner().invoke(prepare, args)


def test_a_mix_plays_each_class_as_its_own_kit_and_the_other_notes_as_a_fourth(tmp_path):
    kits = [mix_source(tmp_path / f"kit{i}", i, components=i == 2) for i in range(5)]
    folders = kitmix.write_mixes(str(tmp_path / "mixes"), kits, 4, seed=1)
    assert [os.path.basename(f) for f in folders] == ["mix-00", "mix-01", "mix-02", "mix-03"]
    drawn = [kitmix.draw_mix(kits, 1, index) for index in range(4)]
    assert len({tuple(roles.values()) for roles in drawn}) == 4
    for folder, roles in zip(folders, drawn, strict=True):
        assert len(set(roles.values())) == 4  # KD, SD, HH and the rest from four kits
        assert render.kit_source(folder) == render.KitSource("hydrogen", folder)
        for role, notes in MIX_ROLE_NOTES.items():
            # Each note soft and loud, 10 ms apart, so voices overlap: the open hi-hat is cut
            # by the closed one, which the pedal one (a stand-in for the closed) does not cut.
            played = [(n, 0.05 + 0.02 * i + 0.01 * loud, 40 + 80 * loud)
                      for i, n in enumerate(notes) for loud in (0, 1)]  # fmt: skip
            midi = drum_midi(*played)
            mixed = hydrogen.render_midi(midi, folder, SR)
            assert np.abs(mixed).max() == 1.0
            np.testing.assert_array_equal(mixed, hydrogen.render_midi(midi, roles[role], SR))
        samples = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]
        assert all(os.path.islink(s) for s in samples if not s.endswith("drumkit.xml"))
    # A class note the source kit has no instrument for (35, 40, 44) is left to the mix's
    # stand-in (the source kit's); the rest's kit plays no class note.
    kit = hydrogen.load_drumkit(folders[0])
    assert sorted(kit.notes) == [36, 37, 38, 41, 42, 46, 49]
    assert hydrogen.instrument_for(kit, 44) is kit.notes[42]
    assert {kit.notes[n].mute_group for n in (42, 46)} == {0}
    assert kit.notes[36].name == f"kick ({os.path.basename(drawn[0]['KD'])})"


def test_a_mix_can_shift_and_level_each_role(tmp_path):
    kits = [mix_source(tmp_path / f"kit{i}", i) for i in range(4)]
    plain = kitmix.write_mixes(str(tmp_path / "plain"), kits, 2, seed=3)
    varied = kitmix.write_mixes(
        str(tmp_path / "varied"), kits, 2, seed=3, pitch_semitones=3, gain_db=6, prefix="vmix"
    )
    assert [os.path.basename(f) for f in varied] == ["vmix-00", "vmix-01"]
    levelled = kitmix.write_mixes(str(tmp_path / "levelled"), kits, 2, seed=3, gain_db=6)
    drawn = []
    for index, (folder, other) in enumerate(zip(plain, varied, strict=True)):
        roles = kitmix.draw_mix(kits, 3, index)
        a, b = hydrogen.load_drumkit(folder), hydrogen.load_drumkit(other)
        assert sorted(a.notes) == sorted(b.notes)
        found = {}
        for role, notes in MIX_ROLE_NOTES.items():
            for note in notes:
                if note not in a.notes:
                    continue
                x, y = a.notes[note], b.notes[note]
                assert (x.name, x.volume, x.mute_group) == (y.name, y.volume, y.mute_group)
                shifts = {
                    round(v.pitch - u.pitch, 9)
                    for c, d in zip(x.components, y.components, strict=True)
                    for u, v in zip(c.layers, d.layers, strict=True)
                }
                found.setdefault(role, set()).add(
                    (*shifts, round(20 * np.log10(y.gain / x.gain), 6))
                )
            assert len(found[role]) == 1  # one shift and one gain per role
        variation = {role: next(iter(values)) for role, values in found.items()}
        assert all(abs(p) <= 3 and abs(g) <= 6 for p, g in variation.values())
        assert len(set(variation.values())) == 4
        drawn.append(variation)
        # A role's notes play as its source kit does with its layers' pitches shifted.
        shift = variation["KD"][0]
        source = tmp_path / f"shifted{index}"
        shutil.copytree(roles["KD"], source)
        xml = (source / "drumkit.xml").read_text()
        (source / "drumkit.xml").write_text(
            xml.replace("<pitch>0.0</pitch>", f"<pitch>{shift!r}</pitch>")
        )
        midi = drum_midi((36, 0.05, 40), (36, 0.3, 120))
        np.testing.assert_allclose(  # the same up to float32 rounding of the gain
            hydrogen.render_midi(midi, other, SR),
            hydrogen.render_midi(midi, str(source), SR),
            atol=1e-6,
        )
        # Levels alone: a hi-hat against a kick, 0.4 s apart, moves by the two roles' gains.
        gains = {role: g for role, (_, g) in kitmix.draw_variation(3, index, 0, 6).items()}
        midi = drum_midi((36, 0.1, 100), (42, 0.5, 100))
        ratios = []
        for kit in (folder, levelled[index]):
            audio = hydrogen.render_midi(midi, kit, SR)
            ratios.append(
                np.abs(audio[SR // 2 - 100 :]).max() / np.abs(audio[: SR // 2 - 100]).max()
            )
        assert ratios[1] / ratios[0] == pytest.approx(
            10 ** ((gains["HH"] - gains["KD"]) / 20), rel=1e-5
        )
    assert drawn[0] != drawn[1]
    assert kitmix.draw_variation(3, 0, 0, 0) == dict.fromkeys(kitmix.ROLES, (0.0, 0.0))
    with pytest.raises(ValueError, match="bounds, >= 0"):
        kitmix.write_mixes(str(tmp_path / "bad"), kits, 1, gain_db=-1.0)
    with pytest.raises(ValueError, match="prefix 'a/b'"):
        kitmix.write_mixes(str(tmp_path / "bad"), kits, 1, prefix="a/b")
    assert not (tmp_path / "bad").exists()
    result = invoke_mix_kits(
        kits, tmp_path / "varied", "--count", 2, "--seed", 3, "--pitch-semitones", 2,
        "--gain-db", 6, "--prefix", "vmix",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "holds another kit than --seed 3 draws from" in result.output
    assert "(--pitch-semitones 2 --gain-db 6)" in result.output


def test_a_mix_can_vary_its_hi_hats_alone(tmp_path):
    kits = [mix_source(tmp_path / f"kit{i}", i) for i in range(4)]
    args = dict(seed=3, pitch_semitones=3, gain_db=6)
    plain = kitmix.write_mixes(str(tmp_path / "plain"), kits, 2, seed=3)
    every = kitmix.write_mixes(str(tmp_path / "every"), kits, 2, **args, prefix="vmix")
    hats = kitmix.write_mixes(str(tmp_path / "hats"), kits, 2, **args, vary="HH")
    for a, b, c in zip(plain, every, hats, strict=True):
        a, b, c = (hydrogen.load_drumkit(f) for f in (a, b, c))
        for role, notes in MIX_ROLE_NOTES.items():
            # Hi-hats as in the mix that varies every role (the same draw), the rest as in
            # the plain mix.
            like = b if role == "HH" else a
            for note in set(notes) & set(a.notes):
                x, y = like.notes[note], c.notes[note]
                assert (x.gain, x.volume, x.mute_group) == (y.gain, y.volume, y.mute_group)
                assert [(u.pitch, u.gain) for d in x.components for u in d.layers] == [
                    (u.pitch, u.gain) for d in y.components for u in d.layers
                ]
        assert c.notes[42].gain != a.notes[42].gain  # the hi-hats did move
    text = (tmp_path / "hats" / "mix-00" / "drumkit.xml").read_text()
    assert text.count("semitones") == 1 and "HH: " in text.split("semitones")[0][-60:]
    with pytest.raises(ValueError, match="roles are KD, SD, HH, rest; got 'hh'"):
        kitmix.write_mixes(str(tmp_path / "bad"), kits, 1, **args, vary=("hh",))
    result = invoke_mix_kits(
        kits, tmp_path / "hats", "--count", 2, "--seed", 3, "--pitch-semitones", 3,
        "--gain-db", 6, "--vary", "SD",
    )  # fmt: skip
    assert result.exit_code == 1  # another mix in the folder, named with its options
    assert "(--pitch-semitones 3 --gain-db 6 --vary SD)" in result.output
    result = invoke_mix_kits(kits, tmp_path / "bad", "--vary", "HH,toms")
    assert result.exit_code == 2
    assert "Invalid value for '--vary': toms: the roles are KD,SD,HH,rest" in result.output
    assert not (tmp_path / "bad").exists()


def test_prepare_refuses_two_kits_of_one_name(tmp_path):
    # Two mix sets' mix-00: their renders would share one cache folder and test-set name.
    first, second = (
        mix_source(tmp_path / "a" / "mix-00", 0),
        mix_source(tmp_path / "b" / "mix-00", 1),
    )
    out = tmp_path / "data"
    args = ["drums", "--data-dir", "none", "--procedural", "3", "--kits", first,
            "--train-kits", f"{first},{second}", "--no-progress", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(prepare, args)
    assert result.exit_code == 1, result.output  # a message, not a traceback
    assert f"kits {first} and {second} are both named h2-mix-00" in result.output
    assert not out.exists()


def test_mix_kits_reruns_keep_the_mixes_and_bad_kits_are_errors(tmp_path):
    kits = [mix_source(tmp_path / f"kit{i}", i) for i in range(3)]
    out = tmp_path / "mixes"

    def mix(*args):
        return CliRunner().invoke(prepare, ["mix-kits", "--out", str(out), *map(str, args)])

    result = mix("--kits", ",".join(kits), "--count", 2)
    assert result.exit_code == 0, result.output
    folders = [str(out / "mix-00"), str(out / "mix-01")]
    assert result.output.splitlines() == [*folders, f"--train-kits {','.join(folders)}"]
    roles = kitmix.draw_mix(kits, 0, 0)
    assert roles["rest"] == roles["KD"] and len({roles[c] for c in ("KD", "SD", "HH")}) == 3
    written = os.stat(out / "mix-00" / "drumkit.xml").st_mtime_ns
    assert mix("--kits", ",".join(kits), "--count", 3).exit_code == 0  # keeps 2, adds one
    assert os.stat(out / "mix-00" / "drumkit.xml").st_mtime_ns == written
    assert sorted(os.listdir(out)) == ["mix-00", "mix-01", "mix-02"]
    result = mix("--kits", ",".join(kits), "--seed", 5)
    assert result.exit_code == 1
    assert f"{out / 'mix-00'} holds another kit than --seed 5 draws from" in result.output
    result = mix("--kits", ",".join(kits[:2]))
    assert result.exit_code == 1 and "mixing needs at least three kits, got 2" in result.output
    no_snare = write_kit(
        tmp_path / "no-snare", instrument(0, "Kick", layer("k.wav")), {"k.wav": KICK}
    )
    result = mix("--kits", ",".join([*kits, no_snare]), "--out", tmp_path / "other", "--count", 4)
    assert result.exit_code == 1 and "has no instrument for SD" in result.output
    result = mix("--kits", f"{kits[0]},{kits[1]},{tmp_path / 'none.sf2'}")
    assert result.exit_code == 1 and "none.sf2" in result.output
    assert not (tmp_path / "other").exists()  # the kits are checked before anything is written


def test_a_mix_links_a_sample_from_outside_its_kit_inside_the_mix(tmp_path):
    kits = [mix_source(tmp_path / "kits" / f"kit{i}", i) for i in range(3)]
    soundfile.write(tmp_path / "shared.wav", HAT, SR, subtype="FLOAT")
    for kit in kits:  # every kick's soft layer is a file two folders up
        xml = os.path.join(kit, "drumkit.xml")
        with open(xml) as file:
            text = file.read().replace("<filename>kick.wav<", "<filename>../../shared.wav<")
        with open(xml, "w") as file:
            file.write(text)
    (folder,) = kitmix.write_mixes(str(tmp_path / "mixes"), kits, 1)
    assert os.listdir(tmp_path / "mixes") == ["mix-00"]  # nothing written beside the mix
    links = [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names]
    assert os.path.join(folder, "samples", "KD", "outside", ".._.._shared.wav") in links
    midi = drum_midi((36, 0.05, 40), (36, 0.2, 120))
    kd = kitmix.draw_mix(kits, 0, 0)["KD"]
    np.testing.assert_array_equal(
        hydrogen.render_midi(midi, folder, SR), hydrogen.render_midi(midi, kd, SR)
    )
