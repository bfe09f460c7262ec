"""The second, newer-jax environment of `make bench-newer-jax` / `make test-newer-jax` stays consistent with the main
pins (pyproject.toml is the one place versions live) and the Makefile's test selection names tests that exist."""

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


def test_newer_jax_environment_pins_jax_and_shares_the_other_pins():
    project = _pyproject()
    main = _pins(project["project"]["dependencies"] + project["project"]["optional-dependencies"]["test"])
    bench = _pins(project["project"]["optional-dependencies"]["bench"])
    newer = _pins(project["tool"]["ntkprefix"]["newer-jax"]["requirements"])
    assert newer["jax"] == newer["jaxlib"], "jax and jaxlib must move together"
    assert newer["jax"] != main["jax"], "the newer-jax environment exists to measure a jax other than the pinned one"
    assert newer["torch"] == bench["torch"], "the peer must be the same torch in both environments"
    for shared in ("scipy", "pytest", "hypothesis"):
        assert newer[shared] == main[shared], f"{shared} differs between the environments"
    assert "neural-tangents" not in newer, "neural-tangents 0.6.5 does not install next to a newer jax"


def test_make_test_newer_jax_selects_existing_tests():
    makefile = (ROOT / "Makefile").read_text()
    block = makefile[makefile.index("NEWER_TESTS :=") : makefile.index("test-newer-jax: $(NEWER_STAMP)")]
    files = re.findall(r"tests/\S+\.py", block)
    assert files and all((ROOT / f).is_file() for f in files)
    selection = re.search(r'-k "([^"]+)"', makefile[makefile.index("test-newer-jax: $(NEWER_STAMP)") :]).group(1)
    excluded = re.findall(r"not (\w+)", selection)
    sources = "".join((ROOT / f).read_text() for f in files)
    for name in excluded:  # each excluded name matches a test (or a parameter id) of the selected files
        assert name in sources, f"-k excludes {name!r}, which names no test of {files}"


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
