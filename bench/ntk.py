"""Closed-form NTK against neural-tangents and jax.jacobian, measured side by side; prints every ratio beside its target.

n = 32 inputs, d = 8 (d_out = d, as in the paper), m = 2^14 prefix keys, float64, one instance written to an .npz.
The closed form (kernels.ntk_matrix, both methods) and the jax.jacobian route run here; neural-tangents 0.6.5, which
needs jax 0.4.25, runs in the reference environment (.venv-nt, `make reference-env`): reference/nt_ntk.py --serve
compiles its four implementations once on the same instance and then answers timing requests. Pairing: each of
--runs rounds times this side's routes (median of --repeats interleaved calls, verify/timing.py) and, straight after,
the reference's four implementations (the same timing code, the same number of calls); a round's ratio is the fastest
neural-tangents implementation over the closed form. Printed: the median ratio over rounds and its spread (min..max),
beside the target (at least 20x), with the load average; and every route's disagreement with the closed form.

Usage: python bench/ntk.py [--log2-m 14] [--repeats 9] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _load() -> str:
    from verify.timing import load_summary

    return load_summary()


def _reference_python() -> Path:
    venv = ROOT / os.environ.get("NT_VENV", ".venv-nt")
    python = venv / "bin" / "python"
    if not (python.is_file() and (venv / ".installed-stamp").is_file()):
        sys.exit(f"bench/ntk.py: the neural-tangents reference environment {venv} is missing: `make reference-env`")
    return python


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log2-m", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=9, help="interleaved calls per route per round")
    parser.add_argument("--runs", type=int, default=5, help="rounds; the ratio is reported as their median and spread")
    args = parser.parse_args()
    if args.runs < 1 or args.repeats < 1:
        parser.error("--runs and --repeats must be at least 1")
    reference = _reference_python()

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from ntkprefix import kernels, model, sampling
    from verify.timing import median_times

    n, d, m = 32, 8, 2**args.log2_m
    X, _ = sampling.section3_data(jax.random.PRNGKey(0), n=n, d=d, d_out=d)
    k_w, k_a = jax.random.split(jax.random.PRNGKey(1))
    W = model.init_prefix_weights(k_w, d, m, 1.0)
    a = model.random_signs(k_a, d, m)

    # ntk_matrix is called as a user calls it: its default groups the neurons by sign pattern on the host, which a
    # jax.jit around it would prevent (a would be traced); its numerical work is jit-compiled inside.
    routes = {"closed form, ntk_matrix (sign patterns)": kernels.ntk_matrix,
              "closed form, ntk_matrix(method='dense')": jax.jit(lambda W, X, a: kernels.ntk_matrix(W, X, a, method="dense")),
              "jax.jacobian, contracted": jax.jit(kernels.ntk_matrix_autodiff)}
    names = list(routes)
    closed = np.asarray(routes[names[0]](W, X, a))

    with tempfile.TemporaryDirectory() as folder:
        src, dst = Path(folder) / "in.npz", Path(folder) / "out.npz"
        np.savez(src, W=np.asarray(W), X=np.asarray(X), a=np.asarray(a), output_scale=np.array(float(m)))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        log = open(Path(folder) / "reference.log", "w+")  # its stderr: AUTO's FLOP estimates, or why it stopped
        server = subprocess.Popen([str(reference), str(ROOT / "reference" / "nt_ntk.py"), "--serve", str(src), str(dst)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=ROOT)
        try:
            ready = server.stdout.readline()
            if not ready:
                log.seek(0)
                sys.exit(f"bench/ntk.py: {reference} reference/nt_ntk.py --serve stopped (exit {server.wait()}):\n"
                         f"{log.read()[-4000:]}")
            assert json.loads(ready) == {"ready": True}, ready
            with np.load(dst) as f:
                nt_kernels = {k: f[k] for k in f.files if not k.startswith("version:") and k != "tensorflow_imported"}
                nt_versions = {k.split(":", 1)[1]: str(f[k]) for k in f.files if k.startswith("version:")}
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(median_times([(routes[k], (W, X, a)) for k in names], repeats=args.repeats, warmup=1))
                server.stdin.write(f"time {args.repeats}\n")
                server.stdin.flush()
                theirs.append(json.loads(server.stdout.readline()))
        finally:
            server.stdin.close()
            server.wait(timeout=60)
            log.close()

    print(f"bench/ntk.py: n={n}, d=d_out={d}, m={m}, float64, NTK {n * d}x{n * d}; {args.runs} rounds, each the median "
          f"of {args.repeats} interleaved calls per route; this side jax {jax.__version__}, neural-tangents "
          f"{nt_versions['neural-tangents']} on jax {nt_versions['jax']} (.venv-nt); {_load()}")
    implementations = list(theirs[0])
    for i, name in enumerate(names):
        H = np.asarray(routes[name](W, X, a))
        times = [run[i] for run in ours]
        print(f"  {name:44s} {statistics.median(times) * 1e3:10.2f} ms (rounds {min(times) * 1e3:.2f}..{max(times) * 1e3:.2f})"
              f"   rel. Frobenius disagreement {np.linalg.norm(H - closed) / np.linalg.norm(closed):.2e}")
    for impl in implementations:
        H = nt_kernels[impl].transpose(0, 2, 1, 3).reshape(n * d, n * d) / m  # rows (i, l) as in ntk_matrix
        times = [run[impl] for run in theirs]
        print(f"  {'neural-tangents ' + impl:44s} {statistics.median(times) * 1e3:10.2f} ms (rounds "
              f"{min(times) * 1e3:.2f}..{max(times) * 1e3:.2f})   rel. Frobenius disagreement "
              f"{np.linalg.norm(H - closed) / np.linalg.norm(closed):.2e}")

    def ratios(impls):
        return [min(run[k] for k in impls) / mine[0] for run, mine in zip(theirs, ours)]

    for label, impls in (("neural-tangents' default (JACOBIAN_CONTRACTION)", ["JACOBIAN_CONTRACTION"]),
                         ("the fastest neural-tangents implementation", implementations)):
        r = ratios(impls)
        line = (f"closed form vs {label}: {statistics.median(r):.1f}x (median of {args.runs} rounds; spread "
                f"{min(r):.1f}..{max(r):.1f}x)")
        if len(impls) > 1:
            line += f"; target >= 20x: {'met' if statistics.median(r) >= 20 else 'NOT met'}"
        print(line)
    print(f"after the run: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
