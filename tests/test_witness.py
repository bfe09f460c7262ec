"""Witnesses (issue 17): the instance that decided a verdict, written as .npz and replayed by an independent route
(mpmath, the Taylor kernel summed pair by pair): a faithful witness agrees, a tampered one or one computed by a
faulty library does not, and the command line says which."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from ntkprefix import attention, bounds, features, reduction
from tests.conftest import with_planted_fault
from verify import witness
from verify.__main__ import main


def library_witness(rng, *, L=5, d=3, d_v=2, m=7, g=4, b=1.3) -> witness.Witness:
    """A thm4_1-style witness measured by the library (float64): non-degenerate shapes (L, d, d_v, m all different,
    b != 1), entries off the corners of the box."""
    arrays = {"Q": rng.uniform(-b, b, (L, d)), "K": rng.uniform(-b, b, (L, d)), "V": rng.uniform(-b, b, (L, d_v)),
              "K_P": rng.uniform(-b, b, (m, d)), "V_P": rng.uniform(-b, b, (m, d_v))}
    Q, K, V, K_P, V_P = (jnp.asarray(arrays[n]) for n in ("Q", "K", "V", "K_P", "V_P"))
    phi = features.taylor_feature_map(d, g)
    Z, k = reduction.reduce_prefix(K_P, V_P, phi)
    error = float(jnp.max(jnp.abs(attention.ntk_attention(Q, K, V, Z, k, phi)
                                  - attention.prefix_attention(Q, K, V, K_P, V_P))))
    S = float(attention.max_abs_score(Q, K_P))
    bound = bounds.theorem_4_1_bound(score_range=S, score_abs_range=float(attention.max_abs_score(Q, K_P, absolute_terms=True)),
                                     degree=g, value_bound=float(max(np.abs(arrays["V"]).max(), np.abs(arrays["V_P"]).max())),
                                     m=m, L=L, d=d, input_score_abs_range=float(attention.max_abs_score(Q, K, absolute_terms=True)))
    return witness.Witness(
        claim="thm4_1", kind="attention_error", quantity="test", why="test", arrays=arrays, params={"g": g},
        stored={"measured": error, "bound": bound.total, "ratio": error / bound.total, "S": S, "eps": bound.eps,
                "kernel_term": bound.kernel_term, "rounding_term": bound.rounding_term,
                "tolerance": bound.rounding_term, "tolerance_reason": "the bound's rounding term"})


def write(w, path, versions=None):
    return witness.save(w, path, {"seed": 0, "mode": "quick", "settings": {}, "commit": None,
                                  "versions": versions or witness_versions()})


def witness_versions():
    from verify.result import package_versions

    return package_versions()


def test_a_witness_round_trips_bit_for_bit_and_its_replay_agrees(tmp_path):
    w = library_witness(np.random.default_rng(0))
    path = write(w, tmp_path / "thm4_1.witness.npz")
    back = witness.load(path)
    for name, array in w.arrays.items():
        assert back.arrays[name].dtype == np.float64 and np.array_equal(back.arrays[name], array)
    assert back.stored == w.stored and back.params == w.params
    _, r = witness.replay(path)
    assert r.agrees
    assert r.measured == pytest.approx(w.stored["measured"], abs=w.stored["tolerance"])
    assert r.measured <= r.bound


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_replay_is_independent_of_the_library_to_its_rounding_allowance(seed):
    # the library's float64 error and the exact one differ by far less than the rounding term that is their tolerance
    w = library_witness(np.random.default_rng(seed), g=2 + seed)
    r = witness.REPLAYS["attention_error"](w)
    assert abs(r.measured - w.stored["measured"]) <= w.stored["tolerance"]
    assert r.agrees


def test_the_agreement_bites_just_above_its_tolerance_and_passes_just_below():
    w = library_witness(np.random.default_rng(4))
    exact = witness.REPLAYS["attention_error"](w).measured
    tol = w.stored["tolerance"]
    for offset, agrees in ((0.9 * tol, True), (1.1 * tol, False), (-1.1 * tol, False)):
        tampered = witness.Witness(**{**vars(w), "stored": {**w.stored, "measured": exact + offset}})
        assert witness.REPLAYS["attention_error"](tampered).agrees is agrees, offset


def test_a_changed_instance_does_not_agree():
    w = library_witness(np.random.default_rng(5))
    K_P = w.arrays["K_P"].copy()
    K_P[3, 1] += 1e-3
    moved = witness.Witness(**{**vars(w), "arrays": {**w.arrays, "K_P": K_P}})
    assert not witness.REPLAYS["attention_error"](moved).agrees


def test_the_replay_does_not_share_a_fault_of_the_library(monkeypatch):
    # the mutation runner's taylor_weights_same_parity_swapped (d >= 4, g >= 5) planted in the feature map: the
    # library's error moves, the replay's Taylor kernel (summed pair by pair) does not, so the witness disagrees
    faulty = with_planted_fault(monkeypatch, "taylor_weights_same_parity_swapped")
    monkeypatch.setattr(features, "_monomial_plan", faulty._monomial_plan)
    w = library_witness(np.random.default_rng(6), L=3, d=4, d_v=3, m=6, g=8, b=1.7)
    r = witness.REPLAYS["attention_error"](w)
    assert not r.agrees
    assert abs(r.measured - w.stored["measured"]) > 1e3 * w.stored["tolerance"]


def test_the_command_line_replays_and_says_whether_each_witness_agrees(tmp_path, capsys):
    w = library_witness(np.random.default_rng(7))
    good = write(w, tmp_path / "good.witness.npz")
    assert main(["replay", str(good)]) == 0
    assert "AGREES with the stored result" in capsys.readouterr().out
    bad = write(witness.Witness(**{**vars(w), "stored": {**w.stored, "measured": 2 * w.stored["measured"]}}),
                tmp_path / "bad.witness.npz")
    assert main(["replay", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "DOES NOT AGREE" in out and "other versions" not in out
    older = write(witness.Witness(**{**vars(w), "stored": {**w.stored, "measured": 2 * w.stored["measured"]}}),
                  tmp_path / "older.witness.npz", versions={**witness_versions(), "jax": "0.4.25"})
    assert main(["replay", str(older)]) == 1
    assert "does not reproduce under this version" in capsys.readouterr().out


def test_files_that_are_not_witnesses_are_usage_errors(tmp_path, capsys):
    assert main(["replay"]) == 2  # no file
    assert "required: FILE" in capsys.readouterr().err
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    assert main(["replay", str(tmp_path / "x.npz")]) == 2
    assert "not a witness file" in capsys.readouterr().err
    w = library_witness(np.random.default_rng(8))
    path = write(w, tmp_path / "w.npz")
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        arrays = {k: data[k] for k in data.files if k != "meta"}
    for change, message in (({"format": witness.FORMAT + 1}, "witness format"), ({"kind": "nope"}, "no replay route")):
        np.savez(tmp_path / "changed.npz", meta=np.asarray(json.dumps({**meta, **change})), **arrays)
        assert main(["replay", str(tmp_path / "changed.npz")]) == 2
        assert message in capsys.readouterr().err


def deep_witness(**small):
    """A depth witness at D = 3 from the check's own measurement (weight norm 2, m = 8, degrees 4 at every layer)."""
    import dataclasses

    import jax

    from verify.checks import depth as depth_check

    s = dataclasses.replace(depth_check.settings(True), depth=3, max_log2_m=3, weight_norms=(2.0,),
                            schedule_weight_norm=2.0, grid_degrees=(4,), schedule_min_m=10**6, search_m=0, **small)
    key = jax.random.PRNGKey(3)
    rows = [r for r in depth_check._measure(s, key) if r["D"] == 3 and r["m"] == 8 and not r["vacuous"]]
    return depth_check._witness(s, key, rows)


