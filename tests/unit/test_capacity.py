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


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("precision", ["bf16", "fp8", "fp4"])
def test_model_bytes_inverts_largest_model(kind, precision):
    for kv in (0, 100_000):
        r = largest_model(NVL72, precision, kind=kind, kv_tokens=kv)
        assert model_bytes(r.params, precision, kind=kind, kv_tokens=kv) == pytest.approx(r.usable_bytes, rel=1e-9)
        assert r.kv_bytes + r.weight_bytes == pytest.approx(r.usable_bytes)


def test_kv_headroom_scales_with_depth_and_format():
    r = largest_model(NVL72, "fp8", kind="dense", kv_tokens=1_000_000)
    fam = shape_family("dense")
    s = r.layers / fam.layers
    assert r.kv_bytes == pytest.approx(1_000_000 * fam.kv_values_per_token(s) * 1.0)
    assert largest_model(NVL72, "fp8", kind="dense", kv_tokens=1_000_000, kv_format="bf16").params < r.params


def test_gpus_needed():
    r = largest_model(NVL72, "fp4")
    assert gpus_needed(r.params * 0.999, NVL72, "fp4") == 72
    assert gpus_needed(r.params * 1.01, NVL72, "fp4") == 73
    assert gpus_needed(27e12, NVL72, "fp4") > 72


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 600), extra=st.integers(1, 600), kind=st.sampled_from(KINDS),
       kv=st.integers(0, 4_000_000), precision=st.sampled_from(["bf16", "fp8", "fp4"]))
def test_monotone(n, extra, kind, kv, precision):
    hw = {"gpu": "gb200", "count": n}
    base = largest_model(hw, precision, kind=kind, kv_tokens=kv).params
    # more GPUs -> a larger model
    assert largest_model({"gpu": "gb200", "count": n + extra}, precision, kind=kind, kv_tokens=kv).params > base
    # KV headroom -> a smaller model
    assert largest_model(hw, precision, kind=kind, kv_tokens=kv + 1000).params < base
    # narrower formats -> a larger model (fp4 > fp8 > bf16), KV at one format for all three
    p = {f: largest_model(hw, f, kind=kind, kv_tokens=kv, kv_format="fp8").params for f in ("fp4", "fp8", "bf16")}
    assert p["fp4"] > p["fp8"] > p["bf16"] > 0


def test_capacity_table_rows():
    rows = capacity_table("gb200-nvl72", "fp4", kv_tokens=32_768)
    assert [(r.kind, r.kv_tokens) for r in rows] == [("dense", 0), ("dense", 32_768), ("moe", 0), ("moe", 32_768)]
    assert all(r.gpus == 72 for r in rows)  # default: one system
    d = rows[0].to_dict()
    assert {"kind", "gpus", "chip", "precision", "hbm_tb", "usable_tb", "kv_cache_tb", "weights_tb",
            "bytes_per_param", "params_t"} <= set(d)
    json.dumps([r.to_dict() for r in rows])
    with pytest.raises(AttributeError):
        rows[0].params = 1.0  # frozen
    assert len(capacity_table("hgx-h100", "fp8", kv_tokens=0)) == 2
    assert capacity_table("hgx-h100", "fp8", kv_tokens=0)[0].gpus == 8
    assert capacity_table("h100-sxm", "fp8", count=16, kv_tokens=0)[0].gpus == 16  # a chip id works too


def test_capacity_accepts_a_system_spec():
    hw = resolve_hardware(NVL72)
    assert largest_model(hw, "fp8").params == largest_model(NVL72, "fp8").params


@pytest.mark.parametrize("call, field", [
    (lambda: largest_model(H100X8, "int3"), "precision"),
    (lambda: largest_model(H100X8, "fp8", kind="sparse"), "kind"),
    (lambda: largest_model(H100X8, "fp8", kv_tokens=-1), "kv_tokens"),
    (lambda: largest_model(H100X8, "fp8", kv_format="fp2"), "kv_format"),
    (lambda: largest_model(H100X8, "fp8", memory_fraction=1.5), "memory_fraction"),
])
def test_bad_input_is_one_line_naming_the_field(call, field):
    with pytest.raises(SpecError) as e:
        call()
    assert e.value.field == field and "allowed" in str(e.value) and "\n" not in str(e.value)


def test_unknown_system():
    with pytest.raises(UnknownNameError) as e:
        capacity_table("gb200-nvl7", "fp4")
    assert "gb200-nvl72" in str(e.value)


def test_cli_capacity_json(cli):
    code, out, _ = cli("serve", "capacity", "gb200-nvl72", "--precision", "fp4", "--kv-tokens", "32768", "--json")
    assert code == 0
    rows = json.loads(out)["capacity"]
    assert len(rows) == 4 and 22.5 < rows[0]["params_t"] < 23.5 and rows[1]["params_t"] < rows[0]["params_t"]
