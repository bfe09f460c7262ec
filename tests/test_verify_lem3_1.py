"""The Lemma 3.1 check: its quick verdict, its negative control, reproducibility."""

import json

from verify.__main__ import main
from verify.checks import lem3_1
from verify.registry import RunOptions
from verify.result import Verdict


def test_quick_check_holds(tmp_path):
    assert main(["lem3_1", "--quick", "--out", str(tmp_path), "--json", str(tmp_path / "r.json")]) == 0
    data = json.loads((tmp_path / "r.json").read_text())
    f = data["findings"]
    assert data["verdict"] == "holds" and data["conditions"]["met"] is True
    assert f["perturbation_slope_min"] >= lem3_1.SLOPE_MIN
    assert f["concentration_tail_slope"]["slope"] <= lem3_1.TAIL_SLOPE_MAX
    assert f["lambda_min_H_inf"] > 0 and f["lambda_min_H0_at_largest_m"] >= f["lambda_min_H_inf"] / 2
    assert (tmp_path / "lem3_1.png").exists() and (tmp_path / "lem3_1.pdf").exists()


def test_control_breaks_conditions_and_linearity():
    result = lem3_1.CLAIM.run(RunOptions(quick=True, control="large_radius_and_data"))
    assert result.verdict is Verdict.CONDITIONS_NOT_MET
    assert result.findings["perturbation_at_most_linear"] is False  # linear-in-R visibly broken
    assert result.findings["kernel_keeps_converging"] is False  # heavy tails: no convergence within the sweep


def test_same_seed_same_numbers():
    small = lem3_1.Settings(max_log2_m=9, n_seeds=2, radii=(1e-4, 1e-3))
    a, b = (lem3_1.run_with(small, RunOptions(seed=3)).to_dict() for _ in range(2))
    for r in (a, b):
        r.pop("wall_time_s")
    assert a == b
