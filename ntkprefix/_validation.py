"""Input checks shared by the public functions: every failure is a ValueError naming what arrived and what was expected."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless condition holds."""
    if not condition:
        raise ValueError(message)


def shape_of(x) -> tuple[int, ...]:
    return tuple(np.shape(x))


def require_rank(name: str, x, rank: int, expected: str) -> None:
    """x must have `rank` axes; `expected` spells the expected shape with symbols, e.g. "(L, d)"."""
    require(np.ndim(x) == rank, f"{name} must have shape {expected}, got shape {shape_of(x)}")


def require_finite(name: str, x) -> None:
    """x must hold only finite values. Skipped when x is traced (inside jit/grad): the check needs concrete values.

    Host arrays are checked with numpy (no compilation for each new shape)."""
    try:
        finite = bool(np.all(np.isfinite(x))) if isinstance(x, (np.ndarray, list, tuple, float, int)) else bool(
            jnp.all(jnp.isfinite(x)))
    except jax.errors.ConcretizationTypeError:
        return
    if not finite:
        arr = np.asarray(x)
        bad = np.argwhere(~np.isfinite(arr))
        raise ValueError(
            f"{name} holds {len(bad)} non-finite value(s) (first at index {tuple(int(i) for i in bad[0])}: "
            f"{arr[tuple(bad[0])]}); expected finite entries"
        )
