import math

import numpy as np
import pytest

from ntkprefix import bounds


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
