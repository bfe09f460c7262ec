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
NTK-Attention output and the computed reference each carry rounding; :func:`rounding_allowance` bounds it in
Higham's standard model with gamma_N = N u / (1 - N u), not to first order only (see its docstring).

Numerics of this module (audited for issue 9). The remainder is evaluated in log space
(:func:`log_taylor_relative_error`): a positive series, or a closed form whose only difference, 1 - (-1)^g e^{-lead},
loses at most 2 bits; no scipy 1F1, which overflows beyond S of about 700. Every other bound is a product and sum of
positive terms, formed in log space where it may leave float64 (inf, never OverflowError); the differences 1 - eps,
1 - gamma, 1 - e_ are bounds' own denominators, evaluated once each, and the bound is returned as inf where they
reach 0.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import special

from ntkprefix import platform
from ntkprefix._validation import require, require_int, require_scalar

__all__ = [
    "MAX_TAYLOR_DEGREE",
    "log_taylor_relative_error",
    "taylor_relative_error",
    "taylor_relative_error_paper_form",
    "attention_error_bound",
    "rounding_terms",
    "rounding_allowance",
    "Theorem41Bound",
    "theorem_4_1_bound",
    "entry_scale_B",
    "lemma_3_1_bound",
    "Theorem32Requirements",
    "theorem_3_2_requirements",
]


#: Largest Taylor degree the remainder functions accept: far beyond any feature map that can be built
#: (r = C(d + g, g) > 10^6 already for d = 2), and it keeps the log-space series below 10^6 terms.
MAX_TAYLOR_DEGREE = 10**6

_LOG_FLOAT_MAX = math.log(np.finfo(np.float64).max)  # 709.78: exp of anything larger is inf


def _exp_or_inf(log_value: float) -> float:
    """exp(log_value) as a float, inf where it exceeds the largest float64 (never OverflowError)."""
    return math.inf if log_value > _LOG_FLOAT_MAX else math.exp(log_value)


def _check_range_degree(score_range, g) -> tuple[float, int]:
    S = require_scalar("score range S", score_range, low=0)
    if isinstance(g, (bool, np.bool_)) or not isinstance(g, (int, np.integer)) or g < 0:
        raise ValueError(f"degree g must be an integer >= 0, got {g!r}")
    require(g <= MAX_TAYLOR_DEGREE, f"degree g must be <= {MAX_TAYLOR_DEGREE} (MAX_TAYLOR_DEGREE), got {g}")
    return S, int(g)


def _log_sum_exp(log_terms: np.ndarray) -> float:
    top = float(np.max(log_terms))
    return top + math.log(math.fsum(np.exp(log_terms - top)))


def log_taylor_relative_error(score_range: float, g: int) -> float:
    """log of sup_{|s|<=S} |exp(s) - T_g(s)| / exp(s) = log[S^{g+1}/(g+1)! 1F1(g+1; g+2; S)], in log space  [derived].

    With t = S the supremum is E = (1/g!) int_0^t w^g e^w dw (see the module docstring), evaluated without
    cancellation and without overflow for every finite S >= 0 and g <= :data:`MAX_TAYLOR_DEGREE`:

    * t < 2(g + 1): the series E = t^{g+1}/(g+1)! sum_{j>=0} (g+1)/(g+1+j) t^j/j! has positive terms only; it is
      summed in log space over j <= 2t + 64 (past j = 2t successive terms fall by more than 2, so the rest is below
      2^-64 of the sum; for t > 10^4 over the window |j - t| <= 50 sqrt(t) + 64, outside which the terms are below
      e^-1000 of the largest).
    * t >= 2(g + 1): E = e^t t^g c / g! - (-1)^g with c = sum_{i<=g} (-1)^i g! / ((g-i)! t^i). The terms of c
      alternate and fall by a factor (g-i)/t <= 1/2, so 1/2 <= c <= 1 and c has relative error below 8u (series cut
      after 80 terms: the rest is below 2^-80); and e^t t^g c / g! >= e^2 / 2 > 3, so subtracting (-1)^g loses at most
      2 bits, done as log1p.

    Relative error of E: below 1e-13 (checked against exact decimal arithmetic in tests/test_bounds.py). scipy's
    ``hyp1f1`` is not used: it overflows to inf for S above about 700 and its accuracy for large g is not stated.
    """
    t, g = _check_range_degree(score_range, g)
    if t == 0:
        return -math.inf
    log_t = math.log(t)
    if t >= 2 * (g + 1):
        n = min(g, 80)
        ratios = (g - np.arange(1, n + 1)) + 1.0
        terms = np.concatenate([[1.0], np.cumprod(ratios / t)])
        c = math.fsum(terms * (-1.0) ** np.arange(n + 1))
        lead = t + g * log_t - math.lgamma(g + 1) + math.log(c)
        return lead + math.log1p(-((-1) ** g) * math.exp(-lead))
    if t <= 1e4:
        j = np.arange(0, math.ceil(2 * t) + 65, dtype=np.float64)
    else:
        half_width = 50 * math.sqrt(t) + 64
        j = np.arange(max(0, math.floor(t - half_width)), math.ceil(t + half_width) + 1, dtype=np.float64)
    log_terms = math.log(g + 1) - np.log(g + 1 + j) + j * log_t - special.gammaln(j + 1)
    return (g + 1) * log_t - math.lgamma(g + 2) + _log_sum_exp(log_terms)


