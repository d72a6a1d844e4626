"""Pure TensorFlow functions: the Poisson-binomial count distribution (paper §4.2, §5.1)."""

from loco_tf.ops.poisson_binomial import (
    LOG_LIKELIHOOD_METHODS,
    LOG_PMF_METHODS,
    log_event_probabilities,
    poisson_binomial_log_likelihood,
    poisson_binomial_log_pmf,
)

__all__ = [
    "LOG_LIKELIHOOD_METHODS",
    "LOG_PMF_METHODS",
    "log_event_probabilities",
    "poisson_binomial_log_likelihood",
    "poisson_binomial_log_pmf",
]
