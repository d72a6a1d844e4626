"""The piano recipe (paper §7): note onsets of the 88 keys, learned from counts per pitch.

It is the drum recipe with other defaults: the same trainer (`drums.train`), transcriber
(`drums.DrumTranscriber`), decoder and streaming inference, on the sets of `loco prepare piano`
(ASAP performances rendered with piano SoundFonts, split by piece, 1.5 s segments with one
count per pitch, `k_max` 42). The classes are the MIDI pitches 21..108, in that order.

Configurations (`piano_config`):

- the paper's (`full=True`, `loco train piano --full`): separate networks for bands of 10
  consecutive pitches (9 bands, the last of 8), each the §6.1 network widened 2x (convolutions
  of 16 to 32 filters, a 48-unit LSTM, a 32-unit dense layer), extract stacking: 1.07 M
  parameters, a training step 23x the drum network's on 2 CPU cores (`bench/piano_bench.py`,
  measured under load: 18.7 s against 0.80 s for a batch of 32 x 400 frames). For a GPU.
- the default, sized for 2 CPU cores: one network for all 88 pitches with the drum network's
  convolutions, a 96-unit LSTM and a 64-unit dense layer: 122 k parameters, a step 2.1x the
  drum network's. This is not the paper's banding; the shipped model's card says what it gives.

In both, the decoding (threshold, minimum spacing, timing offset) is tuned per band of 10
pitches on the validation files: one pitch alone has too few validation onsets to tune on.

Evaluation (`evaluate_notes`, paper Table 2 protocol): `mir_eval.transcription` with onsets
only (`offset_ratio=None`) at 50 ms, per piece and then the mean over pieces (the paper's
figure), and micro (matched notes summed over pieces); `band_table` breaks the onset scores
down by band of 10 pitches (the paper finds low notes weaker).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import librosa
import mir_eval
import numpy as np

from loco_tf.metrics import Evaluation, precision_recall_f1
from loco_tf.recipes.configs import PIANO_BAND as BAND
from loco_tf.recipes.configs import PIANO_CLASSES, piano_config  # noqa: F401 (public here)
from loco_tf.recipes.configs import PIANO_CPU_DEFAULTS as CPU_DEFAULTS  # noqa: F401
from loco_tf.recipes.configs import PIANO_FULL as FULL  # noqa: F401
from loco_tf.recipes.drums import (
    consecutive_ranges,
    newest_version,
    plot_spectrogram,
)

PathLike = str | os.PathLike

SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "saved_models" / "piano"
NOTE_SECONDS = 0.25
"""Duration of the notes written to MIDI and given to mir_eval (onsets only are scored)."""


def shipped_model() -> Path | None:
    """The newest model in `saved_models/piano/<version>/`, or None."""
    return newest_version(SHIPPED_MODELS)


def band_table(evaluation: Evaluation, window: float = 0.05, size: int = BAND) -> str:
    """Micro precision, recall and F1 per band of `size` pitches, from an onset evaluation."""
    classes = evaluation.classes
    lines = [f"{'band':<9} {'refs':>6} {'dets':>6} {'P':>6} {'R':>6} {'F1':>6} {'timing ms':>14}"]
    for start, stop in consecutive_ranges(len(classes), size):
        scores = [evaluation[(window, c)] for c in classes[start:stop]]
        reference = sum(s.reference for s in scores)
        estimate = sum(s.estimate for s in scores)
        matched = sum(s.matched for s in scores)
        p, r, f = precision_recall_f1(matched, reference, estimate)
        weights = [s.matched for s in scores if s.matched]
        means = [s.timing_mean for s in scores if s.matched]
        timing = f"{1000 * np.average(means, weights=weights):+6.1f}" if weights else "     -"
        name = f"{librosa.midi_to_note(classes[start], unicode=False)}-"
        name += librosa.midi_to_note(classes[stop - 1], unicode=False)
        lines.append(
            f"{name:<9} {reference:6d} {estimate:6d} "
            + " ".join("     -" if math.isnan(v) else f"{100 * v:6.1f}" for v in (p, r, f))
            + f" {timing:>14}"
        )
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class NoteScores:
    """`mir_eval.transcription` onset-only scores of several pieces.

    Attributes:
        pieces: the pieces' names.
        per_piece: (precision, recall, F1) of each piece.
        precision, recall, f1: means over pieces (the paper's Table 2).
        micro_precision, micro_recall, micro_f1: from matched notes summed over pieces.
        reference, estimate, matched: the sums.
    """

    pieces: tuple[str, ...]
    per_piece: tuple[tuple[float, float, float], ...]
    precision: float
    recall: float
    f1: float
    micro_precision: float
    micro_recall: float
    micro_f1: float
    reference: int
    estimate: int
    matched: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def table(self, title: str = "") -> str:
        lines = [title] if title else []
        lines.append(
            f"{'piece':<48} {'P':>6} {'R':>6} {'F1':>6}   "
            "(mir_eval.transcription, onsets only, 50 ms)"
        )
        for name, (p, r, f) in zip(self.pieces, self.per_piece, strict=True):
            lines.append(f"{name[-48:]:<48} {100 * p:6.1f} {100 * r:6.1f} {100 * f:6.1f}")
        lines.append(
            f"{'mean over pieces':<48} {100 * self.precision:6.1f} {100 * self.recall:6.1f} "
            f"{100 * self.f1:6.1f}"
        )
        lines.append(
            f"{'micro (notes summed)':<48} {100 * self.micro_precision:6.1f} "
            f"{100 * self.micro_recall:6.1f} {100 * self.micro_f1:6.1f}   "
            f"({self.matched} of {self.reference} notes found, {self.estimate} detections)"
        )
        return "\n".join(lines)


def _notes(times_per_class: Sequence[Sequence[float]], classes: Sequence[int]):
    onsets, pitches = [], []
    for pitch, times in zip(classes, times_per_class, strict=True):
        times = np.asarray(times, dtype=np.float64).ravel()
        onsets.append(times)
        pitches.append(np.full(times.size, float(pitch)))
    onsets = np.concatenate([np.zeros(0), *onsets])
    intervals = np.stack([onsets, onsets + NOTE_SECONDS], axis=1)
    return intervals, mir_eval.util.midi_to_hz(np.concatenate([np.zeros(0), *pitches]))


def evaluate_notes(
    references: Sequence[Sequence[Sequence[float]]],
    estimates: Sequence[Sequence[Sequence[float]]],
    classes: Sequence[int],
    pieces: Sequence[str],
    window: float = 0.05,
) -> NoteScores:
    """Onset-only note scores per piece with `mir_eval.transcription` (pitch within 50 cents,
    onset within `window`), their mean over pieces, and micro sums.

    Args:
        references, estimates: per piece, per class (MIDI pitch), onset times in seconds.
        classes: the MIDI pitches.
        pieces: the pieces' names.
    """
    per_piece, totals = [], np.zeros(3, dtype=np.int64)
    for reference, estimate in zip(references, estimates, strict=True):
        ref_intervals, ref_pitches = _notes(reference, classes)
        est_intervals, est_pitches = _notes(estimate, classes)
        matched = mir_eval.transcription.match_notes(
            ref_intervals,
            ref_pitches,
            est_intervals,
            est_pitches,
            onset_tolerance=window,
            offset_ratio=None,
        )
        totals += (len(ref_pitches), len(est_pitches), len(matched))
        # What `precision_recall_f1_overlap` computes from this same matching; a piece without
        # notes or without detections scores 0, as there.
        p, r, f = precision_recall_f1(len(matched), len(ref_pitches), len(est_pitches))
        per_piece.append(tuple(0.0 if math.isnan(v) else float(v) for v in (p, r, f)))
    mean = np.mean(per_piece, axis=0) if per_piece else np.full(3, math.nan)
    micro = precision_recall_f1(int(totals[2]), int(totals[0]), int(totals[1]))
    return NoteScores(
        tuple(pieces),
        tuple(per_piece),
        *(float(v) for v in mean),
        *(float(v) for v in micro),
        int(totals[0]),
        int(totals[1]),
        int(totals[2]),
    )


def plot_piano_roll(
    transcription,
    classes: Sequence[int],
    feature_config,
    out: PathLike,
    references: Sequence[np.ndarray] | None = None,
    span: tuple[float, float] | None = None,
) -> None:
    """Spectrogram and a piano roll of p(t) (pitch x time) with true and predicted onsets.

    Args:
        transcription: a `drums.Transcription` with `features` kept for `span`.
        classes: the MIDI pitches of p(t)'s columns.
        feature_config: the model's front end.
        out: the image file (PNG, or any format matplotlib writes).
        references: per pitch, true onset times (white circles), when known.
        span: (start, stop) seconds shown; default the whole file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from loco_tf.features import frame_times

    p = transcription.probabilities
    times = frame_times(len(p), feature_config)
    start, stop = span if span is not None else (0.0, float(times[-1]) if len(times) else 0.0)
    shown = (times >= start) & (times <= stop)
    fig, (top, roll) = plt.subplots(
        2, 1, figsize=(13, 9), sharex=True, gridspec_kw={"height_ratios": [1, 2.4]}
    )
    plot_spectrogram(top, transcription, feature_config)
    low, high = classes[0] - 0.5, classes[-1] + 0.5
    if shown.any():
        # p(t) peaks are one 3.75 ms frame wide: pool by max to at most ~1000 columns, so that
        # no peak falls between the pixels of the image.
        step = 1.0 / feature_config.frame_rate
        t_shown = times[shown]
        block = max(1, math.ceil(len(t_shown) / 1000))
        pooled = p[shown]
        pad = (-len(pooled)) % block
        pooled = np.pad(pooled, [(0, pad), (0, 0)]).reshape(-1, block, pooled.shape[1]).max(1)
        roll.imshow(
            pooled.T,
            origin="lower",
            aspect="auto",
            cmap="Greys",
            vmin=0.0,
            vmax=1.0,
            extent=[
                t_shown[0] - step / 2,
                t_shown[0] + (len(pooled) * block - 0.5) * step,
                low,
                high,
            ],
            interpolation="nearest",
        )
    if references is not None:
        t = [r for c in range(len(classes)) for r in references[c] if start <= r <= stop]
        y = [classes[c] for c in range(len(classes)) for r in references[c] if start <= r <= stop]
        roll.plot(t, y, "o", mfc="none", mec="tab:blue", ms=7, label="true onset")
    t = [h for c in range(len(classes)) for h in transcription.times[c] if start <= h <= stop]
    y = [
        classes[c]
        for c in range(len(classes))
        for h in transcription.times[c]
        if start <= h <= stop
    ]
    roll.plot(t, y, "x", color="tab:red", ms=5, label="predicted onset")
    octaves = [c for c in classes if c % 12 == 0]
    roll.set_yticks(octaves, [librosa.midi_to_note(c, unicode=False) for c in octaves])
    roll.set_ylim(low, high)
    roll.set_ylabel("pitch (p(t): grey, 0 to 1)")
    roll.set_xlabel("time (s)")
    roll.set_xlim(start, stop)
    roll.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
