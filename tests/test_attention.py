import math

import jax.numpy as jnp
import numpy as np
import pytest

import ntkprefix as nk
from tests import tolerances


def dense_prefix_attention(Q, K, V, K_P, V_P, causal=False):
    """Independent float64 reference: one softmax over all m + L scores (max-shifted)."""
    L, d = Q.shape
    scores_p = Q @ K_P.T / math.sqrt(d)
    scores_x = Q @ K.T / math.sqrt(d)
    if causal:
        scores_x = np.where(np.tril(np.ones((L, L), bool)), scores_x, -np.inf)
    scores = np.concatenate([scores_p, scores_x], axis=1)
    w = np.exp(scores - scores.max(axis=1, keepdims=True))
    return w @ np.concatenate([V_P, V]) / w.sum(axis=1, keepdims=True)


def random_qkv(rng, L, d, m, d_v=None, scale=1.0):
    d_v = d_v or d
    return (
        rng.normal(size=(L, d)) * scale,
        rng.normal(size=(L, d)) * scale,
        rng.normal(size=(L, d_v)),
        rng.normal(size=(m, d)) * scale,
        rng.normal(size=(m, d_v)),
    )


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("L,d,m,chunk", [(1, 1, 1, 4096), (5, 3, 37, 8), (16, 8, 1000, 128), (7, 4, 64, 64)])
def test_prefix_attention_matches_dense_softmax(L, d, m, chunk, causal):
    rng = np.random.default_rng(L + d + m)
    Q, K, V, K_P, V_P = random_qkv(rng, L, d, m, d_v=d + 1, scale=2.0)
    out = nk.prefix_attention(Q, K, V, K_P, V_P, causal=causal, chunk_size=chunk)
    np.testing.assert_allclose(out, dense_prefix_attention(Q, K, V, K_P, V_P, causal), rtol=1e-12, atol=1e-13)


def test_prefix_is_never_masked_and_input_is():
    # With causal=True the first query sees every prefix key but only the first input key.
    rng = np.random.default_rng(0)
    Q, K, V, K_P, V_P = random_qkv(rng, 4, 2, 3)
    out = np.asarray(nk.prefix_attention(Q, K, V, K_P, V_P, causal=True))
    first = dense_prefix_attention(Q[:1], K[:1], V[:1], K_P, V_P)
    np.testing.assert_allclose(out[0], first[0], rtol=1e-12)


def test_prefix_attention_is_stable_for_huge_scores():
    rng = np.random.default_rng(1)
    Q, K, V, K_P, V_P = random_qkv(rng, 6, 4, 50, scale=30.0)  # scores in the thousands
    out = nk.prefix_attention(Q, K, V, K_P, V_P, chunk_size=16)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, dense_prefix_attention(Q, K, V, K_P, V_P), rtol=1e-10, atol=1e-12)


def test_prefix_attention_streams_m_2_to_22_exactly():
    # A prefix made of n copies of a block B attends like B alone with log(n) added to B's scores.
    L, d, b = 4, 4, 64
    n = 2**22 // b
    rng = np.random.default_rng(2)
    Q, K, V, B_K, B_V = random_qkv(rng, L, d, b)
    out = nk.prefix_attention(Q, K, V, jnp.tile(B_K, (n, 1)), jnp.tile(B_V, (n, 1)), chunk_size=8192)
    scores = np.concatenate([Q @ B_K.T / math.sqrt(d) + math.log(n), Q @ K.T / math.sqrt(d)], axis=1)
    w = np.exp(scores - scores.max(axis=1, keepdims=True))
    expected = w @ np.concatenate([B_V, V]) / w.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, rtol=1e-9)


def reference_ntk_attention(Q, K, V, Z, k, phi_Q, causal=False):
    """Independent float64 reference for Algorithm 2 with positive w (max-shifted by hand)."""
    L, d = Q.shape
    s = Q @ K.T / math.sqrt(d)
    if causal:
        s = np.where(np.tril(np.ones((L, L), bool)), s, -np.inf)
    u, w = phi_Q @ Z, phi_Q @ k
    assert np.all(w > 0)
    M = np.maximum(s.max(axis=1), np.log(w))
    e = np.exp(s - M[:, None])
    return (e @ V + u * np.exp(-M)[:, None]) / (e.sum(axis=1) + w * np.exp(-M))[:, None]


