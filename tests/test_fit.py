"""End to end: a conv + LSTM network trained on counts alone localises the events."""

import pytest

from loco_tf.recipes.impulses import ImpulseTask, run


@pytest.mark.slow
def test_counts_alone_teach_where_the_events_are():
    scores = run(ImpulseTask())
    # Never given a position, >= 90 % of its detections lie within 2 frames of a true event.
    assert scores["precision"] >= 0.9, scores
    assert scores["recall"] >= 0.8, scores
    assert scores["count_mae"] < 0.5, scores