def test_a_deep_witness_replays_in_agreement_through_three_layers():
    w = deep_witness()
    assert w.params["D"] == 3 and w.arrays["K_P"].shape == (3, 8, 4)
    r = witness.REPLAYS["deep_error"](w)
    assert r.agrees, r.lines
    assert r.measured <= r.bound


def test_a_deep_witness_from_a_faulty_lipschitz_bound_does_not_agree(monkeypatch):
    # the mutation runner's depth_lipschitz_drops_value_term in the library: the stored Lambda_l and B_D move, the
    # replay's Lambda_l (written out again from its definition) does not
    from ntkprefix import depth

    faulty = with_planted_fault(monkeypatch, "depth_lipschitz_drops_value_term")
    monkeypatch.setattr(depth, "attention_lipschitz_bound", faulty.attention_lipschitz_bound)
    assert not witness.REPLAYS["deep_error"](deep_witness()).agrees


def lemma_witness():
    """A lem3_1 witness from the check's own search on a non-degenerate instance (n = 5 > d = 3, d_out = 2,
    sigma = 1.5, m = 64): the displacement closest to the derived bound over three radii."""
    import dataclasses

    import jax

    from ntkprefix import model, perturbation, sampling
    from verify.checks import lem3_1

    s = dataclasses.replace(lem3_1.settings(True), n=5, d=3, d_out=2, sigma=1.5, restarts=1)
    key = jax.random.PRNGKey(11)
    X, _ = sampling.section3_data(jax.random.fold_in(key, 0), n=s.n, d=s.d, d_out=s.d_out)
    W0 = model.init_prefix_weights(jax.random.fold_in(key, 1), s.d, 64, s.sigma)
    a = model.random_signs(jax.random.fold_in(key, 2), s.d_out, 64)
    U = jax.random.normal(jax.random.fold_in(key, 3), (1 + s.restarts, s.d, 64))
    closest = {}
    lem3_1._worst_case(s, X, W0, a, U, [1e-4, 3e-3, 9e-3], perturbation.majorant_limit(X, s.sigma, s.d_out), closest,
                       {"m": 64, "seed": 0})
    return lem3_1._witness(s, X, closest)


