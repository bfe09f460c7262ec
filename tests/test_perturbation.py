"""Lemma 3.1's worst case (ntkprefix.perturbation): the first-order pieces against finite differences and adjoints,
the search against a brute-force grid, and the derived bounds (rigorous for ||x_i|| <= 1) fuzzed by hypothesis."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ntkprefix import kernels, model, perturbation, sampling
from tests.strategies import ball_perturbations, section3_problems
from tests.test_model import problem, rel

# Rigorous bounds need ||x_i|| <= 1 (met by section3_problems) and are fuzzed on the small shapes.
SHAPES = ((3, 2, 8, 2), (4, 3, 64, 1), (5, 4, 200, 3))


def change(W, X, a, U):
    return float(jnp.linalg.norm(kernels.ntk_matrix(W + U, X, a) - kernels.ntk_matrix(W, X, a)))


def test_projection_and_unit_columns():
    U = jax.random.normal(jax.random.PRNGKey(0), (3, 50)) * jnp.linspace(0.0, 3.0, 50)
    P = perturbation.project_to_balls(U, 0.5)
    norms = jnp.linalg.norm(P, axis=0)
    assert float(norms.max()) <= 0.5 * (1 + 1e-15)
    inside = jnp.linalg.norm(U, axis=0) <= 0.5
    np.testing.assert_array_equal(P[:, inside], U[:, inside])  # points inside the ball do not move
    unit = perturbation.unit_columns(U)
    np.testing.assert_allclose(jnp.linalg.norm(unit[:, 1:], axis=0), 1.0, rtol=1e-14)
    assert float(jnp.abs(unit[:, 0]).max()) == 0.0  # the zero column stays zero


def test_data_aligned_direction_moves_every_logit_outwards():
    W, X, _, _ = problem(n=3, d=4, m=40)
    U = perturbation.data_aligned_direction(W, X[1])
    np.testing.assert_allclose(jnp.linalg.norm(U, axis=0), 1.0, rtol=1e-14)
    assert bool(jnp.all((X[1] @ U) * (X[1] @ W) >= 0))  # each <w_r, x> moves away from 0
    with pytest.raises(ValueError, match=r"x must have shape \(4,\)"):
        perturbation.data_aligned_direction(W, X[1][:3])


def test_first_order_change_is_the_derivative_and_the_gradient_its_adjoint():
    W, X, _, a = problem(n=4, d=3, m=64, d_out=2, seed=3)
    U = perturbation.unit_columns(jax.random.normal(jax.random.PRNGKey(1), W.shape))
    t = 1e-5
    central = (kernels.ntk_matrix(W + t * U, X, a) - kernels.ntk_matrix(W - t * U, X, a)) / (2 * t)
    L = perturbation.first_order_change(W, X, a, U)
    assert rel(L, central) <= 1e-7  # central difference: O(t^2) truncation, O(u / t) rounding
    E = jax.random.normal(jax.random.PRNGKey(2), L.shape)
    g = perturbation.first_order_gradient(W, X, a, E)
    assert abs(float(jnp.sum(E * L)) - float(jnp.sum(g * U))) <= 1e-12 * float(jnp.linalg.norm(E) * jnp.linalg.norm(L))


def test_first_order_ascent_never_decreases_and_respects_the_derived_bound():
    W, X, _, a = problem(n=5, d=5, m=256, d_out=1, seed=4)
    U0 = perturbation.data_aligned_direction(W, X[0])
    start = float(jnp.linalg.norm(perturbation.first_order_change(W, X, a, U0)))
    values = [start]
    U = U0
    for _ in range(6):
        K, U, _ = perturbation.first_order_constant(W, X, a, U, max_iterations=1)
        values.append(K)
    assert all(b >= a_ * (1 - 1e-12) for a_, b in zip(values, values[1:]))
    assert values[-1] > 2 * start  # the data-aligned field is far from the worst case
    # |DH[U]| <= 20 A(W) for unit fields (ntkprefix.perturbation's module doc)
    assert values[-1] <= 20 * perturbation.majorant(W, X, 1)


def test_signs_chosen_direction_beats_the_aligned_one_to_first_order():
    W, X, _, a = problem(n=4, d=4, m=128, d_out=1, seed=5)
    aligned = perturbation.data_aligned_direction(W, X[0])
    signs = perturbation.signs_chosen_direction(W, X, a, X[0], aligned)
    first = lambda U: float(jnp.linalg.norm(perturbation.first_order_change(W, X, a, U)))  # noqa: E731
    assert first(signs) >= first(aligned)
    np.testing.assert_allclose(jnp.abs(signs.T @ X[0]), float(jnp.linalg.norm(X[0])), rtol=1e-12)


@pytest.mark.parametrize("m", [3, 4, 5])
def test_worst_case_search_comes_close_to_the_exhaustive_maximum(m):
    # d = 1: the product of balls is the cube [-R, R]^m, and ||Delta H|| (nearly linear for R = 0.005) peaks at a
    # corner. The search is a lower bound; over these seeds it stays within 2% of the best corner.
    X = jnp.array([[1.0], [-0.6]])
    R = 0.005
    corners = jnp.array(list(itertools.product(*[[-R, R]] * m)))
    for seed in range(4):
        key = jax.random.PRNGKey(seed)
        W = model.init_prefix_weights(key, 1, m, 1.0)
        a = jnp.where(jnp.arange(m) % 2 == 0, 1.0, -1.0)[None, :]  # mixed signs: H is not identically 0
        H0 = kernels.ntk_matrix(W, X, a, method="dense")
        best = float(jax.vmap(lambda u: jnp.linalg.norm(kernels.ntk_matrix(W + u[None, :], X, a, method="dense") - H0))(
            corners).max())
        found = perturbation.worst_case_search(W, X, a, jax.random.normal(jax.random.fold_in(key, 5), (4, 1, m)), [R],
                                               ascent_steps=4)
        sup = max(float(found.ascent_values[0]), float(found.field_values[0].max()))
        assert best * 0.98 <= sup <= perturbation.change_bound(R, perturbation.majorant(W, X, 1))
        assert found.column_norms[0, 1] <= 1 + 1e-12


def test_worst_case_search_orders_its_directions_and_stays_in_the_ball():
    W, X, _, a = problem(n=4, d=4, m=512, d_out=1, seed=8)
    U = jax.random.normal(jax.random.PRNGKey(9), (2, *W.shape))
    radii = [1e-3, 8e-3]
    found = perturbation.worst_case_search(W, X, a, U, radii)
    A = perturbation.majorant(W, X, 1)
    for i, R in enumerate(radii):
        by = dict(zip(perturbation.DIRECTIONS, found.field_values[i]))
        assert by["gradient"] >= by["signs_chosen"] >= 0.9 * by["data_aligned"] and by["gradient"] > 3 * by["random"]
        assert found.ascent_values[i] >= max(by.values()) * (1 - 1e-12)
        assert found.ascent_values[i] <= perturbation.change_bound(R, A)
        assert found.column_norms[i, 1] <= 1 + 1e-12
    assert found.first_order["gradient"] == max(found.ascent_starts.values())
    assert set(found.ascent_starts) == {"signs_chosen", "random 0", "random 1"}
    with pytest.raises(ValueError, match="radii must be positive"):
        perturbation.worst_case_search(W, X, a, U, [0.0])
    with pytest.raises(ValueError, match=r"random_fields must have shape \(k, 4, 512\)"):
        perturbation.worst_case_search(W, X, a, U[0], radii)


@given(st.data())
def test_derived_bounds_hold_inside_the_ball(data):
    W, X, a = data.draw(section3_problems(shapes=SHAPES))
    U, R = data.draw(ball_perturbations(W))
    A = perturbation.majorant(W, X, a.shape[0])
    f = change(W, X, a, R * U)
    assert f <= perturbation.change_bound(R, A) * (1 + 1e-9) + 1e-13
    first = R * float(jnp.linalg.norm(perturbation.first_order_change(W, X, a, U)))
    assert abs(f - first) <= perturbation.second_order_remainder(R, A) * (1 + 1e-9) + 1e-13


def test_majorant_converges_to_its_limit():
    key = jax.random.PRNGKey(11)
    X, _ = sampling.section3_data(key, n=4, d=4, d_out=1)
    limit = perturbation.majorant_limit(X, 1.0, 2)
    values = [perturbation.majorant(model.init_prefix_weights(jax.random.fold_in(key, s), 4, 2**15, 1.0), X, 2)
              for s in range(3)]
    assert abs(np.mean(values) / limit - 1) <= 0.1
    assert perturbation.change_bound(0.0, limit) == 0.0 and perturbation.second_order_remainder(0.01, limit) > 0


def test_the_derived_bounds_arithmetic_by_hand():
    # issue 19: the derived bound is loose by design (the search reaches 0.062 of it in quick mode), so no instance
    # can pin a wrong constant in it; its arithmetic is pinned here instead, on numbers worked out by hand.
    # change_bound = 5 (e^{4R} - 1) A: R = 1/4, A = 2 gives 10 (e - 1)
    assert perturbation.change_bound(0.25, 2.0) == pytest.approx(10 * 1.718281828459045, rel=1e-14)
    # second_order_remainder = 53 R^2 e^{4R} A: R = 1/4, A = 2 gives 53 / 8 e
    assert perturbation.second_order_remainder(0.25, 2.0) == pytest.approx(6.625 * 2.718281828459045, rel=1e-14)
    # majorant A(W) = d_out ||(|X X^T|) o (m S S^T)||_F: W = 0 makes S uniform (m S S^T = 1 everywhere), and with
    # x_1 = (1, 0), x_2 = (0, -1/2), |X X^T| = diag(1, 1/4): A = d_out sqrt(1 + 1/16); d_out = 2 (not 1: a missing
    # factor d_out would be invisible), m = 3 (a wrong factor m would show)
    X = jnp.array([[1.0, 0.0], [0.0, -0.5]])
    assert perturbation.majorant(jnp.zeros((2, 3)), X, 2) == pytest.approx(2 * math.sqrt(17 / 16), rel=1e-14)
