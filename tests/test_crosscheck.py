"""Second routes for what the checks report (issue 19): every check lists its cross-check calibrations, they are met
on the quick run, and each one bites when the measurement it re-derives is wrong."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkprefix import batched, kernels, model, sampling
from tests.conftest import claim_record
from verify import crosscheck, registry, witness
from verify.checks import prop3_3, thm3_2
from verify.verdict import no_failures

#: The cross-checks each check's JSON lists (verify/crosscheck.py, verify/registry.py::witness_cross_check).
EXPECTED = {"lem3_1": {"cross_check_counts_derived_bound_holds", "cross_check_witness_replay"},
            "thm3_2": {"cross_check_movement_from_weights", "cross_check_linearised_closed_form",
                       "cross_check_first_run_replay", "cross_check_witness_replay"},
            "prop3_3": {"cross_check_law_against_linearised_gd", "cross_check_witness_replay"},
            "thm4_1": {"cross_check_counts_rigorous_bound", "cross_check_witness_replay"},
            "depth": {"cross_check_counts_composed_bound", "cross_check_witness_replay"},
            "fig3": {"cross_check_witness_replay"}}


def test_every_check_lists_its_cross_checks_and_meets_them(quick_all):
    results = quick_all[2]
    assert set(EXPECTED) == {r["id"] for r in results["claims"]}
    for claim, names in EXPECTED.items():
        record = claim_record(results, claim)
        found = {c["name"]: c for c in record["calibrations"] if c["name"].startswith("cross_check_")}
        assert set(found) == names, (claim, set(found))
        assert all(c["met"] for c in found.values()), (claim, found)


def test_the_count_cross_check_bites():
    rows = [{"bound": b, "error": e} for b, e in ((1.0, 0.5), (2.0, 0.1), (math.inf, 3.0), (0.5, 0.2))]
    kwargs = dict(counted=lambda r: True, decidable=lambda r: math.isfinite(r["bound"]),
                  holds=lambda r: r["error"] <= r["bound"])
    right = no_failures("p", "test", failures=0, checked=3, not_checked=1, source="derived", role="reading")
    assert crosscheck.counts_from_points(right, rows, **kwargs).met
    # each of the three counts wrong alone, then two at once
    for wrong in (dict(failures=0, checked=4, not_checked=1), dict(failures=0, checked=3, not_checked=0),
                  dict(failures=1, checked=3, not_checked=1), dict(failures=0, checked=4, not_checked=0)):
        p = no_failures("p", "test", source="derived", role="reading", **wrong)
        assert not crosscheck.counts_from_points(p, rows, **kwargs).met


def test_the_witness_cross_check_bites():
    from tests.test_witness import library_witness

    w = library_witness(np.random.default_rng(9))
    assert registry.witness_cross_check(w).met
    exact = witness.REPLAYS["attention_error"](w).measured
    for offset, met in ((0.9, True), (1.1, False)):
        moved = witness.Witness(**{**vars(w), "stored": {**w.stored, "measured": exact + offset * w.stored["tolerance"]}})
        c = registry.witness_cross_check(moved)
        assert c.met is met and c.discrepancy == pytest.approx(offset, rel=1e-3)


def small_run(m=256):
    key = jax.random.PRNGKey(12)
    X, Y = sampling.section3_data(jax.random.fold_in(key, 0), n=3, d=5, d_out=2)
    W0 = np.asarray(model.init_prefix_weights(jax.random.fold_in(key, 1), 5, m, 1.5))
    a = np.asarray(model.random_signs(jax.random.fold_in(key, 2), 2, m))
    return X, Y, W0, a


def test_the_law_cross_check_bites():
    # tolerance per level (recomputed here from its derivation): 8 T gamma_{n d_out} || |S| || ||r(0)|| / ||r(T)||,
    # S = I - eta m H*; the discrepancy is the largest |direct - law| over it, so a law moved by factor x the smallest
    # level's tolerance gives a discrepancy of about factor (the unmoved difference is far below it)
    X, Y, W0, a = small_run()
    H = np.asarray(kernels.ntk_matrix(W0, X, a))
    lam, V = np.linalg.eigh(H)
    r0 = np.asarray(model.model_output(W0, X, a) - Y).reshape(-1)
    shares = (V.T @ r0) ** 2 / (r0 @ r0)
    eta = 0.25 / (256 * lam[-1])
    run = {"m": 256, "seed": 0, "W0": W0, "a": a}
    levels = (5, 40, 200)
    S = np.eye(len(H)) - eta * 256 * H
    k = len(H)
    gamma = k * 2.0**-53 / (1 - k * 2.0**-53) * max(1.0, np.linalg.norm(np.abs(S), 2))
    tolerances = [8 * T * gamma * np.linalg.norm(r0) / np.linalg.norm(np.linalg.matrix_power(S, T) @ r0) for T in levels]

    def rows(shift):
        return [{"m": 256, "seed": 0, "T": T, "eta": eta,
                 "log_law": float(np.log(np.sum(shares * (1 - eta * 256 * lam) ** (2 * T)))) + shift} for T in levels]

    c0 = prop3_3._law_cross_check(X, Y, run, rows(0.0))
    assert c0.met and c0.discrepancy < 0.05
    for factor, met in ((0.9, True), (1.1, False)):
        c = prop3_3._law_cross_check(X, Y, run, rows(factor * min(tolerances)))
        assert c.met is met and c.discrepancy == pytest.approx(factor, abs=0.05), (factor, c.discrepancy)
    assert not prop3_3._law_cross_check(X, Y, run, rows(1e-6)).met  # a law off by a millionth of a nat


def test_the_training_cross_checks_bite(monkeypatch):
    X, Y, W0, a = small_run()
    H = np.asarray(batched.ntk_matrix_batch(jnp.asarray(W0[None]), X, jnp.asarray(a[None])))[0]
    eta = 0.5 / (256 * np.linalg.eigvalsh(H)[-1])
    rec = batched.gradient_descent_batch(jnp.asarray(W0[None]), X, Y, jnp.asarray(a[None]), jnp.asarray([eta]),
                                         steps=60, record_every=6)
    checks = {c.name: c for c in thm3_2._cross_checks(X, Y, W0, a, rec, H, eta, 256)}
    assert all(c.met for c in checks.values()), checks
    # each planted at 0.9x and 1.1x its tolerance (the tolerances: 4 gamma_{d+2} of the movement; 8 T gamma_{n d_out}
    # || |S| || relative to ||F(0) - Y||, both from the instance, not from the plant)
    move, lin = checks["cross_check_movement_from_weights"], checks["cross_check_linearised_closed_form"]
    assert move.discrepancy < 0.05 * move.tolerance and lin.discrepancy < 0.05 * lin.tolerance
    F0 = np.asarray(rec.outputs)[0, 0]
    scale = float(np.linalg.norm(F0 - np.asarray(Y)))
    original = thm3_2._linearized
    for factor, met in ((0.9, True), (1.1, False)):
        moved = np.array(rec.max_movement)
        moved[0, -1] += factor * move.tolerance
        c = {c.name: c for c in thm3_2._cross_checks(X, Y, W0, a, rec._replace(max_movement=moved), H, eta, 256)}[
            "cross_check_movement_from_weights"]
        assert c.met is met and c.tolerance == pytest.approx(move.tolerance, rel=1e-12, abs=0), (factor, c)

        def shifted(H, F0, Y, eta, m, steps, factor=factor):
            out = np.array(original(H, F0, Y, eta, m, steps))
            out[-1].flat[0] += factor * lin.tolerance * scale
            return out
        with monkeypatch.context() as mp:
            mp.setattr(thm3_2, "_linearized", shifted)
            c = {c.name: c for c in thm3_2._cross_checks(X, Y, W0, a, rec, H, eta, 256)}[
                "cross_check_linearised_closed_form"]
        assert c.met is met and c.tolerance == lin.tolerance, (factor, c.discrepancy, c.tolerance)
    # far outside: a recorded movement off by 1e-12 of itself, and a linearised GD that takes half its step
    off = rec._replace(max_movement=rec.max_movement * (1 + 1e-12))
    assert not {c.name: c for c in thm3_2._cross_checks(X, Y, W0, a, off, H, eta, 256)}[
        "cross_check_movement_from_weights"].met
    monkeypatch.setattr(thm3_2, "_linearized", lambda H, F0, Y, eta, m, steps: original(H, F0, Y, eta / 2, m, steps))
    assert not {c.name: c for c in thm3_2._cross_checks(X, Y, W0, a, rec, H, eta, 256)}[
        "cross_check_linearised_closed_form"].met
