import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from verify import jax_setup  # noqa: E402

jax_setup.configure()  # float64 and the PRNG bit stream of the entry points

# CI: derandomized, no deadline (the machine is shared and JIT compiles on first use).
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
# dev: random, 25 examples. too_slow is suppressed in every profile: it times the generation of inputs, which on a
# shared machine (and with jax 0.10's slower first compiles) is a timed test, not a property.
settings.register_profile(
    "dev", deadline=None, max_examples=25, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
# thorough: random, 2000 examples per property; `make test-thorough` passes --hypothesis-seed and prints it, and a
# failure prints its @reproduce_failure blob, so a failing run can be replayed exactly.
settings.register_profile(
    "thorough", deadline=None, max_examples=2000, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)


def pytest_report_header(config):
    seed = config.getoption("hypothesis_seed", default=None)
    return f"hypothesis profile {PROFILE!r}, seed {seed if seed is not None else 'random (pass --hypothesis-seed to fix it)'}"


import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


def in_ci() -> bool:
    """Whether the suite runs under CI (CI set and not false): there a missing environment (the neural-tangents
    reference, the browser) is a failure, elsewhere a skip that says how to create it."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def quick_all(tmp_path_factory):
    """One run of `python -m verify --all --quick --controls` shared by the tests that read its outputs:
    (exit code, output folder, results.json as a dict)."""
    from verify.__main__ import main

    out = tmp_path_factory.mktemp("verify_all")
    code = main(["--all", "--quick", "--controls", "--out", str(out)])
    return code, out, json.loads((Path(out) / "results.json").read_text())


def claim_record(results: dict, claim_id: str, control: str | None = None) -> dict:
    """The record of one claim (or one of its controls) in a results.json."""
    records = results["claims"] if control is None else results["controls"]
    return next(r for r in records if r["id"] == claim_id and r["control"] == control)


def items(record: dict) -> dict:
    """name -> condition or prediction record."""
    return {x["name"]: x for x in record["conditions"] + record["predictions"]}


def assert_reproducible(claim_id: str, seeds: tuple[int, int], **small) -> None:
    """The same seed gives identical results apart from timings; another seed gives other measurements (a stub that
    ignores its seed fails). ``small`` are settings overrides that make the run cheap."""
    import verify

    a, b, c = (verify.run(claim_id, seed=seed, **small).to_dict() for seed in (seeds[0], seeds[0], seeds[1]))
    for r in (a, b, c):
        r.pop("wall_time_s")
    assert a == b
    assert a["measurements"] != c["measurements"]


def quick_results(request, tmp_path_factory, claim_id: str) -> tuple[Path, dict]:
    """(output folder, {control name or None: its Result as JSON, measurements included}) of the quick run of one
    claim and each of its controls: the session's `--all --quick --controls` run (quick_all) when another collected
    test file needs it anyway, else runs of this claim and its controls alone through the command line (so that
    running one test file costs that claim only). Either way the folder holds <claim>.json and
    <claim>_control_<name>.json, each one Result."""
    from verify import registry
    from verify.__main__ import main

    names = [None, *registry.get(claim_id).controls]
    stems = {name: claim_id if name is None else f"{claim_id}_control_{name}" for name in names}
    shared = any("quick_all" in getattr(item, "fixturenames", ()) for item in request.session.items
                 if item.module is not request.module)
    if shared:
        out = request.getfixturevalue("quick_all")[1]
    else:
        out = tmp_path_factory.mktemp(claim_id)
        for name in names:
            path = out / f"{stems[name]}.json"
            main([claim_id, "--quick", *([] if name is None else ["--control", name]), "--out", str(out),
                  "--json", str(path)])
            data = json.loads(path.read_text())  # a control run's --json holds {"results": [its result]}
            if "results" in data:
                path.write_text(json.dumps(data["results"][0], indent=2) + "\n")
    return out, {name: json.loads((out / f"{stems[name]}.json").read_text()) for name in names}


def evaluation_of(record: dict, **changed_outcomes):
    """The Evaluation a Result's JSON record was judged from (outcomes replaced where named), to apply the verdict
    rule to it again."""
    from verify.result import Result
    from verify.verdict import Asymptotic, Calibration, Condition, Evaluation, Prediction

    r = Result.from_dict(record)
    predictions = [Prediction(**{**p, "outcome": changed_outcomes.get(p["name"], p["outcome"])}) for p in r.predictions]
    conditions = [Condition(**{**c, "outcome": changed_outcomes.get(c["name"], c["outcome"])}) for c in r.conditions]
    return Evaluation([Calibration(**c) for c in r.calibrations], conditions, predictions,
                      asymptotic=[Asymptotic(**a) for a in r.asymptotic],
                      tested_range=r.paper_scope.removeprefix("up to "))


def with_planted_fault(monkeypatch, fault_name: str):
    """The module of the mutation runner's fault ``fault_name`` (verify.mutants.FAULTS), with that fault planted in its
    exact text, as a fresh module (registered for the test's duration); the library's own module is untouched."""
    import sys
    import types

    from verify import mutants

    fault = next(f for f in mutants.FAULTS if f.name == fault_name)
    source = (mutants.ROOT / fault.path).read_text()
    assert source.count(fault.old) == 1
    name = f"planted_{fault_name}"
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up while the source runs
    exec(compile(source.replace(fault.old, fault.new), name, "exec"), module.__dict__)
    return module
