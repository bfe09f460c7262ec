"""The Proposition 3.3 check: the across-runs law it tests, the within-run form beside it, its control."""

import numpy as np
import pytest

from tests.conftest import assert_reproducible, claim_record, items
from verify.fitting import common_slope_fit


def test_common_slope_fit_recovers_slope_intercepts_and_per_group_r2():
    rng = np.random.default_rng(0)
    x = np.tile(np.arange(1.0, 9.0), 3)
    groups = np.repeat([0, 1, 2], 8)
    y = np.array([5.0, -1.0, 2.0])[groups] - 2.0 * x + 1e-3 * rng.normal(size=24)
    fit = common_slope_fit(x, y, groups)
    assert fit["slope"] == pytest.approx(-2.0, abs=1e-3) and fit["stderr"] < 1e-3
    assert fit["intercepts"][0] == pytest.approx(5.0, abs=1e-2) and fit["intercepts"][1] == pytest.approx(-1.0, abs=1e-2)
    assert min(fit["r2_by_group"].values()) > 0.999999


def test_quick_verdict_speaks_about_the_across_runs_law(quick_all):
    record = claim_record(quick_all[2], "prop3_3")
    every = items(record)
    # The finding: one exponent fits, but runs of equal (scaled) compute do not reach equal loss.
    assert record["verdict"] == "violated"
    assert every["exponent_across_runs"]["met"]
    assert not every["equal_compute_equal_loss"]["met"] and every["equal_compute_equal_loss"]["measured"] > np.log(10)
    within = record["side_reports"][0]
    assert within["name"].startswith("within-run law") and abs(within["exponent"] + 2) < 0.2
    f = record["findings"]
    assert f["alpha_predicted"] == pytest.approx(4 * 4 / 2)  # alpha = n d / c
    assert set(f["r2_one_law_by_run"]) and len(f["r2_one_law_by_run"]) == 6  # per run, not pooled


def test_control_eta_too_large_is_detected(quick_all):
    control = claim_record(quick_all[2], "prop3_3", "eta_too_large")
    assert control["control_outcome"]["detected"]
    assert items(control)["exponent_across_runs"]["measured"] > 0.5


def test_same_seed_same_numbers_other_seed_other_numbers():
    assert_reproducible("prop3_3", (3, 4), min_log2_m=6, max_log2_m=7, n_seeds=1)
