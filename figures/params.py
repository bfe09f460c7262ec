"""Parameter efficiency: what NTK-Attention's r d + r parameters buy against a prefix's m d.

Two measurements:

1. Break-even prefix length [paper counts, derived comparison]. A prefix of m rows holds m d numbers per layer;
   NTK-Attention holds Z (r x d) and k (r), r d + r [paper], so it is the smaller of the two only for prefixes longer
   than m* = (r d + r) / d = r (1 + 1/d). For the authors' map (ELU+1, r = d [paper]) m* = d + 1; for the map Theorem
   4.1 covers, the Taylor map of degree g, r = C(d + g, g) [derived] and m* grows like d^g / g!. With H heads of width
   d_h and a map per head (the authors' ViT code [code]), a layer holds H (r_h d_h + r_h) against m d = m H d_h, so
   m* = r_h (1 + 1/d_h): d_h + 1 for ELU+1.
2. Parameters needed for a given approximation error (the setting of Theorem 4.1, PAPER.md section 1): one prefix
   (m = 2^12 rows, d = 4 and d = 8, L = 16, entries of Q, K_C, V_C at most 1, the random instance family of the
   thm4_1 check) replaced by the closed-form Taylor reduction of degree g = 0..8 and by the closed-form ELU+1 sums;
   the error ||T - PrefixAttn||_inf against the trainable parameters r d + r. The smallest g (and its parameters)
   whose error is at most each target is reported, with the prefix's own m d beside it. ELU+1 is [code] and not
   covered by Theorem 4.1.

The miniature's accuracy-based counterpart (parameters each method needs to reach a test accuracy) is computed by
``python -m figures peft`` (``parameters_to_reach`` in peft.json).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import ntkprefix as nk
from ntkprefix import sampling
from verify import plotting

#: (label, d) of the widths compared: the thm4_1 check, the miniature's head and width, the authors' Section 4.4
#: script and a ViT-base head, ViT-base's width.
WIDTHS = (("thm4_1 check", 4), ("miniature head d_h", 8), ("miniature width", 32), ("Section 4.4 script / ViT-base head", 64),
          ("ViT-base width", 768))
TAYLOR_DEGREES = (1, 2, 3)
ERROR_TARGETS = (1e-2, 1e-4, 1e-8)


def break_even_prefix_length(r: int, d: int) -> float:
    """m* with m* d = r d + r: the prefix length at which a prefix and NTK-Attention hold equally many parameters."""
    return nk.parameter_counts(m=1, d=d, r=r)["ntk_attention"] / d


def break_even_table() -> list[dict]:
    rows = []
    for label, d in WIDTHS:
        maps = [("ELU+1 (r = d)", d)] + [(f"Taylor g={g} (r = C(d+g, g))", nk.taylor_feature_dimension(d, g))
                                          for g in TAYLOR_DEGREES]
        for name, r in maps:
            rows.append({"width": label, "d": d, "map": name, "r": r, "ntk_parameters": r * d + r,
                         "break_even_m": break_even_prefix_length(r, d)})
    return rows


def error_against_parameters(*, d: int, m: int, L: int, seed: int, degrees=range(0, 9)) -> dict:
    """Error of the closed-form reduction, per map, against its trainable parameters, on one prefix of m rows."""
    inst = sampling.theorem_4_1_instance(jax.random.PRNGKey(seed), d=d, L=L, m=m, entry_bound=1.0)
    Q, K, V, K_P, V_P = (jnp.asarray(a, jnp.float64) for a in inst)
    reference = nk.prefix_attention(Q, K, V, K_P, V_P)
    points = []
    for g in degrees:
        phi = nk.taylor_feature_map(d, g)
        Z, k = nk.reduce_prefix(K_P, V_P, phi)
        error = float(jnp.max(jnp.abs(nk.ntk_attention(Q, K, V, Z, k, phi) - reference)))
        points.append({"map": "taylor", "g": g, "r": phi.r, "parameters": phi.r * d + phi.r, "error": error})
    phi = nk.elu_feature_map(d)
    Z, k = nk.reduce_prefix(K_P, V_P, phi)
    error = float(jnp.max(jnp.abs(nk.ntk_attention(Q, K, V, Z, k, phi) - reference)))
    points.append({"map": "elu", "g": None, "r": phi.r, "parameters": phi.r * d + phi.r, "error": error})
    needed = []
    for target in ERROR_TARGETS:
        hit = next((p for p in points if p["map"] == "taylor" and p["error"] <= target), None)
        needed.append({"target": target, "g": None if hit is None else hit["g"],
                       "parameters": None if hit is None else hit["parameters"],
                       "prefix_parameters": m * d, "elu_reaches": points[-1]["error"] <= target})
    return {"d": d, "m": m, "L": L, "prefix_parameters": m * d, "points": points, "needed": needed}


def measure(*, quick: bool = False, seed: int = 0) -> dict:
    m = 2**10 if quick else 2**12
    return {"break_even": break_even_table(),
            "errors": [error_against_parameters(d=d, m=m, L=16, seed=seed) for d in (4, 8)],
            "error_targets": list(ERROR_TARGETS), "seed": seed}


def plot(data: dict, out_dir: Path) -> list[Path]:
    fig, (ax_b, ax_e) = plotting.new_figure(ncols=2, width=5.4, height=4.2)
    ms = np.logspace(0, 6, 200)
    for color, (label, d) in zip(plotting.COLORS, [w for w in WIDTHS if w[1] in (8, 64, 768)]):
        ax_b.plot(ms, ms * d, "-", color=color, lw=1.2, label=f"prefix m d, d = {d}")
        for row in [r for r in data["break_even"] if r["d"] == d and r["map"].startswith(("ELU", "Taylor g=2"))]:
            style = "--" if row["map"].startswith("ELU") else ":"
            ax_b.axhline(row["ntk_parameters"], color=color, ls=style, lw=0.9)
            ax_b.plot([row["break_even_m"]], [row["ntk_parameters"]], "o", color=color, ms=4)
            ax_b.annotate(f"m* = {row['break_even_m']:.0f} ({row['map'].split(' (')[0]})",
                          (row["break_even_m"], row["ntk_parameters"]), fontsize=6, xytext=(4, -9),
                          textcoords="offset points")
    ax_b.axvline(10, color="grey", lw=0.8)
    ax_b.annotate("P-Tuning V2\nprefix 10", (10, 1e2), fontsize=6, xytext=(3, 0), textcoords="offset points")
    ax_b.set(xscale="log", yscale="log", xlabel="prefix length m", ylabel="trainable parameters per layer",
             title="m* d = r d + r (dashed: ELU+1, dotted: Taylor g=2)")
    ax_b.legend(loc="upper left", fontsize=6)
    for color, block in zip(plotting.COLORS, data["errors"]):
        taylor = [p for p in block["points"] if p["map"] == "taylor"]
        ax_e.plot([p["parameters"] for p in taylor], [max(p["error"], 1e-17) for p in taylor], "o-", color=color, ms=3,
                  label=f"Taylor g = 0..8, d = {block['d']}")
        elu = next(p for p in block["points"] if p["map"] == "elu")
        ax_e.plot([elu["parameters"]], [elu["error"]], "s", color=color, ms=6, mfc="none",
                  label=f"ELU+1 closed form, d = {block['d']} (not covered by Thm 4.1)")
        ax_e.axvline(block["prefix_parameters"], color=color, lw=0.8, ls="--")
        ax_e.annotate(f"prefix m d (m = {block['m']})", (block["prefix_parameters"], 1e-3), fontsize=6, rotation=90,
                      xytext=(-8, 0), textcoords="offset points")
    for target in data["error_targets"]:
        ax_e.axhline(target, color="grey", lw=0.6, ls=":")
    ax_e.set(xscale="log", yscale="log", xlabel="trainable parameters r d + r",
             ylabel=r"$\|T - \mathrm{PrefixAttn}\|_\infty$ (1e-17: exact to rounding)",
             title="closed-form reduction: error vs parameters")
    ax_e.legend(loc="lower left", fontsize=6)
    fig.suptitle("Parameter efficiency: NTK-Attention's r d + r against a prefix's m d")
    return plotting.save(fig, out_dir, "params")
