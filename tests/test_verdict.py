"""The one verdict rule, the comparisons every check uses, and control detection by measured symptom."""

import math

import pytest

from verify.registry import Control, detect
from verify.verdict import (Evaluation, Verdict, at_least, at_most, calibration, condition, decide, no_failures)


def _evaluation(*, calibrated=True, condition_met=True, prediction_met=True):
    return Evaluation(
        calibrations=[calibration("c", "two routes", 0.0 if calibrated else 1.0, 1e-12, "exact")],
        conditions=[condition("cond", "assumed", 1.0, "<= 1", condition_met)],
        predictions=[at_most("pred", "implied", 0.5 if prediction_met else 2.0, 1.0)],
        summary="numbers",
    )


def test_rule_calibration_first_then_conditions_then_predictions():
    assert decide(_evaluation())[0] is Verdict.HOLDS
    assert decide(_evaluation(prediction_met=False))[0] is Verdict.VIOLATED
    assert decide(_evaluation(condition_met=False, prediction_met=False))[0] is Verdict.CONDITIONS_NOT_MET
    assert decide(_evaluation(calibrated=False, condition_met=False))[0] is Verdict.INSTRUMENT_ERROR


def test_reason_names_what_failed_with_measured_and_required():
    verdict, reason = decide(_evaluation(prediction_met=False))
    assert "pred: measured 2, required <= 1" in reason and reason.endswith("| numbers")
    verdict, reason = decide(_evaluation(condition_met=False, prediction_met=False))
    assert "cond: measured 1, required <= 1" in reason and "predictions failed: pred" in reason


def test_a_check_without_predictions_of_the_stated_claim_cannot_hold():
    with pytest.raises(ValueError, match="at least one prediction of the claim as stated"):
        decide(Evaluation(calibrations=[], conditions=[], predictions=[]))
    with pytest.raises(ValueError, match="at least one prediction of the claim as stated"):
        decide(Evaluation(calibrations=[], conditions=[], predictions=[at_most("p", "s", 0.0, 1.0, reading="stronger")]))


def test_a_failed_stronger_reading_gives_holds_only_in_a_weaker_sense():
    stated, strong_ok, strong_bad = (at_most("a", "s", 0.5, 1.0), at_most("b", "s", 0.5, 1.0, reading="stronger"),
                                     at_most("c", "s", 2.0, 1.0, reading="stronger"))
    assert decide(Evaluation([], [], [stated, strong_ok]))[0] is Verdict.HOLDS
    verdict, reason = decide(Evaluation([], [], [stated, strong_bad]))
    assert verdict is Verdict.HOLDS_WEAKER and "c (stronger reading): measured 2" in reason
    assert decide(Evaluation([], [], [at_most("a", "s", 2.0, 1.0), strong_bad]))[0] is Verdict.VIOLATED
    with pytest.raises(ValueError, match="reading"):
        at_most("p", "s", 0.0, 1.0, reading="weak")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_measurements_never_meet_a_prediction(value):
    assert not at_most("p", "s", value, 1.0).met
    assert not at_least("p", "s", value, 1.0).met


def test_compared_value_is_what_decides():
    p = at_most("slope", "s", -0.5, 0.0, compared=0.1, compared_as="slope + 3 se")
    assert not p.met and "compared: slope + 3 se 0.1" in p.line()


def test_vacuous_points_are_not_passes():
    assert no_failures("b", "s", failures=0, checked=10, not_checked=90, min_checked=10).met
    too_few = no_failures("b", "s", failures=0, checked=9, not_checked=91, min_checked=10)
    assert not too_few.met and "too few points checked (9)" in too_few.line()
    assert not no_failures("b", "s", failures=1, checked=100).met


def test_calibration_tolerance():
    assert calibration("c", "s", 1e-13, 1e-12, "r").met
    assert not calibration("c", "s", 1e-11, 1e-12, "r").met
    assert not calibration("c", "s", math.nan, 1e-12, "r").met


def test_control_is_detected_by_its_symptom_only():
    control = Control("breaks pred", {"x": 1}, breaks=("pred",))
    assert detect(control, _evaluation(prediction_met=False))["detected"]
    # Settings that "should" break the claim count for nothing when the named prediction was met.
    assert not detect(control, _evaluation(prediction_met=True))["detected"]
    # A failed calibration is not a symptom.
    assert not detect(control, _evaluation(calibrated=False, prediction_met=False))["detected"]
    with pytest.raises(KeyError, match="no condition or prediction named 'other'"):
        detect(Control("d", {}, breaks=("other",)), _evaluation())


def test_control_needs_a_named_symptom_and_a_known_kind():
    with pytest.raises(ValueError, match="at least one"):
        Control("d", {}, breaks=())
    with pytest.raises(ValueError, match="kind"):
        Control("d", {}, breaks=("p",), kind="other")
