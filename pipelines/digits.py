"""MNIST digits placed at random on a canvas, labelled only by how many of each digit (§8.2).

`read_idx` reads MNIST's idx files (gzip or plain). `compose` places non-overlapping digits
uniformly at random on a blank canvas; its labels are the counts per digit class (10), and the
true boxes are kept for evaluation only.

`prepare_digit_sets` writes the canvases as TFRecord shards with a JSON manifest, the way
`pipelines.tfrecords` writes audio segments (temporary file + rename, synced; a rerun skips
complete shards and removes temporaries of dead processes; the manifest is written last):

| set                  | canvases from                 | digits per canvas   | purpose            |
| -------------------- | ----------------------------- | ------------------- | ------------------ |
| `digits-train`       | MNIST train, all but the last | `digits` (0 to 5)   | training           |
|                      | `validation_images`           |                     |                    |
| `digits-validation`  | the last `validation_images`  | `digits`            | early stopping     |
|                      | of MNIST train                |                     |                    |
| `digits-test`        | MNIST test                    | `digits`            | localisation       |
| `digits-test-single` | MNIST test, each digit once,  | 1                   | recognition        |
|                      | in MNIST's order              |                     |                    |

The original train/test split is kept (§8.2): no test digit is ever in a training canvas.
Canvas `i` of a set is drawn with its own generator, seeded with (seed, set, i), so a canvas
does not depend on the shard it falls in or on the other canvases; shard `k` of `n` holds the
`k`-th contiguous block of canvases.

Record layout (one `tf.train.Example` per canvas):

| key          | type                   | content                                               |
| ------------ | ---------------------- | ----------------------------------------------------- |
| `image`      | bytes, 1 value         | uint8 pixels, row after row, `[size, size]`           |
| `image_size` | int64, 1 value         | `size`                                                |
| `counts`     | int64, 10 values       | digits of each class on the canvas                    |
| `boxes`      | int64, 5 per digit     | (label, row, col, height, width) of each placed digit |
| `index`      | int64, 1 value         | the canvas's number in its set                        |

`boxes` exist for evaluation: the training reader (`training_dataset`) parses `image` and
`counts` only, so no position can reach a model trained on it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from loco_tf.pipelines.tfrecords import (
    manifest_path,
    remove_stale_temporaries,
    shard_file_name,
    sync_file,
    write_json_atomically,
)

PathLike = str | os.PathLike

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IdxError(ValueError):
    """An idx file that cannot be read; the message names the file."""


def read_idx(path: str) -> np.ndarray:
    """An idx file (MNIST's format: magic 0x0000TTDD, D big-endian uint32 sizes, then data)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            data = stream.read()
    except (OSError, EOFError) as error:
        raise IdxError(f"{path}: cannot read ({error})") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise IdxError(f"{path}: not an idx file (bad magic number)")
    dims = data[3]
    header = 4 + 4 * dims
    if len(data) < header:
        raise IdxError(f"{path}: truncated header")
    shape = struct.unpack(f">{dims}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise IdxError(f"{path}: {len(data) - header} data bytes, shape {shape} needs {expected}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape)


KERAS_MNIST = "keras"
"""`load_mnist`'s `data_dir` that means: `keras.datasets.mnist` (downloads once when online)."""


def load_mnist(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(images uint8 [n, 28, 28], labels uint8 [n])` of MNIST's "train" or "test" split.

    `data_dir` is a folder of MNIST's four idx files, or `KERAS_MNIST` ("keras") for
    `keras.datasets.mnist.load_data()`, which downloads the same files once (into
    ~/.keras/datasets) where the machine is online.

    Raises:
        IdxError: a file is missing or unreadable, or the download failed (the message says
            which).
    """
    if data_dir == KERAS_MNIST:
        import keras

        try:
            train, test = keras.datasets.mnist.load_data()
        except Exception as error:  # network errors come in many types; all mean the same here
            raise IdxError(
                f"keras.datasets.mnist could not download MNIST ({error}); pass a folder of "
                "its idx files instead"
            ) from error
        return train if split == "train" else test
    images_name, labels_name = MNIST_FILES[split]
    for name in (images_name, labels_name):
        if not os.path.isfile(os.path.join(data_dir, name)):
            raise IdxError(
                f"{os.path.join(data_dir, name)}: not found; MNIST's idx files "
                f"({', '.join(n for pair in MNIST_FILES.values() for n in pair)}) are needed"
            )
    images = read_idx(os.path.join(data_dir, images_name))
    labels = read_idx(os.path.join(data_dir, labels_name))
    if len(images) != len(labels):
        raise IdxError(f"{data_dir}: {len(images)} {split} images but {len(labels)} labels")
    return images, labels


@dataclasses.dataclass(frozen=True)
class Canvas:
    """One composed image. `boxes`: `[n, 5]` int (label, row, col, height, width)."""

    image: np.ndarray
    counts: np.ndarray
    boxes: np.ndarray


def compose(
    images: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    size: int = 100,
    digits: tuple[int, int] = (0, 5),
    attempts: int = 100,
) -> Canvas:
    """Places between `digits[0]` and `digits[1]` random digits without overlap.

    Positions are uniform over the canvas; a position that would overlap an earlier digit's
    box is redrawn (up to `attempts` times, then the digit is left out).
    """
    canvas = np.zeros((size, size), np.uint8)
    height, width = images.shape[1:3]
    occupied = np.zeros((size, size), bool)
    boxes = []
    for _ in range(rng.integers(digits[0], digits[1] + 1)):
        index = rng.integers(len(images))
        for _ in range(attempts):
            row = rng.integers(0, size - height + 1)
            col = rng.integers(0, size - width + 1)
            if not occupied[row : row + height, col : col + width].any():
                occupied[row : row + height, col : col + width] = True
                canvas[row : row + height, col : col + width] = images[index]
                boxes.append((labels[index], row, col, height, width))
                break
    boxes = np.array(boxes, np.int64).reshape(-1, 5)
    counts = np.bincount(boxes[:, 0], minlength=10).astype(np.int64)
    return Canvas(canvas, counts, boxes)


# ---------------------------------------------------------------------------------------------
# TFRecord sets.

IMAGE = "image"
IMAGE_SIZE = "image_size"
COUNTS = "counts"
BOXES = "boxes"
INDEX = "index"

CLASS_NAMES = tuple(str(digit) for digit in range(10))
TRAIN, VALIDATION, TEST, TEST_SINGLE = (
    "digits-train",
    "digits-validation",
    "digits-test",
    "digits-test-single",
)
MANIFEST_FORMAT = "loco-tf/digit-tfrecords"
MANIFEST_VERSION = 1

TRAINING_SPEC = {
    IMAGE: tf.io.FixedLenFeature([], tf.string),
    COUNTS: tf.io.FixedLenFeature([len(CLASS_NAMES)], tf.int64),
}
_RECORD_LAYOUT = {
    IMAGE: "bytes: uint8 pixels, row after row, [image_size, image_size]",
    IMAGE_SIZE: "int64",
    COUNTS: "int64 per class (digits 0..9)",
    BOXES: "int64, 5 per digit: label, row, col, height, width (evaluation only)",
    INDEX: "int64: the canvas's number in its set",
}


@dataclasses.dataclass(frozen=True)
class DigitSetsConfig:
    """What `prepare_digit_sets` writes; `loco prepare digits` has one option per field.

    Attributes:
        size: canvas side in pixels. A model scans it with windows of `window` pixels every
            `stride` pixels, so it must equal `window + stride * (2**n - 1)`: 88 for 8 x 8
            windows of 32 px every 8 px, 152 for 16 x 16.
        digits: (fewest, most) digits drawn per canvas (a digit that finds no free place in
            100 tries is left out).
        train_canvases, validation_canvases, test_canvases: canvases of `digits-train`,
            `digits-validation` and `digits-test`; `digits-test-single` has one canvas per MNIST
            test digit.
        validation_images: the last this many MNIST training digits make the validation
            canvases and never a training canvas.
        canvases_per_shard: records per shard file.
        compression: None or "GZIP".
        seed: seed of every canvas.
    """

    size: int = 88
    digits: tuple[int, int] = (0, 5)
    train_canvases: int = 60_000
    validation_canvases: int = 2_000
    test_canvases: int = 10_000
    validation_images: int = 5_000
    canvases_per_shard: int = 5_000
    compression: str | None = None
    seed: int = 0

    def __post_init__(self):
        if self.size < 28:
            raise ValueError(f"size must be at least 28 (an MNIST digit), got {self.size}")
        if not 0 <= self.digits[0] <= self.digits[1]:
            raise ValueError(
                f"digits must be (fewest, most) with 0 <= fewest <= most: {self.digits}"
            )
        if min(self.train_canvases, self.validation_canvases, self.test_canvases) < 0:
            raise ValueError("canvas counts must be >= 0")
        if self.canvases_per_shard < 1:
            raise ValueError(f"canvases_per_shard must be >= 1, got {self.canvases_per_shard}")
        if self.compression not in (None, "GZIP"):
            raise ValueError(f"compression must be None or 'GZIP', got {self.compression!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclasses.dataclass(frozen=True)
class DigitShard:
    """One shard in a digit manifest: file name (in the manifest's folder) and contents."""

    file: str
    num_examples: int
    counts: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class DigitManifest:
    """What a digit set holds; `write_digit_set` writes it, `read_digit_manifest` reads it.

    Attributes:
        path: the manifest file.
        name: the shards' name prefix.
        compression: None or "GZIP".
        image_size: canvas side in pixels.
        digits: (fewest, most) digits drawn per canvas.
        class_names: the classes of `counts`, in order ("0" .. "9").
        shards: per shard, its contents.
        totals: num_shards, num_examples, counts (per class), num_digits.
    """

    path: str
    name: str
    compression: str | None
    image_size: int
    digits: tuple[int, int]
    class_names: tuple[str, ...]
    shards: tuple[DigitShard, ...]
    totals: dict[str, Any]

    @property
    def files(self) -> list[str]:
        """Paths of the shard files."""
        folder = os.path.dirname(os.path.abspath(self.path))
        return [os.path.join(folder, shard.file) for shard in self.shards]


@dataclasses.dataclass(frozen=True)
class DigitSet:
    """A set to write: `canvases` canvases from `images`, numbered `code` in the seeds."""

    name: str
    code: int
    images: np.ndarray
    labels: np.ndarray
    canvases: int
    single: bool = False


def make_canvas(digit_set: DigitSet, index: int, config: DigitSetsConfig) -> Canvas:
    """Canvas `index` of a set: the same for the same seed, whatever else is written."""
    rng = np.random.default_rng((config.seed, digit_set.code, index))
    if digit_set.single:
        one = slice(index, index + 1)
        return compose(digit_set.images[one], digit_set.labels[one], rng, config.size, (1, 1))
    return compose(digit_set.images, digit_set.labels, rng, config.size, config.digits)


def _int64(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def serialize_canvas(canvas: Canvas, index: int) -> bytes:
    """The `tf.train.Example` bytes of one canvas (layout in the module docstring)."""
    image = np.asarray(canvas.image)
    if image.dtype != np.uint8 or image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(
            f"canvas {index}: image must be square uint8, got {image.dtype} {image.shape}"
        )
    record = {
        IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes(order="C")])),
        IMAGE_SIZE: _int64([image.shape[0]]),
        COUNTS: _int64(canvas.counts),
        BOXES: _int64(np.asarray(canvas.boxes).ravel()),
        INDEX: _int64([index]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=record))
    return example.SerializeToString(deterministic=True)


def parse_canvas(serialized: bytes) -> tuple[Canvas, int]:
    """The inverse of `serialize_canvas` (in NumPy, for evaluation): `(canvas, index)`."""
    feature = tf.train.Example.FromString(serialized).features.feature
    size = feature[IMAGE_SIZE].int64_list.value[0]
    image = np.frombuffer(feature[IMAGE].bytes_list.value[0], np.uint8).reshape(size, size)
    counts = np.array(feature[COUNTS].int64_list.value, np.int64)
    boxes = np.array(feature[BOXES].int64_list.value, np.int64).reshape(-1, 5)
    return Canvas(image, counts, boxes), int(feature[INDEX].int64_list.value[0])


def _shard_blocks(canvases: int, per_shard: int) -> list[range]:
    shards = max(1, -(-canvases // per_shard))
    bounds = [canvases * k // shards for k in range(shards + 1)]
    return [range(bounds[k], bounds[k + 1]) for k in range(shards)]


def write_digit_set(
    digit_set: DigitSet, out_dir: PathLike, config: DigitSetsConfig
) -> DigitManifest:
    """Writes a set's canvases to shards and its manifest, resumably.

    A shard that exists is complete (it appears by rename) and is skipped; its statistics come
    from its canvases, drawn again (they are deterministic). The manifest is written last.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    name = digit_set.name
    remove_stale_temporaries(out_dir, name)
    blocks = _shard_blocks(digit_set.canvases, config.canvases_per_shard)
    shards = []
    for number, block in enumerate(blocks):
        file = shard_file_name(name, number, len(blocks), config.compression)
        path = os.path.join(out_dir, file)
        done = os.path.exists(path)
        temporary = f"{path}.tmp-{os.getpid()}"
        counts = np.zeros(len(CLASS_NAMES), np.int64)
        try:
            writer = None if done else tf.io.TFRecordWriter(temporary, options=config.compression)
            for index in block:
                canvas = make_canvas(digit_set, index, config)
                counts += canvas.counts
                if writer is not None:
                    writer.write(serialize_canvas(canvas, index))
            if writer is not None:
                writer.close()
                sync_file(temporary)
                os.replace(temporary, path)
        except BaseException:
            if not done and os.path.exists(temporary):
                os.remove(temporary)
            raise
        shards.append(DigitShard(file, len(block), tuple(int(c) for c in counts)))
    counts = np.sum([shard.counts for shard in shards], axis=0)
    manifest = DigitManifest(
        path=manifest_path(out_dir, name),
        name=name,
        compression=config.compression,
        image_size=config.size,
        digits=(1, 1) if digit_set.single else tuple(config.digits),
        class_names=CLASS_NAMES,
        shards=tuple(shards),
        totals={
            "num_shards": len(shards),
            "num_examples": digit_set.canvases,
            "counts": [int(c) for c in counts],
            "num_digits": int(counts.sum()),
        },
    )
    write_json_atomically(
        manifest.path,
        {
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_VERSION,
            "name": name,
            "compression": manifest.compression,
            "image_size": manifest.image_size,
            "digits": list(manifest.digits),
            "class_names": list(CLASS_NAMES),
            "record_layout": _RECORD_LAYOUT,
            "shards": [dataclasses.asdict(shard) for shard in shards],
            "totals": manifest.totals,
        },
    )
    return manifest


def read_digit_manifest(path: PathLike) -> DigitManifest:
    """Reads a manifest written by `write_digit_set`; a wrong file says what it is not."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as file:
            content = json.load(file)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read the manifest ({error})") from error
    if content.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: not a {MANIFEST_FORMAT} manifest")
    if content.get("format_version") != MANIFEST_VERSION:
        raise ValueError(
            f"{path}: manifest version {content.get('format_version')}, this reader knows "
            f"{MANIFEST_VERSION}"
        )
    return DigitManifest(
        path=path,
        name=content["name"],
        compression=content["compression"],
        image_size=int(content["image_size"]),
        digits=tuple(content["digits"]),
        class_names=tuple(content["class_names"]),
        shards=tuple(
            DigitShard(s["file"], s["num_examples"], tuple(s["counts"])) for s in content["shards"]
        ),
        totals=content["totals"],
    )


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_digit_sets(
    data_dir: PathLike,
    out_dir: PathLike,
    config: DigitSetsConfig = DigitSetsConfig(),
    log: Callable[[str], None] = print,
) -> list[DigitManifest]:
    """Writes `digits-train`, `digits-validation`, `digits-test` and `digits-test-single`.

    `out_dir/digits.prepare.json` records the settings and the MNIST files' hashes before any
    shard is written; a rerun with other settings into the same folder is refused, one with
    the same settings resumes.

    Raises:
        IdxError: an MNIST file is missing or unreadable (the message names it).
        ValueError: `out_dir` holds sets prepared with other settings, or there are fewer
            MNIST training digits than `validation_images` + 1.
    """
    data_dir, out_dir = os.fspath(data_dir), os.fspath(out_dir)
    train_images, train_labels = load_mnist(data_dir, "train")
    test_images, test_labels = load_mnist(data_dir, "test")
    held_out = config.validation_images
    if not 0 < held_out < len(train_images):
        raise ValueError(
            f"validation_images must be between 1 and {len(train_images) - 1} (MNIST train has "
            f"{len(train_images)} digits), got {held_out}"
        )
    fingerprint = {
        "config": config.to_dict(),
        "mnist": {
            name: _sha256(os.path.join(data_dir, name))
            for pair in MNIST_FILES.values()
            for name in pair
        },
    }
    os.makedirs(out_dir, exist_ok=True)
    settings = os.path.join(out_dir, "digits.prepare.json")
    if os.path.isfile(settings):
        with open(settings, encoding="utf-8") as file:
            previous = json.load(file)
        if previous != fingerprint:
            raise ValueError(
                f"{settings}: {out_dir} holds digit sets prepared with other settings or other "
                "MNIST files; use another --out"
            )
    else:
        write_json_atomically(settings, fingerprint)
    sets = [
        DigitSet(
            TRAIN, 0, train_images[:-held_out], train_labels[:-held_out], config.train_canvases
        ),
        DigitSet(
            VALIDATION,
            1,
            train_images[-held_out:],
            train_labels[-held_out:],
            config.validation_canvases,
        ),
        DigitSet(TEST, 2, test_images, test_labels, config.test_canvases),
        DigitSet(TEST_SINGLE, 3, test_images, test_labels, len(test_images), single=True),
    ]
    manifests = []
    for digit_set in sets:
        manifest = write_digit_set(digit_set, out_dir, config)
        totals = manifest.totals
        log(
            f"{manifest.name}: {totals['num_examples']} canvases, {totals['num_digits']} digits, "
            f"{totals['num_shards']} shard(s)"
        )
        manifests.append(manifest)
    return manifests


def _records(files: list[str], compression: str | None) -> tf.data.TFRecordDataset:
    return tf.data.TFRecordDataset(files, compression_type=compression or "")


def training_dataset(
    manifest: DigitManifest,
    batch_size: int,
    *,
    shuffle_buffer: int = 4096,
    seed: int | None = None,
    repeat: bool = True,
) -> tf.data.Dataset:
    """Batches of `(images float32 [B, size, size, 1] pixel values, counts float32 [B, 10])`.

    The parser reads `image` and `counts` only (`TRAINING_SPEC`), never the boxes.

    Args:
        manifest: the set.
        batch_size: canvases per batch.
        shuffle_buffer: canvases in the shuffle buffer (~7.7 KB each at 88 x 88); 0 or 1 turns
            shuffling off, along with the shuffling of shard order.
        seed: makes the shard order and the shuffling repeatable.
        repeat: repeat forever (full batches); False gives one pass, the last batch smaller.
    """
    size = manifest.image_size
    shuffle = shuffle_buffer > 1
    files = tf.data.Dataset.from_tensor_slices(manifest.files)
    if shuffle:
        files = files.shuffle(len(manifest.files), seed=seed)
    compression = manifest.compression or ""
    records = files.interleave(
        lambda name: tf.data.TFRecordDataset(name, compression_type=compression),
        cycle_length=min(len(manifest.files), 8) if shuffle else 1,
        num_parallel_calls=tf.data.AUTOTUNE if shuffle else None,
    )

    def parse(serialized):
        parsed = tf.io.parse_single_example(serialized, TRAINING_SPEC)
        image = tf.reshape(tf.io.decode_raw(parsed[IMAGE], tf.uint8), [size, size, 1])
        return tf.cast(image, tf.float32), tf.cast(parsed[COUNTS], tf.float32)

    dataset = records.map(parse, tf.data.AUTOTUNE)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)


def iterate_canvases(manifest: DigitManifest, limit: int | None = None) -> Iterator[Canvas]:
    """The set's canvases in order (boxes included), at most `limit` of them."""
    records = _records(manifest.files, manifest.compression)
    if limit is not None:
        records = records.take(limit)
    for serialized in records.as_numpy_iterator():
        yield parse_canvas(serialized)[0]
