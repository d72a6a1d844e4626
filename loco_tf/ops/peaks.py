"""Peak picking in the graph: `loco_tf.events.pick_peaks` (scipy.signal.find_peaks) in stock ops.

An exported model returns event times, so the decoder must run inside the SavedModel, where
neither scipy nor a `py_function` exists. `pick_peaks` here reproduces the NumPy decoder:

1. the sequence is padded with one zero on each side, so a peak on the first or last frame counts;
2. local maxima as scipy finds them: a run of equal values whose neighbours on both sides are
   lower is one peak, at the run's middle frame (the left one of two middles);
3. peaks below `threshold` are dropped (a peak equal to it is kept);
4. minimum distance: in order of decreasing height, each kept peak removes the peaks closer than
   `min_distance` frames to it (scipy's `_select_by_peak_distance`). Peaks of exactly equal
   height are visited right to left here; scipy's order for such ties is its sort's, which for
   more than 16 peaks need not be the same. With float32 probabilities of a trained network such
   ties within `min_distance` frames do not occur in practice; the tests compare with scipy on
   random sequences, plateaus and saturated runs included.
"""

from __future__ import annotations

import tensorflow as tf


def pick_peaks(
    event_probabilities: tf.Tensor, threshold: tf.Tensor, min_distance: tf.Tensor
) -> tf.Tensor:
    """Frames where one class's p(t) `[time]` peaks (see the module docstring).

    Args:
        event_probabilities: `[time]` float p(t).
        threshold: scalar, smallest peak height.
        min_distance: scalar int, smallest distance between peaks in frames (1: no constraint).

    Returns:
        Sorted int32 frame indices `[events]`.
    """
    p = tf.convert_to_tensor(event_probabilities)
    x = tf.pad(p, [[1, 1]])
    n = tf.shape(x)[0]
    # Runs of equal values: their first and last index and value.
    changes = tf.cast(tf.not_equal(x[1:], x[:-1]), tf.int32)
    run = tf.concat([[0], tf.cumsum(changes)], axis=0)
    runs = run[-1] + 1
    index = tf.range(n)
    first = tf.math.unsorted_segment_min(index, run, runs)
    last = tf.math.unsorted_segment_max(index, run, runs)
    value = tf.gather(x, first)
    infinity = tf.fill([1], tf.constant(float("inf"), x.dtype))
    before = tf.concat([infinity, value[:-1]], axis=0)
    after = tf.concat([value[1:], infinity], axis=0)
    threshold = tf.cast(threshold, x.dtype)
    is_peak = (before < value) & (after < value) & (value >= threshold)
    peaks = tf.boolean_mask((first + last) // 2 - 1, is_peak)
    heights = tf.boolean_mask(value, is_peak)
    min_distance = tf.cast(min_distance, tf.int32)
    # With min_distance 1 nothing is close to anything; the loop then ends at once.
    count = tf.where(min_distance > 1, tf.shape(peaks)[0], 0)
    order = tf.reverse(tf.argsort(heights, stable=True), [0])  # highest first
    positions = tf.range(tf.shape(peaks)[0])

    def visit(i, keep):
        j = order[i]
        close = tf.abs(peaks - peaks[j]) < min_distance
        return i + 1, keep & ~(close & tf.not_equal(positions, j) & keep[j])

    _, keep = tf.while_loop(
        lambda i, _: i < count, visit, (0, tf.ones_like(peaks, tf.bool)), parallel_iterations=1
    )
    return tf.boolean_mask(peaks, keep)
