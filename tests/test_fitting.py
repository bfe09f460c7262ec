"""Every statistic of verify.fitting against an independent reference (scipy.stats, numpy.linalg) on cases whose answer
is known, and the coverage of its intervals over repeated draws with a fixed seed.

Coverage tests: an interval of nominal level c covers the truth in a fraction q of draws; over N independent draws the
observed fraction has standard error sqrt(q (1 - q) / N). An exact interval (Student t on normal data) must cover in
c +- 3 se of draws; a conservative one (Clopper-Pearson, q >= c) in at least c - 3 se, with se taken at q = c. A
correct interval fails either test with probability about 1e-3 (one-sided) or 3e-3 (two-sided); the seeds are fixed,
so the outcome is reproducible.
"""

import math

import numpy as np
import pytest
from scipy import stats

from verify.fitting import (clopper_pearson, common_slope_fit, failure_free_runs_needed, geometric_mean, half_ranges,
                            loglog_slope, mean_interval, one_sided_clopper_pearson, slope_interval)

DRAWS = 2000


def _coverage_slack(confidence: float, draws: int = DRAWS) -> float:
    """Three standard errors of a coverage fraction estimated from ``draws`` independent draws at level confidence."""
    return 3 * math.sqrt(confidence * (1 - confidence) / draws)


# ---------------------------------------------------------------- loglog_slope


@pytest.mark.parametrize("exponent", [-1.0, -0.5, 0.5, 2.0])
def test_exact_power_law_gives_its_exponent_and_prefactor(exponent):
    x = np.array([3.0, 10.0, 64.0, 1000.0, 4096.0])
    fit = loglog_slope(x, 2.5 * x**exponent)
    assert fit["slope"] == pytest.approx(exponent, abs=1e-12)
    assert fit["intercept"] == pytest.approx(math.log(2.5), abs=1e-11)
    # linregress forms the stderr from 1 - r^2: on exact data it is rounding, of order sqrt(eps)
    assert fit["stderr"] < 1e-7 and fit["finite"] and fit["points"] == 5 and fit["untestable"] is None


def test_a_constant_y_has_slope_zero_with_standard_error_zero():
    fit = loglog_slope([3.0, 10.0, 64.0, 1000.0], [2.5, 2.5, 2.5, 2.5])
    assert fit["slope"] == 0.0 and fit["finite"]
    assert fit["stderr"] == 0.0


def test_slope_stderr_and_intercept_equal_linregress_on_the_logs():
    rng = np.random.default_rng(1)
    x = 2.0 ** np.arange(4, 12)
    y = 7.0 * x**-0.7 * np.exp(0.3 * rng.normal(size=len(x)))
    fit = loglog_slope(list(x), list(y))
    ref = stats.linregress(np.log(x), np.log(y))
    assert fit["slope"] == pytest.approx(ref.slope, rel=1e-12)
    assert fit["stderr"] == pytest.approx(ref.stderr, rel=1e-12) and fit["stderr"] > 0.01
    assert fit["intercept"] == pytest.approx(ref.intercept, rel=1e-12)
    assert fit["points"] == len(x) and fit["finite"]


@pytest.mark.parametrize("x,y", [([], []), ([8.0], [0.5]), ([4.0, 4.0], [1.0, 2.0]),
                                 ([4.0, 4.0, 4.0], [1.0, 2.0, 3.0])])
def test_a_slope_that_cannot_be_made_is_nan_with_an_untestable_reason(x, y):
    fit = loglog_slope(x, y)
    assert math.isnan(fit["slope"]) and math.isnan(fit["stderr"]) and not fit["finite"]
    assert fit["points"] == len(x)
    assert isinstance(fit["untestable"], str) and "two distinct x" in fit["untestable"]
    assert slope_interval(fit) == pytest.approx((math.nan, math.nan), nan_ok=True)


