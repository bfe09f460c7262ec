"""The verification product: --all writes results.json and report.md, the same seed gives the same results, every
claim has its row in paper_map.md, and the README's verdict table is generated."""

import importlib
import json
import re
from pathlib import Path

import pytest

from verify import registry, report
from verify.__main__ import main
from verify.result import Verdict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("all_a"), tmp_path_factory.mktemp("all_b")
    return (main(["--all", "--quick", "--out", str(a)]), a), (main(["--all", "--quick", "--out", str(b)]), b)


def _comparable(results_json: Path) -> dict:
    data = json.loads(results_json.read_text())
    for claim in data["claims"]:
        claim.pop("wall_time_s")
        claim["figures"] = [Path(f).name for f in claim["figures"]]
    return data


def test_all_writes_results_and_report(quick_runs):
    (code, out), _ = quick_runs
    assert code == 0
    data = json.loads((out / "results.json").read_text())
    ids = [c["id"] for c in data["claims"]]
    assert ids == list(registry.claims())
    for claim in data["claims"]:
        assert claim["verdict"] == "holds", (claim["id"], claim["reason"])
        assert {"paper_item", "tag", "conditions", "measured", "bound", "seed", "versions", "wall_time_s"} <= set(claim)
        assert (out / f"{claim['id']}.json").exists() and (out / f"{claim['id']}.png").exists()
    text = (out / "report.md").read_text()
    for claim_id in ids:
        assert f"![{claim_id}]({claim_id}.png)" in text


def test_same_seed_gives_identical_results_json_apart_from_timings(quick_runs):
    (_, a), (_, b) = quick_runs
    assert _comparable(a / "results.json") == _comparable(b / "results.json")


def test_one_verdict_vocabulary():
    assert {v.value for v in Verdict} == {"holds", "violated", "conditions not met", "not covered by the theorem"}


def test_every_claim_has_a_control():
    for claim in registry.claims().values():
        assert claim.controls, f"{claim.id} has no negative control"


def test_paper_map_names_every_claim_and_only_existing_paths():
    text = (ROOT / "paper_map.md").read_text()
    for claim_id in registry.claims():
        assert f"python -m verify {claim_id}" in text, f"paper_map.md has no row for {claim_id}"
    for token, name in set(re.findall(r"`([A-Za-z0-9_./]+\.py)(?:::([A-Za-z0-9_.]+))?`", text)):
        path = ROOT / token if "/" in token else ROOT / "ntkprefix" / token
        assert path.exists(), f"paper_map.md names {token}, which does not exist"
        if name:
            module = importlib.import_module(str(path.relative_to(ROOT).with_suffix("")).replace("/", "."))
            assert hasattr(module, name.split(".")[0]), f"paper_map.md names {token}::{name}, which does not exist"


def test_readme_verdict_table_is_generated_and_complete(tmp_path):
    text = (ROOT / "README.md").read_text()
    assert report.README_START in text and report.README_END in text
    table = text.split(report.README_START)[1].split(report.README_END)[0]
    for claim_id in registry.claims():
        row = next((line for line in table.splitlines() if f"`{claim_id}`" in line), None)
        assert row is not None, f"README verdict table has no row for {claim_id}"
        assert any(f"**{v.value}**" in row for v in Verdict)
    # update_readme rewrites only the marked block
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"claims": [
        {"id": "x", "paper_item": "Item", "tag": "[paper]", "verdict": "holds", "reason": "ok", "mode": "quick", "seed": 0}
    ]}))
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{report.README_START}\nSTALE-TABLE\n{report.README_END}\nafter\n")
    report.update_readme(readme, results)
    new = readme.read_text()
    assert new.startswith("before\n") and new.endswith("after\n") and "| `x` | Item |" in new and "STALE-TABLE" not in new
