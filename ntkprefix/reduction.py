"""The reduction of a prefix to NTK-Attention's parameters, Z = phi(K_P)^T V_P and k = phi(K_P)^T 1_m  [derived].

If exp(<q, k'>/sqrt(d)) ~= <phi(q), phi(k')>, then

    sum_j exp(<q, K_P[j]>/sqrt(d)) V_P[j] ~= phi(q)^T Z,      sum_j exp(<q, K_P[j]>/sqrt(d)) ~= phi(q)^T k,

so Algorithm 2 with (Z, k) reproduces prefix attention up to the kernel approximation error (the names match the
authors' sum_phi_kv / sum_phi_k [code]). Both are running sums over prefix rows: :class:`PrefixSums` is the state,
:func:`accumulate_prefix` adds rows, and :func:`reduce_prefix` / :func:`reduce_prefix_stream` drive it in chunks,
so memory is O(chunk r) whatever m is, and an "infinite-long" prefix is the limit of the running sums.
"""

from __future__ import annotations

import functools
from typing import Iterable, NamedTuple

import jax
import jax.numpy as jnp

from ntkprefix._numerics import matmul
from ntkprefix._validation import (
    as_float_array,
    require,
    require_finite,
    require_float_dtype,
    require_int,
    row_mask_count,
    shape_of,
)
from ntkprefix.features import FeatureMap

__all__ = ["PrefixSums", "empty_prefix_sums", "accumulate_prefix", "reduce_prefix", "reduce_prefix_stream", "default_chunk_size"]


class PrefixSums(NamedTuple):
    """Running sums over the prefix rows seen so far: Z (r, d_v), k (r,), and their count m."""

    Z: jax.Array
    k: jax.Array
    m: int


def empty_prefix_sums(feature_map: FeatureMap, d_v: int, dtype=jnp.float64) -> PrefixSums:
    """Z = 0 (r x d_v), k = 0 (r), m = 0: the sums over an empty prefix."""
    _require_feature_map(feature_map)
    d_v = require_int("d_v", d_v, low=1)
    dtype = require_float_dtype("dtype", dtype)
    r = feature_map.r
    return PrefixSums(jnp.zeros((r, d_v), dtype), jnp.zeros((r,), dtype), 0)


def _require_feature_map(feature_map) -> None:
    require(isinstance(feature_map, FeatureMap), f"feature_map must be a FeatureMap, got {type(feature_map).__name__}")


#: Feature entries (chunk rows x r) built per step of the reduction: 2^20 entries are 8 MiB in float64, a quarter of
#: the L3 cache of the machines this was tuned on. Measured (issue 10): at r = 153 and r = 3876 the reduction's time per
#: row falls as the chunk grows from 16 rows to this size (each step's GEMM and feature pass have fixed costs), and is
#: flat beyond; memory stays O(chunk r).
CHUNK_FEATURE_ENTRIES = 1 << 20


