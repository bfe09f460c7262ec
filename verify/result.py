"""The result record of a check (the verdict vocabulary lives in :mod:`verify.verdict`); JSON in and out; exit codes."""

from __future__ import annotations

import dataclasses
import enum
import importlib.metadata
import json
import math
import platform
from pathlib import Path
from typing import Any

from verify.verdict import PaperVerdict

__all__ = ["PaperVerdict", "Result", "package_versions", "exit_code", "to_jsonable", "EXIT_OK", "EXIT_NOT_OK",
           "EXIT_USAGE", "EXIT_FAILURE"]

EXIT_OK = 0  # no paper statement contradicted, no hypothesis left, nothing failed to run (see exit_code)
EXIT_NOT_OK = 1  # a paper statement contradicted or its hypotheses not met; with --strict also a reading not met
EXIT_USAGE = 2  # a usage error
EXIT_FAILURE = 3  # instrument error, I/O error, an exception in a check


def exit_code(result: "Result", *, strict: bool = False) -> int:
    """3 instrument error; 1 the paper's statement contradicted or its hypotheses not met, or (``strict``) a named
    reading failed or inconclusive; 0 otherwise (confirmed, consistent, not testable here, not a claim of the paper)."""
    if result.paper_verdict is PaperVerdict.INSTRUMENT_ERROR:
        return EXIT_FAILURE
    if result.paper_verdict in (PaperVerdict.CONTRADICTED, PaperVerdict.HYPOTHESES_NOT_MET):
        return EXIT_NOT_OK
    if strict and any(r["outcome"] in ("failed", "inconclusive") for r in result.readings):
        return EXIT_NOT_OK
    return EXIT_OK


_PACKAGES = ("jax", "jaxlib", "numpy", "scipy", "matplotlib", "neural-tangents", "hypothesis", "ntkprefix")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a result depends on."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def to_jsonable(x: Any) -> Any:
    """x with enums as their values, numpy/jax scalars as Python numbers and non-finite floats as "inf"/"nan"."""
    if isinstance(x, enum.Enum):
        return x.value
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy / jax scalars
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # "inf", "nan": JSON has no literal for them
    return x


_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _from_jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _from_jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_from_jsonable(v) for v in x]
    if isinstance(x, str) and x in _NON_FINITE:
        return _NON_FINITE[x]
    return x


@dataclasses.dataclass
class Result:
    """What one run of one check measured, against which bound, and what it concludes.

    Attributes:
      claim: the claim id (``thm4_1``).
      paper_item: the item of the paper (``Theorem 4.1``).
      tag: the PAPER.md tag of the statement checked.
      statement: the statement as used.
      paper_verdict: the verdict on the paper's statement (:class:`~verify.verdict.PaperVerdict`), computed by
        :func:`verify.verdict.judge` from paper-sourced conclusions only; paper_scope: the range it speaks for;
        paper_reason: what decided it, then the check's summary.
      readings: the project's readings, each by name with its outcome, source, role and free choices (never merged
        into the paper's verdict); sanity: the sanity checks (listed, never counted as tests).
      asymptotic: the asymptotic hypotheses (tested range, template's value, extrapolated value).
      calibrations: each instrument against its independent route (name, statement, discrepancy, tolerance, met).
      conditions: each hypothesis measured on the instances (name, statement, measured, required, outcome,
        source, role).
      predictions: each consequence (name, statement, measured, interval and its kind, relation, threshold,
        outcome, source, role, points checked and not checked, what would decide it, free choices).
      findings: reported quantities that decide nothing (fits for context, slack against the template, ...).
      measurements: one dict per measured point.
      table: ``{"columns": [...], "rows": [[...], ...]}`` for the console.
      side_reports: results beside the claim that it does not cover (verdict ``not covered by the theorem``).
      settings: every field of the check's settings as used; settings_reasons: why each has its value (the knob's
        reason); overrides: the fields replaced by the user.
      control: the negative control's name (None for the claim itself); control_outcome: what it must break, its
        kind, and whether the measured symptom was there (``detected``).
      seed, mode, versions, devices, wall_time_s, figures: provenance.
      witness: the instance that decided the verdict, as the JSON keeps it (what, why, the stored numbers, the
        file ``<claim>.witness.npz`` written beside the figures); witness_data: the verify.witness.Witness with its
        arrays (not in the JSON; None for a control run or a check without one).
    """

    claim: str
    paper_item: str
    tag: str
    statement: str
    paper_verdict: PaperVerdict
    paper_scope: str
    paper_reason: str
    readings: list[dict]
    sanity: list[dict]
    calibrations: list[dict]
    conditions: list[dict]
    predictions: list[dict]
    findings: dict
    measurements: list[dict]
    table: dict
    asymptotic: list[dict] = dataclasses.field(default_factory=list)
    side_reports: list[dict] = dataclasses.field(default_factory=list)
    settings: dict = dataclasses.field(default_factory=dict)
    settings_reasons: dict = dataclasses.field(default_factory=dict)
    overrides: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    mode: str = "full"
    control: str | None = None
    control_outcome: dict | None = None
    versions: dict = dataclasses.field(default_factory=package_versions)
    devices: str = ""  # what the run computed on (verify.sharding.device_summary: "1 x cpu")
    wall_time_s: float = 0.0
    figures: list[str] = dataclasses.field(default_factory=list)
    witness: dict | None = None  # what the JSON keeps of the witness (verify.witness.Witness.record) and its file
    witness_data: Any = dataclasses.field(default=None, repr=False, compare=False)  # the Witness itself; not in JSON

    def item(self, name: str) -> dict:
        """The condition or prediction record with this name; KeyError otherwise."""
        for x in (*self.conditions, *self.predictions):
            if x["name"] == name:
                return x
        raise KeyError(f"{self.claim} has no condition or prediction named {name!r}")

    @property
    def paper_line(self) -> str:
        """The paper column in words: the verdict and its scope ("consistent, not refuted up to m = 65536")."""
        return self.paper_verdict.value + (f" {self.paper_scope}" if self.paper_scope else "")

    @property
    def readings_line(self) -> str:
        """The readings column in words: each reading by name with its outcome."""
        return "; ".join(f"{r['name']} {r['outcome']}" for r in self.readings) or "none"

    def to_dict(self) -> dict:
        data = dataclasses.asdict(dataclasses.replace(self, witness_data=None))
        del data["witness_data"]  # the arrays live in the witness file, not in the JSON
        return to_jsonable(data)

    def write_json(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        data = _from_jsonable(dict(data))
        data["paper_verdict"] = PaperVerdict(data["paper_verdict"])
        return cls(**data)
