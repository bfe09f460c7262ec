"""The stylized prefix model of Section 3: one attention layer whose m prefix keys are trained  [template].

    S(W, x)       = softmax(W^T x) in R^m                  (query x over the m prefix keys w_1 .. w_m)
    F(W, x, a)_l  = c_m <a_l, S(W, x)>,  l = 1 .. d_out    (a_l in {-1, +1}^m fixed: the prefix values)
    Loss(W)       = 1/2 sum_i ||F(W, x_i, a) - y_i||_2^2

with W = [w_1 .. w_m] in R^{d x m}, w_r(0) ~ N(0, sigma^2 I_d), ||x_i||_2 <= 1 and c_m = m [template: the
constants of the authors' NTK template (arXiv 2405.03251) are unconfirmed, so every one is a named parameter].

Gradient [derived]. With S_r = exp(<w_r, x>) / sum_s exp(<w_s, x>), dS_s/dw_r = S_s (delta_rs - S_r) x, so

    dF_l(x)/dw_r = c_m sum_s a_{l,s} S_s (delta_rs - S_r) x = c_m S_r (a_{l,r} - <a_l, S>) x,

and dLoss/dw_r = sum_i sum_l (F_l(x_i) - y_{i,l}) c_m S_r(x_i) (a_{l,r} - <a_l, S(x_i)>) x_i.
Arrays: X (n, d) holds the x_i as rows, a (d_out, m), Y (n, d_out).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ntkprefix._numerics import einsum, matmul
from ntkprefix._validation import (
    as_float_array,
    require,
    require_finite,
    require_float_dtype,
    require_int,
    require_key,
    require_scalar,
    require_signs,
    shape_of,
)

__all__ = [
    "init_prefix_weights",
    "random_signs",
    "prefix_softmax",
    "model_output",
    "output_gradient_factors",
    "loss",
    "loss_gradient",
    "output_scale_default",
]


def output_scale_default(m: int) -> float:
    """c_m = m, the output scale of the template  [template]."""
    return float(require_int("m", m, low=1))


def _scale(W, output_scale):
    return output_scale_default(W.shape[1]) if output_scale is None else output_scale


def _check_output_scale(output_scale):
    if output_scale is None:
        return None
    return require_scalar("output_scale c_m", output_scale, low=0, low_open=True)


_ABSENT = object()


def _check(W, X, a=_ABSENT, Y=_ABSENT, *, W_name: str = "W"):
    """(W, X, a, Y) as floating arrays of consistent shapes, finite, with a in {-1, +1}: ValueError otherwise.

    a and Y may be left out (returned as None); passed as None they are an error like any other non-array. Value
    checks are skipped for traced arguments. ``W_name`` is the weights' name in the caller's signature (W0 for
    gradient descent).
    """
    W = as_float_array(W_name, W, "(d, m)", rank=2)
    d, m = W.shape
    X = as_float_array("X", X, f"(n, {d})", rank=2)
    require(X.shape[1] == d, f"X must have shape (n, {d}) to match {W_name} {shape_of(W)}, got {shape_of(X)}")
    require_finite(W_name, W)
    require_finite("X", X)
    if a is _ABSENT:
        a = None
    else:
        a = as_float_array("a", a, f"(d_out, {m})", rank=2)
        require(a.shape[1] == m, f"a must have shape (d_out, {m}) to match {W_name} {shape_of(W)}, got {shape_of(a)}")
        require_signs("a", a)
    if Y is _ABSENT:
        Y = None
    else:
        require(a is not None, "Y needs a (its d_out)")
        Y = as_float_array("Y", Y, f"(n, d_out) = ({X.shape[0]}, {a.shape[0]})")
        require(
            shape_of(Y) == (X.shape[0], a.shape[0]),
            f"Y must have shape (n, d_out) = ({X.shape[0]}, {a.shape[0]}) to match X and a, got {shape_of(Y)}",
        )
        require_finite("Y", Y)
    return W, X, a, Y


def init_prefix_weights(key: jax.Array, d: int, m: int, sigma: float, dtype=jnp.float64) -> jax.Array:
    """W(0) in R^{d x m} with columns w_r(0) ~ N(0, sigma^2 I_d)  [template]."""
    key = require_key("key", key)
    d, m = require_int("d", d, low=1), require_int("m", m, low=1)
    sigma = require_scalar("sigma", sigma, low=0, low_open=True)
    return sigma * jax.random.normal(key, (d, m), require_float_dtype("dtype", dtype))


def random_signs(key: jax.Array, d_out: int, m: int, dtype=jnp.float64) -> jax.Array:
    """a in {-1, +1}^{d_out x m}, entries independent and uniform  [template]."""
    key = require_key("key", key)
    d_out, m = require_int("d_out", d_out, low=1), require_int("m", m, low=1)
    return jax.random.rademacher(key, (d_out, m), require_float_dtype("dtype", dtype))


def _row_max(z: jax.Array) -> jax.Array:
    """max over the last axis of z (n, m), as elementwise maxima of column blocks then a short reduction: exact, the
    same NaN semantics, and vectorised (XLA's CPU max-reduction over a long row is scalar code, 3 ns per entry)."""
    width = z.shape[-1]
    blocks = 16 if width >= 256 and width % 16 == 0 else 1
    folded = z.reshape(z.shape[:-1] + (blocks, width // blocks))
    best = folded[..., 0, :]
    for b in range(1, blocks):
        best = jnp.maximum(best, folded[..., b, :])
    return jnp.max(best, axis=-1)


def _softmax(z: jax.Array) -> jax.Array:
    """softmax over the last axis, shifted by the row maximum (no overflow); differentiable like jax.nn.softmax."""
    shifted = jnp.exp(z - jax.lax.stop_gradient(_row_max(z))[..., None])
    return shifted / jnp.sum(shifted, axis=-1, keepdims=True)


def prefix_softmax(W: jax.Array, X: jax.Array) -> jax.Array:
    """S(W, x_i) = softmax(W^T x_i) for every row x_i of X: (n, m)  [template]."""
    W, X, _, _ = _check(W, X)
    return _softmax(matmul(X, W))


def model_output(W: jax.Array, X: jax.Array, a: jax.Array, *, output_scale: float | None = None) -> jax.Array:
    """F(W, x_i, a)_l = c_m <a_l, softmax(W^T x_i)>: (n, d_out)  [template].

    Args:
      W: (d, m) prefix keys. X: (n, d) inputs. a: (d_out, m) fixed signs (entries -1 or +1; checked unless traced).
      output_scale: c_m; None means m [template].
    """
    W, X, a, _ = _check(W, X, a)
    output_scale = _check_output_scale(output_scale)
    return _scale(W, output_scale) * matmul(_softmax(matmul(X, W)), a.T)


def _output_and_gradient_factors(W, X, a, output_scale):
    """(F, G) from one softmax: F = c_m <a_l, S> and G[i, l, r] = c_m S_r (a_{l,r} - <a_l, S>)."""
    c = _scale(W, output_scale)
    S = _softmax(matmul(X, W))  # (n, m)
    mean_a = matmul(S, a.T)  # (n, d_out): <a_l, S(x_i)>
    return c * mean_a, c * S[:, None, :] * (a[None, :, :] - mean_a[:, :, None])


def output_gradient_factors(W: jax.Array, X: jax.Array, a: jax.Array, *, output_scale: float | None = None) -> jax.Array:
    """G with dF_l(x_i)/dw_r = G[i, l, r] x_i, G[i, l, r] = c_m S_r(x_i) (a_{l,r} - <a_l, S(x_i)>): (n, d_out, m)  [derived]."""
    W, X, a, _ = _check(W, X, a)
    return _output_and_gradient_factors(W, X, a, _check_output_scale(output_scale))[1]


def loss(W: jax.Array, X: jax.Array, Y: jax.Array, a: jax.Array, *, output_scale: float | None = None) -> jax.Array:
    """Loss(W) = 1/2 sum_i ||F(W, x_i, a) - y_i||_2^2  [template]."""
    W, X, a, Y = _check(W, X, a, Y)
    residual = model_output(W, X, a, output_scale=output_scale) - Y
    return 0.5 * jnp.sum(residual**2)


def loss_gradient(W: jax.Array, X: jax.Array, Y: jax.Array, a: jax.Array, *, output_scale: float | None = None) -> jax.Array:
    """dLoss/dw_r = sum_{i,l} (F_l(x_i) - y_{i,l}) G[i, l, r] x_i, in closed form: (d, m)  [derived].

    G is :func:`output_gradient_factors`; the result equals ``jax.grad(loss)`` (tested to 1e-12 relative).
    """
    W, X, a, Y = _check(W, X, a, Y)
    F, G = _output_and_gradient_factors(W, X, a, _check_output_scale(output_scale))  # (n, d_out), (n, d_out, m): one softmax
    return einsum("il,ilr,id->dr", F - Y, G, X)
