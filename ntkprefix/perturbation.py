"""The worst case of Lemma 3.1: the largest change of the NTK over the product of R-balls around W(0).

    f(R) = sup { ||H(W~) - H(W(0))||_F : ||w~_r - w_r(0)||_2 <= R for every r = 1 .. m }      [paper: Lemma 3.1]

with H the NTK of :mod:`ntkprefix.kernels` (1/m normalisation, output scale c_m = m). Lemma 3.1 says f(R) <= K R with
K free of m (with probability 1 - delta over W(0)); this module estimates f(R) from below by searching the ball and
bounds it from above by a derived constant.

**First-order constant** [derived]. For a direction field U = [u_1 .. u_m] with ||u_r|| <= 1, H(W(0) + R U) =
H(W(0)) + R DH[U] + O(R^2), so K1 = lim_{R -> 0} f(R) / R = sup_U ||DH[U]||_F. Writing the Frobenius norm as a sup
over unit matrices E and maximising over each ball separately (the product of balls is the dual of the sum of norms),

    K1 = sup_{||E||_F = 1} sum_r ||g_r(E)||_2,        g_r(E) = grad_{w_r} <E, H(W)> at W(0).

:func:`first_order_constant` alternates E = DH[U] / ||DH[U]||_F and u_r = g_r(E) / ||g_r(E)||: each step gives
||DH[U']|| >= <E, DH[U']> = sum_r ||g_r(E)|| >= <E, DH[U]> = ||DH[U]||, so the value never decreases (the power
method of the norm from the product of balls to Frobenius). Its value is attained by a feasible U: a lower bound of K1.
It can stop at a local maximum (measured: from 12 starts at m <= 4096 the best exceeded a single start by up to 6%),
so :func:`worst_case_search` restarts it from several fields.

**Closed-form first-order maps** [derived]. Write T_{(i,l), r} = S_r(x_i) (a_lr - abar_il) (N = n d_out rows) and
G~ = (X X^T) kron 1_{d_out x d_out}, so that H = m G~ o (T T^T). With logit shifts z_ri = <u_r, x_i> (Z = X U),
zbar_i = sum_r S_ri z_ri, dS_ri = S_ri (z_ri - zbar_i) and dabar_il = sum_r dS_ri a_lr:

    DH[U] = m G~ o (dT T^T + T dT^T),      dT_{(i,l), r} = dS_ri (a_lr - abar_il) - S_ri dabar_il    (:func:`first_order_change`)

and for a matrix E, with V = m (E~ + E~^T) T, E~ = G~ o E, beta_il = sum_r V_{(i,l), r} S_ri,
sigma_ri = sum_l V_{(i,l), r} (a_lr - abar_il) - sum_l beta_il a_lr (the derivative in S_ri, through T and abar) and
c_ri = S_ri (sigma_ri - sum_q S_qi sigma_qi) (through the softmax):

    g_r(E) = grad_{w_r} <E, H(W)> = sum_i c_ri x_i                                                (:func:`first_order_gradient`)

Both cost O(n^2 d_out^2 m), several times less than autodiff through the dense kernel; the checks compare them with
jax.jvp and jax.grad at run time.

**Rigorous bounds** [derived; for ||x_i|| <= 1]. Along W(0) + mu U (||u_r|| <= 1) each logit moves at rate
sigma_ri = <u_r, x_i> in [-1, 1]. With S_r = softmax weight of neuron r for input x_i and abar = <a_l, S>:
S_r' = S_r (sigma_r - sigmabar), S_r'' = S_r ((sigma_r - sigmabar)^2 - Var(sigma)), so |S_r'| <= 2 S_r and
|S_r''| <= 4 S_r; |abar'| <= sum_r S_r |sigma_r - sigmabar| <= Var^(1/2) <= 1 and |abar''| <= 2 Var <= 2; and
S_r(mu) <= e^{2 mu} S_r(0). Each term of H_{(i,l),(j,l')} = m <x_i, x_j> sum_r S_ri S_rj (a_lr - abar_il)(a_l'r - abar_jl')
is a product of four factors with |a - abar| <= 2, so by the product rule, in units of S_ri S_rj:
|first derivative| <= 2*4 + 2*4 + 1*2 + 2*1 = 20 and |second derivative| <= 40 + 2 * 33 = 106. Hence, with the
majorant A(W) = d_out ||(|X X^T|) o (m M)||_F, M_ij = sum_r S_r(x_i) S_r(x_j) (:func:`majorant`),

    f(R) <= 20 A(W(0)) int_0^R e^{4 mu} dmu = 5 (e^{4R} - 1) A(W(0))                  (:func:`change_bound`)
    | ||H(W(0) + R U) - H(W(0))||_F - R ||DH[U]||_F | <= 53 R^2 e^{4R} A(W(0))       (:func:`second_order_remainder`)

and m M_ij -> exp(sigma^2 <x_i, x_j>) as m -> infinity (the derivation of :func:`ntkprefix.kernels.infinite_prefix_kernel`
without the signs), so A(W(0)) -> A_inf = d_out ||(|X X^T|) o exp(sigma^2 X X^T)||_F (:func:`majorant_limit`): a
Lipschitz constant free of m. The second bound makes "linear in R" testable: f(R) / R may exceed K1 by at most
53 R e^{4R} A(W(0)); falling below it (the softmax saturating) is allowed.

Arrays: W0 and U (d, m), X (n, d), a (d_out, m). Everything runs in the dtype of W0 (float64 for verification).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkprefix._numerics import matmul
from ntkprefix._validation import require, require_rank, shape_of
from ntkprefix.kernels import ntk_matrix
from ntkprefix.model import _check

__all__ = [
    "DIRECTIONS",
    "WorstCase",
    "unit_columns",
    "project_to_balls",
    "data_aligned_direction",
    "kernel_change_norm",
    "first_order_change",
    "first_order_gradient",
    "first_order_constant",
    "signs_chosen_direction",
    "projected_gradient_ascent",
    "worst_case_search",
    "majorant",
    "majorant_limit",
    "change_bound",
    "second_order_remainder",
]

#: The structured direction fields of :func:`worst_case_search`, in the order of its ``field_values``.
DIRECTIONS = ("random", "data_aligned", "signs_chosen", "gradient")


def _dense(W, X, a):
    return ntk_matrix(W, X, a, method="dense")


def _check_direction(W0, U) -> None:
    require(shape_of(U) == shape_of(W0), f"U must have the shape of W0 {shape_of(W0)}, got {shape_of(U)}")


def unit_columns(U: jax.Array) -> jax.Array:
    """u_r / ||u_r||_2 for every column (a zero column stays zero): (d, m)."""
    norms = jnp.linalg.norm(U, axis=0, keepdims=True)
    return U / jnp.where(norms > 0, norms, 1.0)


def project_to_balls(U: jax.Array, R) -> jax.Array:
    """The Euclidean projection onto the product of balls: u_r min(1, R / ||u_r||) for every column r: (d, m)."""
    norms = jnp.linalg.norm(U, axis=0, keepdims=True)
    return U * jnp.minimum(1.0, R / jnp.where(norms > 0, norms, 1.0))


def _aligned(W0, x):
    signs = jnp.where(matmul(x, W0) >= 0, 1.0, -1.0).astype(W0.dtype)
    return signs[None, :] * (x / jnp.linalg.norm(x))[:, None]


def data_aligned_direction(W0: jax.Array, x: jax.Array) -> jax.Array:
    """u_r = sign(<w_r(0), x>) x / ||x||: every key pushed along the data point x, away from it when it points away,
    so each neuron's logit for x moves by +-||u_r|| in the direction it already leans: (d, m)  [derived]."""
    require_rank("W0", W0, 2, "(d, m)")
    require(shape_of(x) == (W0.shape[0],), f"x must have shape ({W0.shape[0]},) to match W0 {shape_of(W0)}, got {shape_of(x)}")
    return _aligned(W0, x)


