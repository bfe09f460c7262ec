"""A small vision transformer with every adaptation method of the PEFT miniature, as pure functions (experiment code).

Why here and not in ``ntkprefix/``: LayerNorm, the MLP, LoRA and a classification head are not objects of the paper;
the paper's objects this model uses (Algorithm 1 ``prefix_attention``, Algorithm 2 ``ntk_attention``, the feature
maps and the reduction of a prefix) come from ``ntkprefix`` unchanged. No model library (flax, equinox) is used:
parameters are nested dicts of arrays, so "which parameters train" is a split of one dict into two
(:func:`split_parameters`), visible in one place, and the forward pass is one function of (parameters, image).

The model (pre-LayerNorm, as ViT): an 8x8 image is cut into 16 patches of 2x2 pixels, each embedded linearly, a
class token prepended and positions added (L = 17 tokens of width d); then ``layers`` blocks

    x <- x + MultiHead(LN_1(x)) W_O,        x <- x + W_2 gelu(W_1 LN_2(x)),

and a linear head on the final LayerNorm of the class token. Multi-head attention splits d into H heads of width
d_h = d / H (temperature 1/sqrt(d_h)). Per layer, the method decides what the heads attend to:

* ``plain``: softmax attention over the L tokens.
* ``prefix`` (P-Tuning V2 style, in the paper's notation [paper]): a trainable prefix P in R^{m x d} per layer,
  projected by the frozen W_K, W_V into every head, K_P = P W_K, V_P = P W_V: prefix attention (Algorithm 1).
  m d trainable numbers per layer (P-Tuning V2 itself trains the keys and values directly, 2 m d).
* ``ntk_elu``: NTK-Attention (Algorithm 2) as the authors' ViT script builds it [code]: per head phi = ELU+1 on
  d_h (r = d_h), learned Z (r x d_h) and k (r), both initialised at 0, k used through abs() whose derivative at 0
  is 0 as in torch (:func:`abs_torch`), so that k never leaves 0; d_h^2 + d_h per head, d d_h + d per layer (the
  paper's d^2 + d is the single-head count). Without ``abs_k``, k is used as it is and trains.
* ``ntk_taylor``: NTK-Attention with the Taylor map of degree g on d_h (r = C(d_h + g, g)) [derived], (Z, k)
  learned, initialised from the closed-form reduction of a random prefix of ``init_prefix`` rows,
  P ~ N(0, I) (the scale of LayerNorm outputs), through the frozen W_K, W_V.
* ``ntk_lowrank``: the current paper version's Z = Z_A Z_B of rank s [paper, via secondary descriptions], with
  ELU+1 (r = d_h) and k learned without abs; Z_A ~ N(0, 1/r), Z_B = 0 so that Z starts at 0.
* ``lora``: W_Q and W_V of every layer replaced by W + (alpha / r) A B, A (d x r) ~ N(0, 1/d), B (r x d) = 0
  (Hu et al. 2021), attention plain.
* ``head``: nothing but the new head trains; ``full``: every parameter trains.

The head is new for the adaptation task and trains under every method. The dropout of the authors' script (active
at evaluation because a fresh Dropout is built per call [code]) is not reproduced.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

import ntkprefix as nk

__all__ = ["ModelConfig", "Method", "abs_torch", "patches", "init_backbone", "init_head", "init_adapter",
           "forward", "split_parameters", "count_parameters", "DTYPE"]

DTYPE = jnp.float32
METHOD_KINDS = ("full", "head", "lora", "prefix", "ntk_elu", "ntk_taylor", "ntk_lowrank")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The backbone: width d, heads H (d_h = d / H), blocks, MLP width, classes of the head, patch side."""

    d: int = 32
    heads: int = 4
    layers: int = 2
    mlp: int = 64
    classes: int = 5
    patch: int = 2
    image: int = 8

    def __post_init__(self):
        if self.d % self.heads or self.image % self.patch:
            raise ValueError(f"need d divisible by heads and image by patch, got d={self.d}, heads={self.heads}, "
                             f"image={self.image}, patch={self.patch}")

    @property
    def head_dim(self) -> int:
        return self.d // self.heads

    @property
    def tokens(self) -> int:
        return (self.image // self.patch) ** 2 + 1


@dataclasses.dataclass(frozen=True)
class Method:
    """An adaptation method (hashable: a static argument of jit).

    Attributes:
      name: label in tables and figures. kind: one of METHOD_KINDS.
      m: prefix length (prefix). rank: LoRA r (lora) or s of Z = Z_A Z_B (ntk_lowrank). alpha: LoRA alpha.
      degree: Taylor g (ntk_taylor). abs_k: use k through abs_torch (ntk_elu). init_prefix: rows of the random
      prefix whose reduction initialises (Z, k) (ntk_taylor).
    """

    name: str
    kind: str
    m: int = 0
    rank: int = 0
    alpha: float = 0.0
    degree: int = 0
    abs_k: bool = False
    init_prefix: int = 16

    def __post_init__(self):
        if self.kind not in METHOD_KINDS:
            raise ValueError(f"method kind must be one of {METHOD_KINDS}, got {self.kind!r}")
        if self.kind == "prefix" and self.m < 1:
            raise ValueError(f"prefix tuning needs m >= 1, got m={self.m}")
        if self.kind in ("lora", "ntk_lowrank") and self.rank < 1:
            raise ValueError(f"{self.kind} needs rank >= 1, got {self.rank}")

    def feature_map(self, head_dim: int) -> nk.FeatureMap:
        if self.kind == "ntk_taylor":
            return nk.taylor_feature_map(head_dim, self.degree)
        return nk.elu_feature_map(head_dim)


@jax.custom_jvp
def abs_torch(x):
    """|x| with derivative sign(x), 0 at x = 0, as torch.abs [code] (jax.numpy.abs has derivative 1 at 0)."""
    return jnp.abs(x)


@abs_torch.defjvp
def _abs_torch_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.abs(x), jnp.sign(x) * t


def patches(images: np.ndarray, config: ModelConfig) -> np.ndarray:
    """(n, image^2) pixel rows -> (n, tokens - 1, patch^2) patches, row-major, values as given."""
    n = images.shape[0]
    side, p = config.image, config.patch
    x = images.reshape(n, side // p, p, side // p, p).transpose(0, 1, 3, 2, 4)
    return x.reshape(n, (side // p) ** 2, p * p)


def _normal(key, shape, std):
    return std * jax.random.normal(key, shape, DTYPE)


def init_backbone(key, config: ModelConfig) -> dict:
    """Backbone parameters (everything but the head): N(0, 1/fan_in) weights, zero biases, unit LayerNorms."""
    d = config.d
    keys = iter(jax.random.split(key, 4 + 6 * config.layers))
    ln = lambda: {"g": jnp.ones((d,), DTYPE), "b": jnp.zeros((d,), DTYPE)}  # noqa: E731
    layers = []
    for _ in range(config.layers):
        layers.append({
            "ln1": ln(), "ln2": ln(),
            "W_Q": _normal(next(keys), (d, d), d**-0.5), "W_K": _normal(next(keys), (d, d), d**-0.5),
            "W_V": _normal(next(keys), (d, d), d**-0.5), "W_O": _normal(next(keys), (d, d), d**-0.5),
            "W_1": _normal(next(keys), (d, config.mlp), d**-0.5), "b_1": jnp.zeros((config.mlp,), DTYPE),
            "W_2": _normal(next(keys), (config.mlp, d), config.mlp**-0.5), "b_2": jnp.zeros((d,), DTYPE),
        })
    return {
        "embed": _normal(next(keys), (config.patch**2, d), config.patch**-1.0),
        "embed_b": jnp.zeros((d,), DTYPE),
        "cls": _normal(next(keys), (d,), 1.0),
        "pos": _normal(next(keys), (config.tokens, d), 0.1),
        "layers": layers,
        "ln_f": ln(),
    }


def init_head(key, config: ModelConfig) -> dict:
    """A new linear head d -> classes (N(0, 1/d) weights, zero bias)."""
    return {"W": _normal(key, (config.d, config.classes), config.d**-0.5), "b": jnp.zeros((config.classes,), DTYPE)}


def _heads(x, config: ModelConfig):
    """(n, d) -> (H, n, d_h)."""
    return x.reshape(x.shape[0], config.heads, config.head_dim).transpose(1, 0, 2)


def init_adapter(key, method: Method, backbone: dict, config: ModelConfig) -> dict:
    """The method's trainable parameters per layer (empty for head and full)."""
    d, H, d_h = config.d, config.heads, config.head_dim
    out = []
    for layer, k in zip(backbone["layers"], jax.random.split(key, config.layers)):
        if method.kind == "prefix":
            out.append({"P": _normal(k, (method.m, d), 1.0)})
        elif method.kind == "lora":
            ka, kb = jax.random.split(k)
            out.append({"A_Q": _normal(ka, (d, method.rank), d**-0.5), "B_Q": jnp.zeros((method.rank, d), DTYPE),
                        "A_V": _normal(kb, (d, method.rank), d**-0.5), "B_V": jnp.zeros((method.rank, d), DTYPE)})
        elif method.kind == "ntk_elu":
            out.append({"Z": jnp.zeros((H, d_h, d_h), DTYPE), "k": jnp.zeros((H, d_h), DTYPE)})
        elif method.kind == "ntk_lowrank":
            out.append({"Z_A": _normal(k, (H, d_h, method.rank), d_h**-0.5),
                        "Z_B": jnp.zeros((H, method.rank, d_h), DTYPE), "k": jnp.zeros((H, d_h), DTYPE)})
        elif method.kind == "ntk_taylor":
            phi = method.feature_map(d_h)
            P = _normal(k, (method.init_prefix, d), 1.0)
            K_P, V_P = _heads(P @ layer["W_K"], config), _heads(P @ layer["W_V"], config)
            Z, kk = jax.vmap(lambda K_h, V_h: nk.reduce_prefix(K_h, V_h, phi))(K_P, V_P)
            out.append({"Z": Z.astype(DTYPE), "k": kk.astype(DTYPE)})
        else:
            out.append({})
    return {"layers": out}


def _layer_norm(x, p, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps) * p["g"] + p["b"]


def _softmax_attention(Q, K, V):
    return jax.nn.softmax(Q @ K.T / math.sqrt(Q.shape[-1]), axis=-1) @ V


def _attention(h, layer: dict, adapter: dict, method: Method, config: ModelConfig):
    """Multi-head attention of the normalised tokens h (L, d) under the method; returns (L, d) before W_O."""
    W_Q, W_V = layer["W_Q"], layer["W_V"]
    if method.kind == "lora":
        scale = method.alpha / method.rank
        W_Q = W_Q + scale * adapter["A_Q"] @ adapter["B_Q"]
        W_V = W_V + scale * adapter["A_V"] @ adapter["B_V"]
    Q, K, V = _heads(h @ W_Q, config), _heads(h @ layer["W_K"], config), _heads(h @ W_V, config)
    if method.kind == "prefix":
        P = adapter["P"]
        K_P, V_P = _heads(P @ layer["W_K"], config), _heads(P @ layer["W_V"], config)
        out = jax.vmap(nk.prefix_attention)(Q, K, V, K_P, V_P)
    elif method.kind in ("ntk_elu", "ntk_taylor", "ntk_lowrank"):
        phi = method.feature_map(config.head_dim)
        Z = adapter["Z"] if "Z" in adapter else adapter["Z_A"] @ adapter["Z_B"]
        k = abs_torch(adapter["k"]) if method.abs_k else adapter["k"]
        out = jax.vmap(lambda q, kk, v, z, kv: nk.ntk_attention(q, kk, v, z, kv, phi))(Q, K, V, Z, k)
    else:
        out = jax.vmap(_softmax_attention)(Q, K, V)
    return out.transpose(1, 0, 2).reshape(h.shape[0], config.d)


def forward(backbone: dict, head: dict, adapter: dict, x: jax.Array, method: Method, config: ModelConfig) -> jax.Array:
    """Class logits of one image given as patches x (tokens - 1, patch^2): (classes,). vmap over a batch."""
    tokens = x @ backbone["embed"] + backbone["embed_b"]
    tokens = jnp.concatenate([backbone["cls"][None], tokens], axis=0) + backbone["pos"]
    for i, layer in enumerate(backbone["layers"]):
        adapter_i = adapter["layers"][i] if adapter.get("layers") else {}
        tokens = tokens + _attention(_layer_norm(tokens, layer["ln1"]), layer, adapter_i, method, config) @ layer["W_O"]
        h = _layer_norm(tokens, layer["ln2"])
        tokens = tokens + jax.nn.gelu(h @ layer["W_1"] + layer["b_1"]) @ layer["W_2"] + layer["b_2"]
    cls = _layer_norm(tokens[0], backbone["ln_f"])
    return cls @ head["W"] + head["b"]


def split_parameters(method: Method, backbone: dict, head: dict, adapter: dict) -> tuple[dict, dict]:
    """(trainable, frozen): full fine-tuning trains the backbone and the head; every other method the head and its
    adapter, the backbone frozen."""
    if method.kind == "full":
        return {"backbone": backbone, "head": head, "adapter": adapter}, {}
    return {"head": head, "adapter": adapter}, {"backbone": backbone}


def count_parameters(tree) -> int:
    """Number of scalars in a pytree of arrays."""
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(tree)))
