"""Witnesses: the one instance that decided a verdict, written beside the JSON, and replayed by an independent route.

A check whose prediction is a bound "for every input" names, among the instances it measured, the one closest to
failing (the largest measured / bound; a failing instance where one fails) and returns it as a :class:`Witness`:
its arrays, the scalars needed to evaluate it, what the run stored for it (measured quantity, bound, their ratio),
and why it was chosen. ``python -m verify CLAIM`` writes it as ``<claim>.witness.npz`` beside the figures (arrays
plus one JSON string ``meta`` with the settings, seed, mode and versions of the run that wrote it).

``python -m verify replay FILE`` re-evaluates that instance by a route that shares no code with the library's
algorithms (:data:`REPLAYS`, one per ``kind``): mpmath at 40 significant digits over the stored float64 entries
(exact inputs), the Taylor kernel summed term by term, the softmax summed directly. It prints the measured quantity
against the bound and whether it agrees with the stored result, within the tolerance the witness states (for an
error of two float64 algorithms: the run's own rounding allowance, the bound's rounding term). A witness written by
another version that does not reproduce says so.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["Witness", "Replay", "FORMAT", "save", "load", "provenance", "replay", "REPLAYS", "main"]

FORMAT = 1  # bumped when the file layout changes; a reader refuses other formats


@dataclasses.dataclass
class Witness:
    """One instance and what a run measured on it.

    Attributes:
      claim: the claim id. kind: the replay route (a key of :data:`REPLAYS`).
      quantity: what was measured, in words. why: why this instance (the rule that chose it, over which points).
      arrays: the instance (float64 arrays, by name). params: the scalars the replay needs (degree, d, ...).
      stored: what the run recorded: ``measured``, ``bound``, ``ratio`` (measured / bound) and ``tolerance`` (the
        largest difference between the stored and the replayed measurement that counts as agreement, with
        ``tolerance_reason``), and any other numbers worth comparing.
      provenance: filled when written (seed, mode, settings, versions of the run).
    """

    claim: str
    kind: str
    quantity: str
    why: str
    arrays: dict
    params: dict
    stored: dict
    provenance: dict = dataclasses.field(default_factory=dict)

    def record(self) -> dict:
        """What the run's JSON keeps of it: everything but the arrays (their names and shapes instead)."""
        return {"claim": self.claim, "kind": self.kind, "quantity": self.quantity, "why": self.why,
                "params": self.params, "stored": self.stored,
                "arrays": {k: list(np.shape(v)) for k, v in self.arrays.items()}}


def save(witness: Witness, path: Path, provenance: dict) -> Path:
    """Write ``witness`` with ``provenance`` (seed, mode, settings, versions) to ``path`` (.npz, compressed)."""
    path = Path(path)
    meta = {"format": FORMAT, **witness.record(), "provenance": provenance}
    arrays = {f"array_{k}": np.asarray(v, dtype=np.float64) for k, v in witness.arrays.items()}
    with open(path, "wb") as f:
        np.savez_compressed(f, meta=np.asarray(json.dumps(meta, default=_jsonable)), **arrays)
    return path


def provenance(seed: int, mode: str, settings: dict, versions: dict) -> dict:
    """What rebuilds the run that wrote a witness: seed, mode, settings, package versions and the git commit of the
    working tree (None outside a git checkout)."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"seed": seed, "mode": mode, "settings": settings, "versions": versions, "commit": commit}


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, (tuple, set)):
        return list(x)
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def load(path: Path) -> Witness:
    """The witness in ``path``; ValueError if it is not a witness file of this format."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k[len("array_"):]: np.array(data[k]) for k in data.files if k.startswith("array_")}
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{path}: not a witness file ({error})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: witness format {meta.get('format')!r}, this version reads format {FORMAT}")
    return Witness(meta["claim"], meta["kind"], meta["quantity"], meta["why"], arrays, meta["params"], meta["stored"],
                   meta.get("provenance", {}))


@dataclasses.dataclass(frozen=True)
class Replay:
    """The replayed measurement and bound, and whether they agree with the stored ones."""

    measured: float
    bound: float
    agrees: bool
    lines: list[str]