def _change(W0, X, a, U, H0):
    return jnp.linalg.norm(_dense(W0 + U, X, a) - H0)


_change_jit = jax.jit(_change)


def kernel_change_norm(W0: jax.Array, X: jax.Array, a: jax.Array, U: jax.Array, H0: jax.Array | None = None) -> jax.Array:
    """||H(W0 + U) - H(W0)||_F with the dense closed form  [template; Lemma 3.1's quantity].

    Args:
      W0: (d, m). X: (n, d). a: (d_out, m). U: (d, m) the displacement. H0: H(W0) if already computed.
    """
    _check(W0, X, a)
    _check_direction(W0, U)
    return _change_jit(W0, X, a, U, _dense(W0, X, a) if H0 is None else H0)


def _factors(W, X, a):
    """S (n, m) and T (n d_out, m), T_{(i,l), r} = S_ri (a_lr - abar_il)."""
    S = jax.nn.softmax(matmul(X, W), axis=-1)
    abar = matmul(S, a.T)  # (n, d_out)
    T = (S[:, None, :] * (a[None] - abar[:, :, None])).reshape(-1, W.shape[1])
    return S, abar, T


def _gram(X, d_out):
    return jnp.kron(matmul(X, X.T), jnp.ones((d_out, d_out), X.dtype))


