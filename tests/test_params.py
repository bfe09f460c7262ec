"""Parameter efficiency (python -m figures params): the break-even prefix length and the error of the closed-form
reduction against its parameters."""

import pytest

import ntkprefix as nk
from figures import params


@pytest.mark.parametrize("d", [4, 8, 64, 768])
def test_break_even_is_where_a_prefix_and_ntk_attention_hold_equally_many(d):
    for r in (d, nk.taylor_feature_dimension(d, 2)):
        m_star = params.break_even_prefix_length(r, d)
        assert m_star * d == pytest.approx(r * d + r)
        assert m_star == pytest.approx(r * (1 + 1 / d))
    assert params.break_even_prefix_length(d, d) == d + 1  # ELU+1 with r = d [paper]


def test_the_paper_baseline_prefix_is_far_below_break_even_for_vit_base():
    rows = {(r["d"], r["map"].split(" (")[0]): r for r in params.break_even_table()}
    assert rows[(768, "ELU+1")]["break_even_m"] == 769 and rows[(768, "ELU+1")]["ntk_parameters"] == 768**2 + 768
    assert rows[(64, "ELU+1")]["break_even_m"] == 65  # per head of width 64, as the authors' ViT code counts
    assert rows[(64, "Taylor g=2")]["break_even_m"] > 2000


def test_taylor_error_falls_with_parameters_and_elu_does_not_reach_small_errors():
    block = params.error_against_parameters(d=4, m=256, L=8, seed=0, degrees=range(0, 7))
    taylor = [p for p in block["points"] if p["map"] == "taylor"]
    errors = [p["error"] for p in taylor]
    assert all(b < a for a, b in zip(errors, errors[1:]))  # every degree buys accuracy
    assert [p["parameters"] for p in taylor] == [nk.taylor_feature_dimension(4, g) * 5 for g in range(7)]
    elu = next(p for p in block["points"] if p["map"] == "elu")
    assert elu["parameters"] == 20 and elu["error"] > 1e-3
    needed = {n["target"]: n for n in block["needed"]}
    assert needed[1e-4]["g"] is not None and not needed[1e-4]["elu_reaches"]
    assert needed[1e-4]["parameters"] < block["prefix_parameters"]
