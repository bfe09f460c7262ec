"""Depth [derived]: Theorem 4.1's one-layer bound composed through D = 1..4 prefix-attention layers.

NOT a claim of the paper: the project's own extension (the paper states Theorem 4.1 for one layer; reviewers asked
what it says about multi-layer prefix tuning). Its paper column is "not a claim of the paper" (Claim.paper_claim =
False); every prediction is the project's [derived] reading, judged in the readings column only.

Model (ntkprefix/depth.py): X_l = X_{l-1} + A_l(X_{l-1}), A_l prefix attention (Algorithm 1) with its own frozen
W_Q^l, W_K^l, W_V^l and its own prefix P^l; the NTK stack replaces every layer by Algorithm 2 with the closed-form
Taylor reduction of that layer's prefix, X~_l = X~_{l-1} + N_l(X~_{l-1}). The D-layer model is the first D layers.

The bound [derived, re-derived in the ntkprefix/depth.py docstring]. With E_l = ||X~_l - X_l||_max,
E_l <= (1 + Lambda_l) E_{l-1} + beta_l, so

    E_D <= B_D = sum_{l<=D} beta_l prod_{l<l'<=D} (1 + Lambda_l'),

where beta_l is Theorem 4.1's computable one-layer bound (2 eps/(1 - eps) max|V_C| plus a rounding allowance,
ntkprefix.bounds.theorem_4_1_bound) at the input the NTK stack gives layer l, and Lambda_l = a_V + 2 R_V (c_Q + c_K)
/ sqrt(d) a Lipschitz constant of A_l in ||.||_max on the segment between the two stacks' inputs. Each constant:
a_V = ||W_V||_inf = max_c sum_r |W_V[r,c]| (values move by at most a_V delta); R_V the largest range of a value
coordinate over the prefix and both inputs (|v_j - o_i| <= R_V); c_Q = max_j ||W_Q k_j^T||_1 and c_K = max_i
||W_K q_i^T||_1 at both ends (a score moves by at most delta (c_Q + c_K)/sqrt(d)); the factor 2 bounds
sum_j p_j |ds_j - s_bar|.

Instances (ntkprefix.sampling.deep_prefix_instance): X and every prefix with entries <= b, attained; every W with
||W||_inf = w exactly, for several w (the weight norm sets the score range and Lambda). d = 4, L = 8, growing
prefixes m = 2^0 .. 2^12. Degrees: a grid g in {1, 2, 4, 8} for every layer, and (at the schedule's weight norm) a
per-layer degree schedule g_l(m) fixed before the data from the conditions alone: the a-priori propagation of
ntkprefix.depth.a_priori_layer_bounds (entries, score ranges S_l and Lipschitz bounds of every layer from b and w)
gives each layer a budget C m^-c / (D prod_{l'>l} (1 + Lambda_l')), and g_l is the smallest degree whose exact
remainder on S_l keeps 2 eps/(1 - eps) w B_l within it.

Conditions: entries_within_bound [derived hypothesis: Theorem 4.1's o(sqrt(log m)) read as a constant b] and
instances_attain_bound [derived reading: the instances sit on the boundary b, a rule of the project's].

Predictions (thresholds in the settings, fixed before the run; source and role in brackets):
(a) composed_bound [derived reading]: E_D <= B_D at every non-vacuous point (weight norm, seed, m, degrees, D);
    points where some beta_l is vacuous (eps >= 1) are not checked, and at least min_checked points must be.
(b) a_priori_bounds_hold [derived reading]: in the exact stack, every layer's input entries, score range and
    Lipschitz bound are at most the a-priori values (from b and w) the schedule was built from, at every m.
(c) deep_polynomial_error [derived sanity, not counted]: with the schedule, E_D <= C m^-c for every D and every
    m >= 16 (below, the budget is as large as the entries and the a-priori slack it adds makes the degrees explode:
    g_4(1) = 81). It cannot fail on instances meeting the conditions: the degrees are sized from the a-priori worst
    case, which leaves E_D 12 to 13 orders of magnitude below C m^-c (max E_D / (C m^-c) = 8.5e-14 in quick mode,
    seed 0; a fault inflating the deep error 20x still passes), so it is listed, never counted; its slack is
    reported (findings deep_polynomial_error_slack).

Reported beside (findings, deciding nothing): where the one-layer theory stops describing the deep model: per weight
norm and D, the slack B_D / E_D, the composed amplification prod (1 + Lambda) against the measured one E_D / E_1,
the share of vacuous bounds, and the first D at which the composed bound is vacuous or looser than slack_limit.

Constructed and searched families (issue 17), on the weights of a measured instance at w = search_weight_norm,
m = search_m. Constructed: every entry +-b, each layer's prefix rows +-b sign(W_K q) (alternating in sign) for the
largest query q of its input in the exact stack, so that the box's largest scores of both signs meet the Taylor
kernel. Searched: max over D of E_D / B_D (search_degree at every layer) raised over X and every layer's prefix in
the box by verify.search.box_ascent from the measured instance, the constructed one and search_starts random starts;
its B_D is differentiable (eps_l from verify.search.taylor_relative_error, Lambda_l as the replay writes it, the
rounding term left out) and 0 stands for a vacuous B_D. Each point found is measured at its m like every other and
enters composed_bound. Quick, seed 0: random 0.048, constructed 0.0091 (12 of its 16 points vacuous: at the corners
the scores are too large for degrees <= 8), searched 0.090 (D = 1, g = 4; reached from a uniform start; the measured
start ascends from 0.0092 to 0.028; the constructed and corner starts stay vacuous, ratio 0). An earlier search of
E_D itself (not the ratio) raised E_4 from 1.0e-5 to 5.1, where B_4 is vacuous: the box allows far more error than
the random instances show, all of it where the composed bound says nothing.

Witness (issue 17): the point with the largest E_D / B_D is written as depth.witness.npz (X and the first D layers'
weights and projected prefixes); ``python -m verify replay`` recomputes both stacks in mpmath and B_D with
Lambda_l written out again from its definition (verify.witness). Quick, seed 0: the searched point, D = 1, m = 16,
E_D / B_D = 0.090.

Controls: ``large_entries`` (X and prefixes b m^(1/2), schedule still for b: breaks (b), the exact stack leaves the
a-priori bounds the schedule is built from: in quick mode 452 violations, 188 of them score ranges and Lipschitz
bounds at every layer, not only the input entries that are the broken condition itself; (c) fails too, reported,
never counted; with entries b m^(1/4) (c) does not fail, the a-priori schedule's margin on these instances is that
large) and ``shared_reduction`` (planted fault: every layer uses layer 1's (Z, k), a wiring bug of a deep model:
breaks (a)).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ntkprefix import bounds, depth, features, sampling
from ntkprefix.attention import Projected
from ntkprefix.reduction import accumulate_prefix, empty_prefix_sums, reduce_prefix
from verify import crosscheck, instruments, plotting, search
from verify import witness as witness_routes
from verify.witness import Witness
from verify.registry import Claim, Control, RunOptions
from verify.result import Result
from verify.settings import knob
from verify.verdict import Evaluation, at_most, calibration, condition, no_failures

STATEMENT = (
    "A stack of D prefix-attention layers, each prefix replaced by its closed-form Taylor reduction, has output error "
    "E_D <= sum_l beta_l prod_{l'>l} (1 + Lambda_l'), beta_l Theorem 4.1's one-layer bound and Lambda_l the layer's "
    "Lipschitz constant; with per-layer degrees fixed from the entry and weight bounds, E_D <= C m^-c."
)

CONTROLS = {
    "large_entries": Control(
        "X and every prefix with entries b m^(1/2), far outside o(sqrt(log m)); the degree schedule still for b: the "
        "exact stack leaves the a-priori bounds the schedule is built from (deep_polynomial_error, a sanity check, "
        "fails too)",
        {"entry_growth": 0.5, "search_m": 0},
        breaks=("a_priori_bounds_hold",),
    ),
    "shared_reduction": Control(
        "every layer's NTK-Attention is given layer 1's (Z, k) (a wiring fault of a deep model)",
        {"shared_reduction": True, "search_m": 0},
        breaks=("composed_bound",),
        kind="planted fault",
    ),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every knob of the depth check, with the value used and why."""

    d: int = knob(4, "head dimension: constant, so d = O(log m); r = C(d + g, g) stays small for the schedule")
    L: int = knob(8, "input length")
    depth: int = knob(4, "D = 1..depth layers (the D-layer model is the first D layers of one stack)")
    entry_bound: float = knob(1.0, "b: entries of X and of every prefix <= b (a constant is o(sqrt(log m))), attained")
    weight_norms: tuple[float, ...] = knob((0.5, 1.0, 2.0, 3.0),
                                           "||W||_inf = w for every W: from contractive layers to large scores")
    schedule_weight_norm: float = knob(0.5, "the weight norm at which the a-priori degree schedule is run (c)")
    grid_degrees: tuple[int, ...] = knob((1, 2, 4, 8), "degrees used at every layer for the composed bound (a)")
    max_log2_m: int = knob(12, "growing prefixes m = 2^0 .. 2^max_log2_m")
    seeds: int = knob(2, "independent instances per weight norm")
    schedule_min_m: int = knob(16, "the schedule runs from this m on: below it the budget C m^-c is as large as the "
                                   "entries, and the a-priori slack it adds makes the degrees explode")
    rate: float = knob(1.0, "c in the predicted deep error C m^-c")
    constant: float = knob(1.0, "C in the predicted deep error C m^-c")
    min_checked: int = knob(200, "the composed-bound prediction needs at least this many non-vacuous points")
    slack_limit: float = knob(10.0, "reported: the composition 'describes' the deep model while it is non-vacuous and "
                                    "adds at most this factor to the one-layer slack: (B_D/E_D) / (B_1/E_1) <= this")
    noise_floor: float = knob(1e-13, "errors below this are float64 rounding: left out of the slack findings")
    prefix_offset: float = knob(1.0, "coherent prefix rows P = offset mu + noise, as a trained prefix's")
    calibration_m: int = knob(64, "prefix length of the calibration instance")
    lipschitz_probes: int = knob(8, "random perturbations per layer in the Lipschitz calibration")
    entry_growth: float = knob(0.0, "entries b m^growth; > 0 is the large_entries control")
    shared_reduction: bool = knob(False, "give every layer layer 1's (Z, k) (the shared_reduction planted fault)")
    search_m: int = knob(16, "the searched family (issue 17): prefix length of the searched instance (0: no search)")
    search_weight_norm: float = knob(2.0, "the searched family's weight norm (one of weight_norms; its composed bound "
                                          "is not vacuous at the search's degree)")
    search_degree: int = knob(4, "the searched family's degree at every layer (one of grid_degrees)")
    search_starts: int = knob(4, "random starts of the search beside the measured instance (half uniform, half corners)")
    search_steps: int = knob(20, "ascent iterations per start")

    def __post_init__(self):
        if self.d < 1 or self.L < 1 or self.depth < 1 or self.max_log2_m < 2 or self.seeds < 1:
            raise ValueError("need d, L, depth, seeds >= 1 and max_log2_m >= 2")
        if self.schedule_weight_norm not in self.weight_norms:
            raise ValueError(f"schedule_weight_norm {self.schedule_weight_norm} must be one of {self.weight_norms}")
        if self.search_m < 0 or (self.search_m > 0 and (self.search_weight_norm not in self.weight_norms
                                                        or self.search_degree not in self.grid_degrees)):
            raise ValueError(f"need search_m >= 0, and with a search (search_m > 0) search_weight_norm in "
                             f"{self.weight_norms} and search_degree in {self.grid_degrees}; got search_m = "
                             f"{self.search_m}, search_weight_norm = {self.search_weight_norm}, search_degree = "
                             f"{self.search_degree} (set them, or search_m = 0 for no search)")

    def ms(self) -> list[int]:
        return [2**i for i in range(self.max_log2_m + 1)]

    def predicted_error(self, m: int) -> float:
        return self.constant * m ** (-self.rate)

    def a_priori(self, m: int, weight_norm: float) -> list[depth.LayerBounds]:
        """A-priori bounds of every layer; the NTK stack's inputs get the budget C m^-c as slack."""
        return depth.a_priori_layer_bounds(depth=self.depth, input_bound=self.entry_bound, prefix_bound=self.entry_bound,
                                           weight_norm=weight_norm, d=self.d, input_slack=self.predicted_error(m))

    def scheduled_degrees(self, m: int) -> list[int]:
        """g_l(m): layer l's budget C m^-c / (depth prod_{l'>l} (1 + Lambda_l')), a-priori bounds only."""
        layers = self.a_priori(m, self.schedule_weight_norm)
        out = []
        for l, layer in enumerate(layers):
            amplification = math.prod(1.0 + x.lipschitz for x in layers[l + 1 :])
            budget = self.predicted_error(m) / (self.depth * amplification)
            eps = budget / (2 * layer.key_value_bound + budget)  # 2 e/(1 - e) V = budget
            out.append(features.taylor_degree(layer.score_range, eps))
        return out


