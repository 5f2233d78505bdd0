"""Charts: the search's plan space they draw, the figures' contents, and pages written whole."""

from __future__ import annotations

import numpy as np
import pytest

from colossim import charts, units
from colossim.specs.training import load_spec
from colossim.training.estimate import search
from colossim.training.labels import plan_label
from colossim.training.plans import RECOMPUTE_CODES

SPEC = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 64}, "training": {"global_batch": 256}}


@pytest.fixture(scope="module")
def result():
    return search(load_spec(SPEC), top=5)


def test_the_space_is_every_plan_that_fits_and_holds_the_best(result):
    space, spec = result.space, load_spec(SPEC)
    assert len(space) == result.configs_fitting > len(result.best)
    hbm_gib = units.bytes_to_gib(spec.hardware.hbm_bytes)
    assert np.all(space.memory_gib_per_gpu <= hbm_gib + 1e-9)
    # tokens/s/GPU is the step's tokens over its time, per GPU, for every plan
    assert space.tokens_per_s_per_gpu * space.step_time_s == pytest.approx(np.full(len(space), 256 * 8192 / 64))
    best = result.best[0]
    assert space.tokens_per_s_per_gpu.max() == pytest.approx(best.tokens_per_s_per_gpu)
    i = int(np.argmin(space.step_time_s))
    assert space.plans.plan_dict(i)["tp"] == best.parallelism["tp"]
    assert space.memory_gib_per_gpu[i] == pytest.approx(best.memory_gib_per_gpu)


def test_search_figure_draws_each_policy_the_best_and_the_step_parts(result):
    fig = charts.search_figure(result, "t", hbm_gib=80.0)
    names = [t.name for t in fig.data]
    rec = np.asarray(result.space.plans.recompute)
    policies = [n for n in charts.RECOMPUTE_COLOURS if np.any(rec == RECOMPUTE_CODES[n])]
    assert [n for n in names if n.startswith("recompute ")] == [f"recompute {p}" for p in policies]
    drawn = sum(len(t.x) for t in fig.data if t.name.startswith("recompute "))
    assert drawn == len(result.space)
    ring = next(t for t in fig.data if t.name == "best 5")
    assert list(ring.y) == pytest.approx([e.tokens_per_s_per_gpu for e in result.best])
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    assert "compute" in bars
    for k, tr in bars.items():  # each stacked part is that part of the best plans' steps
        assert list(tr.x) == pytest.approx([e.time_breakdown_s[k] for e in result.best])
    stacked = np.sum([np.asarray(t.x) for t in bars.values()], axis=0)
    assert stacked == pytest.approx([e.step_time_s for e in result.best], rel=1e-9)
    # bars named by rank, as the rings are numbered; the plan in the hover and in the table
    assert list(bars["compute"].y) == [f"#{i}" for i in range(1, 6)]
    assert list(bars["compute"].customdata) == [plan_label(e.parallelism) for e in result.best]
    table = charts.best_plans_table(result).data[0]
    assert list(table.header.values) == ["#", "plan", "step s", "tokens/s/GPU", "MFU", "GiB/GPU"]
    assert list(table.cells.values[1]) == [plan_label(e.parallelism) for e in result.best]
    assert list(table.cells.values[3]) == [f"{e.tokens_per_s_per_gpu:,.0f}" for e in result.best]


def test_a_capped_chart_keeps_the_fastest_plans(result):
    fig = charts.search_figure(result, "t", limit=10)
    ys = np.concatenate([np.asarray(t.y) for t in fig.data if t.name.startswith("recompute ")])
    assert len(ys) == 10
    assert np.sort(ys)[::-1] == pytest.approx(np.sort(result.space.tokens_per_s_per_gpu)[::-1][:10])


def test_validation_figure_has_every_run_and_the_target_bands():
    from colossim.cli.validate import run_training_validation

    results, _ = run_training_validation(show_progress=False, runs_file=None, trust="B")
    fig = charts.validation_figure(results, "t", targets=(0.07, 0.20))
    bar = next(t for t in fig.data if t.type == "bar")
    ranked = sorted((r for r in results if r.error is not None), key=lambda r: r.error)
    assert list(bar.x) == [r.run.id for r in ranked] and list(bar.y) == pytest.approx([r.error for r in ranked])
    lines = {t.name for t in fig.data if getattr(t, "mode", None) == "lines"}
    assert lines == {"predicted = published", "+-7% (median target)", "+-20% (max target)"}
    upper = next(t for t in fig.data if t.name == "+-20% (max target)" and t.showlegend)
    assert upper.y[0] / upper.x[0] == pytest.approx(1.2)


def test_a_long_chart_title_is_broken_at_spaces_into_lines_that_fit():
    short = "llama3-8b on 64 x h100-sxm"
    assert charts.chart_title(short) == short
    long = ("Training, predicted vs published tokens/s/GPU: median |err| 2.8%, max 24.1%, mean signed +1.2% "
            "over 69 runs")
    lines = charts.chart_title(long).split("<br>")
    assert len(lines) == 2 and all(len(x) <= charts.TITLE_LINE_CHARS for x in lines)
    assert " ".join(lines) == long  # nothing lost, broken only at spaces
