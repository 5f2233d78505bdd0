"""The fitting code recovers known parameters from synthetic measurements (no GPU needed)."""

import dataclasses

import pytest

from colossim.catalog import load_catalog
from colossim.cost import calibrate, fit
from colossim.cost.efficiency import AttentionParams, BusCurve, default_profile
from colossim.cost.rows import AttentionSample, GemmSample, MemorySample

H100 = load_catalog().accelerator("h100-sxm")
BASE = default_profile("h100-sxm")


def _synthetic(true_e=0.7, true_launch=8e-6, true_att=AttentionParams(0.5, 300.0, 40.0),
               true_k0=128.0, held_fraction=None):
    truth = dataclasses.replace(
        BASE, gemm={"bf16": dataclasses.replace(BASE.gemm["bf16"], max_efficiency=true_e,
                                                launch_seconds=true_launch,
                                                tile_overhead_k=true_k0)},
        memory_efficiency=0.8)
    gemm = []
    for i, (m, n, k) in enumerate(calibrate.GEMM_GRID):
        f = float(fit.predict_gemm_flops_per_s([GemmSample("x", "h100-sxm", m, n, k, "bf16", 1.0)],
                                               H100, truth)[0])
        gemm.append(GemmSample(f"g{i}", "h100-sxm", m, n, k, "bf16", f, is_mamf=(i == 5)))
    att = []
    for i, (s, d, c) in enumerate(calibrate.ATTENTION_GRID):
        probe = AttentionSample("p", "h100-sxm", s, d, c, 1.0)
        f = float(fit.predict_attention_flops_per_s([probe], H100.peak_flops_per_s("bf16"), true_att)[0])
        att.append(AttentionSample(f"a{i}", "h100-sxm", s, d, c, f))
    mem = (MemorySample("c", "h100-sxm", 0.8 * H100.hbm_bytes_per_s),)
    held = ()
    if held_fraction is not None:
        m, n, k = calibrate.SUSTAINED_GEMM_SHAPE
        probe = GemmSample("held", "h100-sxm", m, n, k, "bf16", 1.0)
        burst = float(fit.predict_gemm_flops_per_s([probe], H100, truth)[0])
        held = (dataclasses.replace(probe, flops_per_s=held_fraction * burst),)
    return calibrate.Measurements("h100-sxm", "synthetic", "none", "none", tuple(gemm), tuple(att), mem,
                                  held)


def test_profile_from_synthetic_measurements_recovers_parameters():
    prof = calibrate.profile_from_measurements(_synthetic(held_fraction=1.0), H100, date="2025-01-01")
    assert prof.gemm["bf16"].max_efficiency == pytest.approx(0.7, rel=1e-3)
    assert prof.gemm["bf16"].sustained_fraction == pytest.approx(1.0, rel=1e-3)
    assert prof.gemm["bf16"].launch_seconds == pytest.approx(8e-6, rel=0.02)
    assert prof.gemm["bf16"].tile_overhead_k == pytest.approx(128.0, rel=0.02)
    assert prof.memory_efficiency == pytest.approx(0.8)
    assert prof.attention.max_efficiency == pytest.approx(0.5, rel=0.02)
    assert prof.attention.half_seq == pytest.approx(300.0, rel=0.05)
    assert prof.attention.half_head_dim == pytest.approx(40.0, rel=0.05)
    assert prof.device == "synthetic" and prof.date == "2025-01-01"


def test_calibrated_gemms_run_at_the_sustained_clock_the_hold_measured():
    # The grid is timed in bursts; the GEMM timed after the hold at the power limit runs at 0.8 of
    # that burst rate, so every fitted GEMM precision is priced at 0.8 of its burst fit.
    prof = calibrate.profile_from_measurements(_synthetic(held_fraction=0.8), H100)
    g = prof.gemm["bf16"]
    assert g.sustained_fraction == pytest.approx(0.8, rel=1e-3)
    assert g.max_efficiency == pytest.approx(0.7 * 0.8, rel=2e-3)
    assert g.sustained_rows == ("held",)
    # a hold that comes out faster than the burst fit (noise) never raises the rate
    assert calibrate.profile_from_measurements(_synthetic(held_fraction=1.1), H100).gemm[
        "bf16"].max_efficiency == pytest.approx(0.7, rel=1e-3)


