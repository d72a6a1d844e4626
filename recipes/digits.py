"""The digit recipe (paper §8): recognise and locate MNIST digits from per-image digit counts.

Training (`train`, `DigitTrainConfig`). A canvas of `loco prepare digits` is scanned along a
Hilbert curve (`loco_tf.hilbert.HilbertScan`, in the graph); each window goes through the
convolutional part of VGG-13, the sequence through a 48-unit LSTM and a 24-unit dense layer,
and a sigmoid per digit class gives p(t) (`loco_tf.models.build_vgg_lstm`). The only labels are
the number of digits of each class on the canvas: `LocoLoss` on those counts. The CPU default
narrows VGG-13 to 1/8 of its filters (`width`) and adds batch normalisation, for a budget of
under an hour on two CPU cores; `FULL` is the paper's network.

Training state lives in the output folder as for the drum recipe (`recipes.drums.train`):
`best.keras` (ModelCheckpoint, best validation loss), `backup/` (BackupAndRestore: rerunning
the same command resumes), `history.csv`, optional `logs/`, then `model.keras` and `model.json`
(configs, geometry, detection threshold, validation scores).

Detection (`DigitDetector.detect`): for each class, the time steps where p(t) is a local
maximum of at least `threshold` (`loco_tf.events.pick_peaks`; LoCo concentrates an event's mass
on one step, §4.5) are detections; a detection's position is the centre of that step's window
(`loco_tf.hilbert.window_centres`), so its precision is bounded by the stride (8 px).

Metrics (§8.3), `evaluate`:

- single-digit recognition: each MNIST test digit alone on an otherwise empty canvas, at a
  uniformly random position (the `digits-test-single` set: the canvases the network is trained
  on, with one digit); the predicted class is the argmax over classes of sum_t p(t), the
  expected count. The network never sees a digit outside a canvas, so the canvas, not a bare
  28 x 28 image, is its input.
- localisation: on the `digits-test` canvases, per canvas and class, the detections are matched
  to the true digits of that class by the Hungarian assignment of least total distance
  (`scipy.optimize.linear_sum_assignment`); the score is the mean Euclidean distance in pixels
  between matched true box centres and detection centres (the paper's "mean absolute distance
  between true and estimated bounding box centers"). Digits without a detection and
  detections without a digit do not enter the distance; they are counted in the recall and
  precision (a matched pair within `tolerance` px counts as found), and in the exact-count rate.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import scipy.optimize
import tensorflow as tf

from loco_tf import LocoLoss
from loco_tf.events import pick_peaks
from loco_tf.hilbert import window_centres
from loco_tf.models import VGGLSTMConfig, build_vgg_lstm, vgg13_filters
from loco_tf.pipelines.digits import (
    CLASS_NAMES,
    TEST,
    TEST_SINGLE,
    Canvas,
    DigitManifest,
    iterate_canvases,
    read_digit_manifest,
    training_dataset,
)
from loco_tf.recipes.configs import DIGIT_FULL as FULL  # noqa: F401 (a public name here)
from loco_tf.recipes.configs import DigitTrainConfig
from loco_tf.recipes.drums import (
    count_error,
    fit_resumably,
    load_checkpoint,
    manifest_path,
    newest_version,
    prepare_run_folder,
)

PathLike = str | os.PathLike

MODEL_FORMAT = "loco-tf/digit-model"
MODEL_VERSION = 1
MODEL_FILE = "model.keras"
MODEL_JSON = "model.json"
SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "saved_models" / "digits"
DIGIT_HEIGHT = 28

_BEST = "best.keras"  # the file names of the run folder are `drums.prepare_run_folder`'s
# A run may be resumed with these changed: e.g. more or fewer epochs than first planned.
_RESUMABLE_CHANGES = {"out", "epochs", "patience", "validation_steps", "tensorboard"}


def model_config(config: DigitTrainConfig, image_size: int) -> VGGLSTMConfig:
    """The network of a run, for canvases of `image_size` pixels."""
    return VGGLSTMConfig(
        image_size=image_size,
        window=config.window,
        stride=config.stride,
        num_classes=len(CLASS_NAMES),
        filters=vgg13_filters(config.width),
        batch_norm=config.batch_norm,
        lstm_units=config.lstm_units,
        dense_units=config.dense_units,
        prior_zero_mass=config.prior_zero_mass,
    )


def load_set(data: PathLike, name: str) -> DigitManifest:
    """Reads a set's manifest; a missing set says how to make it."""
    path = manifest_path(data, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no digit set {name!r}: {path} does not exist. Prepare the data first: "
            f"`loco prepare digits --out {os.fspath(data)}`."
        )
    return read_digit_manifest(path)


