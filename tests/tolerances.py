"""Tolerances derived from a rounding model, for the tests that compare two floating-point evaluations.

Model (Higham, "Accuracy and Stability of Numerical Algorithms", ch. 2-3): fl(a op b) = (a op b)(1 + delta) with
|delta| <= u; a sum or dot product of n terms, in any order, is exact for terms perturbed by relative errors of at
most gamma_n = n u / (1 - n u). Two platform facts, measured per jaxlib version, backend and dtype, not assumed
(ntkprefix.platform; re-measured by tests/test_features.py::test_platform_exp_and_log_are_within_the_stated_accuracy):
XLA's exp has relative error at most k_exp u, so an exp counts as k_exp roundings (exp_roundings below), its log
absolute error at most c_log u (|log x| + 1) (log_coefficient below). numpy's float64 exp, used by the numpy
references, counts as NUMPY_EXP_ROUNDINGS, measured the same way (test_numpy_exp_is_within_the_stated_accuracy); numpy's
power by an integer is assumed accurate to 2u (libm's pow, documented below 1 ulp; checked by the same test). LAPACK's symmetric eigensolver is backward stable: the computed eigenvalues are those of A + E with
||E||_2 <= p(N) u ||A||_2; we take p(N) = N, the usual statement of "a modest function of N" (LAPACK Users' Guide,
section 4.7). Nothing here is tuned to make a test pass: every factor is written out with where it comes from.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ntkprefix import model, platform


def unit_roundoff(dtype) -> float:
    return float(np.finfo(np.dtype(dtype)).eps) / 2


def gamma(n: float, u: float) -> float:
    """gamma_n = n u / (1 - n u) (inf when n u >= 1)."""
    return n * u / (1 - n * u) if n * u < 1 else math.inf


def exp_roundings(u: float) -> int:
    """k_exp of the running XLA for the dtype of unit roundoff u (2^-53 or 2^-24): one jnp.exp counts as k_exp
    roundings (measured: ntkprefix.platform)."""
    return platform.exp_roundings(platform.dtype_for_unit_roundoff(u))


def log_coefficient(u: float) -> int:
    """c_log of the running XLA for the dtype of unit roundoff u: |jnp.log error| <= c_log u (|log x| + 1)."""
    return platform.log_coefficient(platform.dtype_for_unit_roundoff(u))


#: numpy's float64 exp (the numpy references' exp) counts as this many roundings: measured 1.002 u (numpy 1.26.4 and
#: 2.4.6, x86_64, ntkprefix.platform.measure_exp_error(np.exp), 1.3 million points), so 2 by platform.roundings_for;
#: re-measured by tests/test_features.py::test_numpy_exp_is_within_the_stated_accuracy.
NUMPY_EXP_ROUNDINGS = 2


# ---- the NTK of Section 3 ---------------------------------------------------------------------------------------


def ntk_rounding_bound(W, X, a, *, output_scale=None) -> np.ndarray:
    """E with |H_computed - H| <= E entrywise, for kernels.ntk_matrix (either method) and kernels.ntk_matrix_autodiff.

    Notation: c = c_m, z = X W (n, m), S the exact softmax, sigma_ij = sum_r S_r(x_i) S_r(x_j),
    gbar_ij = sum_k |x_ik x_jk| >= |<x_i, x_j>|, and |G[i,l,r]| <= 2 c S_r(x_i) (|a - abar| <= 2).

    1. Softmax. z_r has absolute error <= gamma_d ||x|| ||w_r||; z_r - max z is rounded once (<= 2u max|z|); so every
       exponent is off by at most zeta = 2 gamma_d max||x|| max||w|| + 2u max|z| (1 + u); exp adds k_exp roundings
       (the measured count of the running XLA, float64), the sum of m terms gamma_m, the division u:
       S^_r = S_r (1 + theta_r), |theta_r| <= theta = e^{2 zeta} (1 + gamma_{m+6+k_exp}) - 1 (5 to spare, the m + 8
       of k_exp = 2).
    2. abar_l = sum_r S_r a_lr: |abar^ - abar| <= alpha = theta + gamma_m (1 + theta).
    3. G = (c S)(a - abar): three roundings, so |G^ - G| <= 2 c S_r eps_G,
       eps_G = ((1 + theta)(1 + gamma_3) - 1) + (1 + theta)(1 + gamma_3) alpha / 2.
       The reverse-mode Jacobian forms the same quantity, S c a - S (sum S c a), with the same count.
    4. Dense: H = (1/m) sum_r gram_ij G_i G_j; the gram has error gamma_d gbar, each of the m products two roundings,
       the sum gamma_m, the division u: |H^ - H| <= (4 c^2/m) gbar sigma eps_dense,
       eps_dense = (1 + gamma_d)(1 + eps_G)^2 (1 + gamma_{m+3}) - 1.
    5. Sign patterns: M_p = sum_{r in p} S_i S_j (relative beta = (1 + theta)^2 (1 + gamma_{m+1}) - 1, M_p >= 0), sums
       over P <= 2^d_out patterns (beta' = (1 + beta)(1 + gamma_P) - 1, relative to M0 = sigma), then
       inner = Q - abar_j R - abar_i R + abar_i abar_j M0 with |Q|, |R| <= M0, |abar| <= 1 + alpha:
       |inner^ - inner| <= M0 B, B = 3 beta' + 2 alpha (1 + beta') + (1 + alpha)^2 (1 + beta') - 1
       + 4 gamma_5 (1 + alpha)^2 (1 + beta'); times c^2/m and the gram (gamma_{d+5}, |inner| <= 4 M0):
       |H^ - H| <= (c^2/m) gbar sigma ((1 + gamma_{d+5}) B + 4 gamma_{d+5}).
    6. Autodiff: J = G x (one rounding), H = J J^T / m sums d m terms: |H^ - H| <= (4 c^2/m) gbar sigma eps_auto,
       eps_auto = (1 + eps_G)^2 (1 + gamma_{d m + 3}) - 1.
    sigma is bounded from above from the computed softmax: sigma <= sum S^ S^ (1 + gamma_{m+1}) / (1 - theta)^2.
    Returns the largest of the three bounds, as an (n d_out, n d_out) array.
    """
    ntk = _NtkRounding.of(W, X, a, output_scale)
    d, m, d_out, u, theta = ntk.d, ntk.m, ntk.d_out, ntk.u, ntk.theta
    alpha = theta + gamma(m, u) * (1 + theta)
    eps_G = ((1 + theta) * (1 + gamma(3, u)) - 1) + (1 + theta) * (1 + gamma(3, u)) * alpha / 2
    eps_dense = (1 + gamma(d, u)) * (1 + eps_G) ** 2 * (1 + gamma(m + 3, u)) - 1
    beta = (1 + theta) ** 2 * (1 + gamma(m + 1, u)) - 1
    beta_p = (1 + beta) * (1 + gamma(min(2**d_out, m), u)) - 1
    B = 3 * beta_p + 2 * alpha * (1 + beta_p) + (1 + alpha) ** 2 * (1 + beta_p) - 1 + 4 * gamma(5, u) * (1 + alpha) ** 2 * (1 + beta_p)
    patterns = ((1 + gamma(d + 5, u)) * B + 4 * gamma(d + 5, u)) / 4
    eps_auto = (1 + eps_G) ** 2 * (1 + gamma(d * m + 3, u)) - 1
    return ntk.absolute(max(eps_dense, patterns, eps_auto))


@dataclasses.dataclass(frozen=True)
class _NtkRounding:
    """What both NTK bounds share: the shapes, c = c_m, u (float64), step 1's softmax error theta, sigma and gbar, and
    the scale (4 c^2 / m) gbar sigma that turns a relative error into the absolute bound per (i, l), (j, l') entry."""

    d: int
    m: int
    d_out: int
    c: float
    u: float
    theta: float
    sigma: np.ndarray
    gbar: np.ndarray

    @classmethod
    def of(cls, W, X, a, output_scale) -> "_NtkRounding":
        W, X, a = (np.asarray(v, np.float64) for v in (W, X, a))
        d, m = W.shape
        u = 2.0**-53
        theta, sigma, gbar = _softmax_error(W, X, u)
        return cls(d, m, a.shape[0], float(m) if output_scale is None else float(output_scale), u, theta, sigma, gbar)

    def absolute(self, relative_error: float) -> np.ndarray:
        E = (4 * self.c**2 / self.m) * self.gbar * self.sigma * relative_error
        return np.kron(E, np.ones((self.d_out, self.d_out)))


def _softmax_error(W: np.ndarray, X: np.ndarray, u: float) -> tuple[float, np.ndarray, np.ndarray]:
    """(theta, sigma, gbar) of step 1 of ntk_rounding_bound: the computed softmax is S_r (1 + theta_r) with
    |theta_r| <= theta; sigma >= sum_r S_r(x_i) S_r(x_j) exactly (from the computed softmax); gbar_ij = sum_k |x_ik x_jk|."""
    d, m = W.shape
    z = X @ W
    zeta = 2 * gamma(d, u) * np.linalg.norm(X, axis=1).max() * np.linalg.norm(W, axis=0).max() + 2 * u * np.abs(z).max() * (1 + u)
    theta = math.exp(2 * zeta) * (1 + gamma(m + 6 + exp_roundings(u), u)) - 1
    S = np.asarray(model.prefix_softmax(W, X), np.float64)
    sigma = S @ S.T * (1 + gamma(m + 1, u)) / (1 - theta) ** 2
    return theta, sigma, np.abs(X) @ np.abs(X).T


def ntk_reference_rounding_bound(W, X, a, *, output_scale=None) -> np.ndarray:
    """E with |Theta_computed / m - H| <= E entrywise, Theta_computed the empirical NTK that neural-tangents returns
    (any of its four implementations) for the forward of reference/nt_ntk.py, c_m <a_l, jax.nn.softmax(W^T x)>, in
    float64; H the exact NTK. (n d_out, n d_out), rows (i, l).

    Model. Whatever the implementation, Theta is computed from the computed softmax values by a program of +, -, x
    (a Jacobian contracted over the d m parameters; or a VJP followed by a JVP; or the same factors contracted in
    another order, STRUCTURED_DERIVATIVES, whose order was not traced op by op: every sum it forms is over the
    parameters, at most d m terms, or over the m keys inside the forward). So each entry is a sum of monomials in
    c, x_i, x_j, a and at most four softmax factors (two per side: S_r and the weighted mean sum_s S_s (.)), and
    (Higham, Lemma 3.1 applied to each monomial) |Theta^ - Theta| <= ((1 + theta)^4 (1 + gamma_K) - 1) Theta_abs, where
    theta is the softmax's relative error (step 1 of ntk_rounding_bound: the same exp(z - max z) / sum), K the
    longest chain of roundings a monomial passes through, and Theta_abs the same program on absolute values.
    * Theta_abs <= 4 c^2 gbar_ij sigma_ij: a derivative dF_l(x)/dw_r = c S_r (a_lr - sum_s S_s a_ls) x has absolute
      program 2 c S_r |x|, so the contraction is at most sum_r 4 c^2 S_r(x_i) S_r(x_j) gbar_ij; the JVP of a VJP,
      c sum_r a_lr S_r(x_i) (dz_r - sum_s S_s(x_i) dz_s) with |dz_r| <= 2 c S_r(x_j) gbar_ij, is at most
      c (2 c gbar sigma + 2 c gbar sigma), the same.
    * K: the derivative factor is m + 5 roundings deep (the weighted mean over m, the subtraction, the products by
      S_r, c and x); the contraction over d m parameters adds d m + 1 (JACOBIAN_CONTRACTION: d m + m + 6); the JVP
      adds d + 1 (dz), m + 1 (the mean), 3 (subtraction and two products), m + 1 (the sum over r and c)
      (NTK_VECTOR_PRODUCTS: 3 m + d + 11). K = d m + 3 m + d + 16 bounds both, with 5 roundings to spare for the
      extra products another order may form (the softmax's JVP rule or its derivative through exp and the normaliser).
    * The division by m: one more rounding, gamma_{K + 1}.
    """
    ntk = _NtkRounding.of(W, X, a, output_scale)
    d, m, u, theta = ntk.d, ntk.m, ntk.u, ntk.theta
    K = d * m + 3 * m + d + 16
    return ntk.absolute((1 + theta) ** 4 * (1 + gamma(K + 1, u)) - 1)


def eigenvalue_allowance(H: np.ndarray) -> float:
    """p(N) u ||H||_2 with p(N) = N: how far eigvalsh's eigenvalues may be from those of the matrix it was given."""
    return H.shape[0] * 2.0**-53 * float(np.linalg.norm(H, 2)) * (1 + gamma(H.shape[0] ** 2, 2.0**-53))


def frobenius_norm_upper(x: np.ndarray) -> float:
    """An upper bound of the exact ||x||_F from the computed one: the sum of squares has relative error gamma_{N+1}."""
    return float(np.linalg.norm(x)) * (1 + gamma(x.size + 2, 2.0**-53))


# ---- NTK-Attention with ELU+1 features, float32 against float64 -------------------------------------------------


def elu_ntk_attention_rounding(Q, K, V, Z, k, *, d: int, causal: bool, u: float, inputs_rounded: bool) -> float:
    """Bound on |T_computed - T| for ntk_attention with the ELU+1 map and given (Z, k), computed with unit roundoff u
    (inputs rounded to that precision first when ``inputs_rounded``); T is the exact formula on the float64 inputs.

    With phi >= 0 and k > 0 every term of phi(q)^T k is positive, and |phi(q)^T Z| <= Vz phi(q)^T k with
    Vz = max_rho |Z_rho| / k_rho: T is a weighted average of the rows of V and of a prefix value bounded by Vz, so
    with Vmax = max(max|V|, Vz) the lemma of ntkprefix.bounds.rounding_allowance applies: if every term of numerator and
    denominator is off by a relative factor at most eta, the output moves by at most 2 eta Vmax / (1 - eta), and the
    final division adds 2 u Vmax. The factors, for one row:
    * scores: s_j = <q, k_j>/sqrt(d): gamma_{d+3} A_j, plus 2u A_j from rounding q and k (A_j = sum_i |q_i k_ji|/sqrt(d));
    * the shift: u |s_j - M| for an input weight; for the prefix weight, log mu (c_log u (|log mu| + 1), c_log the
      measured log coefficient of the running XLA for u's dtype) and u |log mu - M|; all at most
      u ((c_log + 1) Lambda + c_log) with Lambda = 2 S_all + |log mu| + 1 bounding |s_j - M|, |log mu - M| and
      |log mu| (for c_log = 2: u (3 Lambda + 2));
    * exp: k_exp roundings (measured, for u's dtype); sums over L input keys and r features, products and the
      normalisation by mu: gamma_{L + r + 6 + k_exp};
    * phi(q): relative error of the map itself, k_exp u + 2u (1 + 2^-9) + (u y)^2 (ntkprefix/features.py, checked by
      tests/test_features.py; the log-scaled form used by ntk_attention has the same bound), plus the rounding of q,
      which moves exp(y) by |y| u: eps_phi = u (|y| + k_exp + 2 + 2^-8) + (u y)^2 with y = max|q| / d^(1/4) (|y| u
      only when the inputs are rounded);
    * Z, k, V rounded (when the inputs are rounded): u each.
    eta = e^{xi} (1 + gamma_{L+r+6+k_exp}) (1 + eps_phi) (1 + 3u) - 1 with
    xi = (gamma_{d+3} + 2u) S_all + u ((c_log + 1) Lambda + c_log).
    """
    Q, K, V, Z, k = (np.asarray(x, np.float64) for x in (Q, K, V, Z, k))
    L = Q.shape[0]
    r = k.shape[0]
    assert np.all(k > 0)
    s_abs = (np.abs(Q) @ np.abs(K).T) / math.sqrt(d)
    if causal:
        s_abs = np.where(np.tril(np.ones((L, L), bool)), s_abs, 0.0)
    S_all = float(s_abs.max())
    phi_q = np.where(Q > 0, Q / d**0.25 + 1, np.exp(np.minimum(Q, 0) / d**0.25))
    w = phi_q @ k
    mu = np.maximum(w, np.abs(phi_q @ Z).max(axis=1))
    log_mu = float(np.abs(np.log(mu)).max())
    Lam = 2 * S_all + log_mu + 1
    y = float(np.abs(Q).max()) / d**0.25
    rounded = 1.0 if inputs_rounded else 0.0
    k_exp, c_log = exp_roundings(u), log_coefficient(u)
    eps_phi = u * (rounded * y + k_exp + 2 + 2.0**-8) + (u * y) ** 2
    xi = (gamma(d + 3, u) + 2 * u * rounded) * S_all + u * ((c_log + 1) * Lam + c_log)
    eta = math.exp(xi) * (1 + gamma(L + r + 6 + k_exp, u)) * (1 + eps_phi) * (1 + 3 * u * rounded) - 1
    Vz = float(np.max(np.abs(Z) / k[:, None])) * (1 + 2.0**-52)
    v_max = max(float(np.abs(V).max()), Vz)
    if eta >= 1:
        return math.inf
    return 2 * eta * v_max / (1 - eta) + 2 * u * v_max


# ---- the Taylor-replaced attention in numpy, the reference of the exact-reduction property -------------------------


def numpy_taylor_attention_rounding(Q, K, V, K_P, V_P, *, g: int) -> float:
    """Bound on |expected - T| for the float64 numpy evaluation of prefix attention with exp replaced by T_g on the
    prefix scores (tests/test_properties.py), T the exact value, for even g.

    * sp = Q K_P^T / sqrt(d): |sp^ - s| <= gamma_{d+2} A (A = max_j sum_i |q_i k_ji| / sqrt(d)).
    * T_g(sp^) = sum_{i<=g} sp^i / i!: numpy's power accurate to 2u (libm's pow; checked by
      tests/test_features.py::test_numpy_exp_is_within_the_stated_accuracy), the
      division by the exact i! and the sum of g + 1 terms: |T_g^ - T_g(s)| <= e^{A'} (gamma_{d+2} A + gamma_{g+4}),
      A' = A (1 + gamma_{d+2}), because sum_i i A'^{i-1} / i! <= e^{A'} bounds the propagated score error.
      For even g, T_g(s) >= min(e^s, 1) >= e^{-A}, so that is a relative error eps_p <= e^{2A'} (...).
    * exp of the input scores (numpy's exp, NUMPY_EXP_ROUNDINGS = k roundings): e^{gamma_{d+2} A_in} (1 + k u) - 1;
      the two sums of L + m terms and the division.
    Then the lemma of ntkprefix.bounds.rounding_allowance: 2 eta V / (1 - eta) + 2 u V.
    """
    assert g % 2 == 0
    Q, K, V, K_P, V_P = (np.asarray(x, np.float64) for x in (Q, K, V, K_P, V_P))
    L, d = Q.shape
    m = K_P.shape[0]
    u = 2.0**-53
    A = float((np.abs(Q) @ np.abs(K_P).T).max()) / math.sqrt(d)
    A_in = float((np.abs(Q) @ np.abs(K).T).max()) / math.sqrt(d)
    A1 = A * (1 + gamma(d + 2, u))
    eps_p = math.exp(2 * A1) * (gamma(d + 2, u) * A + gamma(g + 4, u))
    eps_in = math.exp(gamma(d + 2, u) * A_in) * (1 + NUMPY_EXP_ROUNDINGS * u) - 1
    eta = (1 + max(eps_p, eps_in)) * (1 + gamma(L + m + 2, u)) - 1
    v_max = max(float(np.abs(V).max()), float(np.abs(V_P).max()))
    return 2 * eta * v_max / (1 - eta) + 2 * u * v_max if eta < 1 else math.inf
