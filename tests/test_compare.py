"""verify/compare.py: two runs side by side; a changed outcome is named and sets the exit status, a moved number is
found at its place with its relative size, provenance is not compared."""

import copy
import json

import pytest

from verify import compare


def _record():
    return {"claim": "thm4_1", "control": None, "paper_verdict": "not testable here",
            "readings": [{"name": "r1", "outcome": "met"}], "sanity": [],
            "calibrations": [{"name": "c1", "discrepancy": 1e-16, "tolerance": 1e-12, "met": True}],
            "conditions": [{"name": "h1", "measured": 2.0, "outcome": "met"}],
            "predictions": [{"name": "p1", "measured": 0.25, "interval": [0.2, 0.3], "outcome": "met"}],
            "findings": {"slope": -0.5}, "measurements": [{"m": 64, "error": 1e-3}, {"m": 128, "error": 5e-4}],
            "asymptotic": [], "control_outcome": None, "wall_time_s": 12.0, "versions": {"jax": "0.10.2"}}


def test_identical_runs_agree_bit_for_bit():
    c = compare.compare_records(_record(), _record())
    assert c.same_verdicts and c.identical == c.numbers == 11 and "every number bit-identical" in c.line()


def test_a_moved_number_is_located_and_sized_and_provenance_is_not_compared():
    new = _record()
    new["measurements"][1]["error"] = 5e-4 * (1 + 2**-52)
    new["wall_time_s"], new["versions"] = 99.0, {"jax": "0.4.25"}
    c = compare.compare_records(_record(), new)
    assert c.same_verdicts and c.identical == c.numbers - 1
    # one ulp of 5e-4 (2^-63), relative to it: 2.17e-16, not 2^-52 (5e-4 is not a power of two)
    moved = abs(5e-4 * (1 + 2**-52) - 5e-4) / 5e-4
    assert c.largest_at == "measurements[1].error" and c.largest == pytest.approx(moved, rel=1e-9, abs=0)
    assert 0 < moved < 2**-52


@pytest.mark.parametrize("change,expected", [
    (lambda r: r.update(paper_verdict="contradicted"), "paper verdict"),
    (lambda r: r["predictions"][0].update(outcome="failed"), "predictions 'p1' outcome"),
    (lambda r: r["calibrations"][0].update(met=False), "calibrations 'c1' met"),
    (lambda r: r["readings"].append({"name": "r2", "outcome": "met"}), "readings 'r2' only in the new run"),
])
def test_a_changed_outcome_is_named(change, expected):
    new = copy.deepcopy(_record())
    change(new)
    c = compare.compare_records(_record(), new)
    assert not c.same_verdicts and any(expected in d for d in c.verdict_differences), c.verdict_differences


def test_command_line_exit_status(tmp_path, capsys):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    (old / "thm4_1.json").write_text(json.dumps(_record()))
    (new / "thm4_1.json").write_text(json.dumps(_record()))
    (old / "results.json").write_text("[]")  # not a claim record: ignored
    assert compare.main([str(old), str(new)]) == 0
    changed = _record()
    changed["predictions"][0]["outcome"] = "inconclusive"
    (new / "thm4_1.json").write_text(json.dumps(changed))
    assert compare.main([str(old), str(new), "--json", str(tmp_path / "c.json")]) == 1
    assert json.loads((tmp_path / "c.json").read_text())[0]["same_verdicts"] is False
    assert compare.main([str(tmp_path / "absent"), str(new)]) == 2
    assert "neither an output folder" in capsys.readouterr().err
