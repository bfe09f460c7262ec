"""Bad input in the library (issue 9, section 3): a clear ValueError, never a traceback from deep inside jax, never a
silent NaN. One test per library row of the issue's table, the conversions of array-likes, and a hypothesis property:
random bad shapes, dtypes, values and scalars given to the public functions raise ValueError and nothing else."""

import dataclasses
import math
import re
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ntkprefix as nk
from ntkprefix import bounds, features, kernels, model, sampling, training
from tests.test_attention import dense_prefix_attention, random_qkv

# ---- the rows of the table -------------------------------------------------------------------------------


def test_prefix_attention_with_integer_arrays_computes_in_the_default_float():
    rng = np.random.default_rng(0)
    Q, K, V, K_P, V_P = (rng.integers(-3, 4, size=s) for s in ((3, 2), (3, 2), (3, 2), (5, 2), (5, 2)))
    out = nk.prefix_attention(Q, K, V, K_P, V_P)
    assert out.dtype == jnp.float64  # the default float under jax_enable_x64 (tests/conftest.py)
    expected = dense_prefix_attention(*(x.astype(np.float64) for x in (Q, K, V, K_P, V_P)))
    np.testing.assert_array_equal(out, nk.prefix_attention(*(x.astype(np.float64) for x in (Q, K, V, K_P, V_P))))
    assert np.abs(np.asarray(out) - expected).max() <= 1e-12 * np.abs(expected).max()


def test_prefix_attention_with_python_lists_equals_the_array_call():
    Q, K, V, K_P, V_P = random_qkv(np.random.default_rng(1), 3, 2, 5)
    out = nk.prefix_attention(Q.tolist(), K.tolist(), V.tolist(), K_P.tolist(), V_P.tolist(), causal=True)
    np.testing.assert_array_equal(out, nk.prefix_attention(Q, K, V, K_P, V_P, causal=True))


def test_float32_stays_float32_and_python_scalars_are_accepted():
    Q, K, V, K_P, V_P = (x.astype(np.float32) for x in random_qkv(np.random.default_rng(2), 3, 2, 5))
    assert nk.prefix_attention(Q, K, V, K_P, V_P).dtype == jnp.float32
    phi = nk.elu_feature_map(2)
    assert phi(Q).dtype == jnp.float32 and phi([[1, 2]]).dtype == jnp.float64
    assert nk.taylor_degree(np.float32(1.5), np.float64(1e-3)) == nk.taylor_degree(1.5, 1e-3)


def test_taylor_degree_for_a_huge_score_range_is_a_value_error():
    with pytest.raises(ValueError, match=r"no Taylor degree <= 200 reaches eps=0.001 on \|s\| <= S=1e\+06"):
        nk.taylor_degree(1e6, 1e-3)


def test_ntk_matrix_with_nan_in_W_raises():
    W, X, _, a = _section3()
    W = W.at[1, 3].set(jnp.nan)
    with pytest.raises(ValueError, match=r"W holds 1 non-finite value\(s\) \(first at index \(1, 3\): nan\)"):
        kernels.ntk_matrix(W, X, a)
    for f in (model.model_output, model.output_gradient_factors, kernels.ntk_matrix_autodiff):
        with pytest.raises(ValueError, match="W holds 1 non-finite"):
            f(W, X, a)


def test_ntk_matrix_with_a_not_a_sign_vector_raises():
    W, X, _, a = _section3()
    with pytest.raises(ValueError, match=r"a must hold signs in \{-1, \+1\}.*1 entry is not \(first at index \(0, 2\): 0.5\)"):
        kernels.ntk_matrix(W, X, a.at[0, 2].set(0.5))
    with pytest.raises(ValueError, match="a must hold signs"):
        model.model_output(W, X, 2 * a)
    # under jit the values are unknown: the check is skipped, as for non-finite entries
    jax.jit(lambda W, X, a: kernels.ntk_matrix(W, X, a, method="dense"))(W, X, 2 * a)