def test_two_points_give_a_slope_without_a_standard_error():
    fit = loglog_slope([2.0, 8.0], [1.0, 4.0])
    assert fit["slope"] == pytest.approx(1.0, abs=1e-14) and math.isnan(fit["stderr"]) and fit["finite"]
    assert fit["untestable"] is None
    low, high = slope_interval(fit)
    assert math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_a_non_positive_or_non_finite_y_gives_an_infinite_slope(bad):
    fit = loglog_slope([2.0, 4.0, 8.0], [1.0, bad, 3.0])
    assert fit["slope"] == math.inf and not fit["finite"] and fit["untestable"] is None and fit["points"] == 3


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf])
def test_a_non_positive_or_non_finite_x_is_not_a_finite_fit(bad):
    with np.errstate(all="ignore"):
        fit = loglog_slope([bad, 4.0, 8.0], [1.0, 2.0, 3.0])
    assert not fit["finite"]


# ---------------------------------------------------------------- slope_interval


@pytest.mark.parametrize("n", [3, 4, 7, 12])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_slope_interval_is_the_student_t_interval_with_n_minus_2_degrees_of_freedom(n, confidence):
    rng = np.random.default_rng(n)
    x = np.geomspace(16, 4096, n)
    fit = loglog_slope(x, x**0.5 * np.exp(0.2 * rng.normal(size=n)))
    half = stats.t.ppf(1 - (1 - confidence) / 2, df=n - 2) * fit["stderr"]
    low, high = slope_interval(fit, confidence=confidence)
    assert low == pytest.approx(fit["slope"] - half, rel=1e-12, abs=1e-14)
    assert high == pytest.approx(fit["slope"] + half, rel=1e-12, abs=1e-14)
    # the same through scipy's interval of a t variable centred at the slope with scale stderr
    ref_low, ref_high = stats.t.interval(confidence, n - 2, loc=fit["slope"], scale=fit["stderr"])
    assert (low, high) == pytest.approx((ref_low, ref_high), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("k", [1.0, 2.0, 3.0])
def test_slope_interval_with_standard_errors_is_plus_minus_k_standard_errors(k):
    fit = {"slope": -0.4, "stderr": 0.05, "points": 6}
    assert slope_interval(fit, standard_errors=k) == pytest.approx((-0.4 - k * 0.05, -0.4 + k * 0.05), rel=1e-14)


def test_slope_interval_cannot_be_formed_without_a_finite_slope_or_stderr_or_three_points():
    for fit in ({"slope": math.inf, "stderr": 0.1, "points": 5}, {"slope": 1.0, "stderr": math.nan, "points": 5},
                {"slope": 1.0, "stderr": 0.1, "points": 2}, {"slope": 1.0, "stderr": 0.1}):
        low, high = slope_interval(fit)
        assert math.isnan(low) and math.isnan(high)


# ---------------------------------------------------------------- half_ranges


def test_half_ranges_share_the_middle_point_and_sort():
    assert half_ranges([5, 1, 4, 2, 3]) == ([1, 2, 3], [3, 4, 5])
    assert half_ranges([4, 3, 2, 1]) == ([1, 2, 3], [3, 4])
    assert half_ranges([2, 1, 3]) == ([1, 2], [2, 3])
    for n in range(3, 12):
        first, last = half_ranges(list(range(n)))
        assert len(first) >= 2 and len(last) >= 2 and first[-1] == last[0] and first + last[1:] == list(range(n))


# ---------------------------------------------------------------- common_slope_fit


def _dummy_coded_reference(x, y, groups):
    labels = np.unique(groups)
    design = np.column_stack([x] + [(groups == g).astype(float) for g in labels])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ beta
    dof = len(x) - design.shape[1]
    covariance = residuals @ residuals / dof * np.linalg.inv(design.T @ design)
    return beta[0], math.sqrt(covariance[0, 0]), dict(zip(labels.tolist(), beta[1:])), residuals


def test_common_slope_fit_equals_least_squares_on_dummy_coded_groups():
    rng = np.random.default_rng(3)
    groups = np.repeat([0, 1, 2, 5], [5, 7, 4, 6])  # unequal group sizes, a gap in the labels
    x = rng.uniform(1, 10, size=len(groups))
    y = np.array([2.0, -1.0, 0.5, 0, 0, 4.0])[groups] - 1.3 * x + 0.4 * rng.normal(size=len(groups))
    fit = common_slope_fit(x, y, groups)
    slope, stderr, intercepts, residuals = _dummy_coded_reference(x, y, groups)
    assert fit["slope"] == pytest.approx(slope, rel=1e-10)
    assert fit["stderr"] == pytest.approx(stderr, rel=1e-10) and fit["stderr"] > 0.01
    assert fit["intercepts"].keys() == intercepts.keys()
    for g in intercepts:
        assert fit["intercepts"][g] == pytest.approx(intercepts[g], rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(fit["residuals"], residuals, rtol=1e-9, atol=1e-12)
    # R^2 within each group around its own mean, and pooled, from the residuals directly
    for g in intercepts:
        sel = groups == g
        sst = np.sum((y[sel] - y[sel].mean()) ** 2)
        assert fit["r2_by_group"][g] == pytest.approx(1 - np.sum(residuals[sel] ** 2) / sst, rel=1e-10)
    sst_within = sum(np.sum((y[groups == g] - y[groups == g].mean()) ** 2) for g in intercepts)
    assert fit["r2_pooled_within"] == pytest.approx(1 - residuals @ residuals / sst_within, rel=1e-10)


def test_common_slope_fit_is_exact_on_exact_data_and_needs_a_residual_degree_of_freedom():
    groups = np.array(["a", "a", "a", "b", "b"])
    x = np.array([1.0, 2.0, 4.0, 1.0, 3.0])
    fit = common_slope_fit(x, np.where(groups == "a", 1.0, -2.0) + 0.75 * x, groups)
    assert fit["slope"] == pytest.approx(0.75, abs=1e-14) and fit["stderr"] < 1e-12
    assert fit["intercepts"] == pytest.approx({"a": 1.0, "b": -2.0}, abs=1e-13)
    # n = groups + 1: the line passes through every point, no degree of freedom is left for the standard error
    fit = common_slope_fit([1.0, 2.0, 1.0], [0.0, 1.0, 5.0], [0, 0, 1])
    assert fit["slope"] == pytest.approx(1.0) and math.isnan(fit["stderr"])


# ---------------------------------------------------------------- Clopper-Pearson


CASES = [(0, 1), (1, 1), (0, 20), (1, 20), (7, 20), (19, 20), (20, 20), (0, 100), (50, 100), (97, 100), (100, 100),
         (3, 7)]


def _beta_lower(k, n, alpha):
    return 0.0 if k == 0 else stats.beta.ppf(alpha, k, n - k + 1)


def _beta_upper(k, n, alpha):
    return 1.0 if k == n else stats.beta.ppf(1 - alpha, k + 1, n - k)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_clopper_pearson_equals_the_beta_quantiles(confidence):
    alpha = (1 - confidence) / 2
    for k, n in CASES:
        low, high = clopper_pearson(k, n, confidence)
        assert low == pytest.approx(_beta_lower(k, n, alpha), rel=1e-9, abs=1e-14), (k, n)
        assert high == pytest.approx(_beta_upper(k, n, alpha), rel=1e-9, abs=1e-14), (k, n)
    assert clopper_pearson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_one_sided_clopper_pearson_equals_the_beta_quantiles(confidence):
    alpha = 1 - confidence
    for k, n in CASES:
        assert one_sided_clopper_pearson(k, n, confidence, "lower") == pytest.approx(
            _beta_lower(k, n, alpha), rel=1e-9, abs=1e-14), (k, n)
        assert one_sided_clopper_pearson(k, n, confidence, "upper") == pytest.approx(
            _beta_upper(k, n, alpha), rel=1e-9, abs=1e-14), (k, n)


def test_one_sided_clopper_pearson_closed_forms_at_the_edges():
    # k = n: lower = alpha^(1/n) (P(X = n | p) = p^n = alpha), upper = 1; k = 0: lower = 0, upper = 1 - alpha^(1/n)
    assert one_sided_clopper_pearson(20, 20) == pytest.approx(0.05 ** (1 / 20), rel=1e-12)
    assert one_sided_clopper_pearson(20, 20, side="upper") == 1.0
    assert one_sided_clopper_pearson(0, 20) == 0.0
    assert one_sided_clopper_pearson(0, 20, side="upper") == pytest.approx(1 - 0.05 ** (1 / 20), rel=1e-12)
    assert one_sided_clopper_pearson(59, 59, 0.95) == pytest.approx(0.05 ** (1 / 59), rel=1e-12)
    assert one_sided_clopper_pearson(0, 0) == 0.0 and one_sided_clopper_pearson(0, 0, side="upper") == 1.0
    with pytest.raises(ValueError, match="side"):
        one_sided_clopper_pearson(1, 2, side="both")


def test_one_sided_bound_is_tighter_than_the_two_sided_one_at_the_same_level():
    for k, n in CASES:
        low2, high2 = clopper_pearson(k, n, 0.95)
        assert one_sided_clopper_pearson(k, n, 0.95) >= low2 - 1e-15
        assert one_sided_clopper_pearson(k, n, 0.95, "upper") <= high2 + 1e-15
        # the two-sided 90% interval is the pair of one-sided 95% bounds
        pair = (one_sided_clopper_pearson(k, n, 0.95), one_sided_clopper_pearson(k, n, 0.95, "upper"))
        assert clopper_pearson(k, n, 0.90) == pytest.approx(pair, rel=1e-9, abs=1e-14)


# ---------------------------------------------------------------- failure_free_runs_needed


def test_failure_free_runs_needed_known_values():
    # from none: the fewest k with 0.05^(1/k) >= target, i.e. k >= ln 0.05 / ln target
    assert failure_free_runs_needed(0, 0, 0.95) == 59
    assert failure_free_runs_needed(0, 0, 0.90) == 29
    assert failure_free_runs_needed(20, 20, 0.95) == 39  # 59 in all
    assert failure_free_runs_needed(59, 59, 0.95) == 0
    assert failure_free_runs_needed(0, 0, 0.99, confidence=0.99) == math.ceil(math.log(0.01) / math.log(0.99))
    assert failure_free_runs_needed(0, 0, 0.9999, limit=100) is None


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 0.975, 0.99])
def test_failure_free_runs_needed_from_none_has_the_closed_form(target):
    assert failure_free_runs_needed(0, 0, target) == math.ceil(math.log(0.05) / math.log(target))


