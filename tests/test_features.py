import math

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


def test_elu_map_is_the_authors_formula():
    phi = nk.elu_feature_map(4)
    x = jnp.array([[-2.0, -0.1, 0.0, 3.0]])
    y = x / 4**0.25
    expected = jnp.where(y > 0, y, jnp.expm1(y)) + 1
    np.testing.assert_allclose(phi(x), expected, rtol=1e-15)
    assert phi.r == 4 and phi.sign_definite and not phi.covered_by_theorem_4_1
    assert not nk.taylor_feature_map(4, 1).sign_definite and nk.taylor_feature_map(4, 0).sign_definite


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
    with pytest.raises(ValueError, match="score range S must be finite"):
        nk.taylor_degree(float("nan"), 0.1)


def test_as23_degree_growth_matches_taylor_degree_in_order():
    # Both grow like log(1/eps) / log log(1/eps) for fixed B; their ratio stays within a constant factor.
    ratios = [nk.taylor_degree(2.0, 10.0**-k) / nk.as23_degree(2.0, 10.0**-k) for k in (5, 10, 20, 40, 80)]
    assert max(ratios) / min(ratios) < 2.0
    assert nk.as23_degree(5.0, 0.5) == 5.0  # log(1/eps) small: the formula reduces to B


def test_parameter_counts():
    assert nk.parameter_counts(m=1024, d=32, r=32) == {"prefix": 32768, "ntk_attention": 32 * 32 + 32}
    with pytest.raises(ValueError):
        nk.parameter_counts(m=0, d=3, r=3)
