"""Shard writing: record contents read back with protobuf, atomic and resumable writes, manifest."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from loco_tf.features import FeatureConfig
from loco_tf.pipelines import tfrecords
from loco_tf.pipelines.tfrecords import (
    SegmentExample,
    SourceFile,
    read_manifest,
    shard_file_name,
    shard_index,
    write_shards,
)

CONFIG = FeatureConfig()
CLASSES = ("KD", "SD", "HH")


def make_examples(sources, per_source=3, seed=0):
    rng = np.random.default_rng(seed)
    examples = []
    for source in sources:
        for i in range(per_source):
            frames = int(rng.integers(200, 401))
            event_frames = tuple(
                np.sort(rng.integers(0, frames, size=rng.integers(0, 5))) for _ in CLASSES
            )
            examples.append(
                SegmentExample(
                    features=rng.normal(-40, 20, (frames, 80, 2)).astype(np.float32),
                    counts=np.array([len(f) for f in event_frames]),
                    source=source,
                    start_frame=400 * i,
                    event_frames=event_frames,
                )
            )
    return examples


def read_records(path, compression=None):
    """Every record of a file as a dict of plain values, parsed by protobuf, not our parser."""
    records = []
    for serialized in tf.data.TFRecordDataset(path, compression_type=compression or ""):
        feature = tf.train.Example.FromString(serialized.numpy()).features.feature
        n, mels = feature["num_frames"].int64_list.value[0], feature["num_mels"].int64_list.value[0]
        raw = feature["features"].bytes_list.value[0]
        lengths = list(feature["event_frames_lengths"].int64_list.value)
        flat = list(feature["event_frames"].int64_list.value)
        bounds = np.cumsum([0, *lengths])
        records.append(
            {
                "features": np.frombuffer(raw, dtype="<f4").reshape(n, mels, 2),
                "counts": list(feature["counts"].int64_list.value),
                "source": feature["source"].bytes_list.value[0].decode(),
                "start_frame": feature["start_frame"].int64_list.value[0],
                "event_frames": [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
            }
        )
    return records


def write(examples, out_dir, num_shards=2, **kwargs):
    return write_shards(
        examples,
        out_dir,
        "drums",
        num_shards,
        class_names=CLASSES,
        feature_config=CONFIG,
        **kwargs,
    )


def test_records_hold_the_examples_and_a_source_stays_in_one_shard(tmp_path):
    examples = make_examples(["a.wav", "b.wav", "c.wav", "d.wav"])
    manifest = write(examples, tmp_path)
    assert sorted(os.listdir(tmp_path)) == [
        "drums-00000-of-00002.tfrecord",
        "drums-00001-of-00002.tfrecord",
        "drums.manifest.json",
    ]
    for index, path in enumerate(manifest.files):
        expected = [e for e in examples if shard_index(e.source, 2) == index]
        records = read_records(path)
        assert len(records) == len(expected) == manifest.shards[index].num_examples
        for record, example in zip(records, expected, strict=True):
            np.testing.assert_array_equal(record["features"], example.features)
            assert record["counts"] == example.counts.tolist()
            assert record["source"] == example.source
            assert record["start_frame"] == example.start_frame
            assert record["event_frames"] == [f.tolist() for f in example.event_frames]


def test_shard_index_is_stable_and_spreads_sources():
    # A fixed function of the id: sha256 -> first 8 bytes little-endian -> mod.
    digest = hashlib.sha256(b"drummer1/session1/1.wav").digest()
    assert shard_index("drummer1/session1/1.wav", 7) == int.from_bytes(digest[:8], "little") % 7
    used = {shard_index(f"file{i}.wav", 4) for i in range(40)}
    assert used == {0, 1, 2, 3}


def test_gzip_shards(tmp_path):
    examples = make_examples(["a.wav", "b.wav"], per_source=2)
    manifest = write(examples, tmp_path, num_shards=1, compression="GZIP")
    (path,) = manifest.files
    assert path.endswith("drums-00000-of-00001.tfrecord.gz")
    with open(path, "rb") as file:
        assert file.read(2) == b"\x1f\x8b"  # gzip magic
    records = read_records(path, "GZIP")
    assert [r["source"] for r in records] == [e.source for e in examples]
    assert read_manifest(manifest.path).compression == "GZIP"


def test_manifest_contents_and_hashes(tmp_path):
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    sources = []
    for i, seconds in enumerate([0.5, 1.25]):
        path = audio_dir / f"take{i}.wav"
        soundfile.write(path, np.full(int(seconds * 8000), 0.1 * (i + 1)), 8000)
        sources.append(str(path))
    described = SourceFile("rendered:7", sha256="ab" * 32, duration_seconds=9.5)
    examples = make_examples([*sources, "rendered:7"], seed=1)
    out = tmp_path / "shards"
    manifest = write(examples, out, num_shards=3, k_max=31, sources=[described])

    content = json.loads((out / "drums.manifest.json").read_text())
    assert content["class_names"] == list(CLASSES)
    assert content["k_max"] == 31
    assert FeatureConfig.from_dict(content["feature_config"]) == CONFIG
    by_id = {}
    for index, shard in enumerate(content["shards"]):
        assert shard["file"] == shard_file_name("drums", index, 3, None)
        in_shard = [e for e in examples if shard_index(e.source, 3) == index]
        assert shard["num_examples"] == len(in_shard)
        assert shard["num_frames"] == sum(e.features.shape[0] for e in in_shard)
        assert shard["counts"] == np.sum([e.counts for e in in_shard] or [[0, 0, 0]], 0).tolist()
        assert [s["id"] for s in shard["sources"]] == list(
            dict.fromkeys(e.source for e in in_shard)
        )
        by_id.update({s["id"]: s for s in shard["sources"]})
    for path, seconds in zip(sources, [0.5, 1.25], strict=True):
        with open(path, "rb") as file:
            assert by_id[path]["sha256"] == hashlib.sha256(file.read()).hexdigest()
        assert by_id[path]["duration_seconds"] == pytest.approx(seconds)
    assert by_id["rendered:7"] == {"id": "rendered:7", "sha256": "ab" * 32, "duration_seconds": 9.5}
    totals = content["totals"]
    assert totals["num_examples"] == len(examples) == 9
    assert totals["counts"] == np.sum([e.counts for e in examples], 0).tolist()
    assert totals["num_sources"] == 3
    assert totals["duration_seconds"] == pytest.approx(0.5 + 1.25 + 9.5)
    assert read_manifest(out / "drums.manifest.json") == manifest


def test_unknown_sources_are_recorded_without_hash(tmp_path):
    manifest = write(make_examples(["not/a/file"], per_source=1), tmp_path, num_shards=1)
    assert manifest.shards[0].sources == (SourceFile("not/a/file", None, None),)
    assert manifest.totals["duration_seconds"] is None


def test_an_error_midway_leaves_no_shard_and_no_temporary(tmp_path):
    examples = make_examples(["a.wav", "b.wav", "c.wav"])

    def failing():
        yield from examples[:5]
        raise RuntimeError("feature extraction failed")

    with pytest.raises(RuntimeError, match="feature extraction failed"):
        write(failing(), tmp_path)
    assert os.listdir(tmp_path) == []


def test_rerun_skips_complete_shards_and_replaces_stale_temporaries(tmp_path):
    examples = make_examples(["a.wav", "b.wav", "c.wav", "d.wav"])
    first = write(examples, tmp_path)
    kept, lost = first.files
    kept_bytes, lost_bytes = open(kept, "rb").read(), open(lost, "rb").read()
    kept_mtime = os.stat(kept).st_mtime_ns
    # A crash: shard 1 never renamed, its temporary from a dead process left behind.
    os.remove(lost)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = f"{lost}.tmp-{dead.pid}"
    with open(stale, "wb") as file:
        file.write(b"half a record")
    os.remove(first.path)

    second = write(examples, tmp_path)
    assert not os.path.exists(stale)
    assert os.stat(kept).st_mtime_ns == kept_mtime  # not rewritten
    assert open(kept, "rb").read() == kept_bytes
    assert open(lost, "rb").read() == lost_bytes
    assert second == first
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(kept), os.path.basename(lost), "drums.manifest.json"]
    )


def test_kill_minus_9_leaves_no_file_under_a_shard_name(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_tfrecords import make_examples, write
        def slow():
            for i, example in enumerate(make_examples(["a.wav", "b.wav", "c.wav", "d.wav"])):
                if i == 6:
                    print("written", flush=True)
                    time.sleep(60)
                yield example
        write(slow(), {str(tmp_path)!r})
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        # Other lines may come first (pyfluidsynth prints where it found its library when
        # the environment variable CI is set, as it is on CI).
        lines = iter(child.stdout.readline, "")
        assert "written" in (line.strip() for line in lines)
        temporaries = sorted(os.listdir(tmp_path))
        assert temporaries and all(".tmp-" in name for name in temporaries)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert all(".tmp-" in name for name in os.listdir(tmp_path))

    manifest = write(make_examples(["a.wav", "b.wav", "c.wav", "d.wav"]), tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(p) for p in manifest.files] + ["drums.manifest.json"]
    )
    assert sum(len(read_records(path)) for path in manifest.files) == 12


def test_bad_examples_and_arguments(tmp_path):
    (example,) = make_examples(["a.wav"], per_source=1)
    wrong_counts = SegmentExample(
        example.features, np.array([1, 2]), "a.wav", 0, example.event_frames
    )
    with pytest.raises(ValueError, match="3 classes"):
        write([wrong_counts], tmp_path)
    with pytest.raises(ValueError, match="compression"):
        write([example], tmp_path, compression="ZLIB")
    assert not any(".tmp-" in name for name in os.listdir(tmp_path))
    with pytest.raises(ValueError, match="mel bands"):
        write_shards(
            [example],
            tmp_path,
            "x",
            1,
            class_names=CLASSES,
            feature_config=FeatureConfig(n_mels=40),
        )


def test_manifest_from_another_format_is_refused(tmp_path):
    path = tmp_path / "x.manifest.json"
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a"):
        read_manifest(path)
    path.write_text(json.dumps({"format": tfrecords.MANIFEST_FORMAT, "format_version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        read_manifest(path)