@pytest.mark.parametrize("successes,trials", [(0, 0), (5, 5), (18, 20), (10, 20), (95, 100)])
def test_failure_free_runs_needed_is_the_first_k_that_reaches_the_target(successes, trials):
    k = failure_free_runs_needed(successes, trials, 0.9)
    assert stats.beta.ppf(0.05, successes + k, trials - successes + 1) >= 0.9
    if k > 0:
        previous = successes + k - 1
        assert previous == 0 or stats.beta.ppf(0.05, previous, trials - successes + 1) < 0.9


def test_failure_free_runs_needed_is_monotone():
    targets = [0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99]
    by_target = [failure_free_runs_needed(10, 10, t) for t in targets]
    assert by_target == sorted(by_target) and by_target[0] == 0 and by_target[-1] > by_target[-2]
    by_failures = [failure_free_runs_needed(20 - f, 20, 0.9) for f in range(6)]
    assert by_failures == sorted(by_failures) and by_failures[-1] > by_failures[0]


# ---------------------------------------------------------------- geometric_mean and mean_interval


def test_geometric_mean_equals_scipy_gmean():
    values = [1e-6, 3e-3, 2.0, 50.0, 1e4]
    assert geometric_mean(values) == pytest.approx(stats.gmean(values), rel=1e-12)
    assert geometric_mean([4.0, 9.0]) == pytest.approx(6.0, rel=1e-14)
    assert geometric_mean([2.5]) == pytest.approx(2.5, rel=1e-14)
    for bad in ([], [1.0, 0.0], [1.0, -2.0], [1.0, math.inf], [math.nan, 1.0]):
        assert math.isnan(geometric_mean(bad))


