"""The cost model against every published microbenchmark row it can price: the default profile's
prediction vs the measurement, tagged ``build`` (the row was fitted), ``held-out`` (it was not),
``sustained`` (a GEMM timed under a hold at the power limit, which sets its chip's sustained-clock
fraction and is reproduced by construction: ``rows.SUSTAINED_ONLY``) or ``other-kernel`` (an
attention kernel generation the chip's model does not describe: ``rows.OTHER_KERNEL``)."""

from __future__ import annotations

from dataclasses import dataclass

from colossim.catalog import load_catalog
from colossim.cost import comm, fit, rows
from colossim.cost.defaults import ROW_SYSTEM
from colossim.cost.efficiency import default_profile


@dataclass(frozen=True)
class Prediction:
    """One row: measured and predicted value (same unit as the row), relative error."""

    row: str
    kind: str
    set: str
    measured: float
    predicted: float

    @property
    def error(self) -> float:
        """Relative error (predicted / measured - 1)."""
        return self.predicted / self.measured - 1.0


def _set(row: str, flash3: bool = False) -> str:
    if flash3:
        return "build"  # the row sets the profile's FlashAttention-3 factor
    if row in rows.OTHER_KERNEL:
        return "other-kernel"
    if row in rows.SUSTAINED_ONLY:
        return "sustained"
    return "held-out" if row in rows.HELD_OUT else "build"


def predictions() -> list[Prediction]:
    """Predictions for every GEMM, attention, memory and nccl-tests collective row."""
    cat = load_catalog()
    out: list[Prediction] = []
    for s in rows.gemm_samples():
        chip, prof = cat.accelerator(s.chip), default_profile(s.chip)
        if chip.peak_flops_per_s(s.precision) is None:
            continue
        pred = float(fit.predict_gemm_flops_per_s([s], chip, prof)[0])
        out.append(Prediction(s.row, "gemm", _set(s.row), s.flops_per_s / 1e12, pred / 1e12))
    for s in rows.attention_samples():
        chip, prof = cat.accelerator(s.chip), default_profile(s.chip)
        pred = float(fit.predict_attention_flops_per_s([s], chip.peak_flops_per_s("bf16"),
                                                       prof.attention)[0])
        flash3 = s.row in prof.attention.flash3_rows
        if flash3:
            pred *= prof.attention.flash3_relative
        # in the row's own FLOP count (the sample restates in-step rows the flash-attn way)
        out.append(Prediction(s.row, "attention", _set(s.row, flash3), s.flops_per_s / s.restated / 1e12,
                              pred / s.restated / 1e12))
    for s in rows.memory_samples():
        chip, prof = cat.accelerator(s.chip), default_profile(s.chip)
        pred = chip.hbm_bytes_per_s * prof.memory_efficiency
        out.append(Prediction(s.row, "memory", _set(s.row), s.bytes_per_s / 1e9, pred / 1e9))
    for s in rows.collective_samples():
        if s.busbw_bytes_per_s is None or s.chip not in ROW_SYSTEM:
            continue
        chip, prof = cat.accelerator(s.chip), default_profile(s.chip)
        net = comm.network_for(chip, cat.system(ROW_SYSTEM[s.chip]),
                               nvls=None if s.algo != "ring" else False)
        t = float(comm.OPS[s.op](s.message_bytes, s.gpus, net, prof))
        pred = float(comm.bus_bandwidth(s.op, s.message_bytes, s.gpus, t))
        out.append(Prediction(s.row, "collective", _set(s.row), s.busbw_bytes_per_s / 1e9, pred / 1e9))
    return out


__all__ = ["Prediction", "predictions"]