@pytest.mark.parametrize("causal", [False, True])
def test_ntk_attention_matches_formula(causal):
    rng = np.random.default_rng(3)
    L, d, m = 9, 5, 40
    Q, K, V, K_P, V_P = random_qkv(rng, L, d, m)
    phi = nk.elu_feature_map(d)
    Z, k = nk.reduce_prefix(K_P, V_P, phi)
    out = nk.ntk_attention(Q, K, V, Z, k, phi, causal=causal)
    expected = reference_ntk_attention(Q, K, V, np.asarray(Z), np.asarray(k), np.asarray(phi(Q)), causal)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_ntk_attention_float32_finite_and_accurate_for_scores_up_to_1e3(causal):
    rng = np.random.default_rng(4)
    L, d, m = 12, 4, 64
    Q, K, V, K_P, V_P = random_qkv(rng, L, d, m)
    # Scale queries so the largest |score| is 1e3; half the rows see +1e3 (input dominates), half -1e3 (prefix does).
    s = Q @ K.T / math.sqrt(d)
    Q = Q * (1e3 / np.abs(s).max(axis=1, keepdims=True)) * np.where(np.arange(L) % 2 == 0, 1.0, -1.0)[:, None]
    phi = nk.elu_feature_map(d)
    Z, k = nk.reduce_prefix(K_P, V_P, phi)
    expected = reference_ntk_attention(Q, K, V, np.asarray(Z), np.asarray(k), np.asarray(phi(jnp.asarray(Q))), causal)
    f32 = [jnp.asarray(x, jnp.float32) for x in (Q, K, V, Z, k)]
    out = nk.ntk_attention(*f32, phi, causal=causal)
    assert out.dtype == jnp.float32
    assert np.all(np.isfinite(out))
    assert np.abs(Q @ K.T / math.sqrt(d)).max() == pytest.approx(1e3)
    # derived bound of the float32 computation plus that of the float64 reference (the same algorithm written in
    # numpy, on phi(Q) from the library): tests/tolerances.py, elu_ntk_attention_rounding
    tolerance = sum(
        tolerances.elu_ntk_attention_rounding(Q, K, V, Z, k, d=d, causal=causal, u=u, inputs_rounded=rounded)
        for u, rounded in ((2.0**-24, True), (2.0**-53, False))
    )
    np.testing.assert_allclose(out, expected, atol=tolerance, rtol=0)


def test_ntk_attention_float32_row_with_one_tiny_score_and_no_prefix_mass():
    # Causal row 0 sees one input key with score -200 (e^-200 underflows in float32) and phi(q) = 0 exactly
    # (ELU+1 of a very negative q): the output must be that key's value, not 0/0.
    Q = jnp.array([[-400.0], [1.0]], jnp.float32)
    K = jnp.array([[0.5], [0.5]], jnp.float32)
    V = jnp.array([[3.0], [5.0]], jnp.float32)
    phi = nk.elu_feature_map(1)
    out = nk.ntk_attention(Q, K, V, jnp.ones((1, 1), jnp.float32), jnp.ones((1,), jnp.float32), phi, causal=True)
    assert float(phi(Q)[0, 0]) == 0.0
    np.testing.assert_allclose(out[0], [3.0], rtol=1e-6)
    assert bool(jnp.all(jnp.isfinite(out)))


def test_ntk_attention_float32_where_the_exp_max_trick_overflows():
    # exp(100) is inf in float32: a plain exp or the authors' exp(max) scaling gives inf/nan here.
    Q = jnp.full((2, 1), 10.0, jnp.float32)
    K = jnp.full((2, 1), 10.0, jnp.float32)
    V = jnp.array([[1.0], [3.0]], jnp.float32)
    phi = nk.elu_feature_map(1)
    out = nk.ntk_attention(Q, K, V, jnp.zeros((1, 1), jnp.float32), jnp.ones((1,), jnp.float32), phi)
    np.testing.assert_allclose(out, [[2.0], [2.0]], rtol=1e-6)


# ---- bad input: a ValueError naming what arrived and what was expected, never a silent NaN ----


def _inputs(L=3, d=2, m=5):
    return random_qkv(np.random.default_rng(5), L, d, m)


def test_prefix_attention_rejects_mismatched_shapes():
    Q, K, V, K_P, V_P = _inputs()
    with pytest.raises(ValueError, match=r"K_P must have shape \(m, 2\).*got \(5, 3\)"):
        nk.prefix_attention(Q, K, V, np.ones((5, 3)), V_P)
    with pytest.raises(ValueError, match=r"V_P must have shape \(5, 2\).*got \(4, 2\)"):
        nk.prefix_attention(Q, K, V, K_P, V_P[:4])
    with pytest.raises(ValueError, match=r"K must have shape \(3, 2\).*got \(3, 1\)"):
        nk.prefix_attention(Q, K[:, :1], V, K_P, V_P)
    with pytest.raises(ValueError, match=r"Q must have shape \(L, d\), got shape \(3,\)"):
        nk.prefix_attention(Q[:, 0], K, V, K_P, V_P)


