"""python -m verify CLAIM [--quick] [--seed N] [--control [NAME]] [--json PATH] [--out DIR];  --all;  --list.

Exit status: 0 when the claim holds; 1 when it is violated or its conditions are not met (with --control: 1 when
every control is detected, i.e. none of them reports "holds"); 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _format_cell(x) -> str:
    if isinstance(x, float):
        return f"{x:.3e}" if (x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4)) else f"{x:.4g}"
    return str(x)


def format_table(table: dict) -> str:
    cells = [[str(c) for c in table["columns"]]] + [[_format_cell(x) for x in row] for row in table["rows"]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _print_result(result, figures) -> None:
    header = f"{result.claim} ({result.paper_item}, {result.tag})"
    if result.control:
        header += f"  NEGATIVE CONTROL: {result.control}"
    print(header)
    print(f"  statement: {result.statement}")
    print(f"  mode: {result.mode}, seed: {result.seed}, wall time: {result.wall_time_s:.1f} s")
    print(format_table(result.table))
    for side in result.side_reports:
        detail = ", ".join(f"{k} {_format_cell(v)}" for k, v in side.items() if k not in ("name", "verdict", "reason"))
        print(f"  beside the claim: {side['name']}: {side['verdict']} ({side['reason']}); {detail}")
    for path in figures:
        print(f"  figure: {path}")
    print(f"VERDICT {result.claim}: {result.verdict.value.upper()} -- {result.reason}")


def _run_and_plot(claim, options, out: Path):
    """Run one claim (or one of its controls), write its figure into out and record the figure paths."""
    result = claim.run(options)
    result.figures = [str(p) for p in claim.plot(result, out)]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify", description="Verify a claim of arXiv 2406.14036.")
    parser.add_argument("claim", nargs="?", help="claim id (see --list)")
    parser.add_argument("--list", action="store_true", help="list the claims and their negative controls")
    parser.add_argument(
        "--all", action="store_true",
        help="run every claim; write <claim>.json, results.json and report.md into --out (exit 1 unless all hold)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sweep, under a minute per claim")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0); same seed, same numbers")
    parser.add_argument(
        "--control",
        nargs="?",
        const="all",
        default=None,
        metavar="NAME",
        help="run the negative control NAME (all of them if no NAME): exit 1 when the check detects the violation",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the result(s) as JSON")
    parser.add_argument("--out", type=Path, default=Path("out"), metavar="DIR", help="directory for figures (default out/)")
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    from verify import registry
    from verify.registry import RunOptions

    known = registry.claims()
    if args.list:
        for claim in known.values():
            print(f"{claim.id:10s} {claim.paper_item:14s} {claim.tag:10s} {claim.statement}")
            for name, control in claim.controls.items():
                print(f"{'':10s}   control {name}: {control.description}")
        return 0
    if args.all:
        if args.claim is not None or args.control is not None:
            print("python -m verify: error: --all takes no claim and no --control", file=sys.stderr)
            return 2
        from tqdm import tqdm

        from verify import report

        results = []
        progress = tqdm(list(known.values()), desc="claims", unit="claim", file=sys.stderr, dynamic_ncols=True)
        for claim in progress:
            progress.set_postfix_str(claim.id)
            result = _run_and_plot(claim, RunOptions(quick=args.quick, seed=args.seed), args.out)
            result.write_json(args.out / f"{claim.id}.json")
            progress.write(f"{claim.id}: {result.verdict.value} ({result.wall_time_s:.0f} s)")
            results.append(result)
        progress.close()
        for result in results:
            _print_result(result, result.figures)
        report.write_results(results, args.out / "results.json")
        if args.json:
            report.write_results(results, args.json)
        print(f"wrote {args.out / 'results.json'} and {report.write_report(results, args.out)}")
        print("SUMMARY: " + "; ".join(f"{r.claim} {r.verdict.value}" for r in results))
        return 0 if all(r.verdict.value == "holds" for r in results) else 1
    if args.claim is None:
        parser.print_usage(sys.stderr)
        print("python -m verify: error: name a claim, or use --all or --list", file=sys.stderr)
        return 2
    if args.claim not in known:
        print(f"python -m verify: error: unknown claim {args.claim!r}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    claim = known[args.claim]
    if args.control is None:
        controls = [None]
    elif args.control == "all":
        controls = list(claim.controls)
    elif args.control in claim.controls:
        controls = [args.control]
    else:
        print(
            f"python -m verify: error: unknown control {args.control!r} for {claim.id}; "
            f"known: {', '.join(claim.controls)}",
            file=sys.stderr,
        )
        return 2

    results = []
    for control in controls:
        result = _run_and_plot(claim, RunOptions(quick=args.quick, seed=args.seed, control=control), args.out)
        _print_result(result, result.figures)
        results.append(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = results[0].to_dict() if args.control is None else {"controls": [r.to_dict() for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    holds = [r for r in results if r.verdict.value == "holds"]
    if args.control is not None:
        for r in holds:
            print(f"CONTROL NOT DETECTED: {r.claim} control {r.control} reported 'holds'")
        return 1 if not holds else 0
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
