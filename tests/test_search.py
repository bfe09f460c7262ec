"""verify.search: the box ascent keeps to the box, never loses ground, finds a known interior maximum, and on small
Theorem 4.1 cases reaches the worst case computed by an independent route (the error as a function of the scores)."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

import ntkprefix as nk
from verify import search


def test_a_concave_function_is_maximised_inside_and_on_the_face_of_the_box():
    centre = jnp.array([[0.3, -0.7], [0.1, 2.5]])  # 2.5 lies outside |x| <= 1: the maximum is on the face x = 1

    def f(p):
        return -jnp.sum((p["x"] - centre) ** 2)

    starts = search.random_starts(jax.random.PRNGKey(3), {"x": (2, 2)}, 1.0, uniform=2, corners=2)
    record = search.box_ascent(f, starts, bound=1.0, steps=200, min_step=1e-9)
    best = record.best_params["x"]
    assert np.allclose(best, [[0.3, -0.7], [0.1, 1.0]], atol=1e-8)
    assert record.best_value == pytest.approx(-(1.5**2), abs=1e-12)
    for s in record.starts:
        assert s["initial"] <= s["final"]
    assert search.within_box(record.best_params, 1.0)


def test_arguments_are_checked():
    f = lambda p: jnp.sum(p["x"])  # noqa: E731
    with pytest.raises(ValueError, match="at least one start"):
        search.box_ascent(f, [], bound=1.0)
    with pytest.raises(ValueError, match="leaves the box"):
        search.box_ascent(f, [search.Start("bad", {"x": jnp.array([2.0])})], bound=1.0)
    with pytest.raises(ValueError, match="bound > 0"):
        search.box_ascent(f, [search.Start("ok", {"x": jnp.array([0.0])})], bound=0.0)
    with pytest.raises(ValueError, match="corners exceed"):
        search.corner_maximum(f, {"x": (17,)}, 1.0)


def _taylor(s, g):
    return sum(s**j / math.factorial(j) for j in range(g + 1))


def _score_space_maximum(m, L, g, S, b):
    """max over prefix scores in [-S, S]^m and input scores in [-S, S]^L of b sum_j |w^_j - w_j|, the worst
    ||T - PrefixAttn||_inf over V_C for one query (the values take b sign(w^_j - w_j)); S = b^2 sqrt(d) is what a
    query and keys in the box can reach. Numpy, by a grid and a Nelder-Mead polish: shares no code with the library."""

    def objective(scores):
        s, t = scores[:m], scores[m:]
        P, E, Et = _taylor(s, g), np.exp(s), np.exp(t)
        Dh, D = P.sum() + Et.sum(), E.sum() + Et.sum()
        return b * (np.abs(P / Dh - E / D).sum() + Et.sum() * abs(1 / Dh - 1 / D))

    grid = np.linspace(-S, S, 41)
    start = max(itertools.product(grid, repeat=m + L), key=lambda z: objective(np.array(z)))
    polished = optimize.minimize(lambda z: -objective(np.clip(z, -S, S)), np.array(start), method="Nelder-Mead",
                                 options={"xatol": 1e-12, "fatol": 1e-15, "maxiter": 20000})
    return max(-polished.fun, objective(np.array(start)))


@pytest.mark.parametrize("L, d, m, g, b", [(1, 2, 2, 2, 1.0), (1, 3, 2, 4, 1.0)])
def test_the_search_reaches_the_worst_case_of_the_scores(L, d, m, g, b):
    # Theorem 4.1's error over Q, K, V, K_P, V_P with every entry in [-b, b], searched through the library's two
    # attentions; the reference is the independent score-space maximum above. The search must reach it (it may
    # exceed it only by the polish's tolerance), and no corner may beat it.
    phi = nk.taylor_feature_map(d, g)

    def error(p):
        Z, k = nk.reduce_prefix(p["KP"], p["VP"], phi)
        return jnp.max(jnp.abs(nk.ntk_attention(p["Q"], p["K"], p["V"], Z, k, phi)
                               - nk.prefix_attention(p["Q"], p["K"], p["V"], p["KP"], p["VP"])))

    shapes = {"Q": (L, d), "K": (L, d), "V": (L, 1), "KP": (m, d), "VP": (m, 1)}
    reference = _score_space_maximum(m, L, g, b * b * math.sqrt(d), b)
    starts = search.random_starts(jax.random.PRNGKey(0), shapes, b, uniform=16, corners=16)
    record = search.box_ascent(error, starts, bound=b)
    assert record.best_value == pytest.approx(reference, rel=1e-6)
    assert search.within_box(record.best_params, b)
    corners, _ = search.corner_maximum(error, shapes, b)
    assert corners <= reference * (1 + 1e-9)


@pytest.mark.parametrize("S, g", [(0.0, 3), (1e-3, 6), (0.5, 8), (2.0, 6), (2.0, 12), (3.0, 2), (32.0, 6), (90.0, 9)])
def test_the_differentiable_remainder_is_the_library_s(S, g):
    # verify.search.taylor_relative_error (the search objective's bound) against ntkprefix.bounds (the verdicts'):
    # both sum the same positive series, in different orders: agreement within 1e-13 relative, the library's own
    # stated accuracy; and its derivative against a central difference
    from ntkprefix import bounds

    value = float(search.taylor_relative_error(jnp.float64(S), g, max(S, 2.0)))
    assert value == pytest.approx(bounds.taylor_relative_error(S, g), rel=1e-13, abs=0)
    if S > 0:
        h = 1e-6 * S
        slope = float(jax.grad(lambda t: search.taylor_relative_error(t, g, max(S, 2.0)))(jnp.float64(S)))
        central = (bounds.taylor_relative_error(S + h, g) - bounds.taylor_relative_error(S - h, g)) / (2 * h)
        assert slope == pytest.approx(central, rel=1e-6)
    for S_max in (-1.0, 701.0):
        with pytest.raises(ValueError, match="direct sum"):
            search.taylor_relative_error(jnp.float64(S), g, S_max)
