"""Kits drawn from one-shot sample packs: the draw, the drumkit written, its render, the CLI."""

import os
import re

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from test_hydrogen import SR, burst, drum_midi, reference_mix

from loco_tf.pipelines import hydrogen, oneshot, readers, render
from loco_tf.recipes.prepare_cli import prepare

# File names per role of the fake pack: two or more samples each, three toms and more.
FAKE_FILES = {
    "kick": ["kick_a.wav", "kick_b.wav", "kick_c.wav"],
    "snare": ["snare_a.wav", "snare_b.wav"],
    "side stick": ["stick_a.wav", "stick_b.wav"],
    "clap": ["clap_a.wav", "clap_b.wav"],
    "closed hi-hat": ["hhc_a.wav", "hhc_b.wav"],
    "pedal hi-hat": ["hhp_a.wav", "hhp_b.wav"],
    "open hi-hat": ["hho_a.wav", "hho_b.wav"],
    "tom": ["tom_a.wav", "tom_b.wav", "tom_c.wav", "tom_d.wav"],
    "crash": ["crash_a.wav", "crash_b.wav"],
    "ride": ["ride_a.wav", "ride_b.wav"],
}
PATTERNS = {
    "kick": ("kick_*",), "snare": ("snare_*",), "side stick": ("stick_*",), "clap": ("clap_*",),
    "closed hi-hat": ("hhc_*",), "pedal hi-hat": ("hhp_*",), "open hi-hat": ("hho_*",),
    "tom": ("tom_*",), "crash": ("crash_*",), "ride": ("ride_*",),
}  # fmt: skip


@pytest.fixture
def fake_pack(tmp_path, monkeypatch):
    """Pack "fake": a distinct noise burst per file at SR, plus an unreadable kick."""
    folder = tmp_path / "pack"
    folder.mkdir()
    seed = 10
    for files in FAKE_FILES.values():
        for name in files:
            seed += 1
            soundfile.write(folder / name, burst(seed % 7, 600, seed), SR, subtype="FLOAT")
    (folder / "kick_broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt junk")
    (folder / "notes.txt").write_text("not a sample")
    pack = oneshot.Pack(str(folder), "fake-samples", PATTERNS)
    monkeypatch.setitem(oneshot.PACKS, "fake", pack)
    return folder


def test_pack_samples_gathers_each_role_and_skips_an_unreadable_file_naming_it(fake_pack):
    with pytest.warns(UserWarning, match=re.escape(str(fake_pack / "kick_broken.wav"))):
        samples = oneshot.pack_samples(["fake"])
    assert {role: [os.path.basename(p) for p in paths] for role, paths in samples.items()} == (
        FAKE_FILES
    )


@pytest.mark.filterwarnings("ignore:skipping the unreadable sample")
def test_bad_packs_are_errors_that_say_what_to_do(fake_pack, monkeypatch):
    with pytest.raises(oneshot.PackError, match="unknown sample pack 'nope'.*lmms"):
        oneshot.pack_samples(["nope"])
    with pytest.raises(oneshot.PackError, match="no sample pack given"):
        oneshot.pack_samples([])
    gone = oneshot.Pack(str(fake_pack / "gone"), "gone-samples", PATTERNS)
    monkeypatch.setitem(oneshot.PACKS, "gone", gone)
    with pytest.raises(oneshot.PackError, match="apt-get install gone-samples"):
        oneshot.pack_samples(["gone"])
    no_ride = oneshot.Pack(str(fake_pack), "fake-samples", {**PATTERNS, "ride": ("none_*",)})
    monkeypatch.setitem(oneshot.PACKS, "noride", no_ride)
    with pytest.raises(oneshot.PackError, match="no sample for: ride"):
        oneshot.pack_samples(["noride"])


@pytest.mark.filterwarnings("ignore:skipping the unreadable sample")
def test_draws_are_reproducible_vary_by_index_and_seed_and_stay_in_range(fake_pack):
    samples = oneshot.pack_samples(["fake"])
    draws = {
        (seed, index): oneshot.draw_kit(samples, seed, index)
        for seed in (0, 1)
        for index in range(20)
    }
    assert oneshot.draw_kit(samples, 0, 3) == draws[0, 3]
    assert len({tuple(kit) for kit in draws.values()}) == len(draws)
    for kit in draws.values():
        assert [choice.name for choice in kit] == list(oneshot.ROLES)
        for choice in kit:
            role = oneshot.ROLES[choice.name][0]
            assert choice.path in samples[role]
            assert abs(choice.pitch) <= oneshot.PITCH_SEMITONES
            assert oneshot.GAIN_RANGE[0] <= choice.gain <= oneshot.GAIN_RANGE[1]
        toms = [choice.path for choice in kit if choice.name.endswith("Tom")]
        assert len(set(toms)) == 3  # the pack has four
    # Every sample of a role is drawn somewhere in forty kits.
    kicks = {kit[0].path for kit in draws.values()}
    assert kicks == set(samples["kick"])
    pitches = [choice.pitch for kit in draws.values() for choice in kit]
    assert min(pitches) < -1 and max(pitches) > 1


