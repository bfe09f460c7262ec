"""Property tests: the theorems' conditions fuzzed by hypothesis (profile from HYPOTHESIS_PROFILE, or "ci" when CI
is set: derandomized, 200 examples per property)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import ntkprefix as nk
from ntkprefix import bounds, kernels, sampling
from tests.strategies import ball_perturbations, section3_problems, theorem_4_1_instances
from tests.test_attention import float32_tolerance


def _theorem_4_1_error_and_bound(inst, g):
    m, d = inst.K_P.shape
    phi = nk.taylor_feature_map(d, g)
    Z, k = nk.reduce_prefix(inst.K_P, inst.V_P, phi)
    T = nk.ntk_attention(inst.Q, inst.K, inst.V, Z, k, phi)
    reference = nk.prefix_attention(inst.Q, inst.K, inst.V, inst.K_P, inst.V_P)
    bound = bounds.theorem_4_1_bound(
        score_range=nk.max_abs_score(inst.Q, inst.K_P),
        score_abs_range=nk.max_abs_score(inst.Q, inst.K_P, absolute_terms=True),
        degree=g, value_bound=sampling.entry_norms(inst)["V_C"], m=m, L=inst.Q.shape[0], d=d,
    )
    return float(jnp.max(jnp.abs(T - reference))), bound


@given(theorem_4_1_instances())
def test_rigorous_bound_of_theorem_4_1_holds(case):
    inst, b, g = case
    assert max(sampling.entry_norms(inst).values()) <= b * (1 + 1e-12)  # met by construction
    error, bound = _theorem_4_1_error_and_bound(inst, g)
    assert error <= bound.total, f"error {error:.3e} > bound {bound.total:.3e} ({bound})"


@given(theorem_4_1_instances(meets=False, max_entry=0.5))
def test_rigorous_bound_needs_no_entry_condition(case):
    # The computable bound uses the realised score range, so it holds outside the entry condition too: what the
    # condition buys is a bound that falls like 1/poly(m) (see the large_entries control of thm4_1).
    inst, b, g = case
    assert max(sampling.entry_norms(inst).values()) >= 2 * b * (1 - 1e-12)  # broken by construction
    error, bound = _theorem_4_1_error_and_bound(inst, g)
    assert error <= bound.total


@given(
    st.sampled_from([(1, 2, 3, 1), (2, 4, 5, 17), (3, 6, 8, 64), (4, 2, 2, 200)]),  # (d, g even, L, m)
    st.integers(0, 2**31 - 1),
    st.floats(0.1, 1.5, allow_nan=False, allow_subnormal=False),
    st.booleans(),
)
def test_reduction_is_exact_for_the_polynomial_kernel(shape, seed, scale, causal):
    # Even degree: T_g(s) > 0 for every s, so the Taylor-replaced attention is a well-posed softmax-like average.
    d, g, L, m = shape
    rng = np.random.default_rng(seed)
    Q, K, V = (rng.uniform(-scale, scale, (L, d)) for _ in range(3))
    K_P, V_P = rng.uniform(-scale, scale, (m, d)), rng.uniform(-scale, scale, (m, d))
    phi = nk.taylor_feature_map(d, g)
    Z, k = nk.reduce_prefix(K_P, V_P, phi)
    out = np.asarray(nk.ntk_attention(Q, K, V, Z, k, phi, causal=causal))
    sp = Q @ K_P.T / math.sqrt(d)
    wp = sum(sp**j / math.factorial(j) for j in range(g + 1))
    wx = np.exp(Q @ K.T / math.sqrt(d)) * (np.tril(np.ones((L, L))) if causal else 1.0)
    expected = (wx @ V + wp @ V_P) / (wx.sum(axis=1) + wp.sum(axis=1))[:, None]
    assert np.abs(out - expected).max() <= 1e-12 * max(np.abs(expected).max(), 1e-300) + 1e-15


@given(section3_problems())
def test_ntk_is_symmetric_positive_semidefinite(problem):
    W, X, a = problem
    H = np.asarray(kernels.ntk_matrix(W, X, a))
    scale = max(np.abs(H).max(), 1e-300)
    assert np.abs(H - H.T).max() <= 1e-12 * scale
    assert np.linalg.eigvalsh(H)[0] >= -1e-10 * scale


@given(section3_problems())
def test_closed_form_ntk_equals_autodiff(problem):
    W, X, a = problem
    H = kernels.ntk_matrix(W, X, a)
    H_auto = kernels.ntk_matrix_autodiff(W, X, a)
    assert float(jnp.linalg.norm(H - H_auto)) <= 1e-10 * float(jnp.linalg.norm(H_auto)) + 1e-300


@given(st.data())
def test_kernel_perturbation_is_at_most_linear_in_R(data):
    # At most linear: ||H(W + R U) - H(W)|| / R does not grow as R halves. Along a ray f(R) = a R + b R^2 + ..., so
    # f(R) / f(R/2) = 2 (1 + O(R)); with R <= 0.01 and the model's O(1) curvature the deviation stays below 5%.
    W, X, a = data.draw(section3_problems(shapes=((3, 2, 8, 2), (4, 3, 64, 1), (5, 4, 200, 3))))
    U, R = data.draw(ball_perturbations(W))
    H0 = kernels.ntk_matrix(W, X, a)
    f_R = float(jnp.linalg.norm(kernels.ntk_matrix(W + R * U, X, a) - H0))
    f_half = float(jnp.linalg.norm(kernels.ntk_matrix(W + 0.5 * R * U, X, a) - H0))
    assert f_R >= 2 * f_half / 1.05, f"f(R)={f_R:.3e}, f(R/2)={f_half:.3e}: super-linear growth as R shrinks"


@given(
    st.integers(0, 2**31 - 1),
    st.floats(1.0, 1e3, allow_nan=False, allow_subnormal=False),
    st.booleans(),
)
def test_float32_ntk_attention_is_finite_and_accurate_for_extreme_scores(seed, max_score, causal):
    L, d, m = 8, 4, 32
    rng = np.random.default_rng(seed)
    Q, K, V = rng.normal(size=(L, d)), rng.normal(size=(L, d)), rng.normal(size=(L, d))
    K_P, V_P = rng.normal(size=(m, d)), rng.normal(size=(m, d))
    Q = Q * (max_score / np.abs(Q @ K.T / math.sqrt(d)).max())  # the largest |score| is max_score
    phi = nk.elu_feature_map(d)
    Z, k = nk.reduce_prefix(K_P, V_P, phi)
    expected = np.asarray(nk.ntk_attention(Q, K, V, Z, k, phi, causal=causal))  # float64
    out = nk.ntk_attention(*(jnp.asarray(x, jnp.float32) for x in (Q, K, V, Z, k)), phi, causal=causal)
    assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))
    assert np.abs(np.asarray(out, np.float64) - expected).max() <= float32_tolerance(Q, K, V, V_P, phi.r)
