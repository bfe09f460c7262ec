"""neural-tangents: in the main environment it imports (it needs TensorFlow importable) and agrees with jax.jacobian
on a function of ours; in the reference environment (.venv-nt, issue 16) every one of its four empirical-NTK
implementations agrees with the closed form kernels.ntk_matrix, both methods, within a derived tolerance."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkprefix as nk
from ntkprefix import kernels
from tests import tolerances
from tests.test_model import problem, rel


def test_neural_tangents_imports():
    import neural_tangents

    assert neural_tangents.__version__ == "0.6.5"


@pytest.mark.parametrize("implementation", ["AUTO", "JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES"])
def test_empirical_ntk_fn_agrees_with_jax_jacobian(implementation):
    import neural_tangents as nt

    d, L = 3, 4
    phi = nk.taylor_feature_map(d, 2)
    rng = np.random.default_rng(0)
    W = jnp.asarray(rng.normal(size=(3, d, d)) / np.sqrt(d))

    def apply_fn(params, x):
        # NTK-Attention as a function of its trainable (Z, k), on an input x of shape (L, d).
        Z, k = params
        return nk.ntk_attention(x @ W[0], x @ W[1], x @ W[2], Z, k, phi).ravel()

    params = (jnp.asarray(rng.normal(size=(phi.r, d))), jnp.asarray(rng.uniform(0.5, 1.5, size=phi.r)))
    x1, x2 = jnp.asarray(rng.normal(size=(L, d))), jnp.asarray(rng.normal(size=(L, d)))

    kernel_fn = nt.empirical_ntk_fn(
        apply_fn, trace_axes=(), vmap_axes=None, implementation=getattr(nt.NtkImplementation, implementation)
    )
    ntk = kernel_fn(x1, x2, params)

    def flat_jacobian(x):
        jac = jax.jacobian(apply_fn)(params, x)
        return jnp.concatenate([j.reshape(j.shape[0], -1) for j in jac], axis=1)

    expected = flat_jacobian(x1) @ flat_jacobian(x2).T
    assert ntk.shape == expected.shape == (L * d, L * d)
    np.testing.assert_allclose(ntk, expected, rtol=1e-10, atol=1e-12)


# ---- the cross-check against the reference environment (issue 16) -----------------------------------------------
# reference/nt_ntk.py runs in its own environment (.venv-nt: neural-tangents 0.6.5 on jax 0.4.25, no TensorFlow; pins
# in [tool.ntkprefix.reference] of pyproject.toml; `make reference-env`, which `make test` runs first). This side
# writes an instance to an .npz, runs the script on it, and compares every implementation's NTK with ntk_matrix.

ROOT = Path(__file__).resolve().parents[1]
NT_VENV = ROOT / os.environ.get("NT_VENV", ".venv-nt")  # the Makefile's NT_VENV (exported by make)
NT_SCRIPT = ROOT / "reference" / "nt_ntk.py"
# n != d, d_out = 2 (the 2 x 2 blocks of H and the sign patterns both non-trivial), sigma != 1, m not a power of 2
SHAPE = dict(n=6, d=4, m=40, d_out=2, sigma=1.4, seed=16)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def reference_python() -> Path:
    """The reference environment's interpreter; a missing environment fails under CI and skips, saying how to create
    it, elsewhere."""
    python = NT_VENV / "bin" / "python"
    if python.is_file() and (NT_VENV / ".installed-stamp").is_file():
        return python
    message = (f"the neural-tangents reference environment {NT_VENV} is missing or incomplete: create it with "
               f"`make reference-env` (`make test` does so first)")
    if _in_ci():
        pytest.fail(message + " [CI: a missing reference environment is a failure, not a skip]", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """(instance, output of reference/nt_ntk.py) for the instance SHAPE, c_m = m."""
    python = reference_python()
    W, X, _, a = problem(**SHAPE)
    m = W.shape[1]
    folder = tmp_path_factory.mktemp("nt_reference")
    src, dst = folder / "in.npz", folder / "out.npz"
    np.savez(src, W=np.asarray(W), X=np.asarray(X), a=np.asarray(a), output_scale=np.array(float(m)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(python), str(NT_SCRIPT), str(src), str(dst)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, f"{python} {NT_SCRIPT} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    with np.load(dst) as f:
        out = {k: f[k] for k in f.files}
    return (W, X, a), out


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
    (W, X, a), out = reference_run
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


def test_missing_reference_environment_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "NT_VENV", tmp_path / "absent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make reference-env"):
        reference_python()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="make reference-env"):
        reference_python()