def default_chunk_size(feature_map: FeatureMap) -> int:
    """Prefix rows per step: the largest power of two, between 16 and 4096, with chunk * r <= CHUNK_FEATURE_ENTRIES."""
    _require_feature_map(feature_map)
    target = max(1, CHUNK_FEATURE_ENTRIES // feature_map.r)
    chunk = 1 << (target.bit_length() - 1)
    return int(min(max(chunk, 16), 4096))


def _check_rows(K_rows, V_rows, feature_map: FeatureMap):
    """(K_rows, V_rows) as floating arrays of matching shapes with finite entries whose features are representable."""
    _require_feature_map(feature_map)
    K_rows = as_float_array("K_P", K_rows, f"(m, {feature_map.d})", rank=2)
    require(
        K_rows.shape[1] == feature_map.d,
        f"feature map {feature_map.label} was built for d={feature_map.d}, but K_P has shape {shape_of(K_rows)}",
    )
    V_rows = as_float_array("V_P", V_rows, f"({K_rows.shape[0]}, d_v)", rank=2)
    require(
        V_rows.shape[0] == K_rows.shape[0],
        f"K_P and V_P must have the same number of rows, got {shape_of(K_rows)} and {shape_of(V_rows)}",
    )
    largest = require_finite("K_P", K_rows)
    require_finite("V_P", V_rows)
    feature_map.require_representable("K_P", K_rows, largest_entry=largest)
    return K_rows, V_rows


def accumulate_prefix(
    sums: PrefixSums, K_rows: jax.Array, V_rows: jax.Array, feature_map: FeatureMap, *, row_mask: jax.Array | None = None
) -> PrefixSums:
    """Z + phi(K_rows)^T V_rows, k + phi(K_rows)^T 1, m + rows: add prefix rows to the running sums  [derived].

    Traceable (jit, vmap): value checks are skipped for traced arguments.

    Args:
      sums: the running sums so far (:func:`empty_prefix_sums` to start).
      K_rows: (n, d) projected prefix keys. V_rows: (n, d_v) projected prefix values.
      feature_map: phi, built for this d.
      row_mask: optional (n,) bool; rows where it is False add exactly 0 (their [v, 1] is multiplied by 0, so they must
        be finite), and m counts the True rows: fixed-shape buffers partly filled with prefix rows compile once.
    """
    require(isinstance(sums, PrefixSums), f"sums must be a PrefixSums (see empty_prefix_sums), got {type(sums).__name__}")
    K_rows, V_rows = _check_rows(K_rows, V_rows, feature_map)
    require(
        shape_of(sums.Z) == (feature_map.r, V_rows.shape[1]),
        f"running Z has shape {shape_of(sums.Z)}, but {feature_map.label} with V_P {shape_of(V_rows)} needs "
        f"({feature_map.r}, {V_rows.shape[1]})",
    )
    require(shape_of(sums.k) == (feature_map.r,), f"running k has shape {shape_of(sums.k)}, but {feature_map.label} needs ({feature_map.r},)")
    n = int(K_rows.shape[0])
    count = n if row_mask is None else row_mask_count(row_mask, n)
    row_mask = row_mask if row_mask is None else jnp.asarray(row_mask)
    Z, k = _accumulate(sums.Z, sums.k, K_rows, V_rows, row_mask, feature_map=feature_map,
                       chunk=min(default_chunk_size(feature_map), max(1, n)))
    return PrefixSums(Z, k, sums.m + count)


@functools.partial(jax.jit, static_argnames=("feature_map", "chunk"))
def _accumulate(Z, k, K_rows, V_rows, row_mask, *, feature_map: FeatureMap, chunk: int):
    """Z + phi(K_rows)^T V_rows, k + phi(K_rows)^T 1, in one compiled loop over chunks of ``chunk`` rows.

    Each step builds the chunk's features feature-major, M = phi(K_c)^T (r, chunk) (:meth:`FeatureMap.transposed`),
    and adds M V_c (a GEMM, (r, d_v)) and M 1 (a matrix-vector product, (r,)) to running sums. (One GEMM with [V_c, 1]
    computes the same, but measured 1.6x slower at d_v = 16: the odd column falls outside the kernel's register tiles;
    the separate matrix-vector product costs almost nothing.) The constant weights w_alpha are applied to the features,
    not to the sums: XLA:CPU in jaxlib 0.4.25 rewrites a float32 product followed by a multiplication with a constant
    array into oneDNN's matmul with a SCALAR output scale, and returns wrong numbers (w o (M V) with w a compile-time
    constant came out wrong by O(1) at r >= 1287; tests/test_reduction.py keeps the regression). Full chunks go
    through a fori_loop (one chunk's features live only inside the loop body), then the tail of n mod chunk rows;
    nothing is padded or copied on the host.
    """
    dtype = Z.dtype
    n = K_rows.shape[0]
    n_full = n // chunk

    def add(sums, K_c, V_c, mask_c):
        features_T = feature_map.transposed(K_c.astype(dtype).T)  # (r, rows), weights included (see below)
        ones = jnp.ones((V_c.shape[0],), dtype) if mask_c is None else mask_c.astype(dtype)
        V_c = V_c.astype(dtype) if mask_c is None else V_c.astype(dtype) * ones[:, None]
        S_Z, S_k = sums
        return S_Z + matmul(features_T, V_c), S_k + matmul(features_T, ones)

    def body(i, sums):
        K_c = jax.lax.dynamic_slice_in_dim(K_rows, i * chunk, chunk)
        V_c = jax.lax.dynamic_slice_in_dim(V_rows, i * chunk, chunk)
        mask_c = None if row_mask is None else jax.lax.dynamic_slice_in_dim(row_mask, i * chunk, chunk)
        return add(sums, K_c, V_c, mask_c)

    sums = (jnp.zeros_like(Z), jnp.zeros_like(k))
    sums = jax.lax.fori_loop(0, n_full, body, sums)
    if n % chunk:
        tail = slice(n_full * chunk, n)
        sums = add(sums, K_rows[tail], V_rows[tail], None if row_mask is None else row_mask[tail])
    return Z + sums[0], k + sums[1]


def reduce_prefix(
    K_P: jax.Array, V_P: jax.Array, feature_map: FeatureMap, *, chunk_size: int | None = None
) -> tuple[jax.Array, jax.Array]:
    """(Z, k) = (phi(K_P)^T V_P, phi(K_P)^T 1_m), streamed over the prefix in chunks  [derived, Eq. 7].

    One compiled loop over chunks of ``chunk_size`` rows: each chunk's features are built and consumed inside the
    loop, so memory is O(chunk r) beyond the prefix itself. It compiles once per (m, chunk_size, d, d_v, r).

    Args:
      K_P: (m, d) projected prefix keys, m >= 1. V_P: (m, d_v) projected prefix values.
      feature_map: phi, built for this d.
      chunk_size: rows per step; default :func:`default_chunk_size`.

    Returns:
      Z of shape (r, d_v) and k of shape (r,), in the dtype of K_P and V_P.
    """
    K_P, V_P = _check_rows(K_P, V_P, feature_map)
    require(K_P.shape[0] >= 1, f"the prefix must have m >= 1 rows, got K_P of shape {shape_of(K_P)}")
    dtype = jnp.result_type(K_P, V_P)
    chunk = default_chunk_size(feature_map) if chunk_size is None else require_int("chunk_size", chunk_size, low=1)
    Z, k, _ = empty_prefix_sums(feature_map, V_P.shape[1], dtype)
    return _accumulate(Z, k, K_P, V_P, None, feature_map=feature_map, chunk=min(chunk, K_P.shape[0]))


def reduce_prefix_stream(
    chunks: Iterable[tuple[jax.Array, jax.Array]], feature_map: FeatureMap, d_v: int, dtype=jnp.float64
) -> PrefixSums:
    """The running sums over a prefix given as an iterable of (K_rows, V_rows) chunks  [derived].

    The prefix never exists in memory as a whole: m is bounded only by time. Returns the :class:`PrefixSums`.
    """
    sums = empty_prefix_sums(feature_map, d_v, dtype)
    try:
        iterator = iter(chunks)
    except TypeError:
        raise ValueError(f"chunks must be an iterable of (K_rows, V_rows) pairs, got {type(chunks).__name__}") from None
    for i, chunk in enumerate(iterator):
        require(
            isinstance(chunk, (tuple, list)) and len(chunk) == 2,
            f"chunk {i} of the stream must be a pair (K_rows, V_rows), got {type(chunk).__name__}",
        )
        sums = accumulate_prefix(sums, chunk[0], chunk[1], feature_map)
    require(sums.m >= 1, "the stream held no prefix rows; expected at least one (K_rows, V_rows) chunk with m >= 1")
    return sums
