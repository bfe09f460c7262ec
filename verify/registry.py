"""Claim id -> check, with its paper item and tag. A check module registers itself by exposing CLAIM."""

from __future__ import annotations

import dataclasses
import importlib
import time
from pathlib import Path
from typing import Any, Callable

from verify.result import Result

__all__ = ["Claim", "Control", "RunOptions", "claims", "get"]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How to run a check: quick (under a minute) or full, the seed, and which negative control (None: the claim)."""

    quick: bool = False
    seed: int = 0
    control: str | None = None


@dataclasses.dataclass(frozen=True)
class Control:
    """A negative control: what it breaks, and the settings it changes to break it."""

    description: str
    overrides: dict


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim of the paper and its check.

    settings(quick) gives the check's settings (a frozen dataclass) for its mode; run_with(settings, options)
    measures and returns a Result; plot(result, out_dir) writes the figure from the result alone; each control
    replaces some settings (dataclasses.replace) to break the claim's conditions.
    """

    id: str
    paper_item: str
    tag: str
    statement: str
    settings: Callable[[bool], Any]
    run_with: Callable[[Any, RunOptions], Result]
    plot: Callable[[Result, Path], list[Path]]
    controls: dict[str, Control]

    def settings_for(self, options: RunOptions):
        """The settings of the options' mode, with the control's overrides; ValueError for an unknown control."""
        s = self.settings(options.quick)
        if options.control is None:
            return s
        if options.control not in self.controls:
            raise ValueError(f"unknown control {options.control!r} for {self.id}; known: {', '.join(self.controls)}")
        return dataclasses.replace(s, **self.controls[options.control].overrides)

    def run(self, options: RunOptions) -> Result:
        """The check with the settings of its mode (quick or full) and control."""
        return self.run_with(self.settings_for(options), options)

    def new_result(self, options: RunOptions, started: float, **fields) -> Result:
        """A Result of this claim: id, paper item, tag, statement, seed, mode, control and wall time filled in."""
        return Result(
            claim=self.id, paper_item=self.paper_item, tag=self.tag, statement=self.statement, seed=options.seed,
            mode="quick" if options.quick else "full", control=options.control,
            wall_time_s=time.perf_counter() - started, **fields,
        )


_CHECK_MODULES = ("verify.checks.lem3_1", "verify.checks.thm3_2", "verify.checks.prop3_3", "verify.checks.thm4_1")


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
