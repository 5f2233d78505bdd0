"""Accounting: valuation beside the reported figure, the time-series rule (no double counting),
snapshots replacing each other, and the largest clusters at a date."""

from __future__ import annotations

import pytest

from colossim.errors import ColossimError, UnknownNameError
from colossim.fleet.accounting import REPORTED_KEY, point_at, series, top_clusters, value_holding
from colossim.fleet.holdings import Fleet, Holding, Organisation, fleet

F = fleet()


def holding(hid: str, scope: str, date: str | None, chips: str | None = None, cluster: str | None = None,
            status: str = "existing", reported: float | None = None, flags: str | None = None,
            confidence: str = "high", org: str = "acme") -> Holding:
    return Holding.model_validate({
        "id": hid, "org": org, "name": hid, "scope": scope, "cluster_id": cluster, "chips": chips,
        "date": date, "status": status, "h100e_reported": reported,
        "h100e_reported_by": "test" if reported is not None else None,
        "h100e_basis": "test" if reported is not None else None, "flags": flags,
        "confidence": confidence, "source": "test"})


def toy(*rows: Holding) -> Fleet:
    return Fleet({"acme": Organisation("acme", "Acme", (), "company", None)}, tuple(rows))


def test_value_is_computed_from_chips_beside_the_reported_figure():
    v = value_holding(F.holding("xai-colossus-1-2025-07"), "bf16")
    assert v.value_is == "computed"
    assert v.computed == pytest.approx(150_000 + 50_000 + 30_000 * 2500 / 989.4)
    assert v.reported == 275_796 and "8-bit" in (v.reported_basis or "")
    assert v.ratio_to_reported == pytest.approx(v.computed / 275_796)


def test_without_a_chip_mix_the_reported_figure_is_used_and_said_to_be():
    v = value_holding(F.holding("tesla-total-2024-q1"), "bf16")
    assert (v.value, v.value_is, v.computed) == (40_000, "reported", None)


def test_a_dollar_equivalence_is_shown_but_never_counted_as_compute():
    v = value_holding(F.holding("tesla-dojo-buffalo-2024-01"), "bf16")  # "$500M ~ 10k H100"
    assert v.reported == 10_000 and v.value is None and v.value_is == "none"


def test_points_say_what_they_rest_on():
    assert point_at(F, "xai", "2025-Q1").basis == "clusters"
    assert point_at(F, "meta", "2025-Q4").basis == "total reported (fp8)"
    assert point_at(F, "world", "2025-Q1").basis == "total reported (bf16)"
    assert point_at(F, "tesla", "2024-Q4").basis == "total reported (unstated)"


def test_chips_a_metric_cannot_value_are_listed_not_guessed():
    v = value_holding(F.holding("tesla-dojo-1-phase-1"), "hbm_capacity")  # D1 has no HBM
    assert v.computed is None and v.by_chip[0].h100e is None and "no value" in (v.by_chip[0].reason or "")
    assert value_holding(F.holding("tesla-cortex-phase-2"), "bf16").partial  # 20k untyped chips


def test_a_total_and_its_clusters_at_one_date_do_not_add():
    f = toy(holding("t", "total", "2024-03", "h100-sxm:100"),
            holding("c1", "cluster", "2024-03", "h100-sxm:60", "c1"),
            holding("c2", "cluster", "2024-03", "h100-sxm:40", "c2"))
    p = point_at(f, "acme", "2024-Q1")
    assert p.h100e == pytest.approx(100) and p.rule == "total" and p.holdings == ("t",)


def test_clusters_outgrowing_a_stale_total_take_over():
    f = toy(holding("t", "total", "2024-03", "h100-sxm:100"),
            holding("c1", "cluster", "2024-03", "h100-sxm:60", "c1"),
            holding("c1b", "cluster", "2024-08", "h100-sxm:150", "c1"))
    s = series(f, "acme")
    assert [(p.quarter, p.h100e, p.rule) for p in s.points] == [
        ("2024-Q1", 100, "total"), ("2024-Q2", 100, "total"), ("2024-Q3", 150, "clusters")]


