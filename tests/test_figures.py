"""python -m figures: the list, usage errors, and Figure 3 regenerated in quick mode (files only: timings are not
asserted in tests, the machine is shared)."""

import json
import math

from figures.__main__ import main


def test_list_and_usage(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "fig3" in out and "sec3" in out
    assert main([]) == 2
    assert main(["fig9"]) == 2


def test_fig3_quick_writes_png_pdf_and_json(tmp_path):
    assert main(["fig3", "--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "fig3.json").read_text())  # the fig3 check's result
    assert data["claim"] == "fig3" and {r["L"] for r in data["measurements"]} == {64, 256}
    assert data["settings"]["d"] == 32 and {r["dtype"] for r in data["measurements"]} == {"float32"}
    assert all(r["prefix_s"] > 0 and r["elu_s"] > 0 and r["taylor_s"] > 0 for r in data["measurements"])
    assert (tmp_path / "fig3.png").stat().st_size > 0 and (tmp_path / "fig3.pdf").stat().st_size > 0


def test_sec4_4_quick_is_finite_and_keeps_the_prefix_out_of_the_model(tmp_path):
    import inspect

    from figures import sec4_4

    assert main(["sec4_4", "--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "sec4_4.json").read_text())
    assert {r["weights"] for r in data["rows"]} == {label for label, _ in sec4_4.Settings().weight_scales}
    for row in data["rows"]:
        for method in ("learned_elu", "taylor", "no_prefix"):
            assert math.isfinite(row[method]["relative_error"]), (row["m"], method)
        assert row["learned_elu"]["finite"]
    # The learned model's prediction is a function of the parameters, the frozen weights and the input only: the
    # prefix is neither an argument nor read inside, and training reaches it only through the targets.
    assert list(inspect.signature(sec4_4._learned_predict).parameters) == ["params", "X", "W", "m", "abs_kind"]
    assert list(inspect.signature(sec4_4._train).parameters)[:5] == ["params", "W", "X_train", "T_train", "m"]
    for fn in (sec4_4._learned_predict, sec4_4._train, sec4_4._effective):
        body = inspect.getsource(fn)
        assert "K_P" not in body and "V_P" not in body and "prefix_attention" not in body, fn.__name__
    assert (tmp_path / "sec4_4.png").exists() and (tmp_path / "sec4_4.pdf").exists()
