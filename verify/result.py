"""The result record of a check and the one verdict vocabulary shared by every check; JSON in and out."""

from __future__ import annotations

import dataclasses
import enum
import importlib.metadata
import json
import math
import platform
from pathlib import Path
from typing import Any

__all__ = ["Verdict", "Result", "package_versions", "exit_code", "to_jsonable"]


class Verdict(str, enum.Enum):
    """What a check concludes about its claim."""

    HOLDS = "holds"  # conditions met, every measured quantity within the claim
    VIOLATED = "violated"  # conditions met, and a measured quantity breaks the claim
    CONDITIONS_NOT_MET = "conditions not met"  # the instances break the claim's hypotheses: the claim says nothing
    NOT_COVERED = "not covered by the theorem"  # reported beside a claim (e.g. the ELU+1 path), never asserted


def exit_code(verdict: Verdict) -> int:
    """0 when the claim holds, 1 otherwise (violated, conditions not met, not covered)."""
    return 0 if verdict is Verdict.HOLDS else 1


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
      verdict: one of :class:`Verdict`.
      reason: one line saying why.
      conditions: ``{"met": bool, ...}`` with what was checked of the claim's hypotheses.
      bound: what the measurements are compared with.
      findings: derived numbers (fitted slopes, worst ratios) that decide the verdict.
      measurements: one dict per measured point.
      table: ``{"columns": [...], "rows": [[...], ...]}`` for the console.
      side_reports: results beside the claim that it does not cover (verdict ``not covered by the theorem``).
      seed, mode, control, versions, wall_time_s, figures: provenance.
    """

    claim: str
    paper_item: str
    tag: str
    statement: str
    verdict: Verdict
    reason: str
    conditions: dict
    bound: dict
    findings: dict
    measurements: list[dict]
    table: dict
    side_reports: list[dict] = dataclasses.field(default_factory=list)
    seed: int = 0
    mode: str = "full"
    control: str | None = None
    versions: dict = dataclasses.field(default_factory=package_versions)
    wall_time_s: float = 0.0
    figures: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return to_jsonable(dataclasses.asdict(self))

    def write_json(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        data = _from_jsonable(dict(data))
        data["verdict"] = Verdict(data["verdict"])
        return cls(**data)
