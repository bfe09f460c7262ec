"""Every bound of the paper as a function, each with its tag from ../shared/PAPER.md.

Theorem 4.1 [paper] states ||T - PrefixAttn(X, P)||_inf <= 1/poly(m) without constants. The computable bound
checked here is [derived] and re-derived below.

Kernel term. Let a_j = exp(s_j) > 0 be the exact attention weights of one query and a_j (1 + delta_j) the weights
NTK-Attention uses, |delta_j| <= eps < 1 (delta_j = 0 on the input part, which is computed exactly). With
O = sum a_j v_j / sum a_j and T the same with the perturbed weights,

    T - O = sum_j a_j delta_j (v_j - O) / sum_j a_j (1 + delta_j),

so |T - O| <= eps / (1 - eps) * max_j |v_j - O| <= 2 eps / (1 - eps) * max|V_C|      (entrywise).

Entrywise eps for the Taylor map. With T_g(s) = sum_{j<=g} s^j / j! and the integral form of the remainder,
for s = -t <= 0:  |e^s - T_g(s)| / e^s = (1/g!) int_0^t w^g e^w dw = t^{g+1}/(g+1)! 1F1(g+1; g+2; t),
and for s = t >= 0 the relative error is P(g+1, t) (regularised lower incomplete gamma), which is smaller term by
term. Both grow with t, so sup_{|s|<=S} = S^{g+1}/(g+1)! 1F1(g+1; g+2; S)  (:func:`taylor_relative_error`).
It is at most the Lagrange form S^{g+1} e^S / (g+1)!, which is at most PAPER.md's S^{g+1} e^{2S} / (g+1)!.

Rounding term. The kernel term is a statement in exact arithmetic. Measured in floating point, the computed
NTK-Attention output and the computed reference each carry rounding; :func:`rounding_allowance` bounds it with
Higham's gamma_N = N u / (1 - N u) to first order (see its docstring).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import special

from ntkprefix._validation import require

__all__ = [
    "taylor_relative_error",
    "taylor_relative_error_paper_form",
    "attention_error_bound",
    "rounding_allowance",
    "Theorem41Bound",
    "theorem_4_1_bound",
    "entry_scale_B",
    "lemma_3_1_bound",
    "Theorem32Requirements",
    "theorem_3_2_requirements",
]


def _check_range_degree(score_range: float, g: int) -> None:
    require(np.isfinite(score_range) and score_range >= 0, f"score range S must be finite and >= 0, got {score_range!r}")
    require(isinstance(g, (int, np.integer)) and g >= 0, f"degree g must be an integer >= 0, got {g!r}")


def taylor_relative_error(score_range: float, g: int) -> float:
    """sup_{|s|<=S} |exp(s) - T_g(s)| / exp(s) = S^{g+1}/(g+1)! * 1F1(g+1; g+2; S), exactly  [derived].

    Args:
      score_range: S >= 0, the largest |<q, k'>| / sqrt(d) over the prefix scores.
      g: Taylor degree.
    """
    _check_range_degree(score_range, g)
    if score_range == 0:
        return 0.0
    log_lead = (g + 1) * math.log(score_range) - special.gammaln(g + 2)
    return float(math.exp(log_lead) * special.hyp1f1(g + 1, g + 2, score_range))


def taylor_relative_error_paper_form(score_range: float, g: int) -> float:
    """S^{g+1} e^{2S} / (g+1)!: the looser entrywise bound written in PAPER.md section 1  [derived]."""
    _check_range_degree(score_range, g)
    if score_range == 0:
        return 0.0
    return float(math.exp((g + 1) * math.log(score_range) + 2 * score_range - special.gammaln(g + 2)))


def attention_error_bound(eps: float, value_bound: float) -> float:
    """2 eps / (1 - eps) * max|V_C|: output error when every exp weight has relative error <= eps  [derived].

    Infinite when eps >= 1 (the perturbed weights may then vanish or change sign: nothing is guaranteed).
    """
    require(eps >= 0, f"eps must be >= 0, got {eps!r}")
    require(value_bound >= 0, f"value bound max|V_C| must be >= 0, got {value_bound!r}")
    if eps >= 1:
        return math.inf
    return 2.0 * eps / (1.0 - eps) * value_bound


def rounding_allowance(
    *, n_terms: int, eps: float, value_bound: float, score_abs_range: float, unit_roundoff: float
) -> float:
    """First-order worst-case rounding of Algorithm 2 plus the reference Algorithm 1, in one number  [derived].

        2 gamma_N V / (1 - gamma_N)  +  2 gamma_N kappa V / ((1 - eps)(1 - gamma_N kappa)),
        gamma_N = N u / (1 - N u),   kappa = exp(2 S_abs) / (1 - eps),

    The first term bounds the reference (positive weights, sums of length N). The second bounds NTK-Attention:
    the monomial sums sum_j |phi(q)_alpha phi(k_j)_alpha| = sum_j T_g(a_j) <= sum_j exp(a_j), with
    a_j = sum_i |q_i k_ji| / sqrt(d) <= S_abs, exceed the true denominator by at most kappa. N counts the
    operations along the longest accumulation (m + L + r + 2g + d) plus a margin of 16 for exp, rescales and
    the division; the caller passes it.

    Args:
      n_terms: N.
      eps: the entrywise relative error of the kernel (see :func:`taylor_relative_error`).
      value_bound: max|V_C|.
      score_abs_range: S_abs, max over scores of sum_i |q_i k'_i| / sqrt(d).
      unit_roundoff: u, 2^-53 for float64, 2^-24 for float32.
    """
    require(n_terms >= 1, f"n_terms must be >= 1, got {n_terms!r}")
    gamma = n_terms * unit_roundoff / (1.0 - n_terms * unit_roundoff) if n_terms * unit_roundoff < 1 else math.inf
    if eps >= 1 or not math.isfinite(gamma):
        return math.inf
    reference = 2.0 * gamma * value_bound / (1.0 - gamma)
    kappa = math.exp(min(2.0 * score_abs_range, 700.0)) / (1.0 - eps)
    if gamma * kappa >= 1:
        return math.inf
    ntk = 2.0 * gamma * kappa * value_bound / ((1.0 - eps) * (1.0 - gamma * kappa))
    return reference + ntk


@dataclasses.dataclass(frozen=True)
class Theorem41Bound:
    """The computable bound on ||T - PrefixAttn(X, P)||_inf for the Taylor map, split into its parts [derived]."""

    eps: float  # exact entrywise relative error of T_g on |s| <= S
    kernel_term: float  # 2 eps / (1 - eps) max|V_C|
    rounding_term: float  # rounding_allowance(...)

    @property
    def total(self) -> float:
        return self.kernel_term + self.rounding_term


def theorem_4_1_bound(
    *,
    score_range: float,
    score_abs_range: float,
    degree: int,
    value_bound: float,
    m: int,
    L: int,
    d: int,
    unit_roundoff: float = 2.0**-53,
) -> Theorem41Bound:
    """Rigorous bound for Algorithm 2 with the degree-g Taylor map against Algorithm 1, measured in floating point.

    kernel term 2 eps/(1 - eps) max|V_C| with eps = :func:`taylor_relative_error` (S, g)  [derived from PAPER.md section 1]
    plus :func:`rounding_allowance` with N = m + L + r + 2g + d + 16.
    """
    require(m >= 1 and L >= 1 and d >= 1, f"m, L, d must be >= 1, got m={m}, L={L}, d={d}")
    eps = taylor_relative_error(score_range, degree)
    r = math.comb(d + degree, degree)
    n_terms = m + L + r + 2 * degree + d + 16
    return Theorem41Bound(
        eps=eps,
        kernel_term=attention_error_bound(eps, value_bound),
        rounding_term=rounding_allowance(
            n_terms=n_terms,
            eps=eps,
            value_bound=value_bound,
            score_abs_range=score_abs_range,
            unit_roundoff=unit_roundoff,
        ),
    )


# ---- Section 3: the stylized model. Every constant below is [template] (arXiv 2405.03251's NTK template, which
# ---- Section 3 follows; exact constants unconfirmed) or [paper]. Checks report the slack against these, never
# ---- assert them.


def entry_scale_B(*, sigma: float, n: int, d: int, delta: float, C: float = 1.0) -> float:
    """B = max{C sigma sqrt(log(n d / delta)), 1}  [paper; the constant C is unstated: C = 1 by default, [template]]."""
    require(sigma > 0 and n >= 1 and d >= 1, f"sigma, n, d must be positive, got sigma={sigma}, n={n}, d={d}")
    require(0 < delta < 1, f"delta must lie in (0, 1), got {delta!r}")
    return max(C * sigma * math.sqrt(math.log(n * d / delta)), 1.0)


def lemma_3_1_bound(
    *, R: float, n: int, d: int, B: float, poly_exponent: float = 1.0, exp_coefficient: float = 10.0
) -> float:
    """||H(W~) - H(W(0))||_F <= R (n d)^p exp(c B)  [template: the form is the template's, p = 1 and c = 10 are
    placeholders for its unconfirmed constants; the lem3_1 check reports measured / this as the slack]."""
    require(R >= 0, f"R must be >= 0, got {R!r}")
    return R * (n * d) ** poly_exponent * math.exp(exp_coefficient * B)


@dataclasses.dataclass(frozen=True)
class Theorem32Requirements:
    """The template's prescriptions for Theorem 3.2 [template, constants unconfirmed]."""

    m_required: float  # Omega(lambda^-2 n^2 d^2 exp(18 B) log^2(n d / delta)), with the Omega constant 1
    eta_prescribed: float  # 0.1 lambda / (m n^2 d^2 exp(16 B))
    T_required: float  # Omega((m eta lambda)^-1 log(n d / eps)), with the Omega constant 1


def theorem_3_2_requirements(
    *, lam: float, n: int, d: int, B: float, delta: float, m: int, eps: float, eta: float | None = None
) -> Theorem32Requirements:
    """m, eta and T as the template prescribes them  [template; every Omega(.) constant set to 1].

    T uses ``eta`` when given (the step size actually used), else the prescribed eta.
    """
    require(lam > 0, f"lambda must be > 0, got {lam!r}")
    require(0 < delta < 1 and eps > 0, f"need 0 < delta < 1 and eps > 0, got delta={delta}, eps={eps}")
    log_nd = math.log(n * d / delta)
    m_required = lam**-2 * n**2 * d**2 * math.exp(18 * B) * log_nd**2
    eta_prescribed = 0.1 * lam / (m * n**2 * d**2 * math.exp(16 * B))
    eta_used = eta_prescribed if eta is None else eta
    T_required = math.log(n * d / eps) / (m * eta_used * lam)
    return Theorem32Requirements(m_required, eta_prescribed, T_required)
