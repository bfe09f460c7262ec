"""Wall-clock timing of compiled JAX functions: warm up, then interleaved repeats, summarised by robust statistics.

Interleaving (each round runs every call once) means that load from other processes on a shared machine falls on
all the calls of a round alike; medians (not means) keep one slow or one lucky round from moving a figure.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import Callable, Sequence

import jax

__all__ = ["interleaved_samples", "median_times", "seconds_per_call", "calls_for", "load_summary"]


def _once(fn: Callable, args: Sequence) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def interleaved_samples(calls: Sequence[tuple[Callable, Sequence]], *, repeats: int = 7, warmup: int = 2) -> list[list[float]]:
    """Seconds per call of each (fn, args), ``repeats`` rounds, each round running every call once, after ``warmup``
    calls of each (the first compiles). fn should be jit-compiled; its result is waited for (block_until_ready)."""
    for fn, args in calls:
        for _ in range(warmup):
            _once(fn, args)
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for i, (fn, args) in enumerate(calls):
            samples[i].append(_once(fn, args))
    return samples


def median_times(calls: Sequence[tuple[Callable, Sequence]], *, repeats: int = 7, warmup: int = 2) -> list[float]:
    """Median seconds per call of each (fn, args), measured side by side (see :func:`interleaved_samples`)."""
    return [statistics.median(s) for s in interleaved_samples(calls, repeats=repeats, warmup=warmup)]


def seconds_per_call(fn: Callable, args: Sequence, n: int) -> float:
    """Mean seconds per call over n consecutive calls, each waited for (latency, not pipelined throughput)."""
    start = time.perf_counter()
    for _ in range(n):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / n


def calls_for(fn: Callable, args: Sequence, *, target_seconds: float, max_calls: int = 1000) -> int:
    """How many consecutive calls make one timing sample last about ``target_seconds`` (at least 1): a sample of a
    call of tens of microseconds would otherwise be dominated by the timer's and the scheduler's jitter."""
    once = seconds_per_call(fn, args, 1)
    return int(min(max_calls, max(1, math.ceil(target_seconds / max(once, 1e-9)))))


def load_summary() -> str:
    """The host's load average (1 and 5 min) and core count, printed beside every benchmark ratio."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"