# ---------------------------------------------------------------------------------------------------------------------
# Replay routes. Each takes a Witness and returns a Replay; none imports the library's algorithms.


def _taylor(s, g, mpmath):
    """T_g(s) = sum_{j <= g} s^j / j!, term by term."""
    term, total = mpmath.mpf(1), mpmath.mpf(1)
    for j in range(1, g + 1):
        term = term * s / j
        total += term
    return total


def _attention_error(w: Witness) -> Replay:
    """Theorem 4.1's error on one instance: max |NTK-Attention - prefix attention| in exact arithmetic (mpmath), with
    NTK-Attention's prefix part the degree-g Taylor kernel T_g(q k^T / sqrt(d)) summed pair by pair (phi(q) phi(k)
    = T_g by the multinomial theorem; no feature map, no reduction) and prefix attention the softmax over the prefix
    and input keys summed directly; the kernel bound 2 eps/(1 - eps) max|V_C|, eps = sup_{|s| <= S} |1 - T_g(s) e^-s|
    at the instance's own S (attained at s = -S or S: its derivative is s^g e^-s / g!), plus the run's rounding
    term as stored."""
    import mpmath

    with mpmath.workdps(40):  # every float64 input is exact in mpmath; 40 digits leave the sums' rounding far below
        return _attention_error_exact(w, mpmath)


def _mp(A, mpmath) -> list[list]:
    """A float64 array as rows of mpf: exact (every float64 is an mpf)."""
    return [[mpmath.mpf(float(x)) for x in row] for row in np.asarray(A)]


def _mp_matmul(A: list[list], B: list[list], mpmath) -> list[list]:
    return [[mpmath.fsum(a * B[k][c] for k, a in enumerate(row)) for c in range(len(B[0]))] for row in A]


def _mp_attention(Q, K, V, K_P, V_P, mpmath, prefix_kernel=None) -> tuple[list[list], object]:
    """(the attention output rows, S = max |q k_P^T| / sqrt(d)) over the prefix and input keys, summed directly: with
    ``prefix_kernel`` None the softmax (shifted by each row's largest score); otherwise NTK-Attention's form, the
    prefix weighted by prefix_kernel(s) and the input keys by e^s."""
    root_d = mpmath.sqrt(len(Q[0]))
    dot = lambda a, b: mpmath.fsum(x * y for x, y in zip(a, b)) / root_d  # noqa: E731
    values, out, S = V_P + V, [], mpmath.mpf(0)
    for q in Q:
        prefix, inputs = [dot(q, k) for k in K_P], [dot(q, k) for k in K]
        S = max([S] + [abs(s) for s in prefix])
        if prefix_kernel is None:
            shift = max(prefix + inputs)
            weights = [mpmath.exp(s - shift) for s in prefix + inputs]
        else:
            weights = [prefix_kernel(s) for s in prefix] + [mpmath.exp(s) for s in inputs]
        total = mpmath.fsum(weights)
        out.append([mpmath.fsum(a * v[c] for a, v in zip(weights, values)) / total for c in range(len(values[0]))])
    return out, S


def _mp_kernel_term(S, g: int, value_bound, mpmath) -> tuple[object, object]:
    """(eps, 2 eps/(1 - eps) value_bound): eps = sup_{|s| <= S} |1 - T_g(s) e^-s|, attained at s = -S or S (its
    derivative is s^g e^-s / g!); the term is inf where eps >= 1."""
    eps = max(abs(1 - _taylor(x, g, mpmath) * mpmath.exp(-x)) for x in (-S, S))
    return eps, (2 * eps / (1 - eps) * value_bound if eps < 1 else mpmath.mpf("inf"))


