"""The HTML report in headless Chromium: hostile model output must not execute, the page
loads nothing remote, and the screenshot shows the verdict banner."""

from __future__ import annotations

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
