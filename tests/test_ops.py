"""The count distribution against independent float64 references (tests/reference.py)."""

import numpy as np
import pytest
import tensorflow as tf
from reference import batch_log_pmf, brute_force_pmf, log_pmf_recursion

from loco_tf.ops import (
    LOG_LIKELIHOOD_METHODS,
    poisson_binomial_log_likelihood,
    poisson_binomial_log_pmf,
)


def _log_close(actual, expected, tolerance):
    """Relative error in log space, |a - e| <= tol * max(1, |e|): relative for the tiny
    probabilities (|log| large) and, near log 1 = 0, the relative error of the probability."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert np.array_equal(np.isneginf(actual), np.isneginf(expected))
    finite = np.isfinite(expected)
    error = np.abs(actual[finite] - expected[finite]) / np.maximum(1.0, np.abs(expected[finite]))
    assert error.max(initial=0.0) <= tolerance, f"max relative log error {error.max():.3g}"


def _likelihood_and_gradient(method, counts, probabilities, k_max, **kwargs):
    x = tf.constant(probabilities)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = poisson_binomial_log_likelihood(counts, x, k_max=k_max, method=method, **kwargs)
        total = tf.reduce_sum(value)
    return value.numpy(), tape.gradient(total, x).numpy()


@pytest.mark.parametrize("length", [1, 5, 12])
def test_log_pmf_equals_brute_force_enumeration(length):
    rng = np.random.default_rng(length)
    p = rng.uniform(size=(3, length, 2))
    p[0, 0, 0] = 0.0
    p[1, -1, 1] = 1.0
    k_max = 6
    expected = np.array([[brute_force_pmf(p[b, :, c], k_max) for c in range(2)] for b in range(3)])
    in_float64 = np.exp(poisson_binomial_log_pmf(tf.constant(p), k_max=k_max).numpy())
    np.testing.assert_allclose(in_float64, expected, rtol=1e-6, atol=0)
    # float32: against the enumeration of the float32-rounded p (1 - p of p = 0.9992 is only
    # known to 4e-5 relative once p is rounded to float32; that is the input, not the recursion).
    p32 = p.astype(np.float32)
    expected32 = [
        [brute_force_pmf(p32[b, :, c].astype(float), k_max) for c in range(2)] for b in range(3)
    ]
    in_float32 = poisson_binomial_log_pmf(tf.constant(p32), k_max=k_max).numpy()
    with np.errstate(divide="ignore"):
        _log_close(in_float32, np.log(expected32), 1e-6)


@pytest.mark.parametrize("method", LOG_LIKELIHOOD_METHODS)
def test_log_likelihood_equals_brute_force(method):
    rng = np.random.default_rng(7)
    p = rng.uniform(size=(4, 10, 3))
    counts = rng.integers(0, 9, size=(4, 3))
    k_max = 5
    value, _ = _likelihood_and_gradient(method, counts, p, k_max)
    for b in range(4):
        for c in range(3):
            expected = brute_force_pmf(p[b, :, c], k_max)[min(counts[b, c], k_max)]
            assert value[b, c] == pytest.approx(np.log(expected), rel=1e-9)


@pytest.mark.parametrize("frames", [400, 10_000])
def test_float32_matches_float64_recursion_with_random_lengths(frames):
    rng = np.random.default_rng(frames)
    batch, classes, k_max = 4, 3, 31
    p = rng.uniform(size=(batch, frames, classes)) ** 3 * (8 / frames)
    p[0, :, 0] = 1e-3  # DESIGN.md's underflow case: Pr(Y = 30) ~ 1e-56 at T = 400
    p[1, :, 2] = rng.uniform(0.2, 0.9, size=frames)  # mass far in the tail
    lengths = rng.integers(frames // 2, frames + 1, size=batch)
    lengths[0] = frames
    expected = batch_log_pmf(p, lengths, k_max)
    assert (expected < np.log(1e-30)).sum() >= 10, "the test must reach below 1e-30"
    padded = np.where(np.arange(frames)[None, :, None] < lengths[:, None, None], p, 0.0)
    with_lengths = poisson_binomial_log_pmf(
        tf.constant(p, tf.float32), lengths=tf.constant(lengths), k_max=k_max
    ).numpy()
    zero_padded = poisson_binomial_log_pmf(tf.constant(padded, tf.float32), k_max=k_max).numpy()
    _log_close(with_lengths, expected, 1e-5)
    _log_close(zero_padded, expected, 1e-5)
    counts = rng.integers(0, 40, size=(batch, classes))
    counts[0, 0] = 30
    reference = np.take_along_axis(expected, np.minimum(counts, k_max)[..., None], -1)[..., 0]
    for method in LOG_LIKELIHOOD_METHODS:
        value = poisson_binomial_log_likelihood(
            counts, tf.constant(padded, tf.float32), k_max=k_max, method=method
        )
        _log_close(value.numpy(), reference, 1e-5)


def test_probability_space_would_underflow_where_log_space_does_not():
    p = np.full(400, 1e-3)
    log_pmf = log_pmf_recursion(p, 31)
    pmf32 = np.zeros(32, np.float32)
    pmf32[0] = 1
    for pt in p.astype(np.float32):  # eq. 9 in float32 probability space
        pmf32[1:] = (1 - pt) * pmf32[1:] + pt * pmf32[:-1]
        pmf32[0] *= 1 - pt
    assert pmf32[30] == 0.0 and log_pmf[30] < -100  # underflows, though Pr ~ 1e-45
    ours = poisson_binomial_log_pmf(tf.constant(p[None, :, None], tf.float32), k_max=31)
    assert ours.numpy()[0, 0, 30] == pytest.approx(log_pmf[30], rel=1e-6)


def _reference_log_likelihood(p, counts, k_max):
    return sum(
        log_pmf_recursion(p[b, :, c], k_max)[min(counts[b, c], k_max)]
        for b in range(p.shape[0])
        for c in range(p.shape[2])
    )


@pytest.mark.parametrize("method", LOG_LIKELIHOOD_METHODS)
def test_gradients_match_float64_finite_differences(method):
    rng = np.random.default_rng(3)
    p = rng.uniform(0.02, 0.98, size=(2, 30, 3))
    counts = np.array([[0, 3, 12], [7, 40, 1]])  # 40 > k_max: the tail bin
    k_max = 9
    _, gradient = _likelihood_and_gradient(method, counts, p, k_max)
    step = 1e-6
    numeric = np.zeros_like(p)
    for index in np.ndindex(p.shape):
        up, down = p.copy(), p.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (
            _reference_log_likelihood(up, counts, k_max)
            - _reference_log_likelihood(down, counts, k_max)
        ) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", LOG_LIKELIHOOD_METHODS)
def test_logit_gradient_is_posterior_minus_prior(method):
    """d log Pr(Y = y) / d logit p(t) = Pr(E_t = 1 | Y = y) - p(t), by enumeration."""
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(1, 8, 1))
    p = 1 / (1 + np.exp(-logits[0, :, 0]))
    y = 3
    x = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = poisson_binomial_log_likelihood([[y]], logits=x, k_max=6, method=method)
    gradient = tape.gradient(value, x).numpy()[0, :, 0]
    posterior = np.zeros(8)
    for t in range(8):
        rest = np.delete(p, t)
        posterior[t] = p[t] * brute_force_pmf(rest, 7)[y - 1] / brute_force_pmf(p, 7)[y]
    np.testing.assert_allclose(gradient, posterior - p, rtol=1e-9, atol=1e-12)


def test_forward_backward_gradient_is_exact_at_p_zero_and_one():
    """At p(t) in {0, 1}, d Pr / dp(t) = Pr(rest = y - 1) - Pr(rest = y): finite and exact."""
    p = np.array([0.0, 1.0, 0.3, 0.6, 1.0, 0.0, 0.5])
    y, k_max = 3, 5
    _, gradient = _likelihood_and_gradient("forward_backward", [[y]], p[None, :, None], k_max)
    total = brute_force_pmf(p, k_max)[y]
    for t in range(len(p)):
        rest = brute_force_pmf(np.delete(p, t), k_max)
        expected = (rest[y - 1] - rest[y]) / total
        assert gradient[0, t, 0] == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("method", LOG_LIKELIHOOD_METHODS)
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_values_and_gradients_finite_at_edges(method, dtype):
    p = np.zeros((4, 12, 2))
    p[0, :, 0] = [0, 1, 0, 1, 1, 0, 0.5, 0, 1, 0, 0, 0]  # exact 0 and 1
    p[1] = 0.0  # all padding
    p[2, :6] = 0.9  # counts above k_max
    p[3] = np.linspace(0, 1, 12)[:, None]
    counts = np.array([[4, 0], [0, 0], [50, 6], [3, 11]])
    lengths = np.array([12, 0, 12, 12])
    value, gradient = _likelihood_and_gradient(
        method, counts, tf.cast(p, dtype), 3, lengths=lengths
    )
    assert np.isfinite(value).all() and np.isfinite(gradient).all()
    assert value[1, 0] == 0.0  # no frames: zero events for sure
    assert (gradient[1] == 0).all()


def test_impossible_count_has_minus_infinite_log_likelihood():
    p = np.zeros((1, 5, 1))
    p[0, :2, 0] = 0.5
    value = poisson_binomial_log_likelihood([[3]], tf.constant(p), k_max=8)
    assert value.numpy()[0, 0] == -np.inf


@pytest.mark.parametrize("method", LOG_LIKELIHOOD_METHODS)
def test_padding_invariance(method):
    rng = np.random.default_rng(5)
    p = rng.uniform(0, 0.3, size=(1, 50, 2))
    counts = [[4, 9]]
    base, base_gradient = _likelihood_and_gradient(method, counts, p, 31)
    for extra in [1, 7, 350]:
        padded = np.concatenate([p, np.zeros((1, extra, 2))], axis=1)
        value, gradient = _likelihood_and_gradient(method, counts, padded, 31)
        np.testing.assert_allclose(value, base, rtol=1e-12)
        np.testing.assert_allclose(gradient[:, :50], base_gradient, rtol=1e-9)
        noisy = padded.copy()
        noisy[:, 50:] = 0.7  # whatever sits past the length is ignored
        value, gradient = _likelihood_and_gradient(method, counts, noisy, 31, lengths=[50])
        np.testing.assert_allclose(value, base, rtol=1e-12)
        assert (gradient[:, 50:] == 0).all()


def test_logits_and_probabilities_agree():
    rng = np.random.default_rng(6)
    logits = rng.normal(-2, 3, size=(2, 40, 3))
    from_logits = poisson_binomial_log_pmf(logits=tf.constant(logits), k_max=7)
    from_p = poisson_binomial_log_pmf(tf.constant(1 / (1 + np.exp(-logits))), k_max=7)
    np.testing.assert_allclose(from_logits.numpy(), from_p.numpy(), rtol=1e-9)


def test_distribution_sums_to_one_and_zero_frames():
    p = tf.random.uniform([3, 64, 2], seed=1)
    pmf = tf.exp(poisson_binomial_log_pmf(p, k_max=20))
    np.testing.assert_allclose(tf.reduce_sum(pmf, -1).numpy(), 1.0, rtol=1e-5)
    empty = poisson_binomial_log_pmf(tf.zeros([2, 0, 1]), k_max=3).numpy()
    assert (empty[..., 0] == 0).all() and np.isneginf(empty[..., 1:]).all()


def test_bad_arguments_say_what_is_wrong():
    p = tf.zeros([1, 4, 1])
    with pytest.raises(ValueError, match="k_max"):
        poisson_binomial_log_pmf(p, k_max=0)
    with pytest.raises(ValueError, match="method"):
        poisson_binomial_log_likelihood([[0]], p, k_max=3, method="fft")
    with pytest.raises(ValueError, match="exactly one"):
        poisson_binomial_log_pmf(p, logits=p, k_max=3)


def test_runs_inside_tf_function_and_xla():
    p = tf.random.uniform([2, 30, 3], maxval=0.2, seed=2)
    counts = tf.constant([[1, 2, 3], [0, 4, 1]])
    eager = poisson_binomial_log_likelihood(counts, p, k_max=8, method="scan")
    for jit in [False, True]:
        for method in LOG_LIKELIHOOD_METHODS:

            @tf.function(jit_compile=jit)
            def step(p, method=method):
                with tf.GradientTape() as tape:
                    tape.watch(p)
                    value = poisson_binomial_log_likelihood(counts, p, k_max=8, method=method)
                return value, tape.gradient(value, p)

            value, gradient = step(p)
            np.testing.assert_allclose(value.numpy(), eager.numpy(), rtol=1e-5)
            assert np.isfinite(gradient.numpy()).all()


@pytest.mark.parametrize(
    "frames, k_max", [(0, 3), (1, 1), (5, 1), (33, 31), (100, 6), (10_000, 31)]
)
def test_tree_method_equals_the_float64_recursion(frames, k_max):
    """method="tree" (pairwise truncated convolutions in float64) against the float64
    recursion of eq. 9: probabilities to 1e-12 (the float32 `scan` is within 2e-6 there), and
    log-probabilities down to float64's range (1e-300) to float32 rounding."""
    rng = np.random.default_rng(frames + k_max)
    p = (rng.uniform(size=(3, frames, 2)) ** 3 * min(1.0, 30 / max(frames, 1))).astype(np.float32)
    if frames > 4:
        p[0, :3, 0] = 0.0
        p[1, 2, 1] = 1.0
    lengths = np.array([frames, max(frames - 3, 0), frames // 2])
    expected = batch_log_pmf(p.astype(np.float64), lengths, k_max)
    tree = poisson_binomial_log_pmf(
        tf.constant(p), lengths=tf.constant(lengths), k_max=k_max, method="tree"
    ).numpy()
    assert tree.dtype == np.float32
    np.testing.assert_allclose(np.exp(tree.astype(np.float64)), np.exp(expected), atol=1e-7)
    representable = expected > np.log(1e-300)
    _log_close(np.where(representable, tree, 0.0), np.where(representable, expected, 0.0), 2e-6)
    # In float64 throughout, from logits too.
    p64 = np.clip(p.astype(np.float64), 1e-9, 1 - 1e-9)
    expected64 = batch_log_pmf(p64, lengths, k_max)
    logits = np.log(p64) - np.log1p(-p64)
    from_logits = poisson_binomial_log_pmf(
        logits=tf.constant(logits), lengths=tf.constant(lengths), k_max=k_max, method="tree"
    ).numpy()
    assert from_logits.dtype == np.float64
    np.testing.assert_allclose(np.exp(from_logits), np.exp(expected64), atol=1e-12)


def test_tree_and_scan_layers_agree_and_serialise():
    from loco_tf.layers import CountDistribution

    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, size=(2, 700, 3)).astype(np.float32)
    lengths = np.array([700, 451])
    scan = CountDistribution(k_max=9)(p, lengths=lengths).numpy()
    layer = CountDistribution(k_max=9, method="tree")
    tree = layer(p, lengths=lengths).numpy()
    np.testing.assert_allclose(tree, scan, atol=2e-6)
    assert CountDistribution.from_config(layer.get_config()).method == "tree"
    with pytest.raises(ValueError, match="method must be one of"):
        CountDistribution(method="fft")
