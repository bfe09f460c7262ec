"""Hypothesis strategies built on ntkprefix.sampling: inputs that meet, or by construction break, each norm
condition of the paper, drawn as a direction times a radius (never filtered with assume()). Every float strategy
is bounded, with no NaN, infinity or subnormal. Shapes come from small sets so that examples reuse compilations."""

import jax
import jax.numpy as jnp
from hypothesis import strategies as st

from ntkprefix import model, sampling


def _fraction(low: float = 0.05, high: float = 1.0):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


# ---- Theorem 4.1: entries of Q, K_C, V_C bounded by b ------------------------------------------------------------


@st.composite
def theorem_4_1_instances(draw, *, meets: bool = True, max_d=4, max_L=6, max_m=64, max_entry=1.2):
    """(instance, declared bound b, degree g). meets=True: ||Q||_inf, ||K_C||_inf, ||V_C||_inf = radius <= b exactly;
    meets=False: radius = b times a factor in [2, 10], so the condition is broken by a known amount."""
    d = draw(st.integers(1, max_d))
    L = draw(st.integers(1, max_L))
    m = draw(st.integers(1, max_m))
    g = draw(st.integers(0, 6))
    b = draw(st.floats(0.05, max_entry, allow_nan=False, allow_infinity=False, allow_subnormal=False))
    factor = draw(_fraction()) if meets else draw(st.floats(2.0, 10.0, allow_nan=False, allow_subnormal=False))
    seed = draw(st.integers(0, 2**31 - 1))
    offset = draw(st.floats(0.0, 3.0, allow_nan=False, allow_subnormal=False))
    unit = sampling.unit_prefix_instance(jax.random.PRNGKey(seed), d=d, L=L, m=m, prefix_offset=offset, dtype=jnp.float64)
    radius = b * factor
    return sampling.scale_instance(unit, query_bound=radius, key_bound=radius, value_bound=radius), b, g


# ---- Section 3: ||x_i|| <= 1, and prefix keys within R of their initialisation ---------------------------------

SECTION3_SHAPES = ((1, 1, 1, 1), (3, 2, 8, 2), (4, 3, 64, 1), (5, 4, 200, 3))  # (n, d, m, d_out)


@st.composite
def section3_problems(draw, *, meets: bool = True, shapes=SECTION3_SHAPES):
    """(W, X, a) with w_r ~ N(0, sigma^2 I) and every ||x_i|| = data radius: in (0, 1] when meets, in [2, 5] when not."""
    n, d, m, d_out = draw(st.sampled_from(shapes))
    sigma = draw(st.floats(0.1, 2.0, allow_nan=False, allow_subnormal=False))
    radius = draw(_fraction()) if meets else draw(st.floats(2.0, 5.0, allow_nan=False, allow_subnormal=False))
    k_x, k_w, k_a = jax.random.split(jax.random.PRNGKey(draw(st.integers(0, 2**31 - 1))), 3)
    X, _ = sampling.section3_data(k_x, n=n, d=d, d_out=d_out, data_radius=radius)
    return model.init_prefix_weights(k_w, d, m, sigma), X, model.random_signs(k_a, d_out, m)


@st.composite
def ball_perturbations(draw, W, *, max_radius: float = 0.01, meets: bool = True):
    """(U, R): unit directions U (every column of norm 1) and a radius R, so W + R U moves each w_r by exactly R.
    meets: R in (0, max_radius]; otherwise R in [10, 100] max_radius."""
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(_fraction(1e-3, 1.0)) if meets else draw(st.floats(10.0, 100.0, allow_nan=False, allow_subnormal=False))
    return sampling.perturbation_directions(jax.random.PRNGKey(seed), W), max_radius * scale
