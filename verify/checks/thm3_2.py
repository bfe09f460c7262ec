"""Theorem 3.2: gradient descent on an ultra-long prefix converges, and stays in the lazy regime its proof uses.

Statement as used [paper]: with lambda = lambda_min(H*) > 0, m large enough and a suitable eta, with probability
1 - delta over W(0) the training loss reaches any eps > 0 by a finite T. Its proof keeps the weights within the
radius R in (0, 0.01) of their initialisation [paper] and lambda_min(H(W(t))) >= lambda/2. [template, constants
unconfirmed]: m = Omega(lambda^-2 n^2 d^2 exp(18B) log^2(nd/delta)), eta = 0.1 lambda / (m n^2 d^2 exp(16B)),
T = Omega((m eta lambda)^-1 log(nd/eps)), conclusion ||F(T) - Y||_F^2 <= eps.

Two columns (verify.verdict): the paper's statement is judged from its conclusion only (conclusion_probability);
the proof steps, the template's T and the project's m0 rule are the project's readings.

conditions   lambda_positive [paper hypothesis]: lambda > 0 in every run;
             data_norm_at_most_1 [template hypothesis]: ||x_i|| <= 1 (attained);
             stable_step [derived hypothesis]: "a suitable eta" read as eta = eta_c / (m lambda_max(H*)) with
               eta m lambda_max(H*) <= 1 (the template's 1/m shape; its constant 0.1 lambda / (n^2 d^2 e^{16B})
               would need ~1e20 steps);
             kernel_concentrated_from_m0 [derived reading]: the project's m0 rule for "m large enough": m >= m0 = 2^10,
               the smallest power of two from which lambda_min(H(W(0))) >= lambda_min(H_inf) / 2 in every run.
asymptotic   m_large_enough: "m large enough" is never met or failed at a finite m: the tested range m = 2^8 .. 2^16
             (quick: 2^13), the template's m (~1e22 here, out of reach) and the m at which the fitted movement
             reaches R (extrapolated, with the interval from the slope's) are recorded.
predictions  conclusion_probability [paper conclusion]: at the largest m, over 59 (quick: 8) independent W(0),
               P(||F(t) - Y||_F^2 <= eps at some step t <= max_steps, the run's step budget standing for "a finite
               T") >= 1 - delta, by the one-sided 95% Clopper-Pearson bounds: met only when the LOWER bound reaches
               1 - delta (59 failure-free runs from none; with fewer runs it is inconclusive and says how many more
               failure-free runs would confirm it), failed when the upper bound is below it. A run is a success when
               ANY step within the budget reaches eps (the loss is recorded at every step; a run that has not
               reached eps by the batch's common length is trained on to max_steps), not only at the template's T;
             loss_reaches_eps [template conclusion]: ||F(T) - Y||_F^2 <= eps at T = ceil(C log(n d / eps) /
               (m eta lambda)) exactly as the template states it, C = 1 its Omega constant (the ceiling only makes T
               an integer), every run with m >= m0;
             movement_within_R [template proof step; R = 0.01 the paper's]: max_{t <= T, r} ||w_r(t) - w_r(0)||_2 <= R = 0.01, every run
               with m >= m0;
             lazy_regime_throughout [template proof step]: lambda_min(H(W(t))) >= lambda/2 at every recorded
               t <= T, every run with m >= m0;
             movement_falls_with_m and linearization_improves_with_m [template proof step, trends]: the fitted log-log
               slopes in m of the geometric means over seeds (one point per m, over the whole sweep) < 0, decided
               from the 95% t-interval of the slope (the distance to linearised GD, Y + (I - eta m H*)^t (F(0) - Y),
               computed by its definition step by step: no closed form to calibrate, no neural-tangents import).
reported     the movement exponent for m >= m0 with its 95% interval and the m at which that fit reaches R (with the
             interval from the slope's): a finding about the proof step at feasible m, which an asymptotic
             statement leaves open; the Omega constant each run needed (slack); the template's m, eta, T; and,
             beside the claim, the antithetic initialisation (w_{r+m/2}(0) = w_r(0), a_{r+m/2} = -a_r, so
             F(0) = 0): the same marginals as the template's, not its independence (not covered by the theorem).
calibrated   the closed-form gradient and NTK against autodiff of a forward pass written out again, and
             model.init_prefix_weights against its law N(0, sigma^2 I) at sigma = 0.5 and 1.5 (a wrong power of
             sigma is an instrument error, whatever the check's own sigma).

Why the weights move: with c_m = m, F(0) = sum_r a_r (m S_r) is a sum of m random-sign O(1) terms, so
||F(0) - Y||^2 ~ m, and each key moves by ~ ||F(0) - Y|| m S_r / (m lambda) ~ m^-1/2 max_r e^{<w_r, x>} [derived]: the
maximum over m log-normal neurons slows the decay to ~ m^-0.3 at feasible m. With F(0) = 0 the m^-1/2 disappears.

Witness (issue 17): thm3_2.witness.npz, the run at the largest m that reached eps last (a failing run if one did not
reach it within the budget), with W(0), a and the data; ``python -m verify replay`` trains it again in extended
precision (verify.witness). Quick, seed 0: seed 3 of 8 at m = 8192, step 102 of 2000, movement 0.218.

Negative controls: ``eta_too_large`` (eta m lambda_max = 10: loss_reaches_eps and conclusion_probability fail: no
run reaches eps within the budget; the paper column says "hypotheses not met", stable_step) and ``small_m`` (m = 2^2 ..
2^6 declared large enough, m0 = 2^2: the measured rule for m0 fails, kernel_concentrated_from_m0; the paper column
says "hypotheses not met": lambda = 0 in a run at m = 4). Measured on the way:
at these m, lambda_min(H(W(t))) / lambda stays >= 1/2 (lambda itself is tiny or 0); only m = 2 loses it.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from ntkprefix import batched, bounds, kernels, model, sampling
from verify import instruments, plotting
from verify.fitting import clopper_pearson, failure_free_runs_needed, geometric_mean, loglog_slope, slope_interval
from verify.registry import Claim, Control, RunOptions, witness_cross_check
from verify.result import Result
from verify.settings import knob
from verify.verdict import (NOT_COVERED, Evaluation, asymptotic, at_most, calibration, condition, no_failures,
                            probability_at_least)
from verify.witness import Witness

STATEMENT = (
    "With lambda = lambda_min(H*) > 0, m large enough and a suitable eta, with probability 1 - delta gradient descent "
    "on the prefix reaches ||F(T) - Y||_F^2 <= eps by a finite T [paper]; its proof keeps the weights within R < 0.01 "
    "of W(0) [paper] and lambda_min(H(W(t))) >= lambda/2; T = Omega((m eta lambda)^-1 log(nd/eps)) [template]."
)
CONTROLS = {
    "eta_too_large": Control(
        "step size with eta m lambda_max(H*) = 10, far above the stable range (<= 1 here, < 2 linear)",
        {"eta_constant": 10.0}, breaks=("loss_reaches_eps", "conclusion_probability"),
    ),
    "small_m": Control("prefix lengths m = 2^2 .. 2^6 declared large enough (m0 = 2^2): the kernel at initialisation "
                       "has not concentrated (lambda_min(H*) far below lambda_min(H_inf), often 0)",
                       {"min_log2_m": 2, "max_log2_m": 6, "log2_m_step": 1, "m0_log2": 2},
                       breaks=("kernel_concentrated_from_m0",)),
}
FAMILIES = ("iid", "antithetic")


@dataclasses.dataclass(frozen=True)
class Settings:
    n: int = knob(4, "training points")
    d: int = knob(4, "input dimension (d >= n: lambda_min(H*) > 0); the paper's d in log(nd/eps) and log(nd/delta)")
    d_out: int = knob(1, "output dimension; the kernel is (.) kron I in the limit, d_out only replicates it")
    sigma: float = knob(1.0, "w_r(0) ~ N(0, sigma^2 I) [template] (the initialisation is calibrated at sigma = 0.5 "
                        "and 1.5 whatever this value)")
    delta: float = knob(0.05, "[paper] delta in (0, 0.1): the failure probability of conclusion_probability and of B")
    eta_constant: float = knob(0.5, "eta = this / (m lambda_max(H*)): the template's 1/m shape, half the stable limit "
                               "eta m lambda_max <= 1 (linearised GD contracts every mode monotonically)")
    eps: float = knob(1e-6, "[paper] any eps > 0: ||F(T) - Y||_F^2 <= eps, summed over the n d_out outputs (targets N(0,1))")
    T_constant: float = knob(1.0, "[template] the Omega constant C of T = C log(nd/eps) / (m eta lambda)")
    R: float = knob(0.01, "[paper] R in (0, 0.01): the radius within which the weights must stay")
    m0_log2: int = knob(10, "m0 = 2^this: the smallest power of two from which lambda_min(H(W(0))) >= lambda_min(H_inf)/2 "
                        "in every run (kernel concentrated; PAPER.md: relative error 0.31 at 2^10)")
    min_log2_m: int = knob(8, "smallest prefix length 2^8 (below m0: measured and shown, not predicted)")
    max_log2_m: int = knob(16, "largest prefix length 2^16 (quick mode: 2^13)")
    log2_m_step: int = knob(2, "every second doubling (each m compiles; 2^16 with 20 runs dominates; quick mode: every doubling)")
    sweep_seeds: int = knob(5, "independent (W(0), a) per m")
    probability_seeds: int = knob(59, "independent (W(0), a) at the largest m for conclusion_probability: 59 failure-free runs are the fewest whose one-sided 95% Clopper-Pearson lower bound reaches 1 - delta = 0.95 (quick mode: 8, which can only be inconclusive)")
    antithetic_seeds: int = knob(3, "antithetic initialisations per m >= m0, reported beside the claim")
    n_records: int = knob(20, "lambda_min(H(W(t))) and F(W(t)) recorded at about 20 evenly spaced steps")
    max_steps: int = knob(2000, "the step budget: 'a finite T' of conclusion_probability is a step <= this (more than 10 "
                          "times the longest template T measured, 187; a run that has not reached eps by the batch's "
                          "common length is trained on to it, which costs ~m max_steps per run: 20000 made the quick "
                          "eta_too_large control take minutes); runs whose template T exceeds it are not read at T "
                          "(reported as not checked)")

    def __post_init__(self):
        if self.min_log2_m > self.max_log2_m or self.log2_m_step < 1 or self.sweep_seeds < 2 or (
                self.probability_seeds < self.sweep_seeds) or self.max_steps < 1:
            raise ValueError("need min_log2_m <= max_log2_m, log2_m_step >= 1, sweep_seeds >= 2, "
                             "probability_seeds >= sweep_seeds and max_steps >= 1")

    @property
    def ms(self) -> list[int]:
        return [2**i for i in range(self.max_log2_m, self.min_log2_m - 1, -self.log2_m_step)][::-1]

    @property
    def m0(self) -> int:
        return 2**self.m0_log2

    def seeds_at(self, m: int) -> int:
        return self.probability_seeds if m == self.ms[-1] else self.sweep_seeds


def settings(quick: bool) -> Settings:
    if quick:
        return Settings(max_log2_m=13, log2_m_step=1, probability_seeds=8, antithetic_seeds=2)
    return Settings()


def _draws(key, seed: int, s: Settings) -> dict:
    """Independent (W(0), a) with m = each prefix length of the sweep, from ONE draw per seed (one compilation)."""
    total = sum(s.ms)
    k_w, k_a = jax.random.split(jax.random.fold_in(key, seed))
    W = np.asarray(model.init_prefix_weights(k_w, s.d, total, s.sigma))
    a = np.asarray(model.random_signs(k_a, s.d_out, total))
    starts = np.cumsum([0, *s.ms])
    return {m: (W[:, lo:lo + m], a[:, lo:lo + m]) for m, lo in zip(s.ms, starts)}


def _antithetic(W: np.ndarray, a: np.ndarray):
    """w_{r+m/2}(0) = w_r(0), a_{r+m/2} = -a_r from the first m/2 columns: F(0) = 0 exactly."""
    h = W.shape[1] // 2
    return np.concatenate([W[:, :h], W[:, :h]], axis=1), np.concatenate([a[:, :h], -a[:, :h]], axis=1)


def _linearized(H: np.ndarray, F0: np.ndarray, Y: np.ndarray, eta: float, m: int, steps: int) -> np.ndarray:
    """F_lin(t) = Y + (I - eta m H*)^t (F(0) - Y) for t = 0 .. steps, by direct iteration: (steps + 1, n, d_out)."""
    step = np.eye(len(H)) - eta * m * H
    residual = (F0 - Y).reshape(-1)
    out = [residual]
    for _ in range(steps):
        residual = step @ residual
        out.append(residual)
    return Y[None] + np.array(out).reshape(steps + 1, *F0.shape)


def _first_step_below(squared: np.ndarray, eps: float, budget: int, offset: int = 0) -> int | None:
    """The first step t <= budget with ||F(t) - Y||^2 <= eps (squared[j] is step offset + j), None if none."""
    hit = np.flatnonzero(squared[: max(0, budget - offset + 1)] <= eps)
    return int(offset + hit[0]) if hit.size else None


def _cross_checks(X, Y, W0, a, rec, H, eta: float, m: int) -> list:
    """Second routes for two of the run's measurements, on the batch's first instance (issue 19): the largest movement
    at the last step, from the weights the run returns (max_r ||w_r(T) - w_r(0)||, here in numpy) against the one the
    training loop recorded (tolerance 4 gamma_{d+2} of it: a difference, d squares summed, a root); and linearised GD
    stepped directly (_linearized) against its closed form Y + V diag((1 - eta m lambda)^t) V^T (F(0) - Y) at every
    recorded step, in units of ||F(0) - Y|| (tolerance 8 T gamma_{n d_out} || |S| ||, S = I - eta m H*: the direct
    iteration's first-order rounding is at most T gamma_k || |S| || ||r(0)|| (each product's error at most
    gamma_k |S| |r| entrywise, k = n d_out, and no step amplifying an earlier one since eta m lambda_max(H*) <= 1: the
    caller runs this only then); the closed form's, with eigh's backward error taken as gamma_k ||H|| (LAPACK's is
    p(k) u for a modest p: an assumption, stated), moved through f(lambda) = (1 - eta m lambda)^t whose derivative is
    at most t eta m there, is at most t gamma_k ||r(0)|| plus the reconstruction's few gamma_k; the sum is within
    half the tolerance).

    What the movement cross-check covers: the training loop's movement function at the last step (recorded against
    numpy's from the returned weights), not the row's reading of its maximum over t <= T, which _first_run_replay
    (the first run) and the witness replay (the deciding run) re-measure."""
    d, k = W0.shape[0], H.shape[0]
    gamma = lambda n: n * 2.0**-53 / (1 - n * 2.0**-53)  # noqa: E731
    recorded = float(np.asarray(rec.max_movement)[0, -1])
    moved = float(np.sqrt(((np.asarray(rec.W)[0] - W0) ** 2).sum(axis=0)).max())
    recorded_steps = np.asarray(rec.kernel_steps)[0]
    T = int(recorded_steps[-1])
    F0, Y = np.asarray(rec.outputs)[0, 0], np.asarray(Y)
    direct = _linearized(H, F0, Y, eta, m, T)[recorded_steps].reshape(len(recorded_steps), -1)
    lam, V = np.linalg.eigh(H)
    closed = Y.reshape(-1) + ((1 - eta * m * lam)[None, :] ** recorded_steps[:, None]
                              * (V.T @ (F0 - Y).reshape(-1))[None, :]) @ V.T
    scale = float(np.linalg.norm(F0 - Y))
    amplify = max(1.0, float(np.linalg.norm(np.abs(np.eye(k) - eta * m * H), 2)))
    return [
        calibration("cross_check_movement_from_weights",
                    f"the largest movement at the last step (T = {T}), max_r ||w_r(T) - w_r(0)|| from the returned "
                    f"weights = the one the training loop recorded ({recorded:.6g}), first instance at m = {m}",
                    abs(moved - recorded), 4 * gamma(d + 2) * max(recorded, moved),
                    "4 gamma_{d+2} of the movement: a difference, d squares summed and a root, in either route"),
        calibration("cross_check_linearised_closed_form",
                    f"linearised GD stepped directly (verify/checks/thm3_2.py::_linearized) = its closed form "
                    f"through the eigenvectors of H*, at the {len(recorded_steps)} recorded steps up to t = {T}, "
                    f"relative to ||F(0) - Y||, first instance at m = {m}",
                    float(np.linalg.norm(direct - closed, axis=1).max()) / scale, 8 * T * gamma(k) * amplify,
                    "8 T gamma_{n d_out} || |S| ||: the iteration's first-order rounding (no step amplifies: "
                    "eta m lambda_max <= 1)"),
    ]


def _runs(s: Settings, X, Y, m: int, instances: list[tuple], families: list[str], B: float, *,
          to_budget: bool = False, cross: list | None = None) -> list[dict]:
    """Every instance of one prefix length trained at once (ntkprefix.batched), each read at its own T.

    The loss is recorded at every step up to the batch's common length; with ``to_budget``, the runs that have not
    reached eps by then (and whose loss is finite) are trained on to the step budget max_steps, so that
    conclusion_probability sees every step within the budget."""
    W0 = jnp.asarray(np.stack([W for W, _ in instances]))
    a = jnp.asarray(np.stack([x for _, x in instances]))
    H = np.asarray(batched.ntk_matrix_batch(W0, X, a))
    evals = np.linalg.eigvalsh(H)
    lam, lam_max = evals[:, 0], evals[:, -1]
    trained = (lam > 0) & (lam_max > 0)
    eta = np.where(lam_max > 0, s.eta_constant / (m * np.where(lam_max > 0, lam_max, 1.0)), 1.0)
    rate = eta * m * lam
    log_term = math.log(s.n * s.d / s.eps)
    T = np.where(trained, np.ceil(s.T_constant * log_term / np.where(trained, rate, 1.0)), 0).astype(np.int64)
    runnable = trained & (T <= s.max_steps)
    T_max = int(max(T[runnable].max(initial=1), 1))
    every = math.ceil(T_max / s.n_records)
    T_run = every * math.ceil(T_max / every)
    rec = batched.gradient_descent_batch(W0, X, Y, a, jnp.asarray(eta), steps=T_run, record_every=every)
    losses, moves = np.asarray(rec.loss), np.asarray(rec.max_movement)
    lambdas, outputs, steps = np.asarray(rec.lambda_min), np.asarray(rec.outputs), np.asarray(rec.kernel_steps)[0]
    if cross is not None and trained[0] and eta[0] * m * lam_max[0] <= 1 + 1e-12:  # tolerances presume stable_step
        cross += _cross_checks(X, Y, np.asarray(instances[0][0]), instances[0][1], rec, H[0], float(eta[0]), m)
    curves = [2 * losses[i] for i in range(len(families))]  # ||F(t) - Y||_F^2, t = 0 .. the steps run
    first = [_first_step_below(curves[i], s.eps, s.max_steps) for i in range(len(families))]
    steps_run = [min(T_run, s.max_steps)] * len(families)
    if to_budget and T_run < s.max_steps:
        more = [i for i in range(len(families)) if first[i] is None and np.all(np.isfinite(losses[i]))]
        if more:  # trained on from W(T_run) to the budget: only the loss is read (the movement restarts from W(T_run))
            on = batched.gradient_descent_batch(rec.W[np.asarray(more)], X, Y, a[np.asarray(more)],
                                                jnp.asarray(eta[more]), steps=s.max_steps - T_run)
            for j, i in enumerate(more):
                first[i] = _first_step_below(2 * np.asarray(on.loss[j]), s.eps, s.max_steps, offset=T_run)
                steps_run[i] = s.max_steps
                curves[i] = np.concatenate([curves[i][: T_run + 1], 2 * np.asarray(on.loss[j])[1:]])
    Y_np = np.asarray(Y)
    rows = []
    for i, family in enumerate(families):
        row = {"family": family, "m": m, "lambda": float(lam[i]), "lambda_max": float(lam_max[i]),
               "trained": bool(trained[i]), "run": bool(runnable[i]), "eta": float(eta[i]),
               "eta_m_lambda_max": float(eta[i] * m * lam_max[i]), "eta_m_lambda": float(rate[i]), "T": int(T[i]),
               "T_run": T_run, "steps_run": steps_run[i], "first_step_below_eps": first[i],
               "reached_eps_by_budget": first[i] is not None,
               # the squared errors that decide the run's outcome (its witness compares them): at the first step
               # below eps and the one before, or at the last step run when none is
               "squared_error_at_first_step": None if first[i] is None else float(curves[i][first[i]]),
               "squared_error_before_first_step": None if not first[i] else float(curves[i][first[i] - 1]),
               "squared_error_last_step": float(curves[i][steps_run[i]])}
        if runnable[i]:
            Ti = int(T[i])
            squared = 2 * losses[i]  # ||F(t) - Y||_F^2 = 2 Loss(t)
            within = steps <= Ti
            hit = np.flatnonzero(squared <= s.eps)
            lin = _linearized(H[i], outputs[i, 0], Y_np, float(eta[i]), m, Ti)[steps[within]]
            scale = float(np.linalg.norm(outputs[i, 0] - Y_np))
            req = bounds.theorem_3_2_requirements(lam=float(lam[i]), n=s.n, d=s.d, B=B, delta=s.delta, m=m, eps=s.eps,
                                                  eta=float(eta[i]))
            row.update({
                "squared_error_0": float(squared[0]), "squared_error_T": float(squared[Ti]),
                "reached_eps": bool(squared[Ti] <= s.eps), "finite": bool(np.all(np.isfinite(squared[: Ti + 1]))),
                "max_movement": float(np.nanmax(moves[i, : Ti + 1])),
                "min_lambda_ratio": float(np.min(lambdas[i, within]) / lam[i]),
                "omega_constant_needed": (float(hit[0] * rate[i] / log_term) if hit.size else math.inf),
                "linearization_distance": float(np.max(np.linalg.norm((outputs[i, within] - lin).reshape(len(lin), -1), axis=1))
                                                / scale) if scale > 0 else math.nan,
                "template_m_required": req.m_required, "template_eta": req.eta_prescribed,
                "eta_over_template_eta": float(eta[i]) / req.eta_prescribed,
                "loss_curve": (squared[: Ti + 1: max(1, Ti // 100)]).tolist(),
                "loss_curve_steps": list(range(0, Ti + 1, max(1, Ti // 100))),
            })
        rows.append(row)
    return rows


def _calibrate(s: Settings, key, X, Y, W, a) -> list:
    """The closed forms (gradient, NTK) against autodiff of a forward pass written out again, on a slice of the first
    instance, and the initialisation against its law N(0, sigma^2 I) at sigma = 0.5 and 1.5 over d x max(m_max, 4096)
    entries, and the closed forms again on a non-degenerate shape (n > d, d_out = 2, sigma = 1.5: the settings' n = d,
    d_out = 1 would hide a transposition). Linearised GD needs no calibration: it is computed by its definition,
    (I - eta m H*)^t step by step."""
    return (instruments.calibrate_section3_model(jnp.asarray(W[:, :64]), X, Y, jnp.asarray(a[:, :64]))
            + instruments.calibrate_initial_variance(key, s.d, max(s.ms[-1], 4096))
            + instruments.calibrate_section3_shapes(jax.random.fold_in(key, 1)))


def evaluate(s: Settings, options: RunOptions) -> Evaluation:
    key = jax.random.PRNGKey(options.seed)
    X, Y = sampling.section3_data(jax.random.fold_in(key, 10**6), n=s.n, d=s.d, d_out=s.d_out)
    draws = [_draws(jax.random.fold_in(key, 1), seed, s) for seed in range(s.probability_seeds)]
    calibrations = _calibrate(s, jax.random.fold_in(key, 2), X, Y, *draws[0][s.ms[-1]])
    if not all(c.met for c in calibrations):
        return Evaluation.instrument_error(calibrations)
    B = bounds.entry_scale_B(sigma=s.sigma, n=s.n, d=s.d, delta=s.delta)
    rows, cross = [], []
    for m in s.ms:
        seeds = list(range(s.seeds_at(m)))
        instances = [draws[seed][m] for seed in seeds]
        families = ["iid"] * len(seeds)
        anti = list(range(s.antithetic_seeds)) if m >= s.m0 and m >= 2 else []
        instances += [_antithetic(*draws[seed][m]) for seed in anti]
        families += ["antithetic"] * len(anti)
        for row, seed in zip(_runs(s, X, Y, m, instances, families, B, to_budget=m == s.ms[-1],
                                   cross=cross if m >= s.m0 and not cross else None), seeds + anti):
            rows.append({"seed": seed, **row})
    lam_inf = float(jnp.linalg.eigvalsh(kernels.infinite_prefix_kernel(X, s.sigma, s.d_out))[0])
    first_run = _first_run_replay(s, X, Y, rows, draws) if options.control is None else None
    evaluation = _judge(s, X, rows, [*calibrations, *cross, *([first_run] if first_run else [])], lam_inf, B)
    if not cross:
        evaluation.findings["cross_checks"] = (
            "not run (cross_check_movement_from_weights, cross_check_linearised_closed_form): no batch with m >= m0 "
            "has a first instance with a stable step (eta m lambda_max(H*) <= 1), which their tolerances presume")
    evaluation.witness = _witness(s, X, Y, rows, draws)
    return evaluation


def _first_run_replay(s: Settings, X, Y, rows: list[dict], draws: list[dict]):
    """The first instance's own measurements by a second route (issue 19): the first independent W(0) (seed 0) at the
    smallest m >= m0 whose step is stable, replayed as a witness is (verify.witness's training route: extended
    precision, the gradient through the softmax Jacobian written anew), so that its first step below eps, the squared
    errors there and its largest movement over t <= T (the quantity of movement_within_R, read by _runs) are
    re-measured. None where there is no such run or where the route cannot serve here
    (verify.registry.witness_cross_check)."""
    row = next((r for r in sorted(rows, key=lambda r: r["m"]) if r["family"] == "iid" and r["seed"] == 0
                and r["m"] >= s.m0 and r["run"] and r["eta_m_lambda_max"] <= 1 + 1e-12), None)
    if row is None:
        return None
    return witness_cross_check(
        _witness(s, X, Y, rows, draws, row=row), name="cross_check_first_run_replay",
        statement=f"the first run's (m = {row['m']}, seed 0) first step below eps, squared errors there and largest "
                  "movement over t <= T, re-measured by the witness's training route (extended precision)")


def _witness(s: Settings, X, Y, rows: list[dict], draws: list[dict], *, row: dict | None = None) -> Witness:
    """The run that decided conclusion_probability's side (the paper column): among the independent W(0) at the
    largest m, one that did not reach eps within the step budget (a failing instance) if there is one, else the one
    that reached it last (closest to failing). It also carries the run's largest movement up to its template T, the
    quantity of the reading movement_within_R. The replay trains it again (verify.witness: extended precision, the
    gradient through the softmax Jacobian written out anew)."""
    at_largest = [r for r in rows if r["family"] == "iid" and r["m"] == s.ms[-1]]
    if row is None:  # the deciding run (else the given one: _first_run_replay)
        row = max(at_largest, key=lambda r: (r["first_step_below_eps"] is None, r["first_step_below_eps"] or 0,
                                             -r["seed"]))
    W0, a = draws[row["seed"]][row["m"]]
    first = row["first_step_below_eps"]
    steps = max(first if first is not None else row["steps_run"], row["T"] if row["run"] else 0)
    reached = "reached eps last" if first is not None else "did not reach eps within the step budget"
    return Witness(
        claim="thm3_2", kind="training_run",
        quantity="the first step t <= max_steps with ||F(t) - Y||_F^2 <= eps of gradient descent from W(0) (and the "
                 "largest movement max_(t <= T, r) ||w_r(t) - w_r(0)||)",
        why=f"of the {len(at_largest)} independent W(0) at m = {row['m']} (conclusion_probability), the run that {reached} "
            f"(seed {row['seed']})",
        arrays={"X": np.asarray(X), "Y": np.asarray(Y), "W0": np.asarray(W0), "a": np.asarray(a)},
        params={"eta": row["eta"], "output_scale": float(row["m"]), "eps": s.eps, "R": s.R, "budget": s.max_steps,
                "T": row["T"] if row["run"] else None, "steps": steps, "m": row["m"], "seed": row["seed"]},
        stored={"measured": first if first is not None else math.inf, "bound": s.max_steps,
                "ratio": first / s.max_steps if first is not None else math.inf,
                "first_step_below_eps": first, "squared_error_at_first_step": row["squared_error_at_first_step"],
                "squared_error_before_first_step": row["squared_error_before_first_step"],
                "squared_error_last_step": row["squared_error_last_step"], "steps_run": row["steps_run"],
                "max_movement": row.get("max_movement"),
                "tolerance": None,
                "tolerance_reason": "set by the replay: 10 x the float64 rounding effect it measures on this instance "
                                    "(an independent float64 run against an extended-precision one: an estimate of "
                                    "the library's own rounding, not a bound), at least 16 ulps"})


def _fit(rows: list[dict], field: str) -> dict:
    """Log-log fit of a field in m over runs (every run a point), with the 95% t-interval half-width of the slope."""
    points = [(r["m"], r[field]) for r in rows if r.get(field) is not None and np.isfinite(r[field]) and r[field] > 0]
    fit = loglog_slope([m for m, _ in points], [v for _, v in points])
    fit["half_width_95"] = float(stats.t.ppf(0.975, len(points) - 2) * fit["stderr"]) if len(points) > 2 else math.inf
    fit["points"] = len(points)
    return fit


def _trend(rows: list[dict], field: str) -> dict:
    """Log-log slope in m of the geometric mean over seeds (a maximum over heavy-tailed neurons: one seed should not
    set the trend), one point per m."""
    ms = sorted({r["m"] for r in rows})
    means = [geometric_mean([r[field] for r in rows if r["m"] == m]) for m in ms]
    return loglog_slope(ms, means)


def _m_reaching(fit: dict, rows: list[dict], field: str, level: float) -> dict:
    """m at which the fitted line through the centroid reaches ``level``, and its range over the slope's 95% interval."""
    xs = np.log([r["m"] for r in rows if r.get(field) and r[field] > 0])
    ys = np.log([r[field] for r in rows if r.get(field) and r[field] > 0])
    if not fit["finite"] or len(xs) < 2:
        return {"m": math.inf, "low": math.inf, "high": math.inf}
    x0, y0 = xs.mean(), ys.mean()

    def at(slope):
        return float(math.exp(x0 + (math.log(level) - y0) / slope)) if slope < 0 else math.inf

    steep, shallow = fit["slope"] - fit["half_width_95"], fit["slope"] + fit["half_width_95"]
    return {"m": at(fit["slope"]), "low": at(steep), "high": at(shallow)}