def _jvp(W, X, a, U):
    """DH(W)[U] in closed form (module doc)."""
    m, (n, d_out) = W.shape[1], (X.shape[0], a.shape[0])
    S, abar, T = _factors(W, X, a)
    Z = matmul(X, U)  # (n, m) logit shifts
    dS = S * (Z - jnp.sum(S * Z, axis=1, keepdims=True))
    dabar = matmul(dS, a.T)  # (n, d_out)
    dT = (dS[:, None, :] * (a[None] - abar[:, :, None]) - S[:, None, :] * dabar[:, :, None]).reshape(n * d_out, m)
    P = matmul(dT, T.T)
    return m * _gram(X, d_out) * (P + P.T)


def _vjp(W, X, a, E):
    """g_r(E) = grad_{w_r} <E, H(W)> in closed form, as the columns of a (d, m) array (module doc)."""
    m, (n, d_out) = W.shape[1], (X.shape[0], a.shape[0])
    S, abar, T = _factors(W, X, a)
    E_tilde = _gram(X, d_out) * E
    V = matmul(m * (E_tilde + E_tilde.T), T).reshape(n, d_out, m)
    beta = jnp.sum(V * S[:, None, :], axis=2)  # (n, d_out)
    sigma = jnp.sum(V * (a[None] - abar[:, :, None]), axis=1) - matmul(beta, a)  # (n, m)
    c = S * (sigma - jnp.sum(S * sigma, axis=1, keepdims=True))
    return matmul(X.T, c)


# The compiled steps of the search: a handful of small programs per shape (one big fused program compiles ~4x slower).
_jvp_jit, _vjp_jit = jax.jit(_jvp), jax.jit(_vjp)


@jax.jit
def _first_order_value(W0, X, a, U):
    return jnp.linalg.norm(_jvp(W0, X, a, unit_columns(U)))


@jax.jit
def _ascent_step(W0, X, a, L):
    """One step of the first-order ascent, given L = DH[U]: (U', DH[U']) with u'_r = g_r(L / ||L||) / ||.||."""
    U_next = unit_columns(_vjp(W0, X, a, L / jnp.linalg.norm(L)))
    return U_next, _jvp(W0, X, a, U_next)


@jax.jit
def _signs(W0, X, a, v, U):
    """The +-v field whose signs follow grad_{w_r} <E, H> for E = DH[U] / ||DH[U]||."""
    L = _jvp(W0, X, a, U)
    signs = jnp.where(matmul(v, _vjp(W0, X, a, L / jnp.linalg.norm(L))) >= 0, 1.0, -1.0).astype(W0.dtype)
    return signs[None, :] * (v / jnp.linalg.norm(v))[:, None]


@jax.jit
def _value_and_grad(W0, X, a, U, H0):
    """||H(W0 + U) - H0||_F (the dense closed form of ntkprefix.kernels) and its gradient in U, g(E) at W0 + U with
    E = (H(W0 + U) - H0) / ||.|| (zero where the change is zero)."""
    D = _dense(W0 + U, X, a) - H0
    value = jnp.linalg.norm(D)
    return value, _vjp(W0 + U, X, a, D / jnp.where(value > 0, value, 1.0))


@jax.jit
def _column_norm_range(U, R):
    norms = jnp.linalg.norm(U, axis=0) / R
    return norms.min(), norms.max()


_aligned_jit = jax.jit(_aligned)
_project_step = jax.jit(lambda U, grad, alpha, R: project_to_balls(U + alpha * grad, R))
_dense_jit = jax.jit(_dense)


