"""The environments stay what pyproject.toml (the one place versions live) and the README say: the main one on the
current stack without TensorFlow or neural-tangents, the reference one with neural-tangents on its jax, and a make
target that runs the suite on every supported Python."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(requirements):
    pins = {}
    for requirement in requirements:
        name, version = requirement.split("==")
        pins[name.strip().lower()] = version.strip()
    return pins


def _pyproject():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_main_environment_is_the_current_stack_without_tensorflow_or_neural_tangents():
    # issue 16: one pinned stack, installable on Python 3.11 and later; neural-tangents (and the TensorFlow it
    # declares) only in the reference environment
    project = _pyproject()
    requirements = project["project"]["dependencies"] + project["project"]["optional-dependencies"]["test"]
    assert all("==" in r for r in requirements), "every requirement of the main environment is pinned"
    main = _pins(requirements)
    assert main["jax"] == main["jaxlib"], "jax and jaxlib move together"
    assert not {"tensorflow", "tf2jax", "neural-tangents"} & set(main)
    assert project["project"]["requires-python"] == ">=3.11"


def test_make_test_pythons_covers_every_supported_version():
    makefile = (ROOT / "Makefile").read_text()
    versions = re.search(r"^PYTHONS \?= (.+)$", makefile, re.M).group(1).split()
    assert versions == ["3.11", "3.12", "3.13"]
    assert re.search(r"^test-pythons:", makefile, re.M) and re.search(r"^test-python:", makefile, re.M)


def test_reference_environment_pins_neural_tangents_on_its_jax_and_make_test_creates_it():
    # issue 16: neural-tangents 0.6.5 in its own environment, every requirement pinned, TensorFlow not among them
    table = _pyproject()["tool"]["ntkprefix"]["reference"]
    assert all("==" in r for r in table["requirements"] + table["no-deps"]), "every reference requirement is pinned"
    pins = _pins(table["requirements"] + table["no-deps"])
    assert pins["neural-tangents"] == "0.6.5" and table["no-deps"] == ["neural-tangents==0.6.5"]
    assert pins["jax"] == pins["jaxlib"] == "0.4.25", "0.4.25 is the last jax on which all four NT implementations work"
    assert not {"tensorflow", "tf2jax"} & set(pins), "the reference environment runs without TensorFlow"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*\$\(NT_STAMP\)", makefile, re.M), "make test must create the reference environment"


def test_library_imports_neither_torch_nor_neural_tangents_nor_tensorflow():
    # torch belongs to bench/ only, neural-tangents to the reference environment, TensorFlow to neither
    import subprocess
    import sys

    code = ("import sys, ntkprefix, verify, verify.checks, figures, verify.report; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'neural_tangents', 'tensorflow', 'tf2jax'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
