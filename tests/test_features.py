import decimal
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkprefix as nk
from ntkprefix import bounds


def taylor_poly(s, g):
    return sum(s**j / math.factorial(j) for j in range(g + 1))


@pytest.mark.parametrize("d,g", [(1, 0), (1, 5), (2, 3), (3, 4), (5, 2), (8, 3)])
def test_taylor_dimension_and_kernel_identity(d, g):
    phi = nk.taylor_feature_map(d, g)
    assert phi.r == math.comb(d + g, g)
    rng = np.random.default_rng(d * 10 + g)
    q, k = rng.uniform(-1.5, 1.5, (7, d)), rng.uniform(-1.5, 1.5, (11, d))
    fq, fk = phi(jnp.asarray(q)), phi(jnp.asarray(k))
    assert fq.shape == (7, phi.r)
    expected = taylor_poly(q @ k.T / math.sqrt(d), g)
    np.testing.assert_allclose(fq @ fk.T, expected, rtol=1e-13, atol=1e-13)


def test_taylor_g1_needs_d_plus_1_features():
    assert nk.taylor_feature_map(6, 1).r == 7


def test_elu_map_structure():
    phi = nk.elu_feature_map(4)
    assert phi.r == 4 and phi.sign_definite and not phi.covered_by_theorem_4_1
    assert not nk.taylor_feature_map(4, 1).sign_definite and nk.taylor_feature_map(4, 0).sign_definite


# ---- ELU+1 numerics ------------------------------------------------------------------------------------------------
#
# Tolerances below are derived in ntkprefix/features.py (comment above _elu_plus_one) from one platform fact,
# asserted by test_platform_exp_and_log_accuracy: XLA's exp has relative error <= 1 eps (eps = 2u, the spacing of
# floats at 1). The reference is the exact function evaluated in numpy's longdouble (64-bit significand, eps_ld =
# 2^-63) with k = d^(-1/4) from exact decimal arithmetic, so its own relative error is at most (|y| + 2) eps_ld.

LONGDOUBLE_EPS = float(np.finfo(np.longdouble).eps)
ELU_DIMENSIONS = (1, 2, 3, 4, 7, 16, 64, 100)


def _exact_scale(d):
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        k = 1 / decimal.Decimal(d).sqrt().sqrt()
        k_hi = float(k)
        return np.longdouble(k_hi) + np.longdouble(float(k - decimal.Decimal(k_hi)))


def elu_plus_one_reference(x, d):
    """phi(x) = k x + 1 (x > 0), exp(k x) (x <= 0) in longdouble; also returns y = k x."""
    y = np.asarray(x, np.longdouble) * _exact_scale(d)
    return np.where(y > 0, y + 1, np.exp(np.minimum(y, 0))), y


def _elu_grid(dtype):
    rng = np.random.default_rng(0)
    special = [0.0, -0.0, 1e-30, -1e-30, 1e-6, -1e-6, 1.0, -1.0, -10.0, -15.0, -20.0, -80.0, 80.0]
    return np.concatenate([np.linspace(-80, 80, 200_001), rng.uniform(-80, 80, 100_000), special]).astype(dtype)


