"""Property tests: the theorems' conditions fuzzed by hypothesis (profile from HYPOTHESIS_PROFILE or CI)."""

import jax.numpy as jnp
from hypothesis import given

import ntkprefix as nk
from ntkprefix import bounds, sampling
from tests.strategies import theorem_4_1_instances


@given(theorem_4_1_instances())
def test_rigorous_bound_of_theorem_4_1_holds(case):
    inst, b, g = case
    norms = sampling.entry_norms(inst)
    assert max(norms.values()) <= b * (1 + 1e-12)  # the strategy meets the condition by construction
    m, d = inst.K_P.shape
    L = inst.Q.shape[0]
    phi = nk.taylor_feature_map(d, g)
    Z, k = nk.reduce_prefix(inst.K_P, inst.V_P, phi)
    T = nk.ntk_attention(inst.Q, inst.K, inst.V, Z, k, phi)
    reference = nk.prefix_attention(inst.Q, inst.K, inst.V, inst.K_P, inst.V_P)
    error = float(jnp.max(jnp.abs(T - reference)))
    bound = bounds.theorem_4_1_bound(
        score_range=nk.max_abs_score(inst.Q, inst.K_P),
        score_abs_range=nk.max_abs_score(inst.Q, inst.K_P, absolute_terms=True),
        degree=g,
        value_bound=norms["V_C"],
        m=m,
        L=L,
        d=d,
    )
    assert error <= bound.total, f"error {error:.3e} > bound {bound.total:.3e} ({bound})"