# ---------------------------------------------------------------------------------------------
# Detection and metrics.


def box_centres(boxes: np.ndarray) -> np.ndarray:
    """`[n, 2]` (row, col) pixel centres of `[n, 5]` (label, row, col, height, width) boxes,
    in the convention of `window_centres` (pixel i spans [i - 0.5, i + 0.5])."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
    return boxes[:, 1:3] + (boxes[:, 3:5] - 1) / 2


def match_centres(true: np.ndarray, estimated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of `[n, 2]` true to `[m, 2]` estimated centres: min(n, m) pairs of
    least total Euclidean distance. Returns (pairs `[k, 2]` of indices, distances `[k]`)."""
    true = np.asarray(true, np.float64).reshape(-1, 2)
    estimated = np.asarray(estimated, np.float64).reshape(-1, 2)
    distances = np.linalg.norm(true[:, None, :] - estimated[None, :, :], axis=-1)
    rows, cols = scipy.optimize.linear_sum_assignment(distances)
    return np.stack([rows, cols], axis=1), distances[rows, cols]


@dataclasses.dataclass(frozen=True)
class Detections:
    """What the detector found on one canvas: `labels [m]`, `steps [m]` (time steps),
    `centres [m, 2]` (row, col) pixels, `scores [m]` (the peak p(t))."""

    labels: np.ndarray
    steps: np.ndarray
    centres: np.ndarray
    scores: np.ndarray


def detect(probabilities: np.ndarray, centres: np.ndarray, threshold: float) -> Detections:
    """Peaks of each class's p(t) `[T, classes]` of at least `threshold`, at their window's
    centre (`centres [T, 2]`, from `window_centres`)."""
    labels, steps = [], []
    for c in range(probabilities.shape[1]):
        peaks = pick_peaks(probabilities[:, c], threshold)
        labels.append(np.full(len(peaks), c))
        steps.append(peaks)
    labels = np.concatenate(labels).astype(np.int64)
    steps = np.concatenate(steps).astype(np.int64)
    return Detections(labels, steps, centres[steps], probabilities[steps, labels])


@dataclasses.dataclass(frozen=True)
class Localisation:
    """Localisation scores on multi-digit canvases (module docstring).

    Attributes:
        mean_distance: mean Euclidean distance (px) of matched true and estimated centres.
        median_distance: their median.
        pairs: matched (true digit, detection) pairs.
        digits, detections: true digits and detections.
        precision, recall, f1: with a matched pair within `tolerance` px as found.
        tolerance: that distance in px.
        exact_counts: canvases where every class has as many detections as digits.
        canvases: canvases scored.
    """

    mean_distance: float
    median_distance: float
    pairs: int
    digits: int
    detections: int
    precision: float
    recall: float
    f1: float
    tolerance: float
    exact_counts: float
    canvases: int


def localisation_scores(
    canvases: Sequence[Canvas], detections: Sequence[Detections], tolerance: float = 14.0
) -> Localisation:
    """Matches detections to true digits class by class, canvas by canvas (Hungarian)."""
    distances, digits, found, exact = [], 0, 0, 0
    for canvas, detected in zip(canvases, detections, strict=True):
        labels = canvas.boxes[:, 0]
        digits += len(labels)
        same = np.bincount(labels, minlength=10) == np.bincount(detected.labels, minlength=10)
        exact += bool(same.all())
        for c in np.union1d(labels, detected.labels):
            _, d = match_centres(
                box_centres(canvas.boxes[labels == c]), detected.centres[detected.labels == c]
            )
            distances.append(d)
    distances = np.concatenate([np.zeros(0), *distances])
    found = int(np.sum(distances <= tolerance))
    count = int(sum(len(d.labels) for d in detections))
    precision = found / count if count else 0.0
    recall = found / digits if digits else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Localisation(
        mean_distance=float(distances.mean()) if len(distances) else float("nan"),
        median_distance=float(np.median(distances)) if len(distances) else float("nan"),
        pairs=len(distances),
        digits=digits,
        detections=count,
        precision=precision,
        recall=recall,
        f1=f1,
        tolerance=tolerance,
        exact_counts=exact / len(canvases) if len(canvases) else float("nan"),
        canvases=len(canvases),
    )


