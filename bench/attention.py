"""Speed and memory of the attention core, measured side by side in one run; prints ratios.

1. prefix_attention / ntk_attention time at d = 32, L = 256, m = 2^16, float32, both jit-compiled, calls
   interleaved (targets: >= 100x with r = d (ELU+1), >= 20x with Taylor g = 2, r = C(34, 2) = 561).
2. Streaming m = 2^24 prefix rows (d = 16, g = 2, float64) through reduce_prefix_stream, rows generated chunk by
   chunk so the prefix never exists whole: time and peak resident memory, in a fresh process so the peak is the
   stream's own (targets: < 60 s on 2 cores, < 2 GiB).

Usage: python bench/attention.py [--log2-m-stream 24]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def ratio_bench() -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ntkprefix as nk
    from figures.timing import median_times

    d, L, m = 32, 256, 2**16
    key = jax.random.PRNGKey(0)
    k_x, k_p, k_w = jax.random.split(key, 3)
    X = jax.random.normal(k_x, (L, d), jnp.float32)
    P = jax.random.normal(k_p, (m, d), jnp.float32)
    W = jax.random.normal(k_w, (3, d, d), jnp.float32) / np.sqrt(d)
    inst = nk.project(X, P, W[0], W[1], W[2])
    prefix_fn = jax.jit(nk.prefix_attention)
    calls = [(prefix_fn, (inst.Q, inst.K, inst.V, inst.K_P, inst.V_P))]
    maps = [nk.elu_feature_map(d), nk.taylor_feature_map(d, 2)]
    for phi in maps:
        Z, k = nk.reduce_prefix(inst.K_P, inst.V_P, phi)
        calls.append((jax.jit(lambda Q, K, V, Z, k, phi=phi: nk.ntk_attention(Q, K, V, Z, k, phi)), (inst.Q, inst.K, inst.V, Z, k)))
    times = median_times(calls, repeats=15, warmup=3)
    print(f"[1] d={d}, L={L}, m={m}, float32, median of 15 interleaved calls")
    print(f"    prefix_attention                {times[0] * 1e3:9.3f} ms")
    for phi, t, target in zip(maps, times[1:], (100, 20)):
        ratio = times[0] / t
        print(
            f"    ntk_attention {phi.label:18s}{t * 1e3:9.3f} ms   ratio {ratio:7.1f}x  "
            f"(target >= {target}x: {'met' if ratio >= target else 'NOT met'})"
        )


def stream_worker(log2_m: int) -> None:
    """Runs in its own process; prints one JSON line."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import ntkprefix as nk

    d, g, chunk = 16, 2, 65536
    phi = nk.taylor_feature_map(d, g)
    m = 2**log2_m
    n_chunks = m // chunk
    make = jax.jit(lambda i: tuple(jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(1), i), (2, chunk, d), jnp.float64)))

    def chunks():
        for i in range(n_chunks):
            K_rows, V_rows = make(i)
            yield K_rows, V_rows

    # Warm up (compile) on one chunk, then time the whole stream.
    nk.reduce_prefix_stream(iter([make(0)]), phi, d_v=d)
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    sums = nk.reduce_prefix_stream(chunks(), phi, d_v=d)
    jax.block_until_ready(sums.Z)
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"m": sums.m, "d": d, "g": g, "r": phi.r, "chunk": chunk, "seconds": elapsed,
                      "peak_rss_mib": peak_kib / 1024, "rss_before_stream_mib": baseline_kib / 1024,
                      "finite": bool(jnp.all(jnp.isfinite(sums.Z)))}))


def stream_bench(log2_m: int) -> None:
    proc = subprocess.run(
        [sys.executable, __file__, "--stream-worker", "--log2-m-stream", str(log2_m)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[2] reduce_prefix_stream: m = 2^{log2_m} = {r['m']} rows, d={r['d']}, g={r['g']} (r={r['r']}), float64, "
          f"chunks of {r['chunk']}")
    print(f"    time {r['seconds']:.1f} s (target < 60 s: {'met' if r['seconds'] < 60 else 'NOT met'}); "
          f"peak RSS {r['peak_rss_mib']:.0f} MiB (target < 2048 MiB: {'met' if r['peak_rss_mib'] < 2048 else 'NOT met'}; "
          f"{r['rss_before_stream_mib']:.0f} MiB before streaming); sums finite: {r['finite']}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log2-m-stream", type=int, default=24)
    parser.add_argument("--stream-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_worker:
        stream_worker(args.log2_m_stream)
        return 0
    print(f"bench/attention.py on {os.cpu_count()} cores")
    ratio_bench()
    stream_bench(args.log2_m_stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
