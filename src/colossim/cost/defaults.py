"""Default calibration profiles built from the published microbenchmarks (rows.py), with the fitting
code of fit.py.  A chip uses its own rows where they exist; otherwise the component comes from the
closest architecture in :data:`FALLBACK` (efficiencies are fractions of peak, so they carry over and
scale with the target chip's own peaks and link bandwidths).  Rows in ``rows.HELD_OUT`` and
``rows.OTHER_KERNEL`` are never used; rows in ``rows.SUSTAINED_ONLY`` only set the sustained-clock
fraction (:data:`SUSTAINED_GEMM_ROWS`).
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache

import numpy as np

from colossim.catalog import load_catalog
from colossim.catalog.loader import data_path
from colossim.cost import comm, fit, rows
from colossim.cost.compute import FLASH3_ARCHITECTURE
from colossim.cost.efficiency import (AttentionParams, BusCurve, CalibrationProfile, GemmParams,
                                      default_profile)

#: Closest measured architecture for each chip without its own rows (documented fallbacks).
FALLBACK = {
    "h200-sxm": "h100-sxm",     # same GH100 die and SMs; HBM3e (mamf table: "H200 is the same")
    "h800-sxm": "h100-sxm",     # same SMs and tensor-core rate; NVLink cut (catalog link bw used)
    "h20": "h100-sxm",          # Hopper, fewer SMs: fractions of its own (lower) peaks
    "h100-pcie": "h100-sxm", "h100-nvl": "h100-sxm",
    "a100-40gb-sxm": "a100-80gb-sxm",
    "v100-sxm": "a100-80gb-sxm",
    "b200": "h100-sxm",         # only for components B200 has no rows for
    "b300": "b200", "gb200": "b200", "gb300": "gb200",
    "mi325x": "mi300x", "mi355x": "mi300x", "mi250x": "mi300x", "mi300x": "h100-sxm",
}
#: Because: every other chip (TPUs, Gaudi, Trainium, Dojo, ...) has no published rows in the file;
#: the H100 — the best-measured chip — stands in, applied as fractions of that chip's own peaks.
GENERIC_FALLBACK = "h100-sxm"

#: Systems the nccl-tests rows ran on (catalog ids); the row's chip's HGX/NVL system otherwise.
ROW_SYSTEM = {"a100-80gb-sxm": "hgx-a100", "a100-40gb-sxm": "hgx-a100-40gb", "h100-sxm": "hgx-h100",
              "h200-sxm": "hgx-h200", "b200": "hgx-b200", "gb200": "gb200-nvl72",
              "mi300x": "mi300x-platform"}
#: Chips whose curve shapes (half size, gamma) other chips borrow when they have < 3 message sizes.
SHAPE_DONOR = {"nvlink": "a100-80gb-sxm", "nvls": "h100-sxm", "nvl72": "h100-sxm",
               "scaleout": "h100-sxm"}
#: Because: a neutral start for the curve fits (plateau 80 % of the link, half-bandwidth at 16 MiB).
_START = BusCurve(0.8, 16 * 2**20, 0.7, 30e-6)
#: Because: start of the attention fit (FlashAttention-2 paper: ~70 % of peak at long sequences).
_ATT_START = AttentionParams(0.4, 512.0, 32.0)
#: GEMM rows measured under sustained load at the chip's power limit, by chip.  Sources
#: (microbenchmarks.csv): H100, colossim's own 8192^3 bf16 torch.matmul held 100 s on random data
#: on a lent H100 80GB HBM3 (2026-11-24, benchmarks/gemm_sustained.py), the board at 695-700 W of
#: its 700 W limit and the SM clock at 1357 MHz on average: 669.4 TFLOPS (until that measurement,
#: tusharhqq/napkin-math-gpu's 7-round median with "700 W power limit reported", 711.5, which
#: names the limit, not the draw); A100, Azure AI-benchmarking-guide cuBLASLt 16384^3 after
#: 10,000 warm-up iterations (256.5 TFLOPS; the 7-round napkin row, 289.3, is above the A100's
#: best-shape MAMF search, 271.2, so it ran at burst clocks).  The MAMF / XLA / cuBLASLt rows the
#: GEMM fit is anchored on are best-of-search or short bursts that run at boost clocks; a training
#: job holds every GPU at its power limit for hours, so the SMs run at the lower sustained clock.
#: Other precisions have rows of their own where a held benchmark exists: a GEMM's power draw per
#: FLOP depends on its operand width, so the clock it holds at the limit does too.  H100 fp8:
#: colossim's own 8192^3 torch._scaled_mm held 90 s on the same lent H100 (2026-11-24), 1,208.8
#: TFLOPS at 696-702 W and 1247 MHz on average (16384^3 held 45 s: 1,222.6 at 1197 MHz, the same
#: fraction of the burst fit within 0.012); until that measurement, Azure AI-benchmarking-guide's
#: cuBLASLt 16384^3 after 10,000 warm-up iterations (1,377 TFLOPS, which no hold at the 700 W limit
#: reproduced); GB200 fp8, the same Azure benchmark's 16384^3 (2,907 TFLOPS).  A precision
#: without a row takes its fallback architecture's fraction of that precision.  The rows stay out
#: of the burst fit (rows.SUSTAINED_ONLY).
SUSTAINED_GEMM_ROWS: dict[str, dict[str, str]] = {
    "h100-sxm": {"bf16": "gemm-h100-colossim-held-bf16-8192", "fp8": "gemm-h100-colossim-held-fp8-8192"},
    "a100-80gb-sxm": {"bf16": "gemm-a100-azure-fp16-mnk16384"},
    "gb200": {"fp8": "gemm-gb200-azure-fp8-mnk16384"},
}
#: Default profiles are derived data: dated by the measurements they come from (see each row).
DEFAULT_PROFILE_DATE = "per-row (published 2020-2025)"


@lru_cache(maxsize=1)
def _sm_counts() -> dict[str, int]:
    d = json.loads(data_path("profiles/sm_counts.json").read_text(encoding="utf-8"))
    return {k: v["sm_count"] for k, v in d.items() if not k.startswith("_")}


def _fallback(chip: str) -> str | None:
    if chip == GENERIC_FALLBACK:
        return None
    return FALLBACK.get(chip, GENERIC_FALLBACK)


def _build(rows_: list, chip: str) -> list:
    """``chip``'s rows a default profile may be fitted to: neither held out nor of another kernel
    generation, nor measured only under a sustained hold (``rows.HELD_OUT``, ``rows.OTHER_KERNEL``,
    ``rows.SUSTAINED_ONLY``)."""
    excluded = rows.HELD_OUT | rows.OTHER_KERNEL | rows.SUSTAINED_ONLY
    return [r for r in rows_ if r.chip == chip and r.row not in excluded]


def _network(chip: str):
    cat = load_catalog()
    return comm.network_for(cat.accelerator(chip), cat.system(ROW_SYSTEM[chip]))


def _intra_busbw(curve: BusCurve, samples, link: float) -> np.ndarray:
    out = []
    for s in samples:
        n = s.gpus
        traffic = (2.0 if s.op == "all_reduce" else 1.0) * (n - 1) / n * s.message_bytes
        t = curve.latency_seconds + traffic / float(comm.busbw(curve, link, s.message_bytes))
        out.append(float(comm.bus_bandwidth(s.op, s.message_bytes, n, t)))
    return np.array(out)


def _samples(chip: str):
    colls = _build(rows.collective_samples(), chip)
    return [s for s in colls if s.busbw_bytes_per_s], [s for s in colls if s.latency_s]


def _intra_groups(chip: str):
    """(ring samples, nvls samples, intra latency or None, link bytes/s) of ``chip``'s rows."""
    net = _network(chip)
    samples, lat_rows = _samples(chip)
    intra = [s for s in samples if s.gpus <= net.scaleup_domain_size]
    ring = [s for s in intra if s.op in ("all_gather", "reduce_scatter") or
            (s.op == "all_reduce" and (s.algo == "ring" or not net.nvls))]
    nvls = [s for s in intra if s.op == "all_reduce" and net.nvls and s.algo in ("nvls", "default")]
    lat = [s.latency_s for s in lat_rows if s.gpus <= net.scaleup_domain_size]
    return ring, nvls, (lat[0] if lat else None), net.scaleup_bytes_per_s_per_gpu


