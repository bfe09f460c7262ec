"""python -m verify CLAIM [CLAIM ...] [options];  python -m verify --all [--controls];  python -m verify --list;
python -m verify replay FILE (re-evaluate a witness written by a run, by an independent route: verify.witness).

Every run gives two verdicts per claim, never merged (verify.verdict): the paper's statement (confirmed; consistent,
not refuted up to a range; contradicted; hypotheses not met; not testable here; not a claim of the paper) and the
project's readings, each by name (met, failed, inconclusive, not tested).

Files, in --out (default out/): per claim its figures, <claim>.witness.npz and, for a run of named claims,
<claim>.html (the claim's self-contained page); with --all, also <claim>.json per run, results.json (the one record),
report.md and report.html (every claim's page in one self-contained file: figures inline, no script, opens offline;
verify.html renders it from the records results.json holds).

Exit status:
  0  no paper statement contradicted, no hypothesis left, nothing failed to run (readings may be not met: see
     --strict); with --control: at least one control was NOT detected, see below
  1  a paper statement is contradicted or its hypotheses are not met on the instances; with --strict, also a named
     reading failed or inconclusive; with --control, every control run was detected (its measured symptom was
     there), which is what a control is for; with --all --controls, also a control that was not detected
  2  usage error (unknown claim, control or setting, a bad --set value)
  3  any other failure: an instrument error (a calibration failed), an exception in a check, an output folder that
     cannot be written, an interruption (Ctrl-C). One line on stderr; --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXIT_OK, EXIT_NOT_OK, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3


class UsageError(Exception):
    """A usage error: printed as one line, exit 2."""


def _format_cell(x) -> str:
    from verify.verdict import format_number

    return format_number(x)


def format_table(table: dict) -> str:
    if not table.get("columns"):
        return ""
    cells = [[str(c) for c in table["columns"]]] + [[_format_cell(x) for x in row] for row in table["rows"]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


_MARKS = {"met": "ok  ", "failed": "FAIL", "inconclusive": "??  ", "not tested": "--  "}


def _mark(outcome: str) -> str:
    return _MARKS[outcome]


def print_result(result) -> None:
    """The console form of a result: header, table, calibrations, conditions, predictions, the two verdicts."""
    from verify.verdict import Asymptotic, Calibration, Condition, Prediction

    header = f"{result.claim} ({result.paper_item}, {result.tag})"
    if result.control:
        header += f"  NEGATIVE CONTROL: {result.control} ({result.control_outcome['kind']})"
    print(header)
    print(f"  statement: {result.statement}")
    overrides = f", overrides: {result.overrides}" if result.overrides else ""
    print(f"  mode: {result.mode}, seed: {result.seed}, wall time: {result.wall_time_s:.1f} s{overrides}")
    table = format_table(result.table)
    if table:
        print(table)
    for title, items, cls in (("calibrations", result.calibrations, Calibration),
                              ("conditions", result.conditions, Condition),
                              ("predictions", result.predictions, Prediction)):
        if items:
            print(f"  {title}:")
        for item in items:
            outcome = item.get("outcome") or ("met" if item["met"] else "failed")
            print(f"    [{_mark(outcome)}] {cls(**item).line()}")
    for a in result.asymptotic:
        print(f"  asymptotic hypothesis: {Asymptotic(**a).line()}")
    for side in result.side_reports:
        detail = ", ".join(f"{k} {_format_cell(v)}" for k, v in side.items() if k not in ("name", "verdict", "reason"))
        print(f"  beside the claim: {side['name']}: {side['verdict']} ({side['reason']}); {detail}")
    for path in result.figures:
        print(f"  figure: {path}")
    print(f"PAPER {result.claim}: {result.paper_line.upper()} -- {result.paper_reason}")
    print(f"READINGS {result.claim}: {result.readings_line}")
    if result.sanity:
        print(f"SANITY {result.claim} (not counted): " + "; ".join(f"{x['name']} {x['outcome']}" for x in result.sanity))
    if result.control_outcome is not None:
        outcome = result.control_outcome
        state = "DETECTED" if outcome["detected"] else "NOT DETECTED"
        symptoms = "; ".join(s.get("line", s["name"]) + (" (failed)" if s["failed"] else " (met)") for s in outcome["symptoms"])
        print(f"CONTROL {result.claim}/{result.control}: {state} -- must break {', '.join(outcome['breaks'])}: {symptoms}")


def _check_writable(folder: Path) -> None:
    """Create the folder and write a probe file, before any computation; OSError otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / ".verify-write-probe"
    probe.write_text("")
    probe.unlink()


