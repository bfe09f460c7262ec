"""Which of the library's paths the checks reach: coverage.py over ``python -m verify --all --quick`` (issue 19).

    python -m verify.library_coverage [--out DIR]        (make coverage)

runs every claim in quick mode under coverage.py with branch measurement, restricted to ``ntkprefix/``, and reports
the total line and branch coverage and, function by function, every line or branch of a public function (its name and
its class's name without a leading underscore) that no check reaches, with the line numbers. It writes
``DIR/library_coverage.json`` (the same, as a record) and exits 0 (a report, not a gate: why each path left is left is
said in docs/tests.md). A check that reaches a path may still not test it: the calibrations and predictions decide
that; this report says only where none goes.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "ntkprefix"


def _functions(path: Path) -> list[tuple[str, int, int, bool]]:
    """(qualified name, first line, last line, public) of every function and method in the module, innermost last."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, prefix: str, public: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                is_public = public and not child.name.startswith("_")
                if not isinstance(child, ast.ClassDef):
                    out.append((name, child.lineno, child.end_lineno, is_public))
                visit(child, name + ".", is_public)

    visit(tree, "", True)
    return out


def _owner(functions, line: int):
    inside = [f for f in functions if f[1] <= line <= f[2]]
    return max(inside, key=lambda f: f[1]) if inside else None  # the innermost


def report(data_file: Path) -> dict:
    """The coverage of ntkprefix/ recorded in ``data_file`` (read through coverage.py's JSON report): totals, and per
    public function its unreached lines and branches (from -> to; a negative target stands for leaving the function)."""
    import coverage

    cov = coverage.Coverage(data_file=str(data_file))
    cov.load()
    json_file = Path(data_file).with_suffix(".json")
    cov.json_report(outfile=str(json_file), include=[str(LIBRARY / "*.py")], show_contexts=False)
    files = json.loads(json_file.read_text())["files"]
    totals = {"statements": 0, "missing": 0, "branches": 0, "partial_branches": 0}
    unreached = {}
    for name, entry in sorted(files.items()):
        path = Path(name) if Path(name).is_absolute() else ROOT / name
        summary = entry["summary"]
        totals["statements"] += summary["num_statements"]
        totals["missing"] += summary["missing_lines"]
        totals["branches"] += summary.get("num_branches", 0)
        totals["partial_branches"] += summary.get("missing_branches", 0)
        functions = _functions(path)
        missing = set(entry["missing_lines"])
        for line in sorted(missing):
            owner = _owner(functions, line)
            if owner and owner[3]:
                unreached.setdefault(f"{path.stem}.{owner[0]}", {"lines": [], "branches": []})["lines"].append(line)
        for source, target in entry.get("missing_branches", []):
            owner = _owner(functions, source)
            if owner and owner[3] and source not in missing:
                unreached.setdefault(f"{path.stem}.{owner[0]}", {"lines": [], "branches": []})["branches"].append(
                    [source, target])
    covered = totals["statements"] - totals["missing"]
    return {"line_coverage": covered / totals["statements"],
            "branch_coverage": 1 - totals["partial_branches"] / totals["branches"] if totals["branches"] else 1.0,
            **totals, "unreached_in_public_functions": unreached}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify.library_coverage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out") / "coverage", help="output folder (default out/coverage)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / ".coverage"
    run = [sys.executable, "-m", "coverage", "run", "--branch", f"--source={LIBRARY}", f"--data-file={data}",
           "-m", "verify", "--all", "--quick", "--out", str(args.out / "run")]
    print("running:", " ".join(run[1:]), flush=True)
    status = subprocess.run(run, cwd=ROOT).returncode
    if status not in (0, 1):  # 1: a verdict of the run; the coverage is still what it is
        print(f"python -m verify.library_coverage: the run failed (exit {status})", file=sys.stderr)
        return 3
    found = report(data)
    (args.out / "library_coverage.json").write_text(json.dumps(found, indent=2) + "\n")
    print(f"ntkprefix/ under `verify --all --quick`: lines {found['line_coverage']:.1%} "
          f"({found['statements'] - found['missing']}/{found['statements']}), branches {found['branch_coverage']:.1%} "
          f"({found['branches'] - found['partial_branches']}/{found['branches']})")
    print("paths of public functions that no check reaches (line numbers; branches as from -> to, -1: return):")
    for name, where in found["unreached_in_public_functions"].items():
        parts = []
        if where["lines"]:
            parts.append("lines " + ", ".join(map(str, where["lines"])))
        if where["branches"]:
            parts.append("branches " + ", ".join(f"{a}->{b}" for a, b in where["branches"]))
        print(f"  {name}: {'; '.join(parts)}")
    print(f"wrote {args.out / 'library_coverage.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
