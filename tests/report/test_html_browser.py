"""The HTML report in headless Chromium: hostile model output must not execute, the page
loads nothing remote, and the screenshot shows the verdict banner."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from heldout.report import write_reports
from tests.report.conftest import build_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian package 'chromium'; 'make test' installs it "
    "when run as root)",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    build_run(root, hostile=True)
    return write_reports(root / "run")["html"]


def test_hostile_output_is_text_not_markup(hostile_report: Path, tmp_path: Path) -> None:
    r = _chromium(["--virtual-time-budget=2000", "--dump-dom", hostile_report.as_uri()], tmp_path)
    dom = r.stdout
    assert "<title>heldout · report-fixture" in dom
    assert "pwned" not in dom.split("</title>")[0]  # neither script ran
    assert "<img" not in dom  # no element was injected
    assert "&lt;script&gt;document.title=" in dom  # the output is shown, as text
    assert 'id="verdict"' in dom


def test_screenshot_shows_the_verdict_banner(hostile_report: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "report.png"
    _chromium(
        ["--window-size=1200,900", f"--screenshot={shot}", hostile_report.as_uri()],
        tmp_path / "profile",
    )
    assert shot.is_file()
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 900)
    # the banner of an inconclusive verdict is #7d6608 across the top of the page
    r, g, b = image.getpixel((600, 20))  # type: ignore[misc]
    assert (abs(r - 0x7D), abs(g - 0x66), abs(b - 0x08)) < (12, 12, 12)
    # and the page below is the light report background, not a blank or error page
    assert image.getpixel((600, 600)) != image.getpixel((600, 20))


LAYOUT = r"""
(function () {
  var w = window.innerWidth, d = document.documentElement, outside = [];
  document.querySelectorAll('body *').forEach(function (el) {
    var up = el.parentElement;  // inside a table's scroll box or a chart: clipped / scaled
    if (up && (up.closest('.scroll') || up.closest('svg'))) return;
    var r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > w + 1 || r.left < -1)) {
      outside.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
    }
  });
  var charts = Array.prototype.map.call(document.querySelectorAll('svg'), function (s) {
    var r = s.getBoundingClientRect();
    return {label: s.getAttribute('aria-label'), left: r.left, right: r.right,
            axis: s.querySelectorAll('.axis-label').length,
            ticks: s.querySelectorAll('text').length, marks: s.querySelectorAll('circle').length};
  });
  var boxes = Array.prototype.map.call(document.querySelectorAll('.scroll'), function (b) {
    return {inner: b.scrollWidth, outer: b.clientWidth, right: b.getBoundingClientRect().right};
  });
  return {scroll: d.scrollWidth, inner: w, outside: outside, charts: charts, boxes: boxes};
})()
"""


@pytest.fixture(scope="module")
def rich_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with every chart: comparisons and guardrails (forest plot), slices, confusion
    matrices, and calibration where the candidate's confidences all fall in one or two bins
    (the case that used to draw nothing)."""
    import heldout
    from tests.runner.test_calibration_run import _project

    root = tmp_path_factory.mktemp("rich")
    _project(root)
    gold = [json.loads(x) for x in (root / "gold.jsonl").read_text().splitlines()]
    with (root / "gold.jsonl").open("w") as fh:
        for i, row in enumerate(gold):
            row["lang"] = ["en", "fr", "de"][i % 3]
            row["input"] = f"msg {i} " + "a-very-long-unbroken-token" * (8 if i % 50 == 0 else 0)
            fh.write(json.dumps(row) + "\n")
    # a suite whose samples carry a skill: the per-skill breakdown chart
    skills = [
        {"id": f"k{i}", "input": f"{i}+1?", "target": str(i + 1), "skill": ["add", "count"][i % 2]}
        for i in range(40)
    ]
    (root / "skills.jsonl").write_text("".join(json.dumps(r) + "\n" for r in skills))
    with (root / "base.jsonl").open("a") as fh:
        fh.writelines(json.dumps({"id": r["id"], "output": r["target"]}) + "\n" for r in skills)
    with (root / "cand.csv").open("a") as fh:
        fh.writelines(
            f"{r['id']},{r['target'] if i % 3 else '?'},0.9\n" for i, r in enumerate(skills)
        )
    plan = (root / "heldout.yaml").read_text()
    guard = "  - {slices: [lang], max_drop: 0.1}\n  - {suite: skills, data: skills.jsonl, max_drop: 0.5}\n"
    (root / "heldout.yaml").write_text(
        plan.replace("guardrails:\n", "guardrails:\n" + guard) + "slices: [lang]\n"
    )
    run = heldout.evaluate(root / "heldout.yaml", root=root, out=root / "run", cache=False)
    return run.reports["html"]


@pytest.mark.parametrize("width", [400, 1280])
def test_layout_fits_the_viewport_and_every_chart_has_axes(
    rich_report: Path, tmp_path: Path, width: int
) -> None:
    from PIL import Image

    from heldout.testing._browser import browser, measure

    assert CHROMIUM
    shot = tmp_path / f"report-{width}.png"
    with browser(CHROMIUM, tmp_path / "profile") as url:
        m = measure(url, rich_report.as_uri(), width=width, script=LAYOUT, shot=shot)
    assert m["inner"] == width
    assert m["scroll"] <= m["inner"], m  # no horizontal overflow of the page
    assert m["outside"] == [], m["outside"]
    labels = {c["label"] for c in m["charts"]}
    assert {
        "forest plot of deltas",
        "per-slice deltas with confidence intervals",
        "suites by skill or constraint type",
    } <= labels
    assert "reliability diagram" in labels
    for c in m["charts"]:
        assert c["axis"] >= 1, c  # an axis title
        assert c["ticks"] >= 5, c  # tick labels
        assert c["left"] >= -1, c  # scaled to fit
        assert c["right"] <= width + 1, c
    reliability = next(c for c in m["charts"] if c["label"] == "reliability diagram")
    assert reliability["marks"] >= 3  # both models visible, one-bin candidate included
    assert any(b["inner"] > b["outer"] for b in m["boxes"]) == (width == 400)  # tables scroll
    assert all(b["right"] <= width + 1 for b in m["boxes"])
    with Image.open(shot) as image:
        assert image.size == (width, 900)
