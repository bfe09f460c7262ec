"""The shape of every check: conditions, predictions and calibrations, and the ONE rule that turns them into a verdict.

A check measures; it never writes its own verdict. It returns an :class:`Evaluation` holding

* **calibrations**: its instruments (closed forms, fast paths) compared with an independent route on its first
  instance. Any failed calibration makes the verdict ``instrument error`` (exit 3): the measurements cannot be
  trusted, so nothing is concluded about the claim.
* **conditions**: what the claim assumes, each measured on the instances (value, requirement, met).
* **predictions**: what the claim implies, each with the measured value (and its uncertainty where it is a fit or a
  fraction), the threshold fixed in the settings before the run, and whether it was met. A prediction is either of
  the claim **as stated** (its failure refutes the claim on these instances) or of a **stronger reading** the project
  derived (for example an asymptotic efficiency read at finite m): its failure says the claim holds only in a weaker
  sense than that reading.

:func:`decide` applies the rule: a failed calibration -> instrument error; a condition not met -> conditions not
met; a prediction of the claim as stated failed -> violated; a prediction of a stronger reading failed -> holds only
in a weaker sense; otherwise holds. "holds" therefore means that every prediction was tested and met. The comparison of a measured value with its threshold is also made here (:func:`at_most`, :func:`at_least`,
:func:`no_failures`), so that every check compares in the same way and prints measured against required.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

__all__ = [
    "Verdict",
    "Condition",
    "Prediction",
    "Calibration",
    "Evaluation",
    "condition",
    "at_most",
    "at_least",
    "no_failures",
    "calibration",
    "decide",
    "format_number",
]


class Verdict(str, enum.Enum):
    """What a check concludes about its claim."""

    HOLDS = "holds"  # every calibration passed, every condition met, every prediction tested and met
    VIOLATED = "violated"  # conditions met, and a prediction measurably failed
    CONDITIONS_NOT_MET = "conditions not met"  # the instances break the claim's hypotheses: the claim says nothing
    INSTRUMENT_ERROR = "instrument error"  # a calibration failed: the measurements cannot be trusted
    HOLDS_WEAKER = "holds only in a weaker sense"  # every prediction of the claim as stated met; a stronger reading failed
    NOT_COVERED = "not covered by the theorem"  # reported beside a claim (e.g. the ELU+1 path), never asserted


def format_number(x: Any) -> str:
    """A number as the console and the reports print it (4 significant digits, scientific when tiny or huge)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4):
        return f"{x:.3e}"
    return f"{x:.4g}"


@dataclasses.dataclass(frozen=True)
class Condition:
    """A hypothesis of the claim, measured on the instances.

    Attributes:
      name: identifier (controls name the conditions they break).
      statement: what the claim assumes, in words.
      measured: the value measured on the instances.
      required: the requirement, in words ("<= 1", "> 0", "attained within 1e-12").
      met: whether the measured value meets the requirement.
    """

    name: str
    statement: str
    measured: Any
    required: str
    met: bool

    def line(self) -> str:
        return f"{self.name}: measured {format_number(self.measured)}, required {self.required}"


