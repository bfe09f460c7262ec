"""The mutation runner cannot rot: every planted fault still applies to today's code, and one fault runs end to end."""

import subprocess
import sys
from pathlib import Path

import pytest

from verify import mutants

ROOT = Path(__file__).resolve().parents[1]


def test_at_least_twelve_faults_each_applies_exactly_once(tmp_path):
    assert len(mutants.FAULTS) >= 12 and len({f.name for f in mutants.FAULTS}) == len(mutants.FAULTS)
    for fault in mutants.FAULTS:
        assert fault.path.startswith("ntkprefix/")
        target = tmp_path / fault.name / fault.path
        target.parent.mkdir(parents=True)
        target.write_text((ROOT / fault.path).read_text())
        mutants.plant(fault, tmp_path / fault.name)
        assert target.read_text() != (ROOT / fault.path).read_text()
        for test in fault.tests:
            assert (ROOT / test).exists(), (fault.name, test)


def test_a_fault_that_does_not_apply_is_an_error(tmp_path):
    (tmp_path / "ntkprefix").mkdir()
    (tmp_path / "ntkprefix" / "model.py").write_text("nothing to mutate\n")
    with pytest.raises(ValueError, match="exactly once"):
        mutants.plant(next(f for f in mutants.FAULTS if f.name == "gradient_uncentred"), tmp_path)


def test_one_fault_end_to_end_is_caught_by_a_verdict():
    # The uncentred gradient factor changes the gradient and the NTK consistently: only the calibration against
    # autodiff of an independently written forward pass sees it, and the verdict becomes "instrument error".
    proc = subprocess.run([sys.executable, "-m", "verify.mutants", "--faults", "gradient_uncentred", "--claims", "prop3_3",
                           "--no-tests"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CAUGHT gradient_uncentred" in proc.stdout and "prop3_3: violated [failed: " in proc.stdout
    assert "-> instrument error" in proc.stdout
    assert "kill rate 1/1" in proc.stdout