def test_taylor_feature_map_beyond_the_memory_budget_is_refused_with_r_and_bytes():
    r = math.comb(76, 12)
    expected = re.escape(f"needs r = {r:.4g} features ({8 * r * 68:.4g} bytes") + ".*" + re.escape("budget of 1.074e+09 bytes")
    with pytest.raises(ValueError, match=expected):
        nk.taylor_feature_map(64, 12)
    small = nk.taylor_feature_map(4, 3, memory_budget=features.feature_bytes(4, 35))
    assert small.r == 35 and small.bytes_needed == 8 * 35 * 8
    with pytest.raises(ValueError, match="above the memory budget of 2239 bytes"):
        nk.taylor_feature_map(4, 3, memory_budget=features.feature_bytes(4, 35) - 1)
    assert nk.taylor_feature_map(4, 3, memory_budget=10**3 * features.feature_bytes(4, 35)) == nk.taylor_feature_map(4, 3)


def test_taylor_features_that_would_overflow_are_refused():
    phi = nk.taylor_feature_map(2, 8)
    x = jnp.array([[1e5, 0.0]], jnp.float32)  # (1e5 / 2^(1/4))^8 = 2.5e39 > float32's 3.4e38
    with pytest.raises(ValueError, match=r"max \|x\| / d\^\(1/4\) = 8.409e\+04.*beyond the largest float32"):
        phi(x)
    assert bool(jnp.all(jnp.isfinite(phi(x.astype(jnp.float64)))))
    Q, K, V, _, _ = random_qkv(np.random.default_rng(3), 2, 2, 1)
    with pytest.raises(ValueError, match=r"max \|Q\|"):
        nk.ntk_attention(*(jnp.asarray(a, jnp.float32) for a in (1e5 * Q, K, V)), jnp.zeros((phi.r, 2), jnp.float32),
                         jnp.ones(phi.r, jnp.float32), phi)


def test_feature_map_construction_is_validated():
    with pytest.raises(ValueError, match="kind must be 'taylor' or 'elu'"):
        features.FeatureMap("cosine", 3)
    with pytest.raises(ValueError, match="the ELU\\+1 map has no degree"):
        features.FeatureMap("elu", 3, 2)
    with pytest.raises(ValueError, match="degree g must be an integer >= 0, got None"):
        features.FeatureMap("taylor", 3)
    with pytest.raises(ValueError, match="d must be an integer >= 1, got True"):
        nk.elu_feature_map(True)


def test_traced_calls_still_work():
    # the public wrappers stay usable under jit and vmap (as figures/ and bench/ use them)
    Q, K, V, K_P, V_P = random_qkv(np.random.default_rng(4), 3, 2, 5)
    phi = nk.elu_feature_map(2)
    Z, k = nk.reduce_prefix(K_P, V_P, phi)
    jitted = jax.jit(nk.prefix_attention)(Q, K, V, K_P, V_P)
    np.testing.assert_array_equal(jitted, nk.prefix_attention(Q, K, V, K_P, V_P))
    batched = jax.vmap(lambda q: nk.ntk_attention(q, K, V, Z, k, phi))(jnp.stack([Q, 2 * Q]))
    np.testing.assert_array_equal(batched[1], nk.ntk_attention(2 * Q, K, V, Z, k, phi))


# ---- random bad input: ValueError and nothing else ---------------------------------------------------------------


def _section3(n=3, d=2, m=6, d_out=2):
    k_w, k_x, k_a, k_y = jax.random.split(jax.random.PRNGKey(0), 4)
    X, Y = sampling.section3_data(k_x, n=n, d=d, d_out=d_out)
    return model.init_prefix_weights(k_w, d, m, 1.0), X, Y, model.random_signs(k_a, d_out, m)


