"""The NTK two ways here (closed form, jax.jacobian; neural-tangents in tests/test_neural_tangents.py) and its m -> infinity
limit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkprefix import kernels, model
from tests import tolerances
from tests.test_model import problem, rel


def assert_close(H, expected, tol, what):
    err = rel(H, expected)
    assert err <= tol, f"{what}: relative Frobenius error {err:.3e} > {tol:g}\nH=\n{np.asarray(H)}\nexpected=\n{np.asarray(expected)}"


@pytest.mark.parametrize("n,d,m,d_out,scale", [(1, 1, 1, 1, None), (5, 3, 64, 2, None), (4, 4, 200, 3, 1.0)])
def test_closed_form_equals_jacobian_contraction(n, d, m, d_out, scale):
    # entrywise within the sum of the two derived rounding bounds (tests/tolerances.py)
    W, X, _, a = problem(n, d, m, d_out, seed=m)
    H = np.asarray(kernels.ntk_matrix(W, X, a, output_scale=scale))
    H_auto = np.asarray(kernels.ntk_matrix_autodiff(W, X, a, output_scale=scale))
    E = tolerances.ntk_rounding_bound(W, X, a, output_scale=scale)
    assert np.all(np.abs(H - H_auto) <= 2 * E), f"\nH=\n{H}\njax.jacobian=\n{H_auto}\nbound=\n{2 * E}"


def test_ntk_is_symmetric_positive_semidefinite():
    # H = J J^T / m exactly; the computed H is within the derived rounding bound E (tests/tolerances.py)
    W, X, _, a = problem(n=6, d=3, m=100, d_out=3)
    H = np.asarray(kernels.ntk_matrix(W, X, a))
    E = tolerances.ntk_rounding_bound(W, X, a)
    assert np.all(np.abs(H - H.T) <= E + E.T)
    assert np.linalg.eigvalsh(H)[0] >= -(tolerances.frobenius_norm_upper(E) + tolerances.eigenvalue_allowance(H))


def test_infinite_prefix_kernel_formula():
    X = jnp.array([[0.6, 0.0], [0.0, 0.8], [0.3, 0.4]])
    H = kernels.infinite_prefix_kernel(X, sigma=1.5, d_out=2)
    gram = np.asarray(X @ X.T)
    expected = np.kron(gram * np.exp(2.25 * gram), np.eye(2))
    np.testing.assert_allclose(H, expected, rtol=1e-14)


def test_empirical_kernel_approaches_the_infinite_prefix_kernel():
    # Relative Frobenius error over 4 seeds falls as m grows, and reaches a few percent at m = 2^16.
    n, d, d_out, sigma = 5, 4, 2, 1.0
    X = jax.random.normal(jax.random.PRNGKey(10), (n, d))
    X = X / jnp.linalg.norm(X, axis=1, keepdims=True)
    H_inf = kernels.infinite_prefix_kernel(X, sigma, d_out)
    errors = []
    for log2_m in (6, 10, 14, 16):
        m = 2**log2_m
        errs = []
        for seed in range(4):
            kw, ka = jax.random.split(jax.random.PRNGKey(100 + seed))
            W = model.init_prefix_weights(kw, d, m, sigma)
            a = model.random_signs(ka, d_out, m)
            errs.append(rel(kernels.ntk_matrix(W, X, a), H_inf))
        errors.append(float(np.mean(errs)))
    assert all(e2 < e1 for e1, e2 in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.05, errors
    assert errors[0] > 0.2, errors  # far from the limit at m = 64: the test would notice a wrong limit


def test_linearized_prediction_equals_discrete_linearized_gd():
    W, X, Y, a = problem(n=4, d=3, m=256, d_out=2, seed=5)
    H = kernels.ntk_matrix(W, X, a)
    m = 256
    eta = 0.5 / (m * float(jnp.linalg.eigvalsh(H)[-1]))
    F0 = model.model_output(W, X, a)
    out = kernels.ntk_linearized_outputs(H, F0, Y, eta=eta, m=m, steps=jnp.array([0, 1, 7, 30]))
    step = jnp.eye(8) - eta * m * H
    expected = []
    r = (F0 - Y).reshape(-1)
    for t in (0, 1, 7, 30):
        expected.append(Y.reshape(-1) + jnp.linalg.matrix_power(step, t) @ r)
    np.testing.assert_allclose(out.reshape(4, -1), jnp.stack(expected), rtol=1e-9, atol=1e-9 * float(jnp.abs(F0).max()))


def test_linearized_prediction_tracks_gd_for_one_small_step():
    # One GD step from W(0) moves F by -eta J J^T (F - Y) + O(eta^2): the linearisation agrees to first order.
    from ntkprefix import training

    W, X, Y, a = problem(n=4, d=3, m=4096, d_out=1, seed=6)
    H = kernels.ntk_matrix(W, X, a)
    eta = 1e-3 / (4096 * float(jnp.linalg.eigvalsh(H)[-1]))
    rec = training.gradient_descent(W, X, Y, a, eta=eta, steps=1)
    lin = kernels.ntk_linearized_outputs(H, rec.outputs[0], Y, eta=eta, m=4096, steps=jnp.array([1]))[0]
    change = float(jnp.linalg.norm(rec.outputs[1] - rec.outputs[0]))
    assert float(jnp.linalg.norm(rec.outputs[1] - lin)) <= 1e-3 * change


def test_linearized_prediction_rejects_unstable_step():
    W, X, Y, a = problem(n=3, d=2, m=64, d_out=1)
    H = kernels.ntk_matrix(W, X, a)
    eta = 1.5 / (64 * float(jnp.linalg.eigvalsh(H)[-1]))
    with pytest.raises(ValueError, match="need 0 <= eta m lambda"):
        kernels.ntk_linearized_outputs(H, model.model_output(W, X, a), Y, eta=eta, m=64, steps=jnp.array([1]))


@pytest.mark.parametrize("n,d,m,d_out,scale", [(3, 2, 5, 1, None), (5, 3, 300, 3, None), (4, 4, 2000, 6, 2.0), (2, 2, 64, 8, None)])
def test_sign_pattern_evaluation_equals_dense(n, d, m, d_out, scale):
    W, X, _, a = problem(n, d, m, d_out, seed=m + d_out)
    dense = kernels.ntk_matrix(W, X, a, output_scale=scale, method="dense")
    patterns = kernels.ntk_matrix(W, X, a, output_scale=scale, method="sign_patterns")
    assert_close(patterns, dense, 1e-12, "sign patterns")


def test_auto_method_under_jit_falls_back_to_dense():
    W, X, _, a = problem(n=4, d=3, m=512, d_out=2)
    jitted = jax.jit(lambda W, X, a: kernels.ntk_matrix(W, X, a))(W, X, a)  # a traced: dense
    assert_close(jitted, kernels.ntk_matrix(W, X, a), 1e-12, "auto under jit")
    with pytest.raises(ValueError, match="needs a concrete a"):
        jax.jit(lambda W, X, a: kernels.ntk_matrix(W, X, a, method="sign_patterns"))(W, X, a)
    with pytest.raises(ValueError, match="method must be"):
        kernels.ntk_matrix(W, X, a, method="fast")
