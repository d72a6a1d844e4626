"""Output-bias initialisation for count learning (paper §5.2, eq. 15)."""

from __future__ import annotations

import math

import keras


def count_prior_bias(omega: float, sequence_length: int) -> float:
    """Pre-sigmoid bias that puts probability `omega` on a zero count initially (eq. 15).

    With every frame at p = sigmoid(b) = 1 - omega**(1/T), Pr(Y = 0) = (1 - p)**T = omega:
    b = log((1 - omega**(1/T)) / omega**(1/T)). Computed as log(-expm1(l)) - l with
    l = log(omega) / T, which stays accurate for long sequences where omega**(1/T) ~ 1.

    Args:
        omega: initial mass on the first bin, strictly between 0 and 1 and "substantially
            different from both" (the paper); 0.5 is a balanced start.
        sequence_length: T, the number of frames per training sequence.

    Returns:
        The bias as a Python float.
    """
    if not 0.0 < omega < 1.0:
        raise ValueError(f"omega must lie strictly between 0 and 1, got {omega!r}.")
    if sequence_length < 1:
        raise ValueError(
            f"sequence_length must be a positive frame count, got {sequence_length!r}."
        )
    log_stay = math.log(omega) / sequence_length
    return math.log(-math.expm1(log_stay)) - log_stay


@keras.saving.register_keras_serializable(package="loco_tf")
class CountPriorBias(keras.initializers.Initializer):
    """Keras initializer filling a bias with `count_prior_bias(omega, sequence_length)`.

    Example:
        >>> head = keras.layers.Dense(3, activation="sigmoid",
        ...                           bias_initializer=CountPriorBias(0.5, 400))
    """

    def __init__(self, omega: float = 0.5, sequence_length: int = 400):
        self.omega = float(omega)
        self.sequence_length = int(sequence_length)
        self.value = count_prior_bias(self.omega, self.sequence_length)

    def __call__(self, shape, dtype=None):
        return keras.ops.full(shape, self.value, dtype=dtype or keras.backend.floatx())

    def get_config(self) -> dict:
        return {"omega": self.omega, "sequence_length": self.sequence_length}
