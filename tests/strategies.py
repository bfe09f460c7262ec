"""Hypothesis strategies built on ntkprefix.sampling: instances inside (or, by construction, outside) the norm
conditions, drawn as a direction times a radius, never filtered with assume()."""

import jax
import jax.numpy as jnp
from hypothesis import strategies as st

from ntkprefix import sampling


@st.composite
def theorem_4_1_instances(draw, *, max_d=4, max_L=6, max_m=64, max_entry=1.2, radius_factor=(0.05, 1.0)):
    """(instance, entry bound b, degree g) with ||Q||_inf, ||K_C||_inf, ||V_C||_inf exactly radius_factor * b <= b."""
    d = draw(st.integers(1, max_d))
    L = draw(st.integers(1, max_L))
    m = draw(st.integers(1, max_m))
    g = draw(st.integers(0, 6))
    b = draw(st.floats(0.05, max_entry, allow_nan=False, allow_infinity=False, allow_subnormal=False))
    radius = b * draw(st.floats(*radius_factor, allow_nan=False, allow_subnormal=False))
    seed = draw(st.integers(0, 2**31 - 1))
    offset = draw(st.floats(0.0, 3.0, allow_nan=False, allow_subnormal=False))
    unit = sampling.unit_prefix_instance(jax.random.PRNGKey(seed), d=d, L=L, m=m, prefix_offset=offset, dtype=jnp.float64)
    inst = sampling.scale_instance(unit, query_bound=radius, key_bound=radius, value_bound=radius)
    return inst, b, g