def test_snapshots_of_one_cluster_replace_each_other():
    f = toy(holding("a", "cluster", "2024-01", "h100-sxm:10", "x"),
            holding("b", "cluster", "2024-05", "h100-sxm:30", "x"),
            holding("c", "cluster", "2024-05", "a100-80gb-sxm:100", "y"))
    assert point_at(f, "acme", "2024-02").h100e == pytest.approx(10)
    p = point_at(f, "acme", "2024-06")
    assert p.h100e == pytest.approx(30 + 100 * 312 / 989.4)
    assert dict(p.chips) == {"h100-sxm": 30, "a100-80gb-sxm": 100}


def test_ties_at_one_date_go_to_the_better_confidence():
    f = toy(holding("low", "total", "2024-03", "h100-sxm:35", confidence="low"),
            holding("med", "total", "2024-Q1", reported=40, status="reported-equivalent", confidence="medium"))
    p = point_at(f, "acme", "2024-Q1")
    assert p.holdings == ("med",) and p.reported == 40 and dict(p.by_chip) == {REPORTED_KEY: 40}


def test_leased_unverified_and_undated_rows_are_never_summed():
    f = toy(holding("lease", "cluster", "2024-01", "h100-sxm:24", "l", flags="leased"),
            holding("rumour", "total", "2024-01", "h100-sxm:28", flags="unverified"),
            holding("plan", "cluster", None, "h100-sxm:99", "p", status="planned"))
    assert series(f, "acme").points == ()
    assert series(f, "acme", status="planned").points == ()
    assert point_at(F, "xai", "2024-H1") is None  # xAI's only H1 2024 rows are leased or unverified


def test_planned_series_is_apart_from_existing():
    f = toy(holding("now", "cluster", "2024-01", "h100-sxm:10", "x"),
            holding("later", "cluster", "2025-01", "gb200:10", "x", status="planned"))
    assert [p.h100e for p in series(f, "acme").points] == [10]
    planned = series(f, "acme", status="planned")
    assert planned.points[-1].quarter == "2025-Q1"
    assert planned.points[-1].h100e == pytest.approx(10 * 2500 / 989.4)


def test_real_series_do_not_double_count():
    # Tesla at Q1 2024: its reported 40k total, not 40k + its clusters (14k) + Musk's 35k H100
    assert point_at(F, "tesla", "2024-Q1").h100e == 40_000
    # xAI at Q1 2025: Colossus' 200k snapshot replaces its 100k one (not 300k)
    assert point_at(F, "xai", "2025-Q1").h100e == pytest.approx(200_000)
    # Oracle at Q3 2025: its named clusters exceed Epoch's end-2024 NVIDIA-only total
    p = point_at(F, "oracle", "2025-Q3")
    assert p.rule == "clusters" and p.h100e > F.holding("oracle-epoch-owners-2024-q4").h100e_reported


def test_series_is_quarterly_and_consecutive():
    s = series(F, "tesla", "fp8")
    qs = [p.quarter for p in s.points]
    assert qs[0] == "2021-Q2" and qs[-1] == "2025-Q3" and len(qs) == 18
    assert s.metric == "fp8" and all(p.h100e > 0 for p in s.points)


def test_top_clusters_at_the_colossus_date():
    top = top_clusters(F, "2024-09", n=3)
    assert [c.cluster_id for c in top.clusters] == ["xai-colossus-1", "coreweave-h200", "meta-genai-2024a"]
    assert top.clusters[0].h100e == 100_000 and top.clusters[0].date == "2024-09"
    assert top.metric == "bf16" and all(c.metric == "bf16" for c in top.clusters)
    # a month earlier Colossus was Epoch's 25k snapshot
    aug = {c.cluster_id: c.h100e for c in top_clusters(F, "2024-08", n=20).clusters}
    assert aug["xai-colossus-1"] == 25_000


def test_top_clusters_existing_only_unless_planned():
    ids = {c.holding_id for c in top_clusters(F, "2026-12", n=50).clusters}
    assert "xai-colossus-2-2026-05" not in ids
    planned = top_clusters(F, "2026-12", n=50, planned=True).clusters
    assert planned[0].holding_id == "xai-colossus-2-2026-05"


def test_bad_inputs():
    with pytest.raises(UnknownNameError, match="unknown metric 'flops'"):
        series(F, "tesla", "flops")
    with pytest.raises(ColossimError, match="not a date"):
        top_clusters(F, "Sept 2024")
    with pytest.raises(ColossimError, match="n must be"):
        top_clusters(F, "2024-09", n=0)
    with pytest.raises(UnknownNameError, match="organisation"):
        series(F, "openia")