def _fraction(rows: list[dict], field: str) -> dict:
    held = sum(bool(r[field]) for r in rows)
    low, high = clopper_pearson(held, len(rows))
    return {"held": held, "runs": len(rows), "fraction": held / len(rows) if rows else math.nan, "interval_95": [low, high]}


def _trend_prediction(name: str, statement: str, fit: dict):
    """A trend in m [template proof step: what any version of the template's proof implies]: the fitted slope < 0,
    decided from its two-sided 95% Student-t interval (points - 2 degrees of freedom)."""
    return at_most(name, statement, fit["slope"], 0.0, source="template", role="proof step", trend=True,
                   interval=slope_interval(fit, confidence=0.95),
                   interval_kind="95% t-interval of the fitted slope", samples=fit.get("points"),
                   sample_unit="points", not_tested=fit.get("untestable"))


def _judge(s: Settings, X, rows, calibrations, lam_inf: float, B: float) -> Evaluation:
    iid = [r for r in rows if r["family"] == "iid"]
    predicted = [r for r in iid if r["m"] >= s.m0]  # the readings speak for m >= m0
    ran = [r for r in predicted if r["run"]]
    not_run = len(predicted) - len(ran)
    at_largest = [r for r in iid if r["m"] == s.ms[-1]]  # conclusion_probability: every independent W(0) there
    largest = [r for r in at_largest if r["run"]]
    for r in ran + largest:
        r["within_R"] = r["max_movement"] <= s.R
        r["lazy"] = r["min_lambda_ratio"] >= 0.5
    movement = _fit(ran, "max_movement")  # the exponent in the regime the readings speak of, for the extrapolation
    reach = _m_reaching(movement, ran, "max_movement", s.R)
    swept = [r for r in iid if r["run"]]  # the trends: geometric means over seeds, over the whole sweep
    movement_trend, linearization = _trend(swept, "max_movement"), _trend(swept, "linearization_distance")
    conclusion = _fraction(at_largest, "reached_eps_by_budget")
    lazy_failures = [r for r in ran if not r["lazy"]]
    outside = [r for r in ran if not r["within_R"]]
    missed = [r for r in ran if not r["reached_eps"]]
    largest_x = float(jnp.linalg.norm(X, axis=1).max())
    trained = [r for r in iid if r["trained"]]
    concentrated = min((r["lambda"] / lam_inf for r in predicted), default=math.nan)
    conditions = [
        condition("lambda_positive", "lambda = lambda_min(H*) > 0 in every run", min(r["lambda"] for r in iid), "> 0",
                  all(r["lambda"] > 0 for r in iid), source="paper", role="hypothesis"),
        condition("data_norm_at_most_1", "||x_i|| <= 1 (the template's; attained: x_i on the unit sphere)", largest_x,
                  "<= 1 + 1e-12", largest_x <= 1 + 1e-12, source="template", role="hypothesis"),
        condition("stable_step", "a suitable eta, read as eta m lambda_max(H*) <= 1 (the project's operationalisation)",
                  max((r["eta_m_lambda_max"] for r in trained), default=math.nan), "<= 1",
                  all(r["eta_m_lambda_max"] <= 1 + 1e-12 for r in trained), source="derived", role="hypothesis"),
        condition("kernel_concentrated_from_m0", f"the project's m0 rule for 'm large enough': m >= m0 = {s.m0} with "
                  "lambda_min(H(W(0))) / lambda_min(H_inf) >= 1/2, smallest over runs with m >= m0", concentrated,
                  ">= 1/2", concentrated >= 0.5, source="derived", role="reading"),
    ]
    statement_m = f"every run with m >= m0 = {s.m0}"
    runs_note = f"m = {s.ms[-1]}, {len(at_largest)} independent W(0)"
    predictions = [
        probability_at_least(
            "conclusion_probability",
            f"P(||F(t) - Y||_F^2 <= eps = {s.eps:g} at some step t <= {s.max_steps} (the step budget for 'a finite "
            f"T')) >= 1 - delta = {1 - s.delta:g} at {runs_note}",
            successes=conclusion["held"], trials=conclusion["runs"], target=1 - s.delta, source="paper",
            role="conclusion", free_choices=(f"max_steps = {s.max_steps} (the step budget)", f"eps = {s.eps:g}",
                                             f"probability_seeds = {s.probability_seeds}")),
        no_failures("loss_reaches_eps", f"||F(T) - Y||_F^2 <= eps = {s.eps:g} at the template's T = ceil({s.T_constant:g} "
                    f"log(nd/eps) / (m eta lambda)), {statement_m}", failures=len(missed), checked=len(ran),
                    not_checked=not_run, source="template", role="conclusion",
                    free_choices=(f"T_constant = {s.T_constant:g} (the Omega constant)", f"m0_log2 = {s.m0_log2}")),
        no_failures("movement_within_R", f"max_(t <= T, r) ||w_r(t) - w_r(0)|| <= R = {s.R:g} [paper's R; what it bounds "
                    f"depends on the template's model scaling c_m = m, sigma, ||x|| <= 1], {statement_m}",
                    failures=len(outside), checked=len(ran), not_checked=not_run, source="template", role="proof step",
                    free_choices=(f"m0_log2 = {s.m0_log2}", f"max_log2_m = {s.max_log2_m}")),
        no_failures("lazy_regime_throughout", f"lambda_min(H(W(t))) >= lambda/2 at every recorded t <= T, {statement_m}",
                    failures=len(lazy_failures), checked=len(ran), not_checked=not_run, source="template",
                    role="proof step", free_choices=(f"m0_log2 = {s.m0_log2}",)),
        _trend_prediction("movement_falls_with_m", "fitted log-log slope in m of the largest movement (geometric mean "
                          f"over seeds, m = {s.ms[0]}..{s.ms[-1]}) < 0", movement_trend),
        _trend_prediction("linearization_improves_with_m", "fitted log-log slope in m of the distance to linearised GD "
                          f"(I - eta m H*)^t (geometric mean over seeds, m = {s.ms[0]}..{s.ms[-1]}) < 0", linearization),
    ]
    anti = [r for r in rows if r["family"] == "antithetic" and r["run"]]
    side, anti_findings = _antithetic_report(s, anti)
    omega = [r["omega_constant_needed"] for r in ran]
    first_steps = [r["first_step_below_eps"] for r in at_largest if r["first_step_below_eps"] is not None]
    findings = {
        "m0": s.m0, "R": s.R, "eps": s.eps, "T_constant": s.T_constant, "max_steps": s.max_steps,
        "movement_exponent": movement, "m_where_fitted_movement_reaches_R": reach, "movement_exponent_whole_sweep": movement_trend,
        "largest_movement_by_m": {m: max(r["max_movement"] for r in ran if r["m"] == m) for m in sorted({r["m"] for r in ran})},
        "smallest_movement_by_m": {m: min(r["max_movement"] for r in ran if r["m"] == m) for m in sorted({r["m"] for r in ran})},
        "movement_within_R_at_every_m": sorted({r["m"] for r in ran if r["within_R"]}),
        "linearization_exponent": linearization,
        "probability_conclusion": conclusion,
        "conclusion_failure_free_runs_needed": failure_free_runs_needed(conclusion["held"], conclusion["runs"], 1 - s.delta),
        "first_step_below_eps_at_largest_m_max": max(first_steps, default=None),
        "probability_loss_at_T": _fraction(largest, "reached_eps"), "probability_lazy": _fraction(largest, "lazy"),
        "probability_within_R": _fraction(largest, "within_R"),
        "omega_constant_needed_max": max(omega, default=math.nan),
        "omega_constant_needed_by_m": {m: max(r["omega_constant_needed"] for r in ran if r["m"] == m)
                                       for m in sorted({r["m"] for r in ran})},
        "runs_not_run_T_beyond_max_steps": not_run, "diverged_runs": sum(not r.get("finite", True) for r in ran),
        "template_m_required_min": min((r["template_m_required"] for r in ran), default=math.inf),
        "eta_over_template_eta_median": float(np.median([r["eta_over_template_eta"] for r in ran])) if ran else math.nan,
        "lambda_min_H_inf": lam_inf, "B": B, **anti_findings,
    }
    tested = f"m = {s.ms[0]} .. {s.ms[-1]}"
    large_enough = asymptotic(
        "m_large_enough", "m large enough (Theorem 3.2; its threshold's constants are hidden)", tested,
        template=f"m ~ {findings['template_m_required_min']:.1e} (template, every Omega constant 1)",
        extrapolated=(f"the proof step movement_within_R would be reached from m ~ {reach['m']:.2g} "
                      f"[{reach['low']:.2g}, {reach['high']:.2g}] (fitted movement ~ m^{movement['slope']:.3f}, m >= m0)"
                      if math.isfinite(reach["m"]) else None))
    return Evaluation(calibrations, conditions, predictions, summary=_summary(s, findings, predictions, ran),
                      findings=findings, measurements=rows, table=_table(s, rows), side_reports=side,
                      asymptotic=[large_enough], tested_range=tested)


