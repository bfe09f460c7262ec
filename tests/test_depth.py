"""ntkprefix.depth: the deep stacks, the composition of the one-layer bounds, the Lipschitz bound of one layer and the
a-priori propagation, each against an independent computation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkprefix as nk
from ntkprefix import depth, sampling


def _instance(seed=0, *, m=64, D=3, w=1.0, L=6, d=4):
    inst = sampling.deep_prefix_instance(jax.random.PRNGKey(seed), d=d, L=L, m=m, depth=D, weight_norm=w,
                                         entry_bound=1.0)
    layers = [depth.PrefixLayer(inst.W_Q[l], inst.W_K[l], inst.W_V[l], inst.P[l] @ inst.W_K[l], inst.P[l] @ inst.W_V[l])
              for l in range(D)]
    return inst, layers


def _dense(Y, layer):
    d = Y.shape[1]
    Q, K, V = Y @ layer.W_Q, Y @ layer.W_K, Y @ layer.W_V
    scores = jnp.concatenate([Q @ layer.K_P.T, Q @ K.T], axis=1) / math.sqrt(d)
    return jax.nn.softmax(scores, axis=1) @ jnp.concatenate([layer.V_P, V], axis=0)


@pytest.mark.parametrize("residual", [True, False])
def test_deep_prefix_attention_is_the_composition_of_dense_softmaxes(residual):
    inst, layers = _instance()
    out = depth.deep_prefix_attention(inst.X, layers, residual=residual)
    Y = inst.X
    for l, layer in enumerate(layers):
        Y = Y + _dense(Y, layer) if residual else _dense(Y, layer)
        np.testing.assert_allclose(out[l + 1], Y, rtol=1e-13, atol=1e-14)


def test_deep_ntk_attention_with_an_accurate_map_matches_and_reports_local_errors():
    inst, layers = _instance(w=0.5)
    phi = nk.taylor_feature_map(4, 8)
    sums = [nk.reduce_prefix(layer.K_P, layer.V_P, phi) for layer in layers]
    exact = depth.deep_prefix_attention(inst.X, layers)
    ntk, local = depth.deep_ntk_attention(inst.X, layers, sums, [phi] * len(layers))
    assert float(jnp.max(jnp.abs(ntk[-1] - exact[-1]))) < 1e-12
    # the local error of layer l is the one-layer error at the NTK stack's own input
    l = 1
    Q, K, V = (ntk[l] @ W for W in (layers[l].W_Q, layers[l].W_K, layers[l].W_V))
    direct = jnp.max(jnp.abs(nk.ntk_attention(Q, K, V, *sums[l], phi) - nk.prefix_attention(Q, K, V, layers[l].K_P,
                                                                                            layers[l].V_P)))
    assert float(local[l]) == pytest.approx(float(direct), rel=1e-12, abs=1e-18)
    with pytest.raises(ValueError, match="one \\(Z, k\\) and one feature map per layer"):
        depth.deep_ntk_attention(inst.X, layers, sums[:1], [phi])


def test_composed_bound_is_the_unrolled_recursion():
    betas, lams = [1e-3, 2e-3, 5e-4], [0.5, 2.0, 3.0]
    # E_1 <= b1; E_2 <= (1 + L2) b1 + b2; E_3 <= (1 + L3)((1 + L2) b1 + b2) + b3
    expected = (1 + 3.0) * ((1 + 2.0) * 1e-3 + 2e-3) + 5e-4
    assert depth.composed_error_bound(betas, lams) == pytest.approx(expected, rel=1e-15)
    assert depth.composed_error_bound(betas, lams, residual=False) == pytest.approx(3.0 * (2.0 * 1e-3 + 2e-3) + 5e-4)
    assert depth.composed_error_bound([1.0, math.inf], [1.0, 1.0]) == math.inf


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("w", [0.5, 2.0])
def test_lipschitz_bound_dominates_difference_quotients_on_segments(seed, w):
    inst, layers = _instance(seed, w=w)
    key = jax.random.PRNGKey(100 + seed)
    X = inst.X
    for layer in layers:
        for delta in (1e-4, 1e-2, 0.3):  # small and large segments: the bound holds on the whole segment
            key, sub = jax.random.split(key)
            other = X + delta * jax.random.uniform(sub, X.shape, X.dtype, -1.0, 1.0)
            quotient = float(jnp.max(jnp.abs(_dense(other, layer) - _dense(X, layer)))) / float(jnp.max(jnp.abs(other - X)))
            bound = depth.attention_lipschitz_bound(layer, X, other)
            assert quotient <= bound * (1 + 1e-9), (quotient, bound)
        X = X + _dense(X, layer)


def test_a_priori_bounds_dominate_the_stack_and_are_attained_in_their_shape():
    for w in (0.5, 1.0, 3.0):
        inst, layers = _instance(w=w, D=4, m=128)
        apriori = depth.a_priori_layer_bounds(depth=4, input_bound=1.0, prefix_bound=1.0, weight_norm=w, d=4)
        stack = depth.deep_prefix_attention(inst.X, layers)
        for l, layer in enumerate(layers):
            Y = np.asarray(stack[l])
            assert np.max(np.abs(Y)) <= apriori[l].input_bound * (1 + 1e-12)
            assert np.max(np.abs(Y @ np.asarray(layer.W_Q) @ np.asarray(layer.K_P).T)) / 2 <= apriori[l].score_range
            assert depth.attention_lipschitz_bound(layer, Y, Y) <= apriori[l].lipschitz
    # the recursion b_l = b_{l-1} + w max(b_{l-1}, b_P), and without the residual w B_l
    bounds = depth.a_priori_layer_bounds(depth=3, input_bound=1.0, prefix_bound=2.0, weight_norm=0.5, d=4)
    assert [b.output_bound for b in bounds] == [2.0, 3.0, 4.5]
    assert bounds[1].score_range == pytest.approx(2 * 0.25 * 2.0 * 2.0)
    flat = depth.a_priori_layer_bounds(depth=2, input_bound=1.0, prefix_bound=1.0, weight_norm=0.5, d=4, residual=False)
    assert [b.output_bound for b in flat] == [0.5, 0.5]


def test_a_priori_arithmetic_by_hand_at_a_non_degenerate_d():
    # issue 19: the schedule is loose by design (about 1e12-fold), so a wrong power of d in it would pass every check;
    # its arithmetic is pinned here at d = 9 (sqrt(d) = 3, d/2 = 4.5, d^(1/4) = 1.73: a wrong power differs), w = 0.5,
    # b_0 = 1, b_P = 2, with input slack 0.1 (layer 2: b_in = 2.1 > b_P, so B = b_in): S = sqrt(d) w^2 b_in B,
    # Lambda = w + 4 sqrt(d) w^3 B (B + b_in),
    # b_out = b + w B, B = max(b_in, b_P), b_in = b + slack (the depth module's docstring)
    bounds = depth.a_priori_layer_bounds(depth=2, input_bound=1.0, prefix_bound=2.0, weight_norm=0.5, d=9,
                                         input_slack=0.1)
    expected = [dict(input_bound=1.1, key_value_bound=1.0, score_range=1.65, lipschitz=9.8, output_bound=2.0),
                dict(input_bound=2.1, key_value_bound=1.05, score_range=3.3075, lipschitz=13.73, output_bound=3.05)]
    for got, want in zip(bounds, expected):
        for field, value in want.items():
            assert getattr(got, field) == pytest.approx(value, rel=1e-12), (field, getattr(got, field), value)


def test_instances_attain_their_bounds():
    inst = sampling.deep_prefix_instance(jax.random.PRNGKey(1), d=4, L=5, m=33, depth=3, weight_norm=0.7,
                                         entry_bound=1.5)
    assert float(jnp.max(jnp.abs(inst.X))) == pytest.approx(1.5)
    np.testing.assert_allclose(np.max(np.abs(np.asarray(inst.P)), axis=(1, 2)), 1.5)
    for W in (*inst.W_Q, *inst.W_K, *inst.W_V):
        assert depth.operator_inf_norm(W) == pytest.approx(0.7, rel=1e-12)


def test_lipschitz_bound_covers_the_value_path():
    """A perturbation that moves every input value along the column of W_V with the largest absolute sum: with a
    one-row prefix and small scores the output moves by about a_V L / (L + 1) times the perturbation."""
    inst, layers = _instance(3, m=1, w=0.25, D=1)
    layer = layers[0]
    column = int(np.argmax(np.sum(np.abs(np.asarray(layer.W_V)), axis=0)))
    signs = jnp.sign(layer.W_V[:, column])
    delta = 1e-4
    other = inst.X + delta * signs[None, :]
    quotient = float(jnp.max(jnp.abs(_dense(other, layer) - _dense(inst.X, layer)))) / delta
    assert quotient > 0.7 * depth.operator_inf_norm(layer.W_V)  # the value term dominates here
    assert quotient <= depth.attention_lipschitz_bound(layer, inst.X, other)