@lru_cache(maxsize=8)
def _donor_shape(fabric: str) -> BusCurve:
    """The curve of SHAPE_DONOR[fabric], fitted to the donor's own rows only."""
    donor = SHAPE_DONOR[fabric]
    if fabric == "scaleout":
        return default_profile(donor).curve("scaleout")
    ring, nvls, lat, link = _intra_groups(donor)
    group = ring if fabric == "nvlink" else nvls
    start = dataclasses.replace(_START, latency_seconds=lat or _START.latency_seconds)
    meas = np.array([s.busbw_bytes_per_s for s in group])
    return fit.fit_bus_curve(lambda cv: _intra_busbw(cv, group, link), meas, start, True)


def _fit_curve(fabric: str, samples, predict, start: BusCurve, chip: str) -> BusCurve | None:
    if not samples:
        return None
    meas = np.array([s.busbw_bytes_per_s for s in samples])
    ids = tuple(s.row for s in samples)
    if len({s.message_bytes for s in samples}) >= 3:
        return fit.fit_bus_curve(predict, meas, start, True, f"{fabric}: fitted to {chip} rows", ids)
    shape = _donor_shape(fabric)
    start = dataclasses.replace(start, half_size_bytes=shape.half_size_bytes, gamma=shape.gamma)
    return fit.fit_bus_curve(predict, meas, start, False,
                             f"{fabric}: plateau from {chip} rows, shape from {SHAPE_DONOR[fabric]}",
                             ids)


