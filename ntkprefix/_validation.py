"""Input checks shared by the public functions: every failure is a ValueError naming what arrived and what was expected.

Arrays. :func:`as_float_array` is the one entry point for an array argument: it accepts jax arrays (tracers
included), numpy arrays, nested lists and Python or numpy scalars; integer input becomes the default floating dtype
(float64 under ``jax_enable_x64``, else float32), floating input keeps its dtype (float32 stays float32), and anything
else (bool, complex, strings, objects, ragged lists) is refused with a ValueError that gives the argument's name, the
shape and dtype received and the shape expected. Value checks (finite entries, signs) need concrete values and are
skipped when the argument is traced (inside jit, vmap or grad), so the public functions stay traceable.

Scalars. :func:`require_scalar` and :func:`require_int` refuse NaN, infinities, bools and non-numbers.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "require",
    "shape_of",
    "is_traced",
    "as_float_array",
    "require_rank",
    "require_finite",
    "max_abs",
    "row_mask_count",
    "require_signs",
    "require_scalar",
    "require_int",
    "require_key",
    "require_float_dtype",
]


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless condition holds."""
    if not condition:
        raise ValueError(message)


def shape_of(x) -> tuple[int, ...]:
    try:
        return tuple(np.shape(x))
    except (ValueError, TypeError):  # a ragged nested list has no shape
        return ("ragged",)


def _dtype_name(x) -> str:
    dtype = getattr(x, "dtype", None)
    if dtype is not None:
        return str(dtype)
    return type(x).__name__


def is_traced(x) -> bool:
    """True when x is a jax tracer (inside jit, vmap, grad): its values are unknown at call time."""
    return isinstance(x, jax.core.Tracer)


def _default_float():
    return jnp.zeros((), dtype=float).dtype  # float64 under jax_enable_x64, else float32


def as_float_array(name: str, x, expected: str, *, rank: int | None = None) -> jax.Array:
    """x as a real floating jax array, or a ValueError naming ``name``, the shape and dtype received and ``expected``.

    Integer dtypes (and Python ints) become the default floating dtype; floating dtypes are kept; bool, complex,
    string and object input is refused, as is a ragged list. With ``rank`` the number of axes is checked too.

    Args:
      name: the argument's name as the caller wrote it ("Q", "K_P", "W").
      x: the argument.
      expected: the expected shape spelled with symbols, e.g. "(L, d)".
      rank: the required number of axes, or None.
    """
    what = f"{name} must be a real floating array of shape {expected}"
    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        dtype = x.dtype
    elif isinstance(x, (bool, np.bool_)):
        raise ValueError(f"{what}, got a bool ({x!r})")
    elif isinstance(x, (numbers.Real, list, tuple)):
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{what}, got a {type(x).__name__} that is not a rectangular array ({err})") from None
        dtype = arr.dtype
        x = arr
    else:
        raise ValueError(f"{what}, got an object of type {type(x).__name__}")
    if jnp.issubdtype(dtype, jnp.floating):
        out = x if isinstance(x, jax.Array) else jnp.asarray(x)
    elif jnp.issubdtype(dtype, jnp.integer) and not jnp.issubdtype(dtype, jnp.bool_):
        out = jnp.asarray(x, dtype=_default_float())
    else:
        raise ValueError(f"{what} (floating or integer dtype), got shape {shape_of(x)} and dtype {dtype}")
    if rank is not None and out.ndim != rank:
        raise ValueError(f"{name} must have shape {expected}, got shape {shape_of(out)} (dtype {out.dtype})")
    return out


def require_rank(name: str, x, rank: int, expected: str) -> None:
    """x must have `rank` axes; `expected` spells the expected shape with symbols, e.g. "(L, d)"."""
    require(np.ndim(x) == rank, f"{name} must have shape {expected}, got shape {shape_of(x)} (dtype {_dtype_name(x)})")


def _extremes(x) -> tuple[float, float]:
    """(max, min) of x's entries as floats, NaN if any entry is NaN; (0, 0) for an empty array.

    Two reductions and no temporary: numpy on host arrays and CPU jax arrays (viewed without a copy; no compilation
    for each new shape), jnp where the array lives on an accelerator. A full-size temporary (isfinite, abs) would cost a
    pass of page faults on every call with a large prefix."""
    if np.size(x) == 0:
        return 0.0, 0.0
    on_host = not isinstance(x, jax.Array) or all(device.platform == "cpu" for device in x.devices())
    if on_host:
        arr = np.asarray(x)
        return float(np.max(arr)), float(np.min(arr))
    return float(jnp.max(x)), float(jnp.min(x))


