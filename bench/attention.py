"""Speed and memory of the attention core, measured side by side in one run; prints every ratio beside its target.

Every ratio is measured side by side: a run interleaves the calls (each round runs every call once) and takes
medians (verify/timing.py::median_times); each comparison is repeated over --runs runs (at least 5), and the median
ratio over the runs is printed beside its target with the spread (min..max over the runs) and the load average
before and after (the ratio against torch moves with the host's load: its two OpenMP threads wait for each other).

1. Exact prefix attention (Algorithm 1), float32, d = 32, L = 256, m = 2^16 and 2^20: ntkprefix.prefix_attention
   against torch 2.13's CPU scaled_dot_product_attention and jax.nn.dot_product_attention (implementation='xla',
   layout (B, T, N, H) = (1, m + L, 1, d)) on the same inputs (and a jnp softmax over all scores), jit-compiled.
   Target: at least as fast as torch, and printed beside it the ratio against jax's. Also printed: its agreement with a
   float64 reference against the float32 rounding bound, and its compiled working memory (XLA's temporary buffers:
   O(L chunk), independent of m).
2. NTK-Attention against prefix attention at m = 2^16, beside the ratio of their operation counts (no target: the
   issue sets none; Figure 3's claim is checked by `python -m verify fig3`).
3. reduce_prefix, m = 2^22, d = d_v = 16, g = 2 (r = 153), float32 and float64, against the GEMM-only lower bound:
   the fastest of (a) the GEMMs phi^T V and phi^T 1 on a precomputed phi chunk, in the same compiled loop, (b) the
   one GEMM phi^T [V, 1] in that loop, (c) numpy's GEMM phi^T [V, 1] over a precomputed phi. Target: within 1.5x.
   Also its compiled working memory (O(chunk r)), and what the time beyond the GEMMs is spent on (the feature
   evaluation and its memory traffic: reduce_prefix minus the bound, as a share of the bound).
4. Streams of m = 2^24 rows generated chunk by chunk (the prefix never exists whole), in a fresh process each so
   the peak memory is the stream's own: reduce_prefix_stream (d = 16, g = 2, float64) and prefix_attention_stream
   (d = 32, L = 256, float32). Targets: < 60 s, < 2 GiB.

Usage: python bench/attention.py [--runs 5] [--repeats 5] [--log2-m-stream 24] [--skip-stream]
torch comes from the optional extra: pip install -e '.[bench]' (CPU build); without it section 1 says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _temp_bytes(fn, *args) -> int:
    """XLA's temporary buffers of the compiled function (its working memory beyond inputs and outputs)."""
    import jax

    return int(jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes)


def _load() -> str:
    from verify.timing import load_summary

    return load_summary()


def _runs(calls, runs: int, repeats: int, warmup: int = 2) -> list[list[float]]:
    """Median seconds per call of each (fn, args) in each of ``runs`` runs of ``repeats`` interleaved rounds:
    [run][call]. The first run warms up (compiles)."""
    from verify.timing import median_times

    return [median_times(calls, repeats=repeats, warmup=warmup if i == 0 else 0) for i in range(runs)]


def _spread(ratios: list[float]) -> str:
    import statistics

    return f"{statistics.median(ratios):.2f}x (median of {len(ratios)} runs; spread {min(ratios):.2f}..{max(ratios):.2f}x)"


def _loads(before: tuple[float, float, float]) -> str:
    after = os.getloadavg()
    return f"load average {before[0]:.2f} -> {after[0]:.2f} (1 min) on {os.cpu_count()} cores"


