"""Calibration of the checks' instruments: every closed form or fast path a check relies on, compared at run time with
an independent route written here from the formulas (dense softmax, the Taylor kernel summed directly, autodiff of
a forward pass written out again), on the check's first instance.

The independent routes deliberately share no code with ``ntkprefix`` beyond array creation: a fault planted in the
library (a wrong temperature, feature weight, gradient factor or normalisation) makes the two routes disagree, and the
check reports "instrument error" instead of a verdict on the claim.

Tolerances are first-order floating-point bounds: sums of N terms computed in two orders differ relatively by at
most about 2 gamma_N = 2 N u / (1 - N u) times the condition number sum|terms| / |sum|. Each calibration states
the N and the condition factor it allows; planted faults give discrepancies of order 1e-3 or more.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from verify.verdict import Calibration, calibration

__all__ = ["dense_prefix_attention", "taylor_kernel_attention", "calibrate_attention", "calibrate_taylor_remainder",
           "calibrate_section3_model", "calibrate_initial_variance", "calibrate_section3_shapes", "gamma"]

UNIT_ROUNDOFF = {jnp.dtype(jnp.float64): 2.0**-53, jnp.dtype(jnp.float32): 2.0**-24}


def gamma(n_terms: int, dtype=jnp.float64) -> float:
    """Higham's gamma_N = N u / (1 - N u)."""
    u = UNIT_ROUNDOFF[jnp.dtype(dtype)]
    return n_terms * u / (1 - n_terms * u)