def first_order_change(W0: jax.Array, X: jax.Array, a: jax.Array, U: jax.Array) -> jax.Array:
    """DH(W0)[U] = d/dt H(W0 + t U) at t = 0, in closed form: (n d_out, n d_out)  [derived, module doc]."""
    _check(W0, X, a)
    _check_direction(W0, U)
    return _jvp_jit(W0, X, a, U)


def first_order_gradient(W0: jax.Array, X: jax.Array, a: jax.Array, E: jax.Array) -> jax.Array:
    """g_r(E) = grad_{w_r} <E, H(W)> at W0 for every r, in closed form, as the columns of a (d, m) array  [derived]."""
    _check(W0, X, a)
    N = X.shape[0] * a.shape[0]
    require(shape_of(E) == (N, N), f"E must have shape ({N}, {N}) = (n d_out, n d_out), got {shape_of(E)}")
    return _vjp_jit(W0, X, a, E)


def first_order_constant(W0: jax.Array, X: jax.Array, a: jax.Array, U0: jax.Array, *, max_iterations: int = 40,
                         tolerance: float = 1e-7):
    """A lower bound of K1 = sup_{||u_r|| <= 1} ||DH(W0)[U]||_F by alternating ascent from U0  [derived, module doc].

    Each iteration: E = DH[U] / ||DH[U]||_F, u_r = g_r(E) / ||g_r(E)||. The value never decreases; the ascent
    stops when an iteration raises it by less than ``tolerance`` (relative) or after ``max_iterations``.

    Returns:
      (K1, U, iterations): the value ||DH[U]||_F at the final unit direction field U (d, m), and the number of
      iterations made.
    """
    _check(W0, X, a)
    _check_direction(W0, U0)
    require(isinstance(max_iterations, int) and max_iterations >= 1,
            f"max_iterations must be an int >= 1, got {max_iterations!r}")
    require(tolerance >= 0, f"tolerance must be >= 0, got {tolerance!r}")
    U = unit_columns(U0)
    L = _jvp_jit(W0, X, a, U)
    value = float(jnp.linalg.norm(L))
    for iteration in range(1, max_iterations + 1):
        U_next, L_next = _ascent_step(W0, X, a, L)
        new_value = float(jnp.linalg.norm(L_next))
        gain = new_value - value
        if gain > 0:  # non-decreasing in exact arithmetic; a rounding-level decrease keeps the previous field
            U, L, value = U_next, L_next, new_value
        if gain <= tolerance * new_value:
            break
    return value, U, iteration


def signs_chosen_direction(W0: jax.Array, X: jax.Array, a: jax.Array, v: jax.Array, U: jax.Array) -> jax.Array:
    """u_r = s_r v / ||v|| with s_r = sign(<g_r(E), v>), E = DH[U] / ||DH[U]||_F: the signs that make every neuron's
    first-order change add up along the change of U (the best field of the form +-v, to first order, for that
    target): (d, m)  [derived]."""
    _check(W0, X, a)
    _check_direction(W0, U)
    require(shape_of(v) == (W0.shape[0],), f"v must have shape ({W0.shape[0]},), got {shape_of(v)}")
    return _signs(W0, X, a, v, U)


def projected_gradient_ascent(
    W0: jax.Array, X: jax.Array, a: jax.Array, U0: jax.Array, R: float, *, steps: int = 4, H0: jax.Array | None = None
):
    """Projected gradient ascent on ||H(W0 + U) - H(W0)||_F over the product of R-balls  [derived].

    U <- P_R(U + alpha grad), P_R the projection of :func:`project_to_balls`; alpha starts so that the average
    column moves by R, doubles after an improving step and is quartered after a rejected one (the iterate only
    moves when the value increases). Values come from the dense closed form of :func:`ntkprefix.kernels.ntk_matrix`,
    gradients from :func:`first_order_gradient` at W0 + U (the chain rule through the norm).

    Returns:
      (value, U, n_improving_steps): the best value found, its displacement (d, m) inside the balls, and how many
      steps improved on the start P_R(U0).
    """
    _check(W0, X, a)
    _check_direction(W0, U0)
    require(R > 0, f"R must be > 0, got {R!r}")
    require(isinstance(steps, int) and steps >= 0, f"steps must be an int >= 0, got {steps!r}")
    H0 = _dense_jit(W0, X, a) if H0 is None else H0
    U = _project_step(U0, jnp.zeros_like(U0), 0.0, R)
    value, grad = _value_and_grad(W0, X, a, U, H0)
    value = float(value)
    alpha = R / max(float(jnp.mean(jnp.linalg.norm(grad, axis=0))), 1e-300)
    improved = 0
    for _ in range(steps):
        candidate = _project_step(U, grad, alpha, R)
        new_value, new_grad = _value_and_grad(W0, X, a, candidate, H0)
        if float(new_value) > value:
            U, value, grad, alpha, improved = candidate, float(new_value), new_grad, 2 * alpha, improved + 1
        else:
            alpha /= 4
    return value, U, improved