@pytest.mark.parametrize("n", [2, 3, 5, 20])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_mean_interval_equals_scipy_t_interval(n, confidence):
    values = np.random.default_rng(n).normal(1.5, 0.7, size=n)
    r = mean_interval(values, confidence)
    low, high = stats.t.interval(confidence, n - 1, loc=np.mean(values), scale=stats.sem(values))
    assert r["mean"] == pytest.approx(np.mean(values), rel=1e-14) and r["n"] == n
    assert (r["low"], r["high"]) == pytest.approx((low, high), rel=1e-12)
    assert r["half_width"] == pytest.approx((high - low) / 2, rel=1e-12)


def test_mean_interval_of_one_value_is_a_point_without_a_half_width():
    r = mean_interval([3.25])
    assert (r["mean"], r["low"], r["high"], r["n"]) == (3.25, 3.25, 3.25, 1) and math.isnan(r["half_width"])


# ---------------------------------------------------------------- coverage over repeated draws (last: the slowest)


def test_slope_interval_covers_the_true_slope_of_a_noisy_power_law():
    # log y = log 3 - 0.5 log x + N(0, 0.25^2): the least-squares slope's t-interval is exact at 95%
    rng = np.random.default_rng(2024)
    x = np.geomspace(64, 65536, 6)
    noise = 0.25 * rng.normal(size=(DRAWS, len(x)))
    covered = 0
    for row in noise:
        low, high = slope_interval(loglog_slope(x, 3.0 * x**-0.5 * np.exp(row)), confidence=0.95)
        covered += low <= -0.5 <= high
    assert abs(covered / DRAWS - 0.95) <= _coverage_slack(0.95), covered / DRAWS


