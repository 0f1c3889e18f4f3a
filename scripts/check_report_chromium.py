"""Render an rlcreate HTML report in headless Chromium and save a screenshot.

Reads top to bottom: settings, find the browser, render, check the screenshot is a real image.
Skips (exit 0, with a message) when no chromium is installed (Debian: apt-get install -y chromium).

    python scripts/check_report_chromium.py report/index.html --out report/screenshot.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Settings:
    html: Path
    """the report page to render (index.html written by `rlcreate report`)"""
    out: Path
    """where the PNG screenshot goes"""
    width: int = 1400
    """browser window width in pixels"""
    height: int = 3000
    """browser window height in pixels (the screenshot covers this much of the page)"""
    timeout_s: int = 120
    """give up on the browser after this many seconds"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("html", type=Path)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=3000)
    a = p.parse_args(argv)
    s = Settings(a.html, a.out or a.html.with_name("screenshot.png"), a.width, a.height)
    if not s.html.is_file():
        print(f"error: {s.html} does not exist; write a report first (rlcreate report RUN --out DIR)", file=sys.stderr)
        return 2
    browser = find_chromium()
    if browser is None:
        print("skipped: chromium not found (Debian: apt-get install -y chromium)")
        return 0
    with tempfile.TemporaryDirectory(prefix="rlcreate-chromium-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={s.out.resolve()}",
               f"--window-size={s.width},{s.height}", "--disable-background-networking", "--no-first-run",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               s.html.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=s.timeout_s)
    if proc.returncode != 0 or not s.out.is_file():
        print(f"error: chromium exited with {proc.returncode}: {proc.stderr[-2000:]}", file=sys.stderr)
        return 1
    from PIL import Image

    with Image.open(s.out) as im:
        size = im.size
        colours = len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [])
    # A blank page renders as one colour; a real report has text, tables and plots.
    print(f"screenshot {s.out}: {size[0]}x{size[1]} px, {colours} distinct colours")
    return 0 if colours > 16 else 1


if __name__ == "__main__":
    sys.exit(main())
