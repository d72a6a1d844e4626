"""The training runs' configurations: `DrumTrainConfig` (drums, and piano with `piano_config`)
and `DigitTrainConfig`.

Their recipes (`recipes.drums`, `recipes.piano`, `recipes.digits`) import them from here. This
module imports no TensorFlow, so the `loco` command can show every option and its default
(`loco train drums --help`) in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from loco_tf._choices import PRECISIONS, STRATEGIES
from loco_tf.pipelines.augment import Augment
from loco_tf.pipelines.readers import DRUM_CLASSES, PIANO_PITCHES

SUPERVISIONS = ("counts", "frames")
TASKS = ("drums", "piano")
PIANO_CLASSES = tuple(PIANO_PITCHES)
PIANO_BAND = 10


@dataclasses.dataclass(frozen=True)
class DrumTrainConfig:
    """A drum training run; `loco train drums` has one option per field.

    Attributes:
        data: folder of the sets written by `loco prepare drums`.
        out: output folder (model, checkpoints, backup, history, logs).
        train_set: training set name in `data`, or a path to a `.manifest.json` (e.g. the
            fixed-length set of the §4.5 ablation, prepared with `--min-crop 0`); several,
            comma separated, are one set (`pipelines.tfrecords.combine_manifests`).
        validation_set: validation set name in `data`, or a manifest path; several, comma
            separated, as `train_set`.
        classes: the classes, in output order.
        supervision: "counts" (LoCo) or "frames" (the fully supervised twin).
        per_instrument: one 1-class network per class instead of one network for all.
        band_size: networks of `band_size` consecutive classes each (the piano recipe's bands
            of 10 pitches, §7.1); 0 for one network, 1 is `per_instrument`.
        decoding_band_size: classes per shared decoding (threshold, spacing, offset), tuned on
            their events together (`events.tune_decoding(groups=...)`); 0 tunes each class on
            its own (drums). The piano tunes bands of 10 pitches: one pitch alone has too few
            validation onsets.
        task: "drums" or "piano": what `loco predict` writes (recorded in `model.json`).
        k_max: last count bin of the loss (eq. 14).
        prior_zero_mass: omega of the eq. 15 output bias.
        sequence_length: T of the eq. 15 bias and of the fixed batch padding, frames.
        filters, lstm_units, dense_units: the §6.1 network (six 3x4 convolutions of 8 to 16
            filters, a 24-unit LSTM, a 16-unit dense layer).
        learning_rate: Adam's.
        batch_size: segments per batch.
        epochs: at most this many epochs.
        steps_per_epoch: batches per epoch (the training set repeats).
        validation_steps: validation batches per epoch; None for the whole set.
        patience: epochs without a better validation loss before stopping.
        reduce_lr_patience: epochs without a better validation loss before the learning rate
            is multiplied by `reduce_lr_factor` (Keras' ReduceLROnPlateau, at most four
            times); 0 keeps it constant.
        reduce_lr_factor: that factor.
        init_from: a drum model folder (`model.keras` + `model.json`, e.g. a finished run or
            `saved_models/drums/3`) whose weights start the run: fine-tuning, e.g. on new kits
            or recordings. Its classes and features must be this run's, and its network
            sizes too, or smaller: a one-network start then grows into this run's
            (`grow_conv_lstm_weights`: the same p(t) at the start, the new units' own weights
            from the initialisers; for `average_weight`, the start's new units are taken as
            the run's, since they do not change its p(t)). The optimiser starts afresh. ""
            starts from the initialisers (eq. 15 bias).
        average_weight: w > 0 saves the model as (1 - w) x the run's best weights + w x
            `init_from`'s, element-wise: weight-space ensembling of a fine-tuned model with the
            one it started from (as WiSE-FT, Wortsman et al. 2022), which keeps more of the
            start's robustness. The decoding is tuned for the average; `best.keras` keeps the
            run's own weights. 0 saves the best weights. It may be added to a finished run.
        shuffle_buffer: segments in the shuffle buffer.
        stack_probability: extract stacking (§7.1) probability; counts supervision only.
        gain_db, eq_db, shift_bands: spectral colouring of each training segment (a random
            level, smooth equaliser and shift of mel bands within these ranges; 0 is off;
            `pipelines.augment.Augment`), for both supervisions. It imitates other drum kits.
        reverb_seconds: a reverberation tail on each training segment, RT60 up to this many
            seconds (`pipelines.dataset.reverberate`; 0 is off), for both supervisions. It
            imitates the room sound of kits recorded with room microphones.
        mask_bands: frequency masking of each training segment: two masks of up to this many
            consecutive mel bands each, where every frame holds the band's mean level
            (`pipelines.dataset.mask_bands`; 0 is off), for both supervisions.
        widen_frames: frames on each side of an onset that are positives too (frames only).
        widen_weight: the loss weight of those neighbours (frames only).
        tensorboard: write TensorBoard logs to `out/logs`.
        backup_every: batches between backups; None backs up at the end of each epoch.
        seed: weights, shuffling and augmentation (a run resumed after E epochs draws its
            data with seed + 1000 E, so as not to replay its first epochs).
        strategy: `loco_tf.distribute.STRATEGIES`: "default" (one device), "mirrored" (all
            GPUs, or all logical CPU devices), "multiworker" (processes named by TF_CONFIG).
            `batch_size` is the global batch. A run may resume under another strategy.
        mixed_precision: "float32", "mixed_float16" or "mixed_bfloat16" (the loss stays
            float32).
    """

    data: str = "data"
    out: str = "runs/drums"
    train_set: str = "drums-train"
    validation_set: str = "drums-validation"
    classes: tuple[str, ...] = DRUM_CLASSES
    supervision: str = "counts"
    per_instrument: bool = False
    band_size: int = 0
    decoding_band_size: int = 0
    k_max: int = 31
    prior_zero_mass: float = 0.5
    sequence_length: int = 400
    filters: tuple[int, ...] = (8, 8, 16, 16, 16, 16)
    lstm_units: int = 24
    dense_units: int = 16
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 40
    steps_per_epoch: int = 250
    validation_steps: int | None = None
    patience: int = 6
    reduce_lr_patience: int = 0
    reduce_lr_factor: float = 0.5
    init_from: str = ""
    average_weight: float = 0.0
    shuffle_buffer: int = 2048
    stack_probability: float = 0.0
    gain_db: float = 0.0
    eq_db: float = 0.0
    shift_bands: int = 0
    reverb_seconds: float = 0.0
    mask_bands: int = 0
    widen_frames: int = 1
    widen_weight: float = 0.25
    tensorboard: bool = False
    backup_every: int | None = None
    seed: int = 0
    strategy: str = "default"
    mixed_precision: str = "float32"
    task: str = "drums"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}: {self.task!r}")
        if self.supervision not in SUPERVISIONS:
            raise ValueError(f"supervision must be one of {SUPERVISIONS}: {self.supervision!r}")
        if not self.classes:
            raise ValueError("at least one class is needed")
        if self.stack_probability and self.supervision == "frames":
            raise ValueError("extract stacking mixes counts; it is for counts supervision only")
        if min(self.batch_size, self.epochs, self.steps_per_epoch, self.sequence_length) < 1:
            raise ValueError(f"batch_size, epochs, steps_per_epoch must be positive: {self}")
        self.augment  # noqa: B018 -- building the Augment checks its ranges
        if self.shift_bands and self.task == "piano":
            raise ValueError("shift_bands moves pitches, and piano classes are pitches: use 0")
        if self.band_size < 0 or self.decoding_band_size < 0:
            raise ValueError("band_size and decoding_band_size must be >= 0 (0: all / each)")
        if self.reduce_lr_patience < 0 or not 0.0 < self.reduce_lr_factor < 1.0:
            raise ValueError("reduce_lr_patience must be >= 0 and reduce_lr_factor in (0, 1)")
        if not 0.0 <= self.average_weight < 1.0:
            raise ValueError(f"average_weight must be in [0, 1), got {self.average_weight}")
        if self.average_weight and not self.init_from:
            raise ValueError("average_weight averages with init_from's weights: give init_from")
        if self.widen_frames < 0 or not 0.0 <= self.widen_weight <= 1.0:
            raise ValueError("widen_frames must be >= 0 and widen_weight in [0, 1]")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}: {self.strategy!r}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {PRECISIONS}")

    @property
    def augment(self) -> Augment:
        """The run's feature-level augmentation (its `active` is False when there is none): the
        fields of `Augment`, which this config has under the same names."""
        return Augment(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Augment)})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DrumTrainConfig:
        """The inverse of `to_dict`."""
        values = dict(values)
        for name in ("classes", "filters"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class DigitTrainConfig:
    """A digit training run; `loco train digits` has one option per field.

    Attributes:
        data: folder of the sets written by `loco prepare digits`.
        out: output folder (model, checkpoints, backup, history, logs).
        train_set, validation_set: set names in `data`, or `.manifest.json` paths.
        width: VGG-13's filters are multiplied by this (1 is the paper's network).
        window: sub-image side in pixels (32: VGG's five poolings end at 1 x 1).
        stride: pixels between windows (the paper's 8 px granularity). The canvas size of the
            data must equal `window + stride * (2**n - 1)`.
        batch_norm: batch normalisation after each convolution (not in the paper, which
            `DIGIT_FULL` follows; see `VGGLSTMConfig`).
        lstm_units, dense_units: 48 and 24 in the paper.
        k_max: last count bin of the loss (eq. 14); at least the most digits per canvas.
        prior_zero_mass: omega of the eq. 15 output bias.
        learning_rate: Adam's.
        batch_size: canvases per batch.
        epochs: at most this many epochs.
        steps_per_epoch: batches per epoch (the training set repeats).
        validation_steps: validation batches per epoch; None for the whole set.
        patience: epochs without a better validation loss before stopping.
        shuffle_buffer: canvases in the shuffle buffer.
        threshold: smallest peak of p(t) that is a detection.
        tensorboard: write TensorBoard logs to `out/logs`.
        backup_every: batches between backups; None backs up at the end of each epoch.
        seed: weights and shuffling.
    """

    data: str = "data/digits"
    out: str = "runs/digits"
    train_set: str = "digits-train"  # pipelines.digits.TRAIN
    validation_set: str = "digits-validation"  # pipelines.digits.VALIDATION
    width: float = 0.125
    window: int = 32
    stride: int = 8
    batch_norm: bool = True
    lstm_units: int = 48
    dense_units: int = 24
    k_max: int = 8
    prior_zero_mass: float = 0.5
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 24
    steps_per_epoch: int = 200
    validation_steps: int | None = None
    patience: int = 4
    shuffle_buffer: int = 4096
    threshold: float = 0.5
    tensorboard: bool = False
    backup_every: int | None = None
    seed: int = 0

    def __post_init__(self):
        if min(self.batch_size, self.epochs, self.steps_per_epoch, self.k_max) < 1:
            raise ValueError(f"batch_size, epochs, steps_per_epoch, k_max must be positive: {self}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if not self.width > 0:  # `models.vgg13_filters(width)` has at least one filter each
            raise ValueError(f"width must be positive, got {self.width!r}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return dict(self.__dict__)


DIGIT_FULL = {
    "width": 1.0,
    "batch_norm": False,
    "epochs": 30,
    "steps_per_epoch": 1875,
    "patience": 6,
}
"""`--full`: the paper's VGG-13 (all filters), a pass over the 60,000 training canvases per
epoch (batch 32); for a GPU."""


PIANO_CPU_DEFAULTS: dict[str, Any] = dict(
    data="data-piano",
    out="runs/piano",
    train_set="piano-train",
    validation_set="piano-validation",
    classes=PIANO_CLASSES,
    k_max=42,
    band_size=0,
    decoding_band_size=PIANO_BAND,
    filters=(8, 8, 16, 16, 16, 16),
    lstm_units=96,
    dense_units=64,
    task="piano",
)
PIANO_FULL: dict[str, Any] = dict(
    band_size=PIANO_BAND,
    filters=(16, 16, 32, 32, 32, 32),
    lstm_units=48,
    dense_units=32,
    stack_probability=0.25,
)
"""What `--full` changes: the paper's §7.1 configuration."""


def piano_config(full: bool = False, **overrides) -> DrumTrainConfig:
    """The piano training config (`recipes.piano`): CPU defaults, or the paper's with `full`,
    then `overrides`."""
    values = {**PIANO_CPU_DEFAULTS, **(PIANO_FULL if full else {}), **overrides}
    return DrumTrainConfig(**values)
