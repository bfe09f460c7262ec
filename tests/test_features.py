import decimal
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkprefix as nk
from ntkprefix import bounds, platform


def taylor_poly(s, g):
    return sum(s**j / math.factorial(j) for j in range(g + 1))


# (4, 8), (4, 9): the checks' own d and degrees; with d >= 4 and g >= 5 there are monomials of one degree and one
# parity pattern with different weights (x1^3 x2 x3 x4, x1 x2^3 x3 x4 at g = 8), which only a point off the corners
# of the box tells apart (the mutation runner's taylor_weights_same_parity_swapped)
@pytest.mark.parametrize("d,g", [(1, 0), (1, 5), (2, 3), (3, 4), (5, 2), (8, 3), (4, 8), (4, 9)])
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
# measured per platform and dtype (ntkprefix.platform) and re-measured by
# test_platform_exp_and_log_are_within_the_stated_accuracy: XLA's exp has relative error <= k_exp u (u = eps/2, eps
# the spacing of floats at 1; k_exp = platform.exp_roundings(dtype)). The reference is the exact function evaluated in numpy's longdouble (64-bit significand, eps_ld =
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
    """err_exp + 2u (1 + 2^-9) + (u y)^2 + reference error, err_exp = k_exp u the platform's measured exp error:
    (k_exp + 2) u + O(u^2) (derivation in features.py)."""
    u = float(np.finfo(dtype).eps) / 2
    return platform.exp_roundings(dtype) * u + 2 * u * (1 + 2.0**-9) + (u * np.abs(y)) ** 2 + (np.abs(y) + 2) * LONGDOUBLE_EPS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_plus_one_is_accurate_to_k_exp_plus_2_u_on_minus_80_to_80(dtype):
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


# ---- the platform facts (ntkprefix.platform) -------------------------------------------------------------------
#
# Every rounding bound of the project (ntkprefix/bounds.py, features.py, kernels.py, tests/tolerances.py) counts an
# exp as k_exp roundings and bounds log's absolute error by c_log u (|log x| + 1), both taken from
# ntkprefix.platform: a table of measurements per (jaxlib, backend, dtype), or a measurement at first use. Here the
# running platform is measured again, independently of the module's points (other seed, more points near 0 and
# near 1, a dense grid), and the measurement must stay within what the module states.


def _independent_exp_points(dtype, low):
    # x <= 0 only: every exp the bounds count is shifted to a non-positive argument (ntkprefix.platform)
    rng = np.random.default_rng(1)
    return np.concatenate(
        [rng.uniform(low, 0, 1_000_000), rng.uniform(-1, 0, 200_000), rng.uniform(-1e-3, 0, 50_000),
         np.linspace(low, 0, 100_001)]
    ).astype(dtype)


def _independent_log_points(dtype, low, high):
    rng = np.random.default_rng(1)
    z = np.concatenate([np.exp(rng.uniform(low, high, 1_000_000)), rng.uniform(0.5, 2.0, 200_000),
                        1 + rng.uniform(-1e-3, 1e-3, 50_000)]).astype(dtype)
    return z[(z >= np.finfo(dtype).tiny) & np.isfinite(z)]