READINGS = ("stated", "stronger")


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A consequence of the claim, compared with a threshold fixed before the run.

    Attributes:
      name: identifier (controls name the predictions whose failure is their symptom).
      statement: what the claim implies, in words.
      measured: the measured value (a fitted exponent, a worst ratio, a count, ...).
      uncertainty: its standard error or interval half-width, where it is a fit or a fraction (else None).
      uncertainty_kind: what ``uncertainty`` is ("standard error", "95% Clopper-Pearson", ...).
      compared: the number actually compared with the threshold (``measured`` unless stated, e.g. an upper
        confidence bound).
      compared_as: what ``compared`` is, in words ("estimate", "upper end of the 95% interval").
      relation: "<=" or ">=".
      threshold: the threshold, fixed in the settings before the run.
      met: whether ``compared relation threshold`` holds (False for a non-finite compared value).
      checked: how many measured points the prediction was tested on; ``not_checked`` points where the quantity
        it needs was vacuous (an infinite bound, eps >= 1) and which were therefore not counted as passes.
      reading: "stated" (a consequence of the claim as stated) or "stronger" (of a stronger reading derived by the
        project; see the module docstring).
    """

    name: str
    statement: str
    measured: Any
    relation: str
    threshold: float
    met: bool
    uncertainty: float | None = None
    uncertainty_kind: str | None = None
    compared: float | None = None
    compared_as: str = "estimate"
    checked: int | None = None
    not_checked: int = 0
    reading: str = "stated"

    def __post_init__(self):
        if self.reading not in READINGS:
            raise ValueError(f"reading must be one of {READINGS}, got {self.reading!r}")

    def line(self) -> str:
        value = format_number(self.measured)
        if self.uncertainty is not None and math.isfinite(self.uncertainty):
            value += f" +- {format_number(self.uncertainty)} ({self.uncertainty_kind})"
        if self.compared is not None and self.compared_as != "estimate":
            value += f"; compared: {self.compared_as} {format_number(self.compared)}"
        points = ""
        if self.checked is not None:
            points = f" [{self.checked} points checked, {self.not_checked} not checked]"
        stronger = " (stronger reading)" if self.reading == "stronger" else ""
        return f"{self.name}{stronger}: measured {value}, required {self.relation} {format_number(self.threshold)}{points}"


@dataclasses.dataclass(frozen=True)
class Calibration:
    """An instrument of the check compared with an independent route on one instance.

    Attributes:
      name: identifier. statement: the two routes compared.
      discrepancy: the measured disagreement (relative, unless the statement says otherwise).
      tolerance: the largest disagreement allowed, with its derivation in ``tolerance_reason``.
      met: discrepancy <= tolerance.
    """

    name: str
    statement: str
    discrepancy: float
    tolerance: float
    tolerance_reason: str
    met: bool

    def line(self) -> str:
        return (f"{self.name}: discrepancy {format_number(self.discrepancy)}, tolerance {format_number(self.tolerance)} "
                f"({self.tolerance_reason})")


def condition(name: str, statement: str, measured: Any, required: str, met: bool) -> Condition:
    """A measured condition (``met`` is computed by the caller from the measured value, e.g. ``x <= 1``)."""
    return Condition(name, statement, measured, required, bool(met))


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _compare(name, statement, measured, relation, threshold, compared, **kw) -> Prediction:
    value = measured if compared is None else compared
    if not _finite(value):
        met = False
    else:
        met = value <= threshold if relation == "<=" else value >= threshold
    return Prediction(name, statement, measured, relation, float(threshold), bool(met), compared=compared, **kw)


def at_most(name: str, statement: str, measured: float, threshold: float, *, compared: float | None = None,
            compared_as: str = "estimate", uncertainty: float | None = None, uncertainty_kind: str | None = None,
            checked: int | None = None, not_checked: int = 0, reading: str = "stated") -> Prediction:
    """Prediction ``compared <= threshold`` (compared defaults to measured; non-finite never meets it)."""
    return _compare(name, statement, measured, "<=", threshold, compared, compared_as=compared_as,
                    uncertainty=uncertainty, uncertainty_kind=uncertainty_kind, checked=checked, not_checked=not_checked,
                    reading=reading)


def at_least(name: str, statement: str, measured: float, threshold: float, *, compared: float | None = None,
             compared_as: str = "estimate", uncertainty: float | None = None, uncertainty_kind: str | None = None,
             checked: int | None = None, not_checked: int = 0, reading: str = "stated") -> Prediction:
    """Prediction ``compared >= threshold`` (compared defaults to measured; non-finite never meets it)."""
    return _compare(name, statement, measured, ">=", threshold, compared, compared_as=compared_as,
                    uncertainty=uncertainty, uncertainty_kind=uncertainty_kind, checked=checked, not_checked=not_checked,
                    reading=reading)


def no_failures(name: str, statement: str, *, failures: int, checked: int, not_checked: int = 0,
                min_checked: int = 1) -> Prediction:
    """Prediction that a "for every point" statement held at every checked point.

    ``measured`` is the number of checked points where it failed; it is met when that number is 0 AND at least
    ``min_checked`` points were checked (vacuous points are reported as not checked, never counted as passes).
    """
    met = failures == 0 and checked >= min_checked
    statement = f"{statement} (needs >= {min_checked} non-vacuous points)"
    return Prediction(name, statement, int(failures), "<=", 0.0, bool(met), checked=int(checked),
                      not_checked=int(not_checked), compared=float(failures) if checked >= min_checked else math.inf,
                      compared_as="failures" if checked >= min_checked else f"too few points checked ({checked})")


def calibration(name: str, statement: str, discrepancy: float, tolerance: float, tolerance_reason: str) -> Calibration:
    """A calibration; met when the discrepancy is finite and at most the tolerance."""
    discrepancy = float(discrepancy)
    return Calibration(name, statement, discrepancy, float(tolerance), tolerance_reason,
                       bool(math.isfinite(discrepancy) and discrepancy <= tolerance))


@dataclasses.dataclass
class Evaluation:
    """What a check returns: its calibrations, conditions and predictions, and what it measured.

    ``summary`` is one line of the key numbers, appended to the verdict's reason. ``findings`` holds reported
    quantities that decide nothing (fits shown for context, template slack, extrapolations).
    """

    calibrations: list[Calibration]
    conditions: list[Condition]
    predictions: list[Prediction]
    summary: str = ""
    findings: dict = dataclasses.field(default_factory=dict)
    measurements: list[dict] = dataclasses.field(default_factory=list)
    table: dict = dataclasses.field(default_factory=lambda: {"columns": [], "rows": []})
    side_reports: list[dict] = dataclasses.field(default_factory=list)

    @classmethod
    def instrument_error(cls, calibrations: list[Calibration]) -> "Evaluation":
        """The evaluation of a check whose calibration failed: nothing else is measured."""
        return cls(calibrations=calibrations, conditions=[], predictions=[],
                   summary="measurement stopped at the failed calibration")

    @property
    def calibrated(self) -> bool:
        return all(c.met for c in self.calibrations)

    def item(self, name: str) -> Condition | Prediction:
        """The condition or prediction with this name; KeyError naming the known ones otherwise."""
        for x in (*self.conditions, *self.predictions):
            if x.name == name:
                return x
        known = [x.name for x in (*self.conditions, *self.predictions)]
        raise KeyError(f"no condition or prediction named {name!r}; known: {', '.join(known)}")


def decide(evaluation: Evaluation) -> tuple[Verdict, str]:
    """The verdict rule, the same for every check, and a one-line reason listing what decided it."""
    failed_calibrations = [c for c in evaluation.calibrations if not c.met]
    if failed_calibrations:
        return Verdict.INSTRUMENT_ERROR, "calibration failed: " + "; ".join(c.line() for c in failed_calibrations)
    if not any(p.reading == "stated" for p in evaluation.predictions):
        raise ValueError("a check must state at least one prediction of the claim as stated")
    summary = f" | {evaluation.summary}" if evaluation.summary else ""
    unmet = [c for c in evaluation.conditions if not c.met]
    failed = [p for p in evaluation.predictions if not p.met]
    if unmet:
        also = f"; predictions failed: {', '.join(p.name for p in failed)}" if failed else ""
        return Verdict.CONDITIONS_NOT_MET, "conditions not met: " + "; ".join(c.line() for c in unmet) + also + summary
    stated = [p for p in failed if p.reading == "stated"]
    if stated:
        return Verdict.VIOLATED, "failed: " + "; ".join(p.line() for p in failed) + summary
    if failed:
        n_stated = sum(p.reading == "stated" for p in evaluation.predictions)
        return Verdict.HOLDS_WEAKER, (f"all {n_stated} predictions of the claim as stated met; a stronger reading "
                                      "failed: " + "; ".join(p.line() for p in failed) + summary)
    return Verdict.HOLDS, f"all {len(evaluation.predictions)} predictions met" + summary