def taylor_relative_error(score_range: float, g: int) -> float:
    """sup_{|s|<=S} |exp(s) - T_g(s)| / exp(s) = S^{g+1}/(g+1)! * 1F1(g+1; g+2; S), exactly  [derived].

    exp of :func:`log_taylor_relative_error` (accurate for every finite S, no overflow in the evaluation); inf where
    the value exceeds the largest float64 (S above about 700 at g = 0).

    Args:
      score_range: S >= 0, the largest |<q, k'>| / sqrt(d) over the prefix scores.
      g: Taylor degree.
    """
    return _exp_or_inf(log_taylor_relative_error(score_range, g))


def taylor_relative_error_paper_form(score_range: float, g: int) -> float:
    """S^{g+1} e^{2S} / (g+1)!: the looser entrywise bound written in PAPER.md section 1  [derived].

    Evaluated as exp of its logarithm (a sum of positive terms, no cancellation); inf where it exceeds float64.
    """
    S, g = _check_range_degree(score_range, g)
    if S == 0:
        return 0.0
    return _exp_or_inf((g + 1) * math.log(S) + 2 * S - special.gammaln(g + 2))


def attention_error_bound(eps: float, value_bound: float) -> float:
    """2 eps / (1 - eps) * max|V_C|: output error when every exp weight has relative error <= eps  [derived].

    Infinite when eps >= 1 (the perturbed weights may then vanish or change sign: nothing is guaranteed).
    """
    eps = require_scalar("eps", eps, low=0, allow_inf=True)
    value_bound = require_scalar("value bound max|V_C|", value_bound, low=0)
    if eps >= 1:
        return math.inf
    return 2.0 * eps / (1.0 - eps) * value_bound


#: Every underflowing weight is off by at most the smallest normal float32 (XLA's CPU code may flush subnormals to
#: zero); 2^-126 bounds it in float32 and float64.
_UNDERFLOW = 2.0**-126


def _gamma(n: float, u: float) -> float:
    """Higham's gamma_n = n u / (1 - n u): |prod_{i<=n} (1 + delta_i)^{+-1} - 1| <= gamma_n for |delta_i| <= u."""
    return n * u / (1.0 - n * u) if n * u < 1 else math.inf


def rounding_terms(
    *, m: int, L: int, r: int, degree: int, d: int, exp_roundings: int | None = None, unit_roundoff: float = 2.0**-53
) -> int:
    """N of :func:`rounding_allowance` for Algorithm 2 (Taylor map of degree g, r features) against Algorithm 1:

        N = N_ref + r + 12g + d + 16,      N_ref = (k_exp + 3) m + L + 2 k_exp + 12,

    which is at least each of N_ref, m + r + 12g + 8 and d + 3, the three counts of :func:`rounding_allowance`'s
    derivation (for k_exp = 2, the count assumed before exp was measured: 5m + L + r + 12g + d + 32).

    Args:
      exp_roundings: k_exp, an integer >= 1, the number of roundings one exp counts as (relative error <= k_exp u);
        None means the measured value of the running platform (:func:`ntkprefix.platform.exp_roundings`) for the
        dtype of ``unit_roundoff`` (2^-53: float64, 2^-24: float32).
    """
    m, L, r, d = (require_int(name, v, low=1) for name, v in (("m", m), ("L", L), ("r", r), ("d", d)))
    g = require_int("degree", degree, low=0)
    u = require_scalar("unit_roundoff", unit_roundoff, low=0, high=0.5, low_open=True, high_open=True)
    k = _exp_roundings(exp_roundings, u)
    return (k + 3) * m + L + 2 * k + 12 + r + 12 * g + d + 16


def _exp_roundings(exp_roundings, unit_roundoff: float) -> int:
    if exp_roundings is None:
        return platform.exp_roundings(platform.dtype_for_unit_roundoff(unit_roundoff))
    return require_int("exp_roundings", exp_roundings, low=1)