def test_a_lemma_witness_replays_in_agreement_and_bites():
    w = lemma_witness()
    assert w.arrays["W0"].shape == (3, 64) and w.arrays["a"].shape == (2, 64) and w.arrays["X"].shape == (5, 3)
    r = witness.REPLAYS["ntk_change"](w)
    assert r.agrees, r.lines
    assert r.measured <= r.bound
    tol = w.stored["tolerance"]
    for offset, agrees in ((0.9 * tol, True), (1.1 * tol, False)):
        moved = witness.Witness(**{**vars(w), "stored": {**w.stored, "measured": r.measured + offset}})
        assert witness.REPLAYS["ntk_change"](moved).agrees is agrees
    outside = witness.Witness(**{**vars(w), "arrays": {**w.arrays, "U": 1.01 * w.arrays["U"]}})
    assert not witness.REPLAYS["ntk_change"](outside).agrees  # outside the balls, and its change moved


#: The claims whose check writes a witness: every one.
WITNESSED = {"thm4_1", "depth", "lem3_1", "thm3_2", "prop3_3", "fig3"}


def test_every_witness_of_the_quick_run_replays_in_agreement(quick_all):
    from pathlib import Path

    _, out, results = quick_all
    written = {r["id"]: r["witness"] for r in results["claims"] if r["witness"] is not None}
    assert set(written) == WITNESSED
    for claim, record in written.items():
        path = Path(record["file"])
        assert path == Path(out) / f"{claim}.witness.npz"
        loaded, replayed = witness.replay(path)
        assert loaded.claim == claim and loaded.stored == record["stored"]
        assert replayed.agrees, (claim, replayed.lines)