def _collectives(chip: str, fb: CalibrationProfile | None, base: CalibrationProfile):
    samples, lat_rows = _samples(chip) if chip in ROW_SYSTEM else ([], [])
    if not samples:
        return dict(fb.collectives), fb.alltoall_fraction, notes_of(fb, "collectives")
    net = _network(chip)
    domain = net.scaleup_domain_size
    ring, nvls, lat, link = _intra_groups(chip)
    if lat is None:
        lat = fb.curve("nvlink").latency_seconds if fb else _START.latency_seconds
    start = dataclasses.replace(_START, latency_seconds=lat)
    out: dict[str, BusCurve] = {}
    for fabric, group in (("nvlink", ring), ("nvls" if domain < 72 else "nvl72", nvls)):
        c = _fit_curve(fabric, group, lambda cv, g=group: _intra_busbw(cv, g, link), start, chip)
        if c is None and fb:
            c = fb.curve(fabric)
        if c is not None:
            out[fabric] = c
    for fabric in ("nvlink", "nvls", "nvl72"):
        if fabric not in out:
            out[fabric] = fb.curve(fabric) if fb else out.get("nvls", out.get("nvlink", start))
    # all-to-all inside the domain, relative to the ring curve at the same size
    a2a = [s for s in samples if s.gpus <= domain and s.op == "all_to_all"]
    if a2a:
        ring_bw = _intra_busbw(out["nvlink"], a2a, link)
        a2a_frac = float(np.exp(np.mean(np.log(np.array([s.busbw_bytes_per_s for s in a2a]) / ring_bw))))
    else:
        a2a_frac = fb.alltoall_fraction if fb else 0.85
    # scale-out: rows spanning several domains, predicted with the full all-reduce model
    cross = [s for s in samples if s.gpus > domain and s.op == "all_reduce"]
    so_lat = [s for s in lat_rows if s.gpus > domain]
    hop = ((so_lat[0].latency_s - lat) / 2.0 if so_lat else
           (fb.curve("scaleout").latency_seconds if fb else 20e-6))
    so_start = dataclasses.replace(fb.curve("scaleout") if fb else _START, latency_seconds=hop)
    partial = dataclasses.replace(base, collectives={**out, "scaleout": so_start})

    def predict(cv: BusCurve) -> np.ndarray:
        prof = dataclasses.replace(partial, collectives={**out, "scaleout": cv})
        t = np.array([float(comm.all_reduce_seconds(s.message_bytes, s.gpus, net, prof)) for s in cross])
        return comm.bus_bandwidth("all_reduce", np.array([s.message_bytes for s in cross]),
                                  np.array([s.gpus for s in cross]), t)

    out["scaleout"] = _fit_curve("scaleout", cross, predict, so_start, chip) or so_start
    return out, a2a_frac, ()