def _relative_max(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _relative_frobenius(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def softmax_rounding(Q, keys, values, reference, *, dtype=jnp.float64) -> float:
    """The derived tolerance, relative to max|reference|, for two floating-point routes to the same softmax attention
    softmax(Q keys^T / sqrt d) values (every key visible: a bound for any mask), in ``dtype``. Per route: each score
    is within delta = gamma_{d+2} S_abs of its exact value (a d-term dot product, the scaling and the row's shift;
    S_abs = max |q| |k| / sqrt d), which moves a softmax average by at most 2 delta max|V| to first order; the two
    positive N-term sums and the division add (2 gamma_N + u) max|V| <= 2 gamma_{N+1} max|V| (N keys). Two routes:
    (4 gamma_{N+1} + 4 gamma_{d+2} S_abs) max|V| / max|reference|."""
    Q, keys, values = (np.abs(np.asarray(x, np.float64)) for x in (Q, keys, values))
    d, n = Q.shape[1], keys.shape[0]
    s_abs = float(np.max(Q @ keys.T)) / math.sqrt(d)
    scale = float(np.max(values)) / max(float(np.max(np.abs(np.asarray(reference, np.float64)))), 1e-300)
    return (4 * gamma(n + 1, dtype) + 4 * gamma(d + 2, dtype) * s_abs) * scale


def dense_prefix_attention(Q, K, V, K_P, V_P, *, causal: bool = False):
    """softmax([Q K_P^T, Q K^T] / sqrt(d)) [V_P; V], every score materialised (the reference route)."""
    L, d = Q.shape
    scores = jnp.concatenate([Q @ K_P.T, Q @ K.T], axis=1) / math.sqrt(d)
    if causal:
        mask = jnp.concatenate([jnp.ones((L, K_P.shape[0]), bool), jnp.tril(jnp.ones((L, L), bool))], axis=1)
        scores = jnp.where(mask, scores, -jnp.inf)
    return jax.nn.softmax(scores, axis=1) @ jnp.concatenate([V_P, V], axis=0)


def taylor_kernel_attention(Q, K, V, K_P, V_P, g: int, *, causal: bool = False):
    """(exp(S_X) V + T_g(S_P) V_P) / (exp(S_X) 1 + T_g(S_P) 1) with T_g(s) = sum_{j<=g} s^j / j!, summed directly.

    What Algorithm 2 with the degree-g Taylor map and the exact reduction must equal, written without feature maps.
    """
    L, d = Q.shape
    s_p = Q @ K_P.T / math.sqrt(d)
    w_p = sum(s_p**j / math.factorial(j) for j in range(g + 1))
    s_x = Q @ K.T / math.sqrt(d)
    w_x = jnp.exp(s_x) * (jnp.tril(jnp.ones((L, L))) if causal else 1.0)
    return (w_x @ V + w_p @ V_P) / (w_x.sum(axis=1) + w_p.sum(axis=1))[:, None]


def calibrate_attention(inst, *, degree: int, causal: tuple[bool, ...] = (False, True)) -> list[Calibration]:
    """Algorithm 1 against the dense softmax, and Algorithm 2 with the Taylor map of ``degree`` and the streamed
    reduction against :func:`taylor_kernel_attention`, on one float64 instance: with its whole prefix streamed in
    several chunks, the last one partial (for prefix attention's running log-sum-exp as for the reduction; the prefix
    term dominates the rows) and with its first two prefix rows only (the input scores dominate), so that both regimes
    of each algorithm's row scaling are exercised; with the input keys unmasked and causally masked (``causal``: the
    masks tried; the worst discrepancy over all of them is the calibration's)."""
    import ntkprefix as nk

    Q, K, V, K_P, V_P = (jnp.asarray(x, jnp.float64) for x in inst)
    m, L, d = K_P.shape[0], Q.shape[0], Q.shape[1]
    phi = nk.taylor_feature_map(d, degree)
    runs, taylor = [], 0.0  # runs: (relative error, its own derived tolerance) of prefix attention per run
    for rows in (m, min(2, m)):
        K_r, V_r = K_P[:rows], V_P[:rows]
        chunk = max(1, rows // 3)
        chunk -= 1 if chunk > 1 and rows % chunk == 0 else 0  # the last chunk partial (200 rows: 66, 66, 66, 2)
        for mask in causal:
            dense = dense_prefix_attention(Q, K, V, K_r, V_r, causal=mask)
            runs.append((_relative_max(nk.prefix_attention(Q, K, V, K_r, V_r, causal=mask, chunk_size=chunk), dense),
                         softmax_rounding(Q, jnp.concatenate([K_r, K]), jnp.concatenate([V_r, V]), dense)))
            Z, k = nk.reduce_prefix(K_r, V_r, phi, chunk_size=chunk)
            taylor = max(taylor, _relative_max(nk.ntk_attention(Q, K, V, Z, k, phi, causal=mask),
                                               taylor_kernel_attention(Q, K, V, K_r, V_r, degree, causal=mask)))
    # Each run's error against its own tolerance, expressed at the strictest run's: the check is exactly per run.
    exact_tolerance = min(t for _, t in runs)
    exact = max(e * exact_tolerance / t for e, t in runs)
    n = m + L
    # The monomial expansion sums r = C(d+g, g) products whose absolute sum is T_g(|q||k'|/sqrt d) <= e^{S_abs}
    # against e^{-S} <= T_g(s): condition e^{2 S_abs} (bounds.rounding_allowance uses the same kappa).
    s_abs = float(jnp.max(jnp.abs(Q) @ jnp.abs(K_P).T) / math.sqrt(d))
    n_terms = m + L + phi.r + 2 * degree + d
    kappa = math.exp(2 * s_abs)
    return [
        calibration(
            "prefix_attention_equals_dense_softmax",
            f"ntkprefix.prefix_attention (streamed in chunks, the last partial; running log-sum-exp) = dense softmax "
            f"over all scores (m = {m} and 2; causal {' and '.join(map(str, causal))})",
            exact, exact_tolerance,
            "softmax_rounding: (4 gamma_{N+1} + 4 gamma_{d+2} S_abs) max|V| / max|out| (N keys; the score rounding "
            "and the two positive sums and division, both routes), the strictest over the runs compared; each "
            "run's error is scaled by that over its own tolerance",
        ),
        calibration(
            "ntk_attention_with_reduction_equals_taylor_kernel",
            f"ntk_attention(Q, K, V, reduce_prefix(K_P, V_P, phi_g)) with the Taylor map g = {degree} (r = {phi.r}), "
            f"chunked, the last chunk partial = the Taylor-kernel attention summed directly (m = {m} and 2; causal "
            f"{' and '.join(map(str, causal))})",
            taylor, 8 * gamma(n_terms) * kappa,
            f"8 gamma_N kappa, N = m + L + r + 2g + d = {n_terms}, kappa = e^(2 S_abs) = {kappa:.3g}",
        ),
    ]


def _decimal_relative_remainder(s, g: int, digits: int = 60):
    """|exp(s) - T_g(s)| / exp(s) in decimal arithmetic with ``digits`` significant digits (no cancellation issue)."""
    import decimal

    with decimal.localcontext() as ctx:
        ctx.prec = digits
        x = decimal.Decimal(repr(float(s)))
        term, taylor = decimal.Decimal(1), decimal.Decimal(1)
        for j in range(1, g + 1):
            term = term * x / j
            taylor += term
        e = x.exp()
        return abs(e - taylor) / e


def calibrate_taylor_remainder(score_ranges, degrees) -> list[Calibration]:
    """ntkprefix.bounds.taylor_relative_error(S, g) against max(|e^s - T_g(s)| / e^s at s = -S and s = +S), both ends
    evaluated in 60-digit decimal arithmetic (the remainder is monotone in |s| on each side of 0, so the supremum over
    [-S, S] is at one end; which end is not assumed)."""
    from ntkprefix import bounds

    worst = 0.0
    for S in score_ranges:
        for g in degrees:
            exact = float(max(_decimal_relative_remainder(-S, g), _decimal_relative_remainder(S, g)))
            if exact > 0:
                worst = max(worst, abs(bounds.taylor_relative_error(S, g) - exact) / exact)
    return [calibration(
        "taylor_remainder_equals_decimal",
        f"bounds.taylor_relative_error(S, g) = max over s = +-S of |e^s - T_g(s)|/e^s in 60-digit decimals, "
        f"S in {sorted(set(round(float(x), 6) for x in score_ranges))}, g in {sorted(set(degrees))}",
        worst, 1e-9, "float64 log-space sum of at most 2S + 65 positive terms: relative error below 1e-12 here; a "
                     "factor error in the remainder gives 1e-1 or more")]


def _forward(W, X, a):
    """F(W, x_i)_l = m <a_l, softmax(W^T x_i)>, written out again (template output scale c_m = m)."""
    return W.shape[1] * jax.nn.softmax(X @ W, axis=-1) @ a.T


def calibrate_section3_model(W, X, Y, a) -> list[Calibration]:
    """The closed-form gradient (ntkprefix.model.loss_gradient) against jax.grad of the loss of a forward pass
    written here, and the closed-form NTK (ntkprefix.kernels.ntk_matrix, both evaluations) against (1/m) J J^T with
    J from jax.jacobian of that forward pass."""
    from ntkprefix import kernels, model

    W, X, Y, a = (jnp.asarray(x, jnp.float64) for x in (W, X, Y, a))
    (d, m), n, d_out = W.shape, X.shape[0], a.shape[0]
    grad_auto = jax.grad(lambda W_: 0.5 * jnp.sum((_forward(W_, X, a) - Y) ** 2))(W)
    J = jax.jacobian(lambda W_: _forward(W_, X, a))(W).reshape(n * d_out, d * m)
    H_auto = J @ J.T / m
    n_terms = n * d_out * m + d
    # Softmax weights are positive; the centring a - <a, S> and the residual F - Y can cancel. Allow a condition
    # factor of 1e3 on top of the first-order bound (a planted fault gives a discrepancy of 1e-3 or more).
    tolerance = 1e3 * gamma(n_terms)
    reason = f"1e3 gamma_N, N = n d_out m + d = {n_terms} (condition of the centring a - <a,S> and of F - Y)"
    return [
        calibration("loss_gradient_equals_autodiff",
                    "model.loss_gradient (closed form) = jax.grad of 1/2 ||m softmax(X W) a^T - Y||^2 (forward written out)",
                    _relative_frobenius(model.loss_gradient(W, X, Y, a), grad_auto), tolerance, reason),
        calibration("ntk_dense_equals_jacobian",
                    "kernels.ntk_matrix(method='dense') = (1/m) J J^T, J = jax.jacobian of the forward written out",
                    _relative_frobenius(kernels.ntk_matrix(W, X, a, method="dense"), H_auto), tolerance, reason),
        calibration("ntk_sign_patterns_equals_jacobian",
                    "kernels.ntk_matrix(method='sign_patterns') = (1/m) J J^T",
                    _relative_frobenius(kernels.ntk_matrix(W, X, a, method="sign_patterns"), H_auto), tolerance, reason),
    ]


#: Non-degenerate initial scales at which the initialisation is calibrated: at sigma = 1 a wrong power of sigma
#: (sigma^2 for sigma, sigma^4 for sigma^2) would be invisible.
PROBE_SIGMAS = (0.5, 1.5)
#: The false-alarm probability of the initial-variance calibration per scale (chi-square quantiles).
VARIANCE_FALSE_ALARM = 1e-6


def calibrate_initial_variance(key, d: int, m: int, sigmas=PROBE_SIGMAS) -> list[Calibration]:
    """model.init_prefix_weights(key, d, m, sigma) against its law, w_r(0) ~ N(0, sigma^2 I_d) [template], at each
    sigma of ``sigmas`` (none of them 1).

    The mean square of the N = d m entries over sigma^2 is chi^2_N / N for a correct initialisation; the tolerance on
    |mean square / sigma^2 - 1| is the farther chi-square quantile at false-alarm probability 1e-6 (about
    5 sqrt(2 / N)). A variance sigma^4 instead of sigma^2 gives |sigma^2 - 1| = 0.75 at sigma = 0.5 and 1.25 at 1.5.
    """
    from scipy import stats

    from ntkprefix import model

    n = d * m
    low, high = stats.chi2.ppf([VARIANCE_FALSE_ALARM / 2, 1 - VARIANCE_FALSE_ALARM / 2], n) / n
    tolerance = float(max(1 - low, high - 1))
    out = []
    for sigma, k in zip(sigmas, jax.random.split(key, len(sigmas))):
        if sigma == 1:
            raise ValueError("calibrate the initial variance at sigma != 1: sigma = 1 hides a wrong power of sigma")
        W = np.asarray(model.init_prefix_weights(k, d, m, sigma), np.float64)
        out.append(calibration(
            f"initial_variance_sigma_{sigma:g}",
            f"mean square of the d m = {n} entries of model.init_prefix_weights at sigma = {sigma:g}, over sigma^2, is 1",
            abs(float(np.mean(W**2)) / sigma**2 - 1), tolerance,
            f"chi^2_N / N with N = {n}: two-sided quantiles at false-alarm probability {VARIANCE_FALSE_ALARM:g}"))
    return out


#: The shape of the non-degenerate Section 3 probe: n > d (X X^T singular), d_out > 1 (the blocks coupling outputs),
#: sigma != 1, m not a multiple of the sign-pattern grouping. A transposition, a missing Kronecker factor or a wrong
#: power of sigma that the checks' own instances (d_out = 1, n = d, sigma = 1) would hide shows here.
SHAPE_PROBE = {"n": 5, "d": 3, "d_out": 2, "m": 37, "sigma": 1.5}


def calibrate_section3_shapes(key) -> list[Calibration]:
    """:func:`calibrate_section3_model` (closed-form gradient and both NTK evaluations against autodiff of a forward pass
    written out again) on an instance of its own with the non-degenerate shape :data:`SHAPE_PROBE`, drawn through the
    library's sampling and initialisation, the calibrations named ``*_nondegenerate``."""
    import dataclasses

    from ntkprefix import model, sampling

    p = SHAPE_PROBE
    k_x, k_w, k_a = jax.random.split(key, 3)
    X, Y = sampling.section3_data(k_x, n=p["n"], d=p["d"], d_out=p["d_out"])
    W = model.init_prefix_weights(k_w, p["d"], p["m"], p["sigma"])
    a = model.random_signs(k_a, p["d_out"], p["m"])
    shape = ", ".join(f"{k} = {v}" for k, v in p.items())
    return [dataclasses.replace(c, name=f"{c.name}_nondegenerate", statement=f"{c.statement} ({shape})")
            for c in calibrate_section3_model(W, X, Y, a)]
