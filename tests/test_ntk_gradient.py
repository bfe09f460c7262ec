"""The gradient of NTK-Attention in its learned parameters (Z, k), including at Z = 0, k = 0: the authors'
initialisation [code], where the log-space row scale must not turn the derivative into 0."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkprefix as nk


def _central_difference(f, x, index, h=1e-6):
    e = jnp.zeros_like(x).at[index].set(h)
    return float((f(x + e) - f(x - e)) / (2 * h))


@pytest.mark.parametrize("zero", [True, False])
@pytest.mark.parametrize("kind", ["elu", "taylor"])
def test_gradient_in_Z_and_k_equals_central_differences(kind, zero):
    key = jax.random.PRNGKey(3)
    L, d = 6, 4
    Q, K, V = jax.random.normal(key, (3, L, d), jnp.float64)
    phi = nk.elu_feature_map(d) if kind == "elu" else nk.taylor_feature_map(d, 2)
    kz, kk = jax.random.split(key)
    Z = jnp.zeros((phi.r, d)) if zero else jax.random.normal(kz, (phi.r, d))
    k = jnp.zeros((phi.r,)) if zero else 3.0 + jax.random.uniform(kk, (phi.r,))
    weights = jax.random.normal(jax.random.PRNGKey(9), (L, d))

    def objective(Z, k):
        return jnp.sum(weights * nk.ntk_attention(Q, K, V, Z, k, phi))

    gZ, gk = jax.grad(objective, argnums=(0, 1))(Z, k)
    assert float(jnp.abs(gZ).max()) > 1e-3  # the derivative is not 0, at zero included
    for index in [(0, 0), (phi.r - 1, d - 1), (1, 2)]:
        np.testing.assert_allclose(float(gZ[index]), _central_difference(lambda z: objective(z, k), Z, index),
                                   rtol=1e-6, atol=1e-9)
    for index in [(0,), (phi.r - 1,)]:
        np.testing.assert_allclose(float(gk[index]), _central_difference(lambda v: objective(Z, v), k, index),
                                   rtol=1e-6, atol=1e-9)


def test_zero_prefix_term_still_gives_the_input_only_attention():
    key = jax.random.PRNGKey(0)
    Q, K, V = jax.random.normal(key, (3, 5, 4), jnp.float64)
    phi = nk.elu_feature_map(4)
    out = nk.ntk_attention(Q, K, V, jnp.zeros((4, 4)), jnp.zeros(4), phi)
    np.testing.assert_allclose(out, jax.nn.softmax(Q @ K.T / 2.0, axis=1) @ V, rtol=1e-13)
