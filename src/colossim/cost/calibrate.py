"""Calibrating a profile on the GPU present: measure with PyTorch, fit with fit.py (the same code that
builds the default profiles from the published rows).

torch is not a dependency: :func:`measure` imports it lazily and raises :class:`NoGpuError` when it
is missing or no CUDA device is visible.  :func:`profile_from_measurements` is pure and is tested on
synthetic measurements.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass

from colossim.catalog.schema import Accelerator
from colossim.cost import fit
from colossim.cost.efficiency import CalibrationProfile, default_profile
from colossim.cost.rows import AttentionSample, GemmSample, MemorySample
from colossim.errors import ColossimError

#: GEMM shapes measured (m, n, k): square sweep, skinny, and a small-GEMM corner (quick: a subset).
GEMM_GRID = ((256, 512, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048),
             (4096, 4096, 4096), (8192, 8192, 8192), (256, 2048, 4096), (4096, 4096, 256),
             (16384, 192, 768))
QUICK_GEMM_GRID = ((512, 512, 512), (2048, 2048, 2048), (8192, 8192, 8192))
#: Attention shapes (seq, head_dim, causal) at 16k tokens per batch and hidden 2048 (flash-attn
#: benchmark settings, so results compare with the published FlashAttention rows).
ATTENTION_GRID = ((512, 128, True), (2048, 128, True), (8192, 128, True), (8192, 128, False),
                  (8192, 64, True))
TOKENS_PER_BATCH = 16384
ATTN_HIDDEN = 2048
#: Because: 1 GiB per copy buffer is far beyond any L2 cache (50-126 MB on Hopper/Blackwell).
COPY_BYTES = 2**30
#: The GEMM timed once more after the GPU has been held at its power limit: the shape of the
#: published sustained rows the default profiles use (colossim.cost.defaults.SUSTAINED_GEMM_ROWS).
SUSTAINED_GEMM_SHAPE = (8192, 8192, 8192)
#: Seconds of back-to-back GEMMs on random data before that timing.  Because: a training job
#: holds every GPU at its power limit for hours and the clock settles within seconds to tens of
#: seconds of it; the grid's short timings, a few ms each after three warm-up calls, run at boost
#: clocks.  An assumption, long enough to be well past the settling (quick: a shorter hold).
SUSTAINED_HOLD_SECONDS = 60.0
QUICK_SUSTAINED_HOLD_SECONDS = 15.0


class NoGpuError(ColossimError):
    """No PyTorch or no CUDA device: calibration cannot run here."""


@dataclass(frozen=True)
class Measurements:
    """What a calibration run measured, as the fitting code's samples."""

    chip: str
    device: str
    driver: str
    library: str
    gemm: tuple[GemmSample, ...]
    attention: tuple[AttentionSample, ...]
    memory: tuple[MemorySample, ...]
    sustained: tuple[GemmSample, ...] = ()
    """GEMMs timed after ``SUSTAINED_HOLD_SECONDS`` at the power limit, one per precision held
    (not fitted with ``gemm``: each sets its precision's sustained-clock fraction)."""


