"""Planted faults: show that the checks and the tests can fail.

``python -m verify.mutants`` (or ``make mutants``) copies the repository's files (tracked, and untracked ones not
ignored) into a temporary folder once (the baseline and every mutant are copies of that one snapshot, so that edits
made to the working tree during the run are never attributed to a fault), plants one semantic fault of the list
below (a fault a real bug could introduce: in the library ``ntkprefix/``, or in the verdict machinery and statistics
``verify/``), runs ``python -m verify CLAIMS --quick`` and the tests that concern it in the copy, and compares the
outcomes with those of the unmutated copy. A claim's outcome is its paper verdict with its scope and the name and
outcome of every condition and prediction that is not met ("consistent, not refuted up to m = 1024 .. 65536 [not
met: x failed, y inconclusive]"), so that a met -> inconclusive change counts and a claim already not met cannot
hide a new failure. A fault is caught when a claim's outcome changed (an instrument error or a crash included) or a
named test failed (tests that already fail on the unmutated copy catch nothing: the runner says so); a fault that
neither catches is a finding: the checks or the tests must be strengthened. It prints the kill rate, overall and per
package (ntkprefix/, verify/), and the wall time. It is too slow for CI; the CI tests run one fault end to end and
every verify/ fault against its named tests (tests/test_mutants.py).

Options: ``--faults a,b`` (default all), ``--claims x,y`` (default every claim except those about run time, whose
verdicts move with the machine's load), ``--no-tests``, ``--tests-first`` (a fault's named tests first, its verdicts
only when the tests miss it: a faster run whose report says which faults the verdicts were not run for), ``--list``.
A fault's named tests are files or pytest node ids (``file::test``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Fault:
    """One planted fault: replace ``old`` (which must occur exactly once) by ``new`` in ``path`` (under one of
    :data:`PACKAGES`)."""

    name: str
    path: str
    old: str
    new: str
    description: str
    tests: tuple[str, ...]  # the test files (or pytest node ids, file::test) that concern it


#: The packages a fault may live in; the kill rate is reported for each.
PACKAGES = ("ntkprefix/", "verify/")

FAULTS = (
    Fault("taylor_weight", "ntkprefix/features.py",
          "factor = np.array([float(1 / decimal.Decimal(math.factorial(a)).sqrt()) for a in range(g + 1)])",
          "factor = np.array([float(1 / decimal.Decimal(math.factorial(a))) for a in range(g + 1)])",
          "Taylor features weighted 1/alpha! instead of 1/sqrt(alpha!)", ("tests/test_features.py",)),
    Fault("taylor_weights_same_parity_swapped", "ntkprefix/features.py",
          "    weights = np.prod(factor[alphas], axis=1)\n",
          "    weights = np.prod(factor[alphas], axis=1)\n"
          "    if d >= 4 and g >= 5:\n"
          "        pick = lambda head: np.flatnonzero((alphas[:, :4] == head).all(axis=1) & (alphas.sum(axis=1) == g))[0]\n"
          "        top, pair = pick([g - 3, 1, 1, 1]), pick([g - 5, 3, 1, 1])\n"
          "        weights[[top, pair]] = weights[[pair, top]]\n",
          "the weights of two degree-g monomials of one parity pattern exchanged (x1^(g-3) x2 x3 x4 and "
          "x1^(g-5) x2^3 x3 x4, a mis-ordered coefficient table): at every corner of the box q^alpha k^alpha depends "
          "only on the parity of alpha, so no +-b instance sees it (a narrow fault: of thm4_1's instance families only the "
          "searched one finds it; the kernel identity test at d = 4, g = 8 and 9 does too)",
          ("tests/test_features.py",)),
    Fault("taylor_temperature", "ntkprefix/features.py", "    y = xT / d**0.25\n    if d <= g:",
          "    y = xT / d**0.5\n    if d <= g:", "Taylor features scaled by d^(-1/2) instead of d^(-1/4)",
          ("tests/test_features.py",)),
    Fault("prefix_temperature", "ntkprefix/attention.py",
          "return Q.astype(dtype) / jnp.sqrt(jnp.asarray(Q.shape[1], dtype))",
          "return Q.astype(dtype) / jnp.asarray(Q.shape[1], dtype)",
          "prefix attention with temperature 1/d instead of 1/sqrt(d)", ("tests/test_attention.py",)),
    Fault("causal_mask_off_by_one", "ntkprefix/attention.py", "return jnp.tril(jnp.ones((L, L), dtype=bool))",
          "return jnp.tril(jnp.ones((L, L), dtype=bool), k=1)", "causal mask lets query i see key i + 1",
          ("tests/test_attention.py", "tests/test_properties.py")),
    Fault("running_softmax_no_rescale", "ntkprefix/attention.py", "acc * rescale[:, None] + matmul(weights, values.astype(acc.dtype))",
          "acc + matmul(weights, values.astype(acc.dtype))", "the running softmax forgets to rescale its accumulator",
          ("tests/test_attention.py",)),
    Fault("ntk_prefix_weight_inverted", "ntkprefix/attention.py", "prefix_weight = jnp.exp(log_magnitude - shift)",
          "prefix_weight = jnp.exp(shift - log_magnitude)", "NTK-Attention's prefix term scaled the wrong way",
          ("tests/test_attention.py",)),
    Fault("reduction_drops_tail", "ntkprefix/reduction.py", "    if n % chunk:\n        tail = slice(n_full * chunk, n)",
          "    if False:\n        tail = slice(n_full * chunk, n)", "the reduction drops the last, partial chunk",
          ("tests/test_reduction.py",)),
    Fault("reduction_keys_as_values", "ntkprefix/reduction.py", "return S_Z + matmul(features_T, V_c), S_k",
          "return S_Z + matmul(features_T, K_c.astype(dtype)), S_k", "the reduction sums phi(K) K instead of phi(K) V",
          ("tests/test_reduction.py",)),
    Fault("gradient_uncentred", "ntkprefix/model.py", "(a[None, :, :] - mean_a[:, :, None])", "a[None, :, :]",
          "the gradient factor forgets the centring a - <a, S> (changes the gradient and the NTK consistently)",
          ("tests/test_model.py", "tests/test_kernels.py")),
    Fault("output_scale_sqrt_m", "ntkprefix/model.py", 'return float(require_int("m", m, low=1))',
          'return float(require_int("m", m, low=1)) ** 0.5',
          "the model's output scale c_m = sqrt(m) instead of m", ("tests/test_model.py", "tests/test_kernels.py")),
    Fault("ntk_normalisation", "ntkprefix/kernels.py", 'H4 = einsum("ij,ilr,jkr->iljk", matmul(X, X.T), G, G) / W.shape[1]',
          'H4 = einsum("ij,ilr,jkr->iljk", matmul(X, X.T), G, G) / W.shape[1] ** 2', "the dense NTK divided by m^2",
          ("tests/test_kernels.py",)),
    Fault("infinite_kernel_half_variance", "ntkprefix/kernels.py", "gram * jnp.exp(sigma**2 * gram)",
          "gram * jnp.exp(0.5 * sigma**2 * gram)", "the infinite-prefix kernel with exp(sigma^2 <x, x'> / 2)",
          ("tests/test_kernels.py",)),
    Fault("remainder_without_hypergeometric", "ntkprefix/bounds.py",
          "return (g + 1) * log_t - math.lgamma(g + 2) + _log_sum_exp(log_terms)",
          "return (g + 1) * log_t - math.lgamma(g + 2)", "the exact Taylor remainder loses its 1F1 factor (underestimates eps)",
          ("tests/test_bounds.py", "tests/test_properties.py")),
    Fault("attention_bound_missing_factor_2", "ntkprefix/bounds.py", "return 2.0 * eps / (1.0 - eps) * value_bound",
          "return eps / (1.0 - eps) * value_bound", "the output-error bound missing its factor 2 (a departure from the "
          "stated formula, though eps/(1 - eps) max|V_C| is itself a valid bound: verify/checks/thm4_1.py)",
          ("tests/test_bounds.py", "tests/test_properties.py")),
    Fault("attention_bound_twice_as_loose", "ntkprefix/bounds.py", "return 2.0 * eps / (1.0 - eps) * value_bound",
          "return 4.0 * eps / (1.0 - eps) * value_bound", "the output-error bound twice as loose as derived (every "
          "point still below it: only a bound shown attained can see it)",
          ("tests/test_bounds.py", "tests/test_verify_thm4_1.py")),
    Fault("gradient_descent_half_step", "ntkprefix/training.py",
          "return W - eta * loss_gradient(W, X, Y, a, output_scale=output_scale), record",
          "return W - 0.5 * eta * loss_gradient(W, X, Y, a, output_scale=output_scale), record",
          "gradient descent takes half the step it reports", ("tests/test_model.py",)),
    Fault("extreme_instance_short_queries", "ntkprefix/sampling.py",
          "Q = jnp.concatenate([u[None, :], jax.random.rademacher(k_q, (L - 1, d), dtype)], axis=0)",
          "Q = 0.5 * jnp.concatenate([u[None, :], jax.random.rademacher(k_q, (L - 1, d), dtype)], axis=0)",
          "the extreme instances' queries stop at b/2 (an easier instance than the condition allows)", ()),
    Fault("section3_data_inside_sphere", "ntkprefix/sampling.py",
          "return data_radius * _unit_rows(k_x, (n, d), dtype), jax.random.normal(k_y, (n, d_out), dtype)",
          "return 0.5 * data_radius * _unit_rows(k_x, (n, d), dtype), jax.random.normal(k_y, (n, d_out), dtype)",
          "Section 3 data drawn inside the unit ball instead of on its edge", ()),
    Fault("depth_composition_drops_residual", "ntkprefix/depth.py",
          "total = total * ((1.0 + lam) if residual else lam) + beta",
          "total = total * lam + beta", "the composed depth bound forgets the residual's 1 + Lambda",
          ("tests/test_depth.py",)),
    Fault("depth_a_priori_drops_residual", "ntkprefix/depth.py",
          "b_out = (b + w * B) if residual else w * B", "b_out = w * B",
          "the a-priori entry propagation forgets the residual stream", ("tests/test_depth.py",)),
    Fault("depth_lipschitz_drops_value_term", "ntkprefix/depth.py",
          "return operator_inf_norm(W_V) + 2.0 * range_v * (c_q + c_k) / math.sqrt(d)",
          "return 2.0 * range_v * (c_q + c_k) / math.sqrt(d)",
          "the layer's Lipschitz bound forgets that the values move with the input", ("tests/test_depth.py",)),
    Fault("initial_variance_squared", "ntkprefix/model.py",
          'return sigma * jax.random.normal(key, (d, m), require_float_dtype("dtype", dtype))',
          'return sigma**2 * jax.random.normal(key, (d, m), require_float_dtype("dtype", dtype))',
          "the initial prefix weights drawn with variance sigma^4 instead of sigma^2 (invisible at sigma = 1)",
          ("tests/test_model.py",)),
    # The verdict machinery (verify/verdict.py): each fault would let a check say more than its data.
    Fault("probability_upper_end", "verify/verdict.py", "    if low >= target:\n", "    if high >= target:\n",
          "a probability >= target is met from the upper Clopper-Pearson bound instead of the lower",
          ("tests/test_verdict.py",)),
    Fault("reading_attributed_to_paper", "verify/verdict.py", 'return role == "conclusion" and source == "paper"',
          'return role == "conclusion"',
          "a conclusion with the template's or the project's constants judges the paper",
          ("tests/test_verdict.py",)),
    Fault("interval_point_estimate", "verify/verdict.py", "outcome = _outcome(relation, threshold, interval)",
          "outcome = _outcome(relation, threshold, (measured, measured))",
          "a prediction is decided from its point estimate instead of its interval", ("tests/test_verdict.py",)),
    # The statistics (verify/fitting.py), each against its reference in tests/test_fitting.py.
    Fault("fit_on_one_point_fails", "verify/fitting.py",
          '"untestable": f"a slope needs two distinct x; got {len(np.unique(x))} of {len(x)} points"}',
          '"untestable": None, "slope": math.inf}',
          "a slope on fewer than two points (or one distinct x) is an infinite slope, a failure, not 'not tested'",
          ("tests/test_fitting.py", "tests/test_verdict.py")),
    Fault("slope_interval_dof_n", "verify/fitting.py", "stats.t.ppf(0.5 + confidence / 2, points - 2) * stderr)",
          "stats.t.ppf(0.5 + confidence / 2, points) * stderr)",
          "the slope's t-interval with n instead of n - 2 degrees of freedom (too narrow)", ("tests/test_fitting.py",)),
    Fault("clopper_pearson_one_trial_more", "verify/fitting.py",
          "ci = stats.binomtest(int(successes), int(trials), alternative=alternative).proportion_ci(",
          "ci = stats.binomtest(int(successes), int(trials) + 1, alternative=alternative).proportion_ci(",
          "the one-sided Clopper-Pearson bounds from the wrong beta parameters (n - k + 2: one trial more)",
          ("tests/test_fitting.py",)),
    Fault("clopper_pearson_two_sided_level", "verify/fitting.py",
          'proportion_ci(confidence_level=confidence, method="exact")',
          'proportion_ci(confidence_level=2 * confidence - 1, method="exact")',
          "the two-sided Clopper-Pearson interval at level 2c - 1 (90% reported as 95%)", ("tests/test_fitting.py",)),
    Fault("mean_interval_ddof0", "verify/fitting.py", "v.std(ddof=1)", "v.std(ddof=0)",
          "the mean's t-interval from the biased (ddof = 0) standard deviation", ("tests/test_fitting.py",)),
    Fault("common_slope_stderr_dof", "verify/fitting.py", "dof = len(x) - len(means) - 1", "dof = len(x) - len(means)",
          "the common slope's standard error with one residual degree of freedom too many", ("tests/test_fitting.py",)),
    Fault("geometric_mean_of_values", "verify/fitting.py", "return float(np.exp(np.mean(np.log(v))))",
          "return float(np.mean(v))", "the geometric mean over seeds is the arithmetic mean",
          ("tests/test_fitting.py",)),
    Fault("failure_free_runs_off_by_one", "verify/fitting.py", "            low = mid + 1\n    return low\n",
          "            low = mid + 1\n    return low + 1\n",
          "the failure-free runs that would confirm a probability counted one too many", ("tests/test_fitting.py",)),
    Fault("half_ranges_drop_middle", "verify/fitting.py", "return xs[: mid + 1], xs[mid:]", "return xs[:mid], xs[mid:]",
          "the first half of a sweep loses the shared middle point (a three-point sweep's first half has one point)",
          ("tests/test_fitting.py",)),
    # Calibrations (issue 19): a comparison or a tolerance moved, each caught by the test showing that calibration
    # bites at 1.1 x its derived tolerance (tests/test_calibrations_bite.py, tests/test_check_calibrations_bite.py).
    Fault("calibration_met_within_ten_tolerances", "verify/verdict.py",
          "bool(math.isfinite(discrepancy) and discrepancy <= tolerance))",
          "bool(math.isfinite(discrepancy) and discrepancy <= 10 * tolerance))",
          "every calibration accepts a discrepancy up to 10 x its tolerance",
          ("tests/test_calibrations_bite.py::test_the_section3_model_calibrations_bite",
           "tests/test_check_calibrations_bite.py::test_the_float32_calibration_bites")),
    Fault("softmax_score_rounding_hundredfold", "verify/instruments.py",
          "    return (4 * gamma(n + 1, dtype) + 4 * gamma(d + 2, dtype) * s_abs) * scale\n",
          "    return (4 * gamma(n + 1, dtype) + 400 * gamma(d + 2, dtype) * s_abs) * scale\n",
          "the softmax calibrations' score-rounding term 100 x its derivation (4 gamma_{d+2} S_abs)",
          ("tests/test_calibrations_bite.py::test_the_attention_calibrations_bite",)),
    Fault("section3_condition_allowance_1e5", "verify/instruments.py", "    tolerance = 1e3 * gamma(n_terms)\n",
          "    tolerance = 1e5 * gamma(n_terms)\n",
          "the Section 3 closed forms' tolerance with a condition allowance of 1e5 instead of 1e3",
          ("tests/test_calibrations_bite.py::test_the_section3_model_calibrations_bite",)),
    Fault("variance_false_alarm_1e12", "verify/instruments.py", "VARIANCE_FALSE_ALARM = 1e-6",
          "VARIANCE_FALSE_ALARM = 1e-12",
          "the initial-variance calibration at false-alarm probability 1e-12 (wider quantiles) instead of 1e-6",
          ("tests/test_calibrations_bite.py::test_the_initial_variance_calibration_bites",)),
    Fault("stack_rounding_without_amplification", "verify/checks/depth.py",
          "        lipschitz.append(depth.attention_lipschitz_bound(lay, stack[l], stack[l]))\n",
          "        lipschitz.append(0.0)\n",
          "depth's stack calibration adds the layers' roundings without carrying them through the later layers "
          "(a tolerance too tight by prod (1 + Lambda))",
          ("tests/test_check_calibrations_bite.py::test_the_deep_stack_calibration_bites",)),
    Fault("stack_rounding_tenfold", "verify/checks/depth.py", "    return depth.composed_error_bound(errors, lipschitz)\n",
          "    return 10 * depth.composed_error_bound(errors, lipschitz)\n",
          "depth's stack calibration 10x looser than its derivation",
          ("tests/test_check_calibrations_bite.py::test_the_deep_stack_calibration_bites",)),
    Fault("lem3_1_remainder_doubled", "verify/checks/lem3_1.py",
          "abs(finite - first), perturbation.second_order_remainder(R, A) + rounding,",
          "abs(finite - first), 2 * perturbation.second_order_remainder(R, A) + rounding,",
          "lem3_1's first-order calibration allows twice the derived second-order remainder",
          ("tests/test_check_calibrations_bite.py::test_the_lem3_1_finite_change_calibration_bites",)),
    Fault("float32_calibration_in_float64", "verify/checks/fig3.py", "reference, dtype=jnp.float32)",
          "reference, dtype=jnp.float64)",
          "fig3's float32 calibration with float64's unit roundoff (a tolerance 2^29 times too tight)",
          ("tests/test_check_calibrations_bite.py::test_the_float32_calibration_bites",)),
    # The measurements' second routes (issue 19), each caught by the test that shows it bites.
    Fault("counts_cross_check_skips_not_checked", "verify/crosscheck.py",
          "float(sum(abs(a - b) for a, b in zip(recounted, reported)))",
          "float(abs(recounted[0] - reported[0]) + abs(recounted[2] - reported[2]))",
          "the counts' cross-check ignores the not-checked count (a point dropped from the count goes unseen)",
          ("tests/test_crosscheck.py::test_the_count_cross_check_bites",)),
    Fault("replay_margin_without_allowance", "verify/witness.py",
          "out = max(out, diff / allowance if allowance > 0 else", "out = max(out, diff if allowance > 0 else",
          "the witness cross-check's margin is the raw difference, not its ratio to the route's allowance",
          ("tests/test_crosscheck.py::test_the_witness_cross_check_bites",)),
    Fault("law_cross_check_tolerance_squared", "verify/checks/prop3_3.py",
          "tolerance = 4 * 2 * level[\"T\"] * gamma * math.exp(-direct / 2)",
          "tolerance = 4 * 2 * level[\"T\"] * gamma * math.exp(-direct)",
          "the law's cross-check divides by ||r(T)||^2 instead of ||r(T)|| (a tolerance too loose wherever the loss falls)",
          ("tests/test_crosscheck.py::test_the_law_cross_check_bites",)),
    # The checks' own measurement code (issue 19): caught by a cross-check (an instrument error) in the verdict and
    # by the check's test that its cross-checks are met.
    Fault("linearised_gd_half_step", "verify/checks/thm3_2.py",
          "    step = np.eye(len(H)) - eta * m * H\n    residual = (F0 - Y).reshape(-1)\n",
          "    step = np.eye(len(H)) - eta * m * H / 2\n    residual = (F0 - Y).reshape(-1)\n",
          "thm3_2's linearised dynamics take half the step (linearization_distance measured against the wrong curve)",
          ("tests/test_crosscheck.py::test_the_training_cross_checks_bite",
           "tests/test_verify_thm3_2.py::test_linearised_dynamics_match_one_small_gd_step_with_several_outputs")),
    Fault("law_powers_T_not_2T", "verify/checks/prop3_3.py",
          "modes = run[\"shares\"] * contraction ** (2 * T)", "modes = run[\"shares\"] * contraction ** T",
          "prop3_3's law for each run with (1 - eta m lambda_i)^T instead of ^(2T) (the loss's law, not the residual's "
          "square)", ("tests/test_verify_prop3_3.py::test_the_cross_checks_are_met_and_left_out_where_the_step_is_unstable",)),
    Fault("movement_read_before_last_step", "verify/checks/thm3_2.py",
          "\"max_movement\": float(np.nanmax(moves[i, : Ti + 1])),", "\"max_movement\": float(np.nanmax(moves[i, :Ti])),",
          "thm3_2's largest movement read over t < T instead of t <= T (the last, largest, step left out)",
          ("tests/test_verify_thm3_2.py::test_the_cross_checks_are_met_and_left_out_where_the_step_is_unstable",)),
)


def _tracked_files() -> list[str]:
    """The repository's files: tracked ones, and untracked ones that .gitignore does not exclude (a new test file
    must reach the copy, or naming it would make pytest fail for a reason that is not the fault)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return sorted({line for line in out.splitlines() if line})