def max_abs(x) -> float:
    """max |x| over the entries (NaN if any entry is NaN, 0 for an empty array); see :func:`_extremes`."""
    high, low = _extremes(x)
    return max(high, -low) if not (math.isnan(high) or math.isnan(low)) else math.nan


def require_finite(name: str, x) -> float | None:
    """x must hold only finite values; returns max |x| (None when x is traced: inside jit/grad the check, which needs
    concrete values, is skipped).

    All entries are finite exactly when the largest and the smallest are (numpy's max and min propagate NaN), so the
    check is two reductions without a temporary (:func:`_extremes`)."""
    if is_traced(x):
        return None
    try:
        high, low = _extremes(x)
    except jax.errors.ConcretizationTypeError:
        return None
    if not (math.isfinite(high) and math.isfinite(low)):
        arr = np.asarray(x)
        bad = np.argwhere(~np.isfinite(arr))
        where = tuple(int(i) for i in bad[0])
        raise ValueError(
            f"{name} holds {len(bad)} non-finite value(s) (first at index {where}: {arr[where]}); expected finite entries"
        )
    return max(high, -low)


def require_signs(name: str, a) -> None:
    """Every entry of a must be -1 or +1 (the model's fixed prefix values). Skipped when a is traced."""
    if is_traced(a):
        return
    try:
        ok = bool(jnp.all(jnp.abs(a) == 1))
    except jax.errors.ConcretizationTypeError:
        return
    if not ok:
        arr = np.asarray(a)
        bad = np.argwhere(np.abs(arr) != 1)
        where = tuple(int(i) for i in bad[0])
        raise ValueError(
            f"{name} must hold signs in {{-1, +1}} (the model's fixed prefix values), but {len(bad)} entr"
            f"{'y is' if len(bad) == 1 else 'ies are'} not (first at index {where}: {arr[where]})"
        )


def require_scalar(
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """value as a Python float: a real number (not bool), finite unless ``allow_inf``, within [low, high].

    ``low_open`` / ``high_open`` make the bound strict. Returns float(value).
    """
    if isinstance(value, (jax.Array, np.ndarray)) and np.ndim(value) == 0 and not is_traced(value):
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    v = float(value)
    require(not np.isnan(v), f"{name} must be a real number, got NaN")
    require(allow_inf or np.isfinite(v), f"{name} must be finite, got {v!r}")
    if low is not None and high is not None:
        wanted = f"lie in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        wanted = f"be {'>' if low_open else '>='} {low:g}"
    else:
        wanted = f"be {'<' if high_open else '<='} {high:g}" if high is not None else ""
    if low is not None:
        require(v > low if low_open else v >= low, f"{name} must {wanted}, got {value!r}")
    if high is not None:
        require(v < high if high_open else v <= high, f"{name} must {wanted}, got {value!r}")
    return v


def require_int(name: str, value, *, low: int | None = None) -> int:
    """value as a Python int (not bool, not a float), at least ``low``. Returns int(value)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer{'' if low is None else f' >= {low}'}, got {value!r} of type {type(value).__name__}")
    if low is not None:
        require(int(value) >= low, f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def require_key(name: str, key) -> jax.Array:
    """A jax PRNG key: a uint32 array of shape (2,) (``jax.random.PRNGKey``) or a typed key array of shape ()."""
    if isinstance(key, jax.Array):
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return key
        if key.dtype == jnp.uint32 and key.shape == (2,):
            return key
    raise ValueError(
        f"{name} must be a PRNG key (jax.random.PRNGKey(seed): uint32 of shape (2,), or jax.random.key(seed)), "
        f"got shape {shape_of(key)} and dtype {_dtype_name(key)}"
    )


def require_float_dtype(name: str, dtype):
    """dtype as a numpy floating dtype, or a ValueError."""
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"{name} must be a floating dtype, got {dtype!r}") from None
    require(jnp.issubdtype(dtype, jnp.floating), f"{name} must be a floating dtype, got {dtype}")
    return dtype


def row_mask_count(row_mask, n: int):
    """The number of True entries of ``row_mask``, which must be a bool array of shape (n,): an int, or a traced int32
    scalar when the mask is traced. Used by the streaming entry points' ``row_mask`` option."""
    require(shape_of(row_mask) == (n,) and jnp.asarray(row_mask).dtype == jnp.bool_,
            f"row_mask must be a bool array of shape ({n},), got {shape_of(row_mask)} "
            f"{getattr(row_mask, 'dtype', type(row_mask).__name__)}")
    count = jnp.sum(jnp.asarray(row_mask), dtype=jnp.int32)
    return count if is_traced(count) else int(count)
