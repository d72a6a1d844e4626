"""The Poisson-binomial count distribution, exact and in log space.

A causal network emits per-frame event probabilities p(t); the number of events Y is a sum of
independent Bernoulli(p(t)), i.e. Poisson-binomial (paper eq. 4, eq. 6). Its distribution is
built one frame at a time by the recursion of eq. 9, truncated at `k_max` with a tail bin that
holds all mass at or above `k_max` (eq. 14). The LoCo loss is -log Pr(Y = y) (eq. 7).

Everything is computed from log p and log(1 - p), so counts whose probability is far below the
float32 range (P(Y = 30) for T = 400, p = 1e-3 is about 1e-56) keep exact log-probabilities.
A probability of exactly 0 is log 0 = -inf; every helper here is exact at -inf in value and
keeps gradients finite there. Padded frames are p = 0, the identity step of eq. 9.

Two ways to differentiate the log-likelihood:
  * `"scan"`: `tf.scan` over eq. 9 and autodiff through it (the reference).
  * `"forward_backward"`: forward messages (eq. 9) and backward messages
    beta_t(k) = log Pr(Y_T = y | Y_t = k), giving the analytic gradient
    d log Pr(Y = y) / d logit p(t) = Pr(event at t | Y = y) - p(t) without autodiff through the
    loop; both loops are XLA-compiled. Identical values, faster (see bench/loss_bench.py).
"""

from __future__ import annotations

import tensorflow as tf

NEG_INF = float("-inf")
LOG_PMF_METHODS = ("scan",)
LOG_LIKELIHOOD_METHODS = ("forward_backward", "scan")