@dataclasses.dataclass(frozen=True)
class Arg:
    """An array argument: its valid value, the axes whose length is tied to another argument (so changing it is
    wrong), whether its rank is fixed, and whether it must hold signs."""

    value: np.ndarray
    tied: tuple[int, ...] = ()
    fixed_rank: bool = True  # False: any rank >= 1 is accepted (rank 0 is still wrong)
    signs: bool = False
    any_rank: bool = False  # every rank, 0 included, is accepted


@dataclasses.dataclass(frozen=True)
class Scalar:
    """A scalar argument and the kinds of bad values it must refuse."""

    value: object
    kind: str  # "positive", "nonnegative", "count" (int >= 1), "unit" (0 < x < 1), "real"


@dataclasses.dataclass(frozen=True)
class Call:
    fn: Callable
    args: dict  # name -> Arg | Scalar | anything passed as is


def _calls() -> dict[str, Call]:
    rng = np.random.default_rng(0)
    L, d, m, d_v = 3, 2, 4, 2
    Q, K, V, K_P, V_P = random_qkv(rng, L, d, m, d_v=d_v)
    phi = nk.taylor_feature_map(d, 2)
    Z, k = (np.asarray(x) for x in nk.reduce_prefix(K_P, V_P, phi))
    W, X, Y, a = (np.asarray(x) for x in _section3())
    n, d_out = Y.shape
    H = np.asarray(kernels.ntk_matrix(W, X, a))
    F0 = np.asarray(model.model_output(W, X, a))
    key = jax.random.PRNGKey(1)
    sums = nk.empty_prefix_sums(phi, d_v)
    W_args = dict(W=Arg(W, (0, 1)), X=Arg(X, (1,)), a=Arg(a, (1,), signs=True))
    W_args_Y = dict(W=Arg(W, (0, 1)), X=Arg(X, (0, 1)), Y=Arg(Y, (0, 1)), a=Arg(a, (0, 1), signs=True))
    return {
        "project": Call(nk.project, dict(X=Arg(Q, (1,)), P=Arg(K_P, (1,)), W_Q=Arg(np.eye(d), (0, 1)),
                                         W_K=Arg(np.eye(d), (0, 1)), W_V=Arg(np.eye(d), (0,)))),
        "prefix_attention": Call(nk.prefix_attention, dict(Q=Arg(Q, (0, 1)), K=Arg(K, (0, 1)), V=Arg(V, (0, 1)),
                                                           K_P=Arg(K_P, (0, 1)), V_P=Arg(V_P, (0, 1)),
                                                           chunk_size=Scalar(2, "count"))),
        "ntk_attention": Call(nk.ntk_attention, dict(Q=Arg(Q, (0, 1)), K=Arg(K, (0, 1)), V=Arg(V, (0, 1)),
                                                     Z=Arg(Z, (0, 1)), k=Arg(k, (0,)), feature_map=phi)),
        "max_abs_score": Call(nk.max_abs_score, dict(Q=Arg(Q, (1,)), K_P=Arg(K_P, (1,)), chunk_size=Scalar(2, "count"))),
        "reduce_prefix": Call(nk.reduce_prefix, dict(K_P=Arg(K_P, (0, 1)), V_P=Arg(V_P, (0,)), feature_map=phi,
                                                     chunk_size=Scalar(3, "count_or_none"))),
        "accumulate_prefix": Call(nk.accumulate_prefix, dict(sums=sums, K_rows=Arg(K_P, (0, 1)), V_rows=Arg(V_P, (0, 1)),
                                                             feature_map=phi)),
        "feature_map": Call(lambda x: phi(x), dict(x=Arg(K_P, (1,), fixed_rank=False))),
        "prefix_softmax": Call(model.prefix_softmax, dict(W=Arg(W, (0,)), X=Arg(X, (1,)))),
        "model_output": Call(model.model_output, dict(W_args, output_scale=Scalar(2.0, "positive_or_none"))),
        "output_gradient_factors": Call(model.output_gradient_factors, dict(W_args)),
        "loss": Call(model.loss, dict(W_args_Y)),
        "loss_gradient": Call(model.loss_gradient, dict(W_args_Y, output_scale=Scalar(2.0, "positive_or_none"))),
        "gradient_descent": Call(training.gradient_descent, dict(W0=Arg(W, (0, 1)), X=Arg(X, (0, 1)), Y=Arg(Y, (0, 1)),
                                                                 a=Arg(a, (0, 1), signs=True), eta=Scalar(1e-3, "positive"),
                                                                 steps=Scalar(2, "count"))),
        "ntk_matrix": Call(kernels.ntk_matrix, dict(W_args)),
        "ntk_matrix_autodiff": Call(kernels.ntk_matrix_autodiff, dict(W_args)),
        "ntk_perturbation_bound": Call(kernels.ntk_perturbation_bound, dict(W_args, R=Scalar(0.01, "nonnegative"))),
        "infinite_prefix_kernel": Call(kernels.infinite_prefix_kernel, dict(X=Arg(X), sigma=Scalar(1.0, "positive"),
                                                                            d_out=Scalar(2, "count"))),
        "ntk_linearized_outputs": Call(kernels.ntk_linearized_outputs, dict(
            H_star=Arg(H, (0, 1)), F0=Arg(F0, (0, 1)), Y=Arg(Y, (0, 1)), eta=Scalar(1e-3 / H.max(), "positive"),
            m=Scalar(6, "count"), steps=Arg(np.array([0.0, 1.0]), any_rank=True))),
        "perturbation_directions": Call(sampling.perturbation_directions, dict(key=key, W=Arg(W))),
        "scale_instance": Call(lambda Q, query_bound: sampling.scale_instance(
            nk.Projected(Q, K, V, K_P, V_P), query_bound=query_bound, key_bound=1.0, value_bound=1.0),
            dict(Q=Arg(Q, (0, 1)), query_bound=Scalar(2.0, "positive"))),
        "init_prefix_weights": Call(model.init_prefix_weights, dict(key=key, d=Scalar(2, "count"), m=Scalar(3, "count"),
                                                                    sigma=Scalar(1.0, "positive"))),
        "section3_data": Call(sampling.section3_data, dict(key=key, n=Scalar(2, "count"), d=Scalar(2, "count"),
                                                           d_out=Scalar(1, "count"), data_radius=Scalar(1.0, "positive"))),
        "taylor_degree": Call(nk.taylor_degree, dict(score_range=Scalar(1.0, "nonnegative"), eps=Scalar(1e-3, "unit"))),
        "taylor_feature_map": Call(nk.taylor_feature_map, dict(d=Scalar(2, "count"), g=Scalar(2, "degree"))),
        "taylor_relative_error": Call(bounds.taylor_relative_error, dict(score_range=Scalar(1.0, "nonnegative"), g=Scalar(2, "degree"))),
        "attention_error_bound": Call(bounds.attention_error_bound, dict(eps=Scalar(0.1, "nonnegative_or_inf"),
                                                                         value_bound=Scalar(1.0, "nonnegative"))),
        "theorem_4_1_bound": Call(lambda score_range, value_bound: bounds.theorem_4_1_bound(
            score_range=score_range, score_abs_range=1.0, degree=2, value_bound=value_bound, m=4, L=3, d=2),
            dict(score_range=Scalar(1.0, "nonnegative"), value_bound=Scalar(1.0, "nonnegative"))),
        "entry_scale_B": Call(lambda sigma, delta: bounds.entry_scale_B(sigma=sigma, n=3, d=2, delta=delta),
                              dict(sigma=Scalar(1.0, "positive"), delta=Scalar(0.05, "unit"))),
        "lemma_3_1_bound": Call(lambda R: bounds.lemma_3_1_bound(R=R, n=3, d=2, B=1.0), dict(R=Scalar(0.01, "nonnegative"))),
        "as23_degree": Call(nk.as23_degree, dict(bound=Scalar(1.0, "positive"), eps=Scalar(1e-3, "unit"))),
        "parameter_counts": Call(nk.parameter_counts, dict(m=Scalar(4, "count"), d=Scalar(2, "count"), r=Scalar(2, "count"))),
    }