def _copy(dest: Path) -> None:
    """The working tree's files (as they are now, uncommitted changes and untracked, not ignored files included)
    into dest."""
    for name in _tracked_files():
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def plant(fault: Fault, root: Path) -> None:
    """Apply the fault in the copy at root; ValueError when its text does not occur exactly once."""
    path = root / fault.path
    text = path.read_text()
    count = text.count(fault.old)
    if count != 1:
        raise ValueError(f"fault {fault.name}: expected its text exactly once in {fault.path}, found {count} times")
    path.write_text(text.replace(fault.old, fault.new))


def _env() -> dict:
    env = {**os.environ, "CI": "true", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    return env


def outcome_line(record: dict) -> str:
    """A claim's outcome in one line: its paper verdict and scope, then every condition and prediction whose outcome
    is not "met", with that outcome ("consistent, not refuted up to m = 1024 .. 65536 [not met: x failed,
    y inconclusive]")."""
    line = record["paper_verdict"] + (f" {record['paper_scope']}" if record.get("paper_scope") else "")
    items = (*record.get("conditions", ()), *record.get("predictions", ()))
    not_met = sorted(f"{x['name']} {x['outcome']}" for x in items if x["outcome"] != "met")
    return line + (f" [not met: {', '.join(not_met)}]" if not_met else "")


def run_verdicts(root: Path, claims: list[str]) -> dict:
    """{claim: outcome_line} of ``python -m verify CLAIMS --quick`` in the copy at root (its own packages first)."""
    out = root / "mutant_out"
    proc = subprocess.run([sys.executable, "-m", "verify", *claims, "--quick", "--out", str(out), "--json",
                           str(out / "r.json")], cwd=root, capture_output=True, text=True, env=_env())
    path = out / "r.json"
    if not path.exists():
        return {claim: f"crashed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}" for claim in claims}
    data = json.loads(path.read_text())
    records = data.get("results", [data])
    return {r["claim"]: outcome_line(r) for r in records}


def run_tests(root: Path, tests: tuple[str, ...]) -> tuple[bool, str]:
    """(passed, last line) of pytest on the given files in the copy: passed when every test passed; not passed when
    a test failed or a file could not be collected (a fault that breaks an import is caught). A named file missing
    from the copy, or pytest failing for another reason (usage, internal error, nothing collected), is an error of
    the runner, never a caught fault: RuntimeError."""
    if not tests:
        return True, "no tests named"
    missing = [t for t in tests if not (root / t.split("::")[0]).is_file()]
    if missing:
        raise RuntimeError(f"named test files missing from the copy at {root}: {', '.join(missing)}")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests], cwd=root,
                          capture_output=True, text=True, env=_env())
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else proc.stderr.strip()[-200:]
    if proc.returncode not in (0, 1, 2):  # 1: a test failed; 2: interrupted by a collection error
        raise RuntimeError(f"pytest {' '.join(tests)} exited {proc.returncode} in {root}: {last}")
    return proc.returncode == 0, last


