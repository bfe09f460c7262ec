"""report.html (issue 18): one self-contained page per run, rendered from the records of results.json, checked as
HTML and then in a real browser (headless Chromium, Debian's package: `make browser`, which `make test` runs first):
from the rendered page, not the source, every claim's section is visible and holds its verdicts, every figure is an
image of non-zero size, and a screenshot of each section is not blank."""

import html as html_module
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from markupsafe import escape

from tests.conftest import in_ci
from verify import html
from verify.result import PaperVerdict

#: What a page that opens offline must not hold: a script, a style sheet or font from elsewhere, any remote address.
EXTERNAL = re.compile(r"<script|<link|@import|url\(|src=\"(?!data:)|https?://", re.IGNORECASE)


def test_the_page_is_self_contained_and_holds_every_claim_and_control(quick_all):
    _, out, results = quick_all
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not EXTERNAL.search(page), EXTERNAL.search(page)
    figures = [f for r in results["claims"] for f in r["figures"] if f.endswith(".png")]
    assert len(figures) >= len(results["claims"]) and page.count('src="data:image/png;base64,') == len(figures)
    for r in results["claims"]:
        section = page[page.index(f'<section class="claim" id="{r["id"]}">'):]
        section = section[: section.index("</section>")]
        assert escape(r["paper_verdict"]) in section and escape(r["paper_reason"]) in section  # as Jinja2 escapes
        for x in r["readings"] + r["predictions"]:
            assert f"<code>{x['name']}</code>" in section
        if r["witness"]:
            assert f"python -m verify replay {r['id']}.witness.npz" in section
        for name in r["settings"]:
            assert f"<code>{name}</code>" in section
    for c in results["controls"]:
        assert f"<td><code>{c['control']}</code></td>" in page


def test_the_page_renders_only_what_the_records_hold(quick_all):
    # a statement with markup in it is shown as text (autoescaping), and a changed record changes the page
    _, _, results = quick_all
    record = dict(results["claims"][0], statement="E < 1 & <script>alert(1)</script>", figures=[])
    page = html.render([record])
    assert "E &lt; 1 &amp; &lt;script&gt;" in page and "<script>" not in page
    assert html.render([dict(record, paper_reason="a reason nobody wrote")]).count("a reason nobody wrote") == 1


def test_every_verdict_has_its_style():
    assert set(html.VERDICT_CLASSES) == {v.value for v in PaperVerdict}


# ---- in a real browser -------------------------------------------------------------------------------------------

#: Injected into a copy of the page (never into the report itself, which has no script): what the rendered page shows.
PROBE = """<script>
window.addEventListener('load', () => {
  const out = {height: document.documentElement.scrollHeight, sections: [], images: []};
  for (const s of document.querySelectorAll('section')) {
    const r = s.getBoundingClientRect();
    out.sections.push({id: s.id, top: r.top + window.scrollY, height: r.height, width: r.width, text: s.innerText});
  }
  for (const img of document.images) {
    const r = img.getBoundingClientRect();
    out.images.push({section: img.closest('section') ? img.closest('section').id : null, complete: img.complete,
                     natural: [img.naturalWidth, img.naturalHeight], shown: [r.width, r.height]});
  }
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium_binary() -> str:
    """Chromium's executable; missing, a failure under CI and a skip elsewhere, saying how to install it."""
    found = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)
    if found:
        return found
    message = "headless Chromium is missing: install it with `make browser` (Debian's chromium; `make test` does so first)"
    if in_ci():
        pytest.fail(message + " [CI: a missing browser is a failure, not a skip]", pytrace=False)
    pytest.skip(message)


def chromium(binary: str, profile, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--force-device-scale-factor=1", "--no-first-run", f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def test_the_report_of_a_quick_run_shows_every_claim_in_a_real_browser(quick_all, tmp_path):
    binary = chromium_binary()
    _, out, results = quick_all
    page = out / "report.html"
    probe = tmp_path / "probe.html"  # the page with the probe, beside nothing: every figure must be inline
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(binary, tmp_path / "profile", "--virtual-time-budget=10000", "--window-size=1280,1000",
                   "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
    assert found, "the probe did not run: the page did not finish loading"
    shown = json.loads(html_module.unescape(found.group(1)))
    sections = {s["id"]: s for s in shown["sections"]}
    for r in results["claims"]:
        s = sections[r["id"]]
        assert s["height"] > 200 and s["width"] > 600, s  # laid out and visible
        text = s["text"]  # innerText: what is rendered, not what the source holds
        assert r["paper_verdict"] in text and all(x["name"] in text and x["outcome"] in text for x in r["readings"])
        images = [i for i in shown["images"] if i["section"] == r["id"]]
        assert len(images) == sum(f.endswith(".png") for f in r["figures"]) > 0
        assert all(i["complete"] and min(i["natural"]) > 0 and min(i["shown"]) > 100 for i in images), images
    summary = sections["summary"]["text"]
    assert all(r["id"] in summary and r["paper_verdict"] in summary for r in results["claims"])
    # one screenshot of the whole page, cut into its sections: none of them blank
    shot = tmp_path / "report.png"
    chromium(binary, tmp_path / "profile", f"--window-size=1280,{int(shown['height'])}", f"--screenshot={shot}",
             page.as_uri())
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    for name in ["summary", *(r["id"] for r in results["claims"])]:
        s = sections[name]
        crop = pixels[int(s["top"]): int(s["top"] + s["height"])]
        inked = float(np.mean(np.any(crop < 0.9, axis=-1)))  # share of pixels that are not (near) white
        assert crop.shape[0] > 100 and inked > 0.02 and float(crop.std()) > 0.05, (name, crop.shape, inked)
