"""A stack of D prefix-attention layers, each with its own prefix, and its NTK-Attention replacement  [derived].

Model. Layer l (l = 1..D) has frozen W_Q^l, W_K^l, W_V^l (d x d) and its own prefix, given projected as
K_P^l = P^l W_K^l, V_P^l = P^l W_V^l (m x d). With A_l(X) = PrefixAttn(X W_Q^l, X W_K^l, X W_V^l; K_P^l, V_P^l)
(Algorithm 1),

    X_l = X_{l-1} + A_l(X_{l-1})      (residual)      or      X_l = A_l(X_{l-1}),        X_0 = X (L x d).

The NTK-Attention stack replaces every A_l by Algorithm 2 with the closed-form reduction of its own prefix,
(Z_l, k_l) = (phi(K_P^l)^T V_P^l, phi(K_P^l)^T 1): N_l(X) = NTK-Attn(X W_Q^l, X W_K^l, X W_V^l; Z_l, k_l), and
X~_l = X~_{l-1} + N_l(X~_{l-1}).

Norm. ||M||_max = max_{i,c} |M_ic| (the norm of Theorem 4.1's statement), on L x d matrices.

Composition [derived]. Write E_l = ||X~_l - X_l||_max. Adding and subtracting A_l(X~_{l-1}),

    X~_l - X_l = (X~_{l-1} - X_{l-1}) + [N_l(X~_{l-1}) - A_l(X~_{l-1})] + [A_l(X~_{l-1}) - A_l(X_{l-1})],

so E_l <= (1 + Lambda_l) E_{l-1} + beta_l (residual; without it the leading 1 goes), where

* beta_l bounds the one-layer error of layer l at the input the NTK stack actually gives it, X~_{l-1}: Theorem 4.1's
  computable bound (ntkprefix.bounds.theorem_4_1_bound: 2 eps/(1 - eps) max|V_C| plus a rounding allowance, eps
  the exact Taylor remainder on that layer's realised score range);
* Lambda_l is a Lipschitz constant of A_l in ||.||_max on the segment from X_{l-1} to X~_{l-1}
  (:func:`attention_lipschitz_bound`).

Unrolled, with E_0 = 0:   E_D <= sum_{l=1}^{D} beta_l prod_{l'=l+1}^{D} (1 + Lambda_l')   (:func:`composed_error_bound`).

Lipschitz constant of one layer [derived]. Let Y(t) = X + t (X' - X), Delta = X' - X, ||Delta||_max = delta; for a
query i, s_ij = <q_i, k_j>/sqrt(d) over the keys j of [K_P; Y W_K], p_i = softmax(s_i), o_i = sum_j p_ij v_j. Then
with s_bar_i = sum_j p_ij ds_ij/dt and sum_j dp_ij/dt = 0,

    do_ic/dt = sum_j p_ij (ds_ij/dt - s_bar_i)(v_jc - o_ic) + sum_{j in input} p_ij dv_jc/dt.

(i) |v_jc - o_ic| <= R_V := max_c (max_j v_jc - min_j v_jc) over the prefix values and the input values at both
    ends of the segment (v_jc(t) is affine in t, so it stays between its end values).
(ii) sum_j p_ij |ds_ij/dt - s_bar_i| <= 2 max_j |ds_ij/dt|.
(iii) ds_ij/dt = (Delta_i W_Q k_j^T + [j input] Delta_j W_K q_i^T)/sqrt(d), and |Delta_i W_Q k_j^T| <= delta
    ||W_Q k_j^T||_1; ||W_Q k_j(t)^T||_1 is convex in t, so its maximum over the segment is at an end:
    |ds_ij/dt| <= delta (c_Q + c_K)/sqrt(d), c_Q = max_j ||W_Q k_j^T||_1 (every key, both ends),
    c_K = max_i ||W_K q_i^T||_1 (both ends).
(iv) |dv_jc/dt| <= delta a_V, a_V = max_c sum_r |W_V[r, c]|, and the input weights sum to at most 1.

Hence, by the mean value theorem along the segment, ||A(X') - A(X)||_max <= Lambda delta with

    Lambda = a_V + 2 R_V (c_Q + c_K) / sqrt(d).

A-priori propagation [derived] (used by the depth check's degree schedule, which must be fixed before the data).
If ||X||_max <= b_0, every prefix row P^l has entries <= b_P and every W has ||W||_inf := max_c sum_r |W_rc| <= w
(so ||x W||_inf <= w ||x||_inf), then layer l's input has entries <= b_{l-1} with b_l = b_{l-1} + w B_l
(residual; w B_l without), B_l = max(b_{l-1}, b_P); its queries <= w b_{l-1}, keys and values <= w B_l; its scores
|s| <= S_l = sqrt(d) w^2 b_{l-1} B_l; and Lambda_l <= w + 4 sqrt(d) w^3 B_l (B_l + b_{l-1})
(R_V <= 2 w B_l, c_Q <= d w^2 B_l, c_K <= d w^2 b_{l-1}). See :func:`a_priori_layer_bounds`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ntkprefix._numerics import matmul
from ntkprefix._validation import require
from ntkprefix.attention import ntk_attention, prefix_attention
from ntkprefix.features import FeatureMap

__all__ = [
    "PrefixLayer",
    "deep_prefix_attention",
    "deep_ntk_attention",
    "attention_lipschitz_bound",
    "composed_error_bound",
    "LayerBounds",
    "a_priori_layer_bounds",
    "operator_inf_norm",
]


class PrefixLayer(NamedTuple):
    """One layer: frozen W_Q, W_K, W_V (d x d) and its projected prefix K_P, V_P (m x d)."""

    W_Q: jax.Array
    W_K: jax.Array
    W_V: jax.Array
    K_P: jax.Array
    V_P: jax.Array


def deep_prefix_attention(X: jax.Array, layers: Sequence[PrefixLayer], *, residual: bool = True) -> list[jax.Array]:
    """[X_0, X_1, ..., X_D] with X_l = X_{l-1} + A_l(X_{l-1}) (or A_l(X_{l-1}))  [derived; A_l is Algorithm 1]."""
    require(len(layers) >= 1, "need at least one layer")
    out = [X]
    for layer in layers:
        Y = out[-1]
        A = prefix_attention(matmul(Y, layer.W_Q), matmul(Y, layer.W_K), matmul(Y, layer.W_V), layer.K_P, layer.V_P)
        out.append(Y + A if residual else A)
    return out


def deep_ntk_attention(
    X: jax.Array,
    layers: Sequence[PrefixLayer],
    sums: Sequence[tuple[jax.Array, jax.Array]],
    feature_maps: Sequence[FeatureMap],
    *,
    residual: bool = True,
) -> tuple[list[jax.Array], list[jax.Array]]:
    """([X~_0, ..., X~_D], [e_1, ..., e_D]): the NTK-Attention stack, and each layer's one-layer error
    e_l = ||N_l(X~_{l-1}) - A_l(X~_{l-1})||_max at the input the stack gives it  [derived; N_l is Algorithm 2].

    Args:
      sums: (Z_l, k_l) per layer, each for its layer's feature map (``reduce_prefix`` of that layer's prefix).
      feature_maps: phi per layer (layers may use different degrees).
    """
    require(len(layers) == len(sums) == len(feature_maps),
            f"need one (Z, k) and one feature map per layer, got {len(layers)} layers, {len(sums)} sums and "
            f"{len(feature_maps)} feature maps")
    out, local = [X], []
    for layer, (Z, k), phi in zip(layers, sums, feature_maps):
        Y = out[-1]
        Q, K, V = matmul(Y, layer.W_Q), matmul(Y, layer.W_K), matmul(Y, layer.W_V)
        N = ntk_attention(Q, K, V, Z, k, phi)
        local.append(jnp.max(jnp.abs(N - prefix_attention(Q, K, V, layer.K_P, layer.V_P))))
        out.append(Y + N if residual else N)
    return out, local


def operator_inf_norm(W) -> float:
    """||W||_inf = max_c sum_r |W_rc|: ||x W||_inf <= ||W||_inf ||x||_inf for a row vector x."""
    return float(np.max(np.sum(np.abs(np.asarray(W, np.float64)), axis=0)))


def attention_lipschitz_bound(layer: PrefixLayer, X, X_other) -> float:
    """Lambda = a_V + 2 R_V (c_Q + c_K)/sqrt(d): a Lipschitz constant of Algorithm 1 in ||.||_max on the segment
    from X to X_other  [derived, module docstring]. Computed on the host (float64 numpy): a bound, not a kernel."""
    W_Q, W_K, W_V, K_P, V_P = (np.asarray(a, np.float64) for a in layer)
    ends = (np.asarray(X, np.float64), np.asarray(X_other, np.float64))
    d = ends[0].shape[1]
    keys = [K_P] + [Y @ W_K for Y in ends]
    queries = [Y @ W_Q for Y in ends]
    values = np.concatenate([V_P] + [Y @ W_V for Y in ends], axis=0)
    range_v = float(np.max(values.max(axis=0) - values.min(axis=0)))
    c_q = max(float(np.max(np.sum(np.abs(K @ W_Q.T), axis=1))) for K in keys)  # ||W_Q k_j^T||_1
    c_k = max(float(np.max(np.sum(np.abs(Q @ W_K.T), axis=1))) for Q in queries)  # ||W_K q_i^T||_1
    return operator_inf_norm(W_V) + 2.0 * range_v * (c_q + c_k) / math.sqrt(d)


def composed_error_bound(one_layer: Sequence[float], lipschitz: Sequence[float], *, residual: bool = True) -> float:
    """sum_l beta_l prod_{l' > l} (1 + Lambda_l')  (without the residual: prod Lambda_l')  [derived].

    Infinite if any beta_l is (a vacuous one-layer bound makes the composition vacuous)."""
    require(len(one_layer) == len(lipschitz), "need one beta and one Lambda per layer")
    total = 0.0
    for beta, lam in zip(one_layer, lipschitz):
        total = total * ((1.0 + lam) if residual else lam) + beta
    return total


@dataclasses.dataclass(frozen=True)
class LayerBounds:
    """A-priori bounds for one layer (module docstring): input entries, keys/values, score range, Lipschitz."""

    input_bound: float  # b_{l-1}
    key_value_bound: float  # w B_l
    score_range: float  # S_l
    lipschitz: float  # Lambda_l bound
    output_bound: float  # b_l


def a_priori_layer_bounds(*, depth: int, input_bound: float, prefix_bound: float, weight_norm: float, d: int,
                          residual: bool = True, input_slack: float = 0.0) -> list[LayerBounds]:
    """The a-priori bounds of every layer from ||X||_max <= b_0, prefix entries <= b_P and ||W||_inf <= w  [derived].

    ``input_slack`` is added to every layer's input bound (the NTK stack's inputs differ from the exact ones by at
    most the accumulated error, which the caller budgets).
    """
    require(depth >= 1 and d >= 1, f"need depth >= 1 and d >= 1, got depth={depth}, d={d}")
    out, b = [], float(input_bound)
    w = float(weight_norm)
    for _ in range(depth):
        b_in = b + input_slack
        B = max(b_in, prefix_bound)
        S = math.sqrt(d) * w**2 * b_in * B
        lam = w + 4.0 * math.sqrt(d) * w**3 * B * (B + b_in)
        b_out = (b + w * B) if residual else w * B
        out.append(LayerBounds(b_in, w * B, S, lam, b_out))
        b = b_out
    return out
