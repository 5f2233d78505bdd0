"""H100-equivalents against hand-computed values."""

from __future__ import annotations

import pytest

from colossim.errors import ColossimError, UnknownNameError
from colossim.fleet.h100e import h100e, h100e_mix, metrics


@pytest.mark.parametrize(("chip", "metric", "expected_per_chip"), [
    ("a100-80gb-sxm", "bf16", 312 / 989.4),
    ("a100-80gb-sxm", "fp8", 624 / 1978.9),  # no FP8: INT8 is A100's dense 8-bit rate (Epoch's basis)
    ("a100-80gb-sxm", "hbm_bandwidth", 2.039 / 3.35),
    ("a100-80gb-sxm", "power", 400 / 700),
    ("a100-80gb-sxm", "price", 12500 / 33600),
    ("a100-80gb-sxm", "ark-4x-a100", 0.25),
    ("b200", "bf16", 2250 / 989.4),
    ("b300", "fp8", 4500 / 1978.9),  # FP8, not its collapsed INT8 (150 TOPS)
    ("gb300", "epoch-clusters", 0.0834),
    ("v100-sxm", "bf16", 125 / 989.4),  # FP16 tensor rate stands in for 16-bit
    ("h100-sxm", "bf16", 1.0),
    ("gaudi3", "fp8", 1835 / 1978.9),
])
def test_per_chip_ratios(chip, metric, expected_per_chip):
    r = h100e(chip, 1000, metric)
    assert r.per_chip == pytest.approx(expected_per_chip, rel=1e-9)
    assert r.h100e == pytest.approx(1000 * expected_per_chip, rel=1e-9)
    assert r.metric == metric and r.basis


def test_matches_reference_table_h100e_columns():
    # shared/reference/hardware.csv's own h100e_16bit_dense / h100e_8bit_dense columns
    assert h100e("mi300x", 1, "bf16").per_chip == pytest.approx(1.3214, abs=1e-4)
    assert h100e("mi300x", 1, "fp8").per_chip == pytest.approx(1.3213, abs=1e-4)
    assert h100e("tpu-v4", 1, "fp8").per_chip == pytest.approx(0.139, abs=1e-3)


def test_mix_is_sum_of_parts():
    mix = h100e_mix({"h100-sxm": 100, "a100-80gb-sxm": 400}, "bf16")
    assert mix == pytest.approx(100 + 400 * 312 / 989.4)


def test_bad_inputs():
    with pytest.raises(UnknownNameError):
        h100e("h100-sxm", 1, "flops")
    with pytest.raises(UnknownNameError):
        h100e("a101", 1)
    for count in (-1, float("nan"), float("inf")):  # NaN and infinity were tabled as H100e
        with pytest.raises(ColossimError, match=r"^count must be a finite number >= 0, got "):
            h100e("h100-sxm", count)
    with pytest.raises(ColossimError, match="does not cover"):
        h100e("b200", 1, "ark-4x-a100")
    with pytest.raises(ColossimError, match="no value"):
        h100e("dojo-d1", 1, "hbm_capacity")
    assert "bf16" in metrics() and "ark-4x-a100" in metrics()