class WorstCase(NamedTuple):
    """What :func:`worst_case_search` found for one instance.

    Attributes:
      first_order: {direction: ||DH[U]||_F} for each unit field of :data:`DIRECTIONS`.
      aligned_data_point: the k of the best data-aligned field (largest first-order change).
      ascent_starts: {start: K1 reached by the first-order ascent from it} ("signs_chosen", "random 0", ...).
      gradient_start: the start whose ascent gave the "gradient" field.
      ascent_iterations: iterations of the first-order ascent from that start.
      field_values: (len(radii), len(DIRECTIONS)) ||H(W0 + R U) - H(W0)||_F of each field at each R.
      ascent_values: (len(radii),) the projected gradient ascent's value at each R, started from the best field.
      ascent_improved: (len(radii),) how many ascent steps improved at each R.
      ascent_first_order: (len(radii),) ||DH[U]||_F for the ascent's field with unit columns (a first-order candidate).
      column_norms: (len(radii), 2) min and max over r of ||u_r|| / R of the ascent's displacement.
      H0_norm: ||H(W0)||_F.
      displacements: with ``keep_displacements``, the ascent's displacement at each R (its value is ascent_values[i];
        a witness of the search); None otherwise.
    """

    first_order: dict
    aligned_data_point: int
    ascent_starts: dict
    gradient_start: str
    ascent_iterations: int
    field_values: np.ndarray
    ascent_values: np.ndarray
    ascent_improved: np.ndarray
    ascent_first_order: np.ndarray
    column_norms: np.ndarray
    H0_norm: float
    displacements: list | None = None  # per R, the ascent's displacement U (d, m), whose value is ascent_values


def worst_case_search(
    W0: jax.Array, X: jax.Array, a: jax.Array, random_fields: jax.Array, radii, *, max_iterations: int = 40,
    tolerance: float = 1e-7, ascent_steps: int = 3, sign_rounds: int = 1, keep_displacements: bool = False,
) -> WorstCase:
    """Estimate f(R) = sup over the product of R-balls of ||H(W0 + U) - H(W0)||_F from below, at every R  [derived].

    The unit direction fields, in the order of :data:`DIRECTIONS`: random (``random_fields[0]``, columns
    normalised); data-aligned (:func:`data_aligned_direction` for the data point with the largest first-order change);
    signs chosen (:func:`signs_chosen_direction` along that data point for the target of the aligned field, re-chosen
    ``sign_rounds`` times); gradient (the best of :func:`first_order_constant` started from the signs-chosen field and
    from every random field: restarts against local maxima). At each R every field is evaluated exactly and
    :func:`projected_gradient_ascent` runs ``ascent_steps`` steps from the best of them. f(R) is estimated by the
    largest value found.

    Args:
      W0: (d, m). X: (n, d). a: (d_out, m). random_fields: (k, d, m), k >= 1 random fields (normalised here).
      radii: the radii R > 0.
      keep_displacements: also return the ascent's displacement at every R (len(radii) arrays of W0's shape).
    """
    _check(W0, X, a)
    require(np.ndim(random_fields) == 3 and shape_of(random_fields)[1:] == shape_of(W0),
            f"random_fields must have shape (k, {W0.shape[0]}, {W0.shape[1]}), got {shape_of(random_fields)}")
    radii = [float(R) for R in radii]
    require(len(radii) >= 1 and min(radii) > 0, f"radii must be positive, got {radii}")
    require(isinstance(sign_rounds, int) and sign_rounds >= 1, f"sign_rounds must be an int >= 1, got {sign_rounds!r}")
    H0 = _dense_jit(W0, X, a)
    aligned = [_aligned_jit(W0, x) for x in X]
    aligned_first = [float(_first_order_value(W0, X, a, U)) for U in aligned]
    k = int(np.argmax(aligned_first))
    U_signs = aligned[k]
    for _ in range(sign_rounds):
        U_signs = _signs(W0, X, a, X[k], U_signs)
    starts = {"signs_chosen": U_signs, **{f"random {j}": random_fields[j] for j in range(len(random_fields))}}
    ascents = {name: first_order_constant(W0, X, a, U, max_iterations=max_iterations, tolerance=tolerance)
               for name, U in starts.items()}
    best_start = max(ascents, key=lambda name: ascents[name][0])
    gradient_first, U_gradient, iterations = ascents[best_start]
    fields = {"random": unit_columns(random_fields[0]), "data_aligned": aligned[k], "signs_chosen": U_signs,
              "gradient": U_gradient}
    first_order = {"random": float(_first_order_value(W0, X, a, fields["random"])), "data_aligned": aligned_first[k],
                   "signs_chosen": float(_first_order_value(W0, X, a, U_signs)), "gradient": gradient_first}
    values = np.zeros((len(radii), len(DIRECTIONS)))
    ascent, improved, ascent_first, column_norms = (np.zeros(len(radii)), np.zeros(len(radii), int),
                                                    np.zeros(len(radii)), np.zeros((len(radii), 2)))
    kept = [] if keep_displacements else None
    for i, R in enumerate(radii):
        values[i] = [float(_change_jit(W0, X, a, R * fields[name], H0)) for name in DIRECTIONS]
        best = DIRECTIONS[int(np.argmax(values[i]))]
        ascent[i], U, improved[i] = projected_gradient_ascent(W0, X, a, R * fields[best], R, steps=ascent_steps, H0=H0)
        ascent_first[i] = float(_first_order_value(W0, X, a, U))  # unit_columns(U) is feasible for the unit balls
        column_norms[i] = [float(x) for x in _column_norm_range(U, R)]
        if kept is not None:
            kept.append(U)
    return WorstCase(first_order, k, {name: v[0] for name, v in ascents.items()}, best_start, iterations, values,
                     ascent, improved, ascent_first, column_norms, float(jnp.linalg.norm(H0)), kept)


