"""The calibrations written inside the checks bite (issue 19), as those of verify/instruments.py do
(tests/test_calibrations_bite.py): each is planted at 1.1 x its tolerance (rejected) and 0.9 x (accepted), its
tolerance unchanged by the planting, and each test says where the tolerance comes from. depth's and lem3_1's run on
the checks' quick settings (sigma, d_out, n, d as the checks use them; the shapes probe of Section 3 is in the other
file); fig3's on a synthetic timing and a planted float32 output."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkprefix as nk
from ntkprefix import depth, perturbation, sampling
from verify import instruments
from verify.checks import depth as depth_check
from verify.checks import fig3 as fig3_check
from verify.checks import lem3_1 as lem3_1_check

FACTORS = [(0.9, True), (1.1, False)]


def by_name(calibrations) -> dict:
    return {c.name: c for c in calibrations}


# --- depth -------------------------------------------------------------------------------------------------------------

DEPTH_KEY = jax.random.fold_in(jax.random.PRNGKey(0), 999)  # the check's calibration key at seed 0


def depth_calibrations():
    return by_name(depth_check._calibrate(depth_check.settings(True), DEPTH_KEY))


def test_the_deep_stack_calibration_bites(monkeypatch):
    # tolerance: each layer's rounding in both routes carried through the later layers, sum_l e_l prod (1 + Lambda_l'),
    # over max|Y_D| (depth_check._stack_rounding); pinned here by its two ends: it is at least the composition of the
    # softmax parts alone (instruments.softmax_rounding per layer, written again) and at most 10x it
    s = depth_check.settings(True)
    c0 = depth_calibrations()["deep_stack_equals_dense_composition"]
    inst = depth_check._host(sampling.deep_prefix_instance(DEPTH_KEY, d=s.d, L=s.L, m=s.calibration_m, depth=s.depth,
                                                           weight_norm=s.schedule_weight_norm,
                                                           entry_bound=s.entry_bound))
    layers = depth_check._layers(inst, s.calibration_m, 1.0)
    stack = [np.asarray(inst.X)]  # the reference route's composition, from which the tolerance is computed
    for lay in layers:
        Y = stack[-1]
        stack.append(Y + np.asarray(instruments.dense_prefix_attention(Y @ lay.W_Q, Y @ lay.W_K, Y @ lay.W_V, lay.K_P,
                                                                       lay.V_P)))
    parts, lams = [], []
    for l, lay in enumerate(layers):
        Y = np.abs(stack[l])
        W_Q, W_K, W_V, K_P, V_P = (np.asarray(x) for x in lay)
        out = stack[l + 1] - stack[l]
        S = float(np.max((Y @ np.abs(W_Q)) @ np.vstack([np.abs(K_P), Y @ np.abs(W_K)]).T)) / math.sqrt(s.d)
        V_all = max(np.max(np.abs(V_P)), np.max(Y @ np.abs(W_V)))
        parts.append((4 * instruments.gamma(s.calibration_m + s.L + 1) + 4 * instruments.gamma(s.d + 2) * S) * V_all)
        lams.append(depth.attention_lipschitz_bound(lay, stack[l], stack[l]))
    floor = depth.composed_error_bound(parts, lams) / np.max(np.abs(stack[-1]))
    assert floor <= c0.tolerance <= 10 * floor, (floor, c0.tolerance)
    assert c0.met and c0.discrepancy < 0.05 * c0.tolerance
    original = depth.deep_prefix_attention
    for factor, met in FACTORS:
        def planted(X, layers, *args, factor=factor, **kwargs):
            # the last layer's output with its largest entry moved outward by factor x tolerance of its max
            stack = [jnp.asarray(x) for x in original(X, layers, *args, **kwargs)]
            last = stack[-1].reshape(-1)
            i = jnp.argmax(jnp.abs(last))
            shift = factor * c0.tolerance * jnp.max(jnp.abs(last)) * jnp.sign(last[i])
            return [*stack[:-1], last.at[i].add(shift).reshape(stack[-1].shape)]
        with monkeypatch.context() as mp:
            mp.setattr(depth, "deep_prefix_attention", planted)
            c = depth_calibrations()["deep_stack_equals_dense_composition"]
        # the dense route also moves by its own rounding: the planted discrepancy is factor x tolerance up to that
        assert c.met is met and c.tolerance == c0.tolerance, (factor, c.discrepancy, c.tolerance)


def test_the_lipschitz_calibration_bites(monkeypatch):
    # tolerance: the difference quotients' relative rounding, largest over the probes (4 gamma_N of each attention's
    # max over delta q, the perturbed point's rounding u max|X| / delta, Lambda's 8 gamma_N); derived from the probes,
    # so a Lambda scaled by c leaves it unchanged while the discrepancy becomes max(0, worst / c - 1)
    original = depth.attention_lipschitz_bound

    def run(c):
        with monkeypatch.context() as mp:
            mp.setattr(depth, "attention_lipschitz_bound", lambda *args, **kwargs: c * original(*args, **kwargs))
            return depth_calibrations()["lipschitz_bound_dominates_difference_quotients"]

    c0 = run(1.0)
    assert c0.met and c0.discrepancy == 0.0 and 0 < c0.tolerance < 1e-6
    probe = run(1e-6)  # every quotient far above the scaled bound: the discrepancy reveals the worst ratio
    worst = (probe.discrepancy + 1) * 1e-6
    assert 0 < worst <= 1
    for factor, met in FACTORS:
        c = run(worst / (1 + factor * c0.tolerance))
        assert c.met is met and c.tolerance == c0.tolerance, (factor, c.discrepancy, c.tolerance)
        assert c.discrepancy == pytest.approx(factor * c0.tolerance, rel=1e-3, abs=0)


# --- lem3_1 ------------------------------------------------------------------------------------------------------------

def lem3_1_instance():
    s = lem3_1_check.settings(True)
    key = jax.random.PRNGKey(0)
    X, _ = sampling.section3_data(jax.random.fold_in(key, 10**6), n=s.n, d=s.d, d_out=s.d_out,
                                  data_radius=s.data_radius)
    W, a, _ = lem3_1_check._draws(jax.random.fold_in(key, 1), 0, s, s.sup_ms)[s.sup_ms[0]]
    return s, X, W, a


def shifted(fn, factor_times_tolerance: float):
    """fn with its output's largest entry moved outward by factor_times_tolerance of the output's Frobenius norm: a
    relative Frobenius discrepancy of that size against any route that agreed with fn."""
    def wrapped(*args, **kwargs):
        out = jnp.asarray(fn(*args, **kwargs))
        flat = out.reshape(-1)
        i = jnp.argmax(jnp.abs(flat))
        return flat.at[i].add(factor_times_tolerance * jnp.linalg.norm(flat) * jnp.sign(flat[i])).reshape(out.shape)
    return wrapped


def test_the_lem3_1_closed_form_calibrations_bite(monkeypatch):
    # tolerance 1e3 gamma_N, N = n d_out m + d: the first-order rounding of sums over the m neurons and the centring,
    # times a condition allowance of 1e3 (the check's stated allowance, the same as the Section 3 model's)
    s, X, W, a = lem3_1_instance()
    run = lambda: by_name(lem3_1_check._calibrate(s, X, W, a))  # noqa: E731
    base = run()
    tolerance = 1e3 * instruments.gamma(s.n * s.d_out * W.shape[1] + s.d)
    for name, attribute in (("first_order_change_equals_jvp", "first_order_change"),
                            ("first_order_gradient_equals_grad", "first_order_gradient")):
        c0 = base[name]
        assert c0.tolerance == pytest.approx(tolerance, rel=1e-12, abs=0)
        assert c0.met and c0.discrepancy < 0.05 * c0.tolerance, (name, c0.discrepancy)
        for factor, met in FACTORS:
            with monkeypatch.context() as mp:
                mp.setattr(perturbation, attribute, shifted(getattr(perturbation, attribute), factor * tolerance))
                c = run()[name]
            assert c.met is met and c.tolerance == c0.tolerance, (name, factor, c.discrepancy, c.tolerance)


def test_the_lem3_1_finite_change_calibration_bites(monkeypatch):
    # tolerance: the derived second-order remainder 53 R^2 e^(4R) A(W0) plus the rounding 1e3 gamma_N R A; the finite
    # change is moved so that |finite - first order| is exactly factor x tolerance
    s, X, W, a = lem3_1_instance()
    name = "first_order_change_equals_finite_change"
    run = lambda: by_name(lem3_1_check._calibrate(s, X, W, a))[name]  # noqa: E731
    c0 = run()
    R, N, m = min(s.radii), s.n * s.d_out, W.shape[1]
    A = float(perturbation.majorant(W, X, s.d_out))
    assert c0.tolerance == pytest.approx(perturbation.second_order_remainder(R, A)
                                         + 1e3 * instruments.gamma(N * m) * R * A, rel=1e-12, abs=0)
    assert c0.met and c0.discrepancy < 0.05 * c0.tolerance
    U = perturbation.data_aligned_direction(W, X[0])
    first = R * float(jnp.linalg.norm(perturbation.first_order_change(W, X, a, U)))
    original = perturbation.kernel_change_norm
    for factor, met in FACTORS:
        with monkeypatch.context() as mp:
            mp.setattr(perturbation, "kernel_change_norm",
                       lambda *args, factor=factor: first + factor * c0.tolerance)
            c = run()
        assert c.met is met and c.tolerance == c0.tolerance, (factor, c.discrepancy, c.tolerance)
    assert original is perturbation.kernel_change_norm


# --- fig3 --------------------------------------------------------------------------------------------------------------

def test_the_timer_calibration_bites(monkeypatch):
    # tolerance: the knob timer_tolerance, the same as the slopes the timer vouches for (a stated choice, not a
    # derivation); the planted times grow exactly as n^(1 +- factor x tolerance), so the Theil-Sen slope is exact
    s = fig3_check.settings(True)
    s = dataclasses.replace(s, warmup=0, repeats=3)
    for sign in (1, -1):
        for factor, met in FACTORS:
            exponent = 1 + sign * factor * s.timer_tolerance
            monkeypatch.setattr(fig3_check, "seconds_per_call",
                                lambda fn, args, n, e=exponent: 1e-3 * (args[1] / 16) ** e)
            c = fig3_check._timer_calibration(s, 0)
            assert c.tolerance == s.timer_tolerance
            assert c.discrepancy == pytest.approx(factor * s.timer_tolerance, rel=1e-9)
            assert c.met is met, (sign, factor, c.discrepancy)


def test_the_float32_calibration_bites():
    # tolerance: instruments.softmax_rounding in float32, (4 gamma_{N+1} + 4 gamma_{d+2} S_abs) max|V| / max|out|
    # (written again here); the timed output is planted at factor x tolerance of the float64 reference's max
    inst = nk.project(*[jax.random.normal(jax.random.PRNGKey(i), shape, jnp.float32) for i, shape in
                        enumerate([(9, 6), (37, 6), (6, 6), (6, 6), (6, 6)])])
    wide = [np.asarray(x, np.float64) for x in inst]
    reference = np.asarray(nk.prefix_attention(*[jnp.asarray(x) for x in wide]))
    c0 = fig3_check._float32_against_float64(inst, nk.prefix_attention(*inst))
    m, L, d = 37, 9, 6
    keys, values = np.vstack([wide[3], wide[1]]), np.vstack([wide[4], wide[2]])
    scores = float(np.max(np.abs(wide[0]) @ np.abs(keys).T)) / math.sqrt(d)
    u = 2.0**-24
    g = lambda n: n * u / (1 - n * u)  # noqa: E731
    assert c0.tolerance == pytest.approx((4 * g(m + L + 1) + 4 * g(d + 2) * scores) * np.max(np.abs(values))
                                         / np.max(np.abs(reference)), rel=1e-12, abs=0)
    assert c0.met
    i = np.unravel_index(np.argmax(np.abs(reference)), reference.shape)
    for factor, met in FACTORS:
        planted = reference.copy()
        planted[i] += factor * c0.tolerance * np.max(np.abs(reference)) * np.sign(reference[i])
        c = fig3_check._float32_against_float64(inst, jnp.asarray(planted))  # float64 kept: the plant is exact
        assert c.met is met and c.tolerance == c0.tolerance, (factor, c.discrepancy, c.tolerance)
