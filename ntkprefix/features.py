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
import functools
import itertools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from ntkprefix import bounds
from ntkprefix._validation import require

__all__ = [
    "FeatureMap",
    "taylor_feature_map",
    "elu_feature_map",
    "taylor_feature_dimension",
    "taylor_degree",
    "as23_degree",
    "parameter_counts",
]


@functools.lru_cache(maxsize=None)
def _monomial_plan(d: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(exponents, log_weights, factor_index) of every monomial of degree <= g in d variables, degree 0 first.

    exponents: (r, d) the multi-indices alpha. log_weights: log(1 / sqrt(alpha!)). factor_index: (r, F) with
    F = max(1, min(d, g)): each monomial is the product of F entries of a small per-row table (see
    :func:`_taylor_features`), so no monomial is built from another one. (A recursive construction, degree j from
    degree j - 1, is what XLA fuses into one loop that recomputes the whole recursion for every output entry: its
    cost grows exponentially with g.)
    """
    from scipy.special import gammaln

    alphas = [np.zeros(d, dtype=np.int64)]
    for j in range(1, g + 1):
        for combo in itertools.combinations_with_replacement(range(d), j):
            alphas.append(np.bincount(combo, minlength=d))
    alphas = np.asarray(alphas, dtype=np.int64)
    log_weights = -0.5 * gammaln(alphas + 1.0).sum(axis=1)
    if d <= g:  # table = the powers y_i^p, p = 0..g, flattened (d (g+1) entries): factor i is y_i^{alpha_i}
        index = np.arange(d)[None, :] * (g + 1) + alphas
    else:  # table = [y, 1] (d + 1 entries): factor t is the t-th variable of the multiset, or 1
        index = np.full((len(alphas), max(1, g)), d, dtype=np.int64)
        for f, alpha in enumerate(alphas):
            variables = np.repeat(np.arange(d), alpha)
            index[f, : len(variables)] = variables
    return alphas, log_weights, index


def taylor_feature_dimension(d: int, g: int) -> int:
    """r = C(d + g, g): the number of monomials of degree <= g in d variables [derived]."""
    require(isinstance(d, (int, np.integer)) and d >= 1, f"d must be an integer >= 1, got {d!r}")
    require(isinstance(g, (int, np.integer)) and g >= 0, f"degree g must be an integer >= 0, got {g!r}")
    return math.comb(int(d) + int(g), int(g))


@dataclasses.dataclass(frozen=True)
class FeatureMap:
    """A feature map phi: R^d -> R^r, applied to the last axis.

    Attributes:
      kind: ``"taylor"`` (polynomial method, Theorem 4.1 [derived]) or ``"elu"`` (the authors' code [code]).
      d: the input dimension it was built for; applying it to another d raises ``ValueError``.
      degree: the Taylor degree g (``None`` for ELU+1).
      r: the feature dimension.
      sign_definite: whether every feature is non-negative for every input (ELU+1 yes; Taylor only for g = 0).
        Where it is False the authors' ``abs(k)`` changes the result [derived].
      covered_by_theorem_4_1: whether Theorem 4.1 speaks about this map.

    Hashable, so it can be a static argument of :func:`jax.jit`.
    """

    kind: Literal["taylor", "elu"]
    d: int
    degree: int | None = None

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
    def sign_definite(self) -> bool:
        return self.kind == "elu" or self.degree == 0

    @property
    def covered_by_theorem_4_1(self) -> bool:
        return self.kind == "taylor"

    @property
    def label(self) -> str:
        return f"Taylor g={self.degree} (r={self.r})" if self.kind == "taylor" else f"ELU+1 (r={self.r})"

    def __call__(self, x: jax.Array) -> jax.Array:
        """phi(x) for x of shape (..., d); returns (..., r) in x's dtype."""
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.d:
            raise ValueError(
                f"{self.label} feature map was built for d={self.d}, but received an array of shape "
                f"{tuple(x.shape)} (last axis {x.shape[-1] if x.ndim else 'missing'}); expected (..., {self.d})"
            )
        if self.kind == "elu":
            return jax.nn.elu(x / self.d**0.25) + 1.0
        return _taylor_features(x, self.d, self.degree)


def _taylor_features(x: jax.Array, d: int, g: int) -> jax.Array:
    # phi_alpha(x) = (x / d^(1/4))^alpha / sqrt(alpha!), so that
    # <phi(q), phi(k)> = sum_{|alpha|<=g} (q k / sqrt(d))^alpha / alpha! = sum_{j<=g} s^j / j!  (multinomial theorem).
    # Each monomial is a product of min(d, g) entries gathered from a per-row table (see _monomial_plan).
    _, log_weights, index = _monomial_plan(d, g)
    y = x / d**0.25
    if d <= g:
        ones = jnp.ones(y.shape + (1,), y.dtype)
        powers = jnp.cumprod(jnp.concatenate([ones, jnp.repeat(y[..., None], g, axis=-1)], axis=-1), axis=-1)
        table = powers.reshape(y.shape[:-1] + (d * (g + 1),))
    else:
        table = jnp.concatenate([y, jnp.ones(y.shape[:-1] + (1,), y.dtype)], axis=-1)
    monomials = table[..., index[:, 0]]
    for t in range(1, index.shape[1]):
        monomials = monomials * table[..., index[:, t]]
    return monomials * jnp.asarray(np.exp(log_weights), dtype=x.dtype)


def taylor_feature_map(d: int, g: int) -> FeatureMap:
    """phi with <phi(q), phi(k)> = sum_{j=0}^{g} (<q,k>/sqrt(d))^j / j!  [derived; Theorem 4.1's polynomial method].

    phi_alpha(x) = (x / d^{1/4})^alpha / sqrt(alpha!) over the symmetric monomials alpha in N^d with
    |alpha| <= g (multinomial weights split symmetrically between q and k), so r = C(d + g, g).

    Args:
      d: input dimension (the head dimension of Q and K).
      g: Taylor degree, g >= 0.
    """
    taylor_feature_dimension(d, g)  # validates d and g
    return FeatureMap("taylor", int(d), int(g))


def elu_feature_map(d: int) -> FeatureMap:
    """phi(x) = elu(x / d^{1/4}) + 1, r = d  [code: the authors' NTK-Attention; NOT covered by Theorem 4.1].

    In the authors' code phi is applied to queries only and Z, k are learned; used with the closed-form
    reduction it gives the "linear attention" kernel <phi(q), phi(k)>, which is not exp(<q,k>/sqrt(d)).
    """
    require(isinstance(d, (int, np.integer)) and d >= 1, f"d must be an integer >= 1, got {d!r}")
    return FeatureMap("elu", int(d), None)


def taylor_degree(score_range: float, eps: float, *, max_degree: int = 200) -> int:
    """Smallest g with sup_{|s|<=S} |exp(s) - T_g(s)| / exp(s) <= eps  [derived].

    Uses the exact relative remainder :func:`ntkprefix.bounds.taylor_relative_error`.

    Args:
      score_range: S, a bound on |<q, k'>| / sqrt(d) over every prefix score.
      eps: target entrywise relative error, 0 < eps < 1.
      max_degree: give up (ValueError) beyond this degree.
    """
    require(np.isfinite(score_range) and score_range >= 0, f"score range S must be finite and >= 0, got {score_range!r}")
    require(0 < eps < 1, f"target eps must lie in (0, 1), got {eps!r}")
    for g in range(max_degree + 1):
        if bounds.taylor_relative_error(score_range, g) <= eps:
            return g
    raise ValueError(f"no Taylor degree <= {max_degree} reaches eps={eps:g} on |s| <= S={score_range:g}")


def as23_degree(bound: float, eps: float) -> float:
    """AS23's degree g = max(log(1/eps) / log(log(1/eps) / B), B), with its hidden Theta constant set to 1  [paper, AS23].

    Alman and Song (2023), "Fast attention requires bounded entries", approximate exp(x) on x in [0, B] by a
    polynomial of this degree with relative error eps. Here B is the range of the exponent, so call it with the
    score range S of :func:`taylor_degree` to compare the two. The Theta(.) constant is not stated, so the value
    is comparable in growth with :func:`taylor_degree`, not in level. Where log(1/eps) / B <= e the first term is
    not meaningful and the formula reduces to B.
    """
    require(bound > 0, f"bound B must be > 0, got {bound!r}")
    require(0 < eps < 1, f"target eps must lie in (0, 1), got {eps!r}")
    log_inv = math.log(1.0 / eps)
    ratio = log_inv / bound
    first = log_inv / math.log(ratio) if ratio > math.e else 0.0
    return max(first, float(bound))


def parameter_counts(m: int, d: int, r: int) -> dict[str, int]:
    """Trainable parameters: a prefix holds m d numbers; NTK-Attention holds Z (r x d) and k (r), r d + r  [paper]."""
    require(m >= 1 and d >= 1 and r >= 1, f"m, d, r must be >= 1, got m={m}, d={d}, r={r}")
    return {"prefix": m * d, "ntk_attention": r * d + r}
