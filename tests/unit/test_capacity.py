"""Capacity: the largest model whose weights (and a KV cache) fit -- closed forms and invariants."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.errors import SpecError, UnknownNameError
from colossim.inference.capacity import (KINDS, REFERENCE_MODELS, capacity_table, gpus_needed, largest_model,
                                         model_bytes, shape_family)
from colossim.specs.model import resolve_model
from colossim.specs.system import resolve_hardware

H100X8 = {"gpu": "h100-sxm", "count": 8}
NVL72 = {"system": "gb200-nvl72", "count": 72}


@pytest.mark.parametrize("kind", KINDS)
def test_family_at_scale_one_is_the_reference_model(kind):
    fam = shape_family(kind)
    m = resolve_model(REFERENCE_MODELS[kind])
    assert fam.params(1.0) == pytest.approx(m.params_total, rel=1e-12)
    assert fam.kv_values_per_token(1.0) == 2 * m.kv_heads * m.head_dim * m.layers


def test_h100x8_fp8_weights_only_closed_form():
    # 0.9 x 8 x 80 GiB = 576 GiB at 1 byte per parameter, except the 16-bit embedding, head and
    # norms, which take 2 bytes: params = 576 GiB - (16-bit params).
    r = largest_model(H100X8, "fp8", kind="dense")
    usable = 576 * 2**30
    assert r.hbm_bytes == 640 * 2**30 and r.usable_bytes == pytest.approx(usable)
    sixteen_bit = r.embedding_share * r.params
    assert r.params == pytest.approx(usable - sixteen_bit, rel=1e-9)
    assert 0.98 * usable < r.params < usable
    assert r.kv_bytes == 0 and r.weight_bytes == pytest.approx(usable)
    assert 1.0 < r.bytes_per_param < 1.02


def test_bf16_is_exactly_two_bytes_per_parameter():
    r = largest_model(H100X8, "bf16", kind="moe")
    assert r.params == pytest.approx(576 * 2**30 / 2, rel=1e-9)


def test_gb200_rack_at_fp4():
    # 72 x 186 GiB = 14.4 TB; 90 % usable at NVFP4's 0.5 + 1/16 bytes: about 23.0 T parameters
    r = largest_model(NVL72, "fp4", kind="dense")
    assert r.hbm_bytes == pytest.approx(72 * 186 * 2**30)
    assert r.params_trillions == pytest.approx(0.9 * 72 * 186 * 2**30 / 0.5625 / 1e12, rel=0.01)
    assert r.layers > resolve_model("llama3.1-405b").layers  # a scaled-up Llama shape


def test_unknown_system():
    with pytest.raises(UnknownNameError) as e:
        capacity_table("gb200-nvl7", "fp4")
    assert "gb200-nvl72" in str(e.value)


def test_cli_capacity_json(cli):
    code, out, _ = cli("serve", "capacity", "gb200-nvl72", "--precision", "fp4", "--kv-tokens", "32768", "--json")
    assert code == 0
    rows = json.loads(out)["capacity"]
    assert len(rows) == 4 and 22.5 < rows[0]["params_t"] < 23.5 and rows[1]["params_t"] < rows[0]["params_t"]
