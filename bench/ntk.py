"""Closed-form NTK against neural-tangents and jax.jacobian, measured side by side in one run; prints ratios.

n = 32 inputs, d = 8 (d_out = d, as in the paper), m = 2^14 prefix keys, float64. Every route is jit-compiled,
warmed up, and timed as the median of interleaved calls. Target: the closed form at least 20x faster than the
fastest neural-tangents implementation. The largest disagreement (relative Frobenius) of each route with the closed form is printed.

Usage: python bench/ntk.py [--log2-m 14] [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log2-m", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from verify.timing import median_times
    from ntkprefix import kernels, model, sampling

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
    for impl in kernels.NT_IMPLEMENTATIONS:
        routes[f"neural-tangents {impl}"] = jax.jit(
            lambda W, X, a, impl=impl: kernels.ntk_matrix_neural_tangents(W, X, a, implementation=impl)
        )
    names = list(routes)
    times = median_times([(routes[k], (W, X, a)) for k in names], repeats=args.repeats, warmup=1)
    reference = routes[names[0]](W, X, a)
    print(f"bench/ntk.py: n={n}, d=d_out={d}, m={m}, float64, NTK {n * d}x{n * d}, median of {args.repeats} interleaved calls, "
          f"{os.cpu_count()} cores, jax {jax.__version__}")
    nt_times = []
    for name, t in zip(names, times):
        H = routes[name](W, X, a)
        disagreement = float(jnp.linalg.norm(H - reference) / jnp.linalg.norm(reference))
        ratio = t / times[0]
        if name.startswith("neural-tangents"):
            nt_times.append(t)
        print(f"  {name:44s} {t * 1e3:10.1f} ms   {ratio:8.1f}x the closed form   rel. Frobenius disagreement {disagreement:.2e}")
    fastest_nt = min(nt_times)
    default_nt = times[names.index("neural-tangents JACOBIAN_CONTRACTION")]  # empirical_ntk_fn's default
    one, five, _ = os.getloadavg()
    print(f"load average {one:.2f} (1 min), {five:.2f} (5 min)")
    print(f"closed form vs neural-tangents' default (JACOBIAN_CONTRACTION): {default_nt / times[0]:.1f}x")
    ratio = fastest_nt / times[0]
    print(f"closed form vs the fastest neural-tangents implementation: {ratio:.1f}x (target >= 20x: "
          f"{'met' if ratio >= 20 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
