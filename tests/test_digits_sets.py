"""Digit canvases as TFRecord sets: labels, boxes, the training reader, resuming, bad input."""

import dataclasses
import gzip
import json
import os
import struct

import numpy as np
import pytest

from loco_tf.pipelines import digits
from loco_tf.pipelines.digits import (
    TRAINING_SPEC,
    DigitSetsConfig,
    IdxError,
    iterate_canvases,
    prepare_digit_sets,
    read_digit_manifest,
    training_dataset,
)

SMALL = DigitSetsConfig(
    size=56,
    digits=(0, 3),
    train_canvases=30,
    validation_canvases=6,
    test_canvases=10,
    validation_images=8,
    canvases_per_shard=8,
)


def write_fake_mnist(folder, train=40, test=12, seed=0):
    """MNIST-shaped idx files of random 28 x 28 'digits' (every one different), gzip'd."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    arrays = {}
    for split, n in (("train", train), ("test", test)):
        images = rng.integers(1, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        for name, array in zip(digits.MNIST_FILES[split], (images, labels), strict=True):
            header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            with gzip.open(os.path.join(folder, name), "wb") as stream:
                stream.write(header + array.tobytes())
        arrays[split] = images, labels
    return arrays


def test_sets_hold_the_placed_digits_and_their_counts(tmp_path):
    arrays = write_fake_mnist(tmp_path / "mnist")
    manifests = prepare_digit_sets(tmp_path / "mnist", tmp_path / "out", SMALL, log=lambda m: None)
    assert [m.name for m in manifests] == [
        "digits-train",
        "digits-validation",
        "digits-test",
        "digits-test-single",
    ]
    train_images, train_labels = arrays["train"]
    test_images, test_labels = arrays["test"]
    sources = {
        "digits-train": (train_images[:-8], train_labels[:-8]),
        "digits-validation": (train_images[-8:], train_labels[-8:]),
        "digits-test": (test_images, test_labels),
        "digits-test-single": (test_images, test_labels),
    }
    for manifest in manifests:
        images, labels = sources[manifest.name]
        canvases = list(iterate_canvases(read_digit_manifest(manifest.path)))
        assert len(canvases) == manifest.totals["num_examples"]
        total = np.zeros(10, int)
        for canvas in canvases:
            occupied = np.zeros((56, 56), int)
            for label, row, col, height, width in canvas.boxes:
                patch = canvas.image[row : row + height, col : col + width]
                # The patch is a digit of this split with this label (independent lookup).
                same = [j for j in range(len(images)) if np.array_equal(images[j], patch)]
                assert same and all(labels[j] == label for j in same)
                occupied[row : row + height, col : col + width] += 1
            assert occupied.max() <= 1
            assert (canvas.image[occupied == 0] == 0).all()
            assert canvas.counts.tolist() == [
                int(np.sum(canvas.boxes[:, 0] == c)) for c in range(10)
            ]
            assert SMALL.digits[0] <= len(canvas.boxes) <= SMALL.digits[1]
            total += canvas.counts
        assert manifest.totals["counts"] == total.tolist()
    single = list(iterate_canvases(manifests[3]))
    assert [c.boxes[0, 0] for c in single] == test_labels.tolist()  # one each, in MNIST order
    assert all(len(c.boxes) == 1 for c in single)


def test_training_reader_gives_images_and_counts_only(tmp_path):
    write_fake_mnist(tmp_path / "mnist")
    prepare_digit_sets(tmp_path / "mnist", tmp_path / "out", SMALL, log=lambda m: None)
    manifest = read_digit_manifest(tmp_path / "out" / "digits-test.manifest.json")
    assert set(TRAINING_SPEC) == {"image", "counts"}  # no boxes reach a model
    batches = list(training_dataset(manifest, 4, shuffle_buffer=0, repeat=False))
    images = np.concatenate([b[0].numpy() for b in batches])
    counts = np.concatenate([b[1].numpy() for b in batches])
    canvases = list(iterate_canvases(manifest))
    assert images.shape == (10, 56, 56, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(images[..., 0], np.stack([c.image for c in canvases]))
    np.testing.assert_array_equal(counts, np.stack([c.counts for c in canvases]))
    shuffled = next(iter(training_dataset(manifest, 3, shuffle_buffer=16, seed=1)))
    assert shuffled[0].shape == (3, 56, 56, 1) and shuffled[1].shape == (3, 10)


def test_rerun_resumes_and_a_crash_leaves_no_partial_shard(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "mnist")
    out = tmp_path / "out"
    prepare_digit_sets(tmp_path / "mnist", out, SMALL, log=lambda m: None)
    shards = sorted(p for p in os.listdir(out) if p.startswith("digits-train-"))
    assert len(shards) == 4  # 30 canvases, 8 per shard
    original = {name: (out / name).read_bytes() for name in shards}
    (out / shards[2]).unlink()
    (out / "digits-train.manifest.json").unlink()
    calls = []
    real = digits.make_canvas

    def failing(digit_set, index, config):
        calls.append(index)
        if digit_set.name == "digits-train" and index == 20:
            raise KeyboardInterrupt
        return real(digit_set, index, config)

    monkeypatch.setattr(digits, "make_canvas", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare_digit_sets(tmp_path / "mnist", out, SMALL, log=lambda m: None)
    assert not (out / shards[2]).exists()
    assert not [p for p in os.listdir(out) if ".tmp-" in p]
    monkeypatch.setattr(digits, "make_canvas", real)
    prepare_digit_sets(tmp_path / "mnist", out, SMALL, log=lambda m: None)
    assert {name: (out / name).read_bytes() for name in shards} == original
    manifest = json.loads((out / "digits-train.manifest.json").read_text())
    assert manifest["totals"]["num_examples"] == 30
    with pytest.raises(ValueError, match="other settings"):
        other = dataclasses.replace(SMALL, size=88)
        prepare_digit_sets(tmp_path / "mnist", out, other, log=print)


def test_missing_or_corrupt_mnist_is_named(tmp_path):
    write_fake_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(IdxError, match="t10k-labels-idx1-ubyte.gz: not found"):
        prepare_digit_sets(tmp_path / "mnist", tmp_path / "out", SMALL)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(IdxError, match="t10k-labels-idx1-ubyte.gz: cannot read"):
        prepare_digit_sets(tmp_path / "mnist", tmp_path / "out", SMALL)
    with pytest.raises(ValueError, match="digits-test.manifest.json: cannot read"):
        read_digit_manifest(tmp_path / "digits-test.manifest.json")
