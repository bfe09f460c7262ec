"""Claim id -> check, with its paper item and tag. A check module registers itself by exposing CLAIM."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Callable

from verify.result import Result

__all__ = ["Claim", "RunOptions", "claims", "get"]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How to run a check: quick (under a minute) or full, the seed, and which negative control (None: the claim)."""

    quick: bool = False
    seed: int = 0
    control: str | None = None


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim of the paper and its check.

    run(options) -> Result measures; plot(result, out_dir) -> paths writes the figure from the result alone;
    controls names the negative controls run(RunOptions(control=name)) accepts.
    """

    id: str
    paper_item: str
    tag: str
    statement: str
    run: Callable[[RunOptions], Result]
    plot: Callable[[Result, Path], list[Path]]
    controls: dict[str, str]  # name -> what it breaks

    def new_result(self, **fields) -> Result:
        """A Result of this claim: id, paper item, tag and statement filled in from the claim."""
        return Result(claim=self.id, paper_item=self.paper_item, tag=self.tag, statement=self.statement, **fields)


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
