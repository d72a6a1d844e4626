"""`Augment`: which feature-level augmentations a training run applies, and their ranges.

The augmentations themselves are TensorFlow code in `pipelines.dataset` (its docstring has what
each one does). This module imports no TensorFlow, so a training configuration
(`recipes.configs.DrumTrainConfig`) can build and check its `Augment` without it, and
`loco train drums --help` stays fast.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Augment:
    """Feature-level augmentation for `pipelines.dataset.training_dataset`.

    Nothing here moves an event; sample-rate variation and time stretching change event times
    and are applied to audio at preprocessing (`pipelines.audio`).

    Attributes:
        stack_probability: chance that an example is mixed with another random example
            (§7.1); their counts add.
        gain_db: each segment's level changes by a uniform draw in [-gain_db, gain_db] dB.
        eq_db: each of the `pipelines.dataset.EQ_POINTS` equaliser gains is a uniform draw
            in [-eq_db, eq_db] dB.
        shift_bands: the mel bands move up or down by a uniform integer in
            [-shift_bands, shift_bands]; the edge band fills the bands left empty.
        reverb_seconds: each segment gets a reverberation tail (`pipelines.dataset.reverberate`)
            with a reverberation time (RT60) drawn uniformly in [0, reverb_seconds] and a tail
            level drawn uniformly in `pipelines.dataset.REVERB_WET_DB`; 0 turns it off.
        mask_bands: frequency masking (`pipelines.dataset.mask_bands`): each segment gets
            `pipelines.dataset.MASKS` masks, each of a uniform number in [0, mask_bands] of
            consecutive mel bands at a uniform place; 0 turns it off.
    """

    stack_probability: float = 0.0
    gain_db: float = 0.0
    eq_db: float = 0.0
    shift_bands: int = 0
    reverb_seconds: float = 0.0
    mask_bands: int = 0

    def __post_init__(self):
        if not 0.0 <= self.stack_probability <= 1.0:
            raise ValueError(f"stack_probability must be in [0, 1]: {self.stack_probability}")
        ranges = (self.gain_db, self.eq_db, self.shift_bands, self.reverb_seconds, self.mask_bands)
        if min(ranges) < 0:
            raise ValueError(
                "gain_db, eq_db, shift_bands, reverb_seconds and mask_bands are ranges and must "
                f"be >= 0: {self}"
            )

    @property
    def colours(self) -> bool:
        """Whether any spectral colouring is on."""
        return bool(self.gain_db or self.eq_db or self.shift_bands)

    @property
    def changes_features(self) -> bool:
        """Whether segments' features are changed (colouring, reverberation or masking:
        `colour_examples`)."""
        return self.colours or bool(self.reverb_seconds) or bool(self.mask_bands)

    @property
    def active(self) -> bool:
        """Whether any augmentation is on."""
        return bool(self.stack_probability) or self.changes_features
