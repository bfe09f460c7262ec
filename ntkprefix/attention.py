"""Prefix attention (Algorithm 1) and NTK-Attention (Algorithm 2) of Section 4  [paper].

Notation follows the paper: input X in R^{L x d}; frozen W_Q, W_K, W_V; prefix P in R^{m x d};
Q = X W_Q, K = X W_K, V = X W_V, K_P = P W_K, V_P = P W_V; temperature 1/sqrt(d) [code].
Functions take the projected arrays (the conditions of Theorem 4.1 are stated on them); :func:`project` forms them.
Arrays are unbatched: vmap over a batch axis.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkprefix._numerics import MATMUL_PRECISION, matmul
from ntkprefix._validation import (
    as_float_array,
    is_traced,
    require,
    require_finite,
    require_float_dtype,
    require_int,
    row_mask_count,
    shape_of,
)
from ntkprefix.features import FeatureMap

__all__ = [
    "Projected",
    "project",
    "prefix_attention",
    "PrefixAttentionState",
    "empty_prefix_state",
    "absorb_prefix",
    "finish_prefix_attention",
    "prefix_attention_stream",
    "ntk_attention",
    "max_abs_score",
    "DEFAULT_CHUNK_SIZE",
]

#: Prefix rows per streaming step of :func:`prefix_attention`: memory is O(L * chunk) whatever m is. Measured on
#: jax 0.10.2 (2 cores, d = 32, L = 256, m = 2^16 and 2^20): 2048 is at least as fast as 1024 and 4096 at both m (a
#: chunk's scores, L x 2048 in float32, are 2 MiB); the rounding bound does not depend on it.
DEFAULT_CHUNK_SIZE = 2048


class Projected(NamedTuple):
    """Q, K, V (L x d each, from X) and K_P, V_P (m x d each, from P)."""

    Q: jax.Array
    K: jax.Array
    V: jax.Array
    K_P: jax.Array
    V_P: jax.Array


def project(X: jax.Array, P: jax.Array, W_Q: jax.Array, W_K: jax.Array, W_V: jax.Array) -> Projected:
    """Q = X W_Q, K = X W_K, V = X W_V, K_P = P W_K, V_P = P W_V  [paper, Section 4 notation].

    Args:
      X: input, (L, d). P: prefix, (m, d). W_Q, W_K: (d, d_k). W_V: (d, d_v).
    """
    X = as_float_array("X", X, "(L, d)", rank=2)
    d = X.shape[1]
    P = as_float_array("P", P, f"(m, {d})", rank=2)
    require(P.shape[1] == d, f"P must have shape (m, {d}) to match X {shape_of(X)}, got {shape_of(P)}")
    W_Q, W_K, W_V = (as_float_array(name, W, f"({d}, d_out)", rank=2) for name, W in (("W_Q", W_Q), ("W_K", W_K), ("W_V", W_V)))
    for name, W in (("W_Q", W_Q), ("W_K", W_K), ("W_V", W_V)):
        require(W.shape[0] == d, f"{name} must have shape ({d}, d_out) to match X {shape_of(X)}, got {shape_of(W)}")
    require(W_Q.shape == W_K.shape, f"W_Q and W_K must have the same shape, got {shape_of(W_Q)} and {shape_of(W_K)}")
    for name, x in (("X", X), ("P", P), ("W_Q", W_Q), ("W_K", W_K), ("W_V", W_V)):
        require_finite(name, x)
    return Projected(matmul(X, W_Q), matmul(X, W_K), matmul(X, W_V), matmul(P, W_K), matmul(P, W_V))


def _causal_mask(L: int) -> jax.Array:
    return jnp.tril(jnp.ones((L, L), dtype=bool))


def _check_qkv(Q, K, V, causal: bool):
    """(Q, K, V) as floating arrays with matching shapes and finite entries, and (L, d, d_v)."""
    Q = as_float_array("Q", Q, "(L, d)", rank=2)
    L, d = Q.shape
    K = as_float_array("K", K, f"({L}, {d})", rank=2)
    require(K.shape == (L, d), f"K must have shape ({L}, {d}) to match Q, got {shape_of(K)}")
    V = as_float_array("V", V, f"({L}, d_v)", rank=2)
    require(V.shape[0] == L, f"V must have shape ({L}, d_v) to match Q {shape_of(Q)}, got {shape_of(V)}")
    require(isinstance(causal, (bool, np.bool_)), f"causal must be a bool, got {causal!r}")
    for name, x in (("Q", Q), ("K", K), ("V", V)):
        require_finite(name, x)
    return (Q, K, V), (L, d, V.shape[1])


def prefix_attention(
    Q: jax.Array,
    K: jax.Array,
    V: jax.Array,
    K_P: jax.Array,
    V_P: jax.Array,
    *,
    causal: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> jax.Array:
    """softmax([Q K_P^T, Q K^T] / sqrt(d)) [V_P; V]  -- Algorithm 1, prefix attention, exact  [paper].

    Every query attends to all m prefix keys (never masked) and to the input keys (causally masked if
    ``causal``). Streams over the prefix in chunks of ``chunk_size`` rows with a running max and sum
    (log-sum-exp), so the scores never exceed L x chunk_size in memory and no exp overflows. Every weight and sum
    is positive, so nothing cancels except through the signs of V (rounding bounded in
    :func:`ntkprefix.bounds.rounding_allowance`). Array-likes (lists, numpy, integers) are converted to floating
    arrays; other dtypes, wrong shapes and non-finite entries are a ValueError.

    Args:
      Q, K: (L, d). V: (L, d_v). K_P: (m, d). V_P: (m, d_v), m >= 1.
      causal: mask input key j > i for query i. The prefix is never masked.
      chunk_size: prefix rows per step (memory O(L chunk_size)).

    Returns:
      (L, d_v) attention output.
    """
    (Q, K, V), (L, d, d_v) = _check_qkv(Q, K, V, causal)
    K_P = as_float_array("K_P", K_P, f"(m, {d})", rank=2)
    V_P = as_float_array("V_P", V_P, f"(m, {d_v})", rank=2)
    m = K_P.shape[0]
    require(m >= 1, f"the prefix must have m >= 1 rows, got K_P of shape {shape_of(K_P)}")
    require(K_P.shape[1] == d, f"K_P must have shape (m, {d}) to match Q {shape_of(Q)}, got {shape_of(K_P)}")
    require(V_P.shape == (m, d_v), f"V_P must have shape ({m}, {d_v}) to match K_P and V, got {shape_of(V_P)}")
    chunk_size = require_int("chunk_size", chunk_size, low=1)
    require_finite("K_P", K_P)
    require_finite("V_P", V_P)
    return _prefix_attention(Q, K, V, K_P, V_P, causal=bool(causal), chunk_size=min(chunk_size, m))


class PrefixAttentionState(NamedTuple):
    """Algorithm 1's running softmax over the prefix rows seen so far, for fixed queries  [paper, Algorithm 1].

    For each query i: row_max_i = max_j s_ij, row_sum_i = sum_j exp(s_ij - row_max_i) and
    acc_i = sum_j exp(s_ij - row_max_i) v_j over the prefix rows j absorbed so far (s_ij = <q_i, k_j> / sqrt(d)),
    and m, their number. :func:`finish_prefix_attention` adds the input part and normalises. Extending the state
    with more rows gives prefix attention over the longer prefix: a growing (or "infinite-long") prefix never has
    to exist in memory as a whole.
    """

    row_max: jax.Array  # (L,)
    row_sum: jax.Array  # (L,)
    acc: jax.Array  # (L, d_v)
    m: int


def empty_prefix_state(Q: jax.Array, d_v: int, dtype=None) -> PrefixAttentionState:
    """The state of an empty prefix for queries Q (L, d): row_max = -inf, row_sum = 0, acc = 0, m = 0."""
    Q = as_float_array("Q", Q, "(L, d)", rank=2)
    d_v = require_int("d_v", d_v, low=1)
    dtype = Q.dtype if dtype is None else require_float_dtype("dtype", dtype)
    L = Q.shape[0]
    return PrefixAttentionState(jnp.full((L,), -jnp.inf, dtype), jnp.zeros((L,), dtype), jnp.zeros((L, d_v), dtype), 0)


def absorb_prefix(
    state: PrefixAttentionState,
    Q: jax.Array,
    K_rows: jax.Array,
    V_rows: jax.Array,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    row_mask: jax.Array | None = None,
) -> PrefixAttentionState:
    """The state extended by prefix rows (K_rows (n, d), V_rows (n, d_v)), streamed in chunks  [paper, Algorithm 1].

    ``row_mask`` (n,) bool, optional: rows where it is False are ignored (their scores are -inf, their weight exactly
    0), so a caller can stream fixed-shape buffers whose rows are only partly a prefix (one compilation for every
    fill); m then counts the True rows (a traced count when the mask is traced). Traceable (jit, vmap): value checks
    are skipped for traced arguments. Array-likes are converted to floating arrays; wrong shapes and non-finite
    entries (masked rows included: they are multiplied, so they must be finite) are a ValueError.
    """
    require(isinstance(state, PrefixAttentionState),
            f"state must be a PrefixAttentionState (see empty_prefix_state), got {type(state).__name__}")
    Q = as_float_array("Q", Q, "(L, d)", rank=2)
    L, d = Q.shape
    d_v = state.acc.shape[1]
    require(shape_of(state.row_max) == (L,), f"state was made for {state.row_max.shape[0]} queries, got Q {shape_of(Q)}")
    K_rows = as_float_array("K_P", K_rows, f"(n, {d})", rank=2)
    require(K_rows.shape[1] == d, f"K_P rows must have shape (n, {d}) to match Q {shape_of(Q)}, got {shape_of(K_rows)}")
    V_rows = as_float_array("V_P", V_rows, f"({K_rows.shape[0]}, {d_v})", rank=2)
    require(shape_of(V_rows) == (K_rows.shape[0], d_v),
            f"V_P rows must have shape ({K_rows.shape[0]}, {d_v}) to match K_P and the state, got {shape_of(V_rows)}")
    chunk_size = require_int("chunk_size", chunk_size, low=1)
    for name, x in (("Q", Q), ("K_P", K_rows), ("V_P", V_rows)):
        require_finite(name, x)
    n = K_rows.shape[0]
    count = n if row_mask is None else row_mask_count(row_mask, n)
    if n == 0:
        return state
    row_max, row_sum, acc = _absorb_rows(state.row_max, state.row_sum, state.acc, Q.astype(state.acc.dtype), K_rows,
                                         V_rows, row_mask if row_mask is None else jnp.asarray(row_mask),
                                         chunk_size=min(chunk_size, n))
    return PrefixAttentionState(row_max, row_sum, acc, state.m + count)


def finish_prefix_attention(
    state: PrefixAttentionState, Q: jax.Array, K: jax.Array, V: jax.Array, *, causal: bool = False
) -> jax.Array:
    """softmax over the absorbed prefix rows and the input keys (causally masked if ``causal``), times [V_P; V]."""
    require(isinstance(state, PrefixAttentionState),
            f"state must be a PrefixAttentionState (see empty_prefix_state), got {type(state).__name__}")
    (Q, K, V), (L, d, d_v) = _check_qkv(Q, K, V, causal)
    require(is_traced(state.m) or state.m >= 1, "the prefix state holds no rows; absorb at least one prefix row first")
    require(shape_of(state.acc) == (L, d_v), f"state has shape {shape_of(state.acc)}, but Q, V give ({L}, {d_v})")
    return _finish(state.row_max, state.row_sum, state.acc, Q, K, V, causal=bool(causal))


def prefix_attention_stream(Q: jax.Array, K: jax.Array, V: jax.Array, chunks, *, causal: bool = False) -> jax.Array:
    """Algorithm 1 over a prefix given as an iterable of (K_rows, V_rows) chunks; the prefix never exists whole."""
    (Q, K, V), (_, _, d_v) = _check_qkv(Q, K, V, causal)
    state = empty_prefix_state(Q, d_v, jnp.result_type(Q, K, V))
    try:
        iterator = iter(chunks)
    except TypeError:
        raise ValueError(f"chunks must be an iterable of (K_rows, V_rows) pairs, got {type(chunks).__name__}") from None
    for i, chunk in enumerate(iterator):
        require(isinstance(chunk, (tuple, list)) and len(chunk) == 2,
                f"chunk {i} of the stream must be a pair (K_rows, V_rows), got {type(chunk).__name__}")
        state = absorb_prefix(state, Q, chunk[0], chunk[1])
    require(state.m >= 1, "the stream held no prefix rows; expected at least one (K_rows, V_rows) chunk")
    return finish_prefix_attention(state, Q, K, V, causal=causal)


def _scaled_queries(Q, dtype):
    return Q.astype(dtype) / jnp.sqrt(jnp.asarray(Q.shape[1], dtype))


def _absorb(row_max: jax.Array, row_sum: jax.Array, acc: jax.Array, scores: jax.Array, values: jax.Array):
    """Fold a block of scores into the running softmax, query-major: scores (L, n) (score of query i with key j at
    [i, j]; masked entries -inf), values (n, d_v); row_max, row_sum (L,), acc (L, d_v).

    new_max = max(row_max, max_j s_ij); every weight exp(s_ij - new_max) <= 1; the running sums are rescaled by
    exp(row_max - new_max) <= 1, the block adds W V (one GEMM, (L, n) (n, d_v)) to acc and the row sums of W to
    row_sum. Query-major scores make both products plain row-major GEMMs and the max and the sum over keys
    reductions along the contiguous axis (measured on jax 0.10.2, XLA:CPU with its YNNPACK dots: faster than the
    key-major layout, whose second product (d_v + 1, n) (n, L) has an odd row count; bench/attention.py [1]).
    """
    new_max = jnp.maximum(row_max, jnp.max(scores, axis=1))
    shift = jnp.where(new_max == -jnp.inf, 0, new_max)  # a block of masked rows before any row: weights exp(-inf) = 0
    rescale = jnp.exp(row_max - shift)
    weights = jnp.exp(scores - shift[:, None])
    return (new_max, row_sum * rescale + jnp.sum(weights, axis=1),
            acc * rescale[:, None] + matmul(weights, values.astype(acc.dtype)))


def _query_key_scores(queries: jax.Array, keys: jax.Array) -> jax.Array:
    """queries (L, d) times keys (n, d) transposed: (L, n), contracting the feature axis of both (no transpose)."""
    return jax.lax.dot_general(queries, keys, (((1,), (1,)), ((), ())), precision=MATMUL_PRECISION)


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _absorb_rows(row_max, row_sum, acc, Q, K_P, V_P, row_mask, *, chunk_size: int):
    dtype = acc.dtype
    m = K_P.shape[0]
    queries = _scaled_queries(Q, dtype)  # (L, d)
    state = (row_max, row_sum, acc)
    n_full = m // chunk_size

    def scores(K_c, mask_c):
        s = _query_key_scores(queries, K_c.astype(dtype))  # query-major (L, rows)
        return s if mask_c is None else jnp.where(mask_c[None, :], s, -jnp.inf)

    def body(i, state):
        K_c = jax.lax.dynamic_slice_in_dim(K_P, i * chunk_size, chunk_size)
        V_c = jax.lax.dynamic_slice_in_dim(V_P, i * chunk_size, chunk_size)
        mask_c = None if row_mask is None else jax.lax.dynamic_slice_in_dim(row_mask, i * chunk_size, chunk_size)
        return _absorb(*state, scores(K_c, mask_c), V_c)

    state = jax.lax.fori_loop(0, n_full, body, state)
    if m % chunk_size:
        tail = slice(n_full * chunk_size, m)
        state = _absorb(*state, scores(K_P[tail], None if row_mask is None else row_mask[tail]), V_P[tail])
    return state


@functools.partial(jax.jit, static_argnames=("causal",))
def _finish(row_max, row_sum, acc, Q, K, V, *, causal: bool):
    L = Q.shape[0]
    dtype = acc.dtype
    scores = _query_key_scores(_scaled_queries(Q, dtype), K.astype(dtype))  # query-major (L queries, L keys)
    if causal:
        scores = jnp.where(_causal_mask(L), scores, -jnp.inf)
    _, row_sum, acc = _absorb(row_max, row_sum, acc, scores, V)
    return acc / row_sum[:, None]


def _prefix_attention(Q, K, V, K_P, V_P, *, causal: bool, chunk_size: int):
    dtype = jnp.result_type(Q, K, V, K_P, V_P)
    state = empty_prefix_state(Q, V.shape[1], dtype)
    row_max, row_sum, acc = _absorb_rows(state.row_max, state.row_sum, state.acc, Q.astype(dtype), K_P, V_P, None,
                                         chunk_size=chunk_size)
    return _finish(row_max, row_sum, acc, Q, K, V, causal=causal)


def ntk_attention(
    Q: jax.Array,
    K: jax.Array,
    V: jax.Array,
    Z: jax.Array,
    k: jax.Array,
    feature_map: FeatureMap,
    *,
    causal: bool = False,
) -> jax.Array:
    """T = D^{-1} (A V + phi(Q) Z),  D = diag(A 1_L + phi(Q) k),  A = exp(Q K^T / sqrt(d))  -- Algorithm 2  [paper].

    A is causally masked if ``causal``; the prefix term phi(Q) Z, phi(Q) k never is. The common scale of every
    row is carried in log space: with u = phi(q)^T Z, w = phi(q)^T k and M = max(max_j s_j, log max(|w|, max|u|)),
    numerator and denominator are divided by e^M before any exp is taken, so no term overflows, in float32
    included, for scores of any magnitude (the authors' exp(max) trick overflows past 88 in float32).

    Args:
      Q, K: (L, d). V: (L, d_v).
      Z: (r, d_v), the prefix's sum phi(K_P)^T V_P or a learned matrix.
      k: (r,), the prefix's sum phi(K_P)^T 1_m or a learned vector.
      feature_map: phi, built for this d (its r must match Z and k).
      causal: mask input key j > i for query i.

    Returns:
      (L, d_v). Where the feature map is not sign-definite, a learned or altered (Z, k) can make a row's
      denominator vanish or turn negative; the output then is what the formula gives (inf or of either sign).

    Numerics (audited for issue 9). The shift forms s_j - M and log mu - M, differences of possibly close numbers,
    but no information is lost there: the differences are exact when the operands are within a factor 2 (Sterbenz)
    and otherwise rounded once, so each weight exp(s_j - M) <= 1 gets relative error at most u |s_j - M|, i.e.
    absolute error at most u / e relative to the largest weight 1 (bounded; the error of s_j itself, gamma_{d+3}
    times sum_i |q_i k_ji| / sqrt(d), is the inputs' conditioning, not the shift's). The Taylor prefix sums
    phi(q)^T Z and phi(q)^T k do cancel (the monomials alternate in sign); :func:`ntkprefix.bounds.rounding_allowance`
    bounds that cancellation through kappa = e^{2 S_abs} / (1 - eps). ELU+1 features are non-negative, so for them
    the prefix sums cancel only through the signs of V_P. Inputs are converted and checked first: array-likes become
    floating arrays, non-finite entries are a ValueError, and a Taylor map whose features of Q would overflow is
    refused (:meth:`ntkprefix.features.FeatureMap.require_representable`). The features of a query enter with their
    common scale in log space (:meth:`ntkprefix.features.FeatureMap.scaled`), so a row whose ELU+1 features all lie
    below the smallest normal number (float32: y < -87.3) keeps its prefix term instead of flushing it to 0 (found by
    the thorough hypothesis run of issue 9: float32 was off by 2.6 at max score 580).
    """
    (Q, K, V), (L, d, d_v) = _check_qkv(Q, K, V, causal)
    require(isinstance(feature_map, FeatureMap), f"feature_map must be a FeatureMap, got {type(feature_map).__name__}")
    require(
        feature_map.d == d,
        f"feature map {feature_map.label} was built for d={feature_map.d}, but Q has shape {shape_of(Q)} (d={d})",
    )
    r = feature_map.r
    Z = as_float_array("Z", Z, f"(r, d_v) = ({r}, {d_v})")
    k = as_float_array("k", k, f"(r,) = ({r},)")
    require(shape_of(Z) == (r, d_v), f"Z must have shape (r, d_v) = ({r}, {d_v}) for {feature_map.label} and V {shape_of(V)}, got {shape_of(Z)}")
    require(shape_of(k) == (r,), f"k must have shape (r,) = ({r},) for {feature_map.label}, got {shape_of(k)}")
    require_finite("Z", Z)
    require_finite("k", k)
    feature_map.require_representable("Q", Q)
    return _ntk_attention(Q, K, V, Z, k, feature_map=feature_map, causal=bool(causal))


@functools.partial(jax.jit, static_argnames=("feature_map", "causal"))
def _ntk_attention(Q, K, V, Z, k, *, feature_map: FeatureMap, causal: bool):
    L, d = Q.shape
    dtype = jnp.result_type(Q, K, V, Z, k)
    Q, K, V, Z, k = (x.astype(dtype) for x in (Q, K, V, Z, k))
    scores = matmul(Q, K.T) / jnp.sqrt(jnp.asarray(d, dtype))
    if causal:
        scores = jnp.where(_causal_mask(L), scores, -jnp.inf)
    phi_Q, log_scale = feature_map.scaled(Q)  # phi(Q) = phi_Q e^{log_scale}: features of tiny rows do not underflow
    u = matmul(phi_Q, Z)  # (L, d_v), times e^{log_scale}
    w = matmul(phi_Q, k)  # (L,), times e^{log_scale}
    # M >= every log-term of the row, so exp(s - M) <= 1 and the prefix term, normalised by its own magnitude mu,
    # enters as (u / mu) e^{log mu - M} with both factors <= 1. No clamp: a row whose only visible score is far below
    # log(tiny) and whose prefix term is exactly 0 still has its largest score's weight e^0 = 1 in the denominator.
    magnitude = jax.lax.stop_gradient(jnp.maximum(jnp.abs(w), jnp.abs(u).max(axis=1)))
    log_magnitude = jnp.log(magnitude) + log_scale  # -inf where the prefix term is exactly 0
    shift = jax.lax.stop_gradient(jnp.maximum(scores.max(axis=1), log_magnitude))
    weights = jnp.exp(scores - shift[:, None])
    safe_magnitude = jnp.where(magnitude > 0, magnitude, 1.0)
    prefix_weight = jnp.exp(log_magnitude - shift)  # <= 1; 0 where the prefix term is 0
    # Where the prefix term is exactly 0 (Z = 0 and k = 0, the authors' initialisation) the value is 0, but the
    # derivative of T in (Z, k) is e^{-shift} phi(q), not 0: that row carries u e^{-shift} instead, with the exponent
    # capped at 0.9 log(max float) so that the unselected branch stays finite (the derivative is exact unless every
    # visible score is below -0.9 log(max float)).
    cap = 0.9 * math.log(float(jnp.finfo(dtype).max))
    zero_row_weight = jnp.exp(-jnp.maximum(shift, -cap))
    is_zero = (magnitude == 0)
    prefix_num = jnp.where(is_zero[:, None], u * zero_row_weight[:, None],
                           (u / safe_magnitude[:, None]) * prefix_weight[:, None])  # |u / mu| <= 1: no overflow
    prefix_den = jnp.where(is_zero, w * zero_row_weight, (w / safe_magnitude) * prefix_weight)
    numerator = matmul(weights, V) + prefix_num
    denominator = weights.sum(axis=1) + prefix_den
    return numerator / denominator[:, None]


def max_abs_score(Q: jax.Array, K_P: jax.Array, *, absolute_terms: bool = False, chunk_size: int = 65536) -> float:
    """S = max_{i,j} |<q_i, k_j>| / sqrt(d) over the prefix keys, streamed in chunks  [derived, Theorem 4.1's score range].

    With ``absolute_terms`` it returns S_abs = max_{i,j} sum_l |q_il k_jl| / sqrt(d) instead (the range that
    controls rounding, :func:`ntkprefix.bounds.rounding_allowance`).
    """
    Q = as_float_array("Q", Q, "(L, d)", rank=2)
    K_P = as_float_array("K_P", K_P, f"(m, {Q.shape[1]})", rank=2)
    require(K_P.shape[1] == Q.shape[1], f"K_P must have shape (m, {Q.shape[1]}) to match Q {shape_of(Q)}, got {shape_of(K_P)}")
    require(isinstance(absolute_terms, (bool, np.bool_)), f"absolute_terms must be a bool, got {absolute_terms!r}")
    chunk_size = require_int("chunk_size", chunk_size, low=1)
    require_finite("Q", Q)
    require_finite("K_P", K_P)
    if absolute_terms:
        Q, K_P = jnp.abs(Q), jnp.abs(K_P)
    best = 0.0
    for start in range(0, K_P.shape[0], chunk_size):
        best = max(best, float(_max_abs_score_block(Q, K_P[start : start + chunk_size])))
    return best


@jax.jit
def _max_abs_score_block(Q, K_c):
    return jnp.abs(matmul(Q, K_c.T)).max() / jnp.sqrt(jnp.asarray(Q.shape[1], Q.dtype))