def _log_add_exp(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """log(exp(a) + exp(b)), exact at -inf in value and gradient.

    The shift is a stopped maximum so that ties split the gradient evenly (tf.maximum's gradient
    would route all of it to one side); a shift of -inf (both terms are log 0) is replaced by 0
    and the result put back to -inf, so no inf - inf or 0 / 0 reaches the gradient.
    """
    shift = tf.stop_gradient(tf.maximum(a, b))
    dead = tf.equal(shift, NEG_INF)
    shift = tf.where(dead, tf.zeros_like(shift), shift)
    total = tf.exp(a - shift) + tf.exp(b - shift)
    total = tf.where(dead, tf.ones_like(total), total)
    return tf.where(dead, tf.fill(tf.shape(total), tf.constant(NEG_INF, total.dtype)),
                    shift + tf.math.log(total))


def _log_sum_exp(x: tf.Tensor, axis: int) -> tf.Tensor:
    """`reduce_logsumexp` that returns -inf (not NaN gradients) for an all -inf slice."""
    shift = tf.stop_gradient(tf.reduce_max(x, axis=axis, keepdims=True))
    dead = tf.equal(shift, NEG_INF)
    shift = tf.where(dead, tf.zeros_like(shift), shift)
    total = tf.reduce_sum(tf.exp(x - shift), axis=axis, keepdims=True)
    total = tf.where(dead, tf.ones_like(total), total)
    out = tf.where(dead, tf.fill(tf.shape(total), tf.constant(NEG_INF, total.dtype)),
                   shift + tf.math.log(total))
    return tf.squeeze(out, axis)


def _safe_log(x: tf.Tensor) -> tf.Tensor:
    """log x with log 0 = -inf and a zero (not 0 * inf) gradient at 0."""
    positive = x > 0
    return tf.where(positive, tf.math.log(tf.where(positive, x, tf.ones_like(x))),
                    tf.constant(NEG_INF, x.dtype))


def _compute_dtype(x: tf.Tensor) -> tf.DType:
    # Half precision cannot hold log-probabilities of long sequences: compute in float32.
    return tf.float64 if x.dtype == tf.float64 else tf.float32


def log_event_probabilities(
    event_probabilities: tf.Tensor | None = None,
    *,
    logits: tf.Tensor | None = None,
    lengths: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """log p(t) and log(1 - p(t)) from probabilities or logits, with padding as p = 0.

    Args:
        event_probabilities: `[batch, time, classes]` p(t) in [0, 1].
        logits: `[batch, time, classes]` pre-sigmoid values instead of probabilities;
            log p = -softplus(-x) and log(1 - p) = -softplus(x) are exact for any x.
        lengths: optional `[batch]` number of valid frames; later frames get p = 0.

    Returns:
        `(log_p, log_q)`, each `[batch, time, classes]`.
    """
    if (event_probabilities is None) == (logits is None):
        raise ValueError("Pass exactly one of `event_probabilities` and `logits`.")
    if logits is not None:
        x = tf.convert_to_tensor(logits)
        x = tf.cast(x, _compute_dtype(x))
        log_p, log_q = -tf.nn.softplus(-x), -tf.nn.softplus(x)
    else:
        p = tf.convert_to_tensor(event_probabilities)
        p = tf.cast(p, _compute_dtype(p))
        log_p, log_q = _safe_log(p), _safe_log(1.0 - p)
    if lengths is not None:
        frames = tf.range(tf.shape(log_p)[1])
        valid = frames[None, :, None] < tf.cast(lengths, tf.int32)[:, None, None]
        log_p = tf.where(valid, log_p, tf.constant(NEG_INF, log_p.dtype))
        log_q = tf.where(valid, log_q, tf.zeros_like(log_q))
    return log_p, log_q


def _initial_log_pmf(batch_shape: tf.Tensor, k_max: int, dtype: tf.DType) -> tf.Tensor:
    """Upsilon(k, 0) = 1[k = 0] (eq. 9), as log-probabilities `[..., k_max + 1]`."""
    zero = tf.zeros(tf.concat([batch_shape, [1]], 0), dtype)
    rest = tf.fill(tf.concat([batch_shape, [k_max]], 0), tf.constant(NEG_INF, dtype))
    return tf.concat([zero, rest], -1)


def _count_step(log_pmf: tf.Tensor, log_p: tf.Tensor, log_q: tf.Tensor) -> tf.Tensor:
    """One frame of eq. 9 in log space, with eq. 14's tail bin.

    Upsilon(k, t) = (1 - p) Upsilon(k, t-1) + p Upsilon(k-1, t-1); the last bin holds all
    mass at or above k_max, which an event cannot move out of: tail(t) = tail(t-1) +
    p Upsilon(k_max - 1, t-1).

    Args:
        log_pmf: `[..., k_max + 1]` log Upsilon(., t-1).
        log_p, log_q: `[..., 1]` log p(t) and log(1 - p(t)).
    """
    stay = log_pmf + log_q
    move = log_pmf + log_p
    middle = _log_add_exp(stay[..., 1:-1], move[..., :-2])
    tail = _log_add_exp(log_pmf[..., -1:], move[..., -2:-1])
    return tf.concat([stay[..., :1], middle, tail], -1)


def _time_major(x: tf.Tensor) -> tf.Tensor:
    """`[batch, time, classes]` -> `[time, batch, classes, 1]` for the recursion."""
    return tf.transpose(x, [1, 0, 2])[..., None]


def _check_k_max(k_max: int) -> int:
    if int(k_max) != k_max or k_max < 1:
        raise ValueError(f"k_max must be a positive integer, got {k_max!r}.")
    return int(k_max)


def poisson_binomial_log_pmf(
    event_probabilities: tf.Tensor | None = None,
    *,
    logits: tf.Tensor | None = None,
    lengths: tf.Tensor | None = None,
    k_max: int,
    method: str = "scan",
) -> tf.Tensor:
    """log Pr(Y = k) for k = 0 .. k_max, the last bin being Pr(Y >= k_max) (eq. 6, 9, 14).

    Args:
        event_probabilities: `[batch, time, classes]` per-frame event probabilities; padded
            frames must be 0 (or pass `lengths`).
        logits: pre-sigmoid values instead of `event_probabilities`.
        lengths: optional `[batch]` valid frames per sample.
        k_max: last bin; counts at or above it share it (eq. 14).
        method: `"scan"`, the log-space `tf.scan` of eq. 9 (differentiable).

    Returns:
        `[batch, classes, k_max + 1]` log-probabilities; `exp` of a row sums to 1.
    """
    k_max = _check_k_max(k_max)
    if method not in LOG_PMF_METHODS:
        raise ValueError(f"method must be one of {LOG_PMF_METHODS}, got {method!r}.")
    log_p, log_q = log_event_probabilities(event_probabilities, logits=logits, lengths=lengths)
    init = _initial_log_pmf(tf.shape(log_p)[::2], k_max, log_p.dtype)
    log_pmfs = tf.scan(
        lambda log_pmf, frame: _count_step(log_pmf, *frame),
        (_time_major(log_p), _time_major(log_q)),
        initializer=init,
    )
    # T = 0 leaves the initial distribution (no frames, no events).
    return tf.cond(tf.shape(log_pmfs)[0] > 0, lambda: log_pmfs[-1], lambda: init)


def _gather_count(log_pmf: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    """log Pr(Y = y) from `[batch, classes, k_max + 1]`; counts above k_max read the tail."""
    k_max = log_pmf.shape[-1] - 1
    counts = tf.clip_by_value(tf.cast(counts, tf.int32), 0, k_max)
    return tf.gather(log_pmf, counts, batch_dims=2)


@tf.function(jit_compile=True, reduce_retracing=True)
def _forward_messages(log_p: tf.Tensor, log_q: tf.Tensor, init: tf.Tensor) -> tf.Tensor:
    """All log Upsilon(., t) for t = 0 .. T, `[T + 1, batch, classes, k_max + 1]`."""
    steps = tf.shape(log_p)[0]
    out = tf.TensorArray(init.dtype, size=steps + 1, element_shape=init.shape).write(0, init)

    def body(t, log_pmf, out):
        log_pmf = _count_step(log_pmf, log_p[t], log_q[t])
        return t + 1, log_pmf, out.write(t + 1, log_pmf)

    _, _, out = tf.while_loop(
        lambda t, *_: t < steps, body, (0, init, out), maximum_iterations=steps
    )
    return out.stack()


@tf.function(jit_compile=True, reduce_retracing=True)
def _relative_backward_sums(
    alphas: tf.Tensor, log_p: tf.Tensor, log_q: tf.Tensor, counts: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """log(S0 / Pr) and log(S1 / Pr) per frame, from forward and backward messages.

    beta_t(k) = log Pr(Y_T = y | Y_t = k) runs eq. 9 backwards from the indicator of y
    (Y_t = k_max is the absorbing tail). With alpha_{t-1} = log Upsilon(., t-1):
        Pr(Y = y) = (1 - p) S0 + p S1,  S0 = sum_k alpha(k) beta_t(k),
                                          S1 = sum_k alpha(k) beta_t(min(k + 1, k_max)),
    so d log Pr / dp(t) = (S1 - S0) / Pr, and Pr(event at t | Y = y) = p S1 / Pr.

    Returns:
        Two `[time, batch, classes]` tensors.
    """
    steps = tf.shape(log_p)[0]
    k_max = alphas.shape[-1] - 1
    beta = tf.where(
        tf.range(k_max + 1) == counts[..., None],
        tf.zeros_like(alphas[-1]),
        tf.fill(tf.shape(alphas[-1]), tf.constant(NEG_INF, alphas.dtype)),
    )
    betas = tf.TensorArray(alphas.dtype, size=steps, element_shape=beta.shape)

    def body(t, beta, betas):
        betas = betas.write(t - 1, beta)
        below = _log_add_exp(beta[..., :-1] + log_q[t - 1], beta[..., 1:] + log_p[t - 1])
        return t - 1, tf.concat([below, beta[..., -1:]], -1), betas

    _, _, betas = tf.while_loop(
        lambda t, *_: t > 0, body, (steps, beta, betas), maximum_iterations=steps
    )
    betas = betas.stack()  # beta_t for t = 1 .. T
    shifted = tf.concat([betas[..., 1:], betas[..., -1:]], -1)
    log_likelihood = _gather_count(alphas[-1], counts)[None]
    log_s0 = _log_sum_exp(alphas[:-1] + betas, -1) - log_likelihood
    log_s1 = _log_sum_exp(alphas[:-1] + shifted, -1) - log_likelihood
    return log_s0, log_s1


def poisson_binomial_log_likelihood(
    counts: tf.Tensor,
    event_probabilities: tf.Tensor | None = None,
    *,
    logits: tf.Tensor | None = None,
    lengths: tf.Tensor | None = None,
    k_max: int,
    method: str = "forward_backward",
) -> tf.Tensor:
    """log Pr(Y = y) per sample and class: the negative LoCo loss (eq. 7).

    Args:
        counts: `[batch, classes]` observed counts y; counts above `k_max` score the tail bin
            Pr(Y >= k_max) (eq. 14).
        event_probabilities: `[batch, time, classes]` p(t); padded frames must be 0 (or pass
            `lengths`).
        logits: pre-sigmoid values instead of `event_probabilities`.
        lengths: optional `[batch]` valid frames per sample.
        k_max: last bin of the truncated distribution.
        method: `"forward_backward"` (analytic gradient, XLA-compiled loops) or `"scan"`
            (autodiff through the `tf.scan` of `poisson_binomial_log_pmf`). Same values.

    Returns:
        `[batch, classes]` log-likelihoods. A count the probabilities make impossible (more
        events than frames with p > 0) has log-likelihood -inf.
    """
    k_max = _check_k_max(k_max)
    if method == "scan":
        log_pmf = poisson_binomial_log_pmf(
            event_probabilities, logits=logits, lengths=lengths, k_max=k_max
        )
        return _gather_count(log_pmf, counts)
    if method != "forward_backward":
        raise ValueError(f"method must be one of {LOG_LIKELIHOOD_METHODS}, got {method!r}.")
    from_logits = logits is not None
    inputs = tf.convert_to_tensor(logits if from_logits else event_probabilities)
    counts = tf.clip_by_value(tf.cast(counts, tf.int32), 0, k_max)
    lengths = (
        tf.fill(tf.shape(inputs)[:1], tf.shape(inputs)[1])
        if lengths is None
        else tf.cast(lengths, tf.int32)
    )
    return _log_likelihood_forward_backward(inputs, counts, lengths, k_max, from_logits)


def _log_likelihood_forward_backward(inputs, counts, lengths, k_max, from_logits):
    @tf.custom_gradient
    def log_likelihood(x):
        # The gradient is ours: keep the tape from recording the loops for autodiff.
        x_compute = tf.stop_gradient(tf.cast(x, _compute_dtype(x)))
        kwargs = {"logits": x_compute} if from_logits else {"event_probabilities": x_compute}
        log_p, log_q = log_event_probabilities(lengths=lengths, **kwargs)
        log_p, log_q = _time_major(log_p), _time_major(log_q)
        init = _initial_log_pmf(tf.shape(log_p)[1:3], k_max, log_p.dtype)
        alphas = _forward_messages(log_p, log_q, init)
        value = _gather_count(alphas[-1], counts)

        def grad(upstream):
            log_s0, log_s1 = _relative_backward_sums(alphas, log_p, log_q, counts)
            log_p1, log_q1 = log_p[..., 0], log_q[..., 0]
            if from_logits:
                # q u - p (1 - u) = u - p: posterior minus prior event probability, where
                # u = p S1 / Pr and 1 - u = q S0 / Pr.
                local = tf.exp(log_q1 + log_p1 + log_s1) - tf.exp(log_p1 + log_q1 + log_s0)
            else:
                local = tf.exp(log_s1) - tf.exp(log_s0)
            frames = tf.range(tf.shape(local)[0])
            valid = frames[:, None, None] < lengths[None, :, None]
            local = tf.where(valid, local, tf.zeros_like(local))
            local = tf.transpose(local, [1, 0, 2]) * tf.cast(upstream, local.dtype)[:, None, :]
            return tf.cast(local, x.dtype)

        return value, grad

    return log_likelihood(inputs)