def _attention_error_exact(w: Witness, mpmath) -> Replay:
    Q, K, V, K_P, V_P = (_mp(w.arrays[n], mpmath) for n in ("Q", "K", "V", "K_P", "V_P"))
    g = int(w.params["g"])
    exact, S = _mp_attention(Q, K, V, K_P, V_P, mpmath)
    ntk, _ = _mp_attention(Q, K, V, K_P, V_P, mpmath, prefix_kernel=lambda s: _taylor(s, g, mpmath))
    worst = max(abs(a - b) for row_a, row_b in zip(ntk, exact) for a, b in zip(row_a, row_b))
    value_bound = mpmath.mpf(float(max(np.abs(w.arrays["V"]).max(), np.abs(w.arrays["V_P"]).max())))
    eps, kernel = _mp_kernel_term(S, g, value_bound, mpmath)
    rounding = mpmath.mpf(w.stored["rounding_term"])
    bound = kernel + rounding
    measured, stored = float(worst), float(w.stored["measured"])
    tolerance = float(w.stored["tolerance"])
    lines = [
        f"score range S = {float(S):.6g} (stored {w.stored['S']:.6g}); eps = {float(eps):.6g} (stored {w.stored['eps']:.6g})",
        f"error, exact arithmetic: {measured:.6g}; stored (float64, the library): {stored:.6g}; "
        f"|difference| {abs(measured - stored):.3g}, tolerance {tolerance:.3g} ({w.stored['tolerance_reason']})",
        f"bound: kernel term {float(kernel):.6g} (this replay) + rounding term {float(rounding):.3g} (stored) = "
        f"{float(bound):.6g} (stored {w.stored['bound']:.6g}); error / bound = {measured / float(bound):.4g} "
        f"(stored {w.stored['ratio']:.4g})",
        f"exact error within the kernel term alone (the theorem in exact arithmetic): {worst <= kernel}",
    ]
    agrees = (abs(measured - stored) <= tolerance
              and math.isclose(float(bound), float(w.stored["bound"]), rel_tol=1e-9)
              and math.isclose(float(S), float(w.stored["S"]), rel_tol=1e-12, abs_tol=1e-300))
    return Replay(measured, float(bound), agrees, lines)


def _deep_error(w: Witness) -> Replay:
    """The depth check's E_D on one instance, in exact arithmetic (mpmath): the exact stack X_l = X_{l-1} +
    softmax attention over [K_P; K] and the NTK stack with each layer's prefix weighted by its Taylor kernel T_{g_l},
    both summed directly; the composed bound B_D = sum_l beta_l prod_{l' > l} (1 + Lambda_l') re-evaluated on the
    replayed stacks: beta_l = 2 eps_l/(1 - eps_l) V_l (eps_l in mpmath at the NTK stack's layer-l score range) plus
    the stored rounding term, Lambda_l = a_V + 2 R_V (c_Q + c_K)/sqrt(d) written out here again in numpy from its
    definition (ntkprefix/depth.py's docstring), not the library's function."""
    import mpmath

    with mpmath.workdps(40):
        return _deep_error_exact(w, mpmath)


def _lipschitz(W_Q, W_K, W_V, K_P, V_P, Y, Y_other) -> float:
    """a_V + 2 R_V (c_Q + c_K)/sqrt(d) on the segment from Y to Y_other (float64; a bound, not a measurement)."""
    d = Y.shape[1]
    keys = [K_P, Y @ W_K, Y_other @ W_K]
    values = np.concatenate([V_P, Y @ W_V, Y_other @ W_V])
    a_V = np.abs(W_V).sum(axis=0).max()  # ||W_V||_inf acting on row vectors: the largest column sum
    R_V = (values.max(axis=0) - values.min(axis=0)).max()
    c_Q = max(np.abs(k @ W_Q.T).sum(axis=1).max() for k in keys)
    c_K = max(np.abs(q @ W_K.T).sum(axis=1).max() for q in (Y @ W_Q, Y_other @ W_Q))
    return float(a_V + 2 * R_V * (c_Q + c_K) / math.sqrt(d))