@pytest.mark.filterwarnings("ignore:skipping the unreadable sample")
def test_a_written_kit_plays_each_gm_note_with_its_drawn_sample_pitch_and_level(
    fake_pack, tmp_path
):
    folder = oneshot.write_kits(str(tmp_path / "kits"), 2, packs=("fake",), seed=5)[1]
    choices = oneshot.draw_kit(oneshot.pack_samples(["fake"]), 5, 1)
    kit = hydrogen.load_drumkit(folder)
    assert kit.name == "oneshot-01" and render.kit_source(folder).kind == "hydrogen"
    assert hydrogen.gm_order_doubts(kit) == []
    for choice in choices:
        for note in oneshot.ROLES[choice.name][1]:
            played = kit.notes[note]
            assert played.name == choice.name and played.gain == choice.gain
            assert played.mute_group == (0 if "Hi-Hat" in choice.name else -1)
            (layer,) = played.components[0].layers
            assert layer.pitch == choice.pitch
            with open(layer.path, "rb") as copy, open(choice.path, "rb") as source:
                assert copy.read() == source.read()  # a copy inside the kit folder
    assert os.path.dirname(kit.notes[36].components[0].layers[0].path) == folder
    # Every note of a label class sounds (35 is the kick; 22 and 26, GMD's hi-hat edges, are
    # played by the class stand-ins).
    for note in readers.GM_DRUM_TO_CLASS:
        assert hydrogen.instrument_for(kit, note) is not None


@pytest.mark.filterwarnings("ignore:skipping the unreadable sample")
def test_a_kit_drawn_without_pitch_renders_as_a_numpy_mix_of_its_source_samples(
    fake_pack, tmp_path, monkeypatch
):
    monkeypatch.setattr(oneshot, "PITCH_SEMITONES", 0.0)
    folder = oneshot.write_kits(str(tmp_path / "kits"), 1, packs=("fake",), seed=2)[0]
    by_name = {c.name: c for c in oneshot.draw_kit(oneshot.pack_samples(["fake"]), 2, 0)}
    notes = [(36, 0.1, 100, "Kick"), (38, 0.2, 90, "Snare"), (42, 0.3, 64, "Closed Hi-Hat"),
             (45, 0.4, 127, "Mid Tom"), (35, 0.5, 80, "Kick")]  # fmt: skip
    midi = drum_midi(*((pitch, time, velocity) for pitch, time, velocity, _ in notes))
    placed = []
    for _, time, velocity, name in notes:
        sample, _ = soundfile.read(by_name[name].path, dtype="float64")
        placed.append((time, sample, velocity / 127 * by_name[name].gain))
    np.testing.assert_allclose(
        hydrogen.render_midi(midi, folder, SR), reference_mix(midi, placed), atol=2e-6
    )


@pytest.mark.filterwarnings("ignore:skipping the unreadable sample")
def test_a_rerun_keeps_its_kits_and_another_kit_in_the_way_is_an_error(fake_pack, tmp_path):
    out = tmp_path / "kits"
    folders = oneshot.write_kits(str(out), 3, packs=("fake",), seed=0)
    assert folders == [str(out / f"oneshot-0{i}") for i in range(3)]
    xml = out / "oneshot-01" / "drumkit.xml"
    before = xml.stat().st_mtime_ns
    assert oneshot.write_kits(str(out), 4, packs=("fake",), seed=0)[:3] == folders
    assert xml.stat().st_mtime_ns == before
    assert sorted(os.listdir(out)) == [f"oneshot-0{i}" for i in range(4)]  # no staging left
    with pytest.raises(FileExistsError, match=re.escape(str(out / "oneshot-00"))):
        oneshot.write_kits(str(out), 1, packs=("fake",), seed=1)
    (out / "oneshot-00" / "drumkit.xml").unlink()  # an interrupted copy by hand, say
    with pytest.raises(FileExistsError, match="remove it or choose another --out"):
        oneshot.write_kits(str(out), 1, packs=("fake",), seed=0)


def test_cli_writes_kits_prints_the_train_kits_option_and_reports_bad_packs(fake_pack, tmp_path):
    runner = CliRunner()
    out = tmp_path / "kits"
    result = runner.invoke(prepare, ["kits", "--out", str(out), "--count", "2", "--packs", "fake"])
    assert result.exit_code == 0, result.output
    folders = [str(out / "oneshot-00"), str(out / "oneshot-01")]
    assert f"--train-kits {','.join(folders)}" in result.output
    assert f"warning: skipping the unreadable sample {fake_pack / 'kick_broken.wav'}" in (
        result.output
    )
    assert all(os.path.isfile(os.path.join(f, "drumkit.xml")) for f in folders)
    result = runner.invoke(prepare, ["kits", "--out", str(out), "--packs", "fake,nope"])
    assert result.exit_code == 1
    assert "unknown sample pack 'nope'" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(
    not all(os.path.isdir(pack.folder) for pack in oneshot.PACKS.values()),
    reason="needs Debian's lmms-common and sonic-pi-samples",
)
@pytest.mark.filterwarnings("ignore:skipping the unreadable sample")  # LMMS's kick04.ogg
def test_debian_packs_give_kits_whose_class_notes_play_their_class(tmp_path):
    samples = oneshot.pack_samples(list(oneshot.PACKS))
    assert len(samples["kick"]) >= 30 and len(samples["snare"]) >= 25
    assert len(samples["closed hi-hat"]) >= 6 and len(samples["open hi-hat"]) >= 4
    words = {"KD": ("kick", "bassdrum", "bd_"), "SD": ("snare", "sn_"), "HH": ("hihat", "cymbal")}
    for folder in oneshot.write_kits(str(tmp_path), 4):
        kit = hydrogen.load_drumkit(folder)
        for note, drum_class in readers.GM_DRUM_TO_CLASS.items():
            if note in (37,):  # the side stick is a rim or a tick, not named like a snare
                continue
            sample = os.path.basename(
                hydrogen.instrument_for(kit, note).components[0].layers[0].path
            )
            assert any(word in sample for word in words[drum_class]), (note, sample)
        audio = hydrogen.render_midi(
            drum_midi((36, 0.1, 100), (38, 0.3, 100), (46, 0.5, 100)), folder, SR
        )
        assert np.isfinite(audio).all() and np.max(np.abs(audio)) == pytest.approx(1.0)