def test_calibration_without_a_hold_keeps_the_default_sustained_fraction():
    # A profile fitted to burst timings alone would price GEMMs at clocks a training job never
    # holds: without a measured hold it takes the default profile's fraction (the H100's, from the
    # published 700 W row) rather than none.
    default = BASE.gemm["bf16"]
    assert default.sustained_fraction < 0.95
    g = calibrate.profile_from_measurements(_synthetic(), H100).gemm["bf16"]
    assert g.sustained_fraction == default.sustained_fraction
    assert g.sustained_rows == default.sustained_rows
    assert g.max_efficiency == pytest.approx(0.7 * default.sustained_fraction, rel=2e-3)


def test_bus_curve_fit_recovers_shape():
    import numpy as np

    from colossim.cost import comm
    true = BusCurve(0.85, 8 * 2**20, 0.6, 20e-6)
    sizes = np.array([2.0**p for p in range(18, 34, 2)])

    def predict(c):
        t = c.latency_seconds + 1.75 * sizes / comm.busbw(c, 450e9, sizes)
        return 1.75 * sizes / t

    got = fit.fit_bus_curve(predict, predict(true), BusCurve(0.6, 2**22, 1.0, 20e-6))
    assert got.link_fraction == pytest.approx(0.85, rel=0.02)
    assert got.half_size_bytes == pytest.approx(8 * 2**20, rel=0.1)
    assert got.gamma == pytest.approx(0.6, rel=0.05)


def test_measure_without_gpu_raises_one_line_error():
    pytest.importorskip  # torch is not installed in CI
    try:
        import torch  # noqa: F401
        pytest.skip("torch installed")
    except ImportError:
        pass
    with pytest.raises(calibrate.NoGpuError):
        calibrate.measure("h100-sxm")


def test_short_k_tiles_pay_the_fitted_overhead_on_the_h100_rows():
    """The H100 bf16 rows of microbenchmarks.csv (XLA's square 2048^3 and 4096^3 and the K = 256
    GEMM, all short bursts) come out within a few percent of the published TFLOPS on the burst
    clock once each tile pays its fill and epilogue; with none they did not (+6 %, +3 %, +37 %
    before the overhead was fitted)."""
    from colossim.cost import rows
    prof = default_profile("h100-sxm")
    g = prof.gemm["bf16"]
    assert 32.0 < g.tile_overhead_k < 512.0
    by_id = {s.row: s for s in rows.gemm_samples()}
    for row, tol in (("gemm-h100-xla-bf16-2048x2048x2048", 0.04),
                     ("gemm-h100-xla-bf16-4096x4096x4096", 0.04),
                     ("gemm-h100-xla-bf16-4096x4096x256", 0.12)):
        s = by_id[row]
        burst = float(fit.predict_gemm_flops_per_s([s], H100, prof)[0]) / g.sustained_fraction
        assert burst == pytest.approx(s.flops_per_s, rel=tol), row


def test_in_step_attention_row_is_read_in_its_own_flop_count():
    """The FA4 in-step row (834 TFLOPS on B200, Llama-3.1-8B, seq 8k, causal) counts attention the
    MFU way: 6 h s FLOPs per token and layer for forward + backward.  The B200 model, fitted to it,
    must give back that row's seconds: 6 h s x tokens / 834e12 per layer, not the 3.5 / 3 longer time
    the flash-attn count (backward = 2.5 forwards) would give if the row's FLOP/s were taken as is."""
    from colossim.cost.compute import attention_seconds

    chip, prof = load_catalog().accelerator("b200"), default_profile("b200")
    heads, head_dim, seq = 32, 128, 8192
    t = sum(float(attention_seconds(1, heads, seq, seq, head_dim, head_dim, True, "bf16", chip, prof,
                                    backward=b)) for b in (False, True))
    row_seconds = 6 * heads * head_dim * seq * seq / 834e12
    assert t == pytest.approx(row_seconds, rel=0.02)


