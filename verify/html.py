"""report.html: one self-contained page per run, rendered from the records of results.json (issue 18).

Everything the page shows is in the records (``verify.report.record``) or in the figure files they name: the page
computes nothing and carries no script, font or style sheet from elsewhere; the figures are inlined as base64 PNG,
so the file opens offline and can be sent as it is. The template is ``verify/templates/report.html.j2`` (Jinja2, with
autoescaping: a statement's ``<`` is text, not markup).

    write_html(records, path, controls=..., complete=...)   the page for these records (results.json's "claims")
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2

from verify.verdict import Asymptotic, format_number, is_paper_conclusion

__all__ = ["render", "write_html"]

TITLE = "Verification report: arXiv 2406.14036 (Towards Infinite-Long Prefix in Transformer)"

#: The CSS class of each verdict of the paper's statement (verify.result.PaperVerdict's values).
VERDICT_CLASSES = {"confirmed": "v-confirmed", "consistent, not refuted": "v-consistent", "contradicted": "v-contradicted",
                   "hypotheses not met": "v-hypotheses", "not testable here": "v-nottestable",
                   "instrument error": "v-instrument", "not a claim of the paper": "v-notaclaim"}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["number"] = lambda x: "" if x is None else format_number(x)
    env.filters["verdict_class"] = lambda v: VERDICT_CLASSES.get(v, "v-nottestable")
    env.filters["outcome_class"] = lambda o: "o-" + str(o).replace(" ", "")
    env.filters["basename"] = lambda p: Path(p).name
    return env


def _figures(record: dict) -> list[dict]:
    """The record's PNG figures, base64-encoded (the PDF copies are for print and stay beside the page)."""
    out = []
    for name in record.get("figures", []):
        path = Path(name)
        if path.suffix == ".png" and path.is_file():
            out.append({"name": path.name, "data": base64.b64encode(path.read_bytes()).decode("ascii")})
    return out


def _view(record: dict, controls: list[dict]) -> dict:
    """The record as the template reads it: the record itself plus what the page shows of it, gathered (the paper's
    conclusions, this claim's controls, the free choices by reading, the asymptotic hypotheses as lines, figures).

    Kept deliberately: the defaults for ``asymptotic``, ``settings_reasons``, ``devices``, ``witness`` and
    ``side_reports``, which every record written since issue 18 holds, let the page render a results.json written by
    an earlier version (those sections then show as empty or "unrecorded") instead of failing on it."""
    return {**record,
            "paper_conclusions": [p for p in record["predictions"] if is_paper_conclusion(p)],
            "claim_controls": [c for c in controls if c["id"] == record["id"]],
            "free_choices": [(x["name"], x["free_choices"]) for x in record["readings"] if x.get("free_choices")],
            "asymptotic": [{"name": a["name"], "line": Asymptotic(**a).line()} for a in record.get("asymptotic", [])],
            "figure_data": _figures(record),
            "settings_reasons": record.get("settings_reasons", {}), "devices": record.get("devices", ""),
            "witness": record.get("witness"), "side_reports": record.get("side_reports", [])}


def render(records: list[dict], *, controls: list[dict] = (), complete: bool = True) -> str:
    """The page for these claim records (and control records), as a string."""
    controls = list(controls)
    runs = records or controls
    run = {"modes": ", ".join(sorted({r["mode"] for r in runs})) or "no",
           "seeds": ", ".join(str(s) for s in sorted({r["seed"] for r in runs})) or "none",
           "devices": ", ".join(sorted({r.get("devices") or "unrecorded" for r in runs})) or "unrecorded",
           "wall_time": f"{sum(r['wall_time_s'] for r in runs):.0f} s",
           "versions": ", ".join(f"{k} {v}" for k, v in (runs[0]["versions"].items() if runs else ()))}
    return _environment().get_template("report.html.j2").render(
        title=TITLE, run=run, complete=complete, claims=[_view(r, controls) for r in records], controls=controls)


def write_html(records: list[dict], path: Path, *, controls: list[dict] = (), complete: bool = True) -> Path:
    """Write the page to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(records, controls=controls, complete=complete), encoding="utf-8")
    return path
