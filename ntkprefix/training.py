"""Gradient descent on the stylized prefix model, compiled with lax.scan, with the records Theorem 3.2 speaks about.

    W(t+1) = W(t) - eta grad Loss(W(t))        [template]

Recorded: Loss(W(t)) and max_r ||w_r(t) - w_r(0)||_2 at every step t = 0 .. T, and lambda_min(H(W(t))) and the
outputs F(W(t), x_i, a) every ``record_every`` steps (t = 0, k, 2k, .., T), with H the closed-form NTK of
:mod:`ntkprefix.kernels`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkprefix._validation import require, require_scalar
from ntkprefix.kernels import ntk_matrix
from ntkprefix.model import _check, _check_output_scale, loss, loss_gradient, model_output

__all__ = ["TrainingRecord", "gradient_descent"]


class TrainingRecord(NamedTuple):
    """What one gradient-descent run recorded.

    Attributes:
      W: (d, m) the weights after the last step.
      loss: (T + 1,) Loss(W(t)), t = 0 .. T.
      max_movement: (T + 1,) max_r ||w_r(t) - w_r(0)||_2.
      kernel_steps: (T / k + 1,) the steps t = 0, k, .., T at which lambda_min was recorded.
      lambda_min: (T / k + 1,) lambda_min(H(W(t))) at those steps.
      outputs: (T / k + 1, n, d_out) F(W(t), x_i, a) at those steps.
    """

    W: jax.Array
    loss: jax.Array
    max_movement: jax.Array
    kernel_steps: jax.Array
    lambda_min: jax.Array
    outputs: jax.Array


def gradient_descent(
    W0: jax.Array,
    X: jax.Array,
    Y: jax.Array,
    a: jax.Array,
    *,
    eta: float,
    steps: int,
    record_every: int | None = None,
    output_scale: float | None = None,
) -> TrainingRecord:
    """Run T = ``steps`` steps of W(t+1) = W(t) - eta grad Loss(W(t)) with the closed-form gradient  [template].

    Args:
      W0: (d, m) initial prefix keys W(0). X: (n, d). Y: (n, d_out). a: (d_out, m).
      eta: step size.
      steps: T >= 1.
      record_every: k, record lambda_min(H(W(t))) every k steps; must divide T. Default T (start and end only).
      output_scale: c_m; None means m [template].
    """
    W0, X, a, Y = _check(W0, X, a, Y, W_name="W0")
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    steps = int(steps)
    k = steps if record_every is None else record_every
    require(
        not isinstance(k, (bool, np.bool_)) and isinstance(k, (int, np.integer)) and 1 <= k and steps % k == 0,
        f"record_every must divide steps={steps}, got {record_every!r}",
    )
    eta = require_scalar("eta", eta, low=0, low_open=True)
    output_scale = _check_output_scale(output_scale)
    return _gradient_descent(W0, X, Y, a, eta, steps=steps, record_every=int(k), output_scale=output_scale)


@functools.partial(jax.jit, static_argnames=("steps", "record_every", "output_scale"))
def _gradient_descent(W0, X, Y, a, eta, *, steps, record_every, output_scale):
    def movement(W):
        return jnp.linalg.norm(W - W0, axis=0).max()

    def lambda_min(W):
        return jnp.linalg.eigvalsh(ntk_matrix(W, X, a, output_scale=output_scale))[0]

    def step(W, _):
        record = (loss(W, X, Y, a, output_scale=output_scale), movement(W))
        return W - eta * loss_gradient(W, X, Y, a, output_scale=output_scale), record

    def block(W, _):
        W, records = jax.lax.scan(step, W, None, length=record_every)
        return W, (records, lambda_min(W), model_output(W, X, a, output_scale=output_scale))

    W, ((losses, moves), lambdas, outputs) = jax.lax.scan(block, W0, None, length=steps // record_every)
    final_loss = loss(W, X, Y, a, output_scale=output_scale)
    return TrainingRecord(
        W=W,
        loss=jnp.concatenate([losses.reshape(-1), final_loss[None]]),
        max_movement=jnp.concatenate([moves.reshape(-1), movement(W)[None]]),
        kernel_steps=jnp.arange(0, steps + 1, record_every),
        lambda_min=jnp.concatenate([lambda_min(W0)[None], lambdas]),
        outputs=jnp.concatenate([model_output(W0, X, a, output_scale=output_scale)[None], outputs]),
    )
