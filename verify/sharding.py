"""Independent runs of a check spread over the available devices with jax.sharding.

A check whose runs share no state (seeds; values of m that are not one growing prefix) describes ONE run as a pure
JAX function and stacks the runs' inputs along a leading axis. :class:`SeedBatch` pads that axis to a multiple of
the devices it uses, shards it over a one-axis :class:`jax.sharding.Mesh` ("seeds") with
:class:`jax.sharding.NamedSharding`, and runs the function with ``shard_map``: every device maps it over ITS runs,
one after the other (``lax.map``), so a run computes exactly the same operations whatever the number of devices
(tests/test_sharding.py: identical results under ``--xla_force_host_platform_device_count=2``). With one device
nothing is padded and the runs go one after the other, as before.

Where the devices come from: ``jax.devices()``, i.e. every GPU of the host (``CUDA_VISIBLE_DEVICES``), the
``--xla_force_host_platform_device_count`` CPU devices, or, after ``jax.distributed.initialize(...)`` in every
process, the devices of every host (docs/environment.md, "Several devices or hosts"). Inputs are placed with
``jax.make_array_from_callback`` and outputs gathered with ``multihost_utils.process_allgather``, which work across
hosts as well.

Used by ``verify/checks/thm4_1.py`` (seeds of each growing prefix) and ``verify/checks/prop3_3.py`` (seeds at each
m); lem3_1 and thm3_2 can use it the same way.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["SeedBatch", "device_summary"]

AXIS = "seeds"


@functools.lru_cache(maxsize=None)
def _mapped(mesh: Mesh, fn: Callable, static: tuple):
    """The jitted shard_map of fn over the mesh, one per (mesh, fn, static): batches of equal shapes share its
    compilations (jax.jit caches them by shape)."""
    one = functools.partial(fn, **dict(static))

    def local(batched_local, shared_args):
        return jax.lax.map(lambda item: one(*item, *shared_args), batched_local)

    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(AXIS), PartitionSpec()),
                                 out_specs=PartitionSpec(AXIS), check_vma=False))


def device_summary() -> str:
    """'4 x cuda (NVIDIA A100)' or '1 x cpu': what the runs are spread over (for figure labels and reports)."""
    devices = jax.devices()
    kinds = sorted({f"{d.platform} ({d.device_kind})" if d.device_kind != d.platform else d.platform for d in devices})
    hosts = f" on {jax.process_count()} hosts" if jax.process_count() > 1 else ""
    return f"{len(devices)} x {', '.join(kinds)}{hosts}"


class SeedBatch:
    """``n`` independent runs along axis 0, padded to a multiple of the devices used and sharded over them.

    Args:
      n: the number of runs.
      devices: the devices to use (default ``jax.devices()``); at most n of them are used.
    """

    def __init__(self, n: int, devices=None):
        if n < 1:
            raise ValueError(f"a batch needs at least one run, got n={n}")
        devices = list(jax.devices() if devices is None else devices)
        self.n = int(n)
        self.n_devices = max(1, min(len(devices), self.n))
        self.padded = -(-self.n // self.n_devices) * self.n_devices
        self.mesh = Mesh(np.array(devices[: self.n_devices]), (AXIS,))
        self.sharding = NamedSharding(self.mesh, PartitionSpec(AXIS))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())

    def put(self, tree: Any) -> Any:
        """Every leaf (leading axis n) padded to ``padded`` rows (the last run repeated) and sharded over the devices.
        Leaves already laid out by this batch (the outputs of :meth:`run`) are passed through."""

        def one(leaf):
            if isinstance(leaf, jax.Array) and leaf.sharding == self.sharding and leaf.shape[:1] == (self.padded,):
                return leaf
            host = np.asarray(leaf)
            if host.shape[:1] != (self.n,):
                raise ValueError(f"a batched input must have leading axis {self.n}, got shape {host.shape}")
            if self.padded > self.n:
                host = np.concatenate([host, np.repeat(host[-1:], self.padded - self.n, axis=0)], axis=0)
            return jax.make_array_from_callback(host.shape, self.sharding, lambda index: host[index])

        return jax.tree_util.tree_map(one, tree)

    def share(self, tree: Any) -> Any:
        """Every leaf replicated on the devices (inputs common to all runs that change between calls)."""

        def one(leaf):
            host = np.asarray(leaf)
            return jax.make_array_from_callback(host.shape, self.replicated, lambda index: host[index])

        return jax.tree_util.tree_map(one, tree)

    def run(self, fn: Callable, batched: tuple, shared: tuple = (), **static) -> Any:
        """fn(*one_run_of_batched, *shared, **static) for every run, each device mapping over its own runs.

        ``batched`` leaves have leading axis n (or are outputs of an earlier :meth:`run`); ``shared`` leaves are the
        same for every run; ``static`` are hashable Python values (compiled in). Returns fn's outputs with the
        padded leading axis, sharded (pass them to the next :meth:`run`, or to :meth:`get`).
        """
        return _mapped(self.mesh, fn, tuple(sorted(static.items())))(self.put(tuple(batched)), self.share(tuple(shared)))

    def get(self, tree: Any) -> Any:
        """The first n runs of every leaf, as numpy arrays on the host (gathered from every process)."""

        def one(leaf):
            if jax.process_count() > 1 and isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
                leaf = multihost_utils.process_allgather(leaf, tiled=True)
            return np.asarray(leaf)[: self.n]

        return jax.tree_util.tree_map(one, tree)
