"""The shape of every check (calibrations, conditions, predictions) and the ONE rule that turns them into two verdicts.

A check measures; it never writes its own verdict. It returns an :class:`Evaluation` holding

* **calibrations**: its instruments compared with an independent route on its first instance. A failed calibration
  makes both verdicts ``instrument error`` (exit 3): the measurements cannot be trusted.
* **conditions**: the claim's hypotheses as measured on the instances, each with its ``source`` (the PAPER.md tag of
  the hypothesis AND of every constant in it) and ``role``: ``hypothesis`` (the claim's own hypothesis, possibly
  operationalised) or ``reading`` (a rule of the project's, e.g. an m0 rule for "m large enough").
* **asymptotic hypotheses** ("m large enough", Omega, o(.), 1/poly): recorded, never "met" or "failed" at a finite m:
  the tested range, the template's value and, where a measured trend allows, the extrapolated value.
* **predictions**: what the claim implies, each with
  - ``source``: ``paper`` only when the words AND every constant, threshold, schedule or law in it are the paper's;
    ``template`` or ``derived`` otherwise;
  - ``role``: ``conclusion`` (what the claim concludes), ``proof step`` (an intermediate of its proof),
    ``reading`` (a sharper or finite-m form the project derived) or ``sanity`` (true by construction or implied by
    another prediction: listed, never counted as a test);
  - a measured value with its **interval** (a confidence interval, a fit's interval, or the value itself where it is
    exact) and a threshold fixed before the run, and the three-valued **outcome** decided from the interval, never
    from the point estimate: ``met`` (the whole interval on the right side), ``failed`` (the whole interval on the
    wrong side), ``inconclusive`` (it straddles; ``to_decide`` says how many more seeds or points would decide), or
    ``not tested`` (the quantity could not be formed: a fit on fewer than two points, only vacuous points), with the
    reason.

:func:`judge` applies the rule and returns two verdicts that are never merged:

* **the paper's statement**, from ``paper``-sourced conclusions only (see :class:`PaperVerdict`): a check with none
  is ``not testable here``; a hypothesis not met on the instances gives ``hypotheses not met``; a paper conclusion
  failed on instances meeting every hypothesis gives ``contradicted``, except that where a hypothesis is asymptotic
  or only a project's reading of the paper's, a failure at the tested scale cannot refute the paper: only a
  ``trend`` prediction failing can; every paper conclusion met gives ``confirmed`` when every hypothesis is the
  paper's own and finite, and ``consistent, not refuted`` (up to the tested range) otherwise, as it does when a paper
  conclusion is inconclusive;
* **the project's readings**, each by name with its outcome: every counted prediction that is not a paper conclusion
  (readings, proof steps, conclusions whose constants are the template's or ours) and every condition of role
  ``reading``.

The comparison of a measured value with its threshold is made here too (:func:`at_most`, :func:`at_least`,
:func:`no_failures`, :func:`probability_at_least`), so that every check compares in the same way.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

from verify.fitting import failure_free_runs_needed, one_sided_clopper_pearson

__all__ = [
    "Outcome",
    "PaperVerdict",
    "SOURCES",
    "NOT_COVERED",
    "ROLES",
    "CONDITION_ROLES",
    "Condition",
    "Prediction",
    "Calibration",
    "Asymptotic",
    "Evaluation",
    "Judgement",
    "condition",
    "at_most",
    "at_least",
    "no_failures",
    "probability_at_least",
    "asymptotic",
    "calibration",
    "judge",
    "is_paper_conclusion",
    "format_number",
    "more_samples_to_decide",
]

SOURCES = ("paper", "template", "derived")
#: The word of a side report about a path the claim does not cover (the authors' ELU+1 code): reported, never judged.
NOT_COVERED = "not covered by the theorem"
ROLES = ("conclusion", "proof step", "reading", "sanity")
CONDITION_ROLES = ("hypothesis", "reading")


class Outcome(str, enum.Enum):
    """The outcome of one condition or prediction, decided from its interval."""

    MET = "met"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    NOT_TESTED = "not tested"


class PaperVerdict(str, enum.Enum):
    """What a run says about the paper's statement (from ``paper``-sourced conclusions only)."""

    CONFIRMED = "confirmed"  # every paper conclusion met, every hypothesis the paper's own and met
    CONSISTENT = "consistent, not refuted"  # up to the tested range: asymptotic hypotheses, or inconclusive
    CONTRADICTED = "contradicted"  # a paper conclusion failed beyond measurement error on instances meeting the hypotheses
    HYPOTHESES_NOT_MET = "hypotheses not met"  # the instances leave a hypothesis: the claim says nothing about them
    NOT_TESTABLE = "not testable here"  # no paper conclusion that a planted fault or control can make fail
    INSTRUMENT_ERROR = "instrument error"  # a calibration failed: nothing is concluded
    NOT_A_CLAIM = "not a claim of the paper"  # the project's own extension (depth)


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