def test_prefix_attention_rejects_empty_prefix():
    Q, K, V, _, _ = _inputs()
    with pytest.raises(ValueError, match=r"m >= 1 rows, got K_P of shape \(0, 2\)"):
        nk.prefix_attention(Q, K, V, np.zeros((0, 2)), np.zeros((0, 2)))


@pytest.mark.parametrize("which", [0, 3, 4])
def test_non_finite_input_is_rejected(which):
    arrays = list(_inputs())
    arrays[which] = arrays[which].copy()
    arrays[which][1, 0] = np.nan
    name = ["Q", "K", "V", "K_P", "V_P"][which]
    with pytest.raises(ValueError, match=rf"{name} holds 1 non-finite value\(s\) \(first at index \(1, 0\)"):
        nk.prefix_attention(*arrays)


def test_ntk_attention_rejects_feature_map_of_another_d():
    Q, K, V, K_P, V_P = _inputs()
    phi3 = nk.taylor_feature_map(3, 2)
    with pytest.raises(ValueError, match=r"built for d=3, but Q has shape \(3, 2\)"):
        nk.ntk_attention(Q, K, V, np.zeros((phi3.r, 2)), np.zeros(phi3.r), phi3)


def test_ntk_attention_rejects_wrong_Z_and_k():
    Q, K, V, _, _ = _inputs()
    phi = nk.taylor_feature_map(2, 2)  # r = 6
    with pytest.raises(ValueError, match=r"Z must have shape \(r, d_v\) = \(6, 2\).*got \(5, 2\)"):
        nk.ntk_attention(Q, K, V, np.zeros((5, 2)), np.zeros(6), phi)
    with pytest.raises(ValueError, match=r"k must have shape \(r,\) = \(6,\).*got \(6, 1\)"):
        nk.ntk_attention(Q, K, V, np.zeros((6, 2)), np.zeros((6, 1)), phi)
    with pytest.raises(ValueError, match="Z holds 1 non-finite"):
        nk.ntk_attention(Q, K, V, _with_inf((6, 2)), np.ones(6), phi)


def _with_inf(shape):
    x = np.ones(shape)
    x[0, 0] = np.inf
    return x


def test_project_rejects_mismatched_weights():
    X, P = np.ones((3, 4)), np.ones((5, 4))
    W = np.ones((4, 4))
    with pytest.raises(ValueError, match=r"W_K must have shape \(4, d_out\).*got \(3, 4\)"):
        nk.project(X, P, W, np.ones((3, 4)), W)
    with pytest.raises(ValueError, match=r"P must have shape \(m, 4\).*got \(5, 2\)"):
        nk.project(X, np.ones((5, 2)), W, W, W)
    proj = nk.project(X, P, W, W, W)
    assert proj.K_P.shape == (5, 4) and proj.Q.shape == (3, 4)


def test_row_mask_leaves_out_the_false_rows_and_counts_the_rest():
    # The streaming state over a fixed-shape buffer partly filled with prefix rows: the False rows get weight 0 and m
    # counts only the True ones; the result is prefix attention over the True rows.
    rng = np.random.default_rng(6)
    L, d, m = 5, 4, 60
    Q, K, V = (jnp.asarray(rng.normal(size=(L, d))) for _ in range(3))
    K_P, V_P = jnp.asarray(rng.normal(size=(m, d))), jnp.asarray(rng.normal(size=(m, d)))
    mask = np.arange(m) % 4 != 1
    state = nk.absorb_prefix(nk.empty_prefix_state(Q, d), Q, K_P, V_P, chunk_size=16, row_mask=jnp.asarray(mask))
    assert state.m == int(mask.sum())
    out = nk.finish_prefix_attention(state, Q, K, V)
    expected = dense_prefix_attention(*(np.asarray(x) for x in (Q, K, V, K_P[mask], V_P[mask])))
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    for bad in (jnp.asarray(mask[:-1]), jnp.asarray(mask.astype(np.int32))):
        with pytest.raises(ValueError, match="row_mask must be a bool array"):
            nk.absorb_prefix(nk.empty_prefix_state(Q, d), Q, K_P, V_P, row_mask=bad)