def profile_from_measurements(meas: Measurements, chip: Accelerator,
                              date: str | None = None) -> CalibrationProfile:
    """Fit a profile to ``meas`` on catalog chip ``chip``; components not measured (collectives,
    attention with no samples) come from the chip's default profile.

    The GEMM grid is timed in short bursts, at boost clocks; like the default profiles, each fitted
    precision then takes its sustained-clock fraction (:func:`colossim.cost.fit.sustained_fraction`):
    from its own held GEMM in ``meas.sustained`` when measured, else the default profile's
    fraction of that precision (so a calibrated profile is never the burst rate a training job
    does not see; an fp8 GEMM draws less power per FLOP and holds a higher clock than a bf16 one,
    so the bf16 hold does not stand in for it)."""
    base = default_profile(chip.id)
    mem_eff = (fit.fit_memory_efficiency(meas.memory, chip.hbm_bytes_per_s) if meas.memory
               else base.memory_efficiency)
    prof = dataclasses.replace(base, memory_efficiency=mem_eff,
                               memory_rows=tuple(s.row for s in meas.memory) or base.memory_rows)
    gemm = dict(base.gemm)
    fitted = []
    for prec in ("bf16", "fp8", "fp4"):
        samples = [s for s in meas.gemm if s.precision == prec]
        if samples and chip.peak_flops_per_s(prec):
            old = base.gemm.get(prec) or base.gemm["bf16"]
            gemm[prec] = fit.fit_gemm(samples, prec, chip, dataclasses.replace(prof, gemm=gemm),
                                      old.sm_count, old.misaligned_k_factor,
                                      f"calibrated on {meas.device}", joint=True)
            fitted.append(prec)
    burst = dataclasses.replace(prof, gemm=gemm)
    fractions: dict[str, tuple[float, str]] = {}
    for prec in fitted:
        held = [s for s in meas.sustained if s.precision == prec]
        if held:
            fraction = fit.sustained_fraction(held[0], chip, burst)
            rows, origin = (held[0].row,), f", measured on {meas.device}"
        else:
            g = base.gemm.get(prec) or base.gemm["bf16"]
            fraction, rows, origin = g.sustained_fraction, g.sustained_rows, ", the default profile's"
        gemm = fit.with_sustained_fraction(gemm, [prec], fraction, rows, origin)
        fractions[prec] = fraction, origin
    held_note = "; ".join(f"{p} {f:.3f}{o}" for p, (f, o) in fractions.items()) or "none fitted"
    attention = (fit.fit_attention(meas.attention, chip.peak_flops_per_s("bf16"),
                                   f"calibrated on {meas.device}", base.attention)
                 if meas.attention else base.attention)
    return dataclasses.replace(
        prof, gemm=gemm, attention=attention, source=f"colossim calibrate on {meas.device}",
        date=date or _dt.date.today().isoformat(), device=meas.device, driver=meas.driver,
        library=meas.library,
        notes=("collectives from the default profile (not measured)",
               f"GEMMs at a fraction of the burst rate (sustained clocks): {held_note}"))


def _import_torch(what: str = "calibrate"):
    try:
        import torch  # noqa: PLC0415 - optional dependency, imported lazily
    except ImportError:
        raise NoGpuError(f"{what} needs PyTorch with CUDA: torch is not installed",
                         field="torch") from None
    if not torch.cuda.is_available():
        raise NoGpuError(f"{what} needs a CUDA GPU: none is visible to PyTorch", field="device")
    return torch