def training_witness(m=1024):
    """A thm3_2 witness from the check's own runs on a non-degenerate instance (n = 3 < d = 5, d_out = 2,
    sigma = 1.5, two seeds): the run that reached eps last (at m = 64, where the weights move far, one that never
    reaches it)."""
    import dataclasses

    import jax

    from ntkprefix import bounds, sampling
    from verify.checks import thm3_2

    log2_m = m.bit_length() - 1
    s = dataclasses.replace(thm3_2.settings(True), n=3, d=5, d_out=2, sigma=1.5, min_log2_m=log2_m,
                            max_log2_m=log2_m, probability_seeds=2, sweep_seeds=2, antithetic_seeds=0, m0_log2=log2_m,
                            eps=1e-4)
    key = jax.random.PRNGKey(5)
    X, Y = sampling.section3_data(jax.random.fold_in(key, 0), n=s.n, d=s.d, d_out=s.d_out)
    draws = [thm3_2._draws(jax.random.fold_in(key, 1), seed, s) for seed in range(2)]
    B = bounds.entry_scale_B(sigma=s.sigma, n=s.n, d=s.d, delta=s.delta)
    rows = [{"seed": seed, **row} for seed, row in
            zip(range(2), thm3_2._runs(s, X, Y, m, [draws[seed][m] for seed in range(2)], ["iid"] * 2, B, to_budget=True))]
    return thm3_2._witness(s, X, Y, rows, draws)


def test_a_training_witness_replays_in_agreement_and_bites():
    w = training_witness()
    assert w.arrays["W0"].shape == (5, 1024) and w.arrays["a"].shape == (2, 1024) and w.arrays["Y"].shape == (3, 2)
    assert w.stored["first_step_below_eps"] is not None and w.params["T"] is not None
    r = witness.REPLAYS["training_run"](w)
    assert r.agrees, r.lines
    assert r.measured == w.stored["first_step_below_eps"]
    t = w.stored["first_step_below_eps"]
    (squared, movement), allowance = witness._two_precisions(w, int(w.params["steps"]))
    for key, value, tol in (("squared_error_at_first_step", squared[t], allowance(0, t)),
                            ("max_movement", movement[: w.params["T"] + 1].max(), allowance(1, w.params["T"]))):
        for offset, agrees in ((0.9 * tol, True), (1.1 * tol, False)):
            moved = witness.Witness(**{**vars(w), "stored": {**w.stored, key: float(value) + offset}})
            assert witness.REPLAYS["training_run"](moved).agrees is agrees, (key, offset)
    later = witness.Witness(**{**vars(w), "stored": {**w.stored, "first_step_below_eps": t + 1}})
    assert not witness.REPLAYS["training_run"](later).agrees


def test_a_run_that_never_reaches_eps_is_a_failing_witness_and_replays_in_agreement():
    w = training_witness(m=64)  # m = 64: the weights move ~3 and the loss stalls near 0.05
    assert w.stored["first_step_below_eps"] is None and w.stored["measured"] == math.inf
    r = witness.REPLAYS["training_run"](w)
    assert r.agrees, r.lines
    assert r.measured == math.inf
    reached = witness.Witness(**{**vars(w), "stored": {**w.stored, "first_step_below_eps": 1500}})
    assert not witness.REPLAYS["training_run"](reached).agrees


def test_a_training_witness_from_a_half_step_library_does_not_agree(monkeypatch):
    # the mutation runner's gradient_descent_half_step planted in the library's training loop: the stored run moves
    # half as far per step, the replay (its own descent) does not
    from ntkprefix import batched

    faulty = with_planted_fault(monkeypatch, "gradient_descent_half_step")
    monkeypatch.setattr(batched, "_gradient_descent", faulty._gradient_descent)
    monkeypatch.setattr(batched, "_batch", batched._batch.__wrapped__)  # not the compiled original
    w = training_witness()
    assert not witness.REPLAYS["training_run"](w).agrees


