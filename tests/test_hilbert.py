"""The Hilbert scan of images (paper §8.1)."""

import keras
import numpy as np
import pytest

from loco_tf.hilbert import HilbertScan, grid_order, hilbert_curve, positions, window_centres


@pytest.mark.parametrize("order", [0, 1, 2, 3, 5])
def test_curve_visits_every_cell_once_with_unit_steps(order):
    cells = hilbert_curve(order)
    side = 2**order
    assert cells.shape == (side * side, 2)
    assert len({tuple(c) for c in cells}) == side * side
    assert cells.min() == 0 and cells.max() == side - 1
    assert (np.abs(np.diff(cells, axis=0)).sum(axis=1) == 1).all()
    assert tuple(cells[0]) == (0, 0)


def test_order_one_and_two_are_the_known_curves():
    assert hilbert_curve(1).tolist() == [[0, 0], [1, 0], [1, 1], [0, 1]]
    # Order 2 is made of four order-1 curves; its quadrants come in the order-1 sequence.
    quadrants = hilbert_curve(2).reshape(4, 4, 2) // 2
    assert [tuple(q[0]) for q in quadrants] == [tuple(c) for c in hilbert_curve(1)]
    assert (quadrants == quadrants[:, :1]).all()


def test_scan_and_inverse_round_trip():
    rng = np.random.default_rng(0)
    size, window, stride = 44, 16, 4  # 8 x 8 positions
    images = rng.normal(size=(2, size, size, 3)).astype(np.float32)
    sequence = HilbertScan(size, window, stride)(images).numpy()
    corners = positions(size, window, stride)
    assert sequence.shape == (2, 64, window, window, 3)
    for t, (row, col) in enumerate(corners):
        np.testing.assert_array_equal(
            sequence[:, t], images[:, row : row + window, col : col + window]
        )
    centres = window_centres(size, window, stride)
    np.testing.assert_allclose(centres[0], [7.5, 7.5])
    # Every pixel covered by some window is recovered from the sequence.
    rebuilt = np.zeros_like(images)
    for t, (row, col) in enumerate(corners):
        rebuilt[:, row : row + window, col : col + window] = sequence[:, t]
    np.testing.assert_array_equal(rebuilt, images)


def test_grid_must_be_a_power_of_two_and_layer_serialises():
    assert grid_order(128, 8, 8) == 4  # (128 - 8) / 8 + 1 = 16 positions per side
    with pytest.raises(ValueError, match="2\\*\\*n window positions"):
        grid_order(100, 28, 8)
    layer = HilbertScan(36, 8, 4)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert clone.get_config() == layer.get_config()
