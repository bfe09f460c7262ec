"""The mutation runner cannot rot: every planted fault still applies to today's code, one fault runs end to end, and
every fault in the verdict machinery and statistics (verify/) is caught by the tests it names."""

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from verify import mutants

ROOT = Path(__file__).resolve().parents[1]
VERIFY_FAULTS = [f for f in mutants.FAULTS if f.path.startswith("verify/")]
#: The verify/ faults whose named tests run no check (tests/test_verify_*.py run a claim and its controls, minutes
#: each): the CI test runs these; the others are the mutation runner's (`make mutants`).
UNIT_CAUGHT = [f for f in VERIFY_FAULTS if not any(t.startswith("tests/test_verify_") for t in f.tests)]


def test_at_least_twelve_faults_each_applies_exactly_once(tmp_path):
    assert len(mutants.FAULTS) >= 12 and len({f.name for f in mutants.FAULTS}) == len(mutants.FAULTS)
    assert {mutants.package_of(f) for f in mutants.FAULTS} == {"ntkprefix/", "verify/"}
    assert len([f for f in VERIFY_FAULTS if f.path == "verify/fitting.py"]) >= 5
    for fault in mutants.FAULTS:
        assert fault.path.startswith(("ntkprefix/", "verify/")), fault.path
        target = tmp_path / fault.name / fault.path
        target.parent.mkdir(parents=True)
        target.write_text((ROOT / fault.path).read_text())
        mutants.plant(fault, tmp_path / fault.name)
        assert target.read_text() != (ROOT / fault.path).read_text()
        compile(target.read_text(), str(target), "exec")  # a fault is a semantic change, never a syntax error
        for test in fault.tests:  # a file, or file::test naming a test function of that file
            path, _, function = test.partition("::")
            assert (ROOT / path).is_file(), (fault.name, test)
            assert not function or f"def {function}(" in (ROOT / path).read_text(), (fault.name, test)
    for fault in VERIFY_FAULTS:
        assert fault.tests, f"{fault.name}: a fault in verify/ must name the tests that catch it"


def test_a_fault_outside_the_packages_is_refused():
    with pytest.raises(ValueError, match="none of"):
        mutants.package_of(mutants.Fault("x", "tests/test_model.py", "a", "b", "d", ()))


def test_a_fault_that_does_not_apply_is_an_error(tmp_path):
    (tmp_path / "ntkprefix").mkdir()
    (tmp_path / "ntkprefix" / "model.py").write_text("nothing to mutate\n")
    with pytest.raises(ValueError, match="exactly once"):
        mutants.plant(next(f for f in mutants.FAULTS if f.name == "gradient_uncentred"), tmp_path)


def test_the_outcome_line_names_every_item_not_met_with_its_outcome():
    record = {"paper_verdict": "consistent, not refuted", "paper_scope": "up to m = 1024 .. 65536",
              "conditions": [{"name": "c", "outcome": "met"}],
              "predictions": [{"name": "y", "outcome": "inconclusive"}, {"name": "x", "outcome": "failed"},
                              {"name": "z", "outcome": "met"}]}
    assert mutants.outcome_line(record) == ("consistent, not refuted up to m = 1024 .. 65536 "
                                            "[not met: x failed, y inconclusive]")
    # met -> inconclusive changes the line; an instrument error has neither scope nor items
    record["predictions"][2]["outcome"] = "inconclusive"
    assert mutants.outcome_line(record).endswith("[not met: x failed, y inconclusive, z inconclusive]")
    assert mutants.outcome_line({"paper_verdict": "instrument error", "paper_scope": "", "conditions": [],
                                 "predictions": []}) == "instrument error"


def test_a_missing_test_file_is_an_error_of_the_runner_not_a_caught_fault(tmp_path):
    with pytest.raises(RuntimeError, match="missing"):
        mutants.run_tests(tmp_path, ("tests/test_nothing_here.py",))


def test_one_fault_end_to_end_is_caught_by_a_verdict():
    # The uncentred gradient factor changes the gradient and the NTK consistently: only the calibration against
    # autodiff of an independently written forward pass sees it, and the verdict becomes "instrument error".
    proc = subprocess.run([sys.executable, "-m", "verify.mutants", "--faults", "gradient_uncentred", "--claims", "prop3_3",
                           "--no-tests"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CAUGHT gradient_uncentred" in proc.stdout
    assert "-> instrument error" in proc.stdout
    assert "kill rate 1/1" in proc.stdout


def test_every_verify_fault_is_caught_by_its_named_unit_tests(tmp_path):
    # Only the named tests run (pytest in a copy made as the runner makes it, the fault planted), two at a time, for
    # every verify/ fault whose named tests run no check (UNIT_CAUGHT; at least the twelve statistics and verdict
    # faults and the issue-19 calibration and cross-check faults). They must pass unmutated, or a failure would show
    # nothing.
    assert len(UNIT_CAUGHT) >= 20
    base = tmp_path / "unmutated"
    mutants._copy(base)
    named = tuple(sorted({t for f in UNIT_CAUGHT for t in f.tests}))

    def run(fault):
        if fault is None:
            return "unmutated", mutants.run_tests(base, named)
        root = tmp_path / fault.name
        shutil.copytree(base, root)
        mutants.plant(fault, root)
        return fault.name, mutants.run_tests(root, fault.tests)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(pool.map(run, [None, *UNIT_CAUGHT]))
    passed, line = results.pop("unmutated")
    assert passed, f"the named tests fail unmutated: {line}"
    missed = {name: line for name, (passed, line) in results.items() if passed}
    assert not missed, f"faults in verify/ that their named tests miss: {missed}"


def test_tests_first_skips_the_verdicts_of_a_fault_its_tests_catch():
    proc = subprocess.run([sys.executable, "-m", "verify.mutants", "--faults", "counts_cross_check_skips_not_checked",
                           "--claims", "prop3_3", "--tests-first"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CAUGHT counts_cross_check_skips_not_checked" in proc.stdout
    assert "verdicts not run (--tests-first" in proc.stdout and "baseline verdicts" not in proc.stdout
    assert "verify/: kill rate 1/1" in proc.stdout


def test_the_docs_state_how_many_faults_there_are():
    counts = {package: sum(mutants.package_of(f) == package for f in mutants.FAULTS) for package in mutants.PACKAGES}
    total = len(mutants.FAULTS)
    page = (ROOT / "docs" / "mutants.md").read_text()
    assert f"plants each of {total} semantic faults, {counts['ntkprefix/']} in `ntkprefix/`" in page
    assert f"and {counts['verify/']} in\n`verify/`" in page or f"and {counts['verify/']} in `verify/`" in page
    row = next(line for line in (ROOT / "paper_map.md").read_text().splitlines() if line.startswith("| Mutation runner"))
    assert f"{total} semantic faults ({counts['ntkprefix/']} in `ntkprefix/`, {counts['verify/']} in `verify/`" in row