def _antithetic_report(s: Settings, anti: list[dict]) -> tuple[list, dict]:
    if not anti:
        return [], {}
    for r in anti:
        r["within_R"] = r["max_movement"] <= s.R
    ms = sorted({r["m"] for r in anti})
    within_from = next((m for m in ms if all(r["within_R"] for r in anti if r["m"] >= m)), None)
    fit = _fit(anti, "max_movement")
    within = ("met at every m" if within_from == ms[0] else
              f"met from m = {within_from}" if within_from is not None else "not met at any m")
    found = {"antithetic_movement_exponent": fit, "antithetic_within_R_from_m": within_from,
             "antithetic_movement_within_R": within,
             "antithetic_largest_movement_by_m": {m: max(r["max_movement"] for r in anti if r["m"] == m) for m in ms}}
    side = [{"name": "antithetic initialisation (w_{r+m/2}(0) = w_r(0), a_{r+m/2} = -a_r: F(0) = 0; not the template's "
                     "independent draws)",
             "verdict": NOT_COVERED,
             "reason": "reported beside the claim, decides nothing: the lazy-regime movement with the m^-1/2 of "
                       "||F(0) - Y|| ~ sqrt(m) removed",
             "movement_within_R": within,
             "movement_within_R_from_m": within_from if within_from is not None else "none",
             "movement_exponent": fit["slope"], "movement_exponent_95": fit["half_width_95"],
             "loss_reaches_eps": f"{sum(r['reached_eps'] for r in anti)}/{len(anti)}",
             "largest_movement": max(r["max_movement"] for r in anti)}]
    return side, found


