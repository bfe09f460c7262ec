"""Runs vmapped over seeds (ntkprefix.batched) equal the same runs one by one."""

import jax.numpy as jnp
import numpy as np
import pytest

from ntkprefix import batched, kernels, training
from tests.test_model import problem


def _instances(S=3, n=4, d=3, m=32, d_out=2):
    runs = [problem(n=n, d=d, m=m, d_out=d_out, seed=s) for s in range(S)]
    X, Y = runs[0][1], runs[0][2]
    return jnp.stack([r[0] for r in runs]), X, Y, jnp.stack([r[3] for r in runs])


def test_batch_equals_one_run_at_a_time():
    W0, X, Y, a = _instances()
    eta = jnp.array([1e-3, 2e-3, 5e-4])
    batch = batched.gradient_descent_batch(W0, X, Y, a, eta, steps=20, record_every=5)
    for s in range(3):
        one = training.gradient_descent(W0[s], X, Y, a[s], eta=float(eta[s]), steps=20, record_every=5)
        for field in ("W", "loss", "max_movement", "lambda_min", "outputs"):
            np.testing.assert_allclose(getattr(batch, field)[s], getattr(one, field), rtol=1e-12, atol=1e-14, err_msg=field)
    np.testing.assert_array_equal(batch.kernel_steps[0], np.arange(0, 21, 5))


def test_kernel_batch_equals_ntk_matrix():
    W0, X, _, a = _instances()
    H = batched.ntk_matrix_batch(W0, X, a)
    for s in range(3):
        np.testing.assert_allclose(H[s], kernels.ntk_matrix(W0[s], X, a[s]), rtol=1e-12, atol=1e-14)


def test_bad_batches_are_rejected_with_the_expected_shapes():
    W0, X, Y, a = _instances()
    with pytest.raises(ValueError, match=r"eta must have shape \(3,\)"):
        batched.gradient_descent_batch(W0, X, Y, a, jnp.ones(2), steps=4)
    with pytest.raises(ValueError, match="one sign array per run"):
        batched.ntk_matrix_batch(W0, X, a[:2])
    with pytest.raises(ValueError, match="record_every must divide"):
        batched.gradient_descent_batch(W0, X, Y, a, jnp.ones(3), steps=4, record_every=3)
