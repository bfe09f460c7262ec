"""The neural tangent kernel of the stylized prefix model, three ways, and its infinite-prefix limit.

NTK [template]: H(W) in R^{n d_out x n d_out}, rows and columns indexed (i, l) -> i d_out + l,

    H_{(i,l),(j,l')} = (1/m) sum_r <dF_l(x_i)/dw_r, dF_l'(x_j)/dw_r>
                     = (1/m) <x_i, x_j> sum_r G[i,l,r] G[j,l',r]            [derived, closed form]

with G from :func:`ntkprefix.model.output_gradient_factors`. The same matrix is computed by contracting the
Jacobian from ``jax.jacobian`` (:func:`ntk_matrix_autodiff`), divided by m; neural-tangents' ``empirical_ntk_fn``
computes it a third way, in its own environment (reference/nt_ntk.py; compared in tests/test_neural_tangents.py), so
that the library imports neither neural-tangents nor the jax it pins.

Infinite-prefix kernel [derived] (:func:`infinite_prefix_kernel`): H(W(0)) -> (X X^T o exp(sigma^2 X X^T)) kron I_{d_out}
as m -> infinity, for c_m = m, w_r(0) ~ N(0, sigma^2 I_d) and a with independent uniform signs. Derivation, for
fixed x_i, x_j:

1. The softmax normaliser concentrates: (1/m) sum_s exp(<w_s, x>) -> E exp(<w, x>) = exp(sigma^2 ||x||^2 / 2),
   so S_r(x) = exp(<w_r, x>) / (m exp(sigma^2 ||x||^2 / 2)) (1 + o(1)).
2. The weighted sign mean vanishes: <a_l, S(x)> = sum_r a_{l,r} S_r(x) -> E[a] = 0, since a is independent of W.
3. Hence, with c_m = m,
       (1/m) sum_r G[i,l,r] G[j,l',r] -> m sum_r S_r(x_i) S_r(x_j) a_{l,r} a_{l',r}
       -> E[a_l a_l'] E[exp(<w, x_i + x_j>)] / exp(sigma^2 (||x_i||^2 + ||x_j||^2) / 2)
       = delta_{l l'} exp(sigma^2 (||x_i + x_j||^2 - ||x_i||^2 - ||x_j||^2) / 2) = delta_{l l'} exp(sigma^2 <x_i, x_j>).
4. Multiplying by <x_i, x_j> gives H_inf_{(i,l),(j,l')} = <x_i, x_j> exp(sigma^2 <x_i, x_j>) delta_{l l'}.

The fluctuations are O(1/sqrt(m)) by the central limit theorem, but exp(<w, x>) is log-normal, so the rate shows
only once m is large (the heavier the tail, sigma ||x|| larger, the later).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ntkprefix import platform
from ntkprefix._numerics import einsum, matmul
from ntkprefix._validation import (
    as_float_array,
    is_traced,
    require,
    require_finite,
    require_int,
    require_scalar,
    shape_of,
)
from ntkprefix.model import _check, _check_output_scale, model_output, output_gradient_factors, prefix_softmax

__all__ = [
    "ntk_matrix",
    "ntk_perturbation_bound",
    "ntk_matrix_autodiff",
    "infinite_prefix_kernel",
    "ntk_linearized_outputs",
]

def _as_matrix(H4: jax.Array) -> jax.Array:
    n, d_out = H4.shape[0], H4.shape[1]
    return H4.reshape(n * d_out, n * d_out)


def ntk_matrix(
    W: jax.Array, X: jax.Array, a: jax.Array, *, output_scale: float | None = None, method: str = "auto"
) -> jax.Array:
    """H(W)_{(i,l),(j,l')} = (1/m) <x_i, x_j> sum_r G[i,l,r] G[j,l',r], closed form: (n d_out, n d_out)  [template; derived].

    Two exact evaluations of the same formula:

    * ``"dense"``: contract G (n, d_out, m) with itself, (n d_out)^2 m operations.
    * ``"sign_patterns"``: a_{., r} takes at most 2^{d_out} sign patterns p, so with M_p = sum_{r: a_{.,r} = p}
      S(x_i)_r S(x_j)_r and abar = S a^T,
      sum_r G[i,l,r] G[j,k,r] = c_m^2 sum_p M_p[i,j] (p_l - abar_il)(p_k - abar_jk): about n^2 m + n^2 2^{d_out} d_out^2
      operations. The neurons are grouped by pattern on the host, so it needs a concrete ``a`` (not traced).
    * ``"auto"`` (default): sign patterns when ``a`` is concrete and 2^{d_out} <= min(m / 2, 4096), else dense.

    Args:
      W: (d, m) prefix keys. X: (n, d) inputs. a: (d_out, m) fixed signs, entries -1 or +1.
      output_scale: c_m; None means m [template].
      method: "auto", "dense" or "sign_patterns".

    Array-likes are converted to floating arrays; wrong shapes, non-finite entries of W or X, and entries of a
    other than -1 and +1 are a ValueError (value checks skipped under tracing).
    """
    require(method in ("auto", "dense", "sign_patterns"), f"method must be 'auto', 'dense' or 'sign_patterns', got {method!r}")
    W, X, a, _ = _check(W, X, a)
    output_scale = _check_output_scale(output_scale)
    d_out, m = a.shape
    groups = None
    if method != "dense":
        try:
            a_host = np.asarray(a)
        except jax.errors.TracerArrayConversionError:
            a_host = None
        if method == "sign_patterns":
            require(a_host is not None, "method='sign_patterns' needs a concrete a (it groups neurons on the host); use 'dense' under jit")
            require(np.all(np.abs(a_host) == 1), "method='sign_patterns' needs a with entries in {-1, +1}")
        if a_host is not None and np.all(np.abs(a_host) == 1) and (method == "sign_patterns" or 2**d_out <= min(m / 2, 4096)):
            groups = _sign_pattern_groups(a_host)
    if groups is None:
        return _ntk_dense(W, X, a, output_scale=output_scale)
    index, patterns = groups
    return _ntk_sign_patterns(W, X, a, jnp.asarray(index), jnp.asarray(patterns, dtype=W.dtype), output_scale=output_scale)


@functools.partial(jax.jit, static_argnames=("output_scale",))
def _ntk_dense(W, X, a, *, output_scale):
    G = output_gradient_factors(W, X, a, output_scale=output_scale)  # (n, d_out, m)
    H4 = einsum("ij,ilr,jkr->iljk", matmul(X, X.T), G, G) / W.shape[1]
    return _as_matrix(H4)


def _sign_pattern_groups(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group the neurons r by their sign pattern a_{., r}: (index (P, g), patterns (P, d_out)).

    Row p of index lists the neurons with pattern p, padded with m (out of range: read as 0 by the caller); only
    patterns that occur are kept.
    """
    d_out, m = a.shape
    positive = a > 0
    # (m,) pattern code of each neuron, in the smallest integer type that holds it: numpy's stable argsort is a radix
    # sort for 8- and 16-bit integers (30x faster than for int64 at m = 2^14)
    code_type = np.uint8 if d_out <= 8 else np.uint16 if d_out <= 16 else np.int64
    codes = (positive.astype(code_type) << np.arange(d_out, dtype=code_type)[:, None]).sum(axis=0, dtype=code_type)
    all_counts = np.bincount(codes, minlength=1 << d_out)
    present = np.flatnonzero(all_counts)
    counts = all_counts[present]
    rank = np.zeros(1 << d_out, dtype=np.int64)
    rank[present] = np.arange(len(present))
    order = np.argsort(codes, kind="stable")  # neurons grouped by pattern, in order of code
    codes = codes.astype(np.int64)
    slot = np.arange(m) - np.repeat(np.cumsum(counts) - counts, counts)
    index = np.full((len(present), counts.max()), m, dtype=np.int32)
    index[rank[codes[order]], slot] = order
    patterns = ((present[:, None] >> np.arange(d_out)[None, :]) & 1) * 2 - 1
    return index, patterns


@functools.partial(jax.jit, static_argnames=("output_scale",))
def _ntk_sign_patterns(W, X, a, index, patterns, *, output_scale):
    m = W.shape[1]
    c = float(m) if output_scale is None else output_scale
    S = prefix_softmax(W, X)  # (n, m)
    grouped = jnp.take(S.T, index, axis=0, mode="fill", fill_value=0)  # (P, g, n); padding slots (index m) read 0
    M = einsum("pgi,pgj->pij", grouped, grouped)  # (P, n, n): sum over the neurons of pattern p
    abar = matmul(S, a.T)  # (n, d_out)
    # sum_p M_p[i,j] (p_l - abar_il)(p_k - abar_jk), expanded so that the sums over p are ONE matrix product:
    # [Q | R | M0] = M^T [p_l p_k | p_l | 1] over the patterns p
    n, d_out = S.shape[0], patterns.shape[1]
    basis = jnp.concatenate([(patterns[:, :, None] * patterns[:, None, :]).reshape(-1, d_out * d_out), patterns,
                             jnp.ones((patterns.shape[0], 1), patterns.dtype)], axis=1)
    sums = matmul(M.reshape(M.shape[0], n * n).T, basis)  # (n n, d_out^2 + d_out + 1)
    Q = sums[:, : d_out * d_out].reshape(n, n, d_out, d_out).transpose(0, 2, 1, 3)  # (i, l, j, k)
    R = sums[:, d_out * d_out : -1].reshape(n, n, d_out)  # (i, j, l)
    M0 = sums[:, -1].reshape(n, n)
    inner = (
        Q
        - R.transpose(0, 2, 1)[:, :, :, None] * abar[None, None, :, :]
        - abar[:, :, None, None] * R[:, None, :, :]
        + abar[:, :, None, None] * abar[None, None, :, :] * M0[:, None, :, None]
    )
    H4 = (c**2 / m) * matmul(X, X.T)[:, None, :, None] * inner
    return _as_matrix(H4)


def ntk_perturbation_bound(W: jax.Array, X: jax.Array, a: jax.Array, R: float, *, output_scale: float | None = None) -> float:
    """sup ||H(W') - H(W)||_F over max_r ||w'_r - w_r||_2 <= R is at most
    (6 c^2 / m) d_out sqrt(sum_{i,j} (|<x_i, x_j>| sigma_ij [tau_i (1 + tau_j) + tau_j])^2)  -- Lemma 3.1  [derived].

    Here c = c_m, tau_i = e^{2 R ||x_i||} - 1 and sigma_ij = sum_r S_r(W, x_i) S_r(W, x_j) (softmax at W). It holds
    for every W and every R >= 0, not only near initialisation, and is linear in R as R -> 0:
    (6 c^2 / m) d_out sqrt(sum (2 R |<x_i, x_j>| sigma_ij (||x_i|| + ||x_j||))^2).

    Derivation. Let W' = W + Delta with ||Delta_r|| <= R and z'_r = z_r + <Delta_r, x>, |<Delta_r, x>| <= R ||x||.
    1. S'_r / S_r = e^{<Delta_r, x>} / sum_s S_s e^{<Delta_s, x>} lies in [e^{-2R||x||}, e^{2R||x||}], so
       |S'_r - S_r| <= tau S_r, and |abar'_l - abar_l| = |sum_r a_lr (S'_r - S_r)| <= tau (|a_lr| = 1).
    2. G[l, r] = c S_r (a_lr - abar_l) with |a_lr - abar_l| <= 2, so |G| <= 2 c S_r, |G'| <= 2 c (1 + tau) S_r and
       G' - G = c [(S'_r - S_r)(a_lr - abar'_l) + S_r (abar_l - abar'_l)], |G' - G| <= 3 c tau S_r.
    3. H_{(i,l),(j,l')} = (1/m) <x_i, x_j> sum_r G_i G_j, and G'_i G'_j - G_i G_j = (G'_i - G_i) G'_j + G_i (G'_j - G_j),
       so |H' - H|_{(i,l),(j,l')} <= (6 c^2 / m) |<x_i, x_j>| sigma_ij [tau_i (1 + tau_j) + tau_j] for every l, l'.
    4. The Frobenius norm sums d_out^2 equal bounds per (i, j).
    Since sigma_ij <= 1, a bound free of W follows: with c = m and ||x_i|| <= 1,
    ||H' - H||_F <= 6 m d_out (e^{4R} - 1) ||X X^T||_F, of the template's form R poly(n, d) (the template's exp(B)
    enters through sigma_ij, which at initialisation is of order exp(sigma^2 ||x||^2) / m).

    Evaluation. sigma_ij is computed from the computed softmax; it is raised by (1 + theta)^2 (1 + gamma_{m+1}),
    theta = e^{2 zeta} (1 + gamma_{m+2+k_exp}) - 1, zeta = gamma_{d+2} max||x|| max||w|| + 2 u max|<w_r, x_i>|, the
    relative error of that softmax (exp: k_exp roundings, the platform's measured count,
    :func:`ntkprefix.platform.exp_roundings`; the sum of m terms and the division: m; 2 to spare, the m + 4 of
    k_exp = 2), |<x_i, x_j>| and ||x_i|| are bounded from above the same way,
    and the result is raised by (1 + gamma_{n^2 + 16}), so the returned number bounds the exact one.

    Args:
      W: (d, m). X: (n, d). a: (d_out, m) signs. R: the radius, >= 0.
      output_scale: c_m; None means m [template].
    """
    W, X, a, _ = _check(W, X, a)
    output_scale = _check_output_scale(output_scale)
    R = require_scalar("R", R, low=0)
    require(not any(is_traced(x) for x in (W, X, a)), "ntk_perturbation_bound needs concrete W, X, a (it returns a float)")
    W64, X64 = np.asarray(W, np.float64), np.asarray(X, np.float64)
    d, m = W64.shape
    n = X64.shape[0]
    d_out = int(a.shape[0])
    c = float(m) if output_scale is None else float(output_scale)
    u = float(np.finfo(np.dtype(jnp.result_type(W, X))).eps) / 2

    def gamma(k):
        return k * u / (1 - k * u)

    S = np.asarray(prefix_softmax(W, X), np.float64)  # (n, m)
    z_max = float(np.abs(X64 @ W64).max())
    zeta = gamma(d + 2) * float(np.linalg.norm(X64, axis=1).max()) * float(np.linalg.norm(W64, axis=0).max()) + 2 * u * z_max
    theta = math.exp(2 * zeta) * (1 + gamma(m + 2 + platform.exp_roundings(platform.dtype_for_unit_roundoff(u)))) - 1
    sigma = np.minimum(S @ S.T * (1 + theta) ** 2 * (1 + gamma(m + 1)), 1.0)
    norms = np.linalg.norm(X64, axis=1) * (1 + gamma(d + 2))
    tau = np.expm1(2 * R * norms)
    gram = (np.abs(X64) @ np.abs(X64).T) * (1 + gamma(d))  # >= |<x_i, x_j>|
    b = (6 * c**2 / m) * gram * sigma * (tau[:, None] * (1 + tau[None, :]) + tau[None, :])
    return float(d_out * math.sqrt(math.fsum((b**2).ravel())) * (1 + gamma(n * n + 16)))


def ntk_matrix_autodiff(W: jax.Array, X: jax.Array, a: jax.Array, *, output_scale: float | None = None) -> jax.Array:
    """H(W) = (1/m) J J^T with J = dF/dW from ``jax.jacobian``: (n d_out, n d_out)  [template]."""
    W, X, a, _ = _check(W, X, a)
    output_scale = _check_output_scale(output_scale)
    J = jax.jacobian(lambda W_: model_output(W_, X, a, output_scale=output_scale))(W)  # (n, d_out, d, m)
    n, d_out = J.shape[:2]
    J = J.reshape(n * d_out, -1)
    return matmul(J, J.T) / W.shape[1]


def infinite_prefix_kernel(X: jax.Array, sigma: float, d_out: int) -> jax.Array:
    """H_inf = (X X^T o exp(sigma^2 X X^T)) kron I_{d_out}: the m -> infinity limit of H(W(0))  [derived, see module doc].

    Args:
      X: (n, d) inputs. sigma: the standard deviation of w_r(0). d_out: the output dimension (d in the paper).
    """
    X = as_float_array("X", X, "(n, d)", rank=2)
    require_finite("X", X)
    sigma = require_scalar("sigma", sigma, low=0, low_open=True)
    d_out = require_int("d_out", d_out, low=1)
    gram = matmul(X, X.T)
    return jnp.kron(gram * jnp.exp(sigma**2 * gram), jnp.eye(d_out, dtype=gram.dtype))


def ntk_linearized_outputs(
    H_star: jax.Array, F0: jax.Array, Y: jax.Array, *, eta: float, m: int, steps: jax.Array
) -> jax.Array:
    """F_lin(t) = Y + (I - eta m H*)^t (F(0) - Y): gradient descent on the model linearised at W(0)  [template].

    Evaluated in the eigenbasis of the symmetric eta m H* = U diag(lambda) U^T (m H* = J J^T):
    F_lin(t) = Y + U diag((1 - lambda)^t) U^T (F(0) - Y), for every t at once, so that a distance to the GD trajectory
    measures only the model's nonlinearity. Needs 0 <= eta m lambda(H*) < 1, where (1 - lambda)^t is real for real t
    and every mode contracts monotonically. neural-tangents' ``predict.gradient_descent_mse`` (continuous-time
    gradient flow, given the discrete-equivalent kernel -(N / eta) log(I - eta m H*)) gives the same prediction in the
    reference environment: tests/test_neural_tangents.py compares the two.

    Args:
      H_star: (n d_out, n d_out) H(W(0)) with the 1/m normalisation. F0, Y: (n, d_out).
      eta: the GD step size. m: the prefix length. steps: the times t (any shape) at which to predict.

    Returns:
      (number of steps, n, d_out).
    """
    F0 = as_float_array("F0", F0, "(n, d_out)", rank=2)
    n, d_out = F0.shape
    N = n * d_out
    H_star = as_float_array("H_star", H_star, f"({N}, {N})")
    require(shape_of(H_star) == (N, N), f"H_star must have shape ({N}, {N}) for F0 {shape_of(F0)}, got {shape_of(H_star)}")
    Y = as_float_array("Y", Y, f"({n}, {d_out})")
    require(shape_of(Y) == (n, d_out), f"Y must have shape ({n}, {d_out}) to match F0, got {shape_of(Y)}")
    steps = as_float_array("steps", steps, "(T,) or any shape")
    for name, x in (("H_star", H_star), ("F0", F0), ("Y", Y), ("steps", steps)):
        require_finite(name, x)
    eta = require_scalar("eta", eta, low=0, low_open=True)
    m = require_int("m", m, low=1)
    evals, evecs = jnp.linalg.eigh(eta * m * H_star)
    require(
        bool(evals[-1] < 1) and bool(evals[0] > -1e-12),
        f"need 0 <= eta m lambda(H*) < 1 for real powers of I - eta m H*, got eta m lambda_max = {float(evals[-1]):.3g}",
    )
    times = jnp.ravel(jnp.asarray(steps, dtype=F0.dtype))
    contraction = jnp.power(1.0 - jnp.clip(evals, 0.0, None)[None, :], times[:, None])  # (T, N): (1 - lambda)^t
    residual = matmul(evecs.T, (F0 - Y).reshape(N))  # (N,): F(0) - Y in the eigenbasis
    return Y[None] + matmul(contraction * residual[None, :], evecs.T).reshape(-1, n, d_out)
