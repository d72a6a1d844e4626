"""Images as sequences: windows taken along a Hilbert curve (paper §8.1).

A 2**order x 2**order grid of window positions is visited along the Hilbert curve, which moves
one cell at a time and keeps nearby time steps nearby in the image; the window at each step is
one element of the sequence. `positions` maps a time step back to pixel coordinates, so an event
found at step t is localised in the image.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def hilbert_curve(order: int) -> np.ndarray:
    """`[4**order, 2]` (row, col) cells of a 2**order grid in Hilbert order, from (0, 0).

    Built bit by bit from the curve index (the classic index -> coordinates construction): at
    each scale s the quadrant (rx, ry) is read off two bits of the index, and the coordinates
    found so far are reflected and transposed to match that quadrant's orientation.
    """
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}.")
    side = 2**order
    index = np.arange(side * side)
    x = np.zeros_like(index)
    y = np.zeros_like(index)
    remaining = index.copy()
    scale = 1
    while scale < side:
        rx = (remaining // 2) & 1
        ry = (remaining ^ rx) & 1
        flip = (ry == 0) & (rx == 1)
        x = np.where(flip, scale - 1 - x, x)
        y = np.where(flip, scale - 1 - y, y)
        swap = ry == 0
        x, y = np.where(swap, y, x), np.where(swap, x, y)
        x = x + scale * rx
        y = y + scale * ry
        remaining = remaining // 4
        scale *= 2
    return np.stack([y, x], axis=1)


def grid_order(image_size: int, window: int, stride: int) -> int:
    """The curve order for windows of `window` px every `stride` px over a square image.

    Raises:
        ValueError: when the number of window positions per side is not a power of two.
    """
    cells = (image_size - window) // stride + 1
    if image_size < window or (image_size - window) % stride or cells & (cells - 1):
        raise ValueError(
            f"A Hilbert scan needs 2**n window positions per side: image {image_size} px, "
            f"window {window} px, stride {stride} px give {(image_size - window) / stride + 1:g}."
            " Choose image_size = window + stride * (2**n - 1)."
        )
    return int(np.log2(cells))


def positions(image_size: int, window: int, stride: int) -> np.ndarray:
    """`[T, 2]` top-left pixel (row, col) of the window at each time step."""
    return hilbert_curve(grid_order(image_size, window, stride)) * stride


def window_centres(image_size: int, window: int, stride: int) -> np.ndarray:
    """`[T, 2]` pixel (row, col) centre of the window at each time step: time -> image."""
    return positions(image_size, window, stride) + (window - 1) / 2


@keras.saving.register_keras_serializable(package="loco_tf")
class HilbertScan(keras.layers.Layer):
    """`[batch, size, size, channels]` images -> `[batch, T, window, window, channels]`.

    T = 4**n windows of `window` x `window` pixels every `stride` pixels, in Hilbert order.
    `image_size` must equal `window + stride * (2**n - 1)`.

    Args:
        image_size: side of the (square) input images in pixels.
        window: side of each sub-image.
        stride: pixels between neighbouring window positions (the curve's granularity).
    """

    def __init__(self, image_size: int, window: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.window, self.stride = int(image_size), int(window), int(stride)
        order = grid_order(self.image_size, self.window, self.stride)
        cells = hilbert_curve(order)
        self._raster_index = tf.constant(cells[:, 0] * 2**order + cells[:, 1], tf.int32)
        self.steps = len(cells)

    def call(self, images):
        patches = tf.image.extract_patches(
            images,
            sizes=[1, self.window, self.window, 1],
            strides=[1, self.stride, self.stride, 1],
            rates=[1, 1, 1, 1],
            padding="VALID",
        )  # [batch, rows, cols, window * window * channels], raster order
        shape = tf.shape(patches)
        raster = tf.reshape(patches, [shape[0], shape[1] * shape[2], shape[3]])
        ordered = tf.gather(raster, self._raster_index, axis=1)
        channels = images.shape[-1]
        return tf.reshape(ordered, [shape[0], self.steps, self.window, self.window, channels])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.steps, self.window, self.window, input_shape[-1])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(image_size=self.image_size, window=self.window, stride=self.stride)
        return config
