import decimal
import math

import numpy as np
import pytest

from ntkprefix import bounds, platform


def brute_force_relative_error(S, g, n=4001):
    """max over a grid of |exp(s) - T_g(s)| / exp(s), the remainder summed as its tail series (no cancellation)."""

    def tail(s):
        return abs(math.fsum(s**j / math.factorial(j) for j in range(g + 1, g + 120))) / math.exp(s)

    return max(tail(s) for s in np.linspace(-S, S, n))


@pytest.mark.parametrize("S", [0.1, 0.7, 2.0, 6.0])
@pytest.mark.parametrize("g", [0, 1, 2, 5, 9])
def test_exact_remainder_matches_brute_force(S, g):
    exact = bounds.taylor_relative_error(S, g)
    np.testing.assert_allclose(exact, brute_force_relative_error(S, g), rtol=1e-9)


@pytest.mark.parametrize("S,g", [(0.3, 0), (1.0, 3), (3.0, 7), (10.0, 20)])
def test_exact_remainder_below_lagrange_below_paper_form(S, g):
    exact = bounds.taylor_relative_error(S, g)
    lagrange = S ** (g + 1) * math.exp(S) / math.factorial(g + 1)
    assert exact <= lagrange <= bounds.taylor_relative_error_paper_form(S, g)


def test_zero_range_has_no_error():
    assert bounds.taylor_relative_error(0.0, 0) == 0.0


def test_attention_error_bound():
    assert bounds.attention_error_bound(0.1, 2.0) == pytest.approx(2 * 0.1 / 0.9 * 2.0)
    assert bounds.attention_error_bound(1.0, 1.0) == math.inf
    with pytest.raises(ValueError):
        bounds.attention_error_bound(-0.1, 1.0)


def test_attention_error_bound_is_attained_up_to_factor_two():
    # Two keys, weights a1 = a2 = 1, values +V and -V: perturbing the weights by (1+eps, 1-eps) moves the output
    # by eps V exactly, i.e. half the bound 2 eps/(1-eps) V to first order. The bound is not loose by more.
    eps, V = 1e-3, 1.0
    out = ((1 + eps) * V - (1 - eps) * V) / 2
    assert out <= bounds.attention_error_bound(eps, V) <= 2.01 * out


def test_rounding_allowance_grows_with_terms_and_vanishes_with_u():
    small = bounds.rounding_allowance(n_terms=100, eps=1e-3, value_bound=1.0, score_abs_range=1.0, unit_roundoff=2.0**-53)
    large = bounds.rounding_allowance(n_terms=10**6, eps=1e-3, value_bound=1.0, score_abs_range=1.0, unit_roundoff=2.0**-53)
    assert 0 < small < large < 1e-8
    assert bounds.rounding_allowance(n_terms=10**9, eps=1e-3, value_bound=1.0, score_abs_range=1.0, unit_roundoff=2.0**-24) == math.inf


# ---- the remainder in log space, for large S and g ----------------------------------------------------------------


def exact_log_remainder(S, g, prec=60):
    """log E, E = (1/g!) int_0^S w^g e^w dw, in decimal arithmetic: the positive series for S < 2(g+1), else the
    closed form (-1)^g (e^S T_g(-S) - 1), whose terms cancel by at most a factor 2^g e^S/E (far inside 60 digits)."""
    D = decimal.Decimal
    with decimal.localcontext() as ctx:
        ctx.prec = prec
        t = D(S)
        if S < 2 * (g + 1):
            term = t ** (g + 1) / math.factorial(g)
            total, j = term / (g + 1), 0
            while True:
                j += 1
                term = term * t / j
                total += term / (g + 1 + j)
                if j > 2 * S + 10 and term / (g + 1 + j) < total * D(10) ** (5 - prec):
                    return total.ln()
        taylor = sum((-t) ** k / math.factorial(k) for k in range(g + 1))
        return ((-1) ** g * (t.exp() * taylor - 1)).ln()


@pytest.mark.parametrize("S", [0.01, 0.7, 3.0, 30.0, 300.0, 3000.0])
@pytest.mark.parametrize("g", [0, 1, 5, 20, 100, 500])
def test_log_remainder_matches_exact_decimal_arithmetic(S, g):
    # Tolerance: log E is a sum of a few terms (t, (g+1) log t, lgamma(g+2), a log-sum-exp of terms
    # j log t - lgamma(j+1) with j <= 2t + 64), each from log, lgamma and exp accurate to 4u relative, so its absolute
    # error is at most 32 u (t + (g+2) |log t| + 2 lgamma(g+2) + 100); relative error of E = absolute error of log E.
    u = 2.0**-53
    ours = bounds.log_taylor_relative_error(S, g)
    exact = float(exact_log_remainder(S, g))
    tolerance = 32 * u * (S + (g + 2) * abs(math.log(S)) + 2 * math.lgamma(g + 2) + 100)
    assert abs(ours - exact) <= tolerance, f"log E = {ours!r}, exact {exact!r}"
    assert bounds.taylor_relative_error(S, g) == pytest.approx(math.exp(exact) if exact < 709 else math.inf, rel=2 * tolerance, abs=0)