def elu_relative_error_bound(y, dtype):
    """err_exp + 2u (1 + 2^-9) + (u y)^2 + reference error: at most 2 eps + O(u^2) (derivation in features.py)."""
    eps = float(np.finfo(dtype).eps)
    u = eps / 2
    return eps + 2 * u * (1 + 2.0**-9) + (u * np.abs(y)) ** 2 + (np.abs(y) + 2) * LONGDOUBLE_EPS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_plus_one_is_accurate_to_2_eps_on_minus_80_to_80(dtype):
    x = _elu_grid(dtype)
    for d in ELU_DIMENSIONS:
        x_d = np.concatenate([x, np.zeros((-x.size) % d, dtype)])  # every coordinate is the same map: fill rows of d
        ref, y = elu_plus_one_reference(x_d, d)
        out = np.asarray(nk.elu_feature_map(d)(jnp.asarray(x_d.reshape(-1, d))))
        assert out.dtype == dtype and out.shape == (x_d.size // d, d)
        rel = np.abs(out.reshape(-1).astype(np.longdouble) - ref) / ref
        bound = elu_relative_error_bound(y, dtype)
        worst = int(np.argmax(rel / bound))
        assert np.all(rel <= bound), (
            f"d={d}: relative error {float(rel[worst]):.3e} = {float(rel[worst]) / np.finfo(dtype).eps:.3f} eps "
            f"> bound {float(bound[worst]):.3e} at x={x_d[worst]}"
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_plus_one_is_accurate_wherever_the_result_is_normal(dtype):
    # Beyond [-80, 80]: y from log(smallest normal) to 0 (exp branch, including the range where r y_lo would be
    # subnormal) and y up to 1e30 (x + 1 branch), for d whose scale d^(-1/4) is not exact.
    info = np.finfo(dtype)
    rng = np.random.default_rng(6)
    y = np.concatenate([rng.uniform(math.log(float(info.tiny)) + 1e-3, 0, 100_000), 10.0 ** rng.uniform(-30, 30, 20_000)])
    for d in (2, 3, 7):
        x = (y * d**0.25).astype(dtype)
        x_d = np.concatenate([x, np.zeros((-x.size) % d, dtype)])
        ref, y_exact = elu_plus_one_reference(x_d, d)
        keep = ref >= float(info.tiny)  # results that are normal numbers
        out = np.asarray(nk.elu_feature_map(d)(jnp.asarray(x_d.reshape(-1, d)))).reshape(-1)
        rel = np.abs(out.astype(np.longdouble) - ref) / ref
        assert np.all(rel[keep] <= elu_relative_error_bound(y_exact, dtype)[keep]), f"d={d}: {float(rel[keep].max()):.3e}"


def test_elu_plus_one_no_longer_cancels_where_the_issue_measured_it():
    # issue 9: (exp(x) - 1) + 1 in float32 was off by 4e-4 at x = -10, 3% at -15 and 100% (exactly 0) at -20.
    x = np.array([[-10.0], [-15.0], [-20.0]], np.float32)
    out = np.asarray(nk.elu_feature_map(1)(x), np.float64)[:, 0]
    np.testing.assert_allclose(out, np.exp([-10.0, -15.0, -20.0]), rtol=float(elu_relative_error_bound(20.0, np.float32)))
    assert np.all(out > 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_plus_one_gradient_is_the_analytic_derivative(dtype):
    # dphi/dx = k (x > 0) and k exp(k x) (x <= 0); both equal k at 0. The gradient is fl(k) min(phi, 1) rounded
    # once: relative error <= the bound of phi plus u (k) plus u (the product), i.e. phi's bound + eps.
    x = _elu_grid(dtype)[::7]
    for d in (1, 3, 64):
        phi = nk.elu_feature_map(d)
        grad = jax.jit(jax.vmap(jax.grad(lambda t: phi(jnp.full((d,), t))[0])))
        out = np.asarray(grad(jnp.asarray(x)))
        assert out.dtype == dtype
        ref, y = elu_plus_one_reference(x, d)
        k = _exact_scale(d)
        exact = np.where(y > 0, k, k * ref)
        rel = np.abs(out.astype(np.longdouble) - exact) / exact
        bound = elu_relative_error_bound(y, dtype) + np.finfo(dtype).eps
        assert np.all(rel <= bound), f"d={d}: gradient off by {float(rel.max()):.3e}"
        # at 0 exactly k rounded to the dtype, from either side's formula
        at_zero = float(jax.grad(lambda t: phi(jnp.full((d,), t, dtype))[0])(dtype(0.0)))
        assert at_zero == float(dtype(k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scaled_elu_features_carry_the_scale_of_tiny_rows_in_log_space(dtype):
    # phi(x) = phi_scaled e^c with c = min(max_i y_i, 0): rows far below the smallest normal number keep their
    # features. phi_scaled has the accuracy of phi (bound of elu_relative_error_bound) plus one rounding (u).
    rng = np.random.default_rng(5)
    d = 3
    x = np.concatenate([rng.uniform(-400, -100, (50, d)), rng.uniform(-80, 80, (50, d)), rng.uniform(-3, 0, (20, d))])
    x = x.astype(dtype)
    phi = nk.elu_feature_map(d)
    scaled, c = (np.asarray(v) for v in phi.scaled(jnp.asarray(x)))
    assert scaled.dtype == dtype and c.shape == (x.shape[0],)
    ref, y = elu_plus_one_reference(x, d)
    c_l = c.astype(np.longdouble)[:, None]
    expected = np.where(y > 0, ref, np.exp(y - c_l))  # phi e^{-c}; c = 0 on rows with a positive entry
    assert np.all(c <= 0) and np.all(c[(x > 0).any(axis=1)] == 0)
    assert np.all(scaled.max(axis=1) >= 0.5)  # the largest feature of every row is representable, none flushed
    keep = expected >= float(np.finfo(dtype).tiny)  # features far below their row's largest may be subnormal or 0
    rel = np.abs(scaled.astype(np.longdouble) - expected) / expected
    assert np.all((rel <= elu_relative_error_bound(y - c_l, dtype) + np.finfo(dtype).eps / 2) | ~keep)
    # its derivative: e^{-c} dphi/dx (c carries no gradient)
    tangent = np.asarray(jax.jvp(lambda v: phi.scaled(v)[0], (jnp.asarray(x),), (jnp.ones_like(jnp.asarray(x)),))[1])
    k = _exact_scale(d)
    exact = np.where(y > 0, k * np.exp(-c_l), k * expected)
    keep = exact >= float(np.finfo(dtype).tiny)
    rel = np.abs(tangent.astype(np.longdouble) - exact) / exact
    assert np.all((rel <= elu_relative_error_bound(y - c_l, dtype) + 2 * np.finfo(dtype).eps) | ~keep)


def test_taylor_features_are_not_rescaled():
    phi = nk.taylor_feature_map(2, 3)
    x = jnp.array([[0.5, -1.0], [-200.0, 3.0]])
    scaled, c = phi.scaled(x)
    np.testing.assert_array_equal(scaled, phi(x))
    np.testing.assert_array_equal(c, 0.0)


def test_elu_plus_one_second_derivative():
    # d2phi/dx2 = k^2 exp(k x) for x < 0 and 0 for x > 0.
    phi = nk.elu_feature_map(4)
    second = jax.grad(jax.grad(lambda t: phi(jnp.full((4,), t))[0]))
    k = 4**-0.25
    for t in (-3.0, -0.5):
        np.testing.assert_allclose(float(second(t)), k**2 * math.exp(k * t), rtol=4 * np.finfo(np.float64).eps)
    assert float(second(2.0)) == 0.0


@pytest.mark.parametrize("dtype,low,high", [(np.float32, -87.0, 88.0), (np.float64, -708.0, 709.0)])
def test_platform_exp_and_log_accuracy(dtype, low, high):
    # The platform facts the rounding bounds of this project rest on (ntkprefix/bounds.py, features.py):
    # exp has relative error <= 1 eps; log has absolute error <= eps (|log x| + 1). Measured, not derived: XLA's CPU
    # exp is a polynomial approximation in float32 (max 0.70 eps here) and libm's in float64 (0.50 eps).
    rng = np.random.default_rng(1)
    eps = float(np.finfo(dtype).eps)
    x = np.concatenate([rng.uniform(low, high, 1_000_000), rng.uniform(-1, 1, 200_000), np.linspace(low, high, 100_001)]).astype(dtype)
    out = np.asarray(jnp.exp(jnp.asarray(x))).astype(np.longdouble)
    ref = np.exp(x.astype(np.longdouble))
    assert float(np.max(np.abs(out - ref) / ref)) <= eps
    z = np.concatenate([np.exp(rng.uniform(low, high, 1_000_000)), rng.uniform(0.5, 2.0, 200_000)]).astype(dtype)
    z = z[(z >= np.finfo(dtype).tiny) & np.isfinite(z)]
    lz = np.asarray(jnp.log(jnp.asarray(z))).astype(np.longdouble)
    lref = np.log(z.astype(np.longdouble))
    assert np.all(np.abs(lz - lref) <= eps * (np.abs(lref) + 1))


def test_feature_map_for_another_d_raises_with_shapes():
    phi = nk.taylor_feature_map(3, 2)
    with pytest.raises(ValueError, match=r"built for d=3.*\(5, 4\)"):
        phi(jnp.ones((5, 4)))


@pytest.mark.parametrize("bad", [-1, 1.5])
def test_bad_degree_raises(bad):
    with pytest.raises(ValueError, match="degree g must be an integer >= 0"):
        nk.taylor_feature_map(3, bad)


def test_bad_dimension_raises():
    with pytest.raises(ValueError, match="d must be an integer >= 1"):
        nk.taylor_feature_map(0, 2)
    with pytest.raises(ValueError, match="d must be an integer >= 1"):
        nk.elu_feature_map(0)


@pytest.mark.parametrize("S,eps", [(0.5, 1e-3), (2.0, 1e-6), (4.0, 1e-10), (0.0, 0.5)])
def test_taylor_degree_is_the_smallest_that_reaches_eps(S, eps):
    g = nk.taylor_degree(S, eps)
    assert bounds.taylor_relative_error(S, g) <= eps
    if g > 0:
        assert bounds.taylor_relative_error(S, g - 1) > eps


def test_taylor_degree_grows_with_accuracy_and_range():
    assert nk.taylor_degree(1.0, 1e-3) < nk.taylor_degree(1.0, 1e-9) < nk.taylor_degree(3.0, 1e-9)


def test_taylor_degree_bad_input():
    with pytest.raises(ValueError, match=r"eps must lie in \(0, 1\)"):
        nk.taylor_degree(1.0, 1.0)
    with pytest.raises(ValueError, match="score range S must be a real number, got NaN"):
        nk.taylor_degree(float("nan"), 0.1)
    with pytest.raises(ValueError, match="score range S must be finite"):
        nk.taylor_degree(float("inf"), 0.1)


def test_as23_degree_growth_matches_taylor_degree_in_order():
    # Both grow like log(1/eps) / log log(1/eps) for fixed B; their ratio stays within a constant factor.
    ratios = [nk.taylor_degree(2.0, 10.0**-k) / nk.as23_degree(2.0, 10.0**-k) for k in (5, 10, 20, 40, 80)]
    assert max(ratios) / min(ratios) < 2.0
    assert nk.as23_degree(5.0, 0.5) == 5.0  # log(1/eps) small: the formula reduces to B


def test_parameter_counts():
    assert nk.parameter_counts(m=1024, d=32, r=32) == {"prefix": 32768, "ntk_attention": 32 * 32 + 32}
    with pytest.raises(ValueError):
        nk.parameter_counts(m=0, d=3, r=3)
