"""The Proposition 3.3 check: the fit machinery, its quick verdict, its negative control."""

import numpy as np
import pytest

from verify.__main__ import main
from verify.checks import prop3_3
from verify.registry import RunOptions
from verify.result import Verdict


def test_common_slope_fit_recovers_slope_and_intercepts():
    rng = np.random.default_rng(0)
    x = np.tile(np.arange(1.0, 9.0), 3)
    groups = np.repeat([0, 1, 2], 8)
    y = np.array([5.0, -1.0, 2.0])[groups] - 2.0 * x + 1e-3 * rng.normal(size=24)
    k, se, intercepts, r2, residuals = prop3_3._common_slope_fit(x, y, groups)
    assert k == pytest.approx(-2.0, abs=1e-3) and se < 1e-3 and r2 > 0.999999
    assert intercepts[0] == pytest.approx(5.0, abs=1e-2) and intercepts[1] == pytest.approx(-1.0, abs=1e-2)
    assert np.abs(residuals).max() < 1e-2


def test_quick_check_holds(tmp_path):
    assert main(["prop3_3", "--quick", "--out", str(tmp_path)]) == 0
    result = prop3_3.CLAIM.run(RunOptions(quick=True))
    f = result.findings
    assert result.verdict is Verdict.HOLDS
    assert abs(f["fitted_exponent_per_x"] + 2) <= 0.2 and f["r_squared_within_runs"] >= prop3_3.R2_MIN
    assert (tmp_path / "prop3_3.png").exists()


def test_control_eta_too_large_has_no_law():
    result = prop3_3.CLAIM.run(RunOptions(quick=True, control="eta_too_large"))
    assert result.verdict is Verdict.CONDITIONS_NOT_MET
    assert result.conditions["stable_step"] is False
    assert not (result.findings["exponent_matches_prediction"] and result.findings["exponential_law_explains_data"])
