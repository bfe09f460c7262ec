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

from ntkprefix._validation import require, require_rank, shape_of

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
    return float(m)


def _scale(W, output_scale):
    return output_scale_default(W.shape[1]) if output_scale is None else output_scale


def _check(W, X, a=None, Y=None) -> None:
    require_rank("W", W, 2, "(d, m)")
    d, m = W.shape
    require_rank("X", X, 2, f"(n, {d})")
    require(X.shape[1] == d, f"X must have shape (n, {d}) to match W {shape_of(W)}, got {shape_of(X)}")
    if a is not None:
        require_rank("a", a, 2, f"(d_out, {m})")
        require(a.shape[1] == m, f"a must have shape (d_out, {m}) to match W {shape_of(W)}, got {shape_of(a)}")
    if Y is not None:
        require(
            shape_of(Y) == (X.shape[0], a.shape[0]),
            f"Y must have shape (n, d_out) = ({X.shape[0]}, {a.shape[0]}) to match X and a, got {shape_of(Y)}",
        )


def init_prefix_weights(key: jax.Array, d: int, m: int, sigma: float, dtype=jnp.float64) -> jax.Array:
    """W(0) in R^{d x m} with columns w_r(0) ~ N(0, sigma^2 I_d)  [template]."""
    require(d >= 1 and m >= 1, f"d and m must be >= 1, got d={d}, m={m}")
    require(sigma > 0, f"sigma must be > 0, got {sigma!r}")
    return sigma * jax.random.normal(key, (d, m), dtype)


def random_signs(key: jax.Array, d_out: int, m: int, dtype=jnp.float64) -> jax.Array:
    """a in {-1, +1}^{d_out x m}, entries independent and uniform  [template]."""
    require(d_out >= 1 and m >= 1, f"d_out and m must be >= 1, got d_out={d_out}, m={m}")
    return jax.random.rademacher(key, (d_out, m), dtype)


def prefix_softmax(W: jax.Array, X: jax.Array) -> jax.Array:
    """S(W, x_i) = softmax(W^T x_i) for every row x_i of X: (n, m)  [template]."""
    _check(W, X)
    return jax.nn.softmax(X @ W, axis=-1)


def model_output(W: jax.Array, X: jax.Array, a: jax.Array, *, output_scale: float | None = None) -> jax.Array:
    """F(W, x_i, a)_l = c_m <a_l, softmax(W^T x_i)>: (n, d_out)  [template].

    Args:
      W: (d, m) prefix keys. X: (n, d) inputs. a: (d_out, m) fixed signs.
      output_scale: c_m; None means m [template].
    """
    _check(W, X, a)
    return _scale(W, output_scale) * prefix_softmax(W, X) @ a.T


def _output_and_gradient_factors(W, X, a, output_scale):
    """(F, G) from one softmax: F = c_m <a_l, S> and G[i, l, r] = c_m S_r (a_{l,r} - <a_l, S>)."""
    c = _scale(W, output_scale)
    S = prefix_softmax(W, X)  # (n, m)
    mean_a = S @ a.T  # (n, d_out): <a_l, S(x_i)>
    return c * mean_a, c * S[:, None, :] * (a[None, :, :] - mean_a[:, :, None])


def output_gradient_factors(W: jax.Array, X: jax.Array, a: jax.Array, *, output_scale: float | None = None) -> jax.Array:
    """G with dF_l(x_i)/dw_r = G[i, l, r] x_i, G[i, l, r] = c_m S_r(x_i) (a_{l,r} - <a_l, S(x_i)>): (n, d_out, m)  [derived]."""
    _check(W, X, a)
    return _output_and_gradient_factors(W, X, a, output_scale)[1]


def loss(W: jax.Array, X: jax.Array, Y: jax.Array, a: jax.Array, *, output_scale: float | None = None) -> jax.Array:
    """Loss(W) = 1/2 sum_i ||F(W, x_i, a) - y_i||_2^2  [template]."""
    _check(W, X, a, Y)
    residual = model_output(W, X, a, output_scale=output_scale) - Y
    return 0.5 * jnp.sum(residual**2)


def loss_gradient(W: jax.Array, X: jax.Array, Y: jax.Array, a: jax.Array, *, output_scale: float | None = None) -> jax.Array:
    """dLoss/dw_r = sum_{i,l} (F_l(x_i) - y_{i,l}) G[i, l, r] x_i, in closed form: (d, m)  [derived].

    G is :func:`output_gradient_factors`; the result equals ``jax.grad(loss)`` (tested to 1e-12 relative).
    """
    _check(W, X, a, Y)
    F, G = _output_and_gradient_factors(W, X, a, output_scale)  # (n, d_out), (n, d_out, m): one softmax
    return jnp.einsum("il,ilr,id->dr", F - Y, G, X)
