"""Wall-clock timing of compiled JAX functions: warm up, then the median of repeats, calls interleaved."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import jax


def _once(fn: Callable, args: Sequence) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def median_times(calls: Sequence[tuple[Callable, Sequence]], *, repeats: int = 7, warmup: int = 2) -> list[float]:
    """Median seconds per call of each (fn, args), measured side by side: each round runs every call once,
    so load on a shared machine affects all of them alike. fn should be jit-compiled; warm-up calls compile."""
    for fn, args in calls:
        for _ in range(warmup):
            _once(fn, args)
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for i, (fn, args) in enumerate(calls):
            samples[i].append(_once(fn, args))
    return [statistics.median(s) for s in samples]