def _log_coefficient(log_coefficient, unit_roundoff: float) -> int:
    if log_coefficient is None:
        return platform.log_coefficient(platform.dtype_for_unit_roundoff(unit_roundoff))
    return require_int("log_coefficient", log_coefficient, low=0)


def rounding_allowance(
    *,
    n_terms: int,
    eps: float,
    value_bound: float,
    score_abs_range: float,
    unit_roundoff: float,
    input_score_abs_range: float | None = None,
    log_coefficient: int | None = None,
) -> float:
    """Worst-case rounding of Algorithm 2 (Taylor map, with its reduction) plus the reference Algorithm 1  [derived].

        R = 2 e_ref V / (1 - e_ref) + 2 e_ntk V / (1 - e_ntk) + 4 u V + 4 N 2^-126 V max(1, V),
        e_ref = e^xi (1 + gamma_N) - 1,      e_ntk = e^xi (1 + gamma_N)(1 + gamma_N kappa) - 1,
        xi = gamma_N S_all + (2 + c_log) u Lambda,     kappa = e^{2 S_abs} / (1 - eps),
        Lambda = 3 S_all + log N + |log V| + |log(1 - eps)| + 1,     S_all = max(S_abs, S_abs,input),

    a bound on |T_computed - T| + |O_computed - O| per entry (T, O the exact outputs of the two algorithms), so that
    |T_computed - O_computed| <= kernel term + R. Infinite where any factor reaches 1 (nothing is guaranteed).

    Model: IEEE arithmetic, fl(a op b) = (a op b)(1 + delta), |delta| <= u, and two platform facts, measured, not
    assumed (:mod:`ntkprefix.platform`, checked by tests/test_features.py): XLA's exp has relative error at most
    k_exp u, so that one exp counts as k_exp roundings, and its log absolute error at most c_log u (|log x| + 1).
    Underflow is accounted for by the last term (every weight below 2^-126 may be lost).

    Derivation, for one query row. Both algorithms compute O or T = (sum_j w_j v_j) / (sum_j w_j) with positive
    exact weights w_j (for T: w_j = e^{s_j} on the input keys, the kernel mass P on the prefix). If every term of
    the computed numerator and denominator is its exact value times a factor within e_ in relative terms (the
    numerator and denominator may see different factors), then with D = sum_j w_j

        |N^/D^ - N/D| = |e_N - (N/D) e_D| / D^ <= (e_ V D + V e_ D) / ((1 - e_) D) = 2 e_ V / (1 - e_),

    and the final division adds u |output| <= u V (1 + 2 e_/(1 - e_)) <= 2 u V while e_ < 1/2.
    * Scores. s = <q, k>/sqrt(d) is computed from d products, d - 1 sums and at most 3 roundings of the scale, so
      |s^ - s| <= gamma_{d+3} sum_i |q_i k_i| / sqrt(d) <= gamma_N S_all. Subtracting the row shift M^ (a running
      maximum, or log of the prefix mass, |s^ - M^| and |log mu^| <= Lambda) rounds once, u Lambda; log mu^ is off by
      at most c_log u (|log mu^| + 1) <= c_log u Lambda; subtracting M^ from it rounds once more, u Lambda: at most
      (2 + c_log) u Lambda in every exponent. Every exp(s^ - M^) is thus exp(s - M^) e^{+-xi} times the rounding of
      exp, k_exp roundings.
    * Reference (streaming softmax, at most m + 1 chunks: m prefix rows, then the input keys). A term's weight
      passes through its own exp (k_exp roundings) and one product with v_j (1); every later chunk rescales the
      running totals by an exp (k_exp), a product (1) and adds the chunk's sum to them (1), k_exp + 2 per chunk
      for at most m + 1 chunks; the sums inside the chunks are over at most m + L terms. That is at most
      (k_exp + 2)(m + 1) + k_exp + 1 + m + L = (k_exp + 3) m + L + 2 k_exp + 3 roundings, within gamma_N for
      N >= N_ref = (k_exp + 3) m + L + 2 k_exp + 12 (9 to spare; for k_exp = 2 the 5m + L + 16 of the count that
      assumed exp to be 2 roundings). Hence e_ref.
    * NTK-Attention. Input terms as the reference (their exp, product and sums: k_exp + 1 + L + 1 <= N_ref). The
      prefix terms are phi(q)^T Z and phi(q)^T k, Z and k the reduction's sums over m rows; every Taylor feature
      carries relative error gamma_{6g+2} (see :class:`ntkprefix.features.FeatureMap`, no exp or log in it; the
      reduction builds the same weighted features), and every term of Z
      passes one product with v_j and at most m + 1 additions (a chunk's GEMM, the
      running sum over chunks, the addition to the previous Z), so the computed sums differ from the exact ones by at
      most gamma_{m + r + 12g + 8} sum_j sum_alpha |phi_alpha(q) phi_alpha(k_j)| V = gamma V sum_j T_g(a_j),
      a_j = sum_i |q_i k_ji| / sqrt(d) <= S_abs. These are the differences of nearly equal numbers of the method
      (the Taylor terms alternate in sign); their size is bounded through T_g(a_j) <= e^{a_j} <= e^{2 S_abs} e^{s_j}
      and P = sum_j T_g(s_j) >= (1 - eps) sum_j e^{s_j}, i.e. by gamma_N kappa relative to the exact prefix mass.
      The normalisation by mu (a division), the exp of log mu - M (k_exp roundings and the xi) and the product with
      it, and the addition to the input sum: k_exp + 3 <= N_ref roundings. Hence e_ntk.
    N must be at least max(N_ref, m + r + 12g + 8, d + 3) with exp counted as k_exp roundings:
    :func:`theorem_4_1_bound` passes :func:`rounding_terms`, N_ref + r + 12g + d + 16. The bound is evaluated from
    positive terms, in float64; its own rounding is far below its size (relative 1e-14).

    Args:
      n_terms: N (see above; it must count every exp as k_exp roundings, :func:`rounding_terms`).
      eps: the entrywise relative error of the kernel (see :func:`taylor_relative_error`).
      value_bound: V = max|V_C|.
      score_abs_range: S_abs, max over prefix scores of sum_i |q_i k'_i| / sqrt(d).
      unit_roundoff: u, 2^-53 for float64, 2^-24 for float32.
      input_score_abs_range: the same over the input keys K; None means it is at most S_abs (the caller's promise;
        pass it whenever the input keys may score larger than the prefix keys).
      log_coefficient: c_log, an integer >= 0; None means the measured value of the running platform for the dtype
        of ``unit_roundoff`` (:func:`ntkprefix.platform.log_coefficient`; ValueError for a u other than 2^-53, 2^-24).
    """
    n = require_int("n_terms", n_terms, low=1)
    eps = require_scalar("eps", eps, low=0, allow_inf=True)
    V = require_scalar("value bound max|V_C|", value_bound, low=0)
    S_abs = require_scalar("score_abs_range", score_abs_range, low=0)
    u = require_scalar("unit_roundoff", unit_roundoff, low=0, high=0.5, low_open=True, high_open=True)
    S_in = S_abs if input_score_abs_range is None else require_scalar("input_score_abs_range", input_score_abs_range, low=0)
    c_log = _log_coefficient(log_coefficient, u)
    if eps >= 1:
        return math.inf
    gamma = _gamma(n, u)
    if not math.isfinite(gamma):
        return math.inf
    S_all = max(S_abs, S_in)
    log_range = 3.0 * S_all + math.log(n) + (abs(math.log(V)) if V > 0 else 0.0) + abs(math.log1p(-eps)) + 1.0
    xi = gamma * S_all + (2.0 + c_log) * u * log_range
    log_gamma_kappa = math.log(gamma) + 2.0 * S_abs - math.log1p(-eps)  # kappa may overflow; gamma kappa >= 1 is inf
    if xi >= 1 or log_gamma_kappa >= 0:
        return math.inf
    gamma_kappa = math.exp(log_gamma_kappa)
    e_ref = math.exp(xi) * (1.0 + gamma) - 1.0
    e_ntk = math.exp(xi) * (1.0 + gamma) * (1.0 + gamma_kappa) - 1.0
    if e_ntk >= 0.5:
        return math.inf
    return (
        2.0 * e_ref * V / (1.0 - e_ref)
        + 2.0 * e_ntk * V / (1.0 - e_ntk)
        + 4.0 * u * V
        + 4.0 * n * _UNDERFLOW * V * max(1.0, V)
    )


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
    input_score_abs_range: float | None = None,
    exp_roundings: int | None = None,
    log_coefficient: int | None = None,
) -> Theorem41Bound:
    """Rigorous bound for Algorithm 2 with the degree-g Taylor map against Algorithm 1, measured in floating point.

    kernel term 2 eps/(1 - eps) max|V_C| with eps = :func:`taylor_relative_error` (S, g)  [derived from PAPER.md section 1]
    plus :func:`rounding_allowance` with N = :func:`rounding_terms` = (k_exp + 3) m + L + r + 12g + d + 2 k_exp + 28
    (see its docstring for N and for ``input_score_abs_range``).

    exp_roundings (k_exp, integer >= 1) and log_coefficient (c_log, integer >= 0): the platform's exp and log
    accuracy (see :func:`rounding_allowance`); None means the measured values of the running platform for the dtype of
    ``unit_roundoff`` (:mod:`ntkprefix.platform`).
    """
    m, L, d = (require_int(name, v, low=1) for name, v in (("m", m), ("L", L), ("d", d)))
    u = require_scalar("unit_roundoff", unit_roundoff, low=0, high=0.5, low_open=True, high_open=True)
    k_exp = _exp_roundings(exp_roundings, u)
    eps = taylor_relative_error(score_range, degree)
    r = math.comb(d + int(degree), int(degree))
    n_terms = rounding_terms(m=m, L=L, r=r, degree=int(degree), d=d, exp_roundings=k_exp, unit_roundoff=u)
    return Theorem41Bound(
        eps=eps,
        kernel_term=attention_error_bound(eps, value_bound),
        rounding_term=rounding_allowance(
            n_terms=n_terms,
            eps=eps,
            value_bound=value_bound,
            score_abs_range=score_abs_range,
            unit_roundoff=unit_roundoff,
            input_score_abs_range=input_score_abs_range,
            log_coefficient=log_coefficient,
        ),
    )


