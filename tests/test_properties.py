"""Property tests: the theorems' conditions fuzzed by hypothesis (profile from HYPOTHESIS_PROFILE, or "ci" when CI
is set: derandomized, 200 examples per property; "thorough": 2000, random seed printed; see tests/conftest.py).

Every property states a mathematical fact, and its tolerance is derived from that fact and a stated rounding model
(tests/tolerances.py), never chosen to make the test pass. Regression cases found by earlier runs are pinned with
@example, so they run under every profile."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

import ntkprefix as nk
from ntkprefix import bounds, kernels, model, sampling
from tests import tolerances
from tests.strategies import SECTION3_SHAPES, ball_perturbations, section3_problems, theorem_4_1_instances


def _theorem_4_1_error_and_bound(inst, g):
    m, d = inst.K_P.shape
    phi = nk.taylor_feature_map(d, g)
    Z, k = nk.reduce_prefix(inst.K_P, inst.V_P, phi)
    T = nk.ntk_attention(inst.Q, inst.K, inst.V, Z, k, phi)
    reference = nk.prefix_attention(inst.Q, inst.K, inst.V, inst.K_P, inst.V_P)
    bound = bounds.theorem_4_1_bound(
        score_range=nk.max_abs_score(inst.Q, inst.K_P),
        score_abs_range=nk.max_abs_score(inst.Q, inst.K_P, absolute_terms=True),
        input_score_abs_range=nk.max_abs_score(inst.Q, inst.K, absolute_terms=True),
        degree=g, value_bound=sampling.entry_norms(inst)["V_C"], m=m, L=inst.Q.shape[0], d=d,
    )
    return float(jnp.max(jnp.abs(T - reference))), bound


@given(theorem_4_1_instances())
def test_rigorous_bound_of_theorem_4_1_holds(case):
    # |T - O| <= 2 eps/(1 - eps) max|V_C| (exact arithmetic) plus the derived rounding allowance of both computations.
    inst, b, g = case
    assert max(sampling.entry_norms(inst).values()) <= b * (1 + 2.0**-50)  # met by construction, up to one rounding
    error, bound = _theorem_4_1_error_and_bound(inst, g)
    assert error <= bound.total, f"error {error:.3e} > bound {bound.total:.3e} ({bound})"


@given(theorem_4_1_instances(meets=False, max_entry=0.5))
def test_rigorous_bound_needs_no_entry_condition(case):
    # The computable bound uses the realised score range, so it holds outside the entry condition too: what the
    # condition buys is a bound that falls like 1/poly(m) (see the large_entries control of thm4_1).
    inst, b, g = case
    assert max(sampling.entry_norms(inst).values()) >= 2 * b * (1 - 2.0**-50)  # broken by construction
    error, bound = _theorem_4_1_error_and_bound(inst, g)
    assert error <= bound.total


@given(
    st.sampled_from([(1, 2, 3, 1), (2, 4, 5, 17), (3, 6, 8, 64), (4, 2, 2, 200)]),  # (d, g even, L, m)
    st.integers(0, 2**31 - 1),
    st.floats(0.1, 1.5, allow_nan=False, allow_subnormal=False),
    st.booleans(),
)
def test_reduction_is_exact_for_the_polynomial_kernel(shape, seed, scale, causal):
    # In exact arithmetic, Algorithm 2 with the reduced (Z, k) of the degree-g Taylor map IS prefix attention with
    # exp replaced by T_g on the prefix scores. Even degree: T_g(s) >= min(e^s, 1) > 0, so the replaced attention is a
    # well-posed weighted average. Tolerance: the rounding of the two float64 evaluations, each derived:
    # rounding_allowance with eps = 0 bounds NTK-Attention's (for even g its kappa = e^{2 S_abs} holds with eps = 0,
    # since T_g(s_j) >= e^{-|s_j|}; N counts every exp as the platform's measured k_exp roundings, c_log its log
    # accuracy: bounds.rounding_terms, ntkprefix.platform), numpy_taylor_attention_rounding the numpy reference's.
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
    v_max = max(np.abs(V).max(), np.abs(V_P).max())
    ntk_side = bounds.rounding_allowance(
        n_terms=bounds.rounding_terms(m=m, L=L, r=phi.r, degree=g, d=d), eps=0.0, value_bound=v_max,
        score_abs_range=nk.max_abs_score(Q, K_P, absolute_terms=True),
        input_score_abs_range=nk.max_abs_score(Q, K, absolute_terms=True), unit_roundoff=2.0**-53,
    )
    tolerance = ntk_side + tolerances.numpy_taylor_attention_rounding(Q, K, V, K_P, V_P, g=g)
    assert np.abs(out - expected).max() <= tolerance


@given(section3_problems())
def test_ntk_is_symmetric_positive_semidefinite(problem):
    # H = J J^T / m is symmetric PSD exactly. The computed H^ is within E (tests/tolerances.py) of H entrywise, so
    # |H^_ab - H^_ba| <= E_ab + E_ba and lambda_min(H^) >= -||H^ - H||_2 >= -||E||_F; eigvalsh adds p(N) u ||H^||_2.
    W, X, a = problem
    H = np.asarray(kernels.ntk_matrix(W, X, a))
    E = tolerances.ntk_rounding_bound(W, X, a)
    assert np.all(np.abs(H - H.T) <= E + E.T)
    assert np.linalg.eigvalsh(H)[0] >= -(tolerances.frobenius_norm_upper(E) + tolerances.eigenvalue_allowance(H))


@given(section3_problems())
def test_closed_form_ntk_equals_autodiff(problem):
    # Both compute H exactly in exact arithmetic; each is within its derived rounding bound E (the larger of the
    # closed-form and autodiff bounds, tests/tolerances.py), so they differ by at most 2 E entrywise.
    W, X, a = problem
    H = np.asarray(kernels.ntk_matrix(W, X, a))
    H_auto = np.asarray(kernels.ntk_matrix_autodiff(W, X, a))
    E = tolerances.ntk_rounding_bound(W, X, a)
    assert np.all(np.abs(H - H_auto) <= 2 * E)


@given(
    st.sampled_from(SECTION3_SHAPES[1:]),
    st.floats(0.1, 2.0, allow_nan=False, allow_subnormal=False),
    st.floats(0.05, 1.0, allow_nan=False, allow_subnormal=False),
    st.integers(0, 2**31 - 1),
    st.floats(1e-5, 1.0, allow_nan=False, allow_subnormal=False),
)
# issue 9: the heuristic this property replaces (f(R) >= 2 f(R/2) / 1.05) fails here, at m = 8 and R = 0.01:
# f(R) = 4.24e-5, f(R/2) = 2.36e-5, ratio 1.80 (the curvature is not O(1) at small m).
@example(shape=(3, 2, 8, 2), sigma=0.1, data_radius=0.5, seed=63, R=0.01)
@example(shape=(3, 2, 8, 2), sigma=2.0, data_radius=1.0, seed=3, R=1.0)
def test_kernel_perturbation_obeys_the_derived_lipschitz_bound(shape, sigma, data_radius, seed, R):
    # Lemma 3.1, in the form derived in kernels.ntk_perturbation_bound: for every W and every W' with
    # max_r ||w'_r - w_r||_2 <= R,  ||H(W') - H(W)||_F <= (6 c^2/m) d_out sqrt(sum_ij (|<x_i,x_j>| sigma_ij
    # [tau_i (1 + tau_j) + tau_j])^2),  tau_i = e^{2 R ||x_i||} - 1. It holds for every R (inside the template's ball
    # R < 0.01 or not) and on the ball's edge W' = W + R U, ||U_r|| = 1, which is what is drawn here. Computed H's
    # carry the rounding E of tests/tolerances.py, and the computed Frobenius norm its own relative gamma.
    n, d, m, d_out = shape
    k_x, k_w, k_a, k_u = jax.random.split(jax.random.PRNGKey(seed), 4)
    X, _ = sampling.section3_data(k_x, n=n, d=d, d_out=d_out, data_radius=data_radius)
    W, a = model.init_prefix_weights(k_w, d, m, sigma), model.random_signs(k_a, d_out, m)
    W_moved = W + R * sampling.perturbation_directions(k_u, W)
    # W + R U is rounded, so the columns move by R up to about u |W| / R relative: the bound is taken at the radius
    # actually realised, its float64 value raised by gamma_{d+3} (one subtraction, d squares, a square root)
    R_moved = float(np.linalg.norm(np.asarray(W_moved) - np.asarray(W), axis=0).max()) * (1 + tolerances.gamma(d + 3, 2.0**-53))
    u = 2.0**-53  # the drawn radius, up to that rounding (|U_r| = 1 up to gamma_{d+3}; two roundings of W + R U)
    assert abs(R_moved - R) <= 2 * tolerances.gamma(d + 3, u) * R_moved + math.sqrt(d) * u * (2 * R + float(jnp.abs(W).max()))
    bound = kernels.ntk_perturbation_bound(W, X, a, R_moved)
    change = np.asarray(kernels.ntk_matrix(W_moved, X, a) - kernels.ntk_matrix(W, X, a))
    rounding = tolerances.frobenius_norm_upper(tolerances.ntk_rounding_bound(W, X, a)) + tolerances.frobenius_norm_upper(
        tolerances.ntk_rounding_bound(W_moved, X, a)
    )
    assert float(np.linalg.norm(change)) <= (bound + rounding) * (1 + tolerances.gamma(change.size + 2, 2.0**-53))


@given(ball_perturbations(model.init_prefix_weights(jax.random.PRNGKey(7), 3, 64, 1.0), meets=False))
def test_perturbation_bound_is_linear_in_R_for_small_R(perturbation):
    # The derived bound itself: tau = e^{2 R ||x||} - 1 <= 2 R ||x|| e^{2 R ||x||}, so bound(R) / R is increasing in R
    # and bound(R) <= bound(R0) R / R0 for R <= R0 (at most linear as R shrinks): checked on the drawn radius.
    U, R = perturbation
    W = model.init_prefix_weights(jax.random.PRNGKey(7), 3, 64, 1.0)
    X, _ = sampling.section3_data(jax.random.PRNGKey(8), n=4, d=3, d_out=1)
    a = model.random_signs(jax.random.PRNGKey(9), 1, 64)
    big, small = kernels.ntk_perturbation_bound(W, X, a, R), kernels.ntk_perturbation_bound(W, X, a, R / 2)
    assert small <= big / 2 * (1 + 2.0**-40)  # exact inequality; the factor covers the bound's own evaluation


@given(
    st.integers(0, 2**31 - 1),
    st.floats(1.0, 1e3, allow_nan=False, allow_subnormal=False),
    st.booleans(),
)
@example(seed=63548, max_score=121.0, causal=True)  # issue 9: failed (4.2e-4 > 3.3e-4) while ELU+1 cancelled
@example(seed=334, max_score=580.0, causal=True)  # thorough run of issue 9: every feature of a row below float32's
# smallest normal, prefix term flushed to 0, error 2.6 (fixed by carrying the features' scale in log space)
def test_float32_ntk_attention_is_finite_and_accurate_for_extreme_scores(seed, max_score, causal):
    # float32 against float64 on the same inputs: the difference is at most the sum of the two computations'
    # derived rounding bounds (tests/tolerances.py, elu_ntk_attention_rounding), and the float32 output is finite.
    L, d, m = 8, 4, 32
    rng = np.random.default_rng(seed)
    Q, K, V = rng.normal(size=(L, d)), rng.normal(size=(L, d)), rng.normal(size=(L, d))
    K_P, V_P = rng.normal(size=(m, d)), rng.normal(size=(m, d))
    Q = Q * (max_score / np.abs(Q @ K.T / math.sqrt(d)).max())  # the largest |score| is max_score
    phi = nk.elu_feature_map(d)
    Z, k = (np.asarray(x) for x in nk.reduce_prefix(K_P, V_P, phi))
    expected = np.asarray(nk.ntk_attention(Q, K, V, Z, k, phi, causal=causal))  # float64
    out = nk.ntk_attention(*(jnp.asarray(x, jnp.float32) for x in (Q, K, V, Z, k)), phi, causal=causal)
    assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))
    tolerance = sum(
        tolerances.elu_ntk_attention_rounding(Q, K, V, Z, k, d=d, causal=causal, u=u, inputs_rounded=rounded)
        for u, rounded in ((2.0**-24, True), (2.0**-53, False))
    )
    assert np.abs(np.asarray(out, np.float64) - expected).max() <= tolerance
