"""The inference engine against published, measured serving results
(catalog/data/validation/serving_runs.csv: MLPerf Inference v4.0, TensorRT-LLM perf-overview and v0.5
tables, FasterTransformer and NeMo latencies; each row's ``source`` cites it, its ``notes`` list the
assumptions made to build the spec).

Issue 4's targets (median |error| <= 15 %, max <= 35 %) hold on every row and on the trusted (A)
rows; the tests below keep them.
"""

from __future__ import annotations

import json
import math

import pytest

from colossim.cli.validate import run_serving_validation
from colossim.inference.validate import (
    METRICS,
    MLPERF_OPENORCA_MEAN_INPUT_TOKENS,
    MLPERF_OPENORCA_MEAN_OUTPUT_TOKENS,
    error_stats,
    grouped_stats,
    serving_runs,
)
from colossim.specs.serving import load_serving_spec


@pytest.fixture(scope="module")
def results():
    res, stats = run_serving_validation(show_progress=False)
    return {r.entry_id: r for r in res}, stats


def test_every_row_builds_a_valid_spec():
    runs = serving_runs()
    assert len(runs) == 25
    for run in runs:
        load_serving_spec(run.spec)   # raises SpecError on anything invalid
        assert run.trust in ("A", "B", "C"), run.id
        assert run.notes and "colossim:" in run.notes, run.id
        for _, metric, published in run.comparisons:
            assert metric in METRICS and published > 0, run.id


def test_every_entry_predicts_a_finite_positive_number(results):
    by_id, _ = results
    # 25 rows; the two FasterTransformer rows publish three numbers each
    assert len(by_id) == 29
    for eid, r in by_id.items():
        assert r.failure is None, (eid, r.failure)
        assert r.predicted is not None and math.isfinite(r.predicted) and r.predicted > 0, eid


def test_compound_rows_split_into_sub_metrics(results):
    by_id, _ = results
    for tp in ("TP1", "TP2"):
        p, d, t = (by_id[f"FT-13B-A100-{tp}:{k}"] for k in ("prefill", "decode", "total"))
        assert (p.metric, d.metric, t.metric) == ("ttft_s", "tpot_s", "context_plus_decode_s")
        # FasterTransformer's total is the context phase plus 10 decode steps
        assert t.predicted == pytest.approx(p.predicted + 10 * d.predicted)
        assert t.published == pytest.approx(p.published + 10 * d.published, rel=0.01)


def test_mlperf_rows_use_the_named_dataset_lengths():
    for run in serving_runs():
        if run.id.startswith("MLPERF"):
            s = run.spec["serving"]
            assert s["input_tokens"] == MLPERF_OPENORCA_MEAN_INPUT_TOKENS
            assert s["output_tokens"] == MLPERF_OPENORCA_MEAN_OUTPUT_TOKENS
    off = next(r for r in serving_runs() if r.id == "MLPERF40-L2-70B-8xH100-OFF")
    # the output length is derived from the log: tokens/s / samples/s (74.699 samples/s)
    assert float(off.published_value) / 74.699 == pytest.approx(MLPERF_OPENORCA_MEAN_OUTPUT_TOKENS, abs=0.5)


def test_error_stats_on_a_hand_made_example():
    st = error_stats([0.10, -0.20, 0.05, None, -0.40])
    assert st.n == 4
    assert st.median_abs == pytest.approx(0.15)      # |.| = 0.05 0.10 0.20 0.40
    assert st.max_abs == pytest.approx(0.40)
    assert st.mean_signed == pytest.approx(-0.1125)
    assert not st.meets_targets                      # max 40 % > 35 %
    assert error_stats([0.1, -0.1, 0.3]).meets_targets
    assert error_stats([]).n == 0


def test_grouped_stats_cover_families_chips_sizes(results):
    _, stats = results
    for g in ("all", "MLPerf", "TRT-LLM current", "TRT-LLM v0.5 static", "latency", "H100", "A100",
              "<=13B", "70B", "405B", "trust A", "trust C"):
        assert g in stats, g
    assert stats["all"].n == sum(stats[g].n for g in ("MLPerf", "TRT-LLM current", "TRT-LLM v0.5 static",
                                                      "latency"))
    assert grouped_stats([])["all"].n == 0


def test_current_trtllm_tables_regression_guard(results):
    # The perf-overview rows (continuous batching, plans given) are the engine's home ground.
    _, stats = results
    assert stats["TRT-LLM current"].median_abs <= 0.10
    assert stats["TRT-LLM current"].max_abs <= 0.25


def test_issue_targets_on_trusted_rows(results):
    by_id, _ = results
    trusted = [r.error for r in by_id.values() if r.run.trust == "A"]
    assert error_stats(trusted).meets_targets


def test_issue_targets_on_every_row_and_no_systematic_bias(results):
    by_id, _ = results
    st = error_stats([r.error for r in by_id.values()])
    assert st.meets_targets
    assert abs(st.mean_signed) <= 0.05


def test_cli_validate_serving_json(cli):
    code, out, err = cli("validate", "serving", "--json", "--trust", "C")
    assert code == 0, err
    doc = json.loads(out)
    assert {r["id"] for r in doc["results"]} == {f"FT-13B-A100-TP{t}:{k}" for t in (1, 2)
                                                 for k in ("prefill", "decode", "total")}
    assert doc["stats"]["all"]["n"] == 6
    for k in ("median_abs", "max_abs", "mean_signed"):
        assert k in doc["stats"]["all"]


def test_cli_validate_serving_table(cli):
    code, out, err = cli("validate", "serving", "--trust", "C")
    assert code == 0, err
    assert "FT-13B-A100-TP1:prefill" in out and "median |err| <= 15%" in out
