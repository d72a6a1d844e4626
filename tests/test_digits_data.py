"""MNIST idx reading and digit canvases."""

import gzip
import pathlib
import struct

import numpy as np
import pytest

from loco_tf.pipelines.digits import IdxError, compose, load_mnist, read_idx


def _write_idx(path, array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as stream:
        stream.write(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


def test_read_idx_round_trip_and_errors(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    _write_idx(str(tmp_path / "train-images-idx3-ubyte.gz"), images)
    _write_idx(str(tmp_path / "train-labels-idx1-ubyte.gz"), np.array([7, 1, 4], np.uint8))
    loaded, labels = load_mnist(str(tmp_path), "train")
    np.testing.assert_array_equal(loaded, images)
    assert labels.tolist() == [7, 1, 4]
    wide = np.array([[1, -2], [300, 4]], np.int32)
    _write_idx(str(tmp_path / "wide.idx"), wide, code=0x0C)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "wide.idx")), wide)
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03")
    with pytest.raises(IdxError, match="bad.idx: not an idx file"):
        read_idx(str(tmp_path / "bad.idx"))
    with open(tmp_path / "short.idx", "wb") as stream:
        stream.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 4)
    with pytest.raises(IdxError, match="short.idx: 4 data bytes"):
        read_idx(str(tmp_path / "short.idx"))


def test_compose_places_non_overlapping_digits_and_counts_them():
    rng = np.random.default_rng(0)
    digits = np.ones((10, 28, 28), np.uint8) * np.arange(1, 11, dtype=np.uint8)[:, None, None]
    labels = np.arange(10)
    for _ in range(50):
        canvas = compose(digits, labels, rng, size=100, digits=(0, 5))
        occupied = np.zeros((100, 100), int)
        for label, row, col, height, width in canvas.boxes:
            occupied[row : row + height, col : col + width] += 1
            patch = canvas.image[row : row + height, col : col + width]
            assert (patch == label + 1).all()  # the digit drawn there is the labelled one
        assert occupied.max() <= 1
        np.testing.assert_array_equal(canvas.counts, np.bincount(canvas.boxes[:, 0], minlength=10))
        assert (canvas.image[occupied == 0] == 0).all()


SHARED_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="no ../shared/data/mnist beside the checkout")
def test_real_mnist_shapes():
    images, labels = load_mnist(str(SHARED_MNIST), "test")
    assert images.shape == (10000, 28, 28) and labels.max() == 9


def test_keras_datasets_is_used_on_request_and_a_failed_download_says_so(monkeypatch):
    import keras

    from loco_tf.pipelines import digits

    train = (np.zeros((3, 28, 28), np.uint8), np.array([1, 2, 3], np.uint8))
    test = (np.ones((2, 28, 28), np.uint8), np.array([4, 5], np.uint8))
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: (train, test))
    images, labels = digits.load_mnist(digits.KERAS_MNIST, "test")
    assert images.shape == (2, 28, 28) and labels.tolist() == [4, 5]

    def offline():
        raise OSError("Name or service not known")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(IdxError, match="could not download MNIST.*idx files instead"):
        digits.load_mnist(digits.KERAS_MNIST, "train")
