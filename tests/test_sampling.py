"""The samplers are reproducible and not stubs: the same key gives the same numbers, a different key different ones,
and the norm conditions are met (or broken) by construction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkprefix import model, sampling
from tests.tolerances import gamma

SAMPLERS = {
    "unit_prefix_instance": lambda key: jnp.concatenate(
        [x.ravel() for x in sampling.unit_prefix_instance(key, d=3, L=4, m=5)]
    ),
    "theorem_4_1_instance": lambda key: jnp.concatenate(
        [x.ravel() for x in sampling.theorem_4_1_instance(key, d=3, L=4, m=5, entry_bound=0.7)]
    ),
    "section3_data": lambda key: jnp.concatenate([x.ravel() for x in sampling.section3_data(key, n=4, d=3, d_out=2)]),
    "init_prefix_weights": lambda key: model.init_prefix_weights(key, 3, 8, 1.0).ravel(),
    "random_signs": lambda key: model.random_signs(key, 2, 64).ravel(),
    "perturbation_directions": lambda key: sampling.perturbation_directions(key, jnp.zeros((3, 8))).ravel(),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_key_same_numbers_different_key_different_numbers(name):
    draw = SAMPLERS[name]
    first, again, other = draw(jax.random.PRNGKey(0)), draw(jax.random.PRNGKey(0)), draw(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert bool(jnp.all(jnp.isfinite(first)))


def test_conditions_met_and_broken_by_construction():
    inst = sampling.theorem_4_1_instance(jax.random.PRNGKey(2), d=3, L=4, m=50, entry_bound=0.7)
    assert sampling.entry_norms(inst) == {"Q": 0.7, "K_C": 0.7, "V_C": 0.7}  # attained exactly (x / max|x| has max 1)
    X, _ = sampling.section3_data(jax.random.PRNGKey(3), n=6, d=3, d_out=1, data_radius=2.5)
    # normalising (norm: gamma_{d+1}, division: u), scaling (u) and measuring the norm again (gamma_{d+1}): gamma_{2d+4}
    rtol = gamma(2 * 3 + 4, 2.0**-53)
    np.testing.assert_allclose(jnp.linalg.norm(X, axis=1), 2.5, rtol=rtol)
    U = sampling.perturbation_directions(jax.random.PRNGKey(4), jnp.zeros((3, 8)))
    np.testing.assert_allclose(jnp.linalg.norm(U, axis=0), 1.0, rtol=rtol)
