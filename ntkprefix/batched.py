"""Several independent initialisations of the stylized prefix model trained at once (vmapped over a leading axis).

"With probability 1 - delta" is a statement about the distribution of W(0): measuring it takes many independent
runs of the same size. These functions vmap :mod:`ntkprefix.training` and :mod:`ntkprefix.kernels` over a leading
seed axis, so that S runs compile once and dispatch once:

    W_s(t+1) = W_s(t) - eta_s grad Loss_s(W_s(t)),   s = 1 .. S                        [template]
    H_s      = H(W_s(0))

Arrays: W0 (S, d, m), a (S, d_out, m), eta (S,); X (n, d) and Y (n, d_out) shared by every run.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ntkprefix._validation import require, require_finite, require_rank, shape_of
from ntkprefix.kernels import ntk_matrix
from ntkprefix.model import _check
from ntkprefix.training import TrainingRecord, _gradient_descent

__all__ = ["gradient_descent_batch", "ntk_matrix_batch"]


def _check_batch(W0, X, a, Y=None) -> int:
    require_rank("W0", W0, 3, "(S, d, m)")
    require_rank("a", a, 3, f"(S, d_out, {W0.shape[2]})")
    require(a.shape[0] == W0.shape[0], f"a must hold one sign array per run: shape ({W0.shape[0]}, d_out, m), got {shape_of(a)}")
    if Y is None:
        _check(W0[0], X, a[0], W_name="W0")
    else:
        _check(W0[0], X, a[0], Y, W_name="W0")
    return W0.shape[0]


@functools.partial(jax.jit, static_argnames=("steps", "record_every"))
def _batch(W0, X, Y, a, eta, *, steps, record_every):
    run = functools.partial(_gradient_descent, steps=steps, record_every=record_every, output_scale=None)
    return jax.vmap(run, in_axes=(0, None, None, 0, 0))(W0, X, Y, a, eta)


def gradient_descent_batch(
    W0: jax.Array, X: jax.Array, Y: jax.Array, a: jax.Array, eta: jax.Array, *, steps: int, record_every: int | None = None
) -> TrainingRecord:
    """S independent runs of :func:`ntkprefix.training.gradient_descent`, vmapped: every field of the record gains
    a leading axis S  [template].

    Args:
      W0: (S, d, m) initial prefix keys. X: (n, d). Y: (n, d_out). a: (S, d_out, m). eta: (S,) step sizes.
      steps: T >= 1 (the same for every run). record_every: k dividing T (default T).
    """
    S = _check_batch(W0, X, a, Y)
    require(shape_of(eta) == (S,), f"eta must have shape ({S},) (one step size per run), got {shape_of(eta)}")
    require(isinstance(steps, int) and steps >= 1, f"steps must be an int >= 1, got {steps!r}")
    k = steps if record_every is None else record_every
    require(isinstance(k, int) and 1 <= k and steps % k == 0, f"record_every must divide steps={steps}, got {record_every!r}")
    require(bool(jnp.all(jnp.asarray(eta) > 0)), f"every eta must be > 0, got {eta}")
    for name, x in (("W0", W0), ("X", X), ("Y", Y), ("a", a)):
        require_finite(name, x)
    return _batch(W0, X, Y, a, jnp.asarray(eta, W0.dtype), steps=steps, record_every=k)


@jax.jit
def _kernels(W0, X, a):
    return jax.vmap(lambda W, a_: ntk_matrix(W, X, a_, method="dense"))(W0, a)


def ntk_matrix_batch(W0: jax.Array, X: jax.Array, a: jax.Array) -> jax.Array:
    """H(W_s(0)) for every run s (the dense closed form of :func:`ntkprefix.kernels.ntk_matrix`): (S, n d_out, n d_out)  [template]."""
    _check_batch(W0, X, a)
    return _kernels(W0, X, a)
