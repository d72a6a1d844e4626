"""Sharded TFRecord files of labelled segments, written atomically, with a JSON manifest.

Record layout (one `tf.train.Example` per segment):

| key                    | type                     | content                                    |
| ---------------------- | ------------------------ | ------------------------------------------ |
| `features`             | bytes, 1 value           | float32 little-endian, C order,            |
|                        |                          | `[num_frames, num_mels, 2]`                |
| `num_frames`           | int64, 1 value           | frames in the segment                      |
| `num_mels`             | int64, 1 value           | mel bands (the shape's middle dimension)   |
| `counts`               | int64, 1 value per class | events of each class in the segment        |
| `source`               | bytes, 1 value           | the source file's id (UTF-8)               |
| `start_frame`          | int64, 1 value           | first frame in the source's feature matrix |
| `event_frames`         | int64, sum of lengths    | event frames relative to `start_frame`,    |
|                        |                          | class after class                          |
| `event_frames_lengths` | int64, 1 value per class | how many of `event_frames` each class has  |

`event_frames` / `event_frames_lengths` (a ragged `[classes, None]` list) exist for evaluation;
the training reader in `pipelines.dataset` never parses them, so no timing can reach a model.

Shards: `NAME-00000-of-000NN.tfrecord` (`.tfrecord.gz` with GZIP). A segment goes to the
shard chosen by a hash of its source id (`shard_index`), so all segments of one file share a
shard: a shard is a set of whole files, and the assignment depends neither on the order nor on
the set of the other files.
(With few files per shard the shards differ in size; for a balanced split use at least a few
dozen files per shard.)

Atomic writes: a shard is written to `NAME-...tfrecord.tmp-<pid>` in the output folder and
renamed to its name only when complete (`os.replace` within one file system), so a file under
a shard's name is always complete, also after a kill -9. A rerun skips shards that exist,
deletes temporary files left by processes that no longer run, and writes the rest; the
manifest `NAME.manifest.json` is written (atomically) last. A rerun must be given the same
examples (segmenting is deterministic for a seed, features are deterministic): the manifest's
statistics of a skipped shard come from the examples routed to it in this run.

Compression: float32 log-mel features compress poorly (GZIP saves ~11 % on rendered drums)
and GZIP writing runs at ~100 segments (25 MB) per second, while uncompressed writing runs at
~1,300 segments (330 MB) per second here, limited by the disk, against ~400 segments per second
of feature extraction on one core. So the default is no compression. Writing is not spread
over threads or processes: two writer threads measured no faster than one (TFRecordWriter.write
holds the GIL), and the pipeline's time is in feature extraction, which is what to run in
parallel, one source file per task, upstream of `write_shards`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import soundfile
import tensorflow as tf

from loco_tf.features import FeatureConfig
from loco_tf.pipelines.segments import Segment

PathLike = str | os.PathLike

FEATURES = "features"
NUM_FRAMES = "num_frames"
NUM_MELS = "num_mels"
COUNTS = "counts"
SOURCE = "source"
START_FRAME = "start_frame"
EVENT_FRAMES = "event_frames"
EVENT_FRAMES_LENGTHS = "event_frames_lengths"

MANIFEST_FORMAT = "loco-tf/segment-tfrecords"
MANIFEST_VERSION = 1
COMPRESSIONS = (None, "GZIP")


@dataclasses.dataclass(frozen=True)
class SegmentExample:
    """One record: a segment's features, its counts and (for evaluation) its event frames.

    Attributes:
        features: float32 `[num_frames, num_mels, 2]`.
        counts: int `[classes]`.
        source: the source file's id.
        start_frame: first frame in the source's feature matrix.
        event_frames: per class, int frames relative to `start_frame`.
    """

    features: np.ndarray
    counts: np.ndarray
    source: str
    start_frame: int
    event_frames: tuple[np.ndarray, ...]

    @classmethod
    def from_segment(cls, segment: Segment, file_features: np.ndarray) -> SegmentExample:
        """The segment's slice of its file's `[frames, n_mels, 2]` feature matrix."""
        features = file_features[segment.start_frame : segment.stop_frame]
        if features.shape[0] != segment.n_frames:
            raise ValueError(
                f"{segment.source}: segment frames [{segment.start_frame}, "
                f"{segment.stop_frame}) exceed the {file_features.shape[0]} feature frames"
            )
        return cls(
            features, segment.counts, segment.source, segment.start_frame, segment.event_frames
        )


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """A source file as the manifest records it.

    Attributes:
        id: the id that the segments' `source` carries.
        sha256: hex digest of the file's bytes; None when unknown.
        duration_seconds: audio duration; None when unknown.
    """

    id: str
    sha256: str | None = None
    duration_seconds: float | None = None

    @classmethod
    def from_path(cls, path: PathLike, id: str | None = None) -> SourceFile:
        """Hashes the file; its duration is read from the audio header when libsndfile can."""
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        try:
            duration = soundfile.info(os.fspath(path)).duration
        except (soundfile.SoundFileError, OSError):
            duration = None
        return cls(os.fspath(path) if id is None else id, digest.hexdigest(), duration)


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One shard in the manifest: file name (in the manifest's folder) and its contents."""

    file: str
    num_examples: int
    num_frames: int
    counts: tuple[int, ...]
    sources: tuple[SourceFile, ...]


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What a set of shards holds; `read_manifest` reads it, `write_shards` writes it.

    Attributes:
        path: the manifest file.
        name: the shards' name prefix.
        compression: None or "GZIP".
        feature_config: the front end that computed the features.
        class_names: the classes of `counts`, in order.
        k_max: the count truncation the data was prepared for (eq. 14), or None.
        shards: per shard, its contents.
        totals: sums over the shards: num_shards, num_examples, num_frames, counts,
            num_sources, duration_seconds (of the sources whose duration is known).
        parts: for a set made of several (`combine_manifests`), their manifests; else empty.
    """

    path: str
    name: str
    compression: str | None
    feature_config: FeatureConfig
    class_names: tuple[Hashable, ...]
    k_max: int | None
    shards: tuple[ShardInfo, ...]
    totals: dict[str, Any]
    parts: tuple[Manifest, ...] = ()

    @property
    def files(self) -> list[str]:
        """Paths of the shard files."""
        folder = os.path.dirname(os.path.abspath(self.path))
        return [os.path.join(folder, shard.file) for shard in self.shards]


def combine_manifests(manifests: Sequence[Manifest]) -> Manifest:
    """One set made of several: their shards together (e.g. your own kit's renders with the
    data a model was trained on), for training, validation and tuning.

    The sets must share their front end and classes. The combined manifest's shard files are
    absolute paths, its `path` is the parts' paths joined by commas (what `--train-set` takes),
    its totals are sums (a performance rendered in two sets counts twice in `num_sources`),
    and `parts` keeps the sets, since two sets may hold the same source ids (the same
    performances with other kits) and must not be joined into one file
    (`recipes.drums.manifest_files`).
    """
    if not manifests:
        raise ValueError("no sets to combine")
    if len(manifests) == 1:
        return manifests[0]
    first = manifests[0]
    for other in manifests[1:]:
        if other.feature_config != first.feature_config:
            raise ValueError(
                f"{other.path} and {first.path} have different features "
                f"({other.feature_config} against {first.feature_config}): prepare the sets "
                "with the same front end to train on them together"
            )
        if other.class_names != first.class_names:
            raise ValueError(
                f"{other.path} has the classes {list(other.class_names)}, {first.path} "
                f"{list(first.class_names)}: prepare the sets with the same classes to train "
                "on them together"
            )
    shards = tuple(
        dataclasses.replace(shard, file=path)
        for manifest in manifests
        for shard, path in zip(manifest.shards, manifest.files, strict=True)
    )
    totals: dict[str, Any] = {
        key: sum(manifest.totals[key] for manifest in manifests)
        for key in ("num_shards", "num_examples", "num_frames", "num_sources")
    }
    durations = [manifest.totals.get("duration_seconds") for manifest in manifests]
    known = [duration for duration in durations if duration is not None]
    totals["duration_seconds"] = float(sum(known)) if known else None
    totals["counts"] = [
        sum(column)
        for column in zip(*(manifest.totals["counts"] for manifest in manifests), strict=True)
    ]
    compressions = {manifest.compression for manifest in manifests}
    k_maxes = {manifest.k_max for manifest in manifests}
    return Manifest(
        path=",".join(manifest.path for manifest in manifests),
        name=",".join(manifest.name for manifest in manifests),
        # The readers take each shard's compression from its file name (`.gz`).
        compression=compressions.pop() if len(compressions) == 1 else None,
        feature_config=first.feature_config,
        class_names=first.class_names,
        k_max=k_maxes.pop() if len(k_maxes) == 1 else None,
        shards=shards,
        totals=totals,
        parts=tuple(manifests),
    )


def shard_index(source: str, num_shards: int) -> int:
    """The shard of every segment of `source`: a stable hash of the id (not Python's hash(),
    which changes between processes)."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") % num_shards


