"""Feature maps phi: R^d -> R^r for NTK-Attention (Algorithm 2) and the prefix reduction.

Two maps are provided:

* :func:`taylor_feature_map` -- the polynomial method of Theorem 4.1 [paper] in its Taylor form [derived]:
  ``<phi(q), phi(k)> = sum_{j<=g} s^j / j!`` with ``s = <q, k> / sqrt(d)``, built from symmetric monomials
  with multinomial weights, so ``r = C(d + g, g)``.
* :func:`elu_feature_map` -- the authors' code path [code]: ``phi(x) = elu(x / d^(1/4)) + 1`` with ``r = d``.
  It is NOT the polynomial method and Theorem 4.1 says nothing about it.

Degree selection (:func:`taylor_degree`) uses the exact relative Taylor remainder from :mod:`ntkprefix.bounds`;
:func:`as23_degree` gives Alman and Song's (2023) degree formula beside it for comparison.
"""

from __future__ import annotations

import dataclasses
import decimal
import functools
import itertools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from ntkprefix import bounds
from ntkprefix._validation import (
    as_float_array,
    is_traced,
    max_abs,
    require,
    require_finite,
    require_int,
    require_scalar,
)

__all__ = [
    "FEATURE_MEMORY_BUDGET_BYTES",
    "FeatureMap",
    "feature_bytes",
    "taylor_feature_map",
    "elu_feature_map",
    "taylor_feature_dimension",
    "taylor_degree",
    "as23_degree",
    "parameter_counts",
]