def compute_witness():
    """A prop3_3 witness from the check's own slopes on one library run (n = 5 > d = 3, d_out = 2, sigma = 1.5,
    m = 64, eight compute levels)."""
    import jax

    from ntkprefix import kernels, model, sampling, training
    from verify.checks import prop3_3

    key = jax.random.PRNGKey(6)
    X, Y = sampling.section3_data(jax.random.fold_in(key, 0), n=5, d=3, d_out=2)
    W0 = model.init_prefix_weights(jax.random.fold_in(key, 1), 3, 64, 1.5)
    a = model.random_signs(jax.random.fold_in(key, 2), 2, 64)
    eta = 0.25 / (64 * float(jnp.linalg.eigvalsh(kernels.ntk_matrix(W0, X, a))[-1]))
    steps = [20 * (j + 1) for j in range(8)]
    losses = np.asarray(training.gradient_descent(W0, X, Y, a, eta=eta, steps=steps[-1]).loss)
    rows = [{"seed": 0, "m": 64, "T": T, "compute": 64 * 5 * 3 * T, "eta": eta,
             "log_loss_ratio": float(np.log(losses[T] / losses[0]))} for T in steps]
    slopes = prop3_3._compute_slopes(rows, np.zeros(len(rows), int))
    return prop3_3._witness(X, Y, rows, [{"m": 64, "seed": 0, "W0": np.asarray(W0), "a": np.asarray(a)}], slopes)


def test_a_compute_witness_replays_in_agreement_and_bites():
    w = compute_witness()
    r = witness.REPLAYS["loss_in_compute"](w)
    assert r.agrees, r.lines
    assert r.measured == pytest.approx(w.stored["measured"], rel=1e-9, abs=0) and r.measured < 0
    compared, _, _ = witness._loss_in_compute_compared(w)
    (_, replayed, _, tol), = [c for c in compared if c[0] == "slope (over_levels)"]
    for offset, agrees in ((0.9 * tol, True), (1.1 * tol, False)):
        fits = {**w.stored["fits"], "over_levels": {**w.stored["fits"]["over_levels"], "slope": replayed + offset}}
        moved = witness.Witness(**{**vars(w), "stored": {**w.stored, "fits": fits}})
        assert witness.REPLAYS["loss_in_compute"](moved).agrees is agrees, offset
    (_, replayed, _, tol), = [c for c in compared if c[0].startswith("log(L/L0)")][-1:]
    ratios = [*w.stored["log_loss_ratio"][:-1], replayed + 1.1 * tol]
    assert not witness.REPLAYS["loss_in_compute"](witness.Witness(**{**vars(w), "stored": {**w.stored, "log_loss_ratio": ratios}})).agrees
    shifted = witness.Witness(**{**vars(w), "params": {**w.params, "steps": [T + 1 for T in w.params["steps"]]}})
    assert not witness.REPLAYS["loss_in_compute"](shifted).agrees


def timing_witness(slope=0.9, rounds=6):
    """A fig3 witness from the check's own slopes on synthetic times ~ (m + L)^slope with multiplicative noise."""
    import dataclasses

    from verify.checks import fig3

    s = dataclasses.replace(fig3.settings(True), lengths=(16, 48), repeats=rounds)
    rng = np.random.default_rng(1)
    rows = []
    for L in s.lengths:
        for m in s.ms:
            times = 1e-5 * (m + L) ** slope * np.exp(0.05 * rng.standard_normal(rounds))
            rows.append({"L": L, "m": m, "prefix_rounds_s": list(times), "prefix_s": float(np.median(times))})
    grows = fig3._slopes(s, rows, "prefix", s.ms, plus_L=True)
    return fig3._witness(s, rows, grows, True), grows


def test_a_timing_witness_replays_in_agreement_and_bites():
    w, grows = timing_witness()
    assert w.params["L"] == min(grows, key=lambda L: grows[L]["low"]) and w.arrays["seconds"].shape == (6, 9)
    r = witness.REPLAYS["timing_slope"](w)
    assert r.agrees, r.lines
    assert r.measured == pytest.approx(0.9, abs=0.05)
    values, tol = witness._timing_values(w)
    for offset, agrees in ((0.9 * tol, True), (1.1 * tol, False)):
        moved = witness.Witness(**{**vars(w), "stored": {**w.stored, "per_round": [values["round 1 slope"] + offset,
                                                                                 *w.stored["per_round"][1:]]}})
        assert witness.REPLAYS["timing_slope"](moved).agrees is agrees, offset
    slower = witness.Witness(**{**vars(w), "arrays": {**w.arrays, "seconds": w.arrays["seconds"] * w.arrays["m"] ** 0.1}})
    assert not witness.REPLAYS["timing_slope"](slower).agrees