def settings(quick: bool) -> Settings:
    if quick:
        return Settings(max_log2_m=8, seeds=1, weight_norms=(0.5, 2.0, 3.0), min_checked=60)
    return Settings()


def _host(inst: sampling.DeepInstance) -> sampling.DeepInstance:
    """The instance as float64 numpy arrays: host-side slicing and bounds compile nothing for each new m."""
    return sampling.DeepInstance(*(np.asarray(a, np.float64) for a in inst))


def _layers(inst: sampling.DeepInstance, m: int, scale: float) -> list[depth.PrefixLayer]:
    return [depth.PrefixLayer(inst.W_Q[l], inst.W_K[l], inst.W_V[l], scale * inst.P[l, :m] @ inst.W_K[l],
                              scale * inst.P[l, :m] @ inst.W_V[l]) for l in range(inst.P.shape[0])]


def _grow(sums, K_P, V_P, phi, block: int = 16):
    """The running sums extended to the rows of K_P, V_P, fed in blocks of ``block`` rows (single rows below it), so
    that the reduction compiles for two row counts only, whatever m."""
    while sums.m < K_P.shape[0]:
        n = block if K_P.shape[0] - sums.m >= block and sums.m % block == 0 else 1
        sums = accumulate_prefix(sums, K_P[sums.m : sums.m + n], V_P[sums.m : sums.m + n], phi)
    return sums


