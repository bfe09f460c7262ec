"""The stylized prefix model of Section 3: closed-form gradient against jax.grad, training records."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkprefix import kernels, model, training


def problem(n=6, d=3, m=64, d_out=2, sigma=1.0, seed=0, dtype=jnp.float64):
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(seed), 4)
    X = jax.random.normal(k1, (n, d), dtype)
    X = 0.9 * X / jnp.linalg.norm(X, axis=1, keepdims=True)  # ||x_i|| <= 1
    W = model.init_prefix_weights(k2, d, m, sigma, dtype)
    a = model.random_signs(k3, d_out, m, dtype)
    Y = jax.random.normal(k4, (n, d_out), dtype)
    return W, X, Y, a


def rel(x, y):
    """||x - y||_F / ||y||_F, and 0 when both are exactly zero (m = 1: softmax over one key is constant)."""
    diff, size = float(jnp.linalg.norm(x - y)), float(jnp.linalg.norm(y))
    return 0.0 if diff == 0.0 else diff / size


@pytest.mark.parametrize("n,d,m,d_out,scale", [(1, 1, 1, 1, None), (6, 3, 64, 2, None), (4, 5, 300, 5, 1.0), (9, 2, 17, 3, 2.5)])
def test_closed_form_gradient_equals_jax_grad(n, d, m, d_out, scale):
    W, X, Y, a = problem(n, d, m, d_out, seed=n + m)
    closed = model.loss_gradient(W, X, Y, a, output_scale=scale)
    auto = jax.grad(model.loss)(W, X, Y, a, output_scale=scale)
    assert rel(closed, auto) <= 1e-12


def test_per_neuron_gradient_formula_against_jacobian():
    W, X, _, a = problem(n=3, d=2, m=5, d_out=2)
    J = jax.jacobian(model.model_output)(W, X, a)  # (n, d_out, d, m)
    G = model.output_gradient_factors(W, X, a)  # dF_l(x_i)/dw_r = G[i,l,r] x_i
    np.testing.assert_allclose(J, jnp.einsum("ilr,id->ildr", G, X), rtol=1e-12, atol=1e-14)


def test_output_is_m_times_a_weighted_mean_of_signs():
    W, X, _, a = problem(m=50)
    F = model.model_output(W, X, a)
    assert jnp.all(jnp.abs(F) <= 50 + 1e-9)
    np.testing.assert_allclose(F, 50 * jax.nn.softmax(X @ W, axis=1) @ a.T, rtol=1e-13)


def test_model_rejects_mismatched_shapes():
    W, X, Y, a = problem(d=3, m=8)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 3\).*got \(6, 2\)"):
        model.model_output(W, X[:, :2], a)
    with pytest.raises(ValueError, match=r"a must have shape \(d_out, 8\).*got \(2, 7\)"):
        model.model_output(W, X, a[:, :7])
    with pytest.raises(ValueError, match=r"Y must have shape \(n, d_out\) = \(6, 2\).*got \(6, 3\)"):
        model.loss(W, X, jnp.zeros((6, 3)), a)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        model.init_prefix_weights(jax.random.PRNGKey(0), 3, 8, 0.0)


def test_training_records_and_decreasing_loss():
    W, X, Y, a = problem(n=5, d=3, m=512, d_out=2)
    H = kernels.ntk_matrix(W, X, a)
    eta = 0.5 / (512 * float(jnp.linalg.eigvalsh(H)[-1]))
    rec = training.gradient_descent(W, X, Y, a, eta=eta, steps=60, record_every=20)
    assert rec.loss.shape == (61,) and rec.max_movement.shape == (61,)
    assert rec.kernel_steps.tolist() == [0, 20, 40, 60] and rec.lambda_min.shape == (4,)
    assert float(rec.loss[0]) == pytest.approx(float(model.loss(W, X, Y, a)), rel=1e-12, abs=0)
    assert float(rec.loss[-1]) == pytest.approx(float(model.loss(rec.W, X, Y, a)), rel=1e-12, abs=0)
    assert float(rec.max_movement[0]) == 0.0
    assert rec.outputs.shape == (4, 5, 2)
    assert rel(rec.outputs[-1], model.model_output(rec.W, X, a)) <= 1e-13
    assert float(rec.lambda_min[0]) == pytest.approx(float(jnp.linalg.eigvalsh(H)[0]), rel=1e-10, abs=0)
    assert jnp.all(jnp.diff(rec.loss) < 0)  # eta below 1/(m lambda_max): monotone descent
    # The scan matches a plain Python loop of the closed-form update.
    W_loop = W
    for _ in range(60):
        W_loop = W_loop - eta * model.loss_gradient(W_loop, X, Y, a)
    assert rel(rec.W, W_loop) <= 1e-12


def test_training_bad_arguments():
    W, X, Y, a = problem()
    with pytest.raises(ValueError, match="record_every must divide steps=10, got 3"):
        training.gradient_descent(W, X, Y, a, eta=0.1, steps=10, record_every=3)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        training.gradient_descent(W, X, Y, a, eta=0.1, steps=0)
    with pytest.raises(ValueError, match="eta must be > 0"):
        training.gradient_descent(W, X, Y, a, eta=0.0, steps=5)


def test_float32_training_is_finite():
    W, X, Y, a = problem(m=256, dtype=jnp.float32)
    H = kernels.ntk_matrix(W, X, a)
    eta = 0.5 / (256 * float(jnp.linalg.eigvalsh(H)[-1]))
    rec = training.gradient_descent(W, X, Y, a, eta=eta, steps=50, record_every=10)
    assert rec.loss.dtype == jnp.float32
    assert jnp.all(jnp.isfinite(rec.loss)) and jnp.all(jnp.isfinite(rec.lambda_min))
    assert float(rec.loss[-1]) < 1e-2 * float(rec.loss[0])