def test_remainder_for_huge_ranges_is_inf_not_an_overflow_error():
    assert bounds.taylor_relative_error(1e6, 3) == math.inf
    assert bounds.taylor_relative_error_paper_form(1e6, 3) == math.inf
    # g = 3: E = e^S (S^3 - 3 S^2 + 6 S - 6)/6 + 1 exactly
    assert bounds.log_taylor_relative_error(1e6, 3) == pytest.approx(1e6 + math.log((1e18 - 3e12 + 6e6 - 6) / 6), rel=1e-14)
    assert bounds.lemma_3_1_bound(R=0.01, n=8, d=8, B=100.0) == math.inf
    req = bounds.theorem_3_2_requirements(lam=0.5, n=4, d=4, B=100.0, delta=0.05, m=256, eps=1e-6)
    assert req.m_required == math.inf and req.eta_prescribed == 0.0 and req.T_required == math.inf
    with pytest.raises(ValueError, match="degree g must be <= 1000000"):
        bounds.taylor_relative_error(1.0, 10**7)


# ---- the platform's exp and log accuracy enter the allowance (ntkprefix.platform) ----------------------------------

_INSTANCE = dict(score_range=1.5, score_abs_range=2.0, degree=6, value_bound=1.0, m=256, L=16, d=4)


def test_rounding_terms_count_exp_as_k_exp_roundings():
    m, L, r, g, d = 256, 16, 210, 6, 4
    # k_exp = 2, the count assumed before exp was measured: the old N = 5m + L + r + 12g + d + 32.
    assert bounds.rounding_terms(m=m, L=L, r=r, degree=g, d=d, exp_roundings=2) == 5 * m + L + r + 12 * g + d + 32
    # every further rounding of exp adds one per chunk rescale (m + 1) and one for a term's own exp
    assert bounds.rounding_terms(m=m, L=L, r=r, degree=g, d=d, exp_roundings=3) == 5 * m + L + r + 12 * g + d + 32 + m + 2
    # the default is the running platform's measured count
    assert bounds.rounding_terms(m=m, L=L, r=r, degree=g, d=d) == bounds.rounding_terms(
        m=m, L=L, r=r, degree=g, d=d, exp_roundings=platform.exp_roundings(np.float64))
    assert bounds.rounding_terms(m=m, L=L, r=r, degree=g, d=d, unit_roundoff=2.0**-24) == bounds.rounding_terms(
        m=m, L=L, r=r, degree=g, d=d, exp_roundings=platform.exp_roundings(np.float32))


@pytest.mark.parametrize("unit_roundoff", [2.0**-53, 2.0**-24])
def test_theorem_4_1_bound_grows_with_the_exp_and_log_error_and_defaults_to_the_platform(unit_roundoff):
    by_k = [bounds.theorem_4_1_bound(**_INSTANCE, unit_roundoff=unit_roundoff, exp_roundings=k, log_coefficient=2).rounding_term
            for k in range(1, 8)]
    assert all(a < b for a, b in zip(by_k, by_k[1:])), by_k
    by_c = [bounds.theorem_4_1_bound(**_INSTANCE, unit_roundoff=unit_roundoff, exp_roundings=2, log_coefficient=c).rounding_term
            for c in range(0, 8)]
    assert all(a < b for a, b in zip(by_c, by_c[1:])), by_c
    dtype = platform.dtype_for_unit_roundoff(unit_roundoff)
    default = bounds.theorem_4_1_bound(**_INSTANCE, unit_roundoff=unit_roundoff)
    explicit = bounds.theorem_4_1_bound(**_INSTANCE, unit_roundoff=unit_roundoff, exp_roundings=platform.exp_roundings(dtype),
                                        log_coefficient=platform.log_coefficient(dtype))
    assert default == explicit
    # rounding_allowance itself takes c_log from the platform by default
    kwargs = dict(n_terms=1000, eps=1e-3, value_bound=1.0, score_abs_range=2.0, unit_roundoff=unit_roundoff)
    assert bounds.rounding_allowance(**kwargs) == bounds.rounding_allowance(**kwargs, log_coefficient=platform.log_coefficient(dtype))
    assert bounds.rounding_allowance(**kwargs, log_coefficient=3) < bounds.rounding_allowance(**kwargs, log_coefficient=9)


@pytest.mark.parametrize("field,bad", [("exp_roundings", 0), ("exp_roundings", 1.5), ("exp_roundings", True),
                                       ("log_coefficient", -1), ("log_coefficient", 2.5)])
def test_exp_and_log_counts_are_validated(field, bad):
    with pytest.raises(ValueError, match=field):
        bounds.theorem_4_1_bound(**_INSTANCE, **{field: bad})


def test_other_unit_roundoffs_need_explicit_counts():
    with pytest.raises(ValueError, match="pass exp_roundings and log_coefficient explicitly"):
        bounds.theorem_4_1_bound(**_INSTANCE, unit_roundoff=2.0**-11)
    assert bounds.theorem_4_1_bound(**_INSTANCE, unit_roundoff=2.0**-11, exp_roundings=2, log_coefficient=2).total > 0


def test_rounding_allowance_is_inf_when_kappa_overflows():
    assert bounds.rounding_allowance(n_terms=100, eps=1e-3, value_bound=1.0, score_abs_range=400.0, unit_roundoff=2.0**-53) == math.inf
    finite = bounds.rounding_allowance(n_terms=100, eps=1e-3, value_bound=1.0, score_abs_range=3.0, unit_roundoff=2.0**-53)
    larger_input = bounds.rounding_allowance(
        n_terms=100, eps=1e-3, value_bound=1.0, score_abs_range=3.0, unit_roundoff=2.0**-53, input_score_abs_range=300.0
    )
    assert 0 < finite < larger_input < 1e-9
