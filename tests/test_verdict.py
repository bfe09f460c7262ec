"""The one verdict rule and its two columns, the three-valued comparisons every check uses, and control detection by
measured symptom."""

import math

import pytest

from verify.registry import Control, detect
from verify.verdict import (Evaluation, Outcome, PaperVerdict, asymptotic, at_least, at_most, calibration, condition,
                            judge, no_failures, probability_at_least)


def _conclusion(met=True, **kw):
    return at_most("concl", "implied", 0.5 if met else 2.0, 1.0, source="paper", role="conclusion", **kw)


def _evaluation(*, calibrated=True, condition_met=True, prediction_met=True, extra=(), asymptotics=(), cond_source="paper"):
    return Evaluation(
        calibrations=[calibration("c", "two routes", 0.0 if calibrated else 1.0, 1e-12, "exact")],
        conditions=[condition("cond", "assumed", 1.0, "<= 1", condition_met, source=cond_source)],
        predictions=[_conclusion(prediction_met), *extra],
        summary="numbers", asymptotic=list(asymptotics), tested_range="m = 2^4 .. 2^8",
    )


def test_rule_calibration_first_then_hypotheses_then_paper_conclusions():
    assert judge(_evaluation()).paper is PaperVerdict.CONFIRMED
    assert judge(_evaluation(prediction_met=False)).paper is PaperVerdict.CONTRADICTED
    assert judge(_evaluation(condition_met=False, prediction_met=False)).paper is PaperVerdict.HYPOTHESES_NOT_MET
    assert judge(_evaluation(calibrated=False, condition_met=False)).paper is PaperVerdict.INSTRUMENT_ERROR


def test_reason_names_what_decided_with_measured_and_required():
    j = judge(_evaluation(prediction_met=False))
    assert "concl [paper conclusion]: measured 2, required <= 1" in j.paper_reason and j.paper_reason.endswith("| numbers")
    j = judge(_evaluation(condition_met=False))
    assert "cond [paper hypothesis]: measured 1, required <= 1" in j.paper_reason


@pytest.mark.parametrize("source,role", [("derived", "reading"), ("template", "conclusion"), ("paper", "proof step"),
                                         ("derived", "conclusion"), ("paper", "reading")])
def test_a_failed_reading_never_contradicts_the_paper(source, role):
    bad = at_most("r", "ours", 2.0, 1.0, source=source, role=role, free_choices=("threshold = 1",))
    j = judge(_evaluation(extra=[bad]))
    assert j.paper is PaperVerdict.CONFIRMED
    assert [(r["name"], r["outcome"]) for r in j.readings] == [("r", "failed")]
    assert j.readings[0]["free_choices"] == ["threshold = 1"]


def test_a_check_with_only_readings_is_not_testable_here():
    reading = at_most("r", "ours", 2.0, 1.0, source="derived", role="reading")
    j = judge(Evaluation([], [], [reading]))
    assert j.paper is PaperVerdict.NOT_TESTABLE and j.readings[0]["outcome"] == "failed"
    assert judge(Evaluation([], [], [])).paper is PaperVerdict.NOT_TESTABLE


def test_a_paper_conclusion_failed_on_instances_meeting_the_hypotheses_always_contradicts():
    for extra in ([], [at_most("r", "ours", 0.1, 1.0, source="derived", role="reading")]):
        assert judge(_evaluation(prediction_met=False, extra=extra)).paper is PaperVerdict.CONTRADICTED