def _deep_error_exact(w: Witness, mpmath) -> Replay:
    X = _mp(w.arrays["X"], mpmath)
    D, degrees = int(w.params["D"]), [int(g) for g in w.params["degrees"]]

    def layer(Y, l, prefix_kernel=None):
        """Y + A_l(Y) (A_l the layer's attention, or its NTK form), the prefix's score range, max |V_C|."""
        W_Q, W_K, W_V, K_P, V_P = (_mp(w.arrays[n][l], mpmath) for n in ("W_Q", "W_K", "W_V", "K_P", "V_P"))
        V = _mp_matmul(Y, W_V, mpmath)
        A, S = _mp_attention(_mp_matmul(Y, W_Q, mpmath), _mp_matmul(Y, W_K, mpmath), V, K_P, V_P, mpmath,
                             prefix_kernel)
        value_bound = max(abs(x) for row in V_P + V for x in row)
        return [[y + a for y, a in zip(row_y, row_a)] for row_y, row_a in zip(Y, A)], S, value_bound

    to_np = lambda A: np.array([[float(x) for x in row] for row in A])  # noqa: E731
    exact, ntk = [X], [X]
    betas, lams = [], []
    for l in range(D):
        g = degrees[l]
        exact.append(layer(exact[-1], l)[0])
        nxt, S, value_bound = layer(ntk[-1], l, lambda s, g=g: _taylor(s, g, mpmath))
        _, kernel = _mp_kernel_term(S, g, value_bound, mpmath)
        betas.append(float(kernel) + float(w.stored["rounding_terms"][l]))
        lams.append(_lipschitz(*(w.arrays[n][l] for n in ("W_Q", "W_K", "W_V", "K_P", "V_P")), to_np(exact[-2]),
                               to_np(ntk[-1])))
        ntk.append(nxt)
    error = max(abs(a - b) for row_a, row_b in zip(ntk[-1], exact[-1]) for a, b in zip(row_a, row_b))
    bound = 0.0
    for beta, lam in zip(betas, lams):
        bound = bound * (1 + lam) + beta
    measured, stored, tolerance = float(error), float(w.stored["measured"]), float(w.stored["tolerance"])
    lines = [
        f"per layer: Lambda {', '.join(f'{x:.6g}' for x in lams)} (stored {', '.join(f'{x:.6g}' for x in w.stored['lipschitz'])}); "
        f"beta {', '.join(f'{x:.6g}' for x in betas)} (stored {', '.join(f'{x:.6g}' for x in w.stored['betas'])})",
        f"E_D, exact arithmetic: {measured:.6g}; stored (float64, the library): {stored:.6g}; |difference| "
        f"{abs(measured - stored):.3g}, tolerance {tolerance:.3g} ({w.stored['tolerance_reason']})",
        f"B_D (this replay) {bound:.6g} (stored {w.stored['bound']:.6g}); E_D / B_D = {measured / bound:.4g} "
        f"(stored {w.stored['ratio']:.4g})",
    ]
    agrees = (abs(measured - stored) <= tolerance and math.isclose(bound, float(w.stored["bound"]), rel_tol=1e-9)
              and all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(lams, w.stored["lipschitz"])))
    return Replay(measured, bound, agrees, lines)