CALLS = _calls()

BAD_SCALARS = {
    "positive": [0.0, -1.0, math.nan, math.inf, True, "1.0", None, [1.0]],
    "positive_or_none": [0.0, -1.0, math.nan, math.inf, True, "1.0", [1.0]],  # None means the default c_m = m
    "nonnegative": [-1e-3, math.nan, math.inf, -math.inf, False, "0", None, np.array([1.0, 2.0])],
    "nonnegative_or_inf": [-1e-3, math.nan, -math.inf, False, "0", None],  # eps = inf (an overflowed remainder) is valid
    "count": [0, -2, 1.5, math.nan, True, "3", None],
    "degree": [-1, 2.5, math.nan, True, "2", None],
    "count_or_none": [0, -2, 1.5, math.nan, True, "3"],  # None means the default
    "unit": [0.0, 1.0, -0.5, math.nan, math.inf, True, "0.1", None],
}
ARRAY_CORRUPTIONS = ("rank_up", "rank_down", "tied_axis", "bool", "complex", "string", "object", "nan", "inf",
                     "ragged", "none", "not_signs")


def _corrupt(arg: Arg, how: str, data) -> object:
    x = arg.value
    if how == "rank_up":
        return x[..., None]
    if how == "rank_down":
        return x[0] if arg.fixed_rank else x.reshape(-1)[0]  # rank 0 is wrong even where any rank >= 1 is fine
    if how == "tied_axis":
        axis = data.draw(st.sampled_from(arg.tied))
        return np.concatenate([x, np.take(x, [0], axis=axis)], axis=axis)
    if how in ("bool", "complex", "string", "object"):
        return x.astype({"bool": bool, "complex": np.complex128, "string": str, "object": object}[how])
    if how in ("nan", "inf", "not_signs"):
        y = x.astype(np.float64).copy()
        index = tuple(data.draw(st.integers(0, s - 1)) for s in y.shape)
        y[index] = {"nan": math.nan, "inf": data.draw(st.sampled_from([math.inf, -math.inf])), "not_signs": 0.5}[how]
        return y
    if how == "ragged":
        rows = x.tolist()
        return [rows[0][:-1]] + rows[1:]
    if how == "none":
        return None
    raise AssertionError(how)