def test_clopper_pearson_exact_coverage_is_at_least_the_confidence():
    # The coverage summed over every outcome k with its binomial probability: no randomness; for p on a grid that
    # includes values just inside and outside each bound's jumps.
    n = 40
    lower = np.array([one_sided_clopper_pearson(k, n, 0.95) for k in range(n + 1)])
    upper = np.array([one_sided_clopper_pearson(k, n, 0.95, "upper") for k in range(n + 1)])
    two = np.array([clopper_pearson(k, n, 0.95) for k in range(n + 1)])
    for p in [0.3, 0.8, 0.95, 0.99, *(lower[1:] - 1e-9), *(upper[:-1] + 1e-9)]:
        pmf = stats.binom.pmf(np.arange(n + 1), n, p)
        assert pmf @ (lower <= p) >= 0.95 and pmf @ (upper >= p) >= 0.95, p
        assert pmf @ ((two[:, 0] <= p) & (p <= two[:, 1])) >= 0.95, p


@pytest.mark.parametrize("p", [0.8, 0.97])
def test_clopper_pearson_bounds_cover_over_repeated_binomial_draws(p):
    rng = np.random.default_rng(int(p * 1000))
    n = 30
    draws = rng.binomial(n, p, size=DRAWS)
    lower = {k: one_sided_clopper_pearson(k, n, 0.95) for k in np.unique(draws)}
    upper = {k: one_sided_clopper_pearson(k, n, 0.95, "upper") for k in np.unique(draws)}
    two = {k: clopper_pearson(k, n, 0.95) for k in np.unique(draws)}
    slack = _coverage_slack(0.95)
    assert np.mean([lower[k] <= p for k in draws]) >= 0.95 - slack
    assert np.mean([upper[k] >= p for k in draws]) >= 0.95 - slack
    assert np.mean([two[k][0] <= p <= two[k][1] for k in draws]) >= 0.95 - slack


def test_mean_interval_covers_the_true_mean_over_repeated_draws():
    # five normal values per draw: the t-interval is exact at 95%
    samples = np.random.default_rng(7).normal(2.0, 0.5, size=(DRAWS, 5))
    covered = 0
    for row in samples:
        r = mean_interval(row, 0.95)
        covered += r["low"] <= 2.0 <= r["high"]
    assert abs(covered / DRAWS - 0.95) <= _coverage_slack(0.95), covered / DRAWS
