"""The Theorem 4.1 check: its quick verdict, its negative controls, the command line, and reproducibility."""

import json
import subprocess
import sys

import pytest

from verify.__main__ import main
from verify.checks import thm4_1
from verify.registry import RunOptions
from verify.result import Result, Verdict


@pytest.fixture(scope="module")
def quick_cli(tmp_path_factory):
    out = tmp_path_factory.mktemp("thm4_1")
    code = main(["thm4_1", "--quick", "--out", str(out), "--json", str(out / "result.json")])
    return code, out


def test_quick_check_holds_and_writes_json_and_plot(quick_cli):
    code, out = quick_cli
    assert code == 0
    data = json.loads((out / "result.json").read_text())
    assert data["claim"] == "thm4_1" and data["verdict"] == "holds"
    assert data["conditions"]["met"] is True
    assert data["findings"]["points_exceeding_bound"] == 0
    assert all(f["slope"] <= -data["findings"]["rate_c"] for f in data["findings"]["fitted_slopes"])
    assert data["versions"]["jax"] == "0.4.25" and data["seed"] == 0
    assert data["side_reports"][0]["verdict"] == "not covered by the theorem"
    assert (out / "thm4_1.png").stat().st_size > 0 and (out / "thm4_1.pdf").stat().st_size > 0
    assert Result.from_dict(data).verdict is Verdict.HOLDS


def test_control_large_entries_is_detected():
    result = thm4_1.CLAIM.run(RunOptions(quick=True, control="large_entries"))
    assert result.verdict is Verdict.CONDITIONS_NOT_MET
    assert result.conditions["met"] is False
    assert result.findings["decay_at_least_m_minus_c"] is False  # the 1/poly(m) decay fails
    assert result.findings["slope_max"] > 0  # the error grows with m


def test_control_abs_k_breaks_the_rigorous_bound():
    result = thm4_1.CLAIM.run(RunOptions(quick=True, control="abs_k"))
    assert result.conditions["met"] is True
    assert result.verdict is Verdict.VIOLATED
    assert result.findings["points_exceeding_bound"] > 0
    assert result.findings["worst_error_over_bound"] > 1e3


def test_cli_control_exits_1_when_detected(tmp_path):
    assert main(["thm4_1", "--quick", "--control", "abs_k", "--out", str(tmp_path), "--json", str(tmp_path / "c.json")]) == 1
    data = json.loads((tmp_path / "c.json").read_text())
    assert [c["verdict"] for c in data["controls"]] == ["violated"]
    assert (tmp_path / "thm4_1_control_abs_k.png").exists()


def test_same_seed_same_numbers():
    small = thm4_1.Settings(max_log2_m=6, n_seeds=2, grid_degrees=(1, 3))
    a = thm4_1.run_with(small, RunOptions(seed=7)).to_dict()
    b = thm4_1.run_with(small, RunOptions(seed=7)).to_dict()
    c = thm4_1.run_with(small, RunOptions(seed=8)).to_dict()
    for r in (a, b, c):
        r.pop("wall_time_s")
    assert a == b
    assert a["measurements"] != c["measurements"]


def test_unknown_control_is_a_value_error():
    with pytest.raises(ValueError, match="unknown control 'nope' for thm4_1; known: large_entries, abs_k"):
        thm4_1.CLAIM.run(RunOptions(quick=True, control="nope"))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True, timeout=300)


def test_cli_usage_errors_exit_2_and_list_exits_0():
    listed = _cli("--list")
    assert listed.returncode == 0 and "thm4_1" in listed.stdout and "abs_k" in listed.stdout
    assert listed.stderr == ""  # no TensorFlow/absl start-up noise
    unknown = _cli("thm9_9")
    assert unknown.returncode == 2 and "unknown claim 'thm9_9'" in unknown.stderr
    assert _cli().returncode == 2
    assert _cli("thm4_1", "--control", "bogus").returncode == 2
    assert _cli("thm4_1", "--seed", "x").returncode == 2
    assert _cli("--all", "thm4_1").returncode == 2