def shard_file_name(name: str, index: int, num_shards: int, compression: str | None) -> str:
    """`NAME-00000-of-000NN.tfrecord`, with `.gz` appended for GZIP."""
    suffix = ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"
    return f"{name}-{index:05d}-of-{num_shards:05d}{suffix}"


def manifest_path(out_dir: PathLike, name: str) -> str:
    """`out_dir/NAME.manifest.json`."""
    return os.path.join(os.fspath(out_dir), f"{name}.manifest.json")


def _int64(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def serialize_example(example: SegmentExample) -> bytes:
    """The `tf.train.Example` bytes of one record (layout in the module docstring)."""
    features = np.asarray(example.features)
    if features.ndim != 3 or features.shape[2] != 2:
        raise ValueError(
            f"{example.source}: features must be [frames, n_mels, 2], got {features.shape}"
        )
    event_frames = [np.asarray(frames, dtype=np.int64).ravel() for frames in example.event_frames]
    record = {
        FEATURES: _bytes(features.astype("<f4", copy=False).tobytes(order="C")),
        NUM_FRAMES: _int64([features.shape[0]]),
        NUM_MELS: _int64([features.shape[1]]),
        COUNTS: _int64(np.asarray(example.counts).ravel()),
        SOURCE: _bytes(example.source.encode("utf-8")),
        START_FRAME: _int64([example.start_frame]),
        EVENT_FRAMES: _int64(np.concatenate([np.zeros(0, np.int64), *event_frames])),
        EVENT_FRAMES_LENGTHS: _int64([len(frames) for frames in event_frames]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=record))
    # Deterministic: map fields otherwise serialise in an order that varies between processes.
    return example.SerializeToString(deterministic=True)


def sync_file(path: str) -> None:
    """Forces a file's data to disk before its rename, so that the rename cannot outlive its
    data in a power cut (a kill -9 is safe without it: the page cache survives the process)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(out_dir: str, name: str) -> None:
    """Deletes temporary files of `name` left by processes that no longer run (a crash)."""
    pattern = re.compile(
        re.escape(name) + r"(-\d{5}-of-\d{5}\.tfrecord(\.gz)?|\.manifest\.json)"
        r"\.tmp-(\d+)"
    )
    for entry in os.listdir(out_dir):
        match = pattern.fullmatch(entry)
        if match and not _pid_running(int(match.group(3))):
            os.remove(os.path.join(out_dir, entry))


@dataclasses.dataclass
class _ShardTally:
    num_examples: int = 0
    num_frames: int = 0
    counts: np.ndarray | None = None
    sources: dict[str, None] = dataclasses.field(default_factory=dict)


def write_shards(
    examples: Iterable[SegmentExample],
    out_dir: PathLike,
    name: str,
    num_shards: int,
    compression: str | None = None,
    *,
    class_names: Sequence[Hashable],
    feature_config: FeatureConfig,
    k_max: int | None = None,
    sources: Iterable[SourceFile] = (),
) -> Manifest:
    """Writes segments to `num_shards` TFRecord shards and the manifest, resumably.

    Args:
        examples: the records; each goes to shard `shard_index(example.source, num_shards)`.
        out_dir: the folder (created if missing).
        name: shard and manifest name prefix.
        num_shards: how many shards; a shard that no example falls in is written empty.
        compression: None or "GZIP".
        class_names: the classes of every example's `counts`, in order.
        feature_config: the front end that computed the features (kept in the manifest).
        k_max: the count truncation (eq. 14) the data is prepared for, kept in the manifest.
        sources: hash and duration of source files, iterated only after `examples` is
            consumed, so a generator that streams examples can describe each file as it
            processes it. A source id not described here is described from the file of that
            path when one exists (`SourceFile.from_path`), else recorded with unknown hash and
            duration.

    Returns:
        The manifest as written.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temporaries(out_dir, name)
    num_classes = len(class_names)
    names = [shard_file_name(name, i, num_shards, compression) for i in range(num_shards)]
    paths = [os.path.join(out_dir, file) for file in names]
    temporary = [f"{path}.tmp-{os.getpid()}" for path in paths]
    complete = {index for index, path in enumerate(paths) if os.path.exists(path)}
    tallies = [_ShardTally(counts=np.zeros(num_classes, np.int64)) for _ in range(num_shards)]
    writers: dict[int, tf.io.TFRecordWriter] = {}
    try:
        for example in examples:
            counts = np.asarray(example.counts)
            if counts.shape != (num_classes,) or len(example.event_frames) != num_classes:
                raise ValueError(
                    f"{example.source}@{example.start_frame}: counts {counts.shape} and "
                    f"{len(example.event_frames)} event-frame lists for {num_classes} classes"
                )
            if example.features.shape[1] != feature_config.n_mels:
                raise ValueError(
                    f"{example.source}: {example.features.shape[1]} mel bands, the feature "
                    f"config has {feature_config.n_mels}"
                )
            index = shard_index(example.source, num_shards)
            tally = tallies[index]
            tally.num_examples += 1
            tally.num_frames += example.features.shape[0]
            tally.counts += counts.astype(np.int64)
            tally.sources[example.source] = None
            if index in complete:
                continue
            if index not in writers:
                writers[index] = tf.io.TFRecordWriter(temporary[index], options=compression)
            writers[index].write(serialize_example(example))
        for index in range(num_shards):
            if index not in writers and index not in complete:
                writers[index] = tf.io.TFRecordWriter(temporary[index], options=compression)
        for writer in writers.values():
            writer.close()
        for index in writers:
            sync_file(temporary[index])
            os.replace(temporary[index], paths[index])
    except BaseException:
        for index, writer in writers.items():
            writer.close()
            if os.path.exists(temporary[index]):
                os.remove(temporary[index])
        raise
    described = {source.id: source for source in sources}
    source_files = {}
    for tally in tallies:
        for source in tally.sources:
            if source not in described:
                described[source] = (
                    SourceFile.from_path(source) if os.path.isfile(source) else SourceFile(source)
                )
            source_files[source] = described[source]
    shards = tuple(
        ShardInfo(
            file=file,
            num_examples=tally.num_examples,
            num_frames=tally.num_frames,
            counts=tuple(int(c) for c in tally.counts),
            sources=tuple(described[source] for source in tally.sources),
        )
        for file, tally in zip(names, tallies, strict=True)
    )
    durations = [
        s.duration_seconds for s in source_files.values() if s.duration_seconds is not None
    ]
    manifest = Manifest(
        path=manifest_path(out_dir, name),
        name=name,
        compression=compression,
        feature_config=feature_config,
        class_names=tuple(class_names),
        k_max=k_max,
        shards=shards,
        totals={
            "num_shards": num_shards,
            "num_examples": sum(shard.num_examples for shard in shards),
            "num_frames": sum(shard.num_frames for shard in shards),
            "counts": [int(c) for c in sum(tally.counts for tally in tallies)],
            "num_sources": len(source_files),
            "duration_seconds": float(sum(durations)) if durations else None,
        },
    )
    write_json_atomically(manifest.path, _manifest_json(manifest))
    return manifest


_RECORD_LAYOUT = {
    FEATURES: "bytes: float32 little-endian, C order, [num_frames, num_mels, 2]",
    NUM_FRAMES: "int64",
    NUM_MELS: "int64",
    COUNTS: "int64 per class",
    SOURCE: "bytes: UTF-8 source id",
    START_FRAME: "int64",
    EVENT_FRAMES: "int64 frames relative to start_frame, class after class (evaluation only)",
    EVENT_FRAMES_LENGTHS: "int64 per class: lengths of event_frames (evaluation only)",
}


def _manifest_json(manifest: Manifest) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "name": manifest.name,
        "compression": manifest.compression,
        "feature_config": manifest.feature_config.to_dict(),
        "class_names": list(manifest.class_names),
        "k_max": manifest.k_max,
        "record_layout": _RECORD_LAYOUT,
        "shards": [
            {
                "file": shard.file,
                "num_examples": shard.num_examples,
                "num_frames": shard.num_frames,
                "counts": list(shard.counts),
                "sources": [dataclasses.asdict(source) for source in shard.sources],
            }
            for shard in manifest.shards
        ],
        "totals": manifest.totals,
    }


def write_json_atomically(path: str, content: dict[str, Any]) -> None:
    """JSON to `path` through a synced temporary file and a rename: all or nothing."""
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(content, file, indent=2)
            file.write("\n")
        sync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def read_manifest(path: PathLike) -> Manifest:
    """Reads a manifest written by `write_shards`."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as file:
        content = json.load(file)
    if content.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: not a {MANIFEST_FORMAT} manifest")
    if content.get("format_version") != MANIFEST_VERSION:
        raise ValueError(
            f"{path}: manifest version {content.get('format_version')}, this reader knows "
            f"{MANIFEST_VERSION}"
        )
    shards = tuple(
        ShardInfo(
            file=shard["file"],
            num_examples=shard["num_examples"],
            num_frames=shard["num_frames"],
            counts=tuple(shard["counts"]),
            sources=tuple(SourceFile(**source) for source in shard["sources"]),
        )
        for shard in content["shards"]
    )
    return Manifest(
        path=path,
        name=content["name"],
        compression=content["compression"],
        feature_config=FeatureConfig.from_dict(content["feature_config"]),
        class_names=tuple(content["class_names"]),
        k_max=content["k_max"],
        shards=shards,
        totals=content["totals"],
    )
