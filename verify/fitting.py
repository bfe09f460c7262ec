"""Fits and intervals shared by the checks (scipy): log-log slopes, a common slope with per-group intercepts,
Clopper-Pearson intervals, geometric means over seeds."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = ["loglog_slope", "common_slope_fit", "clopper_pearson", "one_sided_clopper_pearson", "failure_free_runs_needed",
           "geometric_mean", "half_ranges", "mean_interval", "slope_interval"]


def loglog_slope(x, y) -> dict:
    """Least-squares slope of log y against log x, with its standard error and intercept.

    Fewer than two points (or fewer than two distinct x, or an x that is not positive and finite): no fit can be made: slope nan, finite=False and
    ``untestable`` says why (a prediction on it is "not tested", never "failed"). Non-finite or non-positive y (a
    diverged or exactly-zero measurement) gives slope inf and finite=False: a rate cannot be claimed from such data.
    ``points`` is the number of points; the standard error needs three (nan with two).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        return {"slope": math.nan, "stderr": math.nan, "intercept": math.nan, "finite": False, "points": len(x),
                "untestable": "a log-log slope needs positive, finite x"}
    if len(x) < 2 or len(np.unique(x)) < 2:
        return {"slope": math.nan, "stderr": math.nan, "intercept": math.nan, "finite": False, "points": len(x),
                "untestable": f"a slope needs two distinct x; got {len(np.unique(x))} of {len(x)} points"}
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        return {"slope": math.inf, "stderr": math.nan, "intercept": math.nan, "finite": False, "points": len(x),
                "untestable": None}
    if np.ptp(np.log(y)) == 0:  # exactly constant: slope 0 with zero residuals (linregress gives stderr nan here)
        return {"slope": 0.0, "stderr": 0.0 if len(x) > 2 else math.nan, "intercept": float(np.log(y[0])),
                "finite": True, "points": len(x), "untestable": None}
    fit = stats.linregress(np.log(x), np.log(y))
    stderr = float(fit.stderr) if len(x) > 2 else math.nan
    return {"slope": float(fit.slope), "stderr": stderr, "intercept": float(fit.intercept), "finite": True,
            "points": len(x), "untestable": None}


def slope_interval(fit: dict, *, standard_errors: float | None = None, confidence: float = 0.95) -> tuple[float, float]:
    """The interval of a fitted slope: slope +- ``standard_errors`` standard errors when given, else the two-sided
    Student-t interval at ``confidence`` with points - 2 degrees of freedom; (nan, nan) when it cannot be formed."""
    slope, stderr, points = fit["slope"], fit["stderr"], fit.get("points", 0)
    if not (math.isfinite(slope) and math.isfinite(stderr)) or points < 3:
        return (math.nan, math.nan)
    half = standard_errors * stderr if standard_errors is not None else float(
        stats.t.ppf(0.5 + confidence / 2, points - 2) * stderr)
    return (slope - half, slope + half)


def half_ranges(xs: list) -> tuple[list, list]:
    """The first and the last half of a sorted sweep, sharing the middle point (each has >= 2 points from three
    points on; with two, the last half is one point)."""
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[: mid + 1], xs[mid:]


def common_slope_fit(x, y, groups) -> dict:
    """y = b_g + k x: one slope, one intercept per group (least squares, fixed effects).

    Returns the slope k, its standard error, the intercepts by group, R^2 within each group (1 - SSR_g / SST_g
    around the group's own mean), the pooled within-group R^2 and the residuals.
    """
    x, y, groups = np.asarray(x, float), np.asarray(y, float), np.asarray(groups)
    xc, yc = x.copy(), y.copy()
    means = {}
    for g in np.unique(groups):
        sel = groups == g
        means[g.item()] = (x[sel].mean(), y[sel].mean())
        xc[sel] -= x[sel].mean()
        yc[sel] -= y[sel].mean()
    k = float(xc @ yc / (xc @ xc))
    residuals = yc - k * xc
    dof = len(x) - len(means) - 1
    stderr = float(math.sqrt(residuals @ residuals / dof / (xc @ xc))) if dof > 0 else math.nan
    r2_by_group = {}
    for g in means:
        sel = groups == g
        sst = float(yc[sel] @ yc[sel])
        r2_by_group[g] = float(1 - residuals[sel] @ residuals[sel] / sst) if sst > 0 else math.nan
    return {
        "slope": k,
        "stderr": stderr,
        "intercepts": {g: float(my - k * mx) for g, (mx, my) in means.items()},
        "r2_by_group": r2_by_group,
        "r2_pooled_within": float(1 - residuals @ residuals / (yc @ yc)),
        "residuals": residuals,
    }


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval for a binomial proportion."""
    if trials <= 0:
        return (0.0, 1.0)
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def one_sided_clopper_pearson(successes: int, trials: int, confidence: float = 0.95, side: str = "lower") -> float:
    """The exact one-sided Clopper-Pearson bound for a binomial proportion: the ``lower`` bound p with
    P(X >= successes | p) = 1 - confidence (0 with no success), or the ``upper`` one (1 with no failure)."""
    if side not in ("lower", "upper"):
        raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")
    if trials <= 0:
        return 0.0 if side == "lower" else 1.0
    alternative = "greater" if side == "lower" else "less"
    ci = stats.binomtest(int(successes), int(trials), alternative=alternative).proportion_ci(
        confidence_level=confidence, method="exact")
    return float(ci.low if side == "lower" else ci.high)


def failure_free_runs_needed(successes: int, trials: int, target: float, confidence: float = 0.95,
                             limit: int = 100_000) -> int | None:
    """The fewest further runs, all successful, after which the one-sided lower Clopper-Pearson bound of
    (successes + k) / (trials + k) reaches ``target`` (59 from none for 0.95 at 95%); None if ``limit`` does not."""
    if one_sided_clopper_pearson(successes, trials, confidence) >= target:
        return 0
    low, high = 1, 1
    while one_sided_clopper_pearson(successes + high, trials + high, confidence) < target:
        low, high = high + 1, 2 * high
        if high > limit:
            return None
    while low < high:  # the bound grows with k: bisect for the first k that reaches the target
        mid = (low + high) // 2
        if one_sided_clopper_pearson(successes + mid, trials + mid, confidence) >= target:
            high = mid
        else:
            low = mid + 1
    return low


def geometric_mean(values) -> float:
    """exp(mean(log v)); nan when a value is not positive and finite."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0 or not np.all(np.isfinite(v)) or np.any(v <= 0):
        return math.nan
    return float(np.exp(np.mean(np.log(v))))


def mean_interval(values, confidence: float = 0.95) -> dict:
    """Mean of independent values (one per seed) and its two-sided Student-t interval, mean +- t s / sqrt(n).

    With one value the interval is (mean, mean) and ``half_width`` is nan.
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    mean = float(v.mean())
    if n < 2:
        return {"mean": mean, "low": mean, "high": mean, "half_width": math.nan, "n": n}
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "n": n}
