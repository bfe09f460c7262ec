"""The Figure 3 check: its deterministic parts only (parameter counts, what is timed, the settings, the figure). Its
timing predictions, verdict and control are measured on a shared machine and never asserted here."""

import json

import jax
import pytest
import jax.numpy as jnp
import numpy as np

import ntkprefix as nk
from tests.conftest import claim_record, items
from verify import registry
from verify.checks import fig3
from verify.result import Result


def test_settings_are_the_papers_grid_every_other_power():
    s = fig3.Settings()
    assert s.lengths == (32, 64, 128, 256) and s.d == 32
    assert s.ms == [2**i for i in range(0, 17, 2)] and s.large_ms == [2**10, 2**12, 2**14, 2**16]
    assert registry.get("fig3").measures_time and fig3.CONTROLS["reduction_per_call"].kind == "planted fault"


def test_parameter_counts_are_the_formulas_and_d2_plus_d_excludes_theorem_4_1(quick_all):
    record = claim_record(quick_all[2], "fig3")
    if record["verdict"] == "instrument error":  # the timer calibration can fail on a busy machine: nothing measured
        pytest.skip("fig3's timer calibration failed on this run (a busy machine): nothing was measured")
    every = items(record)
    assert every["parameter_counts"]["met"] and every["parameter_counts"]["checked"] == 2 * 2 * len(fig3.settings(True).ms)
    assert every["elu_parameters_d2_plus_d"]["met"] and every["elu_parameters_d2_plus_d"]["measured"] == 0
    params = record["findings"]["parameters"]
    assert params == {"prefix_at_largest_m": 2**16 * 32, "elu": 32 * 32 + 32, "d2_plus_d": 32 * 32 + 32,
                      "taylor": 561 * 32 + 561, "taylor_degree": 2, "taylor_r": 561}
    side = {s["name"]: s for s in record["side_reports"]}
    assert any("not covered" in s["verdict"] for s in side.values())
    assert any("cannot both hold" in s["reason"] for s in side.values())
    measurements = json.loads((quick_all[1] / "fig3.json").read_text())["measurements"]
    assert {r["dtype"] for r in measurements} == {"float32"}
    assert record["findings"]["device"].endswith("cpu") and record["findings"]["devices"]
    names = {x["name"] for x in record["conditions"] + record["predictions"]}
    assert {"prefix_time_grows_linearly", "ntk_time_flat_elu", "ntk_time_flat_taylor", "quiet_machine"} <= names


def test_the_control_puts_the_reduction_into_every_call():
    # What the control changes is the computation timed, not a threshold: with reduction_per_call the timed
    # NTK-Attention takes the prefix and reduces it inside the call (same output, a cost that grows with m).
    s = fig3.Settings(reduction_per_call=True)
    maps = fig3._feature_maps(s)
    timed, plain = fig3._timed_functions(s, maps), fig3._timed_functions(fig3.Settings(), maps)
    key = jax.random.PRNGKey(0)
    Q, K, V = (jax.random.normal(k, (4, 32), jnp.float32) for k in jax.random.split(key, 3))
    K_P, V_P = jax.random.normal(key, (64, 32), jnp.float32), jax.random.normal(jax.random.fold_in(key, 1), (64, 32), jnp.float32)
    for name, phi in maps.items():
        # the same function as reducing first and then calling NTK-Attention, compiled as one program (compiled
        # apart, XLA fuses the two differently and the float32 roundings differ)
        whole = jax.jit(lambda Q, K, V, K_P, V_P, phi=phi: nk.ntk_attention(Q, K, V, *nk.reduce_prefix(K_P, V_P, phi), phi))
        np.testing.assert_array_equal(timed[name](Q, K, V, K_P, V_P), whole(Q, K, V, K_P, V_P))
        text = jax.jit(timed[name]).lower(Q, K, V, K_P, V_P).as_text()
        assert text.count("dot_general") > jax.jit(plain[name]).lower(Q, K, V, *nk.reduce_prefix(K_P, V_P, phi)).as_text().count("dot_general")


def test_plot_from_the_result_alone(quick_all, tmp_path):
    record = claim_record(quick_all[2], "fig3")
    if record["verdict"] == "instrument error":
        pytest.skip("fig3's timer calibration failed on this run (a busy machine): nothing was measured")
    result = Result.from_dict(json.loads((quick_all[1] / "fig3.json").read_text()))
    paths = registry.get("fig3").plot(result, tmp_path)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