# ---- Section 3: the stylized model. Every constant below is [template] (arXiv 2405.03251's NTK template, which
# ---- Section 3 follows; exact constants unconfirmed) or [paper]. Checks report the slack against these, never
# ---- assert them.


def entry_scale_B(*, sigma: float, n: int, d: int, delta: float, C: float = 1.0) -> float:
    """B = max{C sigma sqrt(log(n d / delta)), 1}  [paper; the constant C is unstated: C = 1 by default, [template]]."""
    sigma = require_scalar("sigma", sigma, low=0, low_open=True)
    n, d = require_int("n", n, low=1), require_int("d", d, low=1)
    delta = require_scalar("delta", delta, low=0, high=1, low_open=True, high_open=True)
    C = require_scalar("C", C, low=0)
    return max(C * sigma * math.sqrt(math.log(n * d / delta)), 1.0)


def lemma_3_1_bound(
    *, R: float, n: int, d: int, B: float, poly_exponent: float = 1.0, exp_coefficient: float = 10.0
) -> float:
    """||H(W~) - H(W(0))||_F <= R (n d)^p exp(c B)  [template: the form is the template's, p = 1 and c = 10 are
    placeholders for its unconfirmed constants; the lem3_1 check reports measured / this as the slack].

    Evaluated in log space (inf beyond float64, never OverflowError). A rigorous bound, derived for this project,
    is :func:`ntkprefix.kernels.ntk_perturbation_bound`.
    """
    R = require_scalar("R", R, low=0)
    n, d = require_int("n", n, low=1), require_int("d", d, low=1)
    B = require_scalar("B", B)
    p = require_scalar("poly_exponent", poly_exponent)
    c = require_scalar("exp_coefficient", exp_coefficient)
    if R == 0:
        return 0.0
    return _exp_or_inf(math.log(R) + p * math.log(n * d) + c * B)


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

    T uses ``eta`` when given (the step size actually used), else the prescribed eta. Products of powers and
    exponentials are formed in log space: inf (or 0) where they leave float64, never OverflowError.
    """
    lam = require_scalar("lambda", lam, low=0, low_open=True)
    n, d, m = require_int("n", n, low=1), require_int("d", d, low=1), require_int("m", m, low=1)
    B = require_scalar("B", B)
    delta = require_scalar("delta", delta, low=0, high=1, low_open=True, high_open=True)
    eps = require_scalar("eps", eps, low=0, low_open=True)
    log_nd = math.log(n * d / delta)
    log_n2d2 = 2 * math.log(n * d)
    m_required = _exp_or_inf(-2 * math.log(lam) + log_n2d2 + 18 * B + 2 * math.log(log_nd))
    eta_prescribed = math.exp(min(math.log(0.1 * lam) - math.log(m) - log_n2d2 - 16 * B, _LOG_FLOAT_MAX))
    eta_used = eta_prescribed if eta is None else require_scalar("eta", eta, low=0, low_open=True)
    numerator = math.log(n * d / eps)
    log_denominator = math.log(m) + math.log(eta_used) + math.log(lam) if eta_used > 0 else -math.inf
    T_required = 0.0 if numerator == 0 else math.copysign(_exp_or_inf(math.log(abs(numerator)) - log_denominator), numerator)
    return Theorem32Requirements(m_required, eta_prescribed, T_required)