def _check_label(kind: str, value: str, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{kind} must be one of {allowed}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Condition:
    """A hypothesis of the claim (or a reading of one), measured on the instances.

    Attributes:
      name: identifier (controls name the conditions they break).
      statement: what is assumed, in words.
      measured: the value measured on the instances.
      required: the requirement, in words ("<= 1", "> 0").
      outcome: ``met`` or ``failed`` (a condition is measured exactly on the instances).
      source: the tag of the hypothesis and of every constant in it (``paper``, ``template``, ``derived``).
      role: ``hypothesis`` (the claim's own, possibly operationalised) or ``reading`` (a rule of the project's).
      interval, interval_kind: the measured value twice ("exact": measured on the instances themselves, no sampling
        error to allow for); None for a measurement that is not a number.
    """

    name: str
    statement: str
    measured: Any
    required: str
    outcome: Outcome
    source: str = "paper"
    role: str = "hypothesis"
    interval: tuple[float, float] | None = None
    interval_kind: str = "exact"

    def __post_init__(self):
        _check_label("source", self.source, SOURCES)
        _check_label("condition role", self.role, CONDITION_ROLES)
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        if self.interval is None and _finite(self.measured):
            object.__setattr__(self, "interval", (float(self.measured), float(self.measured)))
        elif self.interval is not None:
            object.__setattr__(self, "interval", tuple(float(v) for v in self.interval))

    @property
    def met(self) -> bool:
        return self.outcome is Outcome.MET

    def line(self) -> str:
        return f"{self.name} [{self.source} {self.role}]: measured {format_number(self.measured)}, required {self.required}"


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A consequence of the claim, compared with a threshold fixed before the run (see the module docstring).

    Attributes:
      name, statement: identifier and what is implied, in words.
      measured: the point estimate (a fitted exponent, a worst ratio, a count, a fraction).
      relation, threshold: "<=" or ">=", and the threshold fixed in the settings before the run.
      outcome: met / failed / inconclusive / not tested, from ``interval``.
      source, role: see the module docstring.
      interval: [low, high] that decided the outcome (the measured value twice where it is exact).
      interval_kind: what the interval is ("exact", "95% one-sided Clopper-Pearson", "slope +- 3 standard errors").
      checked, not_checked: points the prediction was tested on, and vacuous points not counted as passes.
      to_decide: for an inconclusive outcome, what would decide it (how many more seeds or points).
      not_tested_reason: why the quantity could not be formed (``not tested`` only).
      trend: whether it tests the direction of a trend in the asymptotic parameter (the only kind of failure that
        can contradict a claim whose hypotheses are asymptotic).
      free_choices: the project's choices it depends on (settings names with their values), and where a choice is
        known to flip it, the range that flips it.
    """

    name: str
    statement: str
    measured: Any
    relation: str
    threshold: float
    outcome: Outcome
    source: str
    role: str
    interval: tuple[float, float] | None = None
    interval_kind: str = "exact"
    checked: int | None = None
    not_checked: int = 0
    to_decide: str | None = None
    not_tested_reason: str | None = None
    trend: bool = False
    free_choices: tuple[str, ...] = ()

    def __post_init__(self):
        _check_label("source", self.source, SOURCES)
        _check_label("role", self.role, ROLES)
        if self.relation not in ("<=", ">="):
            raise ValueError(f"relation must be '<=' or '>=', got {self.relation!r}")
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        if self.interval is not None:
            object.__setattr__(self, "interval", tuple(float(v) for v in self.interval))
        object.__setattr__(self, "free_choices", tuple(self.free_choices))

    @property
    def met(self) -> bool:
        return self.outcome is Outcome.MET

    @property
    def counted(self) -> bool:
        """Whether it counts as a test (a sanity check is listed, never counted)."""
        return self.role != "sanity"

    def line(self) -> str:
        value = format_number(self.measured)
        if self.interval is not None and self.interval_kind != "exact":
            value += f" [{format_number(self.interval[0])}, {format_number(self.interval[1])}] ({self.interval_kind})"
        points = ""
        if self.checked is not None:
            points = f" [{self.checked} points checked, {self.not_checked} not checked]"
        text = (f"{self.name} [{self.source} {self.role}]: measured {value}, required {self.relation} "
                f"{format_number(self.threshold)}{points}")
        if self.outcome is Outcome.NOT_TESTED:
            text += f"; not tested: {self.not_tested_reason}"
        if self.outcome is Outcome.INCONCLUSIVE and self.to_decide:
            text += f"; inconclusive: {self.to_decide}"
        return text


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


@dataclasses.dataclass(frozen=True)
class Asymptotic:
    """A hypothesis with hidden constants ("m large enough", Omega, o(.), 1/poly): never met or failed at a finite m.

    Attributes:
      name, statement: identifier and the hypothesis in the paper's words.
      tested: the range the check reached ("m = 2^10 .. 2^16").
      template: the template's (or a derived) value of the threshold, where one exists, else None.
      extrapolated: where a measured trend puts the threshold, where one allows it, else None.
    """

    name: str
    statement: str
    tested: str
    template: str | None = None
    extrapolated: str | None = None

    def line(self) -> str:
        text = f"{self.name} (asymptotic: {self.statement}): tested {self.tested}"
        if self.template:
            text += f"; template's value {self.template}"
        if self.extrapolated:
            text += f"; extrapolated {self.extrapolated}"
        return text


def condition(name: str, statement: str, measured: Any, required: str, met: bool, *, source: str = "paper",
              role: str = "hypothesis") -> Condition:
    """A measured condition (``met`` is computed by the caller from the measured value, e.g. ``x <= 1``)."""
    return Condition(name, statement, measured, required, Outcome.MET if met else Outcome.FAILED, source, role)


def asymptotic(name: str, statement: str, tested: str, *, template: str | None = None,
               extrapolated: str | None = None) -> Asymptotic:
    """Record an asymptotic hypothesis (see :class:`Asymptotic`)."""
    return Asymptotic(name, statement, tested, template, extrapolated)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def more_samples_to_decide(samples: int, half_width: float, distance: float) -> int | None:
    """How many more samples would shrink an interval's half-width below its centre's distance to the threshold,
    were the spread to stay as measured (half-width ~ 1/sqrt(samples)); None when it cannot be said."""
    if not (samples and _finite(half_width) and _finite(distance)) or half_width <= 0 or distance <= 0:
        return None
    return max(1, math.ceil(samples * (half_width / distance) ** 2) - samples)


def _outcome(relation: str, threshold: float, interval: tuple[float, float]) -> Outcome:
    low, high = interval
    if relation == "<=":
        if high <= threshold:
            return Outcome.MET
        return Outcome.FAILED if low > threshold else Outcome.INCONCLUSIVE
    if low >= threshold:
        return Outcome.MET
    return Outcome.FAILED if high < threshold else Outcome.INCONCLUSIVE


def _compare(name, statement, measured, relation, threshold, *, source, role, interval, interval_kind, samples,
             sample_unit, not_tested, trend, free_choices, checked, not_checked) -> Prediction:
    kw = dict(source=source, role=role, checked=checked, not_checked=not_checked, trend=trend, free_choices=free_choices)
    if not_tested:
        return Prediction(name, statement, measured, relation, float(threshold), Outcome.NOT_TESTED,
                          interval=None, interval_kind=interval_kind, not_tested_reason=not_tested, **kw)
    if interval is None:
        interval, interval_kind = (measured, measured), "exact"
    interval = tuple(float(v) for v in interval)
    if not _finite(measured):  # a diverged or undefined measurement: never a pass
        outcome = Outcome.FAILED
    elif not all(math.isfinite(v) for v in interval):  # a finite estimate whose interval is undefined
        outcome = Outcome.INCONCLUSIVE
    else:
        outcome = _outcome(relation, threshold, interval)
    to_decide = None
    if outcome is Outcome.INCONCLUSIVE:
        half = (interval[1] - interval[0]) / 2
        more = more_samples_to_decide(samples or 0, half, abs(measured - threshold))
        to_decide = (f"about {more} more {sample_unit} (at the measured spread)" if more is not None
                     else f"more {sample_unit} (the interval straddles the threshold)")
    return Prediction(name, statement, measured, relation, float(threshold), outcome, interval=tuple(interval),
                      interval_kind=interval_kind, to_decide=to_decide, **kw)


def at_most(name: str, statement: str, measured: float, threshold: float, *, source: str, role: str,
            interval: tuple[float, float] | None = None, interval_kind: str = "exact", samples: int | None = None,
            sample_unit: str = "seeds", not_tested: str | None = None, trend: bool = False,
            free_choices: tuple[str, ...] = (), checked: int | None = None, not_checked: int = 0) -> Prediction:
    """Prediction ``measured <= threshold`` decided from ``interval`` (the value itself where it is exact): met when
    its upper end is <= threshold, failed when its lower end is above, inconclusive otherwise. ``samples``: how many
    independent samples (``sample_unit``) the interval rests on, to say how many more would decide it.
    ``not_tested``: the reason the quantity could not be formed."""
    return _compare(name, statement, measured, "<=", threshold, source=source, role=role, interval=interval,
                    interval_kind=interval_kind, samples=samples, sample_unit=sample_unit, not_tested=not_tested,
                    trend=trend, free_choices=free_choices, checked=checked, not_checked=not_checked)


def at_least(name: str, statement: str, measured: float, threshold: float, *, source: str, role: str,
             interval: tuple[float, float] | None = None, interval_kind: str = "exact", samples: int | None = None,
             sample_unit: str = "seeds", not_tested: str | None = None, trend: bool = False,
             free_choices: tuple[str, ...] = (), checked: int | None = None, not_checked: int = 0) -> Prediction:
    """Prediction ``measured >= threshold``, decided from ``interval`` as :func:`at_most` is."""
    return _compare(name, statement, measured, ">=", threshold, source=source, role=role, interval=interval,
                    interval_kind=interval_kind, samples=samples, sample_unit=sample_unit, not_tested=not_tested,
                    trend=trend, free_choices=free_choices, checked=checked, not_checked=not_checked)


def no_failures(name: str, statement: str, *, failures: int, checked: int, source: str, role: str,
                not_checked: int = 0, min_checked: int = 1, free_choices: tuple[str, ...] = ()) -> Prediction:
    """Prediction that a "for every point" statement held at every checked point (each point compared exactly).

    ``measured`` is the number of checked points where it failed: met when 0, failed when any; ``not tested`` when
    fewer than ``min_checked`` non-vacuous points were checked (vacuous points are never counted as passes).
    """
    statement = f"{statement} (needs >= {min_checked} non-vacuous points)"
    kw = dict(source=source, role=role, checked=int(checked), not_checked=int(not_checked), free_choices=free_choices)
    if checked < min_checked:
        return Prediction(name, statement, int(failures), "<=", 0.0, Outcome.NOT_TESTED, interval_kind="count",
                          not_tested_reason=f"only {checked} non-vacuous points (needs {min_checked})", **kw)
    outcome = Outcome.MET if failures == 0 else Outcome.FAILED
    return Prediction(name, statement, int(failures), "<=", 0.0, outcome, interval=(failures, failures),
                      interval_kind="count", **kw)


def probability_at_least(name: str, statement: str, *, successes: int, trials: int, target: float, source: str,
                         role: str, confidence: float = 0.95, free_choices: tuple[str, ...] = ()) -> Prediction:
    """Prediction "P >= target" from ``successes`` of ``trials`` independent runs, by one-sided Clopper-Pearson
    bounds at ``confidence``: confirmed only when the LOWER bound reaches the target, refuted only when the UPPER
    bound is below it, inconclusive otherwise (with the failure-free runs that would confirm it)."""
    if trials <= 0:
        return Prediction(name, statement, math.nan, ">=", float(target), Outcome.NOT_TESTED, source=source, role=role,
                          not_tested_reason="no runs", free_choices=free_choices)
    low = one_sided_clopper_pearson(successes, trials, confidence, "lower")
    high = one_sided_clopper_pearson(successes, trials, confidence, "upper")
    if low >= target:
        outcome = Outcome.MET
    elif high < target:
        outcome = Outcome.FAILED
    else:
        outcome = Outcome.INCONCLUSIVE
    to_decide = None
    if outcome is Outcome.INCONCLUSIVE:
        more = failure_free_runs_needed(successes, trials, target, confidence)
        to_decide = (f"{more} more failure-free runs would confirm it ({successes + more}/{trials + more}; "
                     f"{failure_free_runs_needed(0, 0, target, confidence)} failure-free runs in all from none)"
                     if more is not None else "cannot be confirmed at this target")
    return Prediction(name, f"{statement} ({successes}/{trials} runs)", successes / trials, ">=", float(target),
                      outcome, source=source, role=role, interval=(low, high),
                      interval_kind=f"{confidence:.0%} one-sided Clopper-Pearson bounds", checked=int(trials),
                      to_decide=to_decide, free_choices=free_choices)


def calibration(name: str, statement: str, discrepancy: float, tolerance: float, tolerance_reason: str) -> Calibration:
    """A calibration; met when the discrepancy is finite and at most the tolerance."""
    discrepancy = float(discrepancy)
    return Calibration(name, statement, discrepancy, float(tolerance), tolerance_reason,
                       bool(math.isfinite(discrepancy) and discrepancy <= tolerance))


@dataclasses.dataclass
class Evaluation:
    """What a check returns: its calibrations, conditions, asymptotic hypotheses and predictions, and what it measured.

    ``tested_range`` names the range reached ("m = 2^10 .. 2^16"), for the paper column. ``summary`` is one line of
    the key numbers. ``findings`` holds reported quantities that decide nothing (fits shown for context, template
    slack, extrapolations).
    """

    calibrations: list[Calibration]
    conditions: list[Condition]
    predictions: list[Prediction]
    summary: str = ""
    findings: dict = dataclasses.field(default_factory=dict)
    measurements: list[dict] = dataclasses.field(default_factory=list)
    table: dict = dataclasses.field(default_factory=lambda: {"columns": [], "rows": []})
    side_reports: list[dict] = dataclasses.field(default_factory=list)
    asymptotic: list[Asymptotic] = dataclasses.field(default_factory=list)
    tested_range: str = ""
    witness: Any = None  # a verify.witness.Witness: the instance that decided the verdict (None: the check has none)

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


@dataclasses.dataclass(frozen=True)
class Judgement:
    """The two verdicts of one run, never merged.

    Attributes:
      paper: the verdict on the paper's statement. paper_scope: the range it speaks for ("up to m = 65536").
      paper_reason: what decided it (the paper conclusions and hypotheses, measured against required).
      readings: one record per reading (name, outcome, source, role, line, free choices).
      sanity: the sanity checks (listed, never counted), name and outcome.
    """

    paper: PaperVerdict
    paper_scope: str
    paper_reason: str
    readings: tuple[dict, ...]
    sanity: tuple[dict, ...]


def _reading_record(x: Condition | Prediction) -> dict:
    return {"name": x.name, "kind": "condition" if isinstance(x, Condition) else "prediction",
            "outcome": x.outcome.value, "source": x.source, "role": x.role, "line": x.line(),
            "free_choices": list(getattr(x, "free_choices", ()))}


def is_paper_conclusion(p: Prediction | dict) -> bool:
    """Whether a prediction (or its JSON record) decides the paper column: a conclusion whose words and constants are
    the paper's."""
    role, source = (p["role"], p["source"]) if isinstance(p, dict) else (p.role, p.source)
    return role == "conclusion" and source == "paper"


def judge(evaluation: Evaluation, *, paper_claim: bool = True) -> Judgement:
    """The verdict rule, the same for every check (see the module docstring)."""
    summary = f" | {evaluation.summary}" if evaluation.summary else ""
    failed_calibrations = [c for c in evaluation.calibrations if not c.met]
    if failed_calibrations:
        reason = "calibration failed: " + "; ".join(c.line() for c in failed_calibrations)
        return Judgement(PaperVerdict.INSTRUMENT_ERROR, "", reason, (), ())
    readings = tuple(_reading_record(x) for x in (*evaluation.conditions, *evaluation.predictions)
                     if (isinstance(x, Condition) and x.role == "reading")
                     or (isinstance(x, Prediction) and x.counted and not is_paper_conclusion(x)))
    sanity = tuple({"name": p.name, "outcome": p.outcome.value, "line": p.line()}
                   for p in evaluation.predictions if not p.counted)
    scope = f"up to {evaluation.tested_range}" if evaluation.tested_range else "on the tested instances"

    def done(verdict: PaperVerdict, reason: str, scope_: str = "") -> Judgement:
        return Judgement(verdict, scope_, reason + summary, readings, sanity)

    if not paper_claim:
        return done(PaperVerdict.NOT_A_CLAIM, "the project's own extension: the paper states nothing to test")
    conclusions = [p for p in evaluation.predictions if is_paper_conclusion(p)]
    untested = [p for p in conclusions if p.outcome is Outcome.NOT_TESTED]
    conclusions = [p for p in conclusions if p.outcome is not Outcome.NOT_TESTED]
    hypotheses = [c for c in evaluation.conditions if c.role == "hypothesis"]
    asymptotic_lines = "; ".join(a.line() for a in evaluation.asymptotic)
    if not conclusions:
        why = ("the paper's conclusions could not be formed: " + "; ".join(p.line() for p in untested) if untested else
               "no conclusion whose words and constants are all the paper's: every prediction is a reading, a proof "
               "step or a sanity check")
        return done(PaperVerdict.NOT_TESTABLE, why + (f"; {asymptotic_lines}" if asymptotic_lines else ""))
    unmet = [c for c in hypotheses if not c.met]
    if unmet:
        return done(PaperVerdict.HYPOTHESES_NOT_MET, "hypotheses not met: " + "; ".join(c.line() for c in unmet))
    # A failure at the tested scale refutes the paper only if every hypothesis is the paper's own, finite and met;
    # otherwise (asymptotic hypotheses, or hypotheses read through the project's operationalisation) only a trend can.
    exact = not evaluation.asymptotic and all(c.source == "paper" for c in hypotheses)
    failed = [p for p in conclusions if p.outcome is Outcome.FAILED]
    decisive = [p for p in failed if exact or p.trend]
    if decisive:
        return done(PaperVerdict.CONTRADICTED, "failed on instances meeting the hypotheses: "
                    + "; ".join(p.line() for p in decisive), scope)
    met = [p for p in conclusions if p.met]
    open_ = [p for p in conclusions if not p.met]
    parts = [f"{len(met)} of {len(conclusions)} paper conclusions met"]
    if failed:
        parts.append("failed at the tested scale, which cannot refute an asymptotic statement: "
                     + "; ".join(p.line() for p in failed))
    others = [p for p in open_ if p not in failed]
    if others:
        parts.append("; ".join(p.line() for p in others))
    if untested:
        parts.append("not tested: " + "; ".join(p.line() for p in untested))
    if asymptotic_lines:
        parts.append(asymptotic_lines)
    not_exact = [c.name for c in hypotheses if c.source != "paper"]
    if not_exact:
        parts.append("hypotheses measured through the project's reading: " + ", ".join(not_exact))
    if not open_ and not untested and exact:
        return done(PaperVerdict.CONFIRMED, "; ".join(parts), "on the tested instances")
    return done(PaperVerdict.CONSISTENT, "; ".join(parts), scope)