def notes_of(fb: CalibrationProfile | None, what: str) -> tuple[str, ...]:
    return (f"{what} from {fb.chip}",) if fb else ()


def build_default_profile(chip: str) -> CalibrationProfile:
    """Build (uncached) the default profile of catalog chip ``chip``; see the module docstring."""
    acc = load_catalog().accelerator(chip)
    chip = acc.id
    fb_id = _fallback(chip)
    fb = default_profile(fb_id) if fb_id else None
    notes: list[str] = []
    # memory
    mem = _build(rows.memory_samples(), chip)
    if mem and acc.hbm_bytes_per_s:
        mem_eff, mem_rows = fit.fit_memory_efficiency(mem, acc.hbm_bytes_per_s), tuple(s.row for s in mem)
    else:
        mem_eff, mem_rows = fb.memory_efficiency, fb.memory_rows
        notes.append(f"memory efficiency from {fb.chip}")
    sm = _sm_counts().get(chip) or (fb.gemm["bf16"].sm_count if fb else 132)
    skeleton = CalibrationProfile(chip, "", "", {}, _ATT_START, mem_eff, {}, 0.85, 0.85, mem_rows)
    # GEMM
    gemm: dict[str, GemmParams] = {}
    misaligned = _misaligned_factor()
    for prec in ("bf16", "fp8", "fp4"):
        own = [s for s in _build(rows.gemm_samples(), chip) if s.precision == prec]
        if own and acc.peak_flops_per_s(prec):
            # one row pins the peak efficiency only: the fixed time per kernel comes from the
            # closest measured architecture, as missing components do (fit.fit_gemm)
            donor = (fb.gemm.get(prec) or fb.gemm.get("bf16")) if fb and len(own) == 1 else None
            gemm[prec] = fit.fit_gemm(own, prec, acc, dataclasses.replace(skeleton, gemm=gemm), sm,
                                      misaligned, f"fitted to {chip} {prec} rows"
                                      + (f"; launch time from {fb.chip}" if donor else ""),
                                      unpinned=donor)
        elif fb and prec in fb.gemm:
            gemm[prec] = dataclasses.replace(fb.gemm[prec], sm_count=sm,
                                             derivation=f"from {fb.chip} ({fb.gemm[prec].derivation})")
            notes.append(f"gemm {prec} from {fb.chip}")
    # sustained (power-limited) clocks: measured sustained / burst model at the same shape
    for prec, (sustained, s_rows) in _sustained_fractions(chip, acc, gemm, skeleton, fb).items():
        gemm = fit.with_sustained_fraction(gemm, [prec], sustained, s_rows)
    # attention
    att_own = _build(rows.attention_samples(), chip)
    if att_own:
        start = fb.attention if fb and len(att_own) < 3 else _ATT_START
        attention = fit.fit_attention(att_own, acc.peak_flops_per_s("bf16"),
                                      f"fitted to {chip} FlashAttention fwd+bwd rows", start)
        # Not scaled by the sustained-clock fraction: the held-out long-run FlashAttention-2 rows
        # (Azure ND H100/H200 v5, 8k tokens) match the fitted efficiency without it -- attention
        # interleaves softmax work on the CUDA cores and draws less power per FLOP than a GEMM.
    else:
        attention = dataclasses.replace(fb.attention, derivation=f"from {fb.chip}")
        notes.append(f"attention from {fb.chip}")
    attention = _with_flash3(acc, attention)
    base = dataclasses.replace(skeleton, gemm=gemm, attention=attention)
    colls, a2a, cnotes = _collectives(chip, fb, base)
    notes.extend(cnotes)
    p2p = [r for r in rows.p2p_fraction_rows() if r.hardware == chip and r.id not in rows.HELD_OUT]
    if p2p and acc.scaleup_bytes_per_s:
        p2p_frac = float(np.mean([r.value * 1e9 / acc.scaleup_bytes_per_s for r in p2p]))
    else:
        p2p_frac = fb.p2p_fraction if fb else 0.85
    return dataclasses.replace(
        base, collectives=colls, alltoall_fraction=a2a, p2p_fraction=p2p_frac,
        source="colossim default profile from catalog/data/microbenchmarks.csv (published rows; "
               "held-out rows excluded)",
        date=DEFAULT_PROFILE_DATE, notes=tuple(notes))


