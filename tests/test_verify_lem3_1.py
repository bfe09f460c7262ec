"""The Lemma 3.1 check: its quick verdict, its control (detected by symptom), reproducibility."""

from tests.conftest import assert_reproducible, claim_record, items


def test_quick_check_holds(quick_all):
    _, out, results = quick_all
    record = claim_record(results, "lem3_1")
    assert record["verdict"] == "holds", record["reason"]
    every = items(record)
    assert every["perturbation_at_most_linear"]["measured"] >= 0.95
    assert every["data_norm_at_most_1"]["measured"] == 1.0
    assert all(c["met"] for c in record["calibrations"])
    assert (out / "lem3_1.png").exists()


def test_control_is_detected_by_its_symptoms(quick_all):
    control = claim_record(quick_all[2], "lem3_1", "large_radius_and_data")
    assert control["control_outcome"]["detected"]
    assert not items(control)["perturbation_at_most_linear"]["met"] and not items(control)["kernel_keeps_converging"]["met"]


def test_same_seed_same_numbers_other_seed_other_numbers():
    assert_reproducible("lem3_1", (3, 4), max_log2_m=9, n_seeds=2, radii=(1e-4, 1e-3))
