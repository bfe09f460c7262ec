"""python -m figures: the list, usage errors, and Figure 3 regenerated in quick mode (files only: timings are not
asserted in tests, the machine is shared)."""

import json

from figures.__main__ import main


def test_list_and_usage(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "fig3" in out and "sec3" in out
    assert main([]) == 2
    assert main(["fig9"]) == 2


def test_fig3_quick_writes_png_pdf_and_json(tmp_path):
    assert main(["fig3", "--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "fig3.json").read_text())
    assert {r["L"] for r in data["rows"]} == {32, 64, 128, 256}
    assert data["d"] == 32 and data["r"] == 32 and data["dtype"] == "float32"
    assert all(r["prefix_attention_s"] > 0 and r["ntk_attention_s"] > 0 for r in data["rows"])
    assert (tmp_path / "fig3.png").stat().st_size > 0 and (tmp_path / "fig3.pdf").stat().st_size > 0
