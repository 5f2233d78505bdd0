"""Expert tensor parallelism and MoE parallel folding (etp): the routed experts split over their own
etp GPUs, the expert grid etp x ep x expert-dp folded over a stage's tp x cp x dp GPUs
(Megatron-Core's expert rank generator; specs/training.py valid_mask, training/ops.py mlp_ops,
training/memory.py, training/step.py moe_tp_exposed_seconds)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.specs.model import resolve_model
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate
from colossim.training.memory import memory_per_gpu, params_per_gpu
from colossim.training.ops import mlp_ops

MIXTRAL = resolve_model("mixtral-8x7b")  # 8 experts, top-2
DSV3 = resolve_model("deepseek-v3")  # 256 routed experts, top-8, one shared


def _spec(parallelism: dict, software: str = "megatron-core-2024", count: int = 1024) -> dict:
    return {"model": {"name": "deepseek-v3", "seq_len": 4096}, "hardware": {"gpu": "h100-sxm", "count": count},
            "parallelism": parallelism, "training": {"global_batch": 8192, "precision": "bf16",
                                                     "software": software}}


def _expert_flops(ops) -> float:
    return sum(float(np.sum(o.m * o.n * o.k * o.count)) for o in ops if o.name.startswith("expert_"))


@given(tp_pow=st.integers(0, 3), etp_pow=st.integers(0, 3), ep_pow=st.integers(0, 3), mb=st.integers(1, 4))
def test_expert_flops_per_gpu_do_not_depend_on_etp(tp_pow, etp_pow, ep_pow, mb):
    # the stage's routed work is shared by its tp x cp x dp GPUs however the experts are cut:
    # tokens x top_k x expert FLOPs / tp per GPU, for every etp dividing tp
    tp, etp, ep = 2 ** tp_pow, 2 ** min(etp_pow, tp_pow), 2 ** ep_pow
    folded = _expert_flops(mlp_ops(MIXTRAL, mb, 4096, tp, 1, ep, True, "moe", etp))
    classic = _expert_flops(mlp_ops(MIXTRAL, mb, 4096, tp, 1, ep, True, "moe"))
    up = 2 if MIXTRAL.activation.gated else 1
    per_token = MIXTRAL.top_k * (up + 1) * MIXTRAL.moe_ffn_hidden * MIXTRAL.hidden
    assert folded == pytest.approx(classic)
    assert folded == pytest.approx(mb * 4096 * per_token / tp)


def test_etp_equal_to_tp_is_the_classic_layout():
    ops_default = mlp_ops(MIXTRAL, 1, 4096, 4, 1, 8, True, "moe")
    ops_etp = mlp_ops(MIXTRAL, 1, 4096, 4, 1, 8, True, "moe", etp=4)
    assert [(o.name, float(o.m), float(o.n), float(o.k)) for o in ops_default] == \
        [(o.name, float(o.m), float(o.n), float(o.k)) for o in ops_etp]
    a = memory_per_gpu(MIXTRAL, tp=4, pp=1, ep=8, dp=8, zero=1, sequence_parallel=True, global_batch=64)
    b = memory_per_gpu(MIXTRAL, tp=4, pp=1, ep=8, dp=8, zero=1, sequence_parallel=True, global_batch=64, etp=4)
    assert float(a.total) == float(b.total)


def test_expert_weights_split_over_etp_times_ep():
    full = MIXTRAL.layers * MIXTRAL.experts * MIXTRAL.params_expert
    assert float(params_per_gpu(MIXTRAL, 4, 1, 8, etp=1)["expert"]) == pytest.approx(full / 8)
    assert float(params_per_gpu(MIXTRAL, 4, 1, 8)["expert"]) == pytest.approx(full / 32)


def test_ep_beyond_dp_needs_an_expert_tp_below_tp():
    # DeepSeek-V3 on 1,024 H100, tp 2 x pp 16 leaves dp 32: ep 64 only folds over tp x dp
    with pytest.raises(SpecError) as err:
        load_spec(_spec({"tp": 2, "pp": 16, "ep": 64, "etp": 2, "dp": 32}))
    assert err.value.field == "parallelism.ep"
    spec = load_spec(_spec({"tp": 2, "pp": 16, "ep": 64, "etp": 1, "dp": 32, "micro_batch": 1}))
    assert estimate(spec).parallelism["etp"] == 1
    # folding turned off, etp is tp: refused, naming etp
    with pytest.raises(SpecError) as err:
        load_spec(_spec({"tp": 2, "pp": 16, "ep": 64, "dp": 32, "moe_parallel_folding": False}))
    assert err.value.field == "parallelism.ep" and "parallelism.etp" in str(err.value)
    # left open under a stack without folding (every 2024 stack), a plan that only runs folded is
    # read as NVIDIA's recipe writes it (etp 1): specs.training.read_expert_layout
    assert load_spec(_spec({"tp": 2, "pp": 16, "ep": 64, "dp": 32})).parallelism.moe_parallel_folding
    # with folding allowed the search finds etp 1 itself
    assert load_spec(_spec({"tp": 2, "pp": 16, "ep": 64, "dp": 32, "moe_parallel_folding": True}))


def test_etp_must_divide_tp():
    with pytest.raises(SpecError) as err:
        load_spec(_spec({"tp": 4, "etp": 3}))
    assert err.value.field == "parallelism.etp" and "allowed etp: 1, 2, 4" in str(err.value)


def test_search_folds_only_when_allowed():
    spec = load_spec(_spec({"tp": 2, "pp": 16, "ep": 64, "micro_batch": 1, "moe_parallel_folding": True}))
    est = estimate(spec)
    assert est.parallelism["etp"] == 1 and est.parallelism["ep"] == 64
    # folding turned off: the same open plan keeps etp = tp, so ep 64 has no room
    with pytest.raises(SpecError, match="etp"):
        estimate(load_spec(_spec({"tp": 2, "pp": 16, "ep": 64, "micro_batch": 1, "moe_parallel_folding": False})))
    # the 2024 stack does not fold, but a plan that leaves no room for ep 64 otherwise is read folded
    assert estimate(load_spec(_spec({"tp": 2, "pp": 16, "ep": 64, "micro_batch": 1}))).parallelism["etp"] == 1


def test_folding_keeps_the_expert_all_to_all_on_nvlink():
    # Mixtral 8x22B, tp 2 x ep 8 on 8-GPU nodes: at etp = tp the 8 EP ranks sit tp apart (two
    # nodes); folded (etp 1) they are 8 neighbours on one NVLink domain and the all-to-all shrinks
    base = {"model": {"name": "mixtral-8x22b", "seq_len": 4096}, "hardware": {"gpu": "h100-sxm", "count": 256},
            "training": {"global_batch": 256, "precision": "bf16", "software": "megatron-core-2024"}}
    plan = {"tp": 2, "pp": 8, "ep": 8, "cp": 1, "vpp": 1, "micro_batch": 1}
    classic = estimate(load_spec({**base, "parallelism": {**plan, "etp": 2}}))
    folded = estimate(load_spec({**base, "parallelism": {**plan, "etp": 1}}))
    assert folded.time_breakdown_s["ep_comm"] < 0.5 * classic.time_breakdown_s["ep_comm"]
    # and its expert TP pair is gone: only the attention's remains
    assert folded.time_breakdown_s["tp_comm"] < classic.time_breakdown_s["tp_comm"]
