"""Figure 3 [paper]: run time against number of parameters, one-layer NTK-Attention and prefix attention.

Random inputs, L in {32, 64, 128, 256}, d = 32, m in {2^0, ..., 2^16}, float32, both functions compiled with
jax.jit, warmed up, median of repeats measured side by side. NTK-Attention uses the authors' r = d (ELU+1,
[paper] r = d in the experiments) and holds r d + r parameters whatever m; the x axis is the prefix's m d
parameters, which is what NTK-Attention replaces. NTK-Attention's time excludes the one-off reduction of the
prefix to (Z, k), O(m r d), done once before inference.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import ntkprefix as nk
from figures.timing import median_times
from verify import plotting

LENGTHS = (32, 64, 128, 256)
D = 32


def measure(*, quick: bool = False, seed: int = 0) -> dict:
    max_log2_m = 10 if quick else 16
    repeats = 3 if quick else 7
    phi = nk.elu_feature_map(D)
    prefix_fn = jax.jit(nk.prefix_attention)
    ntk_fn = jax.jit(lambda Q, K, V, Z, k: nk.ntk_attention(Q, K, V, Z, k, phi))
    key = jax.random.PRNGKey(seed)
    rows = []
    for L in LENGTHS:
        k_x, k_w, k_p = jax.random.split(jax.random.fold_in(key, L), 3)
        X = jax.random.normal(k_x, (L, D), jnp.float32)
        W = jax.random.normal(k_w, (3, D, D), jnp.float32) / math.sqrt(D)  # a Python float keeps float32
        for i in range(max_log2_m + 1):
            m = 2**i
            P = jax.random.normal(jax.random.fold_in(k_p, m), (m, D), jnp.float32)
            inst = nk.project(X, P, W[0], W[1], W[2])
            Z, k = nk.reduce_prefix(inst.K_P, inst.V_P, phi)
            t_prefix, t_ntk = median_times(
                [(prefix_fn, (inst.Q, inst.K, inst.V, inst.K_P, inst.V_P)), (ntk_fn, (inst.Q, inst.K, inst.V, Z, k))],
                repeats=repeats,
            )
            rows.append({"L": L, "m": m, "prefix_params": m * D, "ntk_params": phi.r * D + phi.r,
                         "prefix_attention_s": t_prefix, "ntk_attention_s": t_ntk})
    return {"d": D, "r": phi.r, "dtype": "float32", "rows": rows}


def plot(data: dict, out_dir: Path) -> list[Path]:
    fig, (ax,) = plotting.new_figure(width=6.5, height=4.4)
    for color, L in zip(plotting.COLORS, LENGTHS):
        rows = [r for r in data["rows"] if r["L"] == L]
        x = [r["prefix_params"] for r in rows]
        ax.plot(x, [r["prefix_attention_s"] * 1e3 for r in rows], "o-", color=color, ms=3, label=f"prefix attention, L={L}")
        ax.plot(x, [r["ntk_attention_s"] * 1e3 for r in rows], "s--", color=color, ms=3, label=f"NTK-Attention, L={L}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(f"prefix parameters m d (d = {data['d']}); NTK-Attention holds r d + r = {data['r'] * data['d'] + data['r']}")
    ax.set_ylabel("run time per call (ms, median)")
    ax.set_title("Figure 3: run time against parameters (float32, jit, CPU)")
    ax.legend(loc="upper left", ncol=2)
    return plotting.save(fig, out_dir, "fig3")
