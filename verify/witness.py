"""Witnesses: the one instance that decided a verdict, written beside the JSON, and replayed by an independent route.

Every check names, among the instances it measured, the one that decided its verdict: for a bound "for every input"
(thm4_1, depth, lem3_1) the one closest to failing (the largest measured / bound; a failing instance where one
fails); for a statement about training runs (thm3_2, prop3_3) the run closest to the other side of the paper's
prediction; for a timing (fig3) the input length whose interval reaches lowest. It returns it as a :class:`Witness`:
its arrays, the scalars needed to evaluate it, what the run stored for it (measured quantity, bound, their ratio),
and why it was chosen. ``python -m verify CLAIM`` writes it as ``<claim>.witness.npz`` beside the figures (arrays
plus one JSON string ``meta`` with the settings, seed, mode and versions of the run that wrote it).

``python -m verify replay FILE`` re-evaluates that instance by a route that shares no code with the library's
algorithms (:data:`REPLAYS`, one per ``kind``): mpmath at 40 significant digits over the stored float64 entries
(exact inputs), the Taylor kernel summed term by term, the softmax summed directly (attention); jax.jacobian of the
model written out anew (the NTK); gradient descent again in extended precision with the gradient through the
softmax's Jacobian (training runs); the per-round slopes and their order statistics in plain Python (timings). It
prints the measured quantity against the bound or threshold and whether it agrees with the stored result, within
the allowance the witness or the route states (a rounding bound; for a training trajectory an estimate, said so). A
witness written by another version that does not reproduce says so.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["Witness", "Replay", "FORMAT", "save", "load", "provenance", "replay", "replay_numbers", "cross_checkable_here", "REPLAYS", "main"]

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
    margin: float = math.nan  # the largest |replayed - stored| / allowance over the numbers compared (<= 1: within)

    @property
    def discrepancy(self) -> float:
        """The margin where the replay agrees; where it does not, the margin if that exceeds 1, else inf (a
        disagreement of another kind: a threshold's side, a bound, a step): a calibration's discrepancy against 1."""
        return self.margin if self.agrees else (self.margin if self.margin > 1 else math.inf)


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
    return Replay(measured, float(bound), agrees, lines, _margin([(measured, stored, tolerance)]))


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


def _lipschitz(W_Q, W_K, W_V, K_P, V_P, Y, Y_other, xp=np):
    """a_V + 2 R_V (c_Q + c_K)/sqrt(d) on the segment from Y to Y_other (float64; a bound, not a measurement), with
    ``xp`` numpy (the replay) or jax.numpy (differentiable: the depth check's search objective)."""
    d = Y.shape[1]
    keys = [K_P, Y @ W_K, Y_other @ W_K]
    values = xp.concatenate([V_P, Y @ W_V, Y_other @ W_V])
    a_V = xp.abs(W_V).sum(axis=0).max()  # ||W_V||_inf acting on row vectors: the largest column sum
    R_V = (values.max(axis=0) - values.min(axis=0)).max()
    c_Q = xp.max(xp.stack([xp.abs(k @ W_Q.T).sum(axis=1).max() for k in keys]))
    c_K = xp.max(xp.stack([xp.abs(q @ W_K.T).sum(axis=1).max() for q in (Y @ W_Q, Y_other @ W_Q)]))
    return a_V + 2 * R_V * (c_Q + c_K) / math.sqrt(d)


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
        lams.append(float(_lipschitz(*(w.arrays[n][l] for n in ("W_Q", "W_K", "W_V", "K_P", "V_P")),
                                     to_np(exact[-2]), to_np(ntk[-1]))))
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
    return Replay(measured, bound, agrees, lines, _margin([(measured, stored, tolerance)]))


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
    return Replay(change, bound, agrees, lines, _margin([(change, stored, tolerance)]))


def _descent(X, Y, W0, a, eta: float, c: float, steps: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(||F(t) - Y||_F^2, max_r ||w_r(t) - w_r(0)||) for t = 0 .. steps of W(t+1) = W(t) - eta grad Loss(W(t)),
    Loss = ||F - Y||_F^2 / 2, F(x_i)_l = c <a_l, softmax(W^T x_i)>, in ``dtype`` (np.longdouble: 64 significant bits
    on x86-64, 11 more than float64). The gradient goes through the softmax's Jacobian, written out here:
    dLoss/dS_ir = c sum_l (F_il - y_il) a_lr, dLoss/dz_ir = S_ir (dLoss/dS_ir - sum_s S_is dLoss/dS_is),
    dLoss/dw_r = sum_i x_i dLoss/dz_ir (not the library's closed form, which factors it per output)."""
    X, Y, W, a = (np.asarray(v, dtype=np.float64).astype(dtype) for v in (X, Y, W0, a))
    start, eta, c = W.copy(), dtype(eta), dtype(c)
    squared, movement = [], []
    for t in range(steps + 1):
        z = X @ W
        e = np.exp(z - z.max(axis=1, keepdims=True))
        S = e / e.sum(axis=1, keepdims=True)
        residual = c * (S @ a.T) - Y
        squared.append((residual * residual).sum())
        movement.append(np.sqrt(((W - start) ** 2).sum(axis=0)).max())
        if t < steps:
            dS = c * (residual @ a)
            W = W - eta * (X.T @ (S * (dS - (S * dS).sum(axis=1, keepdims=True))))
    return np.array(squared), np.array(movement)


def _two_precisions(w: Witness, steps: int):
    """The run replayed in extended precision (the reference) and in float64 by the same code, and the allowance
    for the library's float64 value of each quantity at step t.

    Squared error ||R||^2, R = F - Y (n d_out entries): float64 evaluates F_il = c sum_r a_lr S_ir at a given W to
    within c gamma_N sum_r |a_lr| S_ir = c gamma_N, N = 2m + d + 10 (the softmax's m-term sum and division, the
    m-term weighted sum, a d-term score) [derived, worst case], so ||dR|| <= sqrt(n d_out) (c gamma_N + u max|R|) =
    delta and the squared error moves by at most 2 ||R|| delta + delta^2 + gamma_{n d_out} ||R||^2. The trajectory's
    own rounding (W(t) is not the exact W(t)) has no a-priori bound here: delta is raised to 10 x the output error it
    implies in float64, measured by the float64 replay against the extended one at every step (an estimate), where
    that is larger. Movement: 10 x the largest float64 effect measured up to t (an estimate), at least 16 ulps."""
    args = tuple(w.arrays[n] for n in ("X", "Y", "W0", "a")) + (float(w.params["eta"]), float(w.params["output_scale"]),
                                                                 steps)
    (sq, mv), (sq64, mv64) = _descent(*args, np.longdouble), _descent(*args, np.float64)
    sq, mv = np.asarray(sq, dtype=np.float64), np.asarray(mv, dtype=np.float64)  # the reference, rounded once
    n, d = w.arrays["X"].shape
    d_out, m = w.arrays["a"].shape
    u = 2.0**-53
    gamma = lambda k: k * u / (1 - k * u)  # noqa: E731
    implied = np.abs(sq64 - sq) / np.maximum(2 * np.sqrt(sq), np.finfo(float).tiny)  # output error each step implies
    measured = 10 * float(np.max(implied))
    moved = 10 * np.maximum.accumulate(np.abs(mv64 - mv))

    def allowance(i: int, t: int) -> float:
        if i == 0:
            root = math.sqrt(sq[t])
            delta = max(math.sqrt(n * d_out) * (float(w.params["output_scale"]) * gamma(2 * m + d + 10) + u * root),
                        measured)
            return 2 * root * delta + delta**2 + gamma(n * d_out) * sq[t]
        return max(float(moved[t]), 16 * 2.0**-52 * abs(mv[t]))

    return (sq, mv), allowance


def _margin(pairs) -> float:
    """max |replayed - stored| / allowance over (replayed, stored, allowance) triples (inf for a missing stored value or
    a difference where the allowance is 0; 0 when nothing differs)."""
    out = 0.0
    for replayed, stored, allowance in pairs:
        if not isinstance(stored, (int, float)) or isinstance(stored, bool):
            return math.inf
        diff = abs(float(replayed) - float(stored)) if not (math.isinf(float(replayed)) and replayed == stored) else 0.0
        out = max(out, diff / allowance if allowance > 0 else (0.0 if diff == 0 else math.inf))
    return out


def _within(replayed, stored, allowance: float) -> bool:
    """|replayed - stored| <= allowance; a stored value that is missing (None) or not a number never agrees, two
    equal infinities (a run that diverged in both) do."""
    if not isinstance(stored, (int, float)) or isinstance(stored, bool):
        return False
    replayed, stored = float(replayed), float(stored)
    if math.isinf(replayed) or math.isinf(stored):
        return replayed == stored
    return abs(replayed - stored) <= allowance


def _difference(replayed, stored):
    return abs(float(replayed) - float(stored)) if isinstance(stored, (int, float)) else None


def _number(x) -> str:
    return "missing" if x is None else f"{float(x):.12g}"


def _first_below(squared: np.ndarray, eps: float, budget: int) -> int | None:
    hit = np.flatnonzero(squared[: budget + 1] <= eps)
    return int(hit[0]) if hit.size else None


def _training_run(w: Witness) -> Replay:
    """Theorem 3.2's run: gradient descent from the stored W(0) trained again (:func:`_descent`, extended precision);
    the first step below eps within the budget, the squared errors on either side of it (or at the last step run),
    and the largest movement up to the template T, against the stored ones, each within the allowance of
    :func:`_two_precisions`; the first step must be the same unless the replayed squared error there is within its
    allowance of eps (then the threshold is not resolved by float64 and the step may differ by one)."""
    p, st = w.params, w.stored
    eps, budget, steps = float(p["eps"]), int(p["budget"]), int(p["steps"])
    (squared, movement), allowance = _two_precisions(w, steps)
    first = _first_below(squared, eps, budget)
    stored_first = st["first_step_below_eps"]
    compared = []  # (what, replayed, stored, allowance)
    if stored_first is not None:
        compared.append((f"||F(t) - Y||^2 at t = {stored_first}", squared[stored_first],
                         st["squared_error_at_first_step"], allowance(0, stored_first)))
        if stored_first > 0:
            compared.append((f"||F(t) - Y||^2 at t = {stored_first - 1}", squared[stored_first - 1],
                             st["squared_error_before_first_step"], allowance(0, stored_first - 1)))
    else:
        last = int(st["steps_run"])
        compared.append((f"||F(t) - Y||^2 at the last step run, t = {last}", squared[last],
                         st["squared_error_last_step"], allowance(0, last)))
    if p.get("T") is not None and st.get("max_movement") is not None:
        T = int(p["T"])
        t_max = int(np.argmax(movement[: T + 1]))
        compared.append((f"max_(t <= T = {T}, r) ||w_r(t) - w_r(0)||", movement[t_max], st["max_movement"],
                         allowance(1, t_max)))
    ok = [_within(x, y, tol) for _, x, y, tol in compared]
    near = [t for t in (stored_first, first) if t is not None and abs(float(squared[t]) - eps) <= allowance(0, t)]
    same_step = first == stored_first or bool(near)
    lines = [f"first step with ||F(t) - Y||^2 <= eps = {eps:g} within {budget} steps: {first} (stored {stored_first})"
             + ("; the squared error there is within its allowance of eps: float64 does not resolve the step" if near
                and first != stored_first else "")]
    lines += [f"{what}: {float(x):.12g} (extended precision), stored {_number(y)}; |difference| "
              f"{_number(_difference(x, y))}, allowance {tol:.3g}" for what, x, y, tol in compared]
    if p.get("T") is not None and st.get("max_movement") is not None:
        lines.append(f"movement / R = {float(movement[: int(p['T']) + 1].max()) / float(p['R']):.4g} (R = {p['R']:g}; "
                     "movement_within_R needs <= 1)")
    measured = float(first) if first is not None else math.inf
    return Replay(measured, float(budget), same_step and all(ok), lines, _margin((x, y, tol) for _, x, y, tol in compared))


def _line(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> dict:
    """Least squares y = a + b x by its closed form: b = sum (x - mean x) y / Sxx, its standard error
    sqrt(SSR / ((k - 2) Sxx)), the two-sided 95% t-interval; and how far each can move when every y_j moves by at
    most dy_j: b by sum |x_j - mean x| dy_j / Sxx (b is linear in y), the standard error by ||dy|| / sqrt((k - 2)
    Sxx) (the residuals are a projection of y)."""
    from scipy import stats

    k = len(x)
    centred = x - x.mean()
    Sxx = float(centred @ centred)
    slope = float(centred @ y / Sxx)
    residual = y - y.mean() - slope * centred
    stderr = math.sqrt(float(residual @ residual) / ((k - 2) * Sxx))
    t = float(stats.t.ppf(0.975, k - 2))
    moves = float(np.abs(centred) @ dy / Sxx)
    moves_end = moves + t * float(np.linalg.norm(dy)) / math.sqrt((k - 2) * Sxx)
    return {"slope": slope, "ci95": [slope - t * stderr, slope + t * stderr], "slope_allowance": moves,
            "end_allowance": moves_end}


def _loss_in_compute(w: Witness) -> Replay:
    """Proposition 3.3's run: gradient descent from the stored W(0) trained again to the last compute level
    (:func:`_descent`, extended precision), log(L(T)/L(0)) at every level, and both least-squares lines of it against
    compute (over the levels; from the start C = 0 as well) by their closed forms (:func:`_line`, not scipy's
    linregress); each number against the stored one within its allowance (:func:`_two_precisions` for log(L/L0),
    carried through the fits), and the run's side of 0 (upper end <= 0: falls)."""
    compared, slope, interval = _loss_in_compute_compared(w)
    st = w.stored
    ok = [_within(a, b, tol) for _, a, b, tol in compared]
    same_side = (interval[1] <= 0) == (float(st["interval"][1]) <= 0)
    lines = [f"{what}: {float(a):.10g} (replayed), stored {_number(b)}; |difference| {_number(_difference(a, b))}, "
             f"allowance {tol:.3g}" for what, a, b, tol in compared]
    lines.append(f"the run's slope {slope:.6g}, interval [{interval[0]:.6g}, {interval[1]:.6g}] (stored "
                 f"{float(st['measured']):.6g}, [{float(st['interval'][0]):.6g}, {float(st['interval'][1]):.6g}]): "
                 f"{'falls (upper end <= 0)' if interval[1] <= 0 else 'does not fall (upper end > 0)'}"
                 f"{'' if same_side else '; the stored run is on the other side of 0'}")
    return Replay(slope, 0.0, all(ok) and same_side, lines, _margin((a, b, tol) for _, a, b, tol in compared))


def _loss_in_compute_compared(w: Witness) -> tuple[list, float, list]:
    """([(what, replayed, stored, allowance)], the run's slope, its interval) of :func:`_loss_in_compute`."""
    p, st = w.params, w.stored
    steps, compute = [int(T) for T in p["steps"]], np.array(p["compute"], dtype=float)
    (sq, _), allowance = _two_precisions(w, max(steps))
    y = np.log(np.array([sq[T] / sq[0] for T in steps]))
    dy = np.array([1.01 * (allowance(0, T) / sq[T] + allowance(0, 0) / sq[0]) for T in steps])  # |d log(a/b)|
    fits = {"over_levels": _line(compute, y, dy),
            "from_start": _line(np.concatenate([[0.0], compute]), np.concatenate([[0.0], y]), np.concatenate([[0.0], dy]))}
    slope = max(f["slope"] for f in fits.values())
    interval = [max(f["ci95"][0] for f in fits.values()), max(f["ci95"][1] for f in fits.values())]
    floor = lambda x: 64 * 2.0**-52 * abs(x)  # noqa: E731  (the fits' own arithmetic, either route)
    compared = [(f"log(L/L0) at C = {C:.6g} (T = {T})", y[j], st["log_loss_ratio"][j], dy[j] + floor(y[j]))
                for j, (C, T) in enumerate(zip(compute, steps))]
    for name, f in fits.items():
        stored = st["fits"][name]
        compared += [(f"slope ({name})", f["slope"], stored["slope"], f["slope_allowance"] + floor(f["slope"])),
                     (f"95% interval low end ({name})", f["ci95"][0], stored["ci95"][0],
                      f["end_allowance"] + floor(f["ci95"][0])),
                     (f"95% interval high end ({name})", f["ci95"][1], stored["ci95"][1],
                      f["end_allowance"] + floor(f["ci95"][1]))]
    return compared, slope, interval


def _timing_slope(w: Witness, *, retime: bool = True) -> Replay:
    """Figure 3's decisive input length: from the stored times (rounds x points), each round's Theil-Sen slope of
    log(time) in log(m + L) as the median of its pairwise slopes (plain Python), their median, and the interval for
    it from the order statistics whose coverage 1 - 2 P(Bin(k, 1/2) <= j - 1) (exact binomial sums) is the largest
    j's that reaches 95% (or (min, max)); every number against the stored one within the rounding of the pairwise
    slopes: each log, difference and quotient rounds by at most one ulp, so a slope (y_j - y_i)/(x_j - x_i) moves by
    at most 4u (|y_i| + |y_j| + |s| (|x_i| + |x_j|)) / |x_j - x_i| + 4u |s| per route, and medians and order
    statistics by no more than the values they pick (twice that for two routes). Then prefix attention is timed
    again here, in numpy (float32, dense softmax; not the library), as information: a time is not reproducible
    (``retime=False`` leaves it out: the cross-check of a run compares numbers only)."""
    values, allow = _timing_values(w)
    slope, low, high, coverage = values["median slope"], values["interval low end"], values["interval high end"], \
        values["coverage"]
    st, m = w.stored, w.arrays["m"]
    L = int(w.params["L"])
    stored = {"median slope": st["measured"], "interval low end": st["interval"][0],
              "interval high end": st["interval"][1],
              **{f"round {t + 1} slope": v for t, v in enumerate(st["per_round"])}}
    ok = ([_within(values[name], stored.get(name), allow) for name in values if name != "coverage"]
          + [len(st["per_round"]) == len(w.arrays["seconds"]), math.isclose(coverage, st["coverage"], rel_tol=1e-12)])
    lines = [f"L = {L}, {len(w.arrays['seconds'])} rounds x {len(m)} prefix lengths m = {int(m[0])} .. {int(m[-1])}",
             f"median slope {slope:.10g} (stored {st['measured']:.10g}); interval [{low:.10g}, {high:.10g}] (stored "
             f"[{st['interval'][0]:.10g}, {st['interval'][1]:.10g}]), coverage {coverage:.4f} (stored "
             f"{st['coverage']:.4f}); largest |difference| "
             f"{max(abs(values[n] - float(stored[n])) for n in values if n in stored and stored[n] is not None):.3g}, "
             f"allowance {allow:.3g}",
             f"grows (low end >= 0): {low >= 0} (stored {st['interval'][0] >= 0})"
             + ("" if w.params.get("quiet_machine", True) else "; the run's machine was busy: its verdict widened "
                                                                "this interval to inconclusive")]
    if retime:
        lines.append(_time_again(L, int(w.params["d"]), [int(v) for v in m]))
    return Replay(slope, 0.0, all(ok) and (low >= 0) == (st["interval"][0] >= 0), lines,
                  _margin((values[n], stored.get(n), allow) for n in values if n != "coverage"))


def _timing_values(w: Witness) -> tuple[dict, float]:
    """({name: value} of :func:`_timing_slope`, recomputed from the stored times, and its allowance)."""
    import itertools
    import statistics
    from fractions import Fraction

    seconds, m = w.arrays["seconds"], w.arrays["m"]
    L = int(w.params["L"])
    x = [math.log(float(v) + L) for v in m]
    u = 2.0**-53
    per_round, allow = [], 0.0
    for row in seconds:
        y = [math.log(float(t)) for t in row]
        pairs = [(i, j) for i, j in itertools.combinations(range(len(x)), 2) if x[j] != x[i]]
        slopes = [(y[j] - y[i]) / (x[j] - x[i]) for i, j in pairs]
        allow = max([allow] + [2 * (4 * u * (abs(y[i]) + abs(y[j]) + abs(s) * (abs(x[i]) + abs(x[j]))) / abs(x[j] - x[i])
                                    + 4 * u * abs(s)) for (i, j), s in zip(pairs, slopes)])
        per_round.append(statistics.median(slopes))
    k = len(per_round)
    below = lambda j: sum(Fraction(math.comb(k, i), 2**k) for i in range(j + 1))  # noqa: E731  P(Bin(k, 1/2) <= j)
    j = 1
    while j + 1 <= k // 2 and 1 - 2 * below(j) >= Fraction(95, 100):
        j += 1
    ordered = sorted(per_round)
    values = {"median slope": statistics.median(per_round), "interval low end": ordered[j - 1],
              "interval high end": ordered[k - j], **{f"round {t + 1} slope": v for t, v in enumerate(per_round)},
              "coverage": float(1 - 2 * below(j - 1))}
    return values, allow


def _time_again(L: int, d: int, ms: list[int], rounds: int = 3) -> str:
    """Dense float32 prefix attention in numpy timed at each m (rounds in a random order; the median round per m) and
    the Theil-Sen slope of log(time) in log(m + L): information about this machine, compared with nothing."""
    import statistics
    import time

    rng = np.random.default_rng(0)
    Q = rng.standard_normal((L, d), dtype=np.float32)

    def attention(keys, values):
        s = Q @ keys.T / np.float32(math.sqrt(d))
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return (e @ values) / e.sum(axis=1, keepdims=True)

    data = {m: (rng.standard_normal((m + L, d), dtype=np.float32), rng.standard_normal((m + L, d), dtype=np.float32))
            for m in ms}
    times = {m: [] for m in ms}
    for _ in range(rounds):
        for m in rng.permutation(ms):
            start = time.perf_counter()
            attention(*data[int(m)])
            times[int(m)].append(time.perf_counter() - start)
    from scipy import stats

    medians = [statistics.median(times[m]) for m in ms]
    slope = float(stats.theilslopes(np.log(medians), np.log(np.array(ms, dtype=float) + L)).slope)
    return (f"timed again here (numpy float32 dense softmax, not the library; information, not compared): "
            f"{medians[0] * 1e3:.3g} ms at m = {ms[0]} .. {medians[-1] * 1e3:.3g} ms at m = {ms[-1]}, Theil-Sen slope "
            f"{slope:.3f}")


#: The replay route of each witness kind.
REPLAYS: dict[str, Callable[[Witness], Replay]] = {"attention_error": _attention_error, "deep_error": _deep_error,
                                                   "ntk_change": _ntk_change, "training_run": _training_run,
                                                   "loss_in_compute": _loss_in_compute, "timing_slope": _timing_slope}


#: Witness kinds whose replay allowance rests in part on an estimate measured against np.longdouble
#: (:func:`_two_precisions`: the trajectory's rounding, 10x the float64 effect against extended precision).
EXTENDED_REFERENCE_KINDS = ("training_run", "loss_in_compute")


def cross_checkable_here(kind: str) -> bool:
    """Whether a replay of this kind can serve as a cross-check on this platform: not for the kinds of
    :data:`EXTENDED_REFERENCE_KINDS` where np.longdouble is no wider than float64 (some platforms), since their
    allowance would then have nothing to measure the trajectory's rounding against."""
    return kind not in EXTENDED_REFERENCE_KINDS or np.finfo(np.longdouble).nmant > 52


def replay_numbers(witness: Witness) -> Replay:
    """The witness replayed as a cross-check of the run that wrote it: every compared number, and nothing that is
    information only (fig3's timing again on this machine is left out)."""
    if witness.kind == "timing_slope":
        return _timing_slope(witness, retime=False)
    return REPLAYS[witness.kind](witness)


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
