"""Fits shared by the checks: log-log slopes with their standard errors (scipy.stats.linregress)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = ["loglog_slope"]


def loglog_slope(x, y) -> dict:
    """Least-squares slope of log y against log x, with its standard error and intercept.

    Non-finite or non-positive y (a diverged or exactly-zero measurement) gives slope inf and finite=False: a rate
    cannot be claimed from such data.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or not np.all(np.isfinite(y)) or np.any(y <= 0):
        return {"slope": math.inf, "stderr": math.nan, "intercept": math.nan, "finite": False}
    fit = stats.linregress(np.log(x), np.log(y))
    stderr = float(fit.stderr) if len(x) > 2 else math.nan
    return {"slope": float(fit.slope), "stderr": stderr, "intercept": float(fit.intercept), "finite": True}
