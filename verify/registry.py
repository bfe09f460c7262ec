"""Claim id -> check, with its paper item and tag. A check module registers itself by exposing CLAIM.

A check module provides ``settings(quick)`` (a frozen dataclass of knobs, each with its reason), ``evaluate(settings,
options) -> Evaluation`` (calibrations, conditions, predictions, measurements), ``plot(result, out_dir)`` and its
controls. :meth:`Claim.run` turns the evaluation into a :class:`~verify.result.Result` with the one verdict rule of
:func:`verify.verdict.decide`, and, for a control, decides from the measured symptom whether it was detected.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from verify import settings as settings_module
from verify.result import Result
from verify.verdict import Evaluation, Outcome, judge

__all__ = ["Claim", "Control", "RunOptions", "claims", "get", "CONTROL_KINDS"]

#: A control either breaks a condition of the claim (the instances leave its hypotheses) or plants a fault in the
#: algorithm (the mathematics is changed on purpose). Both are detected by the same rule: the measured symptom.
CONTROL_KINDS = ("broken condition", "planted fault")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How to run a check: quick (under a minute) or full, the seed, which negative control (None: the claim), and
    settings overrides (field name -> value, typed against the settings' fields)."""

    quick: bool = False
    seed: int = 0
    control: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class Control:
    """A negative control: what it changes, and the conditions or predictions whose measured failure is its symptom.

    Attributes:
      description: what is changed and why it must break the claim.
      overrides: settings fields replaced (dataclasses.replace).
      breaks: names of the predictions (or measured conditions) that must measurably fail. The control is
        detected only when every one of them did, never from its settings.
      kind: one of :data:`CONTROL_KINDS`.
    """

    description: str
    overrides: dict
    breaks: tuple[str, ...]
    kind: str = "broken condition"

    def __post_init__(self):
        if self.kind not in CONTROL_KINDS:
            raise ValueError(f"control kind must be one of {CONTROL_KINDS}, got {self.kind!r}")
        if not self.breaks:
            raise ValueError("a control must name at least one prediction or condition it breaks")


