"""The Poisson-binomial count distribution, exact and in log space.

A causal network emits per-frame event probabilities p(t); the number of events Y is a sum of
independent Bernoulli(p(t)), i.e. Poisson-binomial (paper eq. 4, eq. 6). Its distribution is
built one frame at a time by the recursion of eq. 9, truncated at `k_max` with a tail bin that
holds all mass at or above `k_max` (eq. 14). The LoCo loss is -log Pr(Y = y) (eq. 7).

Everything is computed from log p and log(1 - p), so counts whose probability is below the
float32 range (Pr(Y = 30) for T = 400, p = 1e-3 is about 1e-45, which a float32
probability-space recursion returns as 0) keep exact log-probabilities. A probability of exactly
0 is log 0 = -inf; every helper here is exact at -inf in value and keeps gradients finite there.
Padded frames are p = 0, the identity step of eq. 9. Each frame's weights are normalised by
max(p, 1 - p) so that float32 does not drift over long sequences (see `_Frames`).

Two ways to differentiate the log-likelihood:
  * `"scan"`: `tf.scan` over eq. 9 and autodiff through it (the reference). At p exactly 0 or 1
    its gradient leaves out what flows through bins of probability exactly 0 (autodiff in log
    space would form 0 * inf there): finite, and without effect on logit gradients, which carry
    a factor p (1 - p) = 0.
  * `"forward_backward"`: forward messages (eq. 9) and backward messages
    beta_t(k) = log Pr(Y_T = y | Y_t = k), giving the analytic gradient
    d log Pr(Y = y) / d logit p(t) = Pr(event at t | Y = y) - p(t) without autodiff through the
    loop; both loops are XLA-compiled. Identical values, about 3x faster than a probability-space
    tf.scan (bench/loss_bench.py), and the exact gradient also at p in {0, 1}.

For a whole recording's distribution, where probabilities rather than exact logs of tiny ones
are wanted, `poisson_binomial_log_pmf(method="tree")` gives the same distribution from
pairwise truncated convolutions in float64, in log2(T) levels instead of T steps (the
exported model uses it; 22 ms against 602 ms for a minute of frames).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

NEG_INF = float("-inf")
LOG_PMF_METHODS = ("scan", "tree")
LOG_LIKELIHOOD_METHODS = ("forward_backward", "scan")


def _log_add_exp(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """log(exp(a) + exp(b)) = hi + log1p(exp(lo - hi)), exact at -inf in value and gradient.

    log1p keeps increments below float32's resolution of 1 (a frame adding 1e-9 of mass), which
    log(1 + x) would drop: over 10,000 frames those losses add up. `hi`/`lo` are selected with
    `tf.where`, so a tie splits the gradient evenly (tf.maximum would route all of it to one
    side). Where both terms are log 0 the result is put back to -inf after a finite stand-in, so
    no inf - inf reaches the gradient.
    """
    a_wins = a >= b
    hi = tf.where(a_wins, a, b)
    lo = tf.where(a_wins, b, a)
    dead = tf.equal(hi, NEG_INF)
    hi = tf.where(dead, tf.zeros_like(hi), hi)
    out = hi + tf.math.log1p(tf.exp(lo - hi))
    return tf.where(dead, tf.fill(tf.shape(out), tf.constant(NEG_INF, out.dtype)), out)


def _log_sum_exp(x: tf.Tensor, axis: int) -> tf.Tensor:
    """`reduce_logsumexp` that returns -inf (not NaN gradients) for an all -inf slice."""
    shift = tf.stop_gradient(tf.reduce_max(x, axis=axis, keepdims=True))
    dead = tf.equal(shift, NEG_INF)
    shift = tf.where(dead, tf.zeros_like(shift), shift)
    total = tf.reduce_sum(tf.exp(x - shift), axis=axis, keepdims=True)
    total = tf.where(dead, tf.ones_like(total), total)
    out = tf.where(
        dead,
        tf.fill(tf.shape(total), tf.constant(NEG_INF, total.dtype)),
        shift + tf.math.log(total),
    )
    return tf.squeeze(out, axis)


def _safe_log(x: tf.Tensor) -> tf.Tensor:
    """log x with log 0 = -inf and a zero (not 0 * inf) gradient at 0."""
    positive = x > 0
    return tf.where(
        positive, tf.math.log(tf.where(positive, x, tf.ones_like(x))), tf.constant(NEG_INF, x.dtype)
    )


def _safe_log1m(p: tf.Tensor) -> tf.Tensor:
    """log(1 - p) via log1p: 1 - p rounds in float32 (relative error 6e-5 at p = 1e-3, which
    10,000 frames turn into 6e-4 in log Pr). log 0 = -inf at p = 1 with a zero gradient."""
    below_one = p < 1
    return tf.where(
        below_one,
        tf.math.log1p(-tf.where(below_one, p, tf.zeros_like(p))),
        tf.constant(NEG_INF, p.dtype),
    )


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
        log_p, log_q = _safe_log(p), _safe_log1m(p)
    if lengths is not None:
        frames = tf.range(tf.shape(log_p)[1])
        valid = frames[None, :, None] < tf.cast(lengths, tf.int32)[:, None, None]
        log_p = tf.where(valid, log_p, tf.constant(NEG_INF, log_p.dtype))
        log_q = tf.where(valid, log_q, tf.zeros_like(log_q))
    return log_p, log_q


class _Frames(NamedTuple):
    """Per-frame inputs of the recursion, time-major `[time, batch, classes]`.

    Adding log(1 - p) ~ -1e-3 to every bin at every frame rounds the same way each time: over
    10,000 frames float32 drifts by ~1e-3 in log Pr. So each frame's weights are divided by
    max(p, 1 - p): the dominant term of eq. 9 then gets exactly + 0 and the bins only change by
    real increments. The bins below k_max are kept relative to the running normaliser
    M_t = sum_{s <= t} log max(p_s, 1 - p_s), summed once in float64; the tail bin (and the
    backward messages' absorbing tail) is kept absolute, as its weight is 1, not p or 1 - p.
    The normaliser cancels exactly, so its gradient is stopped.
    """

    log_p: tf.Tensor  # log p(t) - m(t)
    log_q: tf.Tensor  # log(1 - p(t)) - m(t); one of the two is exactly 0
    log_p_into_tail: tf.Tensor  # log p(t) + M_{t-1}: forward, bin k_max - 1 -> absolute tail
    log_p_from_tail: tf.Tensor  # log p(t) - (M_T - M_{t-1}): backward, the same move
    offset_before: tf.Tensor  # M_{t-1}
    offset_after: tf.Tensor  # M_T - M_t
    total: tf.Tensor  # M_T, `[batch, classes]`


def _frames(log_p: tf.Tensor, log_q: tf.Tensor) -> _Frames:
    """`[batch, time, classes]` log p, log(1 - p) -> normalised time-major `_Frames`."""
    log_p = tf.transpose(log_p, [1, 0, 2])
    log_q = tf.transpose(log_q, [1, 0, 2])
    norm = tf.stop_gradient(tf.maximum(log_p, log_q))
    norm64 = tf.cast(norm, tf.float64)
    before = tf.cumsum(norm64, axis=0, exclusive=True)
    total = tf.reduce_sum(norm64, axis=0)
    after = total[None] - before - norm64
    before, after, total = (tf.cast(x, log_p.dtype) for x in (before, after, total))
    return _Frames(
        log_p=log_p - norm,
        log_q=log_q - norm,
        log_p_into_tail=log_p + before,
        log_p_from_tail=log_p - (after + norm),
        offset_before=before,
        offset_after=after,
        total=total,
    )


def _forward_step(state: tf.Tensor, log_p, log_q, log_p_into_tail) -> tf.Tensor:
    """One frame of eq. 9 in log space, with eq. 14's tail bin. State `[k_max + 1, ...]`.

    Upsilon(k, t) = (1 - p) Upsilon(k, t-1) + p Upsilon(k-1, t-1)             (eq. 9)
    tail(t) = tail(t-1) + p Upsilon(k_max - 1, t-1)   (mass at or above k_max stays there, eq. 14)
    Bins below k_max are relative to the normaliser (see `_Frames`), the tail is absolute.
    """
    body, tail = state[:-1], state[-1:]
    stay = body + log_q
    body = tf.concat([stay[:1], _log_add_exp(stay[1:], body[:-1] + log_p)], 0)
    tail = _log_add_exp(tail, state[-2:-1] + log_p_into_tail)
    return tf.concat([body, tail], 0)


def _backward_step(state: tf.Tensor, log_p, log_q, log_p_from_tail) -> tf.Tensor:
    """eq. 9 run backwards: beta_{t-1}(k) = (1 - p) beta_t(k) + p beta_t(min(k + 1, k_max)),
    with beta_t(k) = Pr(Y_T = y | Y_t = k) and the tail absorbing (beta(k_max) is constant)."""
    body, tail = state[:-1], state[-1:]
    moved = tf.concat([body[1:] + log_p, tail + log_p_from_tail], 0)
    return tf.concat([_log_add_exp(body + log_q, moved), tail], 0)


def _initial_state(frames: _Frames, k_max: int) -> tf.Tensor:
    """Upsilon(k, 0) = 1[k = 0] (eq. 9) as log-probabilities, `[k_max + 1, batch, classes]`."""
    zero = tf.zeros_like(frames.total)[None]
    log_zero = tf.constant(NEG_INF, zero.dtype)
    return tf.concat([zero, tf.fill(tf.concat([[k_max], tf.shape(zero)[1:]], 0), log_zero)], 0)


def _log_pmf_from_state(state: tf.Tensor, frames: _Frames) -> tf.Tensor:
    """Final state -> absolute `[batch, classes, k_max + 1]` log-probabilities."""
    log_pmf = tf.concat([state[:-1] + frames.total[None], state[-1:]], 0)
    return tf.transpose(log_pmf, [1, 2, 0])


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
        method: `"scan"`, the log-space `tf.scan` of eq. 9 (differentiable; the loss's), or
            `"tree"` (`_tree_pmf`): the same distribution in float64 probabilities, combined
            in a tree of depth log2(T) instead of T sequential steps, for long sequences whose
            probabilities, not exact logs of tiny ones, are wanted (the exported model's
            whole-file count distribution). Probabilities below float64's range (about
            1e-308) are 0 there, so their logs are -inf where "scan" gives their exact logs.

    Returns:
        `[batch, classes, k_max + 1]` log-probabilities; `exp` of a row sums to 1.
    """
    k_max = _check_k_max(k_max)
    if method not in LOG_PMF_METHODS:
        raise ValueError(f"method must be one of {LOG_PMF_METHODS}, got {method!r}.")
    if method == "tree":
        return _tree_log_pmf(event_probabilities, logits, lengths, k_max)
    log_p, log_q = log_event_probabilities(event_probabilities, logits=logits, lengths=lengths)
    frames = _frames(log_p, log_q)
    init = _initial_state(frames, k_max)
    # Inline in a caller's graph (XLA can then see static shapes); its own graph when eager,
    # where tf.scan would otherwise run step by step in Python.
    scan = _scan_forward_graph if tf.executing_eagerly() else _scan_forward
    return _log_pmf_from_state(scan(frames, init), frames)


def _scan_forward(frames: _Frames, init: tf.Tensor) -> tf.Tensor:
    # One extra p = 0 frame (the identity step) so that T = 0 still scans one element.
    one_frame = tf.concat([[1], tf.shape(frames.log_p)[1:]], 0)
    identity = tf.fill(one_frame, tf.constant(NEG_INF, init.dtype))
    inputs = (
        tf.concat([frames.log_p, identity], 0),
        tf.concat([frames.log_q, tf.zeros_like(identity)], 0),
        tf.concat([frames.log_p_into_tail, identity], 0),
    )
    states = tf.scan(lambda state, frame: _forward_step(state, *frame), inputs, initializer=init)
    return states[-1]


_scan_forward_graph = tf.function(_scan_forward)


TREE_BLOCK = 32
"""Frames `_tree_pmf` runs eq. 9 over one by one (in all blocks at once) before the tree."""


def _tree_log_pmf(event_probabilities, logits, lengths, k_max: int) -> tf.Tensor:
    """`poisson_binomial_log_pmf(method="tree")`."""
    if (event_probabilities is None) == (logits is None):
        raise ValueError("Pass exactly one of `event_probabilities` and `logits`.")
    if logits is not None:
        x = tf.cast(logits, tf.float64)
        p, q = tf.sigmoid(x), tf.sigmoid(-x)
    else:
        p = tf.cast(event_probabilities, tf.float64)
        q = 1.0 - p  # exact in float64 for float32 p
    if lengths is not None:
        valid = tf.range(tf.shape(p)[1])[None, :, None] < tf.cast(lengths, tf.int32)[:, None, None]
        p, q = tf.where(valid, p, 0.0), tf.where(valid, q, 1.0)
    given = event_probabilities if event_probabilities is not None else logits
    out_dtype = _compute_dtype(tf.convert_to_tensor(given))
    pmf = _tree_pmf(p, q, k_max)
    return tf.cast(_safe_log(pmf), out_dtype)


def _tree_pmf(p: tf.Tensor, q: tf.Tensor, k_max: int, block: int = TREE_BLOCK) -> tf.Tensor:
    """Pr(Y = k), k < k_max, and Pr(Y >= k_max), `[batch, classes, k_max + 1]`, from float64
    `[batch, time, classes]` p and q = 1 - p.

    Truncating a sum at k_max is associative: min(min(X + Y, K) + Z, K) = min(X + Y + Z, K).
    So the distribution of the whole sequence is the truncated convolution of those of its
    parts, in any grouping. Eq. 9 (with eq. 14's tail) runs over `block` frames at a time, in
    every block at once; the blocks' distributions are then convolved pairwise, level by
    level, depth log2(T / block). Every intermediate is a probability distribution (its bins
    sum to 1), so float64 needs no rescaling; probabilities below its range become 0.
    """
    batch, classes = tf.shape(p)[0], tf.shape(p)[2]
    bins = k_max + 1
    # [batch * classes, blocks, block], padded with p = 0 (the identity frame).
    p = tf.reshape(tf.transpose(p, [0, 2, 1]), [batch * classes, -1])
    q = tf.reshape(tf.transpose(q, [0, 2, 1]), [batch * classes, -1])
    steps = tf.shape(p)[1]
    padding = tf.maximum((steps + block - 1) // block, 1) * block - steps
    p = tf.reshape(tf.pad(p, [[0, 0], [0, padding]]), [batch * classes, -1, block])
    q = tf.reshape(tf.pad(q, [[0, 0], [0, padding]], constant_values=1.0), tf.shape(p))
    rows = tf.shape(p)[0:2]
    identity = tf.one_hot(0, bins, dtype=p.dtype)
    state = tf.broadcast_to(identity, tf.concat([rows, [bins]], 0))
    for t in range(block):
        p_t, q_t = p[:, :, t, None], q[:, :, t, None]
        body = state[..., :-1] * q_t + tf.pad(state[..., :-2], [[0, 0], [0, 0], [1, 0]]) * p_t
        tail = state[..., -1:] + state[..., -2:-1] * p_t  # the tail absorbs (eq. 14)
        state = tf.concat([body, tail], -1)
    # Pairwise truncated convolutions: combine[i, j, min(i + j, k_max)] = 1.
    i, j = tf.meshgrid(tf.range(bins), tf.range(bins), indexing="ij")
    combine = tf.one_hot(tf.reshape(tf.minimum(i + j, k_max), [-1]), bins, dtype=p.dtype)

    def not_done(nodes):
        return tf.shape(nodes)[1] > 1

    def level(nodes):
        odd = tf.shape(nodes)[1] % 2
        pad = tf.broadcast_to(identity, tf.concat([[tf.shape(nodes)[0], odd], [bins]], 0))
        nodes = tf.concat([nodes, pad], 1)
        a, b = nodes[:, 0::2], nodes[:, 1::2]
        pairs = tf.reshape(a[..., :, None] * b[..., None, :], tf.concat([tf.shape(a)[:2], [-1]], 0))
        return (tf.einsum("nmx,xk->nmk", pairs, combine),)

    (state,) = tf.while_loop(
        not_done, level, (state,), shape_invariants=(tf.TensorShape([None, None, bins]),)
    )
    return tf.reshape(state[:, 0], [batch, classes, bins])


def _gather_count(log_pmf: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    """log Pr(Y = y) from `[batch, classes, k_max + 1]`; counts above k_max read the tail."""
    counts = tf.clip_by_value(tf.cast(counts, tf.int32), 0, tf.shape(log_pmf)[-1] - 1)
    return tf.gather(log_pmf, counts, batch_dims=2)


@tf.function(jit_compile=True)
def _forward_messages(frames: _Frames, init: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """States before every frame, `[time, k_max + 1, batch, classes]`, and the final state."""
    steps = tf.shape(frames.log_p)[0]
    before = tf.TensorArray(init.dtype, size=steps, element_shape=init.shape)

    def body(t, state, before):
        before = before.write(t, state)
        state = _forward_step(state, frames.log_p[t], frames.log_q[t], frames.log_p_into_tail[t])
        return t + 1, state, before

    _, final, before = tf.while_loop(
        lambda t, *_: t < steps, body, (0, init, before), maximum_iterations=steps
    )
    return before.stack(), final


@tf.function(jit_compile=True)
def _posterior_terms(
    frames: _Frames, before: tf.Tensor, final: tf.Tensor, counts: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """log(S0 / Pr) and log(S1 / Pr) per frame, `[time, batch, classes]`.

    With alpha = log Upsilon(., t-1) and beta_t(k) = log Pr(Y_T = y | Y_t = k):
        Pr(Y = y) = (1 - p) S0 + p S1,  S0 = sum_k alpha(k) beta_t(k),
                                          S1 = sum_k alpha(k) beta_t(min(k + 1, k_max)),
    so d log Pr / dp(t) = (S1 - S0) / Pr and Pr(event at t | Y = y) = p S1 / Pr.
    """
    steps = tf.shape(frames.log_p)[0]
    is_count = tf.range(tf.shape(final)[0])[:, None, None] == counts[None]
    log_zero = tf.fill(tf.shape(final), tf.constant(NEG_INF, final.dtype))
    state = tf.where(is_count, tf.zeros_like(final), log_zero)
    after = tf.TensorArray(final.dtype, size=steps, element_shape=final.shape)

    def body(t, state, after):
        after = after.write(t - 1, state)
        state = _backward_step(
            state, frames.log_p[t - 1], frames.log_q[t - 1], frames.log_p_from_tail[t - 1]
        )
        return t - 1, state, after

    _, _, after = tf.while_loop(
        lambda t, *_: t > 0, body, (steps, state, after), maximum_iterations=steps
    )
    after = after.stack()
    # Back to absolute log-probabilities (one rounding each, no accumulation).
    alpha = tf.concat([before[:, :-1] + frames.offset_before[:, None], before[:, -1:]], 1)
    beta = tf.concat([after[:, :-1] + frames.offset_after[:, None], after[:, -1:]], 1)
    beta_shifted = tf.concat([beta[:, 1:], beta[:, -1:]], 1)
    log_likelihood = _gather_count(_log_pmf_from_state(final, frames), counts)
    log_s0 = _log_sum_exp(alpha + beta, 1) - log_likelihood[None]
    log_s1 = _log_sum_exp(alpha + beta_shifted, 1) - log_likelihood[None]
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
        frames = _frames(log_p, log_q)
        before, final = _forward_messages(frames, _initial_state(frames, k_max))
        value = _gather_count(_log_pmf_from_state(final, frames), counts)

        def grad(upstream):
            log_s0, log_s1 = _posterior_terms(frames, before, final, counts)
            if from_logits:
                # p q (S1 - S0) / Pr = u - p: posterior minus prior event probability.
                log_pq = tf.transpose(log_p + log_q, [1, 0, 2])
                local = tf.exp(log_pq + log_s1) - tf.exp(log_pq + log_s0)
            else:
                local = tf.exp(log_s1) - tf.exp(log_s0)
            valid = tf.range(tf.shape(local)[0])[:, None, None] < lengths[None, :, None]
            local = tf.where(valid, local, tf.zeros_like(local))
            local = tf.transpose(local, [1, 0, 2]) * tf.cast(upstream, local.dtype)[:, None, :]
            return tf.cast(local, x.dtype)

        return value, grad

    return log_likelihood(inputs)
