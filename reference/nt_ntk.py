"""neural-tangents' empirical NTK of the stylized prefix model, for the instances in an .npz: the reference side of
the cross-check in tests/test_neural_tangents.py (issue 16). Runs in the reference environment (.venv-nt, created by
`make reference-env`), not in the project's:

    .venv-nt/bin/python reference/nt_ntk.py IN.npz OUT.npz
    .venv-nt/bin/python reference/nt_ntk.py --serve IN.npz OUT.npz     (then timing requests on standard input)
    .venv-nt/bin/python reference/nt_ntk.py --versions

IN.npz holds W (d, m), X (n, d), a (d_out, m) and output_scale (the scalar c_m). OUT.npz holds, for each
implementation name of neural_tangents.NtkImplementation (JACOBIAN_CONTRACTION, NTK_VECTOR_PRODUCTS,
STRUCTURED_DERIVATIVES, AUTO), the array neural-tangents returns for empirical_ntk_fn(trace_axes=(), vmap_axes=0)
at (X, None, W): Theta[i, j, l, l'] = <dF_l(x_i)/dW, dF_l'(x_j)/dW>, shape (n, n, d_out, d_out), without the 1/m of
H and without any reordering (the comparing test does both, in sight); plus the versions it ran with
("version:<package>") and whether TensorFlow was imported ("tensorflow_imported", False).

If IN.npz also holds H_star (N, N), F0 and Y (n, d_out), eta and steps (T,), OUT.npz also holds "predict" (T, n, d_out):
neural_tangents.predict.gradient_descent_mse's prediction at the times `steps` for gradient descent on the model
linearised at W(0), given the discrete-equivalent kernel K = -(N / eta) log(I - eta m H*) (computed here, by numpy's
eigh): nt.predict solves continuous-time gradient flow on the mean loss 1/(2N) ||f - y||^2, f(t) = y + exp(-eta K t / N)
(f0 - y), which with this K equals the discrete steps Y + (I - eta m H*)^t (F0 - Y) of kernels.ntk_linearized_outputs.

--serve (bench/ntk.py): after writing OUT.npz, each line "time REPEATS" on standard input is answered by one JSON line
on standard output, {implementation: median seconds per call}, from REPEATS interleaved rounds of the four jit-compiled
implementations (warmed up once, at start), timed by verify/timing.py, the bench's own timing code, loaded by its path.

The forward is written out here, F(W, x)_l = c_m <a_l, softmax(W^T x)> (PAPER.md section 2), rather than imported
from ntkprefix: the reference then shares no code with the library under test (not its softmax, not its matrix
products), and this environment needs nothing of the project's dependencies.
"""

import contextlib
import json
import sys
import types

# neural-tangents 0.6.5's __init__ runs `from . import experimental`, whose only content (empirical_tf) imports
# TensorFlow and tf2jax at import time; nothing used here needs it. An empty module standing in for it keeps
# TensorFlow (1.4 GB) out of this environment and the import near 1 s instead of 6.
sys.modules["neural_tangents.experimental"] = types.ModuleType("neural_tangents.experimental")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402

IMPLEMENTATIONS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES", "AUTO")


def versions() -> dict:
    import jaxlib
    import scipy

    return {"python": "%d.%d.%d" % sys.version_info[:3], "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "neural-tangents": nt.__version__}


def kernel_fns(a, output_scale: float) -> dict:
    """{implementation: jit-compiled (X, W) -> Theta (n, n, d_out, d_out)}."""
    a = jnp.asarray(a, jnp.float64)

    def apply_fn(params, x):  # x: (N, d) -> (N, d_out), row by row (vmap_axes=0 says so to neural-tangents)
        scores = jnp.matmul(x, params, precision=jax.lax.Precision.HIGHEST)  # (N, m): row i is W^T x_i
        return output_scale * jnp.matmul(jax.nn.softmax(scores, axis=-1), a.T, precision=jax.lax.Precision.HIGHEST)

    fns = {}
    for name in IMPLEMENTATIONS:
        kernel_fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0,
                                        implementation=getattr(nt.NtkImplementation, name))
        fns[name] = jax.jit(lambda X, W, kernel_fn=kernel_fn: kernel_fn(X, None, W))
    return fns


def empirical_ntks(fns: dict, W, X) -> dict:
    W, X = (jnp.asarray(v, jnp.float64) for v in (W, X))
    with contextlib.redirect_stdout(sys.stderr):  # AUTO prints its FLOP estimates (when it is traced)
        return {name: np.asarray(fn(X, W)) for name, fn in fns.items()}


def linearized_prediction(H_star, F0, Y, eta: float, m: int, steps) -> np.ndarray:
    """nt.predict.gradient_descent_mse at the times steps, given the discrete-equivalent kernel (module doc)."""
    n, d_out = F0.shape
    N = n * d_out
    evals, evecs = np.linalg.eigh(eta * m * np.asarray(H_star, np.float64))
    if not (evals[-1] < 1 and evals[0] > -1e-12):
        raise ValueError(f"need 0 <= eta m lambda(H*) < 1, got {evals[0]:.3g} .. {evals[-1]:.3g}")
    K = -(N / eta) * (evecs * np.log1p(-np.clip(evals, 0.0, None))) @ evecs.T
    predict = nt.predict.gradient_descent_mse(jnp.asarray(K), jnp.asarray(Y).reshape(N, 1), learning_rate=eta)
    return np.asarray(predict(jnp.asarray(steps, jnp.float64), jnp.asarray(F0).reshape(N, 1))).reshape(-1, n, d_out)


def _timing_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "verify" / "timing.py"
    spec = importlib.util.spec_from_file_location("bench_timing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve(fns: dict, W, X) -> None:
    timing = _timing_module()
    W, X = (jnp.asarray(v, jnp.float64) for v in (W, X))
    calls = [(fns[name], (X, W)) for name in IMPLEMENTATIONS]
    with contextlib.redirect_stdout(sys.stderr):
        timing.interleaved_samples(calls, repeats=0, warmup=1)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        word, repeats = line.split()
        assert word == "time", line
        with contextlib.redirect_stdout(sys.stderr):
            medians = timing.median_times(calls, repeats=int(repeats), warmup=0)
        print(json.dumps(dict(zip(IMPLEMENTATIONS, medians))), flush=True)


def main(argv) -> int:
    if argv == ["--versions"]:
        print(" ".join(f"{k}={v}" for k, v in versions().items()))
        return 0
    serving = argv[:1] == ["--serve"]
    if serving:
        argv = argv[1:]
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = argv
    with np.load(src) as f:
        inputs = {k: f[k] for k in f.files}
    W, X = inputs["W"], inputs["X"]
    fns = kernel_fns(inputs["a"], float(inputs["output_scale"]))
    out = empirical_ntks(fns, W, X)
    if "H_star" in inputs:
        out["predict"] = linearized_prediction(inputs["H_star"], inputs["F0"], inputs["Y"], float(inputs["eta"]),
                                               W.shape[1], inputs["steps"])
    meta = {f"version:{k}": np.array(v) for k, v in versions().items()}
    np.savez(dst, **out, **meta, tensorflow_imported=np.array("tensorflow" in sys.modules))
    if serving:
        serve(fns, W, X)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