def test_an_asymptotic_hypothesis_is_refuted_only_by_a_trend():
    large = asymptotic("m_large_enough", "m large enough", "m = 2^4 .. 2^8", template="m ~ 1e22")
    j = judge(_evaluation(prediction_met=False, asymptotics=[large]))
    assert j.paper is PaperVerdict.CONSISTENT and j.paper_scope == "up to m = 2^4 .. 2^8"
    assert "cannot refute" in j.paper_reason and "template's value m ~ 1e22" in j.paper_reason
    trend = at_most("trend", "falls with m", 0.5, 0.0, source="paper", role="conclusion", trend=True,
                    interval=(0.2, 0.8), interval_kind="slope +- 3 se")
    assert judge(_evaluation(extra=[trend], asymptotics=[large])).paper is PaperVerdict.CONTRADICTED
    # Every conclusion met under an asymptotic hypothesis: consistent up to the tested range, never "confirmed".
    assert judge(_evaluation(asymptotics=[large])).paper is PaperVerdict.CONSISTENT
    # Hypotheses read through the project's operationalisation: the same.
    assert judge(_evaluation(prediction_met=False, cond_source="derived")).paper is PaperVerdict.CONSISTENT


def test_sanity_checks_are_listed_never_counted():
    sanity = at_most("s", "by construction", 2.0, 1.0, source="derived", role="sanity")
    j = judge(_evaluation(extra=[sanity]))
    assert j.paper is PaperVerdict.CONFIRMED and not j.readings and j.sanity[0]["outcome"] == "failed"
    assert judge(Evaluation([], [], [sanity])).paper is PaperVerdict.NOT_TESTABLE


def test_the_project_extension_says_so():
    assert judge(_evaluation(prediction_met=False), paper_claim=False).paper is PaperVerdict.NOT_A_CLAIM


def test_outcome_from_the_interval_not_the_point_estimate():
    # the estimate is below the threshold, the interval straddles it: inconclusive, with how many more seeds decide it
    p = at_most("p", "s", 0.05, 0.1, source="paper", role="conclusion", interval=(-0.01, 0.12),
                interval_kind="95% t", samples=4)
    assert p.outcome is Outcome.INCONCLUSIVE and "more seeds" in p.to_decide
    assert at_most("p", "s", 0.05, 0.1, source="paper", role="conclusion", interval=(0.0, 0.09)).outcome is Outcome.MET
    assert at_most("p", "s", 0.5, 0.1, source="paper", role="conclusion", interval=(0.2, 0.9)).outcome is Outcome.FAILED
    assert at_least("p", "s", 0.5, 0.1, source="paper", role="conclusion", interval=(0.0, 0.9)).outcome is Outcome.INCONCLUSIVE
    assert at_least("p", "s", 0.5, 0.1, source="paper", role="conclusion", interval=(0.2, 0.9)).outcome is Outcome.MET
    assert at_least("p", "s", 0.05, 0.1, source="paper", role="conclusion", interval=(0.0, 0.09)).outcome is Outcome.FAILED
    # a straddling paper conclusion makes the paper column "consistent, not refuted", never confirmed or contradicted
    j = judge(Evaluation([], [], [at_most("p", "s", 0.05, 0.1, source="paper", role="conclusion",
                                          interval=(-0.01, 0.12))]))
    assert j.paper is PaperVerdict.CONSISTENT


def test_the_more_seeds_estimate_follows_the_square_root_law():
    # half-width 0.2 at 10 seeds, distance 0.1: four times the seeds halve the width -> 30 more
    p = at_most("p", "s", 0.0, 0.1, source="paper", role="conclusion", interval=(-0.2, 0.2), samples=10)
    assert p.to_decide.startswith("about 30 more seeds")


def test_probability_is_confirmed_by_the_lower_end_and_refuted_by_the_upper_end():
    # 20/20: the one-sided 95% lower bound 0.05^(1/20) = 0.861 < 0.95: inconclusive, 39 more failure-free runs
    p = probability_at_least("prob", "P", successes=20, trials=20, target=0.95, source="paper", role="conclusion")
    assert p.outcome is Outcome.INCONCLUSIVE and p.interval[0] == pytest.approx(0.05 ** (1 / 20))
    assert p.to_decide.startswith("39 more failure-free runs") and "59 failure-free runs in all" in p.to_decide
    # 59/59 confirms 0.95 (0.05^(1/59) = 0.9505); 58/58 does not
    assert probability_at_least("prob", "P", successes=59, trials=59, target=0.95, source="paper",
                                role="conclusion").outcome is Outcome.MET
    assert probability_at_least("prob", "P", successes=58, trials=58, target=0.95, source="paper",
                                role="conclusion").outcome is Outcome.INCONCLUSIVE
    # 17/20 is NOT "probability >= 0.95" (it passed when the upper end decided); 10/20 refutes it
    assert probability_at_least("prob", "P", successes=17, trials=20, target=0.95, source="paper",
                                role="conclusion").outcome is Outcome.INCONCLUSIVE
    assert probability_at_least("prob", "P", successes=10, trials=20, target=0.95, source="paper",
                                role="conclusion").outcome is Outcome.FAILED


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_measurements_never_meet_a_prediction(value):
    assert at_most("p", "s", value, 1.0, source="paper", role="conclusion").outcome is Outcome.FAILED
    assert at_least("p", "s", value, 1.0, source="paper", role="conclusion").outcome is Outcome.FAILED