def _one_layer_bound(layer: depth.PrefixLayer, Y, g: int, m: int, s: Settings) -> bounds.Theorem41Bound:
    Y = np.asarray(Y, np.float64)
    Q = Y @ layer.W_Q
    S = float(np.max(np.abs(Q @ layer.K_P.T))) / math.sqrt(s.d)
    S_abs = float(np.max(np.abs(Q) @ np.abs(layer.K_P).T)) / math.sqrt(s.d)
    V = float(max(np.max(np.abs(layer.V_P)), np.max(np.abs(Y @ layer.W_V))))
    return bounds.theorem_4_1_bound(score_range=S, score_abs_range=S_abs, degree=g, value_bound=V, m=m, L=s.L,
                                    d=s.d)


def _instance(s: Settings, key, w: float, m: int) -> sampling.DeepInstance:
    """A D-layer instance of m prefix rows at weight norm w, on the host."""
    return _host(sampling.deep_prefix_instance(key, d=s.d, L=s.L, m=m, depth=s.depth, weight_norm=w,
                                               entry_bound=s.entry_bound, prefix_offset=s.prefix_offset))


def _measure_instance(s: Settings, w: float, seed: int, key, *, inst: sampling.DeepInstance | None = None,
                      family: str = "random") -> list[dict]:
    """One growing D-layer instance measured at every m: the exact stack, and the NTK stack at every degree set.
    ``inst`` (the searched family): that instance, measured at its own m only."""
    ms = s.ms() if inst is None else [inst.P.shape[1]]
    if inst is None:
        inst = _instance(s, key, w, ms[-1])
    schedule = ({m: s.scheduled_degrees(m) for m in ms if m >= s.schedule_min_m}
                if w == s.schedule_weight_norm else {})
    top = [max([*s.grid_degrees, *(g[l] for g in schedule.values())]) for l in range(s.depth)]
    tops = [features.taylor_feature_map(s.d, g) for g in top]
    running = [empty_prefix_sums(phi, s.d) for phi in tops]  # sums of the UNSCALED prefix, top degree per layer
    rows = []
    for m in ms:
        scale = m**s.entry_growth
        unscaled = _layers(inst, m, 1.0)
        running = [_grow(sums, lay.K_P, lay.V_P, phi) for sums, lay, phi in zip(running, unscaled, tops)]
        host_sums = [(np.asarray(x.Z, np.float64), np.asarray(x.k, np.float64)) for x in running]
        X = inst.X * scale
        layers = _layers(inst, m, scale)
        exact = depth.deep_prefix_attention(X, layers)
        entries = {"X": float(np.max(np.abs(X))) / scale, "P": float(np.max(np.abs(inst.P[:, :m]))),
                   "P_min_layer": float(np.min(np.max(np.abs(inst.P[:, :m]), axis=(1, 2))))}
        apriori = s.a_priori(m, w)
        exact_layers = []
        exact = [np.asarray(Y, np.float64) for Y in exact]
        for l, lay in enumerate(layers):
            Y = exact[l]
            exact_layers.append({"input_max": float(np.max(np.abs(Y))),
                                 "score_range": float(np.max(np.abs((Y @ lay.W_Q) @ lay.K_P.T))) / math.sqrt(s.d),
                                 "lipschitz": depth.attention_lipschitz_bound(lay, Y, Y)})
        degree_sets = [("grid", [g] * s.depth) for g in s.grid_degrees]
        if m in schedule:
            degree_sets.append(("schedule", schedule[m]))
        for kind, degrees in degree_sets:
            phis = [features.taylor_feature_map(s.d, g) for g in degrees]
            sums = []
            for l, phi in enumerate(phis):
                unit = float(scale) ** tops[l].monomial_degrees[: phi.r]  # feature alpha scales as t^|alpha|
                sums.append((host_sums[l][0][: phi.r] * (unit * scale)[:, None], host_sums[l][1][: phi.r] * unit))
            if s.shared_reduction:
                sums = [sums[0]] * s.depth
                phis = [phis[0]] * s.depth
            ntk, local = depth.deep_ntk_attention(X, layers, sums, phis)
            ntk = [np.asarray(Y, np.float64) for Y in ntk]
            one_layer = [_one_layer_bound(lay, ntk[l], degrees[l], m, s) for l, lay in enumerate(layers)]
            betas = [b.total for b in one_layer]
            lams = [depth.attention_lipschitz_bound(lay, exact[l], ntk[l]) for l, lay in enumerate(layers)]
            for D in range(1, s.depth + 1):
                error = float(np.max(np.abs(ntk[D] - exact[D])))
                bound = depth.composed_error_bound(betas[:D], lams[:D])
                rows.append({
                    "family": family, "weight_norm": w, "seed": seed, "m": m, "kind": kind, "g": degrees[0] if kind == "grid" else None,
                    "degrees": list(degrees[:D]), "D": D, "error": error if math.isfinite(error) else math.inf,
                    "first_layer_error": float(np.max(np.abs(ntk[1] - exact[1]))),
                    "local_errors": [float(e) for e in local[:D]], "betas": betas[:D], "lipschitz": lams[:D],
                    "rounding_terms": [b.rounding_term for b in one_layer[:D]],
                    "amplification_bound": math.prod(1.0 + x for x in lams[1:D]),
                    "bound": bound, "vacuous": not math.isfinite(bound),
                    "predicted": s.predicted_error(m) if kind == "schedule" else None,
                    "entry_scale": scale, **entries,
                    "exact_layers": exact_layers[:D] if D == s.depth else None,
                    "a_priori": [dataclasses.asdict(a) for a in apriori] if D == s.depth else None,
                })
    return rows


