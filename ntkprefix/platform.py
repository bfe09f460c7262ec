"""The platform facts the rounding bounds rest on: how accurate the running XLA's exp and log are  [measured].

Every rounding bound of the toolkit (:func:`ntkprefix.bounds.rounding_allowance`, the ELU+1 error of
:mod:`ntkprefix.features`, the tolerances of ``tests/tolerances.py``) works in Higham's model, fl(a op b) =
(a op b)(1 + delta), |delta| <= u, and needs two facts that IEEE does not give, because exp and log are not correctly
rounded (XLA's CPU code evaluates them by polynomial approximations, of its own or from libm, that change between
versions):

* exp: |exp_computed(x) - e^x| <= k_exp u e^x for every x <= 0 whose result is a normal number, k_exp a whole
  number, so that an exp counts as k_exp roundings inside gamma_N and every gamma_N of the toolkit stays an exact
  statement. Only x <= 0: every exp the bounds count is shifted first (exp(s - M) with M >= s in both attentions and
  the softmax of the model, exp(log mu - M), exp(row_max - shift), ELU+1's exp(min(y, 0))), and near the top of the
  range XLA's exp is much less accurate: float32 exp reaches 5.5 u at x = 88.72 (jaxlib 0.10.2), which would
  triple every float32 count for arguments no bound uses;
* log: |log_computed(x) - log x| <= c_log u (|log x| + 1) for every normal x > 0, c_log a whole number.

Neither is assumed. Each is the maximum error measured on the running jaxlib, backend and dtype against an
independent, more precise reference (numpy's long double where it has at least 63 significand bits, as on x86_64;
mpmath at 100 bits otherwise, on fewer points; without either :func:`measure_exp_error` refuses), turned into a
whole number of roundings by :func:`roundings_for`:

    k = ceil(measured / u + a),      a = 1/4 for the table's 1.3 million points, 1/2 for a first-use measurement,

that is, at least a quarter (half) of a rounding above the largest error seen. The allowance a is for a sample: its
maximum is only a lower bound of the supremum. It is an allowance, not a proof, sized from what was seen: on jaxlib
0.10.2's float64 exp the maxima over 1.3 million points for four seeds lie within 0.14 u of each other (2.185 to
2.321 u), and 130 000 points saw 1.972 u, 0.23 u below the seed-0 maximum (hence 1/2 at first use). tests/test_features.py re-measures
the running platform with other points and fails if the measurement exceeds k u. (For a libm exp accurate to about
half an ulp, relative error just below u, this gives k = 2, the count the toolkit assumed before it measured.)

Where they come from, in order:
1. :data:`MEASURED`, a table per (jaxlib version, backend, dtype) of measurements made with
   :func:`measure_exp_error` and :func:`measure_log_error` at their default points, with the date and the maxima;
2. for a platform not in the table, the same measurement at first use, with :data:`FIRST_USE_POINTS` points per
   function (0.2 to 0.8 s per dtype on the 2-core x86_64 CPU of the table), cached for the process (functools.cache), and reported as such
   (:attr:`ElementaryAccuracy.source`). A new platform should be measured at full size and added to the table.

:func:`accuracy` returns both numbers for a dtype; :func:`exp_roundings` and :func:`log_coefficient` are the
shorthands the bounds use. :func:`dtype_for_unit_roundoff` maps the u of a bound's signature to its dtype.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ElementaryAccuracy",
    "MEASURED",
    "FIRST_USE_POINTS",
    "platform_key",
    "roundings_for",
    "exp_domain",
    "measure_exp_error",
    "measure_log_error",
    "accuracy",
    "exp_roundings",
    "log_coefficient",
    "dtype_for_unit_roundoff",
]

#: Allowance of a sampled maximum below the true one, in units of u (see the module docstring): for the table's
#: FULL_POINTS and for the first-use measurement's FIRST_USE_POINTS.
SAMPLE_ALLOWANCE = 0.25
FIRST_USE_ALLOWANCE = 0.5

#: Points per function of the measurement made at first use on a platform missing from :data:`MEASURED`.
FIRST_USE_POINTS = 130_000

#: Points per function of the full measurement (the default of measure_exp_error / measure_log_error).
FULL_POINTS = 1_300_000


@dataclasses.dataclass(frozen=True)
class ElementaryAccuracy:
    """exp and log accuracy of one platform and dtype, in units of its unit roundoff u.

    exp_roundings: k_exp, an exp counts as k_exp roundings (relative error <= k_exp u).
    log_coefficient: c_log, |log error| <= c_log u (|log x| + 1).
    exp_measured, log_measured: the measured maxima behind them (relative exp error / u; log error / (u (|log x|+1))).
    points: points per function of that measurement. source: where the numbers come from.
    """

    exp_roundings: int
    log_coefficient: int
    exp_measured: float
    log_measured: float
    points: int
    source: str


def roundings_for(measured: float, allowance: float = SAMPLE_ALLOWANCE) -> int:
    """The whole number of roundings k = ceil(measured + allowance) (at least 1) stated for a sampled maximum error,
    both in units of u."""
    if not (isinstance(measured, (int, float)) and math.isfinite(measured) and measured >= 0):
        raise ValueError(f"measured error must be a finite number >= 0 (in units of u), got {measured!r}")
    if not (isinstance(allowance, (int, float)) and math.isfinite(allowance) and allowance >= 0):
        raise ValueError(f"allowance must be a finite number >= 0 (in units of u), got {allowance!r}")
    return max(1, math.ceil(measured + allowance))


def _entry(jaxlib: str, backend: str, dtype: str, exp_measured: float, log_measured: float, *, points: int, how: str):
    key = (jaxlib, backend, dtype)
    return key, ElementaryAccuracy(
        exp_roundings=roundings_for(exp_measured),
        log_coefficient=roundings_for(log_measured),
        exp_measured=exp_measured,
        log_measured=log_measured,
        points=points,
        source=f"table: jaxlib {jaxlib}, {backend}, {dtype}: {how}",
    )


_SAMPLED = f"measure_exp_error / measure_log_error, {FULL_POINTS} points each, seed 0, reference numpy long double"

#: Measurements, one per (jaxlib, backend, dtype); the maxima are rounded UP to 3 decimals. Machine: x86_64 AMD EPYC
#: (2 cores), Python 3.11, 2026-12-02: the maxima of measure_exp_error / measure_log_error at their default points
#: (seed 0), k = roundings_for(max). Over seeds 1, 2, 3 the maxima were: float64 exp 1.0001-1.0009 u (0.4.25) and
#: 2.185-2.321 u (0.10.2), float32 exp 1.3872 u (both), float64 log 0.401-0.414, float32 log 0.987-0.990: all
#: within the stated k. float32 exp on jaxlib 0.10.2 was also measured on EVERY float32 x in [-87.34, -2^-10]
#: (137 million arguments; not the 2^-10 nearest 0, sampled only): max 1.410 u, so k_exp = 2 holds there exactly.
#: Re-measured by tests/test_features.py.
MEASURED: dict[tuple[str, str, str], ElementaryAccuracy] = dict(
    [
        # jax/jaxlib 0.4.25, numpy 1.26.4: float64 exp and log of libm quality (about half an ulp).
        _entry("0.4.25", "cpu", "float64", 1.001, 0.405, points=FULL_POINTS, how=_SAMPLED),
        _entry("0.4.25", "cpu", "float32", 1.388, 0.987, points=FULL_POINTS, how=_SAMPLED),
        # jax/jaxlib 0.10.2, numpy 2.4.6: XLA's own float64 exp polynomial, about 1.1 eps.
        _entry("0.10.2", "cpu", "float64", 2.199, 0.405, points=FULL_POINTS, how=_SAMPLED),
        _entry("0.10.2", "cpu", "float32", 1.388, 0.987, points=FULL_POINTS, how=_SAMPLED),
    ]
)


def platform_key(dtype) -> tuple[str, str, str]:
    """(jaxlib version, default backend, dtype name) of the running process."""
    import jaxlib

    return (jaxlib.__version__, jax.default_backend(), np.dtype(dtype).name)


def _check_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt.name}")
    return dt


def _require_x64(dtype: np.dtype) -> None:
    if dtype == np.dtype(np.float64) and not jax.config.jax_enable_x64:
        raise ValueError("jax computes float64 only with jax_enable_x64 set (jax.config.update('jax_enable_x64', True))")


def _reference_kind() -> str:
    """'longdouble' when numpy's long double carries at least 63 significand bits (x86_64), else 'mpmath' if it is
    installed; otherwise no reference more precise than float64 exists here and measuring is refused."""
    if np.finfo(np.longdouble).nmant >= 63:
        return "longdouble"
    try:
        import mpmath  # noqa: F401
    except ImportError:
        raise RuntimeError(
            "no reference more precise than float64: numpy's long double has "
            f"{np.finfo(np.longdouble).nmant} significand bits and mpmath is not installed; cannot measure exp/log"
        ) from None
    return "mpmath"


def _reference(fn_name: str, x: np.ndarray) -> np.ndarray:
    """exp or log of the float array x, to at least 63 bits, as long double (or float64 pairs via mpmath)."""
    if _reference_kind() == "longdouble":
        return getattr(np, fn_name)(x.astype(np.longdouble))
    import mpmath

    with mpmath.workprec(100):
        f = getattr(mpmath, fn_name)
        return np.array([f(mpmath.mpf(float(v))) for v in x], dtype=object)


def exp_domain(dtype) -> tuple[float, float]:
    """[log(smallest normal), 0], rounded inward to a multiple of 1/8: the arguments on which exp is measured (every
    exp the bounds count has an argument <= 0; below log(smallest normal) its result is subnormal)."""
    return math.ceil(math.log(float(np.finfo(np.dtype(dtype)).tiny)) * 8) / 8, 0.0


def _points_exp(dtype: np.dtype, n: int, seed: int) -> np.ndarray:
    """n points in exp_domain: 10/13 uniform over it, 2/13 uniform on [-1, 0] (near 0), 1/13 an evenly spaced grid of
    it (odd length, so vectorised code meets a tail)."""
    low, high = exp_domain(dtype)
    rng = np.random.default_rng(seed)
    n_grid = max(3, n // 13) | 1
    n_small = 2 * n // 13
    x = np.concatenate([rng.uniform(low, high, n - n_small - n_grid), rng.uniform(-1, 0, n_small), np.linspace(low, high, n_grid)])
    return x.astype(dtype)


def _points_log(dtype: np.dtype, n: int, seed: int) -> np.ndarray:
    """n normal positive points: 10/13 e^U with U uniform over the exponent range (every binade alike), 3/13 uniform
    on [0.5, 2] (near 1, where log x is small and its absolute error matters most)."""
    info = np.finfo(dtype)
    low, high = math.log(float(info.tiny)), math.log(float(info.max))
    rng = np.random.default_rng(seed + 1)
    n_near = 3 * n // 13
    z = np.concatenate([np.exp(rng.uniform(low, high, n - n_near)), rng.uniform(0.5, 2.0, n_near)]).astype(dtype)
    return z[(z >= info.tiny) & np.isfinite(z)]


def measure_exp_error(exp=None, dtype=np.float64, *, points: int = FULL_POINTS, seed: int = 0) -> float:
    """max |exp_computed(x) - e^x| / (u e^x) over ``points`` arguments x <= 0 whose result is normal (_points_exp).

    exp: a function from a numpy array of ``dtype`` to an array (anything np.asarray accepts); None means
    jax.jit(jnp.exp) on the running platform. Returns the maximum in units of u = eps/2 of ``dtype``.
    """
    return _measure("exp", jnp.exp, _points_exp, exp, dtype, points, seed, scale=lambda ref: ref)


def measure_log_error(log=None, dtype=np.float64, *, points: int = FULL_POINTS, seed: int = 0) -> float:
    """max |log_computed(x) - log x| / (u (|log x| + 1)) over about ``points`` normal x > 0 (see _points_log).

    log: a function from a numpy array of ``dtype`` to an array; None means jax.jit(jnp.log) on the running platform.
    """
    return _measure("log", jnp.log, _points_log, log, dtype, points, seed, scale=lambda ref: np.abs(ref) + 1)


def _measure(name: str, jax_fn, points_fn, fn, dtype, points: int, seed: int, *, scale) -> float:
    """max |fn(x) - f(x)| / (u scale(f(x))) over the arguments points_fn draws, f the reference of ``name``."""
    dt = _check_dtype(dtype)
    if not (isinstance(points, int) and points >= 13):
        raise ValueError(f"points must be an integer >= 13, got {points!r}")
    x = points_fn(dt, points if _reference_kind() == "longdouble" else min(points, 20_000), seed)
    fn = _jax_function(jax_fn, dt) if fn is None else fn
    out = np.asarray(fn(x))
    if out.shape != x.shape:
        raise ValueError(f"{name} returned shape {out.shape} for input shape {x.shape}")
    ref = _reference(name, x)
    u = float(np.finfo(dt).eps) / 2
    return float(np.max(np.abs(out.astype(ref.dtype) - ref) / scale(ref))) / u


def _jax_function(f, dtype: np.dtype):
    _require_x64(dtype)
    jitted = jax.jit(f)
    return lambda x: np.asarray(jitted(jnp.asarray(x)))


@functools.cache
def _accuracy(key: tuple[str, str, str]) -> ElementaryAccuracy:
    if key in MEASURED:
        return MEASURED[key]
    dtype = np.dtype(key[2])
    exp_measured = measure_exp_error(dtype=dtype, points=FIRST_USE_POINTS)
    log_measured = measure_log_error(dtype=dtype, points=FIRST_USE_POINTS)
    return ElementaryAccuracy(
        exp_roundings=roundings_for(exp_measured, FIRST_USE_ALLOWANCE),
        log_coefficient=roundings_for(log_measured, FIRST_USE_ALLOWANCE),
        exp_measured=exp_measured,
        log_measured=log_measured,
        points=FIRST_USE_POINTS,
        source=f"measured at first use: jaxlib {key[0]}, {key[1]}, {key[2]} is not in MEASURED "
        f"({FIRST_USE_POINTS} points each, reference {_reference_kind()})",
    )


def accuracy(dtype=np.float64) -> ElementaryAccuracy:
    """exp and log accuracy of the running platform for ``dtype`` (float32 or float64): from :data:`MEASURED`, or
    measured once per process where the platform is not in it."""
    return _accuracy(platform_key(_check_dtype(dtype)))


def exp_roundings(dtype=np.float64) -> int:
    """k_exp of the running platform: its exp counts as k_exp roundings (relative error <= k_exp u)."""
    return accuracy(dtype).exp_roundings


def log_coefficient(dtype=np.float64) -> int:
    """c_log of the running platform: |log error| <= c_log u (|log x| + 1)."""
    return accuracy(dtype).log_coefficient


def dtype_for_unit_roundoff(unit_roundoff: float) -> np.dtype:
    """float64 for u = 2^-53, float32 for u = 2^-24; ValueError otherwise (no measured facts for other formats:
    pass the counts explicitly)."""
    for dt in (np.dtype(np.float64), np.dtype(np.float32)):
        if unit_roundoff == float(np.finfo(dt).eps) / 2:
            return dt
    raise ValueError(
        f"no measured exp/log accuracy for unit roundoff {unit_roundoff!r} (only 2^-53, float64, and 2^-24, float32); "
        "pass exp_roundings and log_coefficient explicitly"
    )
