"""Headless Chromium (Debian's, driven by Playwright) for the pages colossim writes.

The browser is the system's (``/usr/bin/chromium``, or ``COLOSSIM_CHROMIUM``); nothing is
downloaded.  Without it, or without the ``playwright`` package, these tests skip, except where
``COLOSSIM_REQUIRE_BROWSER=1`` (CI sets it), where they fail: a browser test that silently does
not run is no test.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Chromium's flags for a closed machine: no sandbox (CI runs as root), no GPU (WebGL falls back
#: to software), and none of the background connections a closed network refuses.
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")

#: How long a page may take to draw every chart, in milliseconds (plotly.js is 4.6 MB inline).
DRAW_TIMEOUT_MS = 30_000

#: Every chart drawn: each Plotly div has its SVG and its laid-out figure.
ALL_DRAWN = """() => { const p = document.querySelectorAll('.js-plotly-plot');
  return p.length > 0 && Array.from(p).every(d => d.querySelector('.main-svg') && d._fullLayout); }"""

#: What a test reads of each drawn chart: its traces (type, name, mode, points, y or a table's
#: cells), the plot area of each subplot, the box of every tick label with its axis, the legend's
#: box, the boxes of the titles and annotations, and the chart's own box.
INSPECT = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
  const box = el => { const b = el.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const areas = Array.from(gd.querySelectorAll('.draglayer .nsewdrag')).map(
      r => ({subplot: r.parentNode.getAttribute('class').split(' ').pop(), box: box(r)}));
  const ticks = Array.from(gd.querySelectorAll('g[class$="tick"] > text')).map(
      t => ({axis: t.parentNode.getAttribute('class').replace('tick', ''), text: t.textContent, box: box(t)}));
  const legend = gd.querySelector('.legend');
  const labels = Array.from(gd.querySelectorAll('.infolayer text, .annotation text')).filter(
      t => !t.closest('.legend') && t.textContent.trim()).map(t => ({text: t.textContent, box: box(t)}));
  return {traces: gd._fullData.map(t => ({type: t.type, name: t.name, mode: t.mode ?? null,
                                           points: t._length ?? null,
                                           y: t.type === 'table' ? null : Array.from(t.y ?? []),
                                           cells: t.type === 'table' ? t.cells.values : null})),
          areas, ticks, legend: legend ? box(legend) : null, labels, page: box(gd.querySelector('.main-svg'))};
})"""


@dataclass
class Page:
    """A page as the browser drew it: its charts (:data:`INSPECT`), the errors it raised and the
    network requests it tried (all refused: a page must open offline)."""

    charts: list[dict]
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    text: str = ""


@pytest.fixture(scope="session")
def chromium():
    required = os.environ.get("COLOSSIM_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        (pytest.fail if required else pytest.skip)("playwright is not installed (pip install -e '.[test]')")
    path = os.environ.get("COLOSSIM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        (pytest.fail if required else pytest.skip)(f"no Chromium at {path} (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))
        yield browser
        browser.close()


@pytest.fixture()
def open_page(chromium):
    """``open_page(path, width)``: the page at ``path`` drawn in a window ``width`` pixels wide."""

    def _open(path: Path, width: int = 1280) -> Page:
        page = chromium.new_page(viewport={"width": width, "height": 900})
        seen = Page(charts=[])
        page.on("pageerror", lambda e: seen.errors.append(str(e)))
        page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)

        def refuse(route):
            seen.requests.append(route.request.url)
            route.abort()

        page.route(lambda url: not url.startswith("file:"), refuse)
        page.goto(path.resolve().as_uri())
        page.wait_for_function(ALL_DRAWN, timeout=DRAW_TIMEOUT_MS)
        seen.charts = page.evaluate(INSPECT)
        seen.text = page.inner_text("body")
        page.close()
        return seen

    return _open