def recognition_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Single-digit canvases `[N, T, classes]` p(t): the share whose argmax over classes of
    sum_t p(t) (the expected count) is the true label."""
    predicted = np.argmax(np.asarray(probabilities).sum(axis=1), axis=-1)
    return float(np.mean(predicted == np.asarray(labels)))


# ---------------------------------------------------------------------------------------------
# The trained model.


class DigitDetector:
    """A trained digit model with its scan geometry: canvases -> p(t) -> detections.

    Args:
        model: the Keras model (images -> p(t) `[batch, T, 10]`).
        config: its `VGGLSTMConfig`.
        threshold: smallest peak of p(t) that is a detection.
        batch_size: canvases per inference batch.
    """

    def __init__(
        self, model: keras.Model, config: VGGLSTMConfig, threshold: float = 0.5, batch_size=128
    ):
        self.model = model
        self.config = config
        self.threshold = threshold
        self.batch_size = batch_size
        self.centres = window_centres(config.image_size, config.window, config.stride)

    @classmethod
    def load(cls, path: PathLike, **kwargs) -> DigitDetector:
        """Loads `model.keras` and `model.json` from a folder."""
        path = Path(path)
        keras_path, json_path = path / MODEL_FILE, path / MODEL_JSON
        for needed in (keras_path, json_path):
            if not needed.is_file():
                raise FileNotFoundError(
                    f"{needed} not found: a digit model is a folder with {MODEL_FILE} and "
                    f"{MODEL_JSON}, as `loco train digits --out FOLDER` writes it"
                )
        with open(json_path, encoding="utf-8") as file:
            description = json.load(file)
        if description.get("format") != MODEL_FORMAT:
            raise ValueError(f"{json_path}: not a {MODEL_FORMAT} description")
        values = dict(description["model_config"])
        values["filters"] = tuple(values["filters"])
        config = VGGLSTMConfig(**values)
        model = keras.saving.load_model(keras_path, compile=False)
        kwargs.setdefault("threshold", description["threshold"])
        return cls(model, config, **kwargs)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """p(t) `[N, T, 10]` of `[N, size, size]` (or `[..., 1]`) canvases of pixel values."""
        images = np.asarray(images, np.float32)
        if images.ndim == 3:
            images = images[..., None]
        size = self.config.image_size
        if images.shape[1:] != (size, size, self.config.channels):
            raise ValueError(
                f"the model takes {size} x {size} canvases, got {images.shape[1:]}; prepare "
                f"the data with `loco prepare digits --size {size}`"
            )
        if len(images) > 4 * self.batch_size:  # worth compiling (~10 s) for: 3x faster after
            return self.model.predict(images, batch_size=self.batch_size, verbose=0)
        outputs = [
            np.asarray(self.model(images[i : i + self.batch_size], training=False))
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.config.steps, 10))

    def detect(self, probabilities: np.ndarray) -> Detections:
        """Detections of one canvas's p(t) `[T, 10]`."""
        return detect(probabilities, self.centres, self.threshold)


def shipped_model() -> Path | None:
    """The newest model shipped in `saved_models/digits/<version>/`, or None."""
    return newest_version(SHIPPED_MODELS, MODEL_FILE)


# ---------------------------------------------------------------------------------------------
# Evaluation.


def _canvases(manifest: DigitManifest, limit: int | None) -> list[Canvas]:
    return list(iterate_canvases(manifest, limit))


def _check_size(detector: DigitDetector, manifest: DigitManifest) -> None:
    if manifest.image_size != detector.config.image_size:
        raise ValueError(
            f"{manifest.path}: {manifest.image_size} px canvases, the model takes "
            f"{detector.config.image_size} px"
        )


def localise_set(
    detector: DigitDetector,
    manifest: DigitManifest,
    limit: int | None = None,
    tolerance: float = 14.0,
) -> Localisation:
    """Localisation scores on (the first `limit` canvases of) a multi-digit set."""
    _check_size(detector, manifest)
    canvases = _canvases(manifest, limit)
    p = detector.probabilities(np.stack([c.image for c in canvases]))
    return localisation_scores(canvases, [detector.detect(q) for q in p], tolerance)


