"""Cutting a file's feature matrix into training segments labelled with event counts.

Segments are counted in frames of the whole file's feature matrix (`loco_tf.features`), so a
segment is a slice `features[start_frame : start_frame + n_frames]` and a default segment is
exactly `config.segment_frames` (400) frames. Its label is the number of events of each class
whose frame (`loco_tf.features.event_frames`) falls inside the slice (§6.1: "only occurrence
counts are used for training"); the frames themselves are kept beside it for evaluation only.

Variable-length crops (`min_seconds`): with every segment 400 frames long, a network could
learn to hold its detections back and release them at a fixed point; when it never knows where
a sequence ends, a delayed decision is missed whenever the sequence ends first, so it cannot
delay (§4.5, "no systematic late bias").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence

import numpy as np

from loco_tf.features import FeatureConfig, event_frames
from loco_tf.pipelines.readers import Event


@dataclasses.dataclass(frozen=True)
class Segment:
    """One training window of a file.

    Attributes:
        source: the file's id.
        start_frame: first frame, in the file's feature matrix.
        n_frames: frames in the window.
        counts: int64 `[classes]`, events of each class inside the window.
        event_frames: per class, int64 frames of those events relative to `start_frame`
            (sorted; `len(event_frames[c]) == counts[c]`). For evaluation only.
    """

    source: str
    start_frame: int
    n_frames: int
    counts: np.ndarray
    event_frames: tuple[np.ndarray, ...]

    @property
    def stop_frame(self) -> int:
        """One past the last frame."""
        return self.start_frame + self.n_frames


def _frames(seconds: float, config: FeatureConfig, what: str) -> int:
    frames = round(seconds * config.frame_rate)
    if frames < 1:
        raise ValueError(f"{what} = {seconds} s is less than one frame")
    return frames


def class_event_frames(
    features_len: int, events: Sequence[Event], classes: Sequence[Hashable], config: FeatureConfig
) -> list[np.ndarray]:
    """Sorted frames of each class's events in a file of `features_len` frames.

    Events whose label is not in `classes` are ignored, and so are events outside the analysed
    audio: before 0 s or after the end of the last frame's window (an annotation that runs on
    past its audio must not pile counts onto the last frame).
    """
    end_seconds = ((features_len - 1) * config.hop_length + config.n_fft) / config.sample_rate
    frames = []
    for label in classes:
        times = [event.time for event in events if event.label == label]
        times = np.asarray([t for t in times if 0.0 <= t <= end_seconds], dtype=np.float64)
        frames.append(np.sort(event_frames(times, config, features_len)))
    return frames


def segment(
    features_len: int,
    events: Sequence[Event],
    classes: Sequence[Hashable],
    config: FeatureConfig,
    hop_seconds: float,
    min_seconds: float | None = None,
    rng: np.random.Generator | int | None = None,
    *,
    source: str = "",
) -> list[Segment]:
    """Windows over a file's frames, each labelled with per-class event counts.

    Windows start every `hop_seconds` (rounded to frames) from frame 0 and are
    `config.segment_frames` long, or, when `min_seconds` is given, each of a length drawn
    uniformly from `[min_seconds, config.segment_seconds]` (in whole frames, from `rng`). A
    window that runs past the file's end is cut there and kept if it still has at least the
    minimum length (`min_seconds`, or half a segment when `min_seconds` is None); windows stop
    after the first one that reaches the end.

    Args:
        features_len: frames in the file's feature matrix.
        events: the file's annotations.
        classes: labels to count, in output order; other labels are ignored.
        config: the front end (frame rate, segment length).
        hop_seconds: distance between window starts.
        min_seconds: shortest window, for variable-length crops; None for fixed windows.
        rng: a Generator or a seed for the window lengths; the same seed gives the same
            segments. None draws fresh entropy. Unused without `min_seconds`.
        source: the file's id, copied into each segment.

    Returns:
        The segments in order of `start_frame`.
    """
    hop = _frames(hop_seconds, config, "hop_seconds")
    longest = config.segment_frames
    if min_seconds is None:
        shortest = None
        keep = max(longest // 2, 1)
    else:
        shortest = _frames(min_seconds, config, "min_seconds")
        if shortest > longest:
            raise ValueError(
                f"min_seconds {min_seconds} > segment_seconds {config.segment_seconds}"
            )
        keep = shortest
        rng = np.random.default_rng(rng)
    if features_len <= 0:
        return []
    frames_by_class = class_event_frames(features_len, events, classes, config)
    segments = []
    for start in range(0, features_len, hop):
        length = longest if shortest is None else int(rng.integers(shortest, longest + 1))
        stop = min(start + length, features_len)
        if stop - start >= keep:
            inside = [
                frames[np.searchsorted(frames, start) : np.searchsorted(frames, stop)] - start
                for frames in frames_by_class
            ]
            segments.append(
                Segment(
                    source=source,
                    start_frame=start,
                    n_frames=stop - start,
                    counts=np.array([len(f) for f in inside], dtype=np.int64),
                    event_frames=tuple(inside),
                )
            )
        if start + length >= features_len:
            break
    return segments
