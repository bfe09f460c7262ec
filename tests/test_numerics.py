"""Every matrix product the library compiles asks for full precision (ntkprefix/_numerics.py): on GPUs the DEFAULT
float32 precision is TensorFloat-32 and would break every float32 rounding bound. Checked on the lowered programs, so
it holds on this CPU-only machine too; and on CPU the products are IEEE float32 at every precision."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkprefix as nk
from ntkprefix import depth, kernels, model, perturbation, training

F32 = jnp.float32


def _dot_precisions(fn, *args) -> list[tuple[str, str]]:
    """(lhs, rhs) precision of every dot_general in the lowered program; ("none", "none") where none is stated."""
    lines = [line for line in jax.jit(fn).lower(*args).as_text().splitlines() if "dot_general" in line]
    found = [re.search(r"precision = \[([A-Z]+), ([A-Z]+)\]", line) for line in lines]
    return [m.groups() if m else ("none", "none") for m in found]


def _library_entry_points():
    key = jax.random.PRNGKey(0)
    Q, K, V = (jax.random.normal(k, (8, 4), F32) for k in jax.random.split(key, 3))
    K_P, V_P = jax.random.normal(key, (40, 4), F32), jax.random.normal(jax.random.fold_in(key, 1), (40, 4), F32)
    taylor, elu = nk.taylor_feature_map(4, 3), nk.elu_feature_map(4)
    Z, k = nk.reduce_prefix(K_P, V_P, taylor)
    W = jax.random.normal(key, (4, 32), F32)
    X = jax.random.normal(key, (5, 4), F32)
    Y = jax.random.normal(key, (5, 2), F32)
    a = jnp.where(jax.random.bernoulli(key, 0.5, (2, 32)), 1.0, -1.0).astype(F32)
    state = nk.empty_prefix_state(Q, 4)
    W_layer = jax.random.normal(jax.random.fold_in(key, 2), (4, 4), F32) / 2

    def layer(K_P, V_P):
        return depth.PrefixLayer(W_layer, W_layer, W_layer, K_P, V_P)
    return {
        "prefix_attention": (lambda *x: nk.prefix_attention(*x, chunk_size=16), (Q, K, V, K_P, V_P)),
        "absorb_prefix + finish": (
            lambda Q, K, V, K_P, V_P: nk.finish_prefix_attention(nk.absorb_prefix(state, Q, K_P, V_P), Q, K, V),
            (Q, K, V, K_P, V_P)),
        "ntk_attention (Taylor)": (lambda Q, K, V, Z, k: nk.ntk_attention(Q, K, V, Z, k, taylor), (Q, K, V, Z, k)),
        "ntk_attention (ELU+1)": (lambda Q, K, V: nk.ntk_attention(Q, K, V, Z[:4], k[:4], elu), (Q, K, V)),
        "reduce_prefix": (lambda K_P, V_P: nk.reduce_prefix(K_P, V_P, taylor, chunk_size=16), (K_P, V_P)),
        "project": (lambda X, W: nk.project(X, X, W[:, :4], W[:, 4:8], W[:, 8:12]), (X, W)),
        "ntk_matrix (dense)": (lambda W, X, a: kernels.ntk_matrix(W, X, a, method="dense"), (W, X, a)),
        "ntk_matrix_autodiff": (kernels.ntk_matrix_autodiff, (W, X, a)),
        "loss_gradient": (model.loss_gradient, (W, X, Y, a)),
        "gradient_descent": (lambda W, X, Y, a: training.gradient_descent(W, X, Y, a, eta=1e-3, steps=2).loss,
                             (W, X, Y, a)),
        "deep_prefix_attention": (lambda X, K_P, V_P: depth.deep_prefix_attention(X, [layer(K_P, V_P)])[-1], (X, K_P, V_P)),
        "deep_ntk_attention": (lambda X, K_P, V_P, Z, k: depth.deep_ntk_attention(X, [layer(K_P, V_P)], [(Z, k)], [taylor])[1][0],
                               (X, K_P, V_P, Z, k)),
        "perturbation (DH[U], its adjoint, the majorant)": (
            lambda W, X, a: (perturbation._jvp(W, X, a, W), perturbation._vjp(W, X, a, jnp.eye(10, dtype=F32)),
                             perturbation._majorant(W, X)), (W, X, a)),
    }


@pytest.mark.parametrize("name", list(_library_entry_points()))
def test_every_matrix_product_is_at_full_precision(name):
    fn, args = _library_entry_points()[name]
    precisions = _dot_precisions(fn, *args)
    assert precisions, f"{name}: no matrix product found (the test would be vacuous)"
    assert all(p == ("HIGHEST", "HIGHEST") for p in precisions), (name, precisions)


def test_float32_products_on_cpu_are_ieee_float32():
    # The other half of the claim in ntkprefix/_numerics.py: on CPU, float32 products are float32 (oneDNN included),
    # so the bounds' u = 2^-24 model holds: the error against float64 is within gamma_K sum |a||b|.
    key = jax.random.PRNGKey(3)
    a, b = jax.random.normal(key, (64, 512), F32), jax.random.normal(jax.random.fold_in(key, 1), (512, 256), F32)
    exact = np.asarray(a, np.float64) @ np.asarray(b, np.float64)
    scale = np.abs(np.asarray(a, np.float64)) @ np.abs(np.asarray(b, np.float64))
    u = 2.0**-24
    gamma = 512 * u / (1 - 512 * u)
    for precision in (None, jax.lax.Precision.HIGHEST):
        product = np.asarray(jax.jit(lambda a, b: jnp.matmul(a, b, precision=precision))(a, b), np.float64)
        assert np.all(np.abs(product - exact) <= gamma * scale)
        # and it is not a reduced-precision product: TF32 or bfloat16 inputs would be off by ~1e-3 relative
        assert np.max(np.abs(product - exact) / scale) < 1e-5


@pytest.mark.parametrize("batched", [False, True])
def test_float32_reduction_with_many_features_is_within_its_rounding_bound(batched):
    # Regression: XLA:CPU in jaxlib 0.4.25 compiles a float32 product followed by a multiplication with a constant
    # array into oneDNN's matmul with one SCALAR output scale: the reduction applied its feature weights that way and
    # returned Z off by O(1) once r was large enough for oneDNN (r >= 1287 here), most visibly under vmap.
    # Bound (derived): phi_alpha(k) is g + 2 float32 roundings from exact (the scaling, g - 1 products, the weight),
    # and Z_alpha is a sum of m such terms times v: |Z32 - Z| <= gamma_{m + g + 2} sum_j |phi(k_j)| |v_j|.
    from tests.tolerances import gamma, unit_roundoff

    d, g, m, heads = 8, 5, 700, 2
    phi = nk.taylor_feature_map(d, g)
    assert phi.r >= 1287
    key = jax.random.PRNGKey(11)
    K_P = jax.random.normal(key, (heads, m, d), F32)
    V_P = jax.random.normal(jax.random.fold_in(key, 1), (heads, m, 4), F32)
    if batched:
        Z, k = jax.vmap(lambda K, V: nk.reduce_prefix(K, V, phi))(K_P, V_P)
    else:
        Z, k = (jnp.stack(x) for x in zip(*(nk.reduce_prefix(K_P[h], V_P[h], phi) for h in range(heads))))
    slack = gamma(m + g + 2, unit_roundoff(np.float32))
    for h in range(heads):  # float64 reference (the session enables x64: tests/conftest.py)
        features = np.asarray(phi(jnp.asarray(K_P[h], jnp.float64)))
        V = np.asarray(V_P[h], np.float64)
        assert np.all(np.abs(np.asarray(Z[h], np.float64) - features.T @ V) <= slack * (np.abs(features).T @ np.abs(V)))
        assert np.all(np.abs(np.asarray(k[h], np.float64) - features.sum(axis=0)) <= slack * np.abs(features).sum(axis=0))