def _summary(s: Settings, f: dict, predictions, ran: list[dict]) -> str:
    mv, reach = f["movement_exponent"], f["m_where_fitted_movement_reaches_R"]
    moved = f"movement ~ m^{mv['slope']:.3f} [{mv['slope'] - mv['half_width_95']:.3f}, {mv['slope'] + mv['half_width_95']:.3f}]"
    extrapolated = f"extrapolated to m ~ {reach['m']:.2g} [{reach['low']:.2g}, {reach['high']:.2g}]"
    ms = sorted({r["m"] for r in ran})
    by = {p.name: p for p in predictions}
    p = f["probability_conclusion"]
    text = (f"||F(t) - Y||^2 <= {s.eps:g} within {s.max_steps} steps in {p['held']}/{p['runs']} runs at m = {s.ms[-1]} "
            f"(one-sided 95% lower bound {by['conclusion_probability'].interval[0]:.3f}"
            + (f"; {f['conclusion_failure_free_runs_needed']} more failure-free runs would reach 1 - delta"
               if f["conclusion_failure_free_runs_needed"] else "") + ")")
    if ms and not f["movement_within_R_at_every_m"]:
        text += (f"; the proof step movement_within_R is not reached at m <= {ms[-1]} (R = {s.R:g}; largest movement "
                 f"at m = {ms[-1]}: {f['largest_movement_by_m'][ms[-1]]:.3g}); {extrapolated} ({moved}; template m ~ "
                 f"{f['template_m_required_min']:.1e})")
    elif ms:
        text += f"; movement_within_R met at m = {f['movement_within_R_at_every_m']}; {moved}"
    reached, lazy = by["loss_reaches_eps"], by["lazy_regime_throughout"]
    text += (f"; ||F(T) - Y||^2 <= {s.eps:g} at the template's T in {reached.checked - reached.measured}/{reached.checked} "
             f"runs (Omega constant needed <= {f['omega_constant_needed_max']:.3g}); lambda_min >= lambda/2 throughout "
             f"in {lazy.checked - lazy.measured}/{lazy.checked}")
    if "antithetic_within_R_from_m" in f:
        a = f["antithetic_movement_exponent"]
        text += (f"; beside the claim, antithetic init (F(0) = 0): movement within R {f['antithetic_movement_within_R']}, "
                 f"movement ~ m^{a['slope']:.2f}")
    return text