def recognise_set(detector: DigitDetector, manifest: DigitManifest, limit: int | None = None):
    """Single-digit recognition accuracy on (the first `limit` canvases of) a one-digit set."""
    _check_size(detector, manifest)
    canvases = _canvases(manifest, limit)
    if any(len(c.boxes) != 1 for c in canvases):
        raise ValueError(f"{manifest.path}: not a single-digit set (canvases hold other counts)")
    p = detector.probabilities(np.stack([c.image for c in canvases]))
    return recognition_accuracy(p, np.array([c.boxes[0, 0] for c in canvases])), len(canvases)


@dataclasses.dataclass(frozen=True)
class DigitEvaluation:
    """Both §8.3 scores of a model on a prepared data folder."""

    recognition_accuracy: float
    recognition_canvases: int
    localisation: Localisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready scores."""
        return {
            "recognition_accuracy": self.recognition_accuracy,
            "recognition_canvases": self.recognition_canvases,
            "localisation": dataclasses.asdict(self.localisation),
        }

    def table(self, title: str) -> str:
        """The scores as text."""
        loc = self.localisation
        return "\n".join(
            [
                title,
                f"  single-digit recognition   {100 * self.recognition_accuracy:6.2f} %  "
                f"({self.recognition_canvases} MNIST test digits, {TEST_SINGLE})",
                f"  mean localisation error    {loc.mean_distance:6.2f} px "
                f"(median {loc.median_distance:.2f} px; {loc.pairs} matched pairs, {TEST})",
                f"  detection within {loc.tolerance:g} px    P {100 * loc.precision:5.1f} %  "
                f"R {100 * loc.recall:5.1f} %  F1 {100 * loc.f1:5.1f} %  "
                f"({loc.digits} digits, {loc.detections} detections, {loc.canvases} canvases)",
                f"  canvases counted exactly   {100 * loc.exact_counts:6.2f} %",
            ]
        )


def evaluate(
    detector: DigitDetector,
    data: PathLike,
    limit: int | None = None,
    tolerance: float = 14.0,
    test_set: str = TEST,
    single_set: str = TEST_SINGLE,
) -> DigitEvaluation:
    """Recognition on `single_set` and localisation on `test_set` of a prepared folder."""
    accuracy, count = recognise_set(detector, load_set(data, single_set), limit)
    localisation = localise_set(detector, load_set(data, test_set), limit, tolerance)
    return DigitEvaluation(accuracy, count, localisation)


# ---------------------------------------------------------------------------------------------
# Training.


class _EpochTimer(keras.callbacks.Callback):
    """Adds each epoch's wall time (validation included) to its logs, as `epoch_seconds`, so
    that `history.csv` has the training time of a run however often it was resumed."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self.start


@dataclasses.dataclass
class TrainResult:
    """A finished run: the output folder, `model.json`'s contents, the per-epoch history."""

    out: Path
    description: dict[str, Any]
    history: list[dict[str, float]]


