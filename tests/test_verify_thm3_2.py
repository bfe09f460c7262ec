"""The Theorem 3.2 check: its quick verdict, both negative controls, reproducibility."""

import json
import math

from verify.__main__ import main
from verify.checks import thm3_2
from verify.registry import RunOptions
from verify.result import Verdict


def test_quick_check_holds(tmp_path):
    assert main(["thm3_2", "--quick", "--out", str(tmp_path), "--json", str(tmp_path / "r.json")]) == 0
    data = json.loads((tmp_path / "r.json").read_text())
    f, c = data["findings"], data["conditions"]
    assert data["verdict"] == "holds" and c["met"] is True and c["lazy_regime"] is True
    assert f["loss_reaches_eps"] and f["movement_falls_with_m"] and f["linearization_improves_with_m"]
    assert f["envelope_c_min"] > 1.0  # linearised GD on a squared loss gives c close to 2
    assert f["diverged_runs"] == 0
    # Reported, not asserted: the template's constants are far out of reach.
    assert c["template_m_required_min"] > 1e15 and c["movement_within_template_R"] is False
    assert (tmp_path / "thm3_2.png").exists()


def test_control_eta_too_large_diverges():
    result = thm3_2.CLAIM.run(RunOptions(quick=True, control="eta_too_large"))
    assert result.verdict is Verdict.CONDITIONS_NOT_MET
    assert result.conditions["stable_step"] is False
    assert result.findings["diverged_runs"] == len(result.measurements)
    assert all(r["loss_ratio"] > 1 or math.isnan(r["loss_ratio"]) for r in result.measurements)


def test_control_small_m_leaves_the_lazy_regime():
    result = thm3_2.CLAIM.run(RunOptions(quick=True, control="small_m"))
    assert result.verdict is Verdict.CONDITIONS_NOT_MET
    assert result.conditions["lazy_regime"] is False
    assert 2 in result.conditions["not_lazy_at_m"]


def test_same_seed_same_numbers():
    small = thm3_2.Settings(min_log2_m=6, max_log2_m=7, n_seeds=1)
    a, b = (thm3_2.run_with(small, RunOptions(seed=2)).to_dict() for _ in range(2))
    for r in (a, b):
        r.pop("wall_time_s")
    assert a == b