def _with_fp8(meas, truth_eff: float, held_fraction: float | None):
    """``meas`` plus an fp8 grid at ``truth_eff`` of the fp8 peak (the bf16 truth's shape
    parameters) and, when ``held_fraction`` is given, an fp8 GEMM held at that fraction of burst."""
    truth = dataclasses.replace(BASE, gemm={"bf16": dataclasses.replace(
        BASE.gemm["bf16"], max_efficiency=0.7, sustained_fraction=1.0, launch_seconds=8e-6,
        tile_overhead_k=128.0), "fp8": dataclasses.replace(
        BASE.gemm["fp8"], max_efficiency=truth_eff, sustained_fraction=1.0, launch_seconds=8e-6,
        tile_overhead_k=128.0)})
    fp8 = []
    for i, (m, n, k) in enumerate(calibrate.GEMM_GRID):
        f = float(fit.predict_gemm_flops_per_s([GemmSample("x", "h100-sxm", m, n, k, "fp8", 1.0)],
                                               H100, truth)[0])
        fp8.append(GemmSample(f"f{i}", "h100-sxm", m, n, k, "fp8", f, is_mamf=(i == 5)))
    held = meas.sustained
    if held_fraction is not None:
        m, n, k = calibrate.SUSTAINED_GEMM_SHAPE
        probe = GemmSample("held-fp8", "h100-sxm", m, n, k, "fp8", 1.0)
        burst = float(fit.predict_gemm_flops_per_s([probe], H100, truth)[0])
        held = held + (dataclasses.replace(probe, flops_per_s=held_fraction * burst),)
    return dataclasses.replace(meas, gemm=meas.gemm + tuple(fp8), sustained=held)


def test_each_precision_takes_the_clock_its_own_hold_measured():
    # Each precision draws its own power per FLOP at the limit (H100, colossim's 8192^3 holds: bf16
    # at 1357 MHz and 0.815 of its burst fit, fp8 at 1247 MHz and 0.831), so the bf16 hold does not
    # stand in for fp8: a measured fp8 hold sets fp8's fraction, and without one fp8 keeps the
    # default profile's fp8 fraction.
    prof = calibrate.profile_from_measurements(_with_fp8(_synthetic(held_fraction=0.8), 0.65, 0.9), H100)
    assert prof.gemm["bf16"].sustained_fraction == pytest.approx(0.8, rel=1e-3)
    assert prof.gemm["fp8"].sustained_fraction == pytest.approx(0.9, rel=1e-3)
    assert prof.gemm["fp8"].max_efficiency == pytest.approx(0.65 * 0.9, rel=0.02)
    assert prof.gemm["fp8"].sustained_rows == ("held-fp8",)
    no_fp8_hold = calibrate.profile_from_measurements(_with_fp8(_synthetic(held_fraction=0.8), 0.65, None),
                                                      H100).gemm["fp8"]
    assert no_fp8_hold.sustained_fraction == BASE.gemm["fp8"].sustained_fraction
    assert no_fp8_hold.sustained_rows == ("gemm-h100-colossim-held-fp8-8192",)


def test_one_row_sets_the_peak_efficiency_and_a_donor_the_fixed_time_per_kernel():
    # a best-of-search row alone: all compute, so its efficiency is the model's top; the kernel's
    # fixed time it cannot show comes from the donor, and the row's own shape then runs slower
    mamf = GemmSample("one", "h100-sxm", 1792, 16128, 3072, "bf16", 700e12, is_mamf=True)
    donor = BASE.gemm["bf16"]
    alone = fit.fit_gemm([mamf], "bf16", H100, BASE, 132, 1.0)
    given = fit.fit_gemm([mamf], "bf16", H100, BASE, 132, 1.0, unpinned=donor)
    assert alone.launch_seconds == 0.0 and given.launch_seconds == donor.launch_seconds > 0.0
    assert given.max_efficiency == alone.max_efficiency and given.tile_overhead_k == alone.tile_overhead_k == 0.0
    t_row = 2.0 * mamf.m * mamf.n * mamf.k / mamf.flops_per_s
    for gp, extra in ((alone, 0.0), (given, donor.launch_seconds)):
        prof = dataclasses.replace(BASE, gemm={"bf16": gp})
        t = 2.0 * mamf.m * mamf.n * mamf.k / float(fit.predict_gemm_flops_per_s([mamf], H100, prof)[0])
        assert t == pytest.approx(t_row + extra, rel=1e-9)


@pytest.mark.parametrize("chip", ["h100-sxm", "h200-sxm", "b200", "gb200", "gb300", "mi300x", "a100-80gb-sxm"])
def test_no_default_profile_prices_a_gemm_kernel_as_free_of_fixed_time(chip):
    # one-row chips (B200, GB200's bf16 and fp4, H200's fp8, MI300X's bf16) take the launch time of
    # the closest measured architecture; until the fifty-fourth round they had none, and a decode
    # step of thousands of small kernels ran several times faster than on the H100 for that alone
    for prec, g in default_profile(chip).gemm.items():
        assert 1e-6 < g.launch_seconds < 20e-6, (chip, prec)