def _instance_key(s: Settings, key, w: float, seed: int):
    return jax.random.fold_in(jax.random.fold_in(key, s.weight_norms.index(w)), seed)


def _measure(s: Settings, key, instances: dict | None = None) -> list[dict]:
    """Every weight norm's seeds, growing in m, and the searched instance (kept in ``instances["searched"]``)."""
    rows = []
    for w in s.weight_norms:
        for seed in range(s.seeds):
            rows += _measure_instance(s, w, seed, _instance_key(s, key, w, seed))
    if s.search_m > 0:
        base = _instance(s, jax.random.fold_in(key, 7919), s.search_weight_norm, s.search_m)  # drawn once, for both
        constructed = _constructed(s, base)
        found, by_start = _search(s, jax.random.fold_in(key, 7919), base, constructed)
        if instances is not None:
            instances["constructed"], instances["searched"] = constructed, found
        rows += _measure_instance(s, s.search_weight_norm, 0, None, inst=constructed, family="constructed")
        rows += [dict(r, search=by_start) for r in _measure_instance(s, s.search_weight_norm, 0, None, inst=found,
                                                                     family="searched")]
    return rows


def _constructed(s: Settings, inst: sampling.DeepInstance) -> sampling.DeepInstance:
    """The constructed family (issue 17), on the searched family's weights (a measured instance at
    search_weight_norm, m = search_m): every entry +-b, arranged layer by layer for large scores of both signs, where
    the Taylor kernel errs most. X = b sign(X) of the measured instance; layer l's prefix rows are
    +-b sign(W_K q^T), q the largest query of layer l's input in the exact stack built so far (the score p W_K q^T is
    then +-b ||W_K q^T||_1, the largest |score| the box allows for that query), alternating in sign row by row.
    ``inst`` is the measured instance the search starts from."""
    b, X = s.entry_bound, s.entry_bound * np.sign(inst.X)
    P = np.array(inst.P)
    signs = np.where(np.arange(s.search_m) % 2 == 0, 1.0, -1.0)[:, None]
    for l in range(s.depth):
        Y = np.asarray(depth.deep_prefix_attention(jnp.asarray(X), _layers(sampling.DeepInstance(
            X, inst.W_Q, inst.W_K, inst.W_V, P), s.search_m, 1.0)[:l])[-1]) if l else X
        Q = Y @ inst.W_Q[l]
        q = Q[int(np.argmax(np.abs(Q).sum(axis=1)))]
        direction = np.sign(inst.W_K[l] @ q)
        P[l] = b * signs * np.where(direction == 0, 1.0, direction)[None, :]
    return sampling.DeepInstance(X, inst.W_Q, inst.W_K, inst.W_V, P)