def exact_attention_bench(runs: int, repeats: int) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ntkprefix as nk
    from verify.instruments import gamma

    try:
        import torch
    except ImportError:
        torch = None
    import statistics

    d, L = 32, 256
    print(f"[1] exact prefix attention, float32, d={d}, L={L}: {runs} runs, each the medians of interleaved calls "
          f"({_load()})")
    for log2_m in (16, 20):
        m = 2**log2_m
        k_x, k_p, k_w = jax.random.split(jax.random.PRNGKey(log2_m), 3)
        X = jax.random.normal(k_x, (L, d), jnp.float32)
        P = jax.random.normal(k_p, (m, d), jnp.float32)
        W = jax.random.normal(k_w, (3, d, d), jnp.float32) / math.sqrt(d)  # a Python float keeps float32
        inst = nk.project(X, P, W[0], W[1], W[2])
        ours = jax.jit(nk.prefix_attention)

        @jax.jit
        def dense(Q, K, V, K_P, V_P):  # a jnp softmax over all m + L scores at once: memory O(L m)
            scores = jnp.concatenate([K_P, K]) @ Q.T / math.sqrt(d)
            return jax.nn.softmax(scores, axis=0).T @ jnp.concatenate([V_P, V])

        # jax's own attention on the same inputs, layout (B, T, N, H): one batch, one head; default scale 1/sqrt(d)
        jax_attention = jax.jit(lambda q, k, v: jax.nn.dot_product_attention(q, k, v, implementation="xla"))
        q4, k4, v4 = (x[None, :, None, :] for x in (inst.Q, jnp.concatenate([inst.K_P, inst.K]),
                                                     jnp.concatenate([inst.V_P, inst.V])))
        calls = [(ours, tuple(inst)), (dense, tuple(inst)), (jax_attention, (q4, k4, v4))]
        if torch is not None:
            tq = torch.from_numpy(np.array(inst.Q))[None, None]
            tk = torch.from_numpy(np.array(jnp.concatenate([inst.K_P, inst.K])))[None, None]
            tv = torch.from_numpy(np.array(jnp.concatenate([inst.V_P, inst.V])))[None, None]

            def sdpa():
                with torch.no_grad():
                    return torch.nn.functional.scaled_dot_product_attention(tq, tk, tv)

            calls.append((sdpa, ()))
        before = os.getloadavg()
        rounds = repeats if m <= 2**16 else max(1, repeats // 5)  # 2^20: jax's attention alone takes about 10 s a call
        per_run = _runs(calls, runs, rounds)
        times = [statistics.median(run[i] for run in per_run) for i in range(len(calls))]
        loads = _loads(before)
        jax_out = np.asarray(jax_attention(q4, k4, v4))[0, :, 0, :]
        out = np.asarray(ours(*inst), np.float64)
        reference = np.asarray(nk.prefix_attention(*(jnp.asarray(x, jnp.float64) for x in inst)))
        error = float(np.max(np.abs(out - reference)) / np.max(np.abs(reference)))
        jax_error = float(np.max(np.abs(jax_out - reference)) / np.max(np.abs(reference)))
        tolerance = 4 * gamma(m + L + d, jnp.float32)
        temp = _temp_bytes(nk.prefix_attention, *inst)
        print(f"    m = 2^{log2_m} ({runs} runs of {rounds} interleaved rounds; {loads}):")
        print(f"      prefix_attention {times[0] * 1e3:9.2f} ms | jnp softmax over all scores {times[1] * 1e3:9.2f} ms "
              f"(ours {_spread([run[1] / run[0] for run in per_run])} its speed)")
        print(f"      jax {jax.__version__} jax.nn.dot_product_attention (xla) {times[2] * 1e3:9.2f} ms: ours is "
              f"{_spread([run[2] / run[0] for run in per_run])} its speed (its error against float64 {jax_error:.1e})")
        if torch is not None:
            ratios = [run[3] / run[0] for run in per_run]
            ratio = statistics.median(ratios)
            print(f"      torch {torch.__version__} CPU scaled_dot_product_attention {times[3] * 1e3:9.2f} ms: ours is "
                  f"{_spread(ratios)} torch's speed (target >= 1: {_met(ratio >= 1)})")
        else:
            print("      torch not installed (pip install -e '.[bench]'): the torch comparison is skipped")
        print(f"      exact: relative error against float64 {error:.2e} <= 4 gamma_N (float32, N = m + L + d) = "
              f"{tolerance:.2e}: {_met(error <= tolerance)}; working memory {temp / 2**20:.1f} MiB (XLA temporaries; "
              f"inputs {(inst.K_P.nbytes + inst.V_P.nbytes) / 2**20:.0f} MiB)")


def ntk_ratio_bench(repeats: int) -> None:
    import jax
    import jax.numpy as jnp

    import ntkprefix as nk
    from verify.timing import median_times

    d, L, m = 32, 256, 2**16
    k_x, k_p, k_w = jax.random.split(jax.random.PRNGKey(0), 3)
    X = jax.random.normal(k_x, (L, d), jnp.float32)
    P = jax.random.normal(k_p, (m, d), jnp.float32)
    W = jax.random.normal(k_w, (3, d, d), jnp.float32) / math.sqrt(d)  # a Python float keeps float32
    inst = nk.project(X, P, W[0], W[1], W[2])
    calls = [(jax.jit(nk.prefix_attention), tuple(inst))]
    maps = [nk.elu_feature_map(d), nk.taylor_feature_map(d, 2)]
    for phi in maps:
        Z, k = nk.reduce_prefix(inst.K_P, inst.V_P, phi)
        calls.append((jax.jit(lambda Q, K, V, Z, k, phi=phi: nk.ntk_attention(Q, K, V, Z, k, phi)), (inst.Q, inst.K, inst.V, Z, k)))
    times = median_times(calls, repeats=repeats, warmup=3)
    print(f"[2] NTK-Attention against prefix attention, d={d}, L={L}, m={m}, float32 ({_load()})")
    print(f"    prefix_attention                {times[0] * 1e3:9.3f} ms")
    for phi, t in zip(maps, times[1:]):
        ratio = times[0] / t
        ideal = (m + L) / (L + phi.r)  # multiply-adds per query: (m + L) d against (L + r) d (Algorithms 1 and 2)
        print(f"    ntk_attention {phi.label:18s}{t * 1e3:9.3f} ms   ratio {ratio:7.1f}x  (operation-count ratio "
              f"(m + L)/(L + r) = {ideal:.1f}x)")


def reduction_bench(runs: int, repeats: int, log2_m: int = 22) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    import ntkprefix as nk
    from ntkprefix.reduction import default_chunk_size
    import statistics

    d, g, m = 16, 2, 2**log2_m
    phi = nk.taylor_feature_map(d, g)
    chunk = default_chunk_size(phi)
    highest = jax.lax.Precision.HIGHEST
    print(f"[3] reduce_prefix, m = 2^{log2_m}, d = d_v = {d}, g = {g} (r = {phi.r}), chunks of {chunk} rows, {runs} runs "
          f"of {repeats} interleaved rounds ({_load()})")
    for dtype in (jnp.float32, jnp.float64):
        key = jax.random.PRNGKey(0)
        K = jax.random.normal(key, (m, d), dtype) / 2
        V = jax.random.normal(jax.random.fold_in(key, 1), (m, d), dtype)
        features_T = phi.transposed(K[:chunk].T)  # one chunk's features, precomputed: the GEMMs alone below

        def gemm_loop(split: bool):
            @jax.jit
            def run(V, features_T):
                def body(i, sums):
                    V_c = jax.lax.dynamic_slice_in_dim(V, i * chunk, chunk)
                    if split:  # phi^T V and phi^T 1: the fastest way to the same numbers
                        return (sums[0] + jnp.matmul(features_T, V_c, precision=highest),
                                sums[1] + jnp.matmul(features_T, jnp.ones((chunk,), dtype), precision=highest))
                    V_one = jnp.concatenate([V_c, jnp.ones((chunk, 1), dtype)], axis=1)
                    return sums[0] + jnp.matmul(features_T, V_one, precision=highest), sums[1]
                width = d if split else d + 1
                return jax.lax.fori_loop(0, m // chunk, body, (jnp.zeros((phi.r, width), dtype), jnp.zeros((phi.r,), dtype)))
            return run

        phi_block = np.asarray(phi(K[: 2**16]))  # numpy: phi^T [V, 1] over 2^16-row blocks of a precomputed phi
        V_one = np.concatenate([np.asarray(V[: 2**16]), np.ones((2**16, 1), phi_block.dtype)], axis=1)

        def numpy_gemm():
            total = 0.0
            for _ in range(m // 2**16):
                total = total + phi_block.T @ V_one
            return jnp.asarray(total)

        calls = [(lambda K, V: nk.reduce_prefix(K, V, phi), (K, V)), (gemm_loop(True), (V, features_T)),
                 (gemm_loop(False), (V, features_T)), (numpy_gemm, ())]
        before = os.getloadavg()
        per_run = _runs(calls, runs, repeats, warmup=1)
        loads = _loads(before)
        times = [statistics.median(run[i] for run in per_run) for i in range(len(calls))]
        ratios = [run[0] / min(run[1:]) for run in per_run]  # each run against its own fastest GEMM-only bound
        ratio = statistics.median(ratios)
        bound = min(times[1:])
        temp = _temp_bytes(lambda K, V: nk.reduce_prefix(K, V, phi), K, V)
        name = np.dtype(dtype).name
        print(f"    {name}: reduce_prefix {times[0]:.3f} s | GEMM-only: phi^T V + phi^T 1 {times[1]:.3f} s, "
              f"phi^T [V, 1] {times[2]:.3f} s, numpy phi^T [V, 1] {times[3]:.3f} s")
        print(f"      reduce_prefix is {_spread(ratios)} the GEMM-only lower bound (target <= 1.5x: {_met(ratio <= 1.5)}; "
              f"{loads})")
        print(f"      beyond the GEMMs (the feature evaluation phi(K_c)^T and its memory traffic): {times[0] - bound:.3f} s = "
              f"{(times[0] - bound) / bound:.0%} of the GEMM time; {times[0] / times[2]:.2f}x the one GEMM phi^T [V, 1]; "
              f"working memory {temp / 2**20:.1f} MiB (O(chunk r); the prefix itself {(K.nbytes + V.nbytes) / 2**20:.0f} MiB)")


def stream_worker(kind: str, log2_m: int) -> None:
    """Runs in its own process; prints one JSON line."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import ntkprefix as nk

    chunk, m = 65536, 2**log2_m
    if kind == "reduce":
        d, dtype = 16, jnp.float64
        phi = nk.taylor_feature_map(d, 2)
    else:
        d, L, dtype = 32, 256, jnp.float32
        Q, K, V = (jax.random.normal(jax.random.PRNGKey(i), (L, d), dtype) for i in range(3))
    make = jax.jit(lambda i: tuple(jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(1), i), (2, chunk, d), dtype)))

    def chunks(n):
        for i in range(n):
            yield make(i)

    if kind == "reduce":  # warm up (compile) on one chunk, then time the whole stream
        nk.reduce_prefix_stream(chunks(1), phi, d_v=d, dtype=dtype)
    else:
        nk.prefix_attention_stream(Q, K, V, chunks(1))
    baseline_kib = _peak_rss_kib()
    start = time.perf_counter()
    if kind == "reduce":
        out = nk.reduce_prefix_stream(chunks(m // chunk), phi, d_v=d, dtype=dtype).Z
    else:
        out = nk.prefix_attention_stream(Q, K, V, chunks(m // chunk))
    jax.block_until_ready(out)
    elapsed = time.perf_counter() - start
    peak_kib = _peak_rss_kib()
    print(json.dumps({"m": m, "d": d, "chunk": chunk, "seconds": elapsed, "peak_rss_mib": peak_kib / 1024,
                      "rss_before_stream_mib": baseline_kib / 1024, "finite": bool(jnp.all(jnp.isfinite(out)))}))


def _peak_rss_kib() -> int:
    """This process's own peak resident memory (VmHWM of /proc/self/status, KiB). Not getrusage's ru_maxrss: Linux
    carries the high-water mark of the forked parent across exec into it, so a worker started by a parent holding
    gigabytes would report the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the best available


def stream_bench(log2_m: int) -> None:
    print(f"[4] streams of m = 2^{log2_m} rows generated chunk by chunk, each in a fresh process ({_load()})")
    for kind, what in (("reduce", "reduce_prefix_stream, d = 16, g = 2 (r = 153), float64"),
                       ("attention", "prefix_attention_stream, d = 32, L = 256, float32")):
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--stream-worker", kind, "--log2-m-stream",
                               str(log2_m)], capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"    {what}, chunks of {r['chunk']}: {r['seconds']:.1f} s (target < 60 s: {_met(r['seconds'] < 60)}); "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB (target < 2048 MiB: {_met(r['peak_rss_mib'] < 2048)}; "
              f"{r['rss_before_stream_mib']:.0f} MiB before streaming); finite: {r['finite']}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log2-m-stream", type=int, default=24)
    parser.add_argument("--runs", type=int, default=5, help="runs per comparison (the spread is over them)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per run (m = 2^16; fewer at larger m)")
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--stream-worker", choices=("reduce", "attention"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_worker:
        stream_worker(args.stream_worker, args.log2_m_stream)
        return 0
    import jax
    import jaxlib

    jax.config.update("jax_enable_x64", True)  # for the float64 references; the timed float32 paths stay float32
    print(f"bench/attention.py on {jax.devices()} ({os.cpu_count()} cores), jax {jax.__version__}, jaxlib "
          f"{jaxlib.__version__}")
    exact_attention_bench(args.runs, args.repeats)
    ntk_ratio_bench(3 * args.repeats)
    reduction_bench(args.runs, max(3, args.repeats // 2))
    if not args.skip_stream:
        stream_bench(args.log2_m_stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