def majorant(W0: jax.Array, X: jax.Array, d_out: int) -> float:
    """A(W) = d_out ||(|X X^T|) o (m M)||_F with M_ij = sum_r S_r(x_i) S_r(x_j), S = softmax(W^T x)  [derived, module doc]."""
    require_rank("W0", W0, 2, "(d, m)")
    require_rank("X", X, 2, f"(n, {W0.shape[0]})")
    require(isinstance(d_out, int) and d_out >= 1, f"d_out must be an int >= 1, got {d_out!r}")
    return float(_majorant(W0, X) * d_out)


@jax.jit
def _majorant(W0, X):
    S = jax.nn.softmax(matmul(X, W0), axis=-1)  # (n, m)
    return jnp.linalg.norm(jnp.abs(matmul(X, X.T)) * matmul(W0.shape[1] * S, S.T))


def majorant_limit(X: jax.Array, sigma: float, d_out: int) -> float:
    """A_inf = d_out ||(|X X^T|) o exp(sigma^2 X X^T)||_F, the m -> infinity limit of :func:`majorant`  [derived]."""
    require_rank("X", X, 2, "(n, d)")
    require(sigma > 0, f"sigma must be > 0, got {sigma!r}")
    gram = matmul(X, X.T)
    return float(d_out * jnp.linalg.norm(jnp.abs(gram) * jnp.exp(sigma**2 * gram)))


def change_bound(R: float, majorant_value: float) -> float:
    """5 (e^{4R} - 1) A: an upper bound of f(R) for data with ||x_i|| <= 1  [derived, module doc]."""
    require(R >= 0 and majorant_value >= 0, f"need R >= 0 and A >= 0, got R={R!r}, A={majorant_value!r}")
    return 5.0 * math.expm1(4.0 * R) * majorant_value


def second_order_remainder(R: float, majorant_value: float) -> float:
    """53 R^2 e^{4R} A: the largest gap between ||H(W0 + R U) - H(W0)||_F and R ||DH[U]||_F (||u_r|| <= 1)  [derived]."""
    require(R >= 0 and majorant_value >= 0, f"need R >= 0 and A >= 0, got R={R!r}, A={majorant_value!r}")
    return 53.0 * R**2 * math.exp(4.0 * R) * majorant_value