@pytest.mark.parametrize("dtype,low,high", [(np.float32, -87.0, 88.0), (np.float64, -708.0, 709.0)])
def test_platform_exp_and_log_are_within_the_stated_accuracy(dtype, low, high):
    stated = platform.accuracy(dtype)
    u = float(np.finfo(dtype).eps) / 2
    x = _independent_exp_points(dtype, low)
    out = np.asarray(jnp.exp(jnp.asarray(x))).astype(np.longdouble)
    ref = np.exp(x.astype(np.longdouble))
    exp_error = float(np.max(np.abs(out - ref) / ref)) / u
    assert exp_error <= stated.exp_roundings, (
        f"{platform.platform_key(dtype)}: exp error {exp_error:.4f} u > the stated k_exp = {stated.exp_roundings} "
        f"({stated.source}); measure this platform and correct ntkprefix.platform.MEASURED"
    )
    z = _independent_log_points(dtype, low, high)
    lz = np.asarray(jnp.log(jnp.asarray(z))).astype(np.longdouble)
    lref = np.log(z.astype(np.longdouble))
    log_error = float(np.max(np.abs(lz - lref) / (np.abs(lref) + 1))) / u
    assert log_error <= stated.log_coefficient, (
        f"{platform.platform_key(dtype)}: log error {log_error:.4f} u (|log x| + 1) > the stated c_log = "
        f"{stated.log_coefficient} ({stated.source})"
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_platform_table_entry_is_reproduced_by_its_measurement(dtype):
    # A table entry states the maximum that measure_exp_error / measure_log_error find at their default points; on a
    # platform in the table the measurement must give that number (rounded up to 3 decimals), so the table cannot
    # drift from what its measurement says. Elsewhere the module measured at first use: the same functions.
    key = platform.platform_key(dtype)
    if key not in platform.MEASURED:
        pytest.skip(f"{key} is not in ntkprefix.platform.MEASURED (measured at first use)")
    entry = platform.MEASURED[key]
    exp_measured = platform.measure_exp_error(dtype=dtype)
    log_measured = platform.measure_log_error(dtype=dtype)
    assert entry.exp_measured - 1e-3 <= exp_measured <= entry.exp_measured
    assert entry.log_measured - 1e-3 <= log_measured <= entry.log_measured


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_planted_exp_or_log_error_beyond_the_stated_one_is_detected(dtype):
    # exp perturbed by (k_exp + 2) u relative, log by (c_log + 2) u (|log x| + 1), at every point (the final rounding
    # to float64 takes back at most 1 u of it): the measurement must see more than the stated count (it would make
    # the bounds false), and the honest functions not.
    stated = platform.accuracy(dtype)
    u = float(np.finfo(dtype).eps) / 2
    k, c = stated.exp_roundings + 2, stated.log_coefficient + 2

    def bad_exp(x):
        return (np.exp(x.astype(np.longdouble)) * (1 + k * u)).astype(np.float64)  # float64: exact enough to carry it

    def bad_log(x):
        lx = np.log(x.astype(np.longdouble))
        return (lx + c * u * (np.abs(lx) + 1)).astype(np.float64)

    assert platform.measure_exp_error(bad_exp, dtype, points=13_000) > stated.exp_roundings
    assert platform.measure_log_error(bad_log, dtype, points=13_000) > stated.log_coefficient
    assert platform.measure_exp_error(dtype=dtype, points=13_000) <= stated.exp_roundings
    assert platform.measure_log_error(dtype=dtype, points=13_000) <= stated.log_coefficient
    # A perturbation at a single argument is found too, if the measurement's points contain it (the grid's end).
    low, _ = platform.exp_domain(dtype)

    def exp_wrong_at_one_point(x):
        out = np.exp(x.astype(np.longdouble))
        return np.where(x == np.asarray(low, dtype), out * (1 + k * u), out).astype(np.float64)

    assert platform.measure_exp_error(exp_wrong_at_one_point, dtype, points=13_000) > stated.exp_roundings


def test_first_use_measurement_of_a_platform_missing_from_the_table():
    # What a platform not in MEASURED gets: the same measurement on FIRST_USE_POINTS points, with the larger allowance.
    key = ("not-a-jaxlib-version", jax.default_backend(), "float64")
    assert key not in platform.MEASURED
    measured = platform._accuracy.__wrapped__(key)  # uncached, so the cache of the real platform is untouched
    assert measured.source.startswith("measured at first use") and measured.points == platform.FIRST_USE_POINTS
    assert measured.exp_roundings == platform.roundings_for(measured.exp_measured, platform.FIRST_USE_ALLOWANCE)
    assert measured.log_coefficient == platform.roundings_for(measured.log_measured, platform.FIRST_USE_ALLOWANCE)
    assert 0 < measured.exp_measured <= platform.accuracy(np.float64).exp_roundings


def test_numpy_exp_is_within_the_stated_accuracy():
    # numpy's float64 exp and integer power are the numpy references' (tests/tolerances.py): NUMPY_EXP_ROUNDINGS
    # and 2u, measured like XLA's.
    from tests import tolerances

    assert platform.measure_exp_error(np.exp, np.float64) <= tolerances.NUMPY_EXP_ROUNDINGS
    rng = np.random.default_rng(3)
    s = rng.uniform(-30, 30, 200_000)
    u = 2.0**-53
    for j in range(2, 21):
        rel = np.abs(np.power(s, j).astype(np.longdouble) - np.power(s.astype(np.longdouble), j)) / np.abs(
            np.power(s.astype(np.longdouble), j))
        assert float(rel.max()) <= 2 * u, f"s**{j}: {float(rel.max()) / u:.3f} u"


def test_platform_refuses_other_dtypes_and_unit_roundoffs():
    with pytest.raises(ValueError, match="float32 or float64"):
        platform.accuracy(np.float16)
    with pytest.raises(ValueError, match="no measured exp/log accuracy for unit roundoff"):
        platform.dtype_for_unit_roundoff(2.0**-11)
    with pytest.raises(ValueError, match="finite number >= 0"):
        platform.roundings_for(float("nan"))
    assert platform.roundings_for(0.0) == 1 and platform.roundings_for(1.0) == 2 and platform.roundings_for(1.8) == 3


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