def train(
    config: DigitTrainConfig,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Trains a digit model on counts, scores it on the validation canvases, saves it.

    A rerun with the same config and output folder resumes an interrupted run (from the last
    backup) or, when training had finished, goes straight to scoring and saving. The number of
    epochs (and the patience) may change on a rerun: a run stopped after its N-th epoch and
    rerun with `epochs=N` is finished from its backup, without training further; a finished
    run rerun with more epochs trains on from its last epoch.

    Args:
        config: the run.
        callbacks: more Keras callbacks, called after the recipe's.
        verbose: `model.fit`'s verbosity.
        overwrite: start again in an output folder that holds a run.
        log: where progress messages go.
    """
    train_manifest = load_set(config.data, config.train_set)
    validation_manifest = load_set(config.data, config.validation_set)
    if train_manifest.image_size != validation_manifest.image_size:
        raise ValueError(
            f"{train_manifest.path} and {validation_manifest.path} have different canvas sizes"
        )
    network = model_config(config, train_manifest.image_size)
    most = max(train_manifest.digits[1], validation_manifest.digits[1])
    if most > config.k_max:
        log(f"warning: canvases hold up to {most} digits, above k_max={config.k_max} (eq. 14)")
    out = prepare_run_folder(
        config.out, config.to_dict(), DigitTrainConfig().to_dict(), _RESUMABLE_CHANGES, overwrite
    )
    keras.utils.set_random_seed(config.seed)
    model = build_vgg_lstm(network, name="digits")
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=LocoLoss(k_max=config.k_max),
        metrics=[count_error],
        jit_compile=False,
    )
    train_data = training_dataset(
        train_manifest, config.batch_size, shuffle_buffer=config.shuffle_buffer, seed=config.seed
    )
    batches = math.ceil(validation_manifest.totals["num_examples"] / config.batch_size)
    validation_data = training_dataset(
        validation_manifest, config.batch_size, shuffle_buffer=0, repeat=False
    ).apply(tf.data.experimental.assert_cardinality(batches))  # Keras knows where it ends

    history = fit_resumably(
        model,
        out,
        train_data,
        validation_data,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        validation_steps=config.validation_steps,
        patience=config.patience,
        backup_every=config.backup_every,
        tensorboard=config.tensorboard,
        callbacks=callbacks,
        first_callbacks=[_EpochTimer()],  # first: the loggers after it see its entry
        verbose=verbose,
        log=log,
    )
    if (out / _BEST).is_file():
        load_checkpoint(model, out / _BEST)

    log(f"Scoring on {validation_manifest.name} ...")
    detector = DigitDetector(model, network, config.threshold)
    validation = localise_set(detector, validation_manifest)
    losses = [row["val_loss"] for row in history if "val_loss" in row]
    description = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_VERSION,
        "classes": list(CLASS_NAMES),
        "threshold": config.threshold,
        "train_config": config.to_dict(),
        "model_config": dataclasses.asdict(network),
        "parameters": int(model.count_params()),
        "validation": dataclasses.asdict(validation),
        "training": {
            "epochs": len(history),
            "best_epoch": int(np.argmin(losses)) + 1 if losses else None,
            "best_val_loss": float(min(losses)) if losses else None,
            "fit_seconds": float(sum(row.get("epoch_seconds", 0.0) for row in history)),
            "data": {"train": train_manifest.path, "validation": validation_manifest.path},
        },
    }
    model.save(out / MODEL_FILE)
    with open(out / MODEL_JSON, "w", encoding="utf-8") as file:
        json.dump(description, file, indent=2)
    return TrainResult(out, description, history)


# ---------------------------------------------------------------------------------------------
# Figure.


def plot_detections(
    canvases: Iterable[Canvas],
    detections: Iterable[Detections],
    out: PathLike,
    columns: int = 3,
    title: str | None = None,
) -> None:
    """The paper's Fig. 2: canvases with their detections (red boxes of a digit's size around
    each estimated centre, labelled with the class and the peak p(t)) and the true digits (thin
    dotted green boxes, labelled at their lower left)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    canvases, detections = list(canvases), list(detections)
    rows = max(1, -(-len(canvases) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.3 * rows), squeeze=False)
    half = DIGIT_HEIGHT / 2
    for ax in axes.ravel():
        ax.axis("off")
    for ax, canvas, found in zip(axes.ravel(), canvases, detections, strict=False):
        ax.imshow(canvas.image, cmap="gray", vmin=0, vmax=255)  # pixel (r, c) centred at (c, r)
        for label, row, col, height, width in canvas.boxes:
            ax.add_patch(
                Rectangle(
                    (col - 0.5, row - 0.5), width, height, fill=False, ec="lime", lw=0.8, ls=":"
                )
            )
            ax.text(col, row + height - 1, str(label), color="lime", fontsize=7, va="bottom")
        for label, (row, col), score in zip(found.labels, found.centres, found.scores, strict=True):
            ax.add_patch(
                Rectangle(
                    (col - half, row - half), 2 * half, 2 * half, fill=False, ec="red", lw=1.2
                )
            )
            ax.text(
                col - half,
                row - half - 1,
                f"{label} ({score:.2f})",
                color="red",
                fontsize=7,
                va="bottom",
            )
        true = "".join(str(label) for label in sorted(canvas.boxes[:, 0]))
        ax.set_title(f"true {true or '-'}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_set(
    detector: DigitDetector,
    manifest: DigitManifest,
    out: PathLike,
    canvases: int = 6,
    first: int = 0,
) -> None:
    """Plots canvases `first` .. `first + canvases - 1` of a set with the detector's findings."""
    _check_size(detector, manifest)
    chosen = _canvases(manifest, first + canvases)[first:]
    if not chosen:
        raise ValueError(f"{manifest.path}: no canvas {first} (it has {len(chosen) + first})")
    p = detector.probabilities(np.stack([c.image for c in chosen]))
    plot_detections(
        chosen,
        [detector.detect(q) for q in p],
        out,
        title=f"{manifest.name}: red = detections (class, peak p), green dotted = true digits",
    )
