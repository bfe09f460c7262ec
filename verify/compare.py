"""Two runs of the checks side by side: the same verdicts, the same outcomes, and how far every number moved.

    python -m verify.compare OLD NEW [--json FILE]

OLD and NEW are output folders of ``python -m verify`` (one ``<claim>.json`` per claim run, controls included) or
single ``<claim>.json`` files: two stacks, two device counts, two machines. For every claim present in both it
reports

* whether the paper's verdict, every reading's outcome, every calibration's, condition's and prediction's outcome, and
  every control's detection are the same (any difference is listed by name);
* every number found in both records at the same place (measurements, predictions' measured values and intervals,
  conditions, calibrations, findings; wall times, versions and file paths left out): how many are bit-identical,
  and the largest relative difference |a - b| / max(|a|, |b|) with where it is.

Exit status 0 when every verdict and outcome agrees, 1 when one differs, 2 on a usage error. Whether a number's
difference is within the rounding its bound allows is the claim's own business: this tool reports, the checks judge.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Comparison", "compare_records", "compare_folders", "main"]

# Provenance, not measurement: where and how long, never what.
_SKIPPED_KEYS = {"wall_time_s", "versions", "figures", "seconds", "time_s", "elapsed_s", "devices"}
_OUTCOME_KEYS = ("outcome", "met", "detected")


@dataclass
class Comparison:
    """One claim (or control) in both runs."""

    name: str
    verdict_differences: list[str] = field(default_factory=list)
    numbers: int = 0
    identical: int = 0
    largest: float = 0.0
    largest_at: str = ""

    @property
    def same_verdicts(self) -> bool:
        return not self.verdict_differences

    def line(self) -> str:
        verdicts = "same verdicts and outcomes" if self.same_verdicts else "DIFFERENT: " + "; ".join(self.verdict_differences)
        moved = (f"largest relative difference {self.largest:.2e} at {self.largest_at}" if self.identical < self.numbers
                 else "every number bit-identical")
        return f"{self.name}: {verdicts}; {self.identical} of {self.numbers} numbers bit-identical, {moved}"


def _relative(a: float, b: float) -> float:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def _walk(a, b, where: str, out: Comparison) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) & set(b)):
            if key in _SKIPPED_KEYS:
                continue
            _walk(a[key], b[key], f"{where}.{key}" if where else str(key), out)
    elif isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, f"{where}[{i}]", out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        out.numbers += 1
        a, b = float(a), float(b)
        if a == b or (math.isnan(a) and math.isnan(b)):
            out.identical += 1
            return
        r = _relative(a, b)
        if r > out.largest or not out.largest_at:
            out.largest, out.largest_at = r, where


def _named(records) -> dict:
    return {r["name"]: r for r in records or [] if isinstance(r, dict) and "name" in r}


def compare_records(old: dict, new: dict, name: str | None = None) -> Comparison:
    """Compare two ``<claim>.json`` records (``Result.to_dict()``)."""
    out = Comparison(name or old.get("claim", "?") + (f" (control {old['control']})" if old.get("control") else ""))
    if old.get("paper_verdict") != new.get("paper_verdict"):
        out.verdict_differences.append(f"paper verdict {old.get('paper_verdict')!r} -> {new.get('paper_verdict')!r}")
    for section in ("readings", "sanity", "calibrations", "conditions", "predictions"):
        a, b = _named(old.get(section)), _named(new.get(section))
        for item in sorted(set(a) | set(b)):
            if item not in a or item not in b:
                out.verdict_differences.append(f"{section} {item!r} only in the {'new' if item in b else 'old'} run")
                continue
            for key in _OUTCOME_KEYS:
                if a[item].get(key) != b[item].get(key):
                    out.verdict_differences.append(f"{section} {item!r} {key} {a[item].get(key)!r} -> {b[item].get(key)!r}")
    control_old, control_new = old.get("control_outcome") or {}, new.get("control_outcome") or {}
    if control_old.get("detected") != control_new.get("detected"):
        out.verdict_differences.append(f"control detected {control_old.get('detected')!r} -> {control_new.get('detected')!r}")
    for section in ("calibrations", "conditions", "predictions", "findings", "measurements", "asymptotic"):
        _walk(old.get(section), new.get(section), section, out)
    return out


def _records(path: Path) -> dict[str, dict]:
    if path.is_file():
        record = json.loads(path.read_text())
        return {path.stem: record}
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: neither an output folder of `python -m verify` nor a <claim>.json")
    records = {}
    for file in sorted(path.glob("*.json")):
        record = json.loads(file.read_text())
        if isinstance(record, dict) and "claim" in record and "paper_verdict" in record:
            records[file.stem] = record
    if not records:
        raise FileNotFoundError(f"{path}: no <claim>.json records of `python -m verify` in it")
    return records


def compare_folders(old: Path, new: Path) -> tuple[list[Comparison], list[str]]:
    """(a Comparison per record present in both, the names present in only one)."""
    a, b = _records(Path(old)), _records(Path(new))
    only = [f"{k} only in {'NEW' if k in b else 'OLD'}" for k in sorted(set(a) ^ set(b))]
    return [compare_records(a[k], b[k], k) for k in sorted(set(a) & set(b))], only


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--json", type=Path, help="also write the comparison here")
    args = parser.parse_args(argv)
    try:
        comparisons, only = compare_folders(args.old, args.new)
    except FileNotFoundError as error:
        print(f"python -m verify.compare: {error}", file=sys.stderr)
        return 2
    for c in comparisons:
        print(c.line())
    for line in only:
        print(line)
    if args.json:
        args.json.write_text(json.dumps([{**vars(c), "same_verdicts": c.same_verdicts} for c in comparisons], indent=2) + "\n")
    return 0 if all(c.same_verdicts for c in comparisons) else 1


if __name__ == "__main__":
    sys.exit(main())