def _search(s: Settings, key, inst: sampling.DeepInstance,
            constructed: sampling.DeepInstance) -> tuple[sampling.DeepInstance, dict]:
    """The searched family (issue 17): max over D of E_D / B_D (search_degree at every layer) raised over X and every
    layer's prefix P with entries in [-b, b], the weights fixed (those of a measured instance at search_weight_norm),
    by verify.search.box_ascent from that instance's first search_m rows, the constructed instance and search_starts
    random starts drawn from ``key`` (``inst``: that measured instance). The point found is then measured, and judged against the
    library's B_D, like every other."""
    phi = features.taylor_feature_map(s.d, s.search_degree)
    W = [(jnp.asarray(inst.W_Q[l]), jnp.asarray(inst.W_K[l]), jnp.asarray(inst.W_V[l])) for l in range(s.depth)]

    # scores beyond 700 (the direct sum's limit) are read as 700: eps there exceeds 1 by far for any degree below
    # about 1900, so such a point is vacuous either way
    S_max = min(max(b.score_range for b in s.a_priori(s.search_m, s.search_weight_norm)), 700.0)

    def deep_error_over_bound(p):
        """max over D = 1 .. depth of E_D / B_D, with B_D = sum_l beta_l prod_{l' > l} (1 + Lambda_l') differentiable: beta_l's kernel term
        2 eps_l/(1 - eps_l) V_l (eps_l from verify.search.taylor_relative_error at the NTK stack's score range; the
        rounding term, below 1e-12 of it here, left out), Lambda_l as the replay writes it (verify.witness._lipschitz
        on jax arrays); 0 where a layer's eps_l >= 1 (B_D vacuous: no ratio to raise)."""
        layers = [depth.PrefixLayer(W_Q, W_K, W_V, p["P"][l] @ W_K, p["P"][l] @ W_V) for l, (W_Q, W_K, W_V) in enumerate(W)]
        exact = depth.deep_prefix_attention(p["X"], layers)
        sums = [reduce_prefix(lay.K_P, lay.V_P, phi) for lay in layers]
        ntk, _ = depth.deep_ntk_attention(p["X"], layers, sums, [phi] * s.depth)
        bound, finite, ratios = 0.0, True, []
        for l, lay in enumerate(layers):
            Y = ntk[l]
            S = jnp.minimum(jnp.max(jnp.abs((Y @ lay.W_Q) @ lay.K_P.T)) / math.sqrt(s.d), S_max)
            eps = search.taylor_relative_error(S, s.search_degree, S_max)
            finite = finite & (eps < 1)
            eps = jnp.where(eps < 1, eps, 0.0)  # the vacuous branch never divides by 1 - eps (no nan gradient)
            V = jnp.maximum(jnp.max(jnp.abs(lay.V_P)), jnp.max(jnp.abs(Y @ lay.W_V)))
            lam = witness_routes._lipschitz(*lay, exact[l], ntk[l], xp=jnp)
            bound = bound * (1 + lam) + 2 * eps / (1 - eps) * V
            ratios.append(jnp.where(finite, jnp.max(jnp.abs(ntk[l + 1] - exact[l + 1])) / bound, 0.0))
        return jnp.max(jnp.stack(ratios))  # the worst depth D = 1 .. depth

    shapes = {"X": inst.X.shape, "P": inst.P.shape}
    starts = [search.Start("measured", {"X": inst.X, "P": inst.P}),
              search.Start("constructed", {"X": constructed.X, "P": constructed.P})] + search.random_starts(
        jax.random.fold_in(key, 1), shapes, s.entry_bound, uniform=s.search_starts // 2,
        corners=s.search_starts - s.search_starts // 2)
    record = search.box_ascent(deep_error_over_bound, starts, bound=s.entry_bound, steps=s.search_steps)
    best = record.best_params
    return sampling.DeepInstance(best["X"], inst.W_Q, inst.W_K, inst.W_V, best["P"]), record.best_by_label()


def _witness(s: Settings, key, rows: list[dict], instances: dict | None = None) -> Witness | None:
    """The point closest to failing composed_bound (the largest E_D / B_D over the checked points), rebuilt from its
    instance's key: X and the first D layers' weights and projected prefixes at its m, scaled as measured."""
    checked = [r for r in rows if not r["vacuous"]]
    if not checked or s.shared_reduction:  # the shared_reduction fault's stack is not the model the replay evaluates
        return None
    row = max(checked, key=lambda r: r["error"] / r["bound"])
    m, D = row["m"], row["D"]
    if row["family"] in ("searched", "constructed"):
        inst = instances[row["family"]]
    else:
        inst = _instance(s, _instance_key(s, key, row["weight_norm"], row["seed"]), row["weight_norm"], s.ms()[-1])
    layers = _layers(inst, m, row["entry_scale"])[:D]
    arrays = {"X": inst.X * row["entry_scale"], **{name: np.stack([getattr(lay, name) for lay in layers])
                                                   for name in ("W_Q", "W_K", "W_V", "K_P", "V_P")}}
    return Witness(
        claim="depth", kind="deep_error",
        quantity=f"E_D = max |NTK stack - exact stack| after D = {D} residual prefix-attention layers (degrees "
                 f"{row['degrees']})",
        why=f"the largest E_D / B_D over the {len(checked)} points composed_bound checks ({row['family']} family, weight norm "
            f"{row['weight_norm']}, seed {row['seed']}, m = {m}, {row['kind']} degrees, D = {D})",
        arrays=arrays, params={"degrees": row["degrees"], "D": D, "m": m, "weight_norm": row["weight_norm"],
                               "seed": row["seed"]},
        stored={"measured": row["error"], "bound": row["bound"], "ratio": row["error"] / row["bound"],
                "betas": row["betas"], "lipschitz": row["lipschitz"], "rounding_terms": row["rounding_terms"],
                "tolerance": depth.composed_error_bound(row["rounding_terms"], row["lipschitz"]),
                "tolerance_reason": "the rounding part of the run's own composed bound, sum_l rho_l prod_{l' > l} "
                                    "(1 + Lambda_l'), rho_l Theorem 4.1's rounding term at layer l (a derived "
                                    "allowance, composed like the bound)"})


def _stack_rounding(layers, stack) -> float:
    """The derived absolute tolerance for two float64 routes to the residual stack (``stack``: the reference route's
    layer inputs and output, so that the side under test never sets its own tolerance): layer l's own rounding e_l, in
    both routes, carried through the later layers as depth's error is (sum_l e_l prod_{l' > l} (1 + Lambda_l'),
    first order). e_l: instruments.softmax_rounding of the layer with |q| <= |Y_l| |W_Q| and |k| <= |Y_l| |W_K|
    (entrywise: bounds of the projected inputs), times max|A_l(Y_l)|; the projections' own d-term products move each
    score by at most 2 gamma_d S_abs and each value by gamma_d (|Y_l| |W_V|) (x 2 routes, x 2 for the softmax's
    first-order response to a score); the residual sum u max|Y_{l+1}| per route."""
    errors, lipschitz = [], []
    for l, lay in enumerate(layers):
        Y_l = np.abs(np.asarray(stack[l], np.float64))
        W_Q, W_K, W_V, K_P, V_P = (np.asarray(a, np.float64) for a in lay)
        q, k, v = Y_l @ np.abs(W_Q), np.vstack([np.abs(K_P), Y_l @ np.abs(W_K)]), np.vstack([np.abs(V_P), Y_l @ np.abs(W_V)])
        out = np.asarray(stack[l + 1], np.float64) - np.asarray(stack[l], np.float64)  # A_l(Y_l), the residual removed
        d = W_Q.shape[1]
        s_abs = float(np.max(q @ k.T)) / math.sqrt(d)
        softmax = instruments.softmax_rounding(q, k, v, out) * float(np.max(np.abs(out)))
        projections = 2 * (2 * 2 * instruments.gamma(d) * s_abs + instruments.gamma(d)) * float(np.max(v))
        residual = 2 * instruments.gamma(1) * float(np.max(np.abs(np.asarray(stack[l + 1]))))
        errors.append(softmax + projections + residual)
        lipschitz.append(depth.attention_lipschitz_bound(lay, stack[l], stack[l]))
    return depth.composed_error_bound(errors, lipschitz)


def _calibrate(s: Settings, key) -> list:
    """Layer 1 against the dense softmax and the Taylor kernel summed directly; the stack against a dense composition;
    the Lipschitz bound against difference quotients of random perturbations."""
    inst = _host(sampling.deep_prefix_instance(key, d=s.d, L=s.L, m=s.calibration_m, depth=s.depth,
                                               weight_norm=s.schedule_weight_norm, entry_bound=s.entry_bound))
    layers = _layers(inst, s.calibration_m, 1.0)
    first = layers[0]
    out = instruments.calibrate_attention(
        Projected(inst.X @ first.W_Q, inst.X @ first.W_K, inst.X @ first.W_V, first.K_P, first.V_P), degree=2)
    stack = depth.deep_prefix_attention(inst.X, layers)
    Y, dense = inst.X, [inst.X]
    for lay in layers:
        Y = Y + instruments.dense_prefix_attention(Y @ lay.W_Q, Y @ lay.W_K, Y @ lay.W_V, lay.K_P, lay.V_P)
        dense.append(Y)
    n = s.calibration_m + s.L + s.d
    discrepancy = float(jnp.max(jnp.abs(stack[-1] - Y)) / jnp.max(jnp.abs(Y)))
    out.append(calibration("deep_stack_equals_dense_composition",
                           f"ntkprefix.depth.deep_prefix_attention ({s.depth} layers) = the residual composition of "
                           "dense softmaxes written out, relative to max|Y_D|", discrepancy,
                           _stack_rounding(layers, dense) / float(jnp.max(jnp.abs(Y))),
                           "sum_l e_l prod_{l' > l} (1 + Lambda_l) (depth.composed_error_bound), e_l layer l's "
                           "rounding in both routes (softmax_rounding on the projected inputs, the projections' "
                           "d-term products, the residual sum), Lambda_l its Lipschitz bound at the layer's input"))
    # The difference quotient q = ||A(X') - A(X)||_max / delta, X' = X + delta Delta, is rounded: each attention's
    # error is at most 4 gamma_N max|A| (the dense route's two sums and a division, as in the prefix-attention
    # calibration), and X' itself is rounded, moving Delta by up to u max|X| / delta relative; Lambda's own evaluation
    # (a few exponentials and sums over the layer's entries) adds at most 8 gamma_N. The tolerance is the largest
    # relative allowance of the probe where the worst ratio q / Lambda is attained, derived from that probe (never
    # from Lambda, the side under test: scaling Lambda moves neither the worst probe nor its allowance).
    worst, allowance, delta, u = 0.0, 0.0, 1e-3 * s.entry_bound, instruments.gamma(1)
    for l, lay in enumerate(layers):
        A = lambda Z, lay=lay: instruments.dense_prefix_attention(Z @ lay.W_Q, Z @ lay.W_K, Z @ lay.W_V, lay.K_P, lay.V_P)  # noqa: E731
        A0 = A(stack[l])  # the layer at its own input: once, for every probe
        for p in range(s.lipschitz_probes):
            direction = jax.random.rademacher(jax.random.fold_in(jax.random.fold_in(key, 100 + l), p), stack[l].shape,
                                              stack[l].dtype)
            other = stack[l] + delta * direction
            A1 = A(other)
            quotient = float(jnp.max(jnp.abs(A1 - A0))) / delta
            ratio = quotient / depth.attention_lipschitz_bound(lay, stack[l], other)
            if quotient > 0 and ratio > worst:  # a zero quotient is never the worst: its allowance is not needed
                rounding = 4 * instruments.gamma(n) * float(jnp.max(jnp.abs(A0)) + jnp.max(jnp.abs(A1))) / delta
                worst, allowance = ratio, (rounding / quotient + u * float(jnp.max(jnp.abs(stack[l]))) / delta
                                           + 8 * instruments.gamma(n))
    out.append(calibration("lipschitz_bound_dominates_difference_quotients",
                           "max over layers and random corner perturbations (||Delta||_max = 1e-3 b) of "
                           "||A(X + Delta) - A(X)||_max / (||Delta||_max Lambda(X, X + Delta)) - 1, floored at 0",
                           max(0.0, worst - 1.0), allowance,
                           "the relative rounding of the worst probe's quotient: 4 gamma_N (max|A(X)| + "
                           "max|A(X')|) / (delta q) + u max|X| / delta + 8 gamma_N (Lambda's evaluation)"))
    return out


def evaluate(s: Settings, options: RunOptions) -> Evaluation:
    key = jax.random.PRNGKey(options.seed)
    calibrations = _calibrate(s, jax.random.fold_in(key, 999))
    if not all(c.met for c in calibrations):
        return Evaluation.instrument_error(calibrations)
    instances = {}
    rows = _measure(s, key, instances)
    predictions, findings = _predictions(s, rows)
    by = {p.name: p for p in predictions}
    calibrations = [*calibrations, crosscheck.counts_from_points(
        by["composed_bound"], rows, counted=lambda r: True, decidable=lambda r: crosscheck.finite(r["bound"]),
        holds=lambda r: r["error"] <= r["bound"])]
    where = findings["stops_describing_at_depth"]
    summary = (f"E_D <= B_D at {by['composed_bound'].checked} points ({by['composed_bound'].not_checked} vacuous); "
               f"schedule: max E_D/(C m^-c) {by['deep_polynomial_error'].measured:.3g}; the composition stops describing "
               f"the deep model (vacuous, or {s.slack_limit:g}x the one-layer slack) at D = "
               + ", ".join(f"{where[k] or 'beyond ' + str(s.depth)} (w={k})" for k in where))
    return Evaluation(calibrations, _conditions(s, rows), predictions, summary=summary, findings=findings,
                      measurements=rows, table=_table(s, rows),
                      tested_range=f"m = 1 .. {max(s.ms())}, D = 1 .. {s.depth}",
                      witness=_witness(s, key, rows, instances))


def _conditions(s: Settings, rows: list[dict]) -> list:
    largest = max(max(r["X"], r["P"]) for r in rows)  # of the unscaled instance; the control scales it by m^growth
    largest_scaled = max(max(r["X"], r["P"]) * r["entry_scale"] for r in rows) / s.entry_bound
    final = [r for r in rows if r["m"] == max(s.ms())]
    attained = min(min(r["X"], r["P_min_layer"]) for r in final) / s.entry_bound
    return [
        condition("entries_within_bound", "every entry of X and of every layer's prefix is at most b (Theorem 4.1's "
                  "o(sqrt(log m)) read as a constant)", largest_scaled, "<= 1 (max entry / b, relative tolerance 1e-12)",
                  largest_scaled <= 1 + 1e-12, source="derived", role="hypothesis"),
        condition("instances_attain_bound", "at the largest m, X and every layer's prefix attain b (the project's "
                  "rule: instances on the boundary)", attained,
                  ">= 1 - 1e-12 (min over instances and layers of max entry / b)",
                  attained >= 1 - 1e-12 and largest <= s.entry_bound * (1 + 1e-12), source="derived", role="reading"),
    ]


def _predictions(s: Settings, rows: list[dict]) -> tuple[list, dict]:
    checked = [r for r in rows if not r["vacuous"]]
    exceeded = [r for r in checked if not r["error"] <= r["bound"]]
    predictions = [no_failures("composed_bound", "E_D <= sum_l beta_l prod_{l'>l} (1 + Lambda_l') at every point",
                               failures=len(exceeded), checked=len(checked), not_checked=len(rows) - len(checked),
                               min_checked=s.min_checked, source="derived", role="reading",
                               free_choices=(f"min_checked = {s.min_checked}",))]
    # (b) the a-priori propagation the schedule is built on (from b and w, whatever the instances' entries: the
    # large_entries control scales them by m^growth, and the schedule is still the one for b), on the exact stack
    # (slack 0 there).
    violations = total = 0
    for r in rows:
        if r["exact_layers"] is None:
            continue
        exact_apriori = depth.a_priori_layer_bounds(depth=s.depth, input_bound=s.entry_bound,
                                                    prefix_bound=s.entry_bound, weight_norm=r["weight_norm"], d=s.d)
        for measured, bound in zip(r["exact_layers"], exact_apriori):
            total += 3
            violations += (measured["input_max"] > bound.input_bound * (1 + 1e-12))
            violations += (measured["score_range"] > bound.score_range * (1 + 1e-12))
            violations += (measured["lipschitz"] > bound.lipschitz * (1 + 1e-12))
    predictions.append(no_failures("a_priori_bounds_hold",
                                   "in the exact stack, every layer's input entries, score range and Lipschitz bound "
                                   "<= the a-priori values from b and w the degree schedule is built from",
                                   failures=violations, checked=total, min_checked=3 * s.depth, source="derived",
                                   role="reading"))
    sched = [r for r in rows if r["kind"] == "schedule"]
    worst = max(sched, key=lambda r: r["error"] / r["predicted"])
    ratio = worst["error"] / worst["predicted"]
    slack = (f"{math.log10(1 / ratio):.0f} orders of magnitude" if math.isfinite(ratio) and 0 < ratio < 1
             else "none")
    predictions.append(at_most("deep_polynomial_error",
                               f"with the a-priori per-layer schedule g_l(m), max over D, m >= {s.schedule_min_m} and seeds of "
                               f"E_D / (C m^-c), C = {s.constant:g}, c = {s.rate:g} (sanity, not counted: the degrees "
                               "are sized from the a-priori worst case, so on instances meeting the conditions it "
                               f"cannot fail; slack below the threshold: {slack})", ratio, 1.0,
                               source="derived", role="sanity",
                               free_choices=(f"constant = {s.constant:g}", f"rate = {s.rate:g}",
                                             f"schedule_min_m = {s.schedule_min_m}")))
    findings = {"worst_error_over_bound": max((r["error"] / r["bound"] for r in checked), default=math.nan),
                "instance_families": {
                    "ratio": "E_D / B_D (composed_bound)",
                    "families": {family: {"worst_ratio": max((r["error"] / r["bound"] for r in checked
                                                              if r["family"] == family), default=math.nan),
                                          "points": sum(r["family"] == family for r in checked), "how": how}
                                 for family, how in (
                                     ("random", "coherent prefixes, weights of norm w exactly"),
                                     ("constructed", f"every entry +-b, each layer's prefix rows +-b sign(W_K q) for "
                                                     f"its largest query (m = {s.search_m}, w = "
                                                     f"{s.search_weight_norm})"),
                                     ("searched", f"max over D of E_D / B_D raised by sign-gradient ascent over X and "
                                                  f"the prefixes in the box (m = {s.search_m}, w = "
                                                  f"{s.search_weight_norm}, g = {s.search_degree}; from the measured, "
                                                  f"the constructed and {s.search_starts} random starts)"))
                                 if s.search_m > 0 or family == "random"}},
                "deep_polynomial_error_slack": 1 / ratio if ratio > 0 else math.inf,
                "worst_schedule_point": {k: worst[k] for k in ("weight_norm", "seed", "m", "D", "degrees", "error",
                                                               "predicted")},
                "schedule": {str(m): s.scheduled_degrees(m) for m in s.ms() if m >= s.schedule_min_m}}
    findings.update(_depth_findings(s, rows))
    return predictions, findings


def _median(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return float(np.median(values)) if values else math.nan


def _depth_findings(s: Settings, rows: list[dict]) -> dict:
    """Per weight norm and D: slack, amplifications, vacuous share; the first D where the composition stops
    describing the deep model (vacuous at more than half the points, or its median slack more than slack_limit
    times the one-layer slack at D = 1)."""
    per, stops = {}, {}
    for w in s.weight_norms:
        stops[str(w)] = None
        one_layer_slack = math.nan
        for D in range(1, s.depth + 1):
            sel = [r for r in rows if r["weight_norm"] == w and r["D"] == D and r["kind"] == "grid" and r["m"] >= 2
                   and r["family"] == "random"]  # the growing prefixes; the searched instance is one point apart
            informative = [r for r in sel if r["error"] > s.noise_floor]
            vacuous = sum(r["vacuous"] for r in sel) / max(len(sel), 1)
            slack = _median([r["bound"] / r["error"] for r in informative if not r["vacuous"]])
            one_layer_slack = slack if D == 1 else one_layer_slack
            entry = {
                "points": len(sel), "vacuous_share": vacuous, "median_slack": slack,
                "slack_over_one_layer_slack": slack / one_layer_slack,
                "median_amplification_bound": _median([r["amplification_bound"] for r in sel]),
                "median_measured_amplification": _median([r["error"] / r["first_layer_error"] for r in informative
                                                          if r["first_layer_error"] > s.noise_floor]),
                "median_error_over_sum_of_local": _median([r["error"] / sum(r["local_errors"]) for r in informative]),
                "median_lipschitz_last_layer": _median([r["lipschitz"][-1] for r in sel]),
                "max_input_entry_last_layer": max((r["exact_layers"][D - 1]["input_max"] for r in rows
                                                   if r["exact_layers"] is not None and r["weight_norm"] == w),
                                                  default=math.nan),
            }
            per[f"w={w} D={D}"] = entry
            if stops[str(w)] is None and (vacuous > 0.5 or not slack / one_layer_slack <= s.slack_limit):
                stops[str(w)] = D
    return {"by_weight_norm_and_depth": per, "stops_describing_at_depth": stops}


def _table(s: Settings, rows: list[dict]) -> dict:
    out = []
    for key, v in _depth_findings(s, rows)["by_weight_norm_and_depth"].items():
        w, D = key.split(" ")
        sel = [r for r in rows if f"w={r['weight_norm']}" == w and f"D={r['D']}" == D and r["kind"] == "grid"
               and r["g"] == 2 and r["m"] >= 2 and r["family"] == "random"]
        out.append([w[2:], D[2:], _median([r["error"] for r in sel]), _median([r["bound"] for r in sel]),
                    v["median_slack"], v["slack_over_one_layer_slack"], v["median_amplification_bound"],
                    v["median_error_over_sum_of_local"], v["vacuous_share"], v["max_input_entry_last_layer"]])
    return {"columns": ["w", "D", "median E_D (g=2)", "median B_D (g=2)", "B_D/E_D (all g)", "slack / slack at D=1",
                        "prod(1+Lambda)", "E_D / sum of local errors", "vacuous share", "max input entry, layer D"],
            "rows": out}


def plot(result: Result, out_dir: Path) -> list[Path]:
    """E_D and B_D against m (schedule weight norm, g = 2); slack and amplifications against D per weight norm; the
    schedule's E_D against C m^-c."""
    rows = result.measurements
    st = result.settings
    fig, (ax, ax_s, ax_p) = plotting.new_figure(ncols=3, width=4.8, height=4.2)
    w0 = st["schedule_weight_norm"]
    for color, D in zip(plotting.COLORS, range(1, st["depth"] + 1)):
        for g, style in ((2, "o-"), (4, "s-")):
            sel = sorted([r for r in rows if r["weight_norm"] == w0 and r["D"] == D and r["kind"] == "grid"
                          and r["g"] == g and r["seed"] == 0], key=lambda r: r["m"])
            if sel:
                ax.plot([r["m"] for r in sel], [r["error"] for r in sel], style, color=color, ms=2.5, lw=1,
                        label=f"E_D, D={D}, g={g}")
                ax.plot([r["m"] for r in sel], [r["bound"] for r in sel], "--", color=color, lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="prefix length m (every layer)", ylabel=r"$\|\tilde X_D - X_D\|_{max}$",
           title=f"w = {w0}: error (solid) and composed bound (dashed)")
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=5, ncol=2, loc="center right")
    per = result.findings["by_weight_norm_and_depth"]
    Ds = list(range(1, st["depth"] + 1))
    for color, w in zip(plotting.COLORS, st["weight_norms"]):
        ax_s.plot(Ds, [per[f"w={w} D={D}"]["slack_over_one_layer_slack"] for D in Ds], "o-", color=color,
                  label=f"(B_D/E_D) / (B_1/E_1), w={w}")
        ax_s.plot(Ds, [per[f"w={w} D={D}"]["median_amplification_bound"] for D in Ds], ":", color=color,
                  label=f"prod (1 + Lambda), w={w}")
        ax_s.plot(Ds, [per[f"w={w} D={D}"]["median_error_over_sum_of_local"] for D in Ds], "x--", color=color, lw=0.8,
                  label=f"E_D / sum of local errors, w={w}")
    ax_s.axhline(st["slack_limit"], color="grey", lw=0.8)
    ax_s.set(yscale="log", xlabel="depth D", ylabel="median over m >= 2 and g", xticks=Ds,
             title="slack added by the composition; amplification")
    ax_s.legend(fontsize=5, ncol=1, loc="upper left")
    C, c = st["constant"], st["rate"]
    for color, D in zip(plotting.COLORS, Ds):
        sel = sorted([r for r in rows if r["kind"] == "schedule" and r["D"] == D and r["seed"] == 0],
                     key=lambda r: r["m"])
        if sel:
            ax_p.plot([r["m"] for r in sel], [r["error"] for r in sel], "o-", color=color, ms=2.5, lw=1,
                      label=f"E_D with g_l(m), D={D}")
    ms = np.array(sorted({r["m"] for r in rows}), float)
    ax_p.plot(ms, C * ms ** (-c), color="grey", lw=1.2, label=f"C m^-c (C={C:g}, c={c:g})")
    ax_p.set(xscale="log", yscale="log", xlabel="prefix length m", title=f"a-priori degree schedule (w = {w0})")
    ax_p.set_xscale("log", base=2)
    ax_p.legend(fontsize=6, loc="lower left")
    fig.suptitle(plotting.result_title(result, "Depth (composed Theorem 4.1)"))
    return plotting.save_result_figure(fig, out_dir, result)


CLAIM = Claim(
    id="depth",
    paper_item="Theorem 4.1 composed over D layers",
    tag="[derived]",
    statement=STATEMENT,
    settings=settings,
    evaluate=evaluate,
    plot=plot,
    controls=CONTROLS,
    paper_claim=False,  # the project's own extension: the paper column says "not a claim of the paper"
)
