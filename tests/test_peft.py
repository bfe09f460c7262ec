"""The PEFT miniature (python -m figures peft): the model under every method, which parameters train, their counts,
the Taylor initialisation from a reduced prefix, the torch-convention abs, and a tiny end-to-end run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkprefix as nk
from figures import peft
from figures import transformer as tf

CONFIG = tf.ModelConfig()


@pytest.fixture(scope="module")
def backbone():
    return tf.init_backbone(jax.random.PRNGKey(0), CONFIG)


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(tf.patches(rng.integers(0, 17, (n, 64)).astype(np.float32) / 16, CONFIG))


def test_patches_cut_the_image_row_major():
    image = np.arange(64, dtype=np.float32)[None]
    p = tf.patches(image, CONFIG)
    assert p.shape == (1, 16, 4)
    np.testing.assert_array_equal(p[0, 0], [0, 1, 8, 9])  # the top-left 2x2 block
    np.testing.assert_array_equal(p[0, 5], [18, 19, 26, 27])  # second block row, second block column


def test_digits_tasks_are_bundled_and_disjoint():
    tasks = peft.load_tasks(CONFIG)
    (xa, ya), (xb, yb) = tasks["A"], tasks["B"]
    assert len(ya) + len(yb) == 1797 and set(ya) == set(yb) == set(range(5))
    assert xa.shape[1:] == xb.shape[1:] == (16, 4) and 0 <= min(xa.min(), xb.min()) and max(xa.max(), xb.max()) <= 1


@pytest.mark.parametrize("method", peft.methods(peft.settings(quick=True)), ids=lambda m: m.name)
def test_every_method_counts_what_trains_and_starts_finite(method, backbone):
    head = tf.init_head(jax.random.PRNGKey(1), CONFIG)
    adapter = tf.init_adapter(jax.random.PRNGKey(2), method, backbone, CONFIG)
    trainable, frozen = tf.split_parameters(method, backbone, head, adapter)
    d, H, d_h, layers = CONFIG.d, CONFIG.heads, CONFIG.head_dim, CONFIG.layers
    head_count = d * CONFIG.classes + CONFIG.classes
    expected = {
        "full": tf.count_parameters(backbone) + head_count,
        "head": head_count,
        "lora": layers * 2 * 2 * d * method.rank + head_count,
        "prefix": layers * method.m * d + head_count,  # m d per layer [paper]
        "ntk_elu": layers * H * (d_h * d_h + d_h) + head_count,  # r d_h + r per head, r = d_h [code]
        "ntk_taylor": layers * H * (nk.taylor_feature_dimension(d_h, method.degree) * (d_h + 1)) + head_count,
        "ntk_lowrank": layers * H * (d_h * method.rank + method.rank * d_h + d_h) + head_count,
    }[method.kind]
    assert tf.count_parameters(trainable) == expected
    assert ("backbone" in frozen) == (method.kind != "full")
    logits = jax.vmap(lambda x: tf.forward(backbone, head, adapter, x, method, CONFIG))(_images())
    assert logits.shape == (3, CONFIG.classes) and bool(jnp.all(jnp.isfinite(logits)))
    if method.kind in ("lora", "ntk_elu", "ntk_lowrank"):  # these start exactly at the pre-trained model
        plain = jax.vmap(lambda x: tf.forward(backbone, head, {}, x, tf.Method("h", "head"), CONFIG))(_images())
        np.testing.assert_allclose(logits, plain, rtol=1e-5, atol=1e-5)


def test_taylor_initialisation_is_the_reduction_of_the_prefix_it_replaces(backbone):
    """With the same key, ntk_taylor starts from the closed-form reduction of the very prefix that ``prefix`` (m = 16)
    starts from: at a high degree the two models agree."""
    head = tf.init_head(jax.random.PRNGKey(1), CONFIG)
    prefix = tf.Method("p", "prefix", m=16)
    taylor = tf.Method("t", "ntk_taylor", degree=8, init_prefix=16)
    key = jax.random.PRNGKey(7)
    a_prefix = tf.init_adapter(key, prefix, backbone, CONFIG)
    a_taylor = tf.init_adapter(key, taylor, backbone, CONFIG)
    x = _images(4)
    out_prefix = jax.vmap(lambda xi: tf.forward(backbone, head, a_prefix, xi, prefix, CONFIG))(x)
    out_taylor = jax.vmap(lambda xi: tf.forward(backbone, head, a_taylor, xi, taylor, CONFIG))(x)
    out_plain = jax.vmap(lambda xi: tf.forward(backbone, head, {}, xi, tf.Method("h", "head"), CONFIG))(x)
    gap = float(jnp.max(jnp.abs(out_taylor - out_prefix)))
    assert gap < 1e-2 * float(jnp.max(jnp.abs(out_prefix - out_plain)))  # the prefix matters; the reduction keeps it


def test_abs_torch_has_derivative_zero_at_zero_as_torch():
    grad = jax.grad(lambda x: jnp.sum(tf.abs_torch(x)))
    np.testing.assert_array_equal(grad(jnp.array([-2.0, 0.0, 3.0])), [-1.0, 0.0, 1.0])
    assert float(jax.grad(jnp.abs)(0.0)) == 1.0  # jax's own convention differs: the reason abs_torch exists


def test_tiny_run_reports_intervals_parameters_and_whether_k_moved():
    data = peft.measure(quick=True, overrides=dict(seeds=2, pretrain_steps=30, adapt_steps=15, learning_rates=(1e-2,),
                                                   lora_ranks=(), prefix_lengths=(), lowrank_ranks=(),
                                                   taylor_degrees=()))
    summary = {r["method"]: r for r in data["summary"]}
    assert set(summary) == {"full fine-tuning", "head only", "NTK ELU+1 abs(k) (authors)", "NTK ELU+1 (k free)"}
    for r in summary.values():
        assert r["seeds"] == 2 and r["accuracy_low"] <= r["accuracy_mean"] <= r["accuracy_high"]
        assert 0 <= r["accuracy_mean"] <= 1 and r["seconds_median"] > 0 and r["diverged_runs"] == 0
    assert summary["head only"]["gain_over_head_mean"] == 0.0
    # the authors' abs(k) from k = 0 with torch's derivative: k never leaves 0; without abs it trains
    assert summary["NTK ELU+1 abs(k) (authors)"]["k_moved_in_any_seed"] is False
    assert summary["NTK ELU+1 (k free)"]["k_moved_in_any_seed"] is True
    reach = {(r["family"], r["target"]): r for r in data["parameters_to_reach"]}
    assert len(reach) == len({r["kind"] for r in summary.values()}) * len(peft.Settings().accuracy_targets)