def test_a_fit_that_cannot_be_made_is_not_tested_with_its_reason():
    from verify.fitting import loglog_slope

    fit = loglog_slope([8], [0.5])
    p = at_most("slope", "s", fit["slope"], 0.0, source="paper", role="conclusion", not_tested=fit["untestable"])
    assert p.outcome is Outcome.NOT_TESTED and "two distinct x" in p.line()
    j = judge(Evaluation([], [], [p]))
    assert j.paper is PaperVerdict.NOT_TESTABLE and "could not be formed" in j.paper_reason
    # a finite estimate with an undefined interval (a slope through two points has no standard error) is undecided
    assert at_most("s", "s", -1.0, 0.0, source="paper", role="conclusion", interval=(math.nan, math.nan),
                   interval_kind="t").outcome is Outcome.INCONCLUSIVE


def test_vacuous_points_are_not_passes():
    assert no_failures("b", "s", failures=0, checked=10, not_checked=90, min_checked=10, source="derived",
                       role="reading").met
    too_few = no_failures("b", "s", failures=0, checked=9, not_checked=91, min_checked=10, source="derived",
                          role="reading")
    assert too_few.outcome is Outcome.NOT_TESTED and "only 9 non-vacuous points" in too_few.line()
    assert no_failures("b", "s", failures=1, checked=100, source="derived", role="reading").outcome is Outcome.FAILED


def test_labels_are_checked():
    with pytest.raises(ValueError, match="source"):
        at_most("p", "s", 0.0, 1.0, source="guess", role="reading")
    with pytest.raises(ValueError, match="role"):
        at_most("p", "s", 0.0, 1.0, source="paper", role="stated")
    with pytest.raises(ValueError, match="condition role"):
        condition("c", "s", 1.0, "<= 1", True, role="conclusion")


def test_calibration_tolerance():
    assert calibration("c", "s", 1e-13, 1e-12, "r").met
    assert not calibration("c", "s", 1e-11, 1e-12, "r").met
    assert not calibration("c", "s", math.nan, 1e-12, "r").met


def test_control_is_detected_by_its_symptom_only():
    control = Control("breaks concl", {"x": 1}, breaks=("concl",))
    assert detect(control, _evaluation(prediction_met=False))["detected"]
    # Settings that "should" break the claim count for nothing when the named prediction was met.
    assert not detect(control, _evaluation(prediction_met=True))["detected"]
    # An inconclusive prediction is no symptom.
    straddling = Evaluation([], [], [at_most("concl", "s", 0.5, 1.0, source="paper", role="conclusion",
                                             interval=(0.5, 1.5))])
    assert not detect(control, straddling)["detected"]
    # A failed calibration is not a symptom.
    assert not detect(control, _evaluation(calibrated=False, prediction_met=False))["detected"]
    with pytest.raises(KeyError, match="no condition or prediction named 'other'"):
        detect(Control("d", {}, breaks=("other",)), _evaluation())


def test_control_needs_a_named_symptom_and_a_known_kind():
    with pytest.raises(ValueError, match="at least one"):
        Control("d", {}, breaks=())
    with pytest.raises(ValueError, match="kind"):
        Control("d", {}, breaks=("p",), kind="other")
