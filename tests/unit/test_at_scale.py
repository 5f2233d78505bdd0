"""Reliability at the scale of the clusters in the news."""

from __future__ import annotations

import pytest

from colossim.planning.at_scale import scale_rows


def test_interruptions_scale_with_gpus_and_match_llama3_rate():
    rows = {r.gpus: r for r in scale_rows()}
    # Llama 3: 466 interruptions in 54 days on 16,384 H100 -> 8.63/day; linear in GPUs
    assert rows[100_000].interruptions_per_day == pytest.approx(466 / 54 * 100_000 / 16_384, rel=0.02)
    assert rows[200_000].interruptions_per_day == pytest.approx(2 * rows[100_000].interruptions_per_day)
    # bigger clusters checkpoint more often and keep less of their time
    assert rows[200_000].optimal_interval_min < rows[100_000].optimal_interval_min < rows[24_576].optimal_interval_min
    assert rows[200_000].ettr_at_optimum < rows[100_000].ettr_at_optimum < rows[24_576].ettr_at_optimum


def test_report_prints_the_scale_table(cli):
    code, out, _ = cli("report")
    assert code == 0 and "Failures at scale" in out and "Colossus" in out
