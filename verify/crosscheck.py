"""Second routes for what a check reports (issue 19): each recomputes one reported quantity from the raw points by a
plain computation of its own and returns a calibration (``cross_check_*``) that compares the two. A disagreement is an
instrument error: the check's measurement code, not the library, is then wrong. The witness replay
(``cross_check_witness_replay``, verify.registry) is the second route for the deciding instance's measurement.
"""

from __future__ import annotations

import math
from typing import Callable

from verify.verdict import Calibration, Prediction, calibration

__all__ = ["counts_from_points"]


def counts_from_points(prediction: Prediction, rows: list[dict], *, counted: Callable[[dict], bool],
                       decidable: Callable[[dict], bool], holds: Callable[[dict], bool]) -> Calibration:
    """The checked, not-checked and failing counts of a "no failures at any point" prediction, counted again one
    point at a time: ``counted`` selects the points the prediction speaks of, ``decidable`` those it can judge (a
    finite bound, say), ``holds`` whether one meets it. The discrepancy is the sum of the three counts' differences
    (exact: tolerance 0)."""
    checked = not_checked = failures = 0
    for row in rows:
        if not counted(row):
            continue
        if decidable(row):
            checked += 1
            failures += 0 if holds(row) else 1
        else:
            not_checked += 1
    reported = (prediction.checked or 0, prediction.not_checked or 0, int(prediction.measured))
    recounted = (checked, not_checked, failures)
    return calibration(
        f"cross_check_counts_{prediction.name}",
        f"{prediction.name}'s points checked, not checked and failing, counted again point by point: "
        f"{recounted[0]}, {recounted[1]}, {recounted[2]} (reported {reported[0]}, {reported[1]}, {reported[2]})",
        float(sum(abs(a - b) for a, b in zip(recounted, reported))), 0.0,
        "counts: exact")


def finite(x) -> bool:
    return x is not None and math.isfinite(float(x))
