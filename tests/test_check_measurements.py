"""Each check's own measurement functions against a second, plain route on small instances (issue 15, item 8): a
fault in what a check measures must fail a test even where the prediction built on it already fails (thm3_2's
movement_within_R fails at every feasible m, so a wrong movement would change no verdict)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ntkprefix import model, sampling, training
from verify.checks import prop3_3, thm3_2


def _forward(W, X, a):
    """F(W, x_i)_l = m <a_l, softmax(W^T x_i)>, written out again (no library call)."""
    return W.shape[1] * jax.nn.softmax(X @ W, axis=-1) @ a.T


def test_recorded_movement_is_the_largest_movement_of_the_weights():
    # non-degenerate: n > d, d_out = 2, sigma = 1.3; the weights W(t) stepped by autodiff of a forward written out
    n, d, d_out, m, steps = 5, 3, 2, 24, 12
    kx, kw, ka = jax.random.split(jax.random.PRNGKey(7), 3)
    X, Y = sampling.section3_data(kx, n=n, d=d, d_out=d_out)
    W0 = model.init_prefix_weights(kw, d, m, 1.3)
    a = model.random_signs(ka, d_out, m)
    eta = 2e-3
    rec = training.gradient_descent(W0, X, Y, a, eta=eta, steps=steps, record_every=steps)
    grad = jax.grad(lambda W: 0.5 * jnp.sum((_forward(W, X, a) - Y) ** 2))
    W, largest = W0, [0.0]
    for _ in range(steps):
        W = W - eta * grad(W)
        largest.append(max(largest[-1], float(jnp.max(jnp.linalg.norm(W - W0, axis=0)))))
    assert np.allclose(np.asarray(rec.max_movement), largest, rtol=1e-10, atol=1e-15)
    assert largest[-1] > 0
    # a movement measured per coordinate (max |entry|) instead of per key would be smaller: the test tells them apart
    assert float(jnp.max(jnp.abs(W - W0))) < largest[-1] * (1 - 1e-3)


def test_m_where_a_power_law_reaches_R_is_found_by_hand():
    # movement = 2 m^-1/2 exactly: the fitted line reaches R = 0.01 at m = (2 / 0.01)^2 = 40000
    rows = [{"m": 2**k, "max_movement": 2 * (2**k) ** -0.5} for k in range(10, 17) for _ in range(3)]
    fit = thm3_2._fit(rows, "max_movement")
    assert fit["slope"] == pytest.approx(-0.5, abs=1e-12) and fit["points"] == len(rows)
    reach = thm3_2._m_reaching(fit, rows, "max_movement", 0.01)
    assert reach["m"] == pytest.approx(40000, rel=1e-9)
    assert reach["low"] <= reach["m"] <= reach["high"]
    # a movement that does not fall never reaches R
    flat = [{"m": r["m"], "max_movement": 0.4} for r in rows]
    assert thm3_2._m_reaching(thm3_2._fit(flat, "max_movement"), flat, "max_movement", 0.01)["m"] == math.inf


def test_the_trend_is_the_slope_of_the_geometric_means_over_seeds():
    # two seeds per m at 4 m^-0.25 times e^{+-0.3}: the geometric mean is 4 m^-0.25 exactly
    rows = [{"m": 2**k, "v": 4 * (2**k) ** -0.25 * math.exp(s)} for k in range(8, 15) for s in (-0.3, 0.3)]
    fit = thm3_2._trend(rows, "v")
    assert fit["slope"] == pytest.approx(-0.25, abs=1e-12) and fit["stderr"] < 1e-7  # rounding only (sqrt of a sum of squares near eps)


def test_linearised_gradient_descent_equals_the_matrix_power():
    rng = np.random.default_rng(0)
    n, d_out, m, steps, eta = 3, 2, 50, 7, 1e-3
    A = rng.normal(size=(n * d_out, n * d_out))
    H = A @ A.T / (n * d_out)
    F0, Y = rng.normal(size=(n, d_out)), rng.normal(size=(n, d_out))
    out = thm3_2._linearized(H, F0, Y, eta, m, steps)
    step = np.eye(n * d_out) - eta * m * H
    for t in (0, 1, steps):
        expected = Y.reshape(-1) + np.linalg.matrix_power(step, t) @ (F0 - Y).reshape(-1)
        assert np.allclose(out[t].reshape(-1), expected, rtol=1e-12, atol=1e-14)


def test_first_step_below_eps_counts_steps_from_the_offset_within_the_budget():
    squared = np.array([5.0, 3.0, 1e-7, 1e-8])
    assert thm3_2._first_step_below(squared, 1e-6, budget=100) == 2
    assert thm3_2._first_step_below(squared, 1e-6, budget=1) is None  # step 2 is past the budget
    assert thm3_2._first_step_below(squared, 1e-6, budget=100, offset=10) == 12
    assert thm3_2._first_step_below(squared, 1e-9, budget=100) is None


RISE = [-20.0, -19.88, -19.72, -19.29]  # a drop to -20 at once, then a rise with compute


def test_per_run_compute_slopes_by_hand():
    # run 0: log(L/L0) = -3e-3 C + a known wobble; run 1: a non-finite level (its loss did not fall); run 2: two
    # levels only; run 3: a drop at once, then a rise at every level (its slope from the start is negative: over the
    # levels alone is where it is caught)
    C = [100.0, 200.0, 400.0, 800.0]
    wobble = [0.01, -0.02, 0.015, -0.005]
    rows = ([{"m": 8, "seed": 0, "compute": c, "log_loss_ratio": -3e-3 * c + w} for c, w in zip(C, wobble)]
            + [{"m": 16, "seed": 0, "compute": c, "log_loss_ratio": v} for c, v in zip(C, [-0.1, -0.2, math.nan, -0.5])]
            + [{"m": 32, "seed": 0, "compute": c, "log_loss_ratio": -c} for c in C[:2]]
            + [{"m": 64, "seed": 0, "compute": c, "log_loss_ratio": v} for c, v in zip(C, RISE)])
    run_id = np.array([0] * 4 + [1] * 4 + [2] * 2 + [3] * 4)
    slopes = prop3_3._compute_slopes(rows, run_id)

    def by_hand(x, y):
        # least squares, the textbook standard error, t with len(x) - 2 degrees of freedom
        x, y = np.asarray(x, float), np.asarray(y, float)
        (slope, intercept), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], axis=1), y, rcond=None)
        residuals = y - slope * x - intercept
        half = stats.t.ppf(0.975, len(x) - 2) * math.sqrt(residuals @ residuals / (len(x) - 2) / np.sum((x - x.mean()) ** 2))
        return slope, [slope - half, slope + half]

    for run, values in ((0, [-3e-3 * c + w for c, w in zip(C, wobble)]), (3, RISE)):
        over = by_hand(C, values)
        start = by_hand([0.0] + C, [0.0] + values)
        assert slopes[run]["slope"] == pytest.approx(max(over[0], start[0]), rel=1e-9) and slopes[run]["levels"] == 4
        assert slopes[run]["ci95"] == pytest.approx([max(over[1][0], start[1][0]), max(over[1][1], start[1][1])],
                                                    rel=1e-9)
    assert slopes[0]["ci95"][1] < 0  # the wobble does not hide the fall
    assert slopes[3]["fits"]["from_start"]["slope"] < 0 < slopes[3]["fits"]["over_levels"]["ci95"][0] == slopes[3]["ci95"][0]
    assert slopes[1]["slope"] == math.inf
    assert "slope" not in slopes[2]  # two levels: no t-interval can be formed
    # an exactly constant run (its loss never moves) has no t-interval: nan, and a nan survives the maximum over runs
    # wherever it comes (Python's max drops a nan that does not come first)
    flat = prop3_3._compute_slopes([{"m": 8, "seed": 1, "compute": c, "log_loss_ratio": 0.0} for c in C], np.zeros(4, int))
    assert math.isnan(flat[0]["ci95"][0]) and math.isnan(flat[0]["ci95"][1])
    for order in ([slopes[0]["ci95"][1], flat[0]["ci95"][1]], [flat[0]["ci95"][1], slopes[0]["ci95"][1]]):
        assert math.isnan(prop3_3._max_keeping_nan(order))
    assert prop3_3._max_keeping_nan([-2.0, 1.0, -0.5]) == 1.0