@functools.lru_cache(maxsize=None)
def _monomial_plan(d: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(exponents, weights, factor_index) of every monomial of degree <= g in d variables, degree 0 first.

    exponents: (r, d) the multi-indices alpha. weights: 1 / sqrt(alpha!) in float64. factor_index: (r, F) with
    F = max(1, min(d, g)): each monomial is the product of F entries of a small per-row table (see
    :func:`_taylor_features`), so no monomial is built from another one. (A recursive construction, degree j from
    degree j - 1, is what XLA fuses into one loop that recomputes the whole recursion for every output entry: its
    cost grows exponentially with g.)
    """
    alphas = [np.zeros(d, dtype=np.int64)]
    for j in range(1, g + 1):
        for combo in itertools.combinations_with_replacement(range(d), j):
            alphas.append(np.bincount(combo, minlength=d))
    alphas = np.asarray(alphas, dtype=np.int64)
    # 1 / sqrt(alpha!) = prod_i 1 / sqrt(alpha_i!): each factor computed in exact decimal arithmetic and rounded
    # once; a monomial multiplies at most min(d, g) factors different from 1, so every weight carries relative error
    # at most gamma_{2 min(d, g) + 1} (u = 2^-53): no cancellation, no exp of a rounded logarithm.
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        factor = np.array([float(1 / decimal.Decimal(math.factorial(a)).sqrt()) for a in range(g + 1)])
    weights = np.prod(factor[alphas], axis=1)
    if d <= g:  # table = the powers y_i^p, p = 0..g, flattened (d (g+1) entries): factor i is y_i^{alpha_i}
        index = np.arange(d)[None, :] * (g + 1) + alphas
    else:  # table = [y, 1] (d + 1 entries): factor t is the t-th variable of the multiset, or 1
        index = np.full((len(alphas), max(1, g)), d, dtype=np.int64)
        for f, alpha in enumerate(alphas):
            variables = np.repeat(np.arange(d), alpha)
            index[f, : len(variables)] = variables
    return alphas, weights, index


#: Memory budget of a feature map, in bytes: :func:`taylor_feature_map` refuses a map whose
#: :attr:`FeatureMap.bytes_needed` exceeds it (1 GiB; pass ``memory_budget`` to allow more). Applying a Taylor map of
#: r = C(d + g, g) features builds index tables of r entries on the host and Z, k of r (d + 1) numbers, so r is the
#: quantity that must stay bounded: taylor_feature_map(64, 12) would have r = 3.1e13.
FEATURE_MEMORY_BUDGET_BYTES = 2**30


def taylor_feature_dimension(d: int, g: int) -> int:
    """r = C(d + g, g): the number of monomials of degree <= g in d variables [derived]."""
    require_int("d", d, low=1)
    if isinstance(g, (bool, np.bool_)) or not isinstance(g, (int, np.integer)) or g < 0:
        raise ValueError(f"degree g must be an integer >= 0, got {g!r}")
    return math.comb(int(d) + int(g), int(g))


def feature_bytes(d: int, r: int) -> int:
    """Bytes a feature map of dimension r for inputs of dimension d needs to be used: 8 r (d + 4)  [code].

    Counted in float64: the parameters Z (r x d, with d_v = d as in the paper) and k (r), the host tables of the
    Taylor map (two int64 indices and one float64 weight per feature), i.e. 8 r d + 8 r + 24 r bytes.
    """
    return 8 * int(r) * (int(d) + 4)


@dataclasses.dataclass(frozen=True)
class FeatureMap:
    """A feature map phi: R^d -> R^r, applied to the last axis.

    Attributes:
      kind: ``"taylor"`` (polynomial method, Theorem 4.1 [derived]) or ``"elu"`` (the authors' code [code]).
      d: the input dimension it was built for; applying it to another d raises ``ValueError``.
      degree: the Taylor degree g (``None`` for ELU+1).
      memory_budget: the largest :attr:`bytes_needed` accepted (None: :data:`FEATURE_MEMORY_BUDGET_BYTES`). It is not
        part of the map's identity (equality and hash ignore it).
      r: the feature dimension.
      sign_definite: whether every feature is non-negative for every input (ELU+1 yes; Taylor only for g = 0).
        Where it is False the authors' ``abs(k)`` changes the result [derived].
      covered_by_theorem_4_1: whether Theorem 4.1 speaks about this map.

    Hashable, so it can be a static argument of :func:`jax.jit`. Construction validates kind, d, degree and the
    memory budget (ValueError).

    Numerics. ELU+1 is evaluated without cancellation, to within err_exp + 2u + O(u^2) relative, err_exp <= k_exp u
    the platform's measured exp error (see ``_elu_plus_one``; no exp or log enters the Taylor features). The
    Taylor features phi_alpha(x) = w_alpha prod_i y_i^alpha_i, y = x / d^{1/4}, are products of positive weights and
    of the y_i: no difference is formed, and each carries relative error at most gamma_{6g+2} (three roundings per
    y_i, at most 3g; g - 1 products, in any association: y_i^p = y_i^(p-1) y_i, then the min(d, g) factors of a
    monomial left to right, a factor 1 being exact; a weight with relative error gamma_{2 min(d, g) + 1}; one product
    with it, in every feature, the reduction's included). The layout (feature-major, :meth:`transposed`, or row-major)
    does not change these operations. They overflow when max|y|^g exceeds the dtype's largest number:
    :meth:`__call__` refuses such x with a ValueError instead of returning inf.
    """

    kind: Literal["taylor", "elu"]
    d: int
    degree: int | None = None
    memory_budget: int | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        require(self.kind in ("taylor", "elu"), f"kind must be 'taylor' or 'elu', got {self.kind!r}")
        require_int("d", self.d, low=1)
        if self.kind == "elu":
            require(self.degree is None, f"the ELU+1 map has no degree, got degree={self.degree!r}")
        else:
            taylor_feature_dimension(self.d, self.degree)
        budget = FEATURE_MEMORY_BUDGET_BYTES if self.memory_budget is None else self.memory_budget
        require_int("memory_budget", budget, low=0)
        require(
            self.bytes_needed <= budget,
            f"{self.label} needs r = {self.r:.4g} features ({self.bytes_needed:.4g} bytes for Z, k and the feature "
            f"tables, 8 r (d + 4) in float64), above the memory budget of {budget:.4g} bytes; lower the degree, or pass "
            f"memory_budget (bytes) to taylor_feature_map to allow it",
        )

    @property
    def r(self) -> int:
        if self.kind == "taylor":
            return taylor_feature_dimension(self.d, self.degree)
        return self.d

    @property
    def monomial_degrees(self) -> np.ndarray:
        """|alpha| of every feature of the Taylor map, in order (degree 0 first, then by degree): (r,) ints.

        The features are ordered by degree, so the degree-g' map's features are the first r(g') of this one's; and
        scaling every input by t scales feature alpha by t^{|alpha|}.
        """
        require(self.kind == "taylor", f"{self.label} has no monomial degrees (only the Taylor map does)")
        return _monomial_plan(self.d, self.degree)[0].sum(axis=1)

    @property
    def bytes_needed(self) -> int:
        """:func:`feature_bytes` (d, r): the float64 memory the map and its parameters (Z, k) need."""
        return feature_bytes(self.d, self.r)

    @property
    def sign_definite(self) -> bool:
        return self.kind == "elu" or self.degree == 0

    @property
    def covered_by_theorem_4_1(self) -> bool:
        return self.kind == "taylor"

    @property
    def label(self) -> str:
        return f"Taylor g={self.degree} (r={self.r})" if self.kind == "taylor" else f"ELU+1 (r={self.r})"

    def require_representable(self, name: str, x: jax.Array, *, largest_entry: float | None = None) -> None:
        """ValueError if phi(x) would overflow x's dtype: Taylor features reach max|x / d^{1/4}|^g (weights <= 1).

        Skipped when x is traced. ELU+1 never overflows (phi(x) <= 1 + |x|). ``largest_entry``: max |x| when the caller
        has it already (:func:`ntkprefix._validation.require_finite` returns it), saving a pass over x.
        """
        if self.kind != "taylor" or self.degree == 0 or is_traced(x):
            return
        largest = (max_abs(x) if largest_entry is None else largest_entry) / self.d**0.25
        limit = float(jnp.finfo(x.dtype).max)
        if largest > 1 and self.degree * math.log(largest) >= math.log(limit):
            raise ValueError(
                f"{self.label}: max |{name}| / d^(1/4) = {largest:.4g}, so its degree-{self.degree} monomials reach "
                f"{largest:.4g}^{self.degree} = 10^{self.degree * math.log10(largest):.1f}, beyond the largest "
                f"{x.dtype} ({limit:.4g}); expected max |{name}| < d^(1/4) {limit:.4g}^(1/{self.degree}) = "
                f"{self.d**0.25 * limit ** (1 / self.degree):.4g}"
            )

    def __call__(self, x: jax.Array) -> jax.Array:
        """phi(x) for x of shape (..., d); returns (..., r) in x's floating dtype (integers: the default float)."""
        x = as_float_array("x", x, f"(..., {self.d})")
        if x.ndim < 1 or x.shape[-1] != self.d:
            raise ValueError(
                f"{self.label} feature map was built for d={self.d}, but received an array of shape "
                f"{tuple(x.shape)} (last axis {x.shape[-1] if x.ndim else 'missing'}); expected (..., {self.d})"
            )
        require_finite("x", x)
        self.require_representable("x", x)
        if self.kind == "elu":
            return _elu_plus_one(x, self.d)
        return _taylor_features(x, self.d, self.degree)

    def scaled(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(phi_scaled, c) with phi(x) = phi_scaled e^c, c of shape x.shape[:-1]: the features with their common scale
        carried in log space, so that no feature of a row underflows when all of them are tiny  [derived].

        ELU+1: c = min(max_i y_i, 0) over the row (y = x / d^{1/4}, so c < 0 only when every x_i <= 0 and every
        feature is exp(y_i) < 1), and phi_scaled_i = exp(y_i - c), the difference formed exactly (two-sum), so it has
        the accuracy of phi itself (plus one rounding). Without it float32 loses the whole prefix term of a query whose features are all
        below 1e-38 (y < -87.3) although its scores are lower still. Taylor: c = 0 (the constant feature is 1).
        Used by :func:`ntkprefix.attention.ntk_attention`; no input checks (an internal helper for traced code).
        """
        if self.kind == "elu":
            return _elu_plus_one_scaled(x, self.d)
        return _taylor_features(x, self.d, self.degree), jnp.zeros(x.shape[:-1], x.dtype)

    def transposed(self, xT: jax.Array) -> jax.Array:
        """phi(x)^T for xT of shape (d, ...), the variables on the first axis: (r, ...)  [derived].

        The layout the reduction wants (phi^T [V, 1] is a plain GEMM) and the fast one to build (see
        :func:`taylor_features_transposed`). Used by :mod:`ntkprefix.reduction`; no input checks (an internal helper
        for traced code).
        """
        if self.kind == "elu":
            return _elu_plus_one(xT, self.d)  # elementwise: the layout does not matter; no weights
        return taylor_features_transposed(xT, self.d, self.degree)


def _taylor_features(x: jax.Array, d: int, g: int) -> jax.Array:
    """phi(x) for x of shape (..., d): (..., r), built feature-major (see :func:`taylor_features_transposed`)."""
    return jnp.moveaxis(taylor_features_transposed(jnp.moveaxis(x, -1, 0), d, g), 0, -1)


def taylor_features_transposed(xT: jax.Array, d: int, g: int) -> jax.Array:
    """phi(x)^T for xT of shape (d, ...) (the variables on the FIRST axis): (r, ...)  [derived].

    phi_alpha(x) = (x / d^(1/4))^alpha / sqrt(alpha!), so that
    <phi(q), phi(k)> = sum_{|alpha|<=g} (q k / sqrt(d))^alpha / alpha! = sum_{j<=g} s^j / j!  (multinomial theorem).

    Feature-major layout: every monomial is a product of min(d, g) whole rows gathered from a small table (the powers
    y_i^p, p <= g, when d <= g; else [y; 1]) and the rows run along the contiguous axis, so each gather copies a
    contiguous row and each product is a vectorised loop. (Gathering single entries per input row, the row-major
    layout, ran at about 1e8 features/s; building degree j from degree j - 1 is the recursion XLA fuses into one loop
    that recomputes it for every entry.) The reduction (:mod:`ntkprefix.reduction`) feeds the result to the GEMM
    phi^T [V, 1] directly. Internal: no input checks. Rounding: see :class:`FeatureMap` (the same products in the
    same order as any layout: y_i^p = y_i^(p-1) y_i, then the factors left to right, then the weight).
    """
    _, weights, index = _monomial_plan(d, g)
    y = xT / d**0.25
    if d <= g:  # table rows i (g + 1) + p = y_i^p
        powers = [jnp.ones_like(y), y]
        for _ in range(2, g + 1):
            powers.append(powers[-1] * y)
        table = jnp.stack(powers[: g + 1], axis=1).reshape((d * (g + 1),) + y.shape[1:])
    else:  # table rows: y_0 .. y_{d-1}, 1
        table = jnp.concatenate([y, jnp.ones((1,) + y.shape[1:], y.dtype)], axis=0)
    def rows(t):  # the indices are in range by construction
        return table.at[index[:, t]].get(mode="promise_in_bounds")

    monomials = rows(0)
    for t in range(1, index.shape[1]):
        monomials = monomials * rows(t)
    return monomials * jnp.asarray(weights, dtype=xT.dtype).reshape((-1,) + (1,) * (xT.ndim - 1))


# ---- ELU+1 without cancellation ---------------------------------------------------------------------------------
#
# elu(y) + 1 written as (exp(y) - 1) + 1 loses every digit below exp(y) for y < 0: in float32 phi is off by 4e-4 at
# y = -10 and is exactly 0 from y = -17 on. The map is evaluated instead as
#
#     phi(x) = y + 1   (x > 0),      phi(x) = exp(y)   (x <= 0),      y = k x,  k = d^{-1/4},
#
# with y carried as an unevaluated sum y_hi + y_lo (a double-word product), so that the only roundings are those of
# exp (or of the two additions) and one multiplication:
#
# * k is split once, in exact decimal arithmetic, as k = k_hi + k_lo + O(u 2^-s k), k_hi having p - s significant
#   bits (p = 24, s = 12 in float32; p = 53, s = 27 in float64) and k_lo rounded to the dtype.
# * x is split exactly as x = x_hi + x_lo by clearing its s low mantissa bits (a bit mask, not arithmetic), so x_hi
#   has p - s bits and x_lo at most s bits. Every product x_hi k_hi, x_lo k_hi then fits in p bits and is exact, so
#   y_hi = fl(x k_hi) and e = (x_hi k_hi - y_hi) + x_lo k_hi = x k_hi - y_hi exactly (Dekker's two-product, written
#   so that a fused multiply-add cannot change it: each product is exact with or without fusion).
# * tail = e + x k_lo = x k - p up to 2^-s u |y| + u |tail| (|tail| <= 2^-(p-s) |y|: k_lo is the part of k below k_hi),
#   and Fast2Sum renormalises p + tail into y_hi = fl(p + tail) and y_lo = its exact rounding error, |y_lo| <= u |y|.
#   So y_hi + y_lo = k x up to (2^-s + 2^-(p-s)) u |y| relative to y, at most 2^-11 u |y| (float32).
# * exp branch: exp(y_hi + y_lo) = exp(y_hi) (1 + y_lo + theta), |theta| <= y_lo^2 (|y_lo| <= u |y|, tiny), and
#   r + r y_lo costs two roundings of which the first is on the small term, so the relative error is
#   err_exp + u (1 + 2^-10) + (u y)^2, err_exp being exp's own relative error at the representable point y_hi (XLA's
#   exp: at most k_exp u, measured per platform and dtype, not assumed: ntkprefix.platform; k_exp = 2 in float32 and
#   float64 on jaxlib 0.4.25, 3 in float64 on jaxlib 0.10.2). Where r y_lo would be subnormal (r below
#   2^p times the smallest normal: y < -70.7 in float32), XLA's CPU code flushes it to zero, so r fl(1 + y_lo) is
#   used there instead: two full roundings, err_exp + 2u (1 + 2^-10) + (u y)^2. The bound is thus
#   (k_exp + 2) u + O(u^2) (2 eps where k_exp = 2).
# * x > 0 branch: fl(fl(y_hi + 1) + y_lo): two roundings of sums of non-negative terms, relative error <= 2u + O(u^2).
#
# Below y = log(smallest normal) (-87.3 in float32, -708.4 in float64) exp(y) is subnormal and carries the format's
# absolute accuracy, not a relative one; that is the format, not cancellation. The derivative is given exactly by a
# custom JVP: dphi/dx = k min(phi(x), 1) (k for x > 0, k exp(kx) for x <= 0; both equal k at 0).

_SPLIT_BITS = {np.dtype(np.float32): 12, np.dtype(np.float64): 27}
_UNSIGNED = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _high_part_mask(dtype) -> int:
    bits = np.dtype(dtype).itemsize * 8
    return ((1 << bits) - 1) ^ ((1 << _SPLIT_BITS[np.dtype(dtype)]) - 1)


@functools.lru_cache(maxsize=None)
def _elu_scale(d: int, dtype_name: str) -> tuple[float, float, float]:
    """(k, k_hi, k_lo) for k = d^{-1/4} in ``dtype``: k rounded; k_hi = k with its s low mantissa bits cleared;
    k_lo = k - k_hi (from the exact decimal k) rounded to the dtype."""
    dtype = np.dtype(dtype_name)
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        k_exact = 1 / decimal.Decimal(d).sqrt().sqrt()
        k = np.asarray(float(k_exact), dtype=dtype)
        k_hi = (k.view(_UNSIGNED[dtype]) & _UNSIGNED[dtype](_high_part_mask(dtype))).view(dtype)
        k_lo = np.asarray(float(k_exact - decimal.Decimal(float(k_hi))), dtype=dtype)
    return float(k), float(k_hi), float(k_lo)


def _split_high_low(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x = hi + lo exactly, hi = x with its s low mantissa bits cleared (p - s significant bits), lo at most s bits."""
    unsigned = _UNSIGNED[np.dtype(x.dtype)]
    bits = jax.lax.bitcast_convert_type(x, unsigned)
    hi = jax.lax.bitcast_convert_type(bits & unsigned(_high_part_mask(x.dtype)), x.dtype)
    return hi, x - hi


def _scaled_input(x: jax.Array, d: int) -> tuple[jax.Array, jax.Array]:
    """y_hi + y_lo = x d^{-1/4} to about 2^-11 u |y| (float32), y_hi = fl(x d^{-1/4})  (see the comment above)."""
    _, k_hi, k_lo = _elu_scale(d, np.dtype(x.dtype).name)
    x_hi, x_lo = _split_high_low(x)
    p = x * k_hi
    tail = ((x_hi * k_hi - p) + x_lo * k_hi) + x * k_lo  # x k - p, up to 2^-s u |x k|
    y_hi = p + tail  # renormalise (Fast2Sum, |p| >= |tail|): y_hi = fl(x k), y_lo its rounding error
    return y_hi, tail - (y_hi - p)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _elu_plus_one(x: jax.Array, d: int) -> jax.Array:
    """elu(x / d^{1/4}) + 1, evaluated without cancellation (see the comment above)."""
    dtype = np.dtype(x.dtype)
    if dtype not in _SPLIT_BITS:  # float16, bfloat16: float32 is exact enough to round once to them
        return _elu_plus_one(x.astype(jnp.float32), d).astype(x.dtype)
    y_hi, y_lo = _scaled_input(x, d)
    r = jnp.exp(jnp.minimum(y_hi, 0))  # only the x <= 0 branch uses it; the min keeps exp finite elsewhere
    return jnp.where(x > 0, (y_hi + 1) + y_lo, _times_one_plus(r, y_lo))


def _times_one_plus(r: jax.Array, delta: jax.Array) -> jax.Array:
    """r (1 + delta) for |delta| <= 2^-11, to within 2u relative: r + r delta where r delta stays a normal number,
    r fl(1 + delta) below (where r delta would be subnormal and XLA's CPU code flushes it to zero)."""
    threshold = float(np.finfo(np.dtype(r.dtype)).tiny) * 2.0 ** np.finfo(np.dtype(r.dtype)).nmant
    return jnp.where(r >= threshold, r + r * delta, r * (1 + delta))


def _elu_plus_one_scaled(x: jax.Array, d: int) -> tuple[jax.Array, jax.Array]:
    """(phi(x) e^{-c}, c), c = min(max_i y_i, 0) over the last axis, without underflow of the row's largest feature.

    For x_i <= 0: exp(y_i - c) with t = y_hi - c formed exactly by Knuth's two-sum (t_hi + t_lo), so
    exp(t_hi) (1 + t_lo + y_lo) has phi's accuracy plus one rounding. For x_i > 0 the row has c = 0 and the feature
    is y_i + 1 as in :func:`_elu_plus_one`. c carries no gradient (it cancels in NTK-Attention's ratio, as a softmax
    shift does); phi_scaled is differentiable with dphi_scaled/dx = e^{-c} dphi/dx.
    """
    dtype = np.dtype(x.dtype)
    if dtype not in _SPLIT_BITS:
        scaled, c = _elu_plus_one_scaled(x.astype(jnp.float32), d)
        return scaled.astype(x.dtype), c.astype(x.dtype)
    y_hi, _ = _scaled_input(jax.lax.stop_gradient(x), d)
    c = jnp.minimum(jnp.max(jnp.where(x > 0, 0, y_hi), axis=-1), 0)
    return _elu_shifted(x, jax.lax.stop_gradient(c), d), jax.lax.stop_gradient(c)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _elu_shifted(x: jax.Array, c: jax.Array, d: int) -> jax.Array:
    """phi(x) e^{-c} for c <= 0 of shape x.shape[:-1], c = 0 on every row with an x_i > 0."""
    y_hi, y_lo = _scaled_input(x, d)
    a, b = y_hi, -c[..., None]
    t_hi = a + b  # two-sum: t_hi + t_lo = y_hi - c exactly
    b_virtual = t_hi - a
    t_lo = (a - (t_hi - b_virtual)) + (b - b_virtual)
    r = jnp.exp(jnp.minimum(t_hi, 0))
    return jnp.where(x > 0, (y_hi + 1) + y_lo, _times_one_plus(r, t_lo + y_lo))


@_elu_shifted.defjvp
def _elu_shifted_jvp(d, primals, tangents):
    (x, c), (x_dot, c_dot) = primals, tangents
    scaled = _elu_shifted(x, c, d)
    k = _elu_scale(d, np.dtype(x.dtype).name)[0]
    slope = jnp.where(x > 0, k * jnp.exp(-c)[..., None], k * scaled)  # e^{-c} dphi/dx
    return scaled, slope * x_dot - scaled * c_dot[..., None]


@_elu_plus_one.defjvp
def _elu_plus_one_jvp(d, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    phi = _elu_plus_one(x, d)
    dtype = np.dtype(x.dtype)
    k = _elu_scale(d, dtype.name if dtype in _SPLIT_BITS else "float32")[0]
    return phi, (k * jnp.minimum(phi, 1)) * x_dot


def taylor_feature_map(d: int, g: int, *, memory_budget: int | None = None) -> FeatureMap:
    """phi with <phi(q), phi(k)> = sum_{j=0}^{g} (<q,k>/sqrt(d))^j / j!  [derived; Theorem 4.1's polynomial method].

    phi_alpha(x) = (x / d^{1/4})^alpha / sqrt(alpha!) over the symmetric monomials alpha in N^d with
    |alpha| <= g (multinomial weights split symmetrically between q and k), so r = C(d + g, g).

    Args:
      d: input dimension (the head dimension of Q and K).
      g: Taylor degree, g >= 0.
      memory_budget: bytes; the map is refused (ValueError giving r and the bytes needed, 8 r (d + 4)) above it.
        None means :data:`FEATURE_MEMORY_BUDGET_BYTES` (1 GiB).
    """
    taylor_feature_dimension(d, g)  # validates d and g
    return FeatureMap("taylor", int(d), int(g), memory_budget=memory_budget)


def elu_feature_map(d: int) -> FeatureMap:
    """phi(x) = elu(x / d^{1/4}) + 1, r = d  [code: the authors' NTK-Attention; NOT covered by Theorem 4.1].

    In the authors' code phi is applied to queries only and Z, k are learned; used with the closed-form
    reduction it gives the "linear attention" kernel <phi(q), phi(k)>, which is not exp(<q,k>/sqrt(d)).

    Evaluated as x / d^{1/4} + 1 for x > 0 and exp(x / d^{1/4}) for x <= 0 (no cancellation), to within
    (k_exp + 2) u + O(u^2) relative in float32 and float64 wherever the result is a normal number, k_exp the measured
    exp accuracy of the platform (:func:`ntkprefix.platform.exp_roundings`; see the comment above _elu_plus_one).
    """
    require_int("d", d, low=1)
    return FeatureMap("elu", int(d), None)


def taylor_degree(score_range: float, eps: float, *, max_degree: int = 200) -> int:
    """Smallest g with sup_{|s|<=S} |exp(s) - T_g(s)| / exp(s) <= eps  [derived].

    Uses the exact relative remainder :func:`ntkprefix.bounds.taylor_relative_error`, evaluated in log space, so any
    finite S is accepted; where no degree up to ``max_degree`` reaches eps (for large S the degree needed is about
    e S) the ValueError says so.

    Args:
      score_range: S, a bound on |<q, k'>| / sqrt(d) over every prefix score.
      eps: target entrywise relative error, 0 < eps < 1.
      max_degree: give up (ValueError) beyond this degree.
    """
    S = require_scalar("score range S", score_range, low=0)
    eps = require_scalar("target eps", eps, low=0, high=1, low_open=True, high_open=True)
    max_degree = require_int("max_degree", max_degree, low=0)
    log_eps = math.log(eps)
    for g in range(max_degree + 1):
        if bounds.log_taylor_relative_error(S, g) <= log_eps:
            return g
    raise ValueError(
        f"no Taylor degree <= {max_degree} reaches eps={eps:g} on |s| <= S={S:g} (the remainder at g={max_degree} is "
        f"10^{bounds.log_taylor_relative_error(S, max_degree) / math.log(10):.4g}); raise max_degree or shrink S"
    )


def as23_degree(bound: float, eps: float) -> float:
    """AS23's degree g = max(log(1/eps) / log(log(1/eps) / B), B), with its hidden Theta constant set to 1  [paper, AS23].

    Alman and Song (2023), "Fast attention requires bounded entries", approximate exp(x) on x in [0, B] by a
    polynomial of this degree with relative error eps. Here B is the range of the exponent, so call it with the
    score range S of :func:`taylor_degree` to compare the two. The Theta(.) constant is not stated, so the value
    is comparable in growth with :func:`taylor_degree`, not in level. Where log(1/eps) / B <= e the first term is
    not meaningful and the formula reduces to B.
    """
    bound = require_scalar("bound B", bound, low=0, low_open=True)
    eps = require_scalar("target eps", eps, low=0, high=1, low_open=True, high_open=True)
    log_inv = math.log(1.0 / eps)
    ratio = log_inv / bound
    first = log_inv / math.log(ratio) if ratio > math.e else 0.0
    return max(first, float(bound))


def parameter_counts(m: int, d: int, r: int) -> dict[str, int]:
    """Trainable parameters: a prefix holds m d numbers; NTK-Attention holds Z (r x d) and k (r), r d + r  [paper]."""
    m, d, r = (require_int(name, v, low=1) for name, v in (("m", m), ("d", d), ("r", r)))
    return {"prefix": m * d, "ntk_attention": r * d + r}
