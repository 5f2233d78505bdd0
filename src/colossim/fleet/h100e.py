"""H100-equivalents of any accelerator, by a named metric.

An H100-equivalent (H100e) says how many NVIDIA H100 SXM GPUs match ``count`` chips on one
measure.  The measure must always be stated: an A100 is 0.32 H100e by dense BF16 throughput but
0.61 by HBM bandwidth, and 0.25 by ARK's published rule of thumb.

Metrics (``METRICS``):

- ``bf16`` (default): dense BF16 tensor throughput (fp16 on chips without bf16).
- ``fp8``: dense 8-bit throughput -- FP8 where the chip has it, else INT8, else its 16-bit rate.
  This is the basis Epoch AI uses for most products (H100 = 1,979 dense 8-bit TOPS).
- ``tf32``: dense TF32 tensor throughput.
- ``hbm_bandwidth``, ``hbm_capacity``: memory bandwidth and size.
- ``power``: H100s that draw the same accelerator power (TDP).
- ``price``: H100s that cost the same (catalog price, midpoint of its range).
- ``epoch-clusters``, ``epoch-chip-sales``: the ratios Epoch AI publishes per chip.
- published rules of thumb from ``published_ratios.csv`` (e.g. ``ark-4x-a100``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

from colossim.catalog import Accelerator, load_catalog
from colossim.catalog.loader import data_path, load_models
from colossim.errors import ColossimError, UnknownNameError

REFERENCE_CHIP = "h100-sxm"

#: metric -> (description, unit)
SPEC_METRICS: dict[str, tuple[str, str]] = {
    "bf16": ("dense BF16 tensor throughput", "TFLOPS"),
    "fp8": ("dense 8-bit throughput (FP8, else INT8, else 16-bit)", "TFLOPS"),
    "tf32": ("dense TF32 tensor throughput", "TFLOPS"),
    "hbm_bandwidth": ("HBM bandwidth", "TB/s"),
    "hbm_capacity": ("HBM capacity", "GiB"),
    "power": ("accelerator power (TDP): H100s drawing the same watts", "W"),
    "price": ("chip price: H100s costing the same dollars", "USD"),
}
EPOCH_METRICS: dict[str, tuple[str, str]] = {
    "epoch-clusters": ("ratio Epoch AI's GPU Clusters data implies", "H100e/chip"),
    "epoch-chip-sales": ("ratio Epoch AI's chip-sales model uses", "H100e/chip"),
}


class PublishedRatio(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    chip: str
    h100e_per_chip: float
    claim: str
    who: str
    source: str


@lru_cache(maxsize=1)
def published_ratios() -> dict[str, dict[str, PublishedRatio]]:
    """Named published ratios: ``{metric_id: {chip: ratio}}``."""
    out: dict[str, dict[str, PublishedRatio]] = {}
    for r in load_models(data_path("published_ratios.csv"), PublishedRatio, unique_by=("id", "chip")):
        out.setdefault(r.id, {})[r.chip] = r
    return out


def metrics() -> list[str]:
    """Every metric name, built-in first."""
    return [*SPEC_METRICS, *EPOCH_METRICS, *published_ratios()]


@dataclass(frozen=True)
class H100e:
    """``count`` chips of ``chip`` are worth ``h100e`` H100s by ``metric``."""

    chip: str
    count: float
    metric: str
    h100e: float
    per_chip: float
    chip_value: float | None
    reference_value: float | None
    unit: str
    basis: str


def metric_value(acc: Accelerator, metric: str) -> float | None:
    """The chip's value on a datasheet metric, in the unit of ``SPEC_METRICS[metric]``."""
    if metric in ("bf16", "tf32"):
        return acc.tflops(metric)
    if metric == "fp8":
        return acc.dense_tflops_fp8 or acc.dense_tops_int8 or acc.tflops("bf16")
    if metric == "hbm_bandwidth":
        return acc.hbm_tb_per_s
    if metric == "hbm_capacity":
        return acc.hbm_gib
    if metric == "power":
        return acc.tdp_w
    if metric == "price":
        return acc.price_usd("mid")
    raise UnknownNameError("metric", metric, metrics())


def per_chip(chip: str, metric: str = "bf16") -> H100e:
    """H100e of one chip by ``metric``."""
    return h100e(chip, 1, metric)


def check_count(count: float) -> None:
    """Raise :class:`ColossimError` unless ``count`` is a number of chips: finite and >= 0."""
    if not math.isfinite(count) or count < 0:
        raise ColossimError(f"count must be a finite number >= 0, got {count:g}", field="count", value=count)


def h100e(chip: str, count: float, metric: str = "bf16") -> H100e:
    """H100-equivalents of ``count`` chips of ``chip`` by ``metric`` (linear in ``count``)."""
    check_count(count)
    cat = load_catalog()
    acc = cat.accelerator(chip)
    if metric in SPEC_METRICS:
        desc, unit = SPEC_METRICS[metric]
        ref = metric_value(cat.accelerator(REFERENCE_CHIP), metric)
        val = metric_value(acc, metric)
        if val is None or not ref:
            raise ColossimError(f"chip '{acc.id}' has no value for metric '{metric}' ({desc}) in the catalog",
                                field="metric", value=metric, allowed=metrics())
        ratio = val / ref
        basis = f"{desc}: {val:g} / {ref:g} {unit} (H100 SXM)"
        return H100e(acc.id, count, metric, count * ratio, ratio, val, ref, unit, basis)
    if metric in EPOCH_METRICS:
        desc, unit = EPOCH_METRICS[metric]
        ratio = acc.h100e_epoch_clusters if metric == "epoch-clusters" else acc.h100e_epoch_chip_sales
        if ratio is None:
            raise ColossimError(f"Epoch AI publishes no '{metric}' ratio for chip '{acc.id}'",
                                field="metric", value=metric, allowed=metrics())
        return H100e(acc.id, count, metric, count * ratio, ratio, ratio, 1.0, unit, desc)
    table = published_ratios()
    if metric in table:
        rows = table[metric]
        if acc.id not in rows:
            raise ColossimError(f"published ratio '{metric}' does not cover chip '{acc.id}' "
                                f"(covers: {', '.join(sorted(rows))})", field="metric", value=metric,
                                allowed=metrics())
        r = rows[acc.id]
        basis = f"published ratio: '{r.claim}' ({r.who}; {r.source})"
        return H100e(acc.id, count, metric, count * r.h100e_per_chip, r.h100e_per_chip,
                     r.h100e_per_chip, 1.0, "H100e/chip", basis)
    raise UnknownNameError("metric", metric, metrics())


def h100e_mix(counts: Mapping[str, float], metric: str = "bf16") -> float:
    """H100e of a mix of chips: the sum of its parts."""
    return sum(h100e(chip, n, metric).h100e for chip, n in counts.items())


def all_metrics(chip: str, count: float) -> list[H100e | tuple[str, str]]:
    """``h100e`` by every metric; a metric the chip lacks gives ``(metric, reason)``."""
    out: list[H100e | tuple[str, str]] = []
    for m in metrics():
        try:
            out.append(h100e(chip, count, m))
        except ColossimError as e:
            out.append((m, str(e)))
    return out