def _table(s: Settings, rows: list[dict]) -> dict:
    out = []
    for m in s.ms:
        for family in FAMILIES:
            at = [r for r in rows if r["m"] == m and r["family"] == family and r["run"]]
            if not at:
                continue
            out.append([m, family, len(at), float(np.median([r["lambda"] for r in at])), max(r["T"] for r in at),
                        max(r["squared_error_T"] for r in at), max(r["omega_constant_needed"] for r in at),
                        max(r["max_movement"] for r in at), min(r["min_lambda_ratio"] for r in at),
                        max(r["linearization_distance"] for r in at),
                        float(np.median([r["eta_over_template_eta"] for r in at]))])
    return {"columns": ["m", "init", "runs", "lambda (median)", "T (max)", "||F(T)-Y||^2 (max)", "Omega C needed (max)",
                        "max movement", "min lam(t)/lam", "lin. distance (max)", "eta/template eta"], "rows": out}


def plot(result: Result, out_dir: Path) -> list[Path]:
    rows = [r for r in result.measurements if r.get("run")]
    st, f = result.settings, result.findings
    fig, (ax_l, ax_m, ax_p) = plotting.new_figure(ncols=3, width=5.0, height=4.2)
    ms = sorted({r["m"] for r in rows if r["family"] == "iid"})
    for color, m in zip(plotting.COLORS * 3, ms):
        r = min((r for r in rows if r["m"] == m and r["family"] == "iid"), key=lambda r: r["seed"])
        t = np.array(r["loss_curve_steps"])
        ax_l.plot(t, r["loss_curve"], color=color, lw=1, label=f"m={m} (seed {r['seed']}, T={r['T']})")
    ax_l.axhline(st["eps"], color="grey", ls="--", lw=1, label=f"eps = {st['eps']:g}")
    ax_l.set(yscale="log", xlabel="step t", ylabel=r"$\|F(t) - Y\|_F^2$", title="loss up to T = ceil(log(nd/eps)/(m eta lambda))")
    ax_l.legend(ncol=2, loc="lower left", fontsize=6)

    for family, marker, color in (("iid", "o", "tab:blue"), ("antithetic", "s", "tab:green")):
        at = [r for r in rows if r["family"] == family]
        if not at:
            continue
        ax_m.plot([r["m"] for r in at], [r["max_movement"] for r in at], marker, color=color, ms=2.5, alpha=0.4)
        fms = sorted({r["m"] for r in at})
        ax_m.plot(fms, [max(r["max_movement"] for r in at if r["m"] == m) for m in fms], "-", color=color, lw=1,
                  label=f"{family} init: largest movement (max over runs)")
    mv, reach = f["movement_exponent"], f["m_where_fitted_movement_reaches_R"]
    if mv["finite"] and math.isfinite(reach["m"]):
        grid = np.geomspace(2 ** st["m0_log2"], reach["m"], 50)
        ax_m.plot(grid, np.exp(mv["intercept"]) * grid ** mv["slope"], ":", color="tab:blue", lw=1,
                  label=f"fit m^{mv['slope']:.2f}: reaches R at m ~ {reach['m']:.1e}")
    ax_m.axhline(st["R"], color="black", ls="--", lw=1, label=f"R = {st['R']:g} [paper]")
    ax_m.axvline(2 ** st["m0_log2"], color="grey", ls=":", lw=1, label=f"m0 = 2^{st['m0_log2']}")
    ax_m.set(xscale="log", yscale="log", xlabel="prefix length m", ylabel=r"$\max_{t \leq T, r} \|w_r(t) - w_r(0)\|$",
             title="weight movement against m (proof step)")
    ax_m.set_xscale("log", base=2)
    ax_m.legend(loc="upper right", fontsize=6)

    names = (("probability_conclusion", f"eps within {st['max_steps']} steps (paper)"),
             ("probability_loss_at_T", "eps at the template's T"), ("probability_lazy", "lambda_min >= lambda/2"),
             ("probability_within_R", "movement <= R"))
    for x, (key, label) in enumerate(names):
        rec = f[key]
        low, high = rec["interval_95"]
        ax_p.errorbar([x], [rec["fraction"]], yerr=[[rec["fraction"] - low], [high - rec["fraction"]]], fmt="o", capsize=4,
                      label=f"{label}: {rec['held']}/{rec['runs']}")
    ax_p.axhline(1 - st["delta"], color="grey", ls="--", lw=1, label="1 - delta")
    ax_p.set(xlim=(-0.6, 3.6), ylim=(-0.03, 1.05), xticks=[0, 1, 2, 3],
             xticklabels=["conclusion", "at T", "lazy", "within R"],
             ylabel="fraction of runs (two-sided 95% Clopper-Pearson)", title=f"with probability 1 - delta, m = {max(ms)}")
    ax_p.legend(loc="center left", fontsize=6)
    fig.suptitle(plotting.result_title(result, "Theorem 3.2"))
    return plotting.save_result_figure(fig, out_dir, result)


CLAIM = Claim(
    id="thm3_2", paper_item="Theorem 3.2", tag="[paper]; constants [template]; R [paper]", statement=STATEMENT,
    settings=settings, evaluate=evaluate, plot=plot, controls=CONTROLS,
)
