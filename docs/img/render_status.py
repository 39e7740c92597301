"""Render `newswire status` as a terminal shows it, to a PNG (docs/img/status.png).

    .venv/bin/newswire status --json > status.json
    .venv/bin/python docs/img/render_status.py status.json docs/img/status.png

The JSON is drawn by the same code as `newswire status` on a terminal (rich, exported as SVG) and
photographed by headless Chromium (`/usr/bin/chromium`, Playwright).
"""

from __future__ import annotations

import io
import re
import sys
import tempfile
from pathlib import Path

import orjson
from playwright.sync_api import sync_playwright
from rich.console import Console

from newswire import views

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]  # fmt: skip


def render(report_path: Path, png: Path, width: int = 140) -> None:
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True)
    views.print_status(orjson.loads(report_path.read_bytes()), as_json=False, out=console, terminal=True)
    with tempfile.TemporaryDirectory() as tmp:
        svg = Path(tmp) / "status.html"
        drawing = console.export_svg(title="newswire status")
        width = float(re.search(r'viewBox="0 0 ([0-9.]+)', drawing).group(1))  # type: ignore[union-attr]
        svg.write_text(f'<body style="margin:0"><div id="t" style="width:{width}px">{drawing}</div></body>')
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1800, "height": 1200})
            page.goto(svg.as_uri())
            page.locator("#t").screenshot(path=str(png))
            browser.close()


if __name__ == "__main__":
    render(Path(sys.argv[1]), Path(sys.argv[2]))