def detect(control: Control, evaluation: Evaluation) -> dict:
    """Whether the control's symptom was measured: every named prediction/condition FAILED (an inconclusive or
    untested one is no symptom).

    A failed calibration is not a symptom (the measurements cannot be trusted): such a control is not detected.
    """
    symptoms = []
    for name in control.breaks:
        if not evaluation.calibrated:
            symptoms.append({"name": name, "failed": False, "measured": None, "note": "instrument error"})
            continue
        item = evaluation.item(name)
        symptoms.append({"name": name, "failed": item.outcome is Outcome.FAILED, "outcome": item.outcome.value,
                         "line": item.line()})
    return {
        "description": control.description,
        "kind": control.kind,
        "breaks": list(control.breaks),
        "symptoms": symptoms,
        "detected": bool(evaluation.calibrated and all(s["failed"] for s in symptoms)),
    }


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim of the paper and its check (see the module docstring for what a check module provides)."""

    id: str
    paper_item: str
    tag: str
    statement: str
    settings: Callable[[bool], Any]
    evaluate: Callable[[Any, RunOptions], Evaluation]
    plot: Callable[[Result, Path], list[Path]]
    controls: dict[str, Control]
    measures_time: bool = False  # its predictions compare run times: tests assert its deterministic parts only
    paper_claim: bool = True  # False for the project's own extensions (depth): the paper column says so

    def settings_for(self, options: RunOptions):
        """The settings of the options' mode, with the control's overrides, then the user's; ValueError for an
        unknown control, :class:`verify.settings.SettingsError` for a bad override."""
        s = self.settings(options.quick)
        if options.control is not None:
            if options.control not in self.controls:
                raise ValueError(f"unknown control {options.control!r} for {self.id}; known: {', '.join(self.controls)}")
            s = dataclasses.replace(s, **self.controls[options.control].overrides)
        return settings_module.apply_overrides(s, dict(options.overrides))

    def run(self, options: RunOptions) -> Result:
        """Run the check: evaluate, judge both columns by the shared rule, and for a control decide detection."""
        from verify.sharding import device_summary  # imports jax: after verify.jax_setup has configured it

        s = self.settings_for(options)
        started = time.perf_counter()
        evaluation = self.evaluate(s, options)
        if evaluation.witness is not None and options.control is None:
            check = witness_cross_check(evaluation.witness)
            if check is None:
                evaluation.findings["cross_check_witness_replay"] = (
                    f"not run: the {evaluation.witness.kind} route's reference is extended precision, and "
                    f"np.longdouble here has {np.finfo(np.longdouble).nmant} fraction bits (float64's 52): its allowance "
                    "would have nothing to measure the trajectory's rounding against")
            else:
                evaluation.calibrations = [*evaluation.calibrations, check]
        judgement = judge(evaluation, paper_claim=self.paper_claim)
        outcome = detect(self.controls[options.control], evaluation) if options.control is not None else None
        return Result(
            claim=self.id, paper_item=self.paper_item, tag=self.tag, statement=self.statement,
            paper_verdict=judgement.paper, paper_scope=judgement.paper_scope, paper_reason=judgement.paper_reason,
            readings=list(judgement.readings), sanity=list(judgement.sanity),
            asymptotic=[dataclasses.asdict(a) for a in evaluation.asymptotic],
            calibrations=[dataclasses.asdict(c) for c in evaluation.calibrations],
            conditions=[dataclasses.asdict(c) for c in evaluation.conditions],
            predictions=[dataclasses.asdict(p) for p in evaluation.predictions],
            findings=evaluation.findings, measurements=evaluation.measurements, table=evaluation.table,
            side_reports=evaluation.side_reports,
            settings=settings_module.as_dict(s), overrides=dict(options.overrides),
            settings_reasons={name: why for name, _, _, why in settings_module.describe(s)},
            devices=device_summary(),
            seed=options.seed, mode="quick" if options.quick else "full",
            control=options.control, control_outcome=outcome,
            wall_time_s=time.perf_counter() - started,
            witness=evaluation.witness.record() if evaluation.witness is not None and options.control is None else None,
            witness_data=evaluation.witness if options.control is None else None,
        )


def witness_cross_check(witness, *, name: str = "cross_check_witness_replay", statement: str | None = None):
    """The run's deciding instance (its witness) measured again by verify.witness's independent route, as a
    calibration of the check's own measurement code (issue 19): the discrepancy is the largest |replayed - stored| /
    allowance over the numbers the route compares (infinite for a disagreement of another kind: a threshold's side, a
    bound, a step), against 1. A disagreement is an instrument error. Not run for a control, whose planted fault the
    route would see instead of the symptom the control names. A check may cross-check another of its instances the
    same way, under its own ``name`` and ``statement`` (thm3_2's first run).

    The training routes (thm3_2's training_run, prop3_3's loss_in_compute) bound the evaluation's rounding but
    estimate the trajectory's (10x the float64 effect measured against an extended-precision replay: an estimate,
    said so in verify/witness.py); where np.longdouble is no wider than float64 (some platforms) that estimate has
    nothing to measure against, so the cross-check is not run there (None; the caller says so in the findings)."""
    from verify import witness as witness_module
    from verify.verdict import calibration

    if not witness_module.cross_checkable_here(witness.kind):
        return None

    replayed = witness_module.replay_numbers(witness)
    return calibration(
        name,
        statement or (f"the deciding instance re-measured by an independent route (verify.witness, {witness.kind}) = "
                      f"the check's own measurement: {witness.quantity}"),
        replayed.discrepancy, 1.0,
        "the route's stated allowances: discrepancy = max |replayed - stored| / allowance over the numbers compared")


_CHECK_MODULES = (
    "verify.checks.lem3_1",
    "verify.checks.thm3_2",
    "verify.checks.prop3_3",
    "verify.checks.thm4_1",
    "verify.checks.depth",
    "verify.checks.fig3",
)


def claims() -> dict[str, Claim]:
    """Every registered claim, by id, in the order of the paper."""
    found = {}
    for module_name in _CHECK_MODULES:
        claim = importlib.import_module(module_name).CLAIM
        found[claim.id] = claim
    return found


def get(claim_id: str) -> Claim:
    """The claim with this id; KeyError naming the known ids otherwise."""
    known = claims()
    if claim_id not in known:
        raise KeyError(f"unknown claim {claim_id!r}; known claims: {', '.join(known)}")
    return known[claim_id]
