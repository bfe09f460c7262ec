"""Random instances that meet, or by construction break, each claim's conditions.

Norm conditions are met by construction, never by rejection: an instance is drawn as a direction (arrays scaled
so that their largest entry is exactly 1) and then multiplied by a radius. The radius equal to the bound gives the
hardest instance that still meets the condition; a radius above it breaks the condition by a known factor.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ntkprefix._validation import (
    as_float_array,
    require,
    require_finite,
    require_float_dtype,
    require_int,
    require_key,
    require_scalar,
)
from ntkprefix._numerics import matmul
from ntkprefix.attention import Projected, project

__all__ = [
    "unit_prefix_instance",
    "scale_instance",
    "theorem_4_1_instance",
    "theorem_4_1_extreme_instance",
    "PrefixStream",
    "theorem_4_1_stream",
    "prefix_stream_chunk",
    "entry_norms",
    "section3_data",
    "perturbation_directions",
    "DeepInstance",
    "deep_prefix_instance",
]


def _check_instance(inst) -> Projected:
    """inst as a Projected of floating, finite arrays with consistent shapes (ValueError otherwise)."""
    require(isinstance(inst, Projected), f"inst must be a Projected (Q, K, V, K_P, V_P), got {type(inst).__name__}")
    Q = as_float_array("inst.Q", inst.Q, "(L, d)", rank=2)
    L, d = Q.shape
    K = as_float_array("inst.K", inst.K, f"({L}, {d})", rank=2)
    V = as_float_array("inst.V", inst.V, f"({L}, d_v)", rank=2)
    K_P = as_float_array("inst.K_P", inst.K_P, f"(m, {d})", rank=2)
    V_P = as_float_array("inst.V_P", inst.V_P, f"(m, {V.shape[1]})", rank=2)
    require(
        K.shape == (L, d) and V.shape[0] == L and K_P.shape[1] == d and V_P.shape == (K_P.shape[0], V.shape[1]),
        f"inst has inconsistent shapes: Q {Q.shape}, K {K.shape}, V {V.shape}, K_P {K_P.shape}, V_P {V_P.shape}",
    )
    for name, x in (("inst.Q", Q), ("inst.K", K), ("inst.V", V), ("inst.K_P", K_P), ("inst.V_P", V_P)):
        require_finite(name, x)
    return Projected(Q, K, V, K_P, V_P)


def _unit_inf(x: jax.Array) -> jax.Array:
    return x / jnp.abs(x).max()


def unit_prefix_instance(
    key: jax.Array, *, d: int, L: int, m: int, prefix_offset: float = 1.0, dtype=jnp.float64
) -> Projected:
    """A direction for Theorem 4.1: Q, K_C = [K_P; K], V_C = [V_P; V] each scaled to ||.||_inf = 1 exactly.

    X ~ N(0, I) (L rows), P = prefix_offset * mu + N(0, I) (m rows, mu ~ N(0, I) shared by every row, so prefix
    keys are coherent rather than centred, as a trained prefix's are), W_Q, W_K, W_V ~ N(0, I/d); then Q, K, V,
    K_P, V_P = :func:`ntkprefix.attention.project`, and (K_P, K) and (V_P, V) rescaled jointly. Rescaling the
    projections is rescaling W_Q, W_K, W_V, so the instance is a genuine (X, P, W) triple.

    The first n rows of an instance with m rows are the instance with n rows up to the common scale: callers that
    sweep m take prefixes of one long instance ("a growing prefix") and rescale.
    """
    key = require_key("key", key)
    d, L, m = (require_int(name, v, low=1) for name, v in (("d", d), ("L", L), ("m", m)))
    prefix_offset = require_scalar("prefix_offset", prefix_offset)
    dtype = require_float_dtype("dtype", dtype)
    k_x, k_p, k_mu, k_w = jax.random.split(key, 4)
    X = jax.random.normal(k_x, (L, d), dtype)
    mu = jax.random.normal(k_mu, (1, d), dtype)
    P = prefix_offset * mu + jax.random.normal(k_p, (m, d), dtype)
    W_Q, W_K, W_V = jax.random.normal(k_w, (3, d, d), dtype) / jnp.sqrt(jnp.asarray(d, dtype))
    inst = project(X, P, W_Q, W_K, W_V)
    k_scale = jnp.maximum(jnp.abs(inst.K_P).max(), jnp.abs(inst.K).max())
    v_scale = jnp.maximum(jnp.abs(inst.V_P).max(), jnp.abs(inst.V).max())
    return Projected(_unit_inf(inst.Q), inst.K / k_scale, inst.V / v_scale, inst.K_P / k_scale, inst.V_P / v_scale)


def scale_instance(inst: Projected, *, query_bound: float, key_bound: float, value_bound: float) -> Projected:
    """Multiply Q by query_bound, K_C by key_bound and V_C by value_bound (a unit instance then attains them)."""
    inst = _check_instance(inst)
    query_bound, key_bound, value_bound = (
        require_scalar(name, v, low=0, low_open=True)
        for name, v in (("query_bound", query_bound), ("key_bound", key_bound), ("value_bound", value_bound))
    )
    return Projected(
        inst.Q * query_bound, inst.K * key_bound, inst.V * value_bound, inst.K_P * key_bound, inst.V_P * value_bound
    )


def theorem_4_1_instance(
    key: jax.Array, *, d: int, L: int, m: int, entry_bound: float, prefix_offset: float = 1.0, dtype=jnp.float64
) -> Projected:
    """An instance with ||Q||_inf = ||K_C||_inf = ||V_C||_inf = entry_bound exactly  [paper, Theorem 4.1's conditions].

    Theorem 4.1 asks for entries o(sqrt(log m)); a fixed bound b is o(sqrt(log m)), and b > sqrt(log m) breaks it.
    """
    entry_bound = require_scalar("entry_bound", entry_bound, low=0, low_open=True)
    unit = unit_prefix_instance(key, d=d, L=L, m=m, prefix_offset=prefix_offset, dtype=dtype)
    return scale_instance(unit, query_bound=entry_bound, key_bound=entry_bound, value_bound=entry_bound)


_RATIO_CAP = 2**30


def _extreme_parts(key: jax.Array, d: int, L: int, entry_bound: float, dtype):
    """The unit input part (Q, K, V) of the extreme instance and the constants its prefix rows are made of."""
    k_u, k_q, k_k, k_v = jax.random.split(key, 4)
    u = jax.random.rademacher(k_u, (d,), dtype)
    Q = jnp.concatenate([u[None, :], jax.random.rademacher(k_q, (L - 1, d), dtype)], axis=0)
    K = jax.random.rademacher(k_k, (L, d), dtype)
    V = jax.random.rademacher(k_v, (L, d), dtype)
    flips = jnp.where(jnp.arange(d) < d // 2, -1.0, 1.0).astype(dtype)
    neutral_score = entry_bound**2 * (d - 2 * (d // 2)) / d**0.5
    # R far keys per neutral key; capped (exp can exceed any integer): a block of 2^30 far rows never closes within
    # the rows an int32 index reaches in practice, so the cap leaves every instance of up to 2^30 rows unchanged
    log_ratio = entry_bound**2 * d**0.5 + neutral_score
    ratio = _RATIO_CAP if log_ratio >= math.log(_RATIO_CAP) else max(1, min(_RATIO_CAP, round(math.exp(log_ratio))))
    return Q, K, V, {"u": u, "flips": flips, "period": jnp.asarray(ratio + 1, jnp.int32)}


def _extreme_rows(constants: dict, start, n: int):
    """Unit prefix rows start .. start + n - 1 of the extreme instance: row j is "neutral" (key u o flips, value -1)
    when j mod (R + 1) = R, else "far" (key -u, value +1). ``start`` may be traced."""
    u, flips, period = constants["u"], constants["flips"], constants["period"]
    rows = start + jnp.arange(n)
    is_neutral = (rows % period) == period - 1
    K_P = jnp.where(is_neutral[:, None], (u * flips)[None, :], -u[None, :])
    V_P = jnp.broadcast_to(jnp.where(is_neutral, -1.0, 1.0).astype(u.dtype)[:, None], (n, u.shape[0]))
    return K_P, V_P


def theorem_4_1_extreme_instance(
    key: jax.Array, *, d: int, L: int, m: int, entry_bound: float, dtype=jnp.float64
) -> Projected:
    """Every entry of Q, K_C, V_C equal to +-b, arranged to make the Taylor kernel error large  [derived].

    The corners of Theorem 4.1's entry box, built against the kernel bound 2 eps/(1 - eps) max|V_C| of
    :func:`ntkprefix.bounds.attention_error_bound`. Query 0 is b u (u a random sign vector). The prefix repeats a
    block of R "far" keys -b u (score -S_b with query 0, S_b = b^2 sqrt(d): the end of the a-priori score range where
    the Taylor remainder is largest), value +b, and one "neutral" key, b u with floor(d/2) signs flipped (score
    s_0 = 0 for even d, b^2/sqrt(d) for odd d), value -b, with R = round(exp(S_b + s_0)) so that the two groups carry
    equal softmax weight: query 0's output is near 0 and the far keys' relative weight error eps moves it by about
    eps b / 2, a quarter of the bound. Every other query, input key and input value is a random corner.

    The projected arrays are set directly: the theorem's conditions and both algorithms are functions of Q, K, V,
    K_P, V_P only. The first n prefix rows of an instance with m rows are the instance with n rows (a growing
    prefix with every entry +-b at every n); :func:`theorem_4_1_stream` generates the same rows chunk by chunk.
    """
    key = require_key("key", key)
    d, L, m = (require_int(name, v, low=1) for name, v in (("d", d), ("L", L), ("m", m)))
    entry_bound = require_scalar("entry_bound", entry_bound, low=0, low_open=True)
    dtype = require_float_dtype("dtype", dtype)
    Q, K, V, constants = _extreme_parts(key, d, L, entry_bound, dtype)
    K_P, V_P = _extreme_rows(constants, 0, m)
    b = jnp.asarray(entry_bound, dtype)
    return Projected(b * Q, b * K, b * V, b * K_P, b * V_P)


class PrefixStream(NamedTuple):
    """A prefix of m rows that exists only as a generator: rows are made chunk by chunk from a few constants.

    Attributes:
      Q, K, V: the input part, (L, d) each.
      constants: the arrays the rows are made from (a dict; stack several streams' dicts to vmap over them).
      family: "random" or "extreme" (static: selects the generator).
      m: the number of rows (the instance's scale is set over rows 0 .. m - 1).
      chunk_rows: rows per generated chunk (static).

    Chunk i (rows i chunk_rows .. (i + 1) chunk_rows - 1) is :func:`prefix_stream_chunk` (constants, i, ...): a pure,
    jittable function, so a caller streams any m in memory O(chunk_rows d).
    """

    Q: jax.Array
    K: jax.Array
    V: jax.Array
    constants: dict
    family: str
    m: int
    chunk_rows: int


def prefix_stream_chunk(constants: dict, index, *, family: str, chunk_rows: int):
    """(K_rows, V_rows) of chunk ``index`` of a :class:`PrefixStream` (index may be traced): (chunk_rows, d) each.

    Rows past the stream's m are generated too (the chunk has a fixed shape); callers mask them.
    """
    if family == "extreme":
        return _extreme_rows(constants, index * chunk_rows, chunk_rows)
    d = constants["W_K"].shape[0]
    noise = jax.random.normal(jax.random.fold_in(constants["prefix_key"], index), (chunk_rows, d), constants["mu"].dtype)
    P = constants["prefix_offset"] * constants["mu"] + noise
    return matmul(P, constants["W_K"]) / constants["key_scale"], matmul(P, constants["W_V"]) / constants["value_scale"]


@functools.partial(jax.jit, static_argnames=("chunk_rows",))
def _random_stream_extremes(constants, m, *, chunk_rows: int):
    """max |K_P| and max |V_P| over rows 0 .. m - 1 of the raw (unscaled) random stream, one chunk at a time."""
    raw = {**constants, "key_scale": jnp.ones((), constants["mu"].dtype), "value_scale": jnp.ones((), constants["mu"].dtype)}

    def body(i, extremes):
        K_c, V_c = prefix_stream_chunk(raw, i, family="random", chunk_rows=chunk_rows)
        valid = (i * chunk_rows + jnp.arange(chunk_rows)) < m
        return (jnp.maximum(extremes[0], jnp.max(jnp.where(valid[:, None], jnp.abs(K_c), 0))),
                jnp.maximum(extremes[1], jnp.max(jnp.where(valid[:, None], jnp.abs(V_c), 0))))

    zero = jnp.zeros((), constants["mu"].dtype)
    return jax.lax.fori_loop(0, (m + chunk_rows - 1) // chunk_rows, body, (zero, zero))


def theorem_4_1_stream(
    key: jax.Array,
    *,
    family: str,
    d: int,
    L: int,
    m: int,
    chunk_rows: int = 4096,
    prefix_offset: float = 1.0,
    balance_bound: float = 1.0,
    dtype=jnp.float64,
) -> PrefixStream:
    """Theorem 4.1's unit instance (largest entry of Q, K_C, V_C exactly 1 over rows 0 .. m - 1) as a stream  [derived].

    ``family="extreme"``: the rows of :func:`theorem_4_1_extreme_instance` with ``entry_bound=balance_bound``, divided
    by it (every entry +-1; the block ratio is the one balanced for entries of size balance_bound, the scale the caller
    will multiply by), its input part taken from that function. ``family="random"``: the construction of :func:`unit_prefix_instance` (X ~ N(0, I), prefix
    P = offset mu + N(0, I), W ~ N(0, I/d), projections rescaled jointly so that the largest entry is exactly 1) with
    the prefix noise drawn per chunk (chunk i from fold_in(key, i)) instead of at once, so its numbers differ from
    :func:`unit_prefix_instance`'s; the scales come from one streamed pass over the m rows. Either way the prefix never
    exists in memory as a whole: memory O(chunk_rows d) whatever m is, and the first n rows of the stream are a
    growing prefix (with the scale of the m-row instance).
    """
    key = require_key("key", key)
    require(family in ("random", "extreme"), f"family must be 'random' or 'extreme', got {family!r}")
    d, L, m, chunk_rows = (require_int(name, v, low=1) for name, v in (("d", d), ("L", L), ("m", m), ("chunk_rows", chunk_rows)))
    dtype = require_float_dtype("dtype", dtype)
    balance_bound = require_scalar("balance_bound", balance_bound, low=0, low_open=True)
    if family == "extreme":
        Q, K, V, constants = _extreme_parts(key, d, L, balance_bound, dtype)
        return PrefixStream(Q, K, V, constants, family, m, chunk_rows)
    prefix_offset = require_scalar("prefix_offset", prefix_offset)
    k_x, k_p, k_mu, k_w = jax.random.split(key, 4)
    X = jax.random.normal(k_x, (L, d), dtype)
    mu = jax.random.normal(k_mu, (1, d), dtype)
    W_Q, W_K, W_V = jax.random.normal(k_w, (3, d, d), dtype) / jnp.sqrt(jnp.asarray(d, dtype))
    constants = {"prefix_key": k_p, "mu": mu, "prefix_offset": jnp.asarray(prefix_offset, dtype), "W_K": W_K, "W_V": W_V}
    K_max, V_max = _random_stream_extremes(constants, m, chunk_rows=chunk_rows)
    Q, K, V = matmul(X, W_Q), matmul(X, W_K), matmul(X, W_V)
    key_scale = jnp.maximum(K_max, jnp.abs(K).max())
    value_scale = jnp.maximum(V_max, jnp.abs(V).max())
    constants = {**constants, "key_scale": key_scale, "value_scale": value_scale}
    return PrefixStream(_unit_inf(Q), K / key_scale, V / value_scale, constants, family, m, chunk_rows)


def entry_norms(inst: Projected) -> dict[str, float]:
    """||Q||_inf, ||K_C||_inf, ||V_C||_inf of an instance, as floats."""
    inst = _check_instance(inst)
    return {
        "Q": float(jnp.abs(inst.Q).max()),
        "K_C": float(max(jnp.abs(inst.K_P).max(), jnp.abs(inst.K).max())),
        "V_C": float(max(jnp.abs(inst.V_P).max(), jnp.abs(inst.V).max())),
    }


def _unit_rows(key: jax.Array, shape: tuple[int, int], dtype) -> jax.Array:
    z = jax.random.normal(key, shape, dtype)
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


def section3_data(
    key: jax.Array, *, n: int, d: int, d_out: int, data_radius: float = 1.0, dtype=jnp.float64
) -> tuple[jax.Array, jax.Array]:
    """X (n, d) with ||x_i||_2 = data_radius exactly (uniform directions) and targets Y ~ N(0, I) (n, d_out).

    data_radius <= 1 meets Section 3's assumption ||x_i||_2 <= 1 [template]; above 1 breaks it by that factor.
    """
    key = require_key("key", key)
    n, d, d_out = (require_int(name, v, low=1) for name, v in (("n", n), ("d", d), ("d_out", d_out)))
    data_radius = require_scalar("data_radius", data_radius, low=0, low_open=True)
    dtype = require_float_dtype("dtype", dtype)
    k_x, k_y = jax.random.split(key)
    return data_radius * _unit_rows(k_x, (n, d), dtype), jax.random.normal(k_y, (n, d_out), dtype)


def perturbation_directions(key: jax.Array, W: jax.Array) -> jax.Array:
    """U (d, m) with every column of unit norm: W + R U moves each w_r by exactly R (Lemma 3.1's ball, at its edge)."""
    key = require_key("key", key)
    W = as_float_array("W", W, "(d, m)", rank=2)
    require_finite("W", W)  # only its shape and dtype are used, but W + R U would carry the non-finite entries
    return _unit_rows(key, (W.shape[1], W.shape[0]), W.dtype).T


class DeepInstance(NamedTuple):
    """Input X (L, d) and, per layer l, W_Q[l], W_K[l], W_V[l] (d, d) and the prefix P[l] (m, d)."""

    X: jax.Array
    W_Q: jax.Array
    W_K: jax.Array
    W_V: jax.Array
    P: jax.Array


def deep_prefix_instance(
    key: jax.Array, *, d: int, L: int, m: int, depth: int, weight_norm: float, entry_bound: float,
    prefix_offset: float = 1.0, dtype=jnp.float64,
) -> DeepInstance:
    """A D-layer instance at the edge of its conditions  [derived, the depth check].

    X ~ N(0, I) and every prefix P[l] = prefix_offset mu_l + N(0, I) (coherent rows, as a trained prefix's) scaled so
    that their largest entry is exactly ``entry_bound``; every W ~ N(0, I) scaled so that ||W||_inf = max_c
    sum_r |W_rc| equals ``weight_norm`` exactly (then ||x W||_inf <= weight_norm ||x||_inf, the a-priori propagation
    of ntkprefix.depth). The first n rows of P[l] are a growing prefix whose largest entry reaches the bound at m.
    """
    key = require_key("key", key)
    d, L, m, depth = (require_int(name, v, low=1) for name, v in (("d", d), ("L", L), ("m", m), ("depth", depth)))
    weight_norm = require_scalar("weight_norm", weight_norm, low=0, low_open=True)
    entry_bound = require_scalar("entry_bound", entry_bound, low=0, low_open=True)
    k_x, k_w, k_p, k_mu = jax.random.split(key, 4)
    X = entry_bound * _unit_inf(jax.random.normal(k_x, (L, d), dtype))
    W = jax.random.normal(k_w, (3, depth, d, d), dtype)
    W = weight_norm * W / jnp.abs(W).sum(axis=2, keepdims=True).max(axis=3, keepdims=True)
    mu = jax.random.normal(k_mu, (depth, 1, d), dtype)
    P = prefix_offset * mu + jax.random.normal(k_p, (depth, m, d), dtype)
    P = entry_bound * P / jnp.abs(P).max(axis=(1, 2), keepdims=True)
    return DeepInstance(X, W[0], W[1], W[2], P)
