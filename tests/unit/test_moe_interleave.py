"""MoE layers interleaved with dense ones (Llama 4 Maverick: every second layer; Megatron-Core's
moe_layer_freq, Hugging Face's interleave_moe_layer_step): layer counts, parameters, the memory of
a pipeline stage and the FLOPs."""

from __future__ import annotations

import pytest

from colossim.errors import SpecError
from colossim.specs._validation import validate_model
from colossim.specs.model import ModelSpec, load_model_catalog
from colossim.specs.training import load_spec
from colossim.training import flops as F
from colossim.training.estimate import estimate
from colossim.training.memory import params_per_gpu

BASE = {"layers": 8, "hidden": 512, "heads": 8, "vocab": 1000, "seq_len": 1024, "ffn_hidden": 2048,
        "experts": 8, "top_k": 2, "moe_ffn_hidden": 256, "activation": "swiglu"}


@pytest.mark.parametrize(("first", "interval", "moe"), [(0, 1, 8), (0, 2, 4), (0, 3, 2), (1, 2, 3), (3, 1, 5),
                                                         (2, 6, 1)])
def test_every_interval_th_layer_after_the_dense_ones_is_moe(first, interval, moe):
    m = ModelSpec(**BASE, first_dense_layers=first, moe_layer_interval=interval)
    assert (m.moe_layers, m.dense_layers) == (moe, 8 - moe)
    assert m.params_total == (m.params_embedding + m.params_output_head + m.params_final_norm
                              + moe * m.params_per_layer_moe + (8 - moe) * m.params_per_layer_dense)


def test_maverick_is_half_dense_half_moe_and_its_flops_follow():
    cat = load_model_catalog()
    mav = cat.spec("llama4-maverick")
    assert (mav.moe_layers, mav.dense_layers, mav.moe_layer_interval) == (24, 24, 2)
    dense = F.mlp_flops_per_token(mav, "dense")
    moe = F.mlp_flops_per_token(mav, "moe")
    fwd = F.forward_flops_per_token(mav, 8192)
    assert fwd["mlp_up"] == pytest.approx(24 * dense["mlp_up"])
    assert fwd["expert_up"] == pytest.approx(24 * moe["expert_up"])
    # 6 N per token up to attention: the active parameters that multiply (no input embedding)
    matmul_params = mav.params_active - mav.vocab * mav.hidden
    assert F.forward_flops_per_token(mav, 1)["qkv"] > 0
    assert sum(v for k, v in fwd.items() if not k.startswith("attn")) == pytest.approx(2 * matmul_params, rel=0.001)


@pytest.mark.parametrize("pp", [1, 2, 4, 8, 16])
def test_a_stage_holds_the_moe_layers_of_its_run_of_layers_not_all_moe(pp):
    mav = load_model_catalog().spec("llama4-maverick")
    stage = -(-48 // pp)
    got = params_per_gpu(mav, tp=1, pp=pp, ep=1)["expert"]
    assert float(got) == pytest.approx(-(-stage // 2) * 128 * mav.params_expert)
    # every layer MoE (DeepSeek-V3 after its 3 dense ones): the stage is all MoE
    ds = load_model_catalog().spec("deepseek-v3")
    ds_stage = -(-61 // pp)
    assert float(params_per_gpu(ds, tp=1, pp=pp, ep=1)["expert"]) == pytest.approx(
        min(ds_stage, 58) * 256 * ds.params_expert)


def test_maverick_trains_with_its_model_flops_by_layer_kind():
    spec = {"model": "llama4-maverick", "hardware": {"gpu": "h100-sxm", "count": 256},
            "parallelism": {"tp": 4, "pp": 4, "cp": 1, "ep": 8, "dp": 16, "vpp": 1, "micro_batch": 1,
                            "recompute": "full", "zero": 1, "sequence_parallel": True},
            "training": {"global_batch": 1024, "precision": "bf16"}}
    est = estimate(load_spec(spec))
    assert est.fits and 0.1 < est.mfu < 0.6
    mav = load_model_catalog().spec("llama4-maverick")
    assert est.model_flops_per_token == pytest.approx(F.model_flops_per_token(mav, 8192))


def test_an_interval_with_no_moe_layer_left_is_a_one_line_error():
    with pytest.raises(SpecError, match="no MoE layer: moe_layer_interval 9 is more than the 8 layers") as e:
        validate_model(ModelSpec, {**BASE, "moe_layer_interval": 9}, "model")
    assert "\n" not in str(e.value)
    with pytest.raises(SpecError, match="moe_layer_interval: Input should be greater than or equal to 1"):
        validate_model(ModelSpec, {**BASE, "moe_layer_interval": 0}, "model")