def _parse_overrides(claims, assignments: list[str]) -> tuple[tuple[str, str], ...]:
    from verify.settings import SettingsError, apply_overrides, parse_assignment

    pairs = []
    for text in assignments:
        try:
            pairs.append(parse_assignment(text))
        except SettingsError as error:
            raise UsageError(str(error)) from None
    for claim in claims:  # validate against every claim to be run, before any computation
        try:
            apply_overrides(claim.settings(False), dict(pairs))
        except SettingsError as error:
            raise UsageError(f"{claim.id}: {error}") from None
    return tuple(pairs)


def _show_settings(claims, options_for) -> None:
    from verify.settings import describe

    for claim in claims:
        options = options_for(claim)
        s = claim.settings_for(options)
        print(f"{claim.id} settings ({'quick' if options.quick else 'full'} mode"
              + (f", control {options.control}" if options.control else "") + "):")
        for name, value, type_name, why in describe(s):
            print(f"  {name} = {value!r}  [{type_name}]  {why}")


def _run_one(claim, options, out: Path):
    """Run one claim (or one of its controls) and write its figure into out (none after an instrument error:
    nothing was measured)."""
    from verify.result import PaperVerdict

    result = claim.run(options)
    if result.paper_verdict is not PaperVerdict.INSTRUMENT_ERROR:
        result.figures = [str(p) for p in claim.plot(result, out)]
    if result.witness_data is not None:
        from verify import witness

        path = witness.save(result.witness_data, out / f"{claim.id}.witness.npz",
                            witness.provenance(result.seed, result.mode, result.settings, result.versions))
        result.witness["file"] = str(path)
    return result


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m verify", description="Verify the claims of arXiv 2406.14036.",
        epilog="python -m verify replay FILE [FILE ...]: re-evaluate the witness a run wrote (<claim>.witness.npz) by an "
               "independent route and say whether it agrees with the stored result (exit 0, or 1).")
    parser.add_argument("claims", nargs="*", metavar="CLAIM", help="claim ids (see --list)")
    parser.add_argument("--list", action="store_true", help="list the claims and their negative controls")
    parser.add_argument("--all", action="store_true",
                        help="run every claim; write <claim>.json, results.json, report.md and report.html into --out")
    parser.add_argument("--controls", action="store_true", help="with --all: also run every control of every claim")
    parser.add_argument("--quick", action="store_true", help="smaller sweeps, under a minute per claim")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0); same seed, same numbers")
    parser.add_argument("--control", nargs="?", const="all", default=None, metavar="NAME",
                        help="run the negative control NAME of the claim (all of them if no NAME)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a settings field (repeatable); see --show-settings")
    parser.add_argument("--show-settings", action="store_true",
                        help="print every settings field with its value and the reason for it, and exit")
    parser.add_argument("--strict", action="store_true",
                        help="also exit 1 when a named reading of the project's is failed or inconclusive")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result(s) as JSON to PATH")
    parser.add_argument("--out", type=Path, default=Path("out"), metavar="DIR", help="output folder (default out/): figures, witnesses, <claim>.html per named claim")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["replay"]:  # python -m verify replay FILE: re-evaluate a witness (verify.witness)
        from verify import witness

        return witness.main(argv[1:])
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on a usage error and 0 on --help
        return int(exit_.code or 0)
    try:
        return _main(args)
    except UsageError as error:
        print(f"python -m verify: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("python -m verify: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 - the command line turns every failure into one line and exit 3
        if args.debug:
            traceback.print_exc()
        print(f"python -m verify: failed: {type(error).__name__}: {error}" + ("" if args.debug else " (--debug for the traceback)"),
              file=sys.stderr)
        return EXIT_FAILURE


def _main(args) -> int:
    from verify import jax_setup, registry

    jax_setup.configure()  # float64, and the PRNG bit stream the recorded seeds draw from
    from verify.registry import RunOptions

    known = registry.claims()
    if args.list:
        for claim in known.values():
            print(f"{claim.id:10s} {claim.paper_item:16s} {claim.tag}\n{'':10s} {claim.statement}")
            for name, control in claim.controls.items():
                print(f"{'':10s}   control {name} ({control.kind}; breaks {', '.join(control.breaks)}): {control.description}")
        return EXIT_OK
    if args.all and (args.claims or args.control is not None):
        raise UsageError("--all takes no claim and no --control (use --controls for every control)")
    if args.controls and not args.all:
        raise UsageError("--controls goes with --all; for one claim use --control [NAME]")
    if not args.all and not args.claims:
        raise UsageError("name a claim, or use --all or --list")
    unknown = [c for c in args.claims if c not in known]
    if unknown:
        raise UsageError(f"unknown claim {unknown[0]!r}; known: {', '.join(known)}")
    claims = list(known.values()) if args.all else [known[c] for c in dict.fromkeys(args.claims)]
    if args.control not in (None, "all"):
        for claim in claims:
            if args.control not in claim.controls:
                raise UsageError(f"unknown control {args.control!r} for {claim.id}; known: {', '.join(claim.controls)}")
    overrides = _parse_overrides(claims, args.set)

    def options_for(claim, control=None):
        return RunOptions(quick=args.quick, seed=args.seed, control=control, overrides=overrides)

    if args.show_settings:
        control = args.control if args.control not in (None, "all") else None
        _show_settings(claims, lambda claim: options_for(claim, control))
        return EXIT_OK

    for folder in {args.out, *([args.json.parent] if args.json else [])}:
        try:
            _check_writable(folder)
        except OSError as error:
            print(f"python -m verify: error: cannot write to {folder}: {error.strerror or error}", file=sys.stderr)
            return EXIT_FAILURE

    if args.all:
        return _run_all(claims, args, options_for)
    runs = []
    for claim in claims:
        if args.control is None:
            runs.append((claim, None))
        else:
            runs += [(claim, name) for name in (claim.controls if args.control == "all" else [args.control])]
    results = []
    for claim, control in runs:
        result = _run_one(claim, options_for(claim, control), args.out)
        print_result(result)
        results.append(result)
    for result in (r for r in results if r.control is None):  # a run of named claims: one page per claim
        _write_html([result], [r for r in results if r.control is not None and r.claim == result.claim], args.out,
                    name=f"{result.claim}.html")
    if args.json:
        payload = results[0].to_dict() if len(results) == 1 and args.control is None else {
            "results": [r.to_dict() for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return _exit_status(results, controls_mode=args.control is not None, strict=args.strict)


def _exit_status(results, *, controls_mode: bool, strict: bool = False, controls=()) -> int:
    """The exit status of the module docstring: the worst over the claims run (3 before 1 before 0)."""
    from verify.result import exit_code

    codes = [exit_code(r, strict=strict) for r in results]
    if EXIT_FAILURE in codes:
        return EXIT_FAILURE
    if controls_mode:
        undetected = [r for r in results if not r.control_outcome["detected"]]
        for r in undetected:
            print(f"CONTROL NOT DETECTED: {r.claim}/{r.control}: its named symptom was not measured", file=sys.stderr)
        return EXIT_OK if undetected else EXIT_NOT_OK
    if any(not r.control_outcome["detected"] for r in controls):
        return EXIT_NOT_OK
    return EXIT_NOT_OK if EXIT_NOT_OK in codes else EXIT_OK


def _run_all(claims, args, options_for) -> int:
    from tqdm import tqdm

    from verify import report

    jobs = [(claim, None) for claim in claims]
    if args.controls:
        jobs += [(claim, name) for claim in claims for name in claim.controls]
    results, controls = [], []
    progress = tqdm(jobs, desc="verify", unit="run", file=sys.stderr, dynamic_ncols=True)
    try:
        for claim, control in progress:
            progress.set_postfix_str(claim.id + (f"/{control}" if control else ""))
            result = _run_one(claim, options_for(claim, control), args.out)
            stem = claim.id + (f"_control_{control}" if control else "")
            result.write_json(args.out / f"{stem}.json")
            (controls if control else results).append(result)
            status = result.paper_line + (f", detected: {result.control_outcome['detected']}" if control else "")
            progress.write(f"{stem}: {status} ({result.wall_time_s:.0f} s)")
    except KeyboardInterrupt:
        progress.close()
        report.write_results(results, args.out / "results.json", controls=controls, complete=False)
        _write_html(results, controls, args.out, complete=False)
        print(f"python -m verify: interrupted; wrote the finished runs, {args.out / 'results.json'} and "
              f"{args.out / 'report.html'} (marked incomplete)", file=sys.stderr)
        return EXIT_FAILURE
    progress.close()
    for result in results + controls:
        print_result(result)
    report.write_results(results, args.out / "results.json", controls=controls)
    if args.json:
        report.write_results(results, args.json, controls=controls)
    page = _write_html(results, controls, args.out)
    print(f"wrote {args.out / 'results.json'}, {report.write_report(results, args.out, controls=controls)} and {page}")
    print("SUMMARY (paper | readings): " + "; ".join(f"{r.claim} {r.paper_line} | {r.readings_line}" for r in results)
          + ("; controls detected: " + ", ".join(f"{r.claim}/{r.control} {r.control_outcome['detected']}" for r in controls)
             if controls else ""))
    return _exit_status(results, controls_mode=False, strict=args.strict, controls=controls)


def _write_html(results, controls, out: Path, *, complete: bool = True, name: str = "report.html") -> Path:
    """The self-contained page (verify.html) from the records results.json holds: report.html beside it for --all,
    <claim>.html beside the claim's figures for a run of named claims."""
    from verify import html, report
    from verify.result import to_jsonable

    return html.write_html([to_jsonable(report.record(r)) for r in results], out / name,
                           controls=[to_jsonable(report.record(r)) for r in controls], complete=complete)


if __name__ == "__main__":
    sys.exit(main())