def _with_flash3(acc, attention: AttentionParams) -> AttentionParams:
    """``attention`` with FlashAttention-3's relative throughput on a Hopper chip: the in-step
    FlashAttention-3 rows (fwd+bwd measured inside a training step, ``rows.OTHER_KERNEL``) over
    what this FlashAttention-2 model gives at their shapes (geometric mean); unchanged elsewhere."""
    if acc.architecture != FLASH3_ARCHITECTURE:
        return attention
    cat = load_catalog()
    samples = [s for s in rows.attention_samples() if "fa3" in s.row and "instep" in s.row
               and cat.accelerator(s.chip).architecture == FLASH3_ARCHITECTURE]
    if not samples:
        return attention
    ratios = [s.flops_per_s / float(fit.predict_attention_flops_per_s(
        [s], cat.accelerator(s.chip).peak_flops_per_s("bf16"), attention)[0]) for s in samples]
    return dataclasses.replace(attention, flash3_relative=float(np.exp(np.mean(np.log(ratios)))),
                               flash3_rows=tuple(s.row for s in samples))


def _sustained_fractions(chip: str, acc, gemm: dict, skeleton: CalibrationProfile,
                         fb: CalibrationProfile | None) -> dict[str, tuple[float, tuple[str, ...]]]:
    """Sustained / burst GEMM throughput of ``chip`` for each precision it has fitted rows for: its
    SUSTAINED_GEMM_ROWS row of that precision over what the burst-fitted model predicts for that
    shape, capped at 1 (a chip that holds its clock, like the A100 at 400 W, loses nothing); else
    the fallback architecture's fraction of that precision (or of bf16); else 1.  As in
    ``colossim calibrate``, one precision's hold does not stand in for another's."""
    table = SUSTAINED_GEMM_ROWS.get(chip, {})
    burst = dataclasses.replace(skeleton, gemm=gemm)
    out: dict[str, tuple[float, tuple[str, ...]]] = {}
    for prec in (p for p in gemm if not gemm[p].derivation.startswith("from ")):
        if prec in table:
            row = next(s for s in rows.gemm_samples() if s.row == table[prec])
            out[prec] = fit.sustained_fraction(row, acc, burst), (table[prec],)
        elif fb is not None and (prec in fb.gemm or "bf16" in fb.gemm):
            g = fb.gemm.get(prec) or fb.gemm["bf16"]
            out[prec] = g.sustained_fraction, g.sustained_rows
        else:
            out[prec] = 1.0, ()
    return out


@lru_cache(maxsize=1)
def _misaligned_factor() -> float:
    """Throughput ratio of the misaligned / aligned SwiGLU GEMM pair on H100 (same shape but K)."""
    by_id = {r.id: r.value for r in rows.load_rows()}
    return by_id["gemm-h100-swiglu-unaligned"] / by_id["gemm-h100-swiglu-aligned"]
