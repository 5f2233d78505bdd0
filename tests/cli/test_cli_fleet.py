"""``colossim fleet`` end to end, and its one-line errors."""

from __future__ import annotations

import json

import pytest


def test_list_json_has_both_figures(cli):
    code, out, _ = cli("fleet", "list", "--org", "xai", "--metric", "fp8", "--json")
    assert code == 0
    rows = {r["holding"]["id"]: r for r in json.loads(out)}
    r = rows["xai-colossus-1-2025-07"]
    assert r["valuation"]["metric"] == "fp8" and r["valuation"]["value_is"] == "computed"
    assert r["valuation"]["reported"] == 275_796 and r["holding"]["h100e_basis_metric"] == "fp8"


def test_list_table_and_status_filter(cli):
    code, out, _ = cli("fleet", "list", "--status", "reported-equivalent")
    assert code == 0 and "tesla-total-2024-q1" in out and "xai-colossus-1-2024-09" not in out


def test_show_org(cli):
    code, out, _ = cli("fleet", "show", "Tesla")
    assert code == 0
    assert "tesla-cortex-2024-11" in out and "H100e by quarter" in out and "CAGR" in out
    assert "Undated planned rows" in out and "tesla-dojo-1-phase-1" in out
    code, out, _ = cli("fleet", "show", "anthropic")
    assert code == 0 and "amazon-rainier" in out  # shown as partner, counted for Amazon


def test_show_json(cli):
    code, out, _ = cli("fleet", "show", "meta", "--json")
    d = json.loads(out)
    assert code == 0 and d["organisation"]["id"] == "meta"
    assert d["existing"]["points"][-1]["h100e"] == 1_842_317
    assert d["growth"]["cagr"] > 0


def test_growth(cli):
    code, out, _ = cli("fleet", "growth", "xai", "--json")
    d = json.loads(out)
    assert code == 0
    pts = {p["quarter"]: p for p in d["growth"]["points"]}
    assert pts["2025-Q1"]["qoq"] == pytest.approx(1.0)  # Colossus 100k -> 200k
    code, out, _ = cli("fleet", "growth", "xai", "--planned")
    assert code == 0 and "2026-Q2" in out and "doubling time" in out


def test_compare(cli):
    code, out, _ = cli("fleet", "compare", "tesla", "meta", "xai")
    assert code == 0 and "2024-Q4" in out and "CAGR" in out
    code, out, _ = cli("fleet", "compare", "tesla", "xai", "--json")
    d = json.loads(out)
    assert [s["org"] for s in d["series"]] == ["tesla", "xai"]
    tesla, xai = ([p["quarter"] for p in s["points"]] for s in d["series"])
    assert tesla[-1] == xai[-1] == "2025-Q4"  # both run to the last quarter either has
    assert xai[0] == "2024-Q3" and tesla[0] == "2021-Q2"


def test_top(cli):
    code, out, _ = cli("fleet", "top", "--date", "2024-09", "--n", "3", "--json")
    d = json.loads(out)
    assert code == 0 and d["date"] == "2024-09" and d["metric"] == "bf16"
    assert [c["cluster_id"] for c in d["clusters"]] == ["xai-colossus-1", "coreweave-h200", "meta-genai-2024a"]
    code, out, _ = cli("fleet", "top", "--date", "2024-Q4", "--metric", "fp8")
    assert code == 0 and "H100e fp8" in out and "meta-100k" in out


@pytest.mark.parametrize(("args", "needle"), [
    (("fleet", "show", "tesal"), "unknown organisation 'tesal': did you mean tesla"),
    (("fleet", "growth", "metaa"), "did you mean meta"),
    (("fleet", "compare", "tesla", "xia"), "did you mean xai"),
    (("fleet", "top", "--date", "2024-13"), "month 13"),
    (("fleet", "top", "--date", "September"), "YYYY-MM, YYYY-Qn"),
    (("fleet", "top", "--date", "2024-09", "--metric", "bf61"), "unknown metric 'bf61': did you mean bf16"),
    (("fleet", "list", "--status", "rumoured"), "unknown status 'rumoured'"),
    (("fleet", "top", "--date", "2024-09", "--n", "0"), "n must be >= 1"),
])
def test_bad_input_is_one_line_exit_2(cli, args, needle):
    code, out, err = cli(*args)
    assert code == 2
    assert err.startswith("error: ") and err.strip().count("\n") == 0
    assert needle in err
