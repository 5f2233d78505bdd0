"""``colossim report``: the seed report as tables and as offline HTML."""

from __future__ import annotations

import json
import time

from colossim.planning.report import build_report


def test_report_tables(cli):
    t0 = time.perf_counter()
    code, out, _ = cli("report")
    assert time.perf_counter() - t0 < 5  # `make run` prints this; it must stay quick
    assert code == 0
    for needle in ("Organisations at the last quarter", "H100e at each year end", "Largest single clusters at 2024-09",
                   "Claim checks", "xai-colossus-1", "tesla", "power MW", "all-in $B"):
        assert needle in out, needle
    assert max(len(line) for line in out.splitlines()) <= 160


def test_report_json(cli):
    code, out, _ = cli("report", "--json", "--metric", "fp8")
    d = json.loads(out)
    assert code == 0 and d["metric"] == "fp8"
    orgs = {o["org"]: o for o in d["orgs"]}
    assert orgs["xai"]["rule"] == "clusters" and orgs["xai"]["capex"]["multiplier"] == 1.5
    assert orgs["world"]["kind"] == "aggregate"
    assert len(d["claims"]) == 24


def test_report_html_opens_offline(cli, tmp_path):
    path = tmp_path / "report.html"
    code, out, _ = cli("report", "--html", str(path))
    assert code == 0 and "wrote" in out
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    assert 'src="https://cdn' not in html  # plotly.js is inline, not fetched
    assert "Plotly.newPlot" in html and html.count("Plotly.newPlot") == len(build_report().series) + 1
    assert "H100e by chip" in html and "Claim checks" in html and "xai-colossus-1" in html


def test_report_bad_inputs(cli, tmp_path):
    code, _, err = cli("report", "--metric", "flops")
    assert code == 2 and "unknown metric 'flops'" in err
    code, _, err = cli("report", "--html", str(tmp_path / "no" / "such" / "dir" / "r.html"))
    assert code == 2 and "cannot write" in err and err.strip().count("\n") == 0


def test_report_summaries():
    r = build_report()
    orgs = {o.org: o for o in r.orgs}
    xai = orgs["xai"]
    assert xai.rule == "clusters" and xai.typed_h100e == xai.h100e  # all of it priced
    assert xai.capex.chips_usd > 0 and xai.power.mw > 0
    assert orgs["meta"].rule == "total" and orgs["meta"].typed_h100e < orgs["meta"].h100e
    assert r.orgs[-1].org == "world"  # the aggregate last, never ranked with organisations
    # growth is like for like: the world's two totals are on different bases (bf16, 8-bit)
    assert orgs["world"].growth.cagr is not None and orgs["world"].growth_like.cagr is None
    assert orgs["meta"].growth_like.first_quarter == "2024-Q4"  # Epoch's 8-bit totals from there on
    assert r.tops[0].date == "2024-09" and r.tops[0].clusters[0].cluster_id == "xai-colossus-1"