def _time(torch, fn, iters: int) -> float:
    """Median seconds per call of ``fn`` with CUDA events, after warm-up."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    times.sort()
    return times[len(times) // 2]


def measure(chip_id: str, quick: bool = False) -> Measurements:  # pragma: no cover - needs a GPU
    """Measure GEMM (bf16, fp8 via torch._scaled_mm), attention (SDPA flash fwd+bwd), copy
    bandwidth and elementwise throughput (an fp32 add) on the current CUDA device, then the bf16
    and fp8 GEMMs once more after a hold at the power limit each (:func:`_sustained_gemm`)."""
    torch = _import_torch()
    dev = torch.device("cuda")
    iters = 5 if quick else 20
    gemm: list[GemmSample] = []
    for m, n, k in (QUICK_GEMM_GRID if quick else GEMM_GRID):
        a = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        b = torch.randn(k, n, device=dev, dtype=torch.bfloat16)
        t = _time(torch, lambda: a @ b, iters)
        gemm.append(GemmSample(f"bf16-{m}x{n}x{k}", chip_id, m, n, k, "bf16", 2 * m * n * k / t))
        if hasattr(torch, "_scaled_mm") and hasattr(torch, "float8_e4m3fn"):
            try:
                a8 = a.to(torch.float8_e4m3fn)
                b8 = b.t().contiguous().to(torch.float8_e4m3fn).t()
                one = torch.ones((), device=dev)
                t8 = _time(torch, lambda: torch._scaled_mm(a8, b8, scale_a=one, scale_b=one,
                                                           out_dtype=torch.bfloat16), iters)
                gemm.append(GemmSample(f"fp8-{m}x{n}x{k}", chip_id, m, n, k, "fp8",
                                       2 * m * n * k / t8))
            except RuntimeError:
                pass  # fp8 unsupported on this GPU / shape
    attention: list[AttentionSample] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for seq, hd, causal in ATTENTION_GRID[:2] if quick else ATTENTION_GRID:
        b, h = TOKENS_PER_BATCH // seq, ATTN_HIDDEN // hd
        q, k_, v = (torch.randn(b, h, seq, hd, device=dev, dtype=torch.bfloat16, requires_grad=True)
                    for _ in range(3))

        def step():
            out = sdpa(q, k_, v, is_causal=causal)
            out.backward(torch.ones_like(out))

        t = _time(torch, step, iters)
        flops = 4 * b * h * seq * seq * hd * (0.5 if causal else 1.0) * fit.FWD_BWD_FLOPS_FACTOR
        attention.append(AttentionSample(f"sdpa-{seq}-{hd}-{'c' if causal else 'nc'}", chip_id,
                                         seq, hd, causal, flops / t))
    x = torch.empty(COPY_BYTES // 4, device=dev, dtype=torch.float32)
    y = torch.empty_like(x)
    t = _time(torch, lambda: y.copy_(x), iters)
    z = torch.empty_like(x)
    t_add = _time(torch, lambda: torch.add(x, y, out=z), iters)  # elementwise: two reads, one write
    memory = (MemorySample("copy-1gib", chip_id, 2 * COPY_BYTES / t),
              MemorySample("add-1gib", chip_id, 3 * COPY_BYTES / t_add))
    hold = QUICK_SUSTAINED_HOLD_SECONDS if quick else SUSTAINED_HOLD_SECONDS
    sustained = [_sustained_gemm(torch, dev, chip_id, iters, hold)]
    if any(s.precision == "fp8" for s in gemm):
        try:
            sustained.append(_sustained_gemm(torch, dev, chip_id, iters, hold, "fp8"))
        except RuntimeError:
            pass  # fp8 unsupported at this shape: the default profile's fp8 fraction stands
    props = torch.cuda.get_device_properties(0)
    try:
        drv = str(torch.cuda.driver_version()) if hasattr(torch.cuda, "driver_version") else "unknown"
    except Exception:  # noqa: BLE001 - driver query is informational only
        drv = "unknown"
    lib = f"torch {torch.__version__}, CUDA {torch.version.cuda}"
    return Measurements(chip_id, props.name, drv, lib, tuple(gemm), tuple(attention), memory,
                        tuple(sustained))


def _sustained_gemm(torch, dev, chip_id: str, iters: int, hold_seconds: float,
                    precision: str = "bf16") -> GemmSample:  # pragma: no cover - needs a GPU
    """The ``SUSTAINED_GEMM_SHAPE`` GEMM at ``precision`` (bf16, or fp8 through
    ``torch._scaled_mm``) on random data, run back to back for ``hold_seconds`` (the GPU reaches
    its power limit and the clock it holds there at that precision), then timed."""
    import time  # noqa: PLC0415

    m, n, k = SUSTAINED_GEMM_SHAPE
    a = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
    b = torch.randn(k, n, device=dev, dtype=torch.bfloat16)
    c = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
    if precision == "fp8":
        a8 = a.to(torch.float8_e4m3fn)
        b8 = b.t().contiguous().to(torch.float8_e4m3fn).t()
        one = torch.ones((), device=dev)

        def gemm():
            return torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    else:
        def gemm():
            return torch.matmul(a, b, out=c)
    end = time.perf_counter() + hold_seconds
    while time.perf_counter() < end:
        for _ in range(20):
            gemm()
        torch.cuda.synchronize()
    t = _time(torch, gemm, iters)
    return GemmSample(f"{precision}-sustained-{m}x{n}x{k}", chip_id, m, n, k, precision, 2 * m * n * k / t)
