"""The Theorem 4.1 check: what its quick run predicts and measures, its controls (detected by their symptoms),
its instances at the boundary, and reproducibility."""

import math

import jax
import numpy as np

from ntkprefix import sampling
from tests.conftest import assert_reproducible, claim_record, items
from verify.checks import thm4_1


def test_quick_verdict_is_violated_only_by_the_efficiency_of_d_log_m(quick_all):
    _, out, results = quick_all
    record = claim_record(results, "thm4_1")
    failed = {name for name, x in items(record).items() if not x["met"]}
    # The finding: with d = ceil(log2 m / 4) the Taylor feature dimension grows like m^0.6-0.7 at feasible m.
    assert record["verdict"] == "violated"
    assert failed <= {"feature_dimension_exponent_d_log_m", "feature_dimension_exponent_falls_d_log_m",
                      "cost_ratio_falls_d_log_m"} and "feature_dimension_exponent_d_log_m" in failed
    every = items(record)
    assert every["rigorous_bound"]["met"] and every["rigorous_bound"]["checked"] >= 40
    assert every["rigorous_bound"]["not_checked"] > 0  # vacuous points are counted apart, not as passes
    assert every["polynomial_error_fixed_d"]["met"] and every["feature_dimension_exponent_fixed_d"]["met"]
    # The extreme family makes the error prediction tight: within a factor 10 of C m^-c, not a rubber stamp.
    assert 0.1 < every["polynomial_error_fixed_d"]["measured"] <= 1
    assert all(c["met"] for c in record["calibrations"]) and len(record["calibrations"]) == 2
    assert (out / "thm4_1.png").exists() and (out / "thm4_1.json").exists()


def test_instances_attain_the_entry_bound(quick_all):
    every = items(claim_record(quick_all[2], "thm4_1"))
    assert every["entries_within_bound"]["measured"] == 1.0 and every["instances_attain_bound"]["measured"] == 1.0
    extreme = sampling.theorem_4_1_extreme_instance(jax.random.PRNGKey(0), d=4, L=8, m=100, entry_bound=0.7)
    for x in extreme:
        np.testing.assert_allclose(np.abs(np.asarray(x)), 0.7)  # every entry is a corner of the box
    s = np.asarray(extreme.Q[0] @ extreme.K_P.T) / 2
    assert math.isclose(s.min(), -0.98) and abs(s.max()) <= 1e-15  # the far end -S_b, and neutral keys at 0


def test_controls_are_detected_by_their_symptoms(quick_all):
    results = quick_all[2]
    large = claim_record(results, "thm4_1", "large_entries")
    assert large["control_outcome"]["detected"] and large["verdict"] == "conditions not met"
    assert items(large)["polynomial_error_fixed_d"]["measured"] > 1e3
    abs_k = claim_record(results, "thm4_1", "abs_k")
    assert abs_k["control_outcome"]["kind"] == "planted fault" and abs_k["control_outcome"]["detected"]
    assert items(abs_k)["rigorous_bound"]["measured"] > 0


def test_schedule_is_fixed_by_the_conditions_alone():
    s = thm4_1.Settings()
    # the kernel bound 2 eps/(1 - eps) b of the scheduled degree is within C m^-c, and one degree less is not
    from ntkprefix import bounds
    for m in (2, 64, 2**20):
        g = s.scheduled_degree(m, s.d)
        S_b = s.entry_bound**2 * math.sqrt(s.d)
        assert bounds.attention_error_bound(bounds.taylor_relative_error(S_b, g), 1.0) <= s.predicted_error(m)
        assert bounds.attention_error_bound(bounds.taylor_relative_error(S_b, g - 1), 1.0) > s.predicted_error(m)


def test_same_seed_same_numbers_other_seed_other_numbers():
    assert_reproducible("thm4_1", (7, 8), max_log2_m=6, extreme_max_log2_m=6, d_log_m_max_log2_m=6, random_seeds=1, extreme_seeds=1, grid_degrees=(1, 3), min_checked=1)
