"""Section 4.4's learned ELU+1 path [code]: whether k trains from the authors' zero initialisation under torch's
derivative of abs (0 at 0) and jax's (1 at 0), and what the learned (Z, k) are compared with."""

import math

import jax
import jax.numpy as jnp
import pytest

import ntkprefix as nk
from figures import sec4_4


@pytest.fixture(scope="module")
def instance():
    s = sec4_4.Settings(d=4, L=8, steps=40, batch=2, held_out=8)
    W, K_P, V_P, k_train, k_test = sec4_4._instance(jax.random.PRNGKey(0), s, 32, s.d ** -0.5)
    X_test = jax.random.normal(k_test, (s.held_out, s.L, s.d), jnp.float32)
    return s, W, K_P, V_P, k_train, X_test, sec4_4._targets(W, K_P, V_P, X_test)


def test_zero_initialised_k_never_trains_through_torch_abs_but_z_does(instance):
    s, W, K_P, V_P, k_train, X_test, T_test = instance
    out = sec4_4._learned_errors(s, W, K_P, V_P, k_train, X_test, T_test, 32, "learned_elu_zero_init_torch_abs")
    assert out["k_parameter_max_change"] == 0.0 and out["k_max_abs"] == 0.0
    assert out["final_train_loss"] < out["first_train_loss"]  # Z alone still learns
    assert out["converged_to"]["k_relative_distance_to_closed_form"] == 1.0  # k = 0 against k* = phi(K_P)^T 1
    assert math.isnan(out["converged_to"]["k_cosine_to_closed_form"])


def test_zero_initialised_k_trains_through_jax_abs(instance):
    s, W, K_P, V_P, k_train, X_test, T_test = instance
    out = sec4_4._learned_errors(s, W, K_P, V_P, k_train, X_test, T_test, 32, "learned_elu_zero_init_jax_abs")
    assert out["k_parameter_max_change"] > 0 and out["k_max_abs"] > 0


def test_learned_sums_are_compared_with_the_closed_form_of_the_same_map(instance):
    s, W, K_P, V_P, k_train, X_test, T_test = instance
    out = sec4_4._learned_errors(s, W, K_P, V_P, k_train, X_test, T_test, 32)
    conv = out["converged_to"]
    assert all(math.isfinite(v) for v in conv.values())
    phi = nk.elu_feature_map(s.d)
    Z_star, k_star = nk.reduce_prefix(jnp.asarray(K_P, jnp.float64), jnp.asarray(V_P, jnp.float64), phi)
    # k* = phi(K_P)^T 1 has entries between m (phi > 0 everywhere) and the norm ratio is against it
    assert float(jnp.min(k_star)) > 0 and -1 <= conv["k_cosine_to_closed_form"] <= 1
    closed = sec4_4._closed_form_elu_errors(s, W, K_P, V_P, X_test, T_test)
    assert math.isfinite(closed["relative_error"])
