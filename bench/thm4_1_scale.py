"""How far the growing prefix of `verify thm4_1` gets in a given time: the extreme seed of the fixed-d sweep, streamed
chunk by chunk exactly as the check does it (verify/checks/thm4_1.py::_measure_block: exact reference, the Taylor
reduction at the top degree of the target, every grid degree and the schedule measured at every m = 2^k), printing
the elapsed time at each m and the largest m reached within each budget.

The top degree is g(2^target) of the check's schedule, as `--set extreme_max_log2_m=TARGET` would use: a larger
target costs more per row (r = C(d + g, g)).

Usage: python bench/thm4_1_scale.py [--target 26] [--budgets 60,600]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Done(Exception):
    pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", type=int, default=26, help="extreme_max_log2_m of the run")
    parser.add_argument("--budgets", default="60,600", help="seconds, comma-separated")
    args = parser.parse_args()
    budgets = sorted(float(b) for b in args.budgets.split(","))
    import jax

    jax.config.update("jax_enable_x64", True)
    from ntkprefix import features
    from verify.checks import thm4_1

    s = thm4_1.Settings(extreme_max_log2_m=args.target)
    ms = s.ms("fixed_d", "extreme")
    g = s.scheduled_degree(ms[-1], s.d)
    one, five, _ = os.getloadavg()
    print(f"thm4_1 growing prefix, extreme family, d = {s.d}, top degree g(2^{args.target}) = {g} "
          f"(r = {features.taylor_feature_dimension(s.d, g)}), chunks of {s.stream_chunk_rows} rows, load average "
          f"{one:.2f}/{five:.2f} on {os.cpu_count()} cores")
    reached = []
    start = time.perf_counter()

    def on_m(m):
        elapsed = time.perf_counter() - start
        reached.append((m, elapsed))
        print(f"  m = 2^{m.bit_length() - 1:2d} = {m:>10d} at {elapsed:7.1f} s", flush=True)
        if elapsed > budgets[-1]:
            raise _Done

    key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(0), 0), 1000), s.d)
    try:
        thm4_1._measure_block(s, "fixed_d", "extreme", [key], s.d, ms, on_m=on_m)
    except _Done:
        pass
    for budget in budgets:
        within = [m for m, t in reached if t <= budget]
        print(f"largest m within {budget:.0f} s: " + (f"2^{within[-1].bit_length() - 1} = {within[-1]}" if within else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
