"""Validation of the inference engine against published, measured serving results.

The rows live in ``catalog/data/validation/serving_runs.csv``, copied from the team's reference set
with their sources and ids, plus what colossim needs: ``spec_json`` (the serving spec it runs),
``metric`` (which predicted quantity each published number is compared with), ``published_value``
(in the predicted quantity's SI unit), ``trust`` (A = primary table or log, B = aggregated from
primary logs, C = secondary copy) and ``notes`` (every assumption made to build the spec, after
``colossim:``).

A row's ``metric`` is one metric name, or ``label:metric;label:metric`` when the source publishes
several numbers for one run (FasterTransformer's prefill / decode / total); each then becomes its
own entry ``ROW-ID:label``, with the ``published_value`` s in the same order.

Error = predicted / published - 1 (positive = colossim is optimistic: more tokens/s, or a longer
latency -- for latency metrics a positive error means colossim is *pessimistic*).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

from colossim.catalog.loader import data_path, load_models
from colossim.errorstats import ErrorStats, Targets, chip_family
from colossim.errorstats import error_stats as _error_stats
from colossim.errors import ColossimError

#: Mean prompt length (tokens) of the MLPerf Inference llama2-70b OpenOrca sample set.  Because: the
#: reference set gives no length ("OpenOrca dataset (variable)") and ../shared has no source for the
#: mean; ~300 tokens is the value recalled from MLCommons' description of the 24,576-sample subset
#: (prompts up to 1,024 tokens).  An assumption, not a sourced figure; the MLPerf rows' ``spec_json``
#: carry it and a test keeps them equal.  The output length needs no assumption: tokens/s / samples/s
#: of the 8xH100 Offline log = 21805.8 / 74.699 = 292.
MLPERF_OPENORCA_MEAN_INPUT_TOKENS = 300
MLPERF_OPENORCA_MEAN_OUTPUT_TOKENS = 292

#: Targets from issue 4: median |error| <= 15 %, max <= 35 %.
TARGET_MEDIAN_ABS = 0.15
TARGET_MAX_ABS = 0.35

#: Source families (row id prefix -> group name), checked in order.
SOURCE_FAMILIES: tuple[tuple[str, str], ...] = (
    ("MLPERF", "MLPerf"), ("TRTLLM05", "TRT-LLM v0.5 static"), ("TRTLLM", "TRT-LLM current"),
    ("FT-", "latency"), ("NEMO", "latency"))

#: Model-size groups by parameter count in billions (upper bounds, inclusive).
SIZE_GROUPS: tuple[tuple[str, float], ...] = (("<=13B", 13.5), ("70B", 100.0), ("405B", float("inf")))


def _context_plus_decode(est) -> float:
    # FasterTransformer's total: the context phase, then one decode step per output token.
    return est.ttft_s + est.output_tokens * est.tpot_s


def _request_latency(est) -> float:
    # One request alone: the prefill emits the first token, then output_tokens - 1 decode steps.
    return est.ttft_s + (est.output_tokens - 1) * est.tpot_s


#: What each ``metric`` name reads off a :class:`~colossim.inference.estimate.ServingEstimate`.
METRICS: dict[str, Callable] = {
    "tokens_per_s": lambda e: e.tokens_per_s,          # output tokens/s, all GPUs
    "ttft_s": lambda e: e.ttft_s,
    "tpot_s": lambda e: e.tpot_s,
    "request_latency_s": _request_latency,
    "context_plus_decode_s": _context_plus_decode,
}


class ServingRun(BaseModel):
    """One published serving result (the typed subset of the CSV's columns)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    id: str
    trust: str
    source: str
    model: str
    gpu: str
    gpus: int
    scenario: str
    published_metric: str
    value: str | None = None
    metric: str
    published_value: str
    spec_json: str
    notes: str | None = None

    @property
    def spec(self) -> dict:
        return json.loads(self.spec_json)

    @property
    def comparisons(self) -> list[tuple[str, str, float]]:
        """(entry id, metric name, published value in SI) for each number the row publishes."""
        metrics = self.metric.split(";")
        values = [float(v) for v in self.published_value.split(";")]
        if len(metrics) != len(values):
            raise ValueError(f"{self.id}: {len(metrics)} metrics but {len(values)} published values")
        out = []
        for m, v in zip(metrics, values):
            label, _, name = m.rpartition(":")
            if name not in METRICS:
                raise ValueError(f"{self.id}: unknown metric {name!r}; allowed: {', '.join(METRICS)}")
            out.append((f"{self.id}:{label}" if label else self.id, name, v))
        return out

    @property
    def family(self) -> str:
        return next(name for prefix, name in SOURCE_FAMILIES if self.id.startswith(prefix))


@lru_cache(maxsize=1)
def serving_runs() -> tuple[ServingRun, ...]:
    """Every published serving result in the package's validation set."""
    return tuple(load_models(data_path("validation/serving_runs.csv"), ServingRun))


@dataclass(frozen=True)
class EntryResult:
    """One published number against its prediction."""

    entry_id: str
    run: ServingRun
    metric: str
    published: float
    predicted: float | None
    error: float | None  # predicted / published - 1
    params_b: float | None
    plan: dict | None
    batch: int | None
    failure: str | None = None

    @property
    def groups(self) -> list[str]:
        """[source family, chip family, model size, trust]."""
        size = "?" if self.params_b is None else next(n for n, hi in SIZE_GROUPS if self.params_b <= hi)
        return [self.run.family, chip_family(self.run.gpu), size, f"trust {self.run.trust}"]


def error_stats(errors: Iterable[float | None]) -> ErrorStats:
    """Median and max absolute error and mean signed error, judged against this validation's targets."""
    return _error_stats(errors, Targets(TARGET_MEDIAN_ABS, TARGET_MAX_ABS))


def predict(run: ServingRun):
    """The estimate colossim makes for a run's spec (omitted plan fields and batch searched)."""
    from colossim.inference.estimate import estimate
    from colossim.specs.serving import load_serving_spec

    spec = load_serving_spec(run.spec)
    return spec, estimate(spec)


def validate(runs: Iterable[ServingRun] | None = None,
             progress: Callable[[ServingRun], None] | None = None) -> list[EntryResult]:
    """Predict every run and compare each published number with its predicted metric."""
    out = []
    for run in runs if runs is not None else serving_runs():
        if progress:
            progress(run)
        try:
            spec, est = predict(run)
        except ColossimError as e:
            out += [EntryResult(eid, run, m, v, None, None, None, None, None, failure=str(e))
                    for eid, m, v in run.comparisons]
            continue
        params_b = spec.model.params_total / 1e9
        for eid, m, v in run.comparisons:
            pred = float(METRICS[m](est))
            out.append(EntryResult(eid, run, m, v, pred, pred / v - 1.0, params_b, est.parallelism,
                                   est.batch))
    return out


def grouped_stats(results: list[EntryResult]) -> dict[str, ErrorStats]:
    """Error statistics overall and by group (source family, chip, model size, trust)."""
    kinds: list[dict[str, list[float]]] = []
    for r in results:
        if r.error is None:
            continue
        for i, g in enumerate(r.groups):
            while len(kinds) <= i:
                kinds.append({})
            kinds[i].setdefault(g, []).append(r.error)
    out = {"all": error_stats(r.error for r in results)}
    for kind in kinds:  # source family, then chip, model size, trust: each kind's groups together
        out.update({g: error_stats(v) for g, v in kind.items()})
    return out


__all__ = ["EntryResult", "ErrorStats", "METRICS", "MLPERF_OPENORCA_MEAN_INPUT_TOKENS",
           "MLPERF_OPENORCA_MEAN_OUTPUT_TOKENS", "ServingRun", "TARGET_MAX_ABS", "TARGET_MEDIAN_ABS",
           "error_stats", "grouped_stats", "serving_runs", "validate"]
