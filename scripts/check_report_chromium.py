"""Render an rlcreate HTML report in headless Chromium and save a screenshot.

Reads top to bottom: settings, find the browser, render, check the screenshot is a real image.
Skips (exit 0, with a message) when no chromium is installed (Debian: apt-get install -y chromium).

    python scripts/check_report_chromium.py report/index.html --out report/screenshot.png
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rlcreate.scripting import Positional, parse_config


@dataclass
class Settings:
    html: Positional[Path]
    """the report page to render (index.html written by `rlcreate report`)"""
    out: Path | None = None
    """where the PNG screenshot goes (default: screenshot.png next to the report page)"""
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
    s = parse_config(Settings, argv)
    out = s.out or s.html.with_name("screenshot.png")
    if not s.html.is_file():
        print(f"error: {s.html} does not exist; write a report first (rlcreate report RUN --out DIR)", file=sys.stderr)
        return 2
    browser = find_chromium()
    if browser is None:
        print("skipped: chromium not found (Debian: apt-get install -y chromium)")
        return 0
    with tempfile.TemporaryDirectory(prefix="rlcreate-chromium-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={out.resolve()}",
               f"--window-size={s.width},{s.height}", "--disable-background-networking", "--no-first-run",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               s.html.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=s.timeout_s)
    if proc.returncode != 0 or not out.is_file():
        print(f"error: chromium exited with {proc.returncode}: {proc.stderr[-2000:]}", file=sys.stderr)
        return 1
    from PIL import Image

    with Image.open(out) as im:
        size = im.size
        colours = len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [])
    # A blank page renders as one colour; a real report has text, tables and plots.
    print(f"screenshot {out}: {size[0]}x{size[1]} px, {colours} distinct colours")
    return 0 if colours > 16 else 1


if __name__ == "__main__":
    sys.exit(main())
