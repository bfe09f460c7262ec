"""The command line: exit codes (0 no paper statement contradicted, 1 contradicted / hypotheses not met / with
--strict a reading not met / controls detected, 2 usage, 3 any other failure), one-line errors without traceback,
--set / --show-settings, several claims, Ctrl-C, and verify.run."""

import json
import subprocess
import sys

import pytest

import verify
from verify import registry
from verify.__main__ import main
from verify.result import PaperVerdict, exit_code
from verify.settings import SettingsError
from verify.verdict import Evaluation, at_most, calibration, condition

# Small settings that run in seconds; the verdicts are not the point here.
TINY = {
    "thm4_1": ["max_log2_m=5", "extreme_max_log2_m=5", "d_log_m_max_log2_m=5", "random_seeds=1", "extreme_seeds=1", "grid_degrees=1,3",
               "min_checked=1"],
    "prop3_3": ["min_log2_m=6", "max_log2_m=7", "n_seeds=1"],
}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True, timeout=600)


def _set(claim):
    return [x for a in TINY[claim] for x in ("--set", a)]


def test_usage_errors_exit_2_with_one_line_and_no_traceback():
    for args, message in [
        (("thm9_9",), "unknown claim 'thm9_9'"),
        ((), "name a claim"),
        (("thm4_1", "--control", "bogus"), "unknown control 'bogus' for thm4_1"),
        (("thm4_1", "--seed", "x"), "invalid int value"),
        (("--all", "thm4_1"), "--all takes no claim"),
        (("thm4_1", "--controls"), "--controls goes with --all"),
        (("thm4_1", "--set", "nope=1"), "unknown setting 'nope'"),
        (("thm4_1", "--set", "d=x"), "setting d expects int"),
        (("thm4_1", "--set", "d8"), "NAME=VALUE"),
    ]:
        run = _cli(*args)
        assert run.returncode == 2, (args, run.stderr)
        assert message in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)


def test_list_and_show_settings_exit_0_without_noise():
    listed = _cli("--list")
    assert listed.returncode == 0 and "abs_k (planted fault; breaks rigorous_bound)" in listed.stdout
    assert listed.stderr == ""  # no TensorFlow/absl start-up noise
    shown = _cli("thm4_1", "--quick", "--set", "d=6", "--show-settings")
    assert shown.returncode == 0
    assert "d = 6  [int]  head dimension" in shown.stdout and "max_log2_m = 14" in shown.stdout


def test_unwritable_output_folder_exits_3_before_any_computation(tmp_path):
    run = _cli("thm4_1", "--out", "/proc/x")
    assert run.returncode == 3 and "cannot write to /proc/x" in run.stderr and "Traceback" not in run.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert _cli("thm4_1", "--json", str(blocker / "r.json")).returncode == 3


def test_several_claims_set_recorded_and_exit_status(tmp_path):
    args = ["thm4_1", "prop3_3", "--quick", *_set("thm4_1"), "--out", str(tmp_path), "--json", str(tmp_path / "r.json")]
    # --set must name a field of every claim run: thm4_1's fields are not prop3_3's
    assert main(args) == 2
    code = main(["prop3_3", "--quick", *_set("prop3_3"), "--out", str(tmp_path), "--json", str(tmp_path / "r.json")])
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["overrides"] == {"min_log2_m": "6", "max_log2_m": "7", "n_seeds": "1"}
    assert data["settings"]["max_log2_m"] == 7
    expected = 1 if data["paper_verdict"] in ("contradicted", "hypotheses not met") else 0
    assert code == expected
    strict = main(["prop3_3", "--quick", "--strict", *_set("prop3_3"), "--out", str(tmp_path)])
    assert strict == (1 if expected or any(r["outcome"] in ("failed", "inconclusive") for r in data["readings"]) else 0)


def _claim_evaluating(claim_id, evaluation):
    claim = registry.get(claim_id)
    return registry.Claim(**{**claim.__dict__, "evaluate": lambda settings, options: evaluation,
                             "plot": lambda result, out: []})


