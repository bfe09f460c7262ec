"""The Theorem 3.2 check: its quick verdict, both controls (detected by symptom), reproducibility."""

from tests.conftest import assert_reproducible, claim_record, items


def test_quick_check_holds(quick_all):
    _, out, results = quick_all
    record = claim_record(results, "thm3_2")
    assert record["verdict"] == "holds", record["reason"]
    every = items(record)
    assert every["loss_reaches_eps"]["met"] and every["movement_falls_with_m"]["met"]
    f = record["findings"]
    assert f["envelope_c_min"] > 1.0 and f["diverged_runs"] == 0
    # Reported, not asserted: the template's constants are far out of reach.
    assert f["template_m_required_min"] > 1e15 and f["movement_within_template_R"] is False
    assert (out / "thm3_2.png").exists()


def test_controls_are_detected_by_their_symptoms(quick_all):
    results = quick_all[2]
    eta = claim_record(results, "thm3_2", "eta_too_large")
    assert eta["control_outcome"]["detected"] and items(eta)["loss_reaches_eps"]["measured"] > 0
    small = claim_record(results, "thm3_2", "small_m")
    assert small["control_outcome"]["detected"] and items(small)["lazy_regime"]["measured"] < 0.5


def test_same_seed_same_numbers_other_seed_other_numbers():
    assert_reproducible("thm3_2", (2, 3), min_log2_m=6, max_log2_m=7, n_seeds=1)
