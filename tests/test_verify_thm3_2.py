"""The Theorem 3.2 check: the lazy regime as a prediction (violated: the weights leave the paper's R), T exactly as the
template states it, the probability measured over seeds, both controls (detected by symptom), reproducibility."""

import json
import math

from tests.conftest import assert_reproducible, claim_record, items


def test_quick_verdict_says_plainly_where_the_lazy_regime_fails(quick_all):
    _, out, results = quick_all
    record = claim_record(results, "thm3_2")
    every = items(record)
    # The finding: the weights leave R = 0.01 [paper] in every run at every feasible m >= m0.
    assert record["verdict"] == "violated"
    assert "violated at every feasible m" in record["reason"] and "extrapolated to hold from m ~" in record["reason"]
    assert not every["movement_within_R"]["met"]
    assert every["movement_within_R"]["measured"] == every["movement_within_R"]["checked"] > 0
    # ... while the rest of what the theorem concludes holds
    for name in ("lazy_regime_throughout", "loss_reaches_eps", "conclusion_probability", "movement_falls_with_m",
                 "linearization_improves_with_m"):
        assert every[name]["met"], every[name]
    for name in ("lambda_positive", "data_norm_at_most_1", "stable_step", "kernel_concentrated_from_m0"):
        assert every[name]["met"], every[name]
    f = record["findings"]
    mv, reach = f["movement_exponent"], f["m_where_fitted_movement_reaches_R"]
    assert mv["slope"] < 0 and float(mv["half_width_95"]) > 0 and float(reach["m"]) > 2**13  # JSON writes inf as "inf"
    assert f["template_m_required_min"] > 1e15 and f["omega_constant_needed_max"] <= 1
    assert every["conclusion_probability"]["compared"] == f["probability_loss"]["interval_95"][1]
    assert f["probability_loss"]["runs"] == 8 and f["probability_within_R"]["held"] == 0
    side = record["side_reports"][0]
    assert side["name"].startswith("antithetic initialisation")
    assert (out / "thm3_2.png").exists()


def test_T_is_exactly_the_template_formula(quick_all):
    record = json.loads((quick_all[1] / "thm3_2.json").read_text())  # with the measurements (results.json leaves them out)
    st = record["settings"]
    runs = [r for r in record["measurements"] if r["run"]]
    assert runs
    for r in runs:  # T = ceil(C log(nd/eps) / (m eta lambda)), nothing else
        expected = math.ceil(st["T_constant"] * math.log(st["n"] * st["d"] / st["eps"]) / r["eta_m_lambda"])
        assert r["T"] == expected and r["T_run"] >= r["T"]
        assert r["reached_eps"] == (r["squared_error_T"] <= st["eps"])


def test_controls_are_detected_by_their_symptoms(quick_all):
    results = quick_all[2]
    eta = claim_record(results, "thm3_2", "eta_too_large")
    assert eta["control_outcome"]["detected"] and items(eta)["loss_reaches_eps"]["measured"] > 0
    small = claim_record(results, "thm3_2", "small_m")
    assert small["control_outcome"]["detected"] and items(small)["kernel_concentrated_from_m0"]["measured"] < 0.5
    assert small["verdict"] == "conditions not met"


def test_same_seed_same_numbers_other_seed_other_numbers():
    assert_reproducible("thm3_2", (2, 3), min_log2_m=6, max_log2_m=7, log2_m_step=1, m0_log2=6, sweep_seeds=2,
                        probability_seeds=2, antithetic_seeds=1)
