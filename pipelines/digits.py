"""MNIST digits placed at random on a canvas, labelled only by how many of each digit (§8.2).

`read_idx` reads MNIST's idx files (gzip or plain). `compose` places non-overlapping digits
uniformly at random on a blank canvas; its labels are the counts per digit class (10), and the
true boxes are kept for evaluation only.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct

import numpy as np

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


def load_mnist(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(images uint8 [n, 28, 28], labels uint8 [n])` of MNIST's "train" or "test" split."""
    images_name, labels_name = MNIST_FILES[split]
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
