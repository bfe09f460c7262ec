import math

import jax.numpy as jnp
import numpy as np
import pytest

import ntkprefix as nk


def taylor_prefix_attention(Q, K, V, K_P, V_P, g, causal=False):
    """Prefix attention with exp replaced by its degree-g Taylor polynomial on the prefix scores, computed directly."""
    L, d = Q.shape
    sp = Q @ K_P.T / math.sqrt(d)
    wp = sum(sp**j / math.factorial(j) for j in range(g + 1))
    wx = np.exp(Q @ K.T / math.sqrt(d))
    if causal:
        wx = wx * np.tril(np.ones((L, L)))
    return (wx @ V + wp @ V_P) / (wx.sum(axis=1) + wp.sum(axis=1))[:, None]


@pytest.mark.parametrize(
    "d,g,L,m,chunk",
    [(1, 3, 4, 1, None), (2, 2, 8, 100, 16), (3, 4, 5, 257, 64), (4, 6, 16, 1000, None), (6, 3, 3, 33, 7), (8, 2, 32, 4096, 1000)],
)
@pytest.mark.parametrize("causal", [False, True])
def test_reduction_then_ntk_attention_is_exact_for_the_taylor_kernel(d, g, L, m, chunk, causal):
    rng = np.random.default_rng(d * 1000 + g * 100 + m)
    Q, K, V = (rng.uniform(-1, 1, (L, d)) for _ in range(3))
    K_P, V_P = rng.uniform(-1, 1, (m, d)), rng.uniform(-1, 1, (m, d))
    phi = nk.taylor_feature_map(d, g)
    Z, k = nk.reduce_prefix(K_P, V_P, phi, chunk_size=chunk)
    assert Z.shape == (phi.r, d) and k.shape == (phi.r,)
    out = np.asarray(nk.ntk_attention(Q, K, V, Z, k, phi, causal=causal))
    expected = taylor_prefix_attention(Q, K, V, K_P, V_P, g, causal)
    rel = np.abs(out - expected).max() / np.abs(expected).max()
    assert rel <= 1e-12, f"relative error {rel:.3e}"


def test_reduction_equals_dense_sums_and_is_chunk_invariant():
    rng = np.random.default_rng(0)
    K_P, V_P = rng.normal(size=(777, 3)), rng.normal(size=(777, 2))
    phi = nk.taylor_feature_map(3, 3)
    F = np.asarray(phi(jnp.asarray(K_P)))
    for chunk in (1, 10, 256, 777, 5000):
        Z, k = nk.reduce_prefix(K_P, V_P, phi, chunk_size=chunk)
        np.testing.assert_allclose(Z, F.T @ V_P, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(k, F.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_stream_equals_array():
    rng = np.random.default_rng(1)
    K_P, V_P = rng.normal(size=(300, 4)), rng.normal(size=(300, 5))
    phi = nk.elu_feature_map(4)
    chunks = ((K_P[i : i + 70], V_P[i : i + 70]) for i in range(0, 300, 70))
    sums = nk.reduce_prefix_stream(chunks, phi, d_v=5)
    Z, k = nk.reduce_prefix(K_P, V_P, phi)
    assert sums.m == 300
    np.testing.assert_allclose(sums.Z, Z, rtol=1e-12)
    np.testing.assert_allclose(sums.k, k, rtol=1e-12)


def test_reduction_bad_input():
    phi = nk.taylor_feature_map(3, 2)
    with pytest.raises(ValueError, match=r"built for d=3, but K_P has shape \(5, 4\)"):
        nk.reduce_prefix(np.ones((5, 4)), np.ones((5, 2)), phi)
    with pytest.raises(ValueError, match=r"same number of rows, got \(5, 3\) and \(4, 2\)"):
        nk.reduce_prefix(np.ones((5, 3)), np.ones((4, 2)), phi)
    with pytest.raises(ValueError, match=r"m >= 1 rows"):
        nk.reduce_prefix(np.ones((0, 3)), np.ones((0, 2)), phi)
    bad = np.ones((5, 3))
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"K_P holds 1 non-finite value\(s\) \(first at index \(2, 1\)"):
        nk.reduce_prefix(bad, np.ones((5, 2)), phi)
    with pytest.raises(ValueError, match="stream held no prefix rows"):
        nk.reduce_prefix_stream(iter(()), phi, d_v=2)
    sums = nk.empty_prefix_sums(phi, d_v=2)
    with pytest.raises(ValueError, match=r"running Z has shape \(10, 2\).*needs \(10, 3\)"):
        nk.accumulate_prefix(sums, np.ones((4, 3)), np.ones((4, 3)), phi)


def test_row_mask_leaves_out_the_false_rows_and_counts_the_rest():
    # A fixed-shape buffer partly filled with prefix rows (how verify/checks/thm4_1.py streams): the False rows add
    # nothing and m counts only the True ones.
    rng = np.random.default_rng(5)
    d, m = 3, 50
    phi = nk.taylor_feature_map(d, 2)
    K, V = jnp.asarray(rng.normal(size=(m, d))), jnp.asarray(rng.normal(size=(m, 2)))
    mask = np.arange(m) % 3 != 0
    empty = nk.empty_prefix_sums(phi, 2)
    masked = nk.accumulate_prefix(empty, K, V, phi, row_mask=jnp.asarray(mask))
    kept = nk.accumulate_prefix(empty, K[mask], V[mask], phi)
    assert masked.m == kept.m == int(mask.sum())
    np.testing.assert_allclose(masked.Z, kept.Z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(masked.k, kept.k, rtol=1e-12, atol=1e-12)
    for bad in (jnp.asarray(mask[:-1]), jnp.asarray(mask.astype(np.int32))):
        with pytest.raises(ValueError, match="row_mask must be a bool array"):
            nk.accumulate_prefix(empty, K, V, phi, row_mask=bad)
