"""Every HTML page colossim writes, opened in headless Chromium: it draws every chart offline,
raises no error, draws the engine's numbers (not only some shape), and no label runs over another
chart's plot area, at a wide and a narrow window."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from colossim.cli.main import app
from colossim.planning.report import build_report
from colossim.specs.training import load_spec
from colossim.training.estimate import search
from colossim.training.labels import plan_label

ROOT = Path(__file__).resolve().parents[2]

#: Window widths the pages must read at: a laptop's and a narrow half-screen window.
WIDTHS = (1280, 900)

SEARCH_SPEC = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 64}, "training": {"global_batch": 256}}


def _run(*args: str) -> str:
    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, r.stderr
    return r.stdout


def _overlap(a, b, slack: float = 1.0) -> bool:
    """Whether two boxes (left, top, right, bottom) share more than ``slack`` pixels each way."""
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


def crowding(chart: dict) -> list[str]:
    """What is drawn over what it must not be: a tick label over another subplot's plot area, the
    legend over a plot area or a tick label, a title or annotation over another; and a title or
    annotation cut off at the chart's edge."""
    left, top, right, bottom = chart["page"]
    labels = chart["labels"]
    out = [f"{t['text']!r} cut off" for t in labels
           if t["box"][0] < left - 1 or t["box"][2] > right + 1 or t["box"][1] < top - 1 or t["box"][3] > bottom + 1]
    out += [f"{a['text']!r} over {b['text']!r}" for i, a in enumerate(labels) for b in labels[i + 1:]
            if _overlap(a["box"], b["box"])]
    ticks = [t for t in chart["ticks"] if t["text"].strip() and t["box"][2] > t["box"][0]]
    for t in ticks:
        for a in chart["areas"]:
            if t["axis"] not in re.fullmatch(r"(x\d*)(y\d*)", a["subplot"]).groups() and _overlap(t["box"], a["box"]):
                out.append(f"{t['axis']} tick {t['text']!r} over subplot {a['subplot']}")
    legend = chart["legend"]
    if legend is not None:
        out += [f"legend over subplot {a['subplot']}" for a in chart["areas"] if _overlap(legend, a["box"])]
        out += [f"legend over {t['axis']} tick {t['text']!r}" for t in ticks if _overlap(legend, t["box"])]
    return out


def _clean(page) -> None:
    assert page.errors == [] and page.requests == []  # no error, nothing fetched: it opens offline
    assert [c for chart in page.charts for c in crowding(chart)] == []


def _points(chart: dict, kind: str, mode: str | None = None) -> int:
    """Points drawn by a chart's traces of type ``kind`` (and of ``mode``, where given)."""
    return sum(t["points"] for t in chart["traces"] if t["type"] == kind and mode in (None, t["mode"]))


@pytest.fixture(scope="module")
def search_page(tmp_path_factory):
    d = tmp_path_factory.mktemp("search")
    spec = d / "spec.json"
    spec.write_text(json.dumps(SEARCH_SPEC))
    _run("train", "search", str(spec), "--top", "5", "--html", str(d / "search.html"))
    return d / "search.html", search(load_spec(SEARCH_SPEC), top=5)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_search_page_draws_every_plan_and_the_best(open_page, search_page, width):
    path, result = search_page
    page = open_page(path, width)
    _clean(page)
    chart, table = page.charts
    # every plan that fits is a point; the rings are the best plans' throughputs
    assert _points(chart, "scattergl") == result.configs_fitting == len(result.space)
    ring = next(t for t in chart["traces"] if t["name"] == "best 5")
    assert ring["y"] == pytest.approx([e.tokens_per_s_per_gpu for e in result.best])
    bars = [t for t in chart["traces"] if t["type"] == "bar"]
    assert bars and all(t["points"] == 5 for t in bars)
    (cells,) = [t["cells"] for t in table["traces"]]
    assert cells[1] == [plan_label(e.parallelism) for e in result.best]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_validation_page_draws_every_run(open_page, tmp_path, width):
    path = tmp_path / "validation.html"
    doc = json.loads(_run("validate", "training", "--json", "--html", str(path)))
    page = open_page(path, width)
    _clean(page)
    (chart,) = page.charts
    predicted = [r for r in doc["runs"] if r["error"] is not None]
    extra = [r for r in doc["extra_runs"] if r["error"] is not None]
    # one marker per run (reference and outside the set), one bar per reference run
    assert _points(chart, "scatter", mode="markers") == len(predicted) + len(extra)
    assert _points(chart, "bar") == len(predicted)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_report_page_draws_every_chart(open_page, tmp_path, width):
    path = tmp_path / "report.html"
    _run("report", "--html", str(path))
    page = open_page(path, width)
    _clean(page)
    assert len(page.charts) == len(build_report().series) + 1
    # every chart's time axis reads left to right in time order (quarters such as 2024-Q3)
    for chart in page.charts:
        quarters = [t["text"] for t in sorted(chart["ticks"], key=lambda t: t["box"][0])
                    if t["axis"] == "x" and re.fullmatch(r"\d{4}-Q[1-4]", t["text"])]
        assert quarters and quarters == sorted(quarters)
    assert "Claim checks" in page.text and "Largest clusters" in page.text


@pytest.mark.parametrize("width", WIDTHS)
def test_the_serving_frontier_page_draws_every_point(open_page, tmp_path, width):
    path = tmp_path / "frontier.html"
    spec = ROOT / "examples" / "llama3.1-70b-serving.yaml"
    doc = json.loads(_run("serve", "frontier", str(spec), "--json", "--html", str(path)))
    page = open_page(path, width)
    _clean(page)
    (chart,) = page.charts
    (trace,) = chart["traces"]
    assert trace["points"] == len(doc["frontier"]) > 1
    assert trace["y"] == pytest.approx([p["tokens_per_s_per_gpu"] for p in doc["frontier"]])
