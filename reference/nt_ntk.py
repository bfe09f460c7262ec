"""neural-tangents' empirical NTK of the stylized prefix model, for the instances in an .npz: the reference side of
the cross-check in tests/test_neural_tangents.py (issue 16). Runs in the reference environment (.venv-nt, created by
`make reference-env`), not in the project's:

    .venv-nt/bin/python reference/nt_ntk.py IN.npz OUT.npz
    .venv-nt/bin/python reference/nt_ntk.py --versions

IN.npz holds W (d, m), X (n, d), a (d_out, m) and output_scale (the scalar c_m). OUT.npz holds, for each
implementation name of neural_tangents.NtkImplementation (JACOBIAN_CONTRACTION, NTK_VECTOR_PRODUCTS,
STRUCTURED_DERIVATIVES, AUTO), the array neural-tangents returns for empirical_ntk_fn(trace_axes=(), vmap_axes=0)
at (X, None, W): Theta[i, j, l, l'] = <dF_l(x_i)/dW, dF_l'(x_j)/dW>, shape (n, n, d_out, d_out), without the 1/m of
H and without any reordering (the comparing test does both, in sight); plus the versions it ran with
("version:<package>") and whether TensorFlow was imported ("tensorflow_imported", False).

The forward is written out here, F(W, x)_l = c_m <a_l, softmax(W^T x)> (PAPER.md section 2), rather than imported
from ntkprefix: the reference then shares no code with the library under test (not its softmax, not its matrix
products), and this environment needs nothing of the project's dependencies.
"""

import contextlib
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


def empirical_ntks(W, X, a, output_scale: float) -> dict:
    W, X, a = (jnp.asarray(v, jnp.float64) for v in (W, X, a))

    def apply_fn(params, x):  # x: (N, d) -> (N, d_out), row by row (vmap_axes=0 says so to neural-tangents)
        scores = jnp.matmul(x, params, precision=jax.lax.Precision.HIGHEST)  # (N, m): row i is W^T x_i
        return output_scale * jnp.matmul(jax.nn.softmax(scores, axis=-1), a.T, precision=jax.lax.Precision.HIGHEST)

    out = {}
    for name in IMPLEMENTATIONS:
        kernel_fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0,
                                        implementation=getattr(nt.NtkImplementation, name))
        with contextlib.redirect_stdout(sys.stderr):  # AUTO prints its FLOP estimates
            out[name] = np.asarray(kernel_fn(X, None, W))
    return out


def main(argv) -> int:
    if argv == ["--versions"]:
        print(" ".join(f"{k}={v}" for k, v in versions().items()))
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = argv
    with np.load(src) as f:
        W, X, a, output_scale = f["W"], f["X"], f["a"], float(f["output_scale"])
    kernels = empirical_ntks(W, X, a, output_scale)
    meta = {f"version:{k}": np.array(v) for k, v in versions().items()}
    np.savez(dst, **kernels, **meta, tensorflow_imported=np.array("tensorflow" in sys.modules))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
