"""neural-tangents, the independent reference, run in its own environment (.venv-nt, issue 16): every one of its four
empirical-NTK implementations agrees with the closed form kernels.ntk_matrix, both methods, within a derived
tolerance, and its predict.gradient_descent_mse agrees with kernels.ntk_linearized_outputs. The main environment
never imports neural-tangents (it pins a jax the project has left)."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import math

import numpy as np
import pytest

from ntkprefix import kernels, model
from tests import tolerances
from tests.conftest import in_ci
from tests.test_model import problem, rel


# ---- the cross-check against the reference environment (issue 16) -----------------------------------------------
# reference/nt_ntk.py runs in its own environment (.venv-nt: neural-tangents 0.6.5 on jax 0.4.25, no TensorFlow; pins
# in [tool.ntkprefix.reference] of pyproject.toml; `make reference-env`, which `make test` runs first). This side
# writes an instance to an .npz, runs the script on it, and compares every implementation's NTK with ntk_matrix.

ROOT = Path(__file__).resolve().parents[1]
NT_VENV = ROOT / os.environ.get("NT_VENV", ".venv-nt")  # the Makefile's NT_VENV (exported by make)
NT_SCRIPT = ROOT / "reference" / "nt_ntk.py"
# n != d, d_out = 2 (the 2 x 2 blocks of H and the sign patterns both non-trivial), sigma != 1, m not a power of 2
SHAPE = dict(n=6, d=4, m=40, d_out=2, sigma=1.4, seed=16)
# the linearised prediction: eta m lambda_max(H*) = ETA_SCALE, times from 0 to long after the slow modes settle,
# one of them not an integer (continuous time in nt.predict, a real power here)
ETA_SCALE = 0.5
STEPS = np.array([0.0, 1.0, 2.5, 7.0, 30.0, 200.0])


def reference_python() -> Path:
    """The reference environment's interpreter; a missing environment fails under CI and skips, saying how to create
    it, elsewhere."""
    python = NT_VENV / "bin" / "python"
    if python.is_file() and (NT_VENV / ".installed-stamp").is_file():
        return python
    message = (f"the neural-tangents reference environment {NT_VENV} is missing or incomplete: create it with "
               f"`make reference-env` (`make test` does so first)")
    if in_ci():
        pytest.fail(message + " [CI: a missing reference environment is a failure, not a skip]", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """(instance, output of reference/nt_ntk.py) for the instance SHAPE, c_m = m, with this side's H(W(0)), F(0), Y,
    eta and times for the linearised prediction."""
    python = reference_python()
    W, X, Y, a = problem(**SHAPE)
    m = W.shape[1]
    H = np.asarray(kernels.ntk_matrix(W, X, a))
    eta = ETA_SCALE / (m * float(np.linalg.eigvalsh(H)[-1]))
    F0 = np.asarray(model.model_output(W, X, a))
    folder = tmp_path_factory.mktemp("nt_reference")
    src, dst = folder / "in.npz", folder / "out.npz"
    np.savez(src, W=np.asarray(W), X=np.asarray(X), a=np.asarray(a), output_scale=np.array(float(m)), H_star=H, F0=F0,
             Y=np.asarray(Y), eta=np.array(eta), steps=STEPS)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(python), str(NT_SCRIPT), str(src), str(dst)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, f"{python} {NT_SCRIPT} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    with np.load(dst) as f:
        out = {k: f[k] for k in f.files}
    return dict(W=W, X=X, a=a, Y=np.asarray(Y), H=H, F0=F0, eta=eta), out


def test_reference_environment_runs_the_pinned_versions_without_tensorflow(reference_run):
    _, out = reference_run
    with open(ROOT / "pyproject.toml", "rb") as f:
        table = tomllib.load(f)["tool"]["ntkprefix"]["reference"]
    pins = dict(r.split("==") for r in table["requirements"] + table["no-deps"])
    for package in ("jax", "jaxlib", "numpy", "scipy", "neural-tangents"):
        assert str(out[f"version:{package}"]) == pins[package], f"{package}: ran {out[f'version:{package}']}, pinned {pins[package]}"
    assert str(out["version:python"]).startswith(table["python"] + ".")
    assert not bool(out["tensorflow_imported"])


@pytest.mark.parametrize("method", ["dense", "sign_patterns"])
@pytest.mark.parametrize("implementation", ["JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES", "AUTO"])
def test_closed_form_equals_reference_neural_tangents(reference_run, implementation, method):
    # |H_closed - H| <= E_closed (tolerances.ntk_rounding_bound) and |Theta_nt / m - H| <= E_nt
    # (tolerances.ntk_reference_rounding_bound), so ||H_closed - Theta_nt / m||_F <= ||E_closed + E_nt||_F; divided by
    # the computed ||Theta_nt / m||_F, lowered by its own rounding (a sum of N^2 squares: gamma_{N^2 + 2}).
    inst, out = reference_run
    W, X, a = inst["W"], inst["X"], inst["a"]
    n, d_out, m = X.shape[0], a.shape[0], W.shape[1]
    theta = out[implementation]
    assert theta.shape == (n, n, d_out, d_out)
    H_nt = theta.transpose(0, 2, 1, 3).reshape(n * d_out, n * d_out) / m  # rows (i, l) as in ntk_matrix
    H = np.asarray(kernels.ntk_matrix(W, X, a, method=method))
    E = tolerances.ntk_rounding_bound(W, X, a) + tolerances.ntk_reference_rounding_bound(W, X, a)
    u = 2.0**-53
    tol = tolerances.frobenius_norm_upper(E) / (float(np.linalg.norm(H_nt)) * (1 - tolerances.gamma(H.size + 2, u)))
    err = rel(H, H_nt)
    print(f"{implementation} vs ntk_matrix({method}): relative Frobenius {err:.3e}, tolerance {tol:.3e}")
    assert err <= tol, f"neural-tangents {implementation} vs ntk_matrix({method}): {err:.3e} > {tol:.3e}"


def linearized_prediction_tolerance(H: np.ndarray, F0: np.ndarray, Y: np.ndarray, eta: float, m: int, t: float) -> float:
    """First-order bound on ||F_lin(t) computed here - F_lin(t) computed by nt.predict||_2 (both from the same H*, F0,
    Y), assuming LAPACK's symmetric eigensolver is backward stable with ||E||_2 <= N u ||A||_2 (its p(N) taken as N,
    an assumption: LAPACK states only "a modest function of N") and its eigenvectors orthonormal to N u.

    With A = eta m H* (lambda in [0, lambda_max], lambda_max < 1), r = F0 - Y and f_t(x) = (1 - x)^t:
    * here, f_t(A) r via eigh(A): f_t(A + E) - f_t(A) has 2-norm <= L_t ||E||_F <= L_t sqrt(N) N u ||A||_2, where
      L_t = max |f_t'| on [0, lambda_max] (divided differences of a C^1 function are values of its derivative) =
      t max(1, (1 - lambda_max)^(t - 1));
    * the reference, K = -(N / eta) log(I - A) via eigh(A) (log's derivative <= 1 / (1 - lambda_max)), then nt.predict's
      exp(-eta t K / N) via its own eigh of K (derivative in K <= eta t / N): t sqrt(N) N u ||A||_2 / (1 - lambda_max)
      and t sqrt(N) N u |log(1 - lambda_max)|;
    * the products U diag(c) U^T r and the sums with Y, |c| <= 1 and U orthonormal to N u: (2N + 4 + 2N) u ||r|| and
      2 u ||Y||, on each side.
    Terms of order u^2 are left out.
    """
    u = 2.0**-53
    N = H.shape[0]
    lam = float(np.linalg.eigvalsh(eta * m * H)[-1])
    r, y = float(np.linalg.norm(F0 - Y)), float(np.linalg.norm(Y))
    L_t = t * max(1.0, (1.0 - lam) ** (t - 1.0)) if t > 0 else 0.0
    perturbation = math.sqrt(N) * N * u * (lam * L_t + t * lam / (1.0 - lam) + t * abs(math.log1p(-lam)))
    return perturbation * r + 2 * ((4 * N + 4) * u * r + 2 * u * y)


def test_linearized_prediction_equals_reference_neural_tangents_predict(reference_run):
    inst, out = reference_run
    m = inst["W"].shape[1]
    ours = np.asarray(kernels.ntk_linearized_outputs(inst["H"], inst["F0"], inst["Y"], eta=inst["eta"], m=m, steps=STEPS))
    theirs = out["predict"]
    assert ours.shape == theirs.shape == (len(STEPS),) + inst["F0"].shape
    for t, a, b in zip(STEPS, ours, theirs):
        err = float(np.linalg.norm(a - b))
        tol = linearized_prediction_tolerance(inst["H"], inst["F0"], inst["Y"], inst["eta"], m, float(t))
        print(f"t = {t:g}: ||ours - nt.predict|| = {err:.3e}, first-order bound {tol:.3e}")
        assert err <= tol, f"t = {t}: {err:.3e} > {tol:.3e}"
    # not a tautology: the prediction moves over these times, at t = 200 nearly to Y
    assert np.linalg.norm(ours[-1] - inst["Y"]) < 0.1 * np.linalg.norm(ours[0] - inst["Y"])


def test_missing_reference_environment_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "NT_VENV", tmp_path / "absent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make reference-env"):
        reference_python()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="make reference-env"):
        reference_python()