def _ntk_change(w: Witness) -> Replay:
    """Lemma 3.1's change ||H(W0 + U) - H(W0)||_F on one displacement, with H = J J^T / m and J = dF/dW by
    jax.jacobian of the model F(W)_i = c_m softmax(x_i^T W) a^T written out here (not the library's closed form of
    the kernel, nor its model); the derived bound 5 (e^{4R} - 1) A(W0), A = d_out ||(|X X^T|) o (m S S^T)||_F, with
    the softmax in numpy; and whether U lies in the product of R-balls (every column ||u_r|| <= R)."""
    import jax
    import jax.numpy as jnp

    X, W0, a, U = (w.arrays[n] for n in ("X", "W0", "a", "U"))
    R, c = float(w.params["R"]), float(w.params["output_scale"])
    m = W0.shape[1]

    def model(W):
        z = jnp.asarray(X) @ W
        e = jnp.exp(z - jax.lax.stop_gradient(z.max(axis=1, keepdims=True)))
        return c * (e / e.sum(axis=1, keepdims=True)) @ jnp.asarray(a).T  # (n, d_out)

    def kernel(W):
        J = jax.jacobian(model)(jnp.asarray(W)).reshape(X.shape[0] * a.shape[0], -1)
        return np.asarray(J @ J.T) / m

    change = float(np.linalg.norm(kernel(W0 + U) - kernel(W0)))
    z = X @ W0
    S = np.exp(z - z.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    A = a.shape[0] * float(np.linalg.norm(np.abs(X @ X.T) * (m * S @ S.T)))
    bound = 5 * math.expm1(4 * R) * A
    widest = float(np.linalg.norm(U, axis=0).max())
    stored, tolerance = float(w.stored["measured"]), float(w.stored["tolerance"])
    lines = [
        f"displacement: largest column norm {widest:.6g} against R = {R:g} (inside the balls: {widest <= R * (1 + 1e-12)})",
        f"change, jax.jacobian of the model written out: {change:.6g}; stored (the library's closed form): {stored:.6g}; "
        f"|difference| {abs(change - stored):.3g}, tolerance {tolerance:.3g} ({w.stored['tolerance_reason']})",
        f"bound 5 (e^(4R) - 1) A(W0): A = {A:.6g} (stored {w.stored['majorant']:.6g}), bound {bound:.6g} (stored "
        f"{w.stored['bound']:.6g}); change / bound = {change / bound:.4g} (stored {w.stored['ratio']:.4g})",
    ]
    agrees = (abs(change - stored) <= tolerance and math.isclose(bound, float(w.stored["bound"]), rel_tol=1e-9)
              and widest <= R * (1 + 1e-12))
    return Replay(change, bound, agrees, lines)


#: The replay route of each witness kind.
REPLAYS: dict[str, Callable[[Witness], Replay]] = {"attention_error": _attention_error, "deep_error": _deep_error,
                                                   "ntk_change": _ntk_change}


def replay(path: Path) -> tuple[Witness, Replay]:
    """Load the witness in ``path`` and replay it; ValueError for an unknown kind."""
    witness = load(path)
    if witness.kind not in REPLAYS:
        raise ValueError(f"{path}: no replay route for witness kind {witness.kind!r}; known: {', '.join(REPLAYS)}")
    return witness, REPLAYS[witness.kind](witness)


def main(argv: list[str]) -> int:
    """``python -m verify replay FILE [FILE ...]``: replay each witness; exit 0 if every one agrees with its stored
    result, 1 if one does not, 2 for a usage error or a file that is not a witness."""
    import argparse

    from verify.result import package_versions

    parser = argparse.ArgumentParser(prog="python -m verify replay",
                                     description="re-evaluate a witness by a route independent of the library's "
                                                 "algorithms (verify.witness.REPLAYS)")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a <claim>.witness.npz")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # a usage error (2) or --help (0), returned like python -m verify's own
        return int(exit_.code or 0)
    from verify import jax_setup

    jax_setup.configure()  # float64 for the routes that use jax (the lem3_1 kernel's Jacobian)
    status, here = 0, package_versions()
    for path in args.files:
        try:
            w, r = replay(path)
        except (ValueError, OSError) as error:
            print(f"python -m verify replay: error: {error}", file=sys.stderr)
            return 2
        prov = w.provenance
        print(f"{path}: {w.claim} witness ({w.kind})\n  what: {w.quantity}\n  why: {w.why}\n"
              f"  written by: seed {prov.get('seed')}, {prov.get('mode')} mode, commit {prov.get('commit')}, "
              + ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items() if k in ("python", "jax", "numpy")))
        for line in r.lines:
            print("  " + line)
        changed = {k: (v, here.get(k)) for k, v in prov.get("versions", {}).items() if here.get(k) != v}
        if r.agrees:
            print(f"  AGREES with the stored result: measured {r.measured:.6g}, bound {r.bound:.6g}")
        else:
            status = 1
            print(f"  DOES NOT AGREE with the stored result" + (
                "; it was written under other versions (" + ", ".join(f"{k} {a} there, {b} here"
                                                                      for k, (a, b) in changed.items())
                + "): the witness does not reproduce under this version" if changed else ""))
    return status