def package_of(fault: Fault) -> str:
    """The package (one of :data:`PACKAGES`) the fault lives in; ValueError for any other path."""
    for package in PACKAGES:
        if fault.path.startswith(package):
            return package
    raise ValueError(f"fault {fault.name}: {fault.path} is in none of {PACKAGES}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify.mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", help="comma-separated fault names (default: all)")
    parser.add_argument("--claims", help="comma-separated claim ids (default: every claim)")
    parser.add_argument("--no-tests", action="store_true", help="judge by the verdicts alone")
    parser.add_argument("--tests-first", action="store_true",
                        help="run a fault's named tests first and its verdicts only when the tests miss it (faster; "
                             "the report then names the tests as the catcher and says the verdicts were not run)")
    parser.add_argument("--list", action="store_true", help="list the faults")
    args = parser.parse_args(argv)
    if args.list:
        for f in FAULTS:
            print(f"{f.name:34s} {f.path:24s} {f.description}")
        return 0
    names = args.faults.split(",") if args.faults else [f.name for f in FAULTS]
    unknown = [n for n in names if n not in {f.name for f in FAULTS}]
    if unknown:
        print(f"python -m verify.mutants: error: unknown fault {unknown[0]!r}; see --list", file=sys.stderr)
        return 2
    faults = [f for f in FAULTS if f.name in names]
    for fault in faults:
        package_of(fault)
    if args.tests_first and args.no_tests:
        print("python -m verify.mutants: error: --tests-first and --no-tests exclude each other", file=sys.stderr)
        return 2
    if args.claims:
        claims = args.claims.split(",")
    else:
        sys.path.insert(0, str(ROOT))
        from verify import registry

        # Claims about run time (fig3) are left out: their verdict moves with the machine's load, so a change would
        # not show a fault (its instruments are the same prefix attention and reduction the other checks calibrate).
        claims = [claim_id for claim_id, claim in registry.claims().items() if not claim.measures_time]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ntkprefix-mutants-") as tmp:
        # One snapshot of the working tree, taken once: the baseline and every mutant are copies of it, so that an
        # edit made to the working tree during the run is never attributed to a fault.
        snapshot = Path(tmp) / "snapshot"
        _copy(snapshot)
        base = Path(tmp) / "baseline"
        shutil.copytree(snapshot, base)
        baseline_verdicts = {}

        def baseline() -> dict:  # the unmutated verdicts, run once, when a fault first needs them
            if not baseline_verdicts:
                baseline_verdicts.update(run_verdicts(base, claims))
                print(f"baseline verdicts: {baseline_verdicts}", flush=True)
            return baseline_verdicts

        if not args.tests_first:
            baseline()
        baseline_tests = {}  # named test files -> (passed, last line) on the unmutated copy
        caught = 0
        by_package = {package: [0, 0] for package in PACKAGES}
        for fault in faults:
            t0 = time.perf_counter()
            root = Path(tmp) / fault.name
            shutil.copytree(snapshot, root)
            plant(fault, root)
            tests_pass, tests_line = (True, "not run") if args.no_tests else run_tests(root, fault.tests)
            if not tests_pass:
                if fault.tests not in baseline_tests:
                    baseline_tests[fault.tests] = run_tests(base, fault.tests)
                if not baseline_tests[fault.tests][0]:  # already failing unmutated: the failure shows nothing
                    tests_pass, tests_line = True, (f"fail unmutated too ({baseline_tests[fault.tests][1]}), so they "
                                                    "catch nothing")
            # the verdicts, unless --tests-first and the tests caught it already
            verdicts = run_verdicts(root, claims) if not args.tests_first or tests_pass else None
            changed = {c: (baseline()[c], verdicts.get(c)) for c in claims
                       if verdicts is not None and verdicts.get(c) != baseline()[c]}
            killed = bool(changed) or not tests_pass
            caught += killed
            by_package[package_of(fault)][0] += killed
            by_package[package_of(fault)][1] += 1
            by = []
            if changed:
                by.append("verdicts " + ", ".join(f"{c}: {a} -> {b}" for c, (a, b) in changed.items()))
            if not tests_pass:
                by.append(f"tests ({tests_line})")
            if verdicts is None:
                by.append("verdicts not run (--tests-first: the tests caught it)")
            print(f"{'CAUGHT' if killed else 'MISSED'} {fault.name} ({fault.description}) in {time.perf_counter() - t0:.0f} s: "
                  + ("; ".join(by) if by else f"verdicts unchanged, tests {tests_line}"), flush=True)
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started
    for package, (killed, planted) in by_package.items():
        if planted:
            print(f"{package}: kill rate {killed}/{planted} = {killed / planted:.0%}")
    print(f"kill rate {caught}/{len(faults)} = {caught / len(faults):.0%}; wall time {elapsed:.0f} s")
    return 0 if caught == len(faults) else 1


if __name__ == "__main__":
    sys.exit(main())