def _applicable(arg: Arg, how: str) -> bool:
    if how in ("rank_up", "rank_down") and arg.any_rank:
        return False
    if how == "rank_up":
        return arg.fixed_rank
    if how == "tied_axis":
        return bool(arg.tied)
    if how == "ragged":
        return arg.value.ndim == 2 and arg.value.shape[1] >= 2 and arg.value.shape[0] >= 2
    if how == "not_signs":
        return arg.signs
    return True


@given(st.data())
def test_random_bad_input_gives_value_error_and_nothing_else(data):
    name = data.draw(st.sampled_from(sorted(CALLS)), label="function")
    call = CALLS[name]
    bad = sorted(k for k, v in call.args.items() if isinstance(v, (Arg, Scalar)))
    target = data.draw(st.sampled_from(bad), label="argument")
    args = {k: (v.value if isinstance(v, (Arg, Scalar)) else v) for k, v in call.args.items()}
    spec = call.args[target]
    if isinstance(spec, Arg):
        how = data.draw(st.sampled_from([h for h in ARRAY_CORRUPTIONS if _applicable(spec, h)]), label="corruption")
        args[target] = _corrupt(spec, how, data)
    else:
        args[target] = data.draw(st.sampled_from(BAD_SCALARS[spec.kind]), label="bad value")
    with pytest.raises(ValueError):
        call.fn(**args)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_call_of_the_bad_input_property_is_valid_before_corruption(name):
    # The property above would pass vacuously if the uncorrupted call raised already.
    call = CALLS[name]
    call.fn(**{k: (v.value if isinstance(v, (Arg, Scalar)) else v) for k, v in call.args.items()})
