"""neural-tangents imports (it needs TensorFlow importable) and agrees with jax.jacobian on a function of ours."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkprefix as nk


def test_neural_tangents_imports():
    import neural_tangents

    assert neural_tangents.__version__ == "0.6.5"


@pytest.mark.parametrize("implementation", ["AUTO", "JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES"])
def test_empirical_ntk_fn_agrees_with_jax_jacobian(implementation):
    import neural_tangents as nt

    d, L = 3, 4
    phi = nk.taylor_feature_map(d, 2)
    rng = np.random.default_rng(0)
    W = jnp.asarray(rng.normal(size=(3, d, d)) / np.sqrt(d))

    def apply_fn(params, x):
        # NTK-Attention as a function of its trainable (Z, k), on an input x of shape (L, d).
        Z, k = params
        return nk.ntk_attention(x @ W[0], x @ W[1], x @ W[2], Z, k, phi).ravel()

    params = (jnp.asarray(rng.normal(size=(phi.r, d))), jnp.asarray(rng.uniform(0.5, 1.5, size=phi.r)))
    x1, x2 = jnp.asarray(rng.normal(size=(L, d))), jnp.asarray(rng.normal(size=(L, d)))

    kernel_fn = nt.empirical_ntk_fn(
        apply_fn, trace_axes=(), vmap_axes=None, implementation=getattr(nt.NtkImplementation, implementation)
    )
    ntk = kernel_fn(x1, x2, params)

    def flat_jacobian(x):
        jac = jax.jacobian(apply_fn)(params, x)
        return jnp.concatenate([j.reshape(j.shape[0], -1) for j in jac], axis=1)

    expected = flat_jacobian(x1) @ flat_jacobian(x2).T
    assert ntk.shape == expected.shape == (L * d, L * d)
    np.testing.assert_allclose(ntk, expected, rtol=1e-10, atol=1e-12)
