"""Regenerate the README's screenshot of an HTML report, so it never goes stale by hand.

    .venv/bin/python scripts/screenshot.py [--demo-dir heldout-demo] [--out docs/demo-report.png]

Runs ``heldout demo`` (a tiny model pre-trained and fine-tuned twice on the CPU, about a
minute; skipped when ``--demo-dir`` already holds its runs), then opens the aggressive full
fine-tune's report.html in headless Chromium (Debian package ``chromium``) at 1280 x 900 and
saves the screenshot; ``--phone`` adds the same page at 400 px beside it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from heldout.testing._browser import browser, find_chromium, measure


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo-dir", type=Path, default=Path("heldout-demo"))
    ap.add_argument("--out", type=Path, default=Path("docs/demo-report.png"))
    ap.add_argument("--run", default="full", help="which demo run: full or lora")
    ap.add_argument("--phone", action="store_true", help="also save <out>-400.png")
    args = ap.parse_args()
    chromium = find_chromium()
    if chromium is None:
        sys.exit("screenshot.py: Chromium is not installed (apt-get install chromium)")
    report = args.demo_dir / "runs" / args.run / "report.html"
    if not report.is_file():
        heldout = Path(sys.executable).parent / "heldout"
        subprocess.run([str(heldout), "demo", "--out", str(args.demo_dir)], check=True)
    with tempfile.TemporaryDirectory() as profile, browser(chromium, Path(profile)) as url:
        sizes = [(1280, args.out)]
        if args.phone:
            sizes.append((400, args.out.with_name(args.out.stem + "-400.png")))
        for width, path in sizes:
            measure(url, report.resolve().as_uri(), width=width, height=900, script="1", shot=path)
            print(f"{path}: {width} x 900 of {report}")


if __name__ == "__main__":
    main()