@pytest.mark.parametrize("conclusion_met,reading_met,condition_met,code,strict_code", [
    (True, True, True, 0, 0),      # confirmed
    (True, False, True, 0, 1),     # confirmed, a reading not met: only --strict exits 1
    (False, True, True, 1, 1),     # contradicted
    (True, True, False, 1, 1),     # hypotheses not met
])
def test_exit_status_follows_the_paper_column_and_strict_the_readings(tmp_path, monkeypatch, conclusion_met,
                                                                      reading_met, condition_met, code, strict_code):
    evaluation = Evaluation(
        calibrations=[], conditions=[condition("h", "assumed", 1.0, "<= 1", condition_met)],
        predictions=[at_most("c", "concluded", 0.5 if conclusion_met else 2.0, 1.0, source="paper", role="conclusion"),
                     at_most("r", "ours", 0.5 if reading_met else 2.0, 1.0, source="derived", role="reading")])
    claim = _claim_evaluating("prop3_3", evaluation)
    monkeypatch.setattr(registry, "claims", lambda: {"prop3_3": claim})
    assert main(["prop3_3", "--out", str(tmp_path)]) == code
    assert main(["prop3_3", "--out", str(tmp_path), "--strict"]) == strict_code


def test_console_prints_both_columns_apart(tmp_path, monkeypatch, capsys):
    evaluation = Evaluation(
        calibrations=[], conditions=[],
        predictions=[at_most("c", "concluded", 0.5, 1.0, source="paper", role="conclusion"),
                     at_most("r", "ours", 2.0, 1.0, source="derived", role="reading"),
                     at_most("s", "by construction", 0.0, 1.0, source="derived", role="sanity")])
    claim = _claim_evaluating("prop3_3", evaluation)
    monkeypatch.setattr(registry, "claims", lambda: {"prop3_3": claim})
    assert main(["prop3_3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PAPER prop3_3: CONFIRMED ON THE TESTED INSTANCES" in out
    assert "READINGS prop3_3: r failed" in out and "SANITY prop3_3 (not counted): s met" in out
    assert "[FAIL] r [derived reading]: measured 2, required <= 1" in out


def test_instrument_error_exits_3(tmp_path, monkeypatch):
    claim = registry.get("prop3_3")

    def broken(settings, options):
        return Evaluation.instrument_error([calibration("fake", "two routes", 1.0, 1e-12, "planted")])

    monkeypatch.setattr(registry, "claims", lambda: {"prop3_3": registry.Claim(**{**claim.__dict__, "evaluate": broken})})
    assert main(["prop3_3", "--out", str(tmp_path), "--json", str(tmp_path / "r.json")]) == 3
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["paper_verdict"] == "instrument error" and data["predictions"] == []


def test_exception_in_a_check_exits_3_with_one_line(tmp_path, monkeypatch, capsys):
    claim = registry.get("prop3_3")

    def crash(settings, options):
        raise RuntimeError("boom")

    monkeypatch.setattr(registry, "claims", lambda: {"prop3_3": registry.Claim(**{**claim.__dict__, "evaluate": crash})})
    assert main(["prop3_3", "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "failed: RuntimeError: boom (--debug for the traceback)" in err and "Traceback" not in err
    assert main(["prop3_3", "--out", str(tmp_path), "--debug"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_interrupted_all_leaves_finished_json_and_incomplete_results(tmp_path, monkeypatch):
    claims = registry.claims()
    tiny = claims["prop3_3"].settings(True).__class__(min_log2_m=6, max_log2_m=7, n_seeds=1)
    cheap = registry.Claim(**{**claims["prop3_3"].__dict__, "settings": lambda quick: tiny})

    def interrupt(settings, options):
        raise KeyboardInterrupt  # Ctrl-C while the second claim runs

    interrupted = registry.Claim(**{**claims["thm4_1"].__dict__, "evaluate": interrupt})
    monkeypatch.setattr(registry, "claims", lambda: {"prop3_3": cheap, "thm4_1": interrupted})
    assert main(["--all", "--out", str(tmp_path)]) == 3
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["complete"] is False and [r["id"] for r in results["claims"]] == ["prop3_3"]
    assert json.loads((tmp_path / "prop3_3.json").read_text())["claim"] == "prop3_3"


def test_python_api_runs_with_overrides_and_validates_them():
    result = verify.run("prop3_3", quick=True, min_log2_m=6, max_log2_m=7, n_seeds=1)
    assert result.settings["max_log2_m"] == 7 and result.overrides == {"min_log2_m": 6, "max_log2_m": 7, "n_seeds": 1}
    assert isinstance(result.paper_verdict, PaperVerdict) and result.predictions
    assert exit_code(result) in (0, 1)
    with pytest.raises(SettingsError, match="unknown setting 'nope'"):
        verify.run("prop3_3", quick=True, nope=1)
    with pytest.raises(KeyError, match="unknown claim"):
        verify.run("thm9_9")
