"""MoE plans read the way published runs write them (specs.training.read_expert_layout) and the
model's own software only where the plan is one it ran (specs.software.resolve_stack)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.errors import SpecError
from colossim.specs.model import resolve_model
from colossim.specs.plan import ParallelPlan
from colossim.specs.system import resolve_hardware
from colossim.specs.training import load_spec, read_expert_layout, validate_plan
from colossim.training.estimate import estimate

DSV3_H800 = {"model": "deepseek-v3", "hardware": {"gpu": "h800-sxm", "count": 2048},
             "training": {"global_batch": 15360, "precision": "fp8"}}
DSV3_NEMO = {"model": "deepseek-v3", "hardware": {"gpu": "h100-sxm", "count": 1024},
             "training": {"global_batch": 8192, "precision": "fp8"}}


def test_dp_written_without_the_experts_is_the_data_parallel_degree_times_ep():
    # DeepSeek-V3: 16-way PP x 64-way EP on 2,048 GPUs leaves "2-way DP" in that convention
    net = load_spec({**DSV3_H800, "parallelism": {"tp": 1, "pp": 16, "ep": 64, "dp": 2}})
    megatron = load_spec({**DSV3_H800, "parallelism": {"tp": 1, "pp": 16, "ep": 64, "dp": 128}})
    assert net.parallelism.dp == 128
    assert estimate(net).tokens_per_s_per_gpu == pytest.approx(estimate(megatron).tokens_per_s_per_gpu)


def test_a_product_neither_convention_matches_is_still_refused():
    # DeepSeek's HAI-LLM has no context parallelism, so cp is 1 and the product is every factor
    with pytest.raises(SpecError, match=r"^tp\*pp\*cp\*dp = 1\*16\*1\*3 = 48 != hardware.count 2048$"):
        load_spec({**DSV3_H800, "parallelism": {"tp": 1, "pp": 16, "ep": 64, "dp": 3}})
    # a dense model has no expert convention to read: tp 8 x pp 4 x dp 1 is 32, not 64
    dense = ParallelPlan(tp=8, pp=4, cp=1, dp=1, ep=1)
    assert read_expert_layout(resolve_model("llama3-70b"), 64, dense) is dense


def test_a_plan_that_only_runs_folded_folds_the_experts():
    # NVIDIA's DeepSeek-V3 recipe writes tp 2, pp 16, ep 64 on 1,024 GPUs: dp x cp = 32 has no
    # room for 64 expert ranks unless the experts run etp 1 over tp x dp
    spec = load_spec({**DSV3_NEMO, "parallelism": {"tp": 2, "pp": 16, "cp": 1, "ep": 64, "micro_batch": 1}})
    assert spec.parallelism.moe_parallel_folding
    assert estimate(spec).parallelism["etp"] == 1
    # turned off in the spec, it stays off and the plan is refused
    with pytest.raises(SpecError, match="etp"):
        load_spec({**DSV3_NEMO, "parallelism": {"tp": 2, "pp": 16, "ep": 64, "dp": 32,
                                                "moe_parallel_folding": False}})


def test_the_models_own_software_only_for_a_plan_it_ran():
    # HAI-LLM (DeepSeek's framework) has no tensor parallelism and runs DualPipe, not interleaving
    own = load_spec({**DSV3_H800, "parallelism": {"tp": 1, "pp": 16, "ep": 64}})
    assert own.training.software == "hai-llm-v3" and own.parallelism.pipeline_schedule == "dualpipe"
    for plan in ({"tp": 2, "pp": 16, "ep": 64, "micro_batch": 1}, {"tp": 1, "pp": 4, "vpp": 2, "ep": 64}):
        other = load_spec({**DSV3_NEMO, "parallelism": plan})
        assert other.training.software == "megatron-core-2024"
        assert other.parallelism.pipeline_schedule == "1f1b"
    # DualPipe pairs stages: 15 of them ran other software (the chip's)
    odd = load_spec({**DSV3_H800, "hardware": {"gpu": "h800-sxm", "count": 960},
                     "parallelism": {"tp": 1, "pp": 15, "ep": 64, "dp": 64, "micro_batch": 1},
                     "training": {"global_batch": 7680, "precision": "fp8"}})
    assert odd.training.software == "megatron-core-2024"
    # named, the stack is kept and the plan refused
    with pytest.raises(SpecError, match="dualpipe"):
        load_spec({**DSV3_H800, "hardware": {"gpu": "h800-sxm", "count": 960},
                   "parallelism": {"tp": 1, "pp": 15, "ep": 64, "dp": 64, "micro_batch": 1},
                   "training": {"global_batch": 7680, "precision": "fp8", "software": "hai-llm-v3"}})


def test_a_stack_without_tensor_parallelism_searches_tp_1_only():
    spec = load_spec({**DSV3_H800, "parallelism": {"pp": 16, "ep": 64}})
    assert spec.training.software == "hai-llm-v3" and spec.parallelism.tp == 1


def test_a_stack_without_context_parallelism_searches_cp_1_only():
    # HAI-LLM (DeepSeek-V2), Composer (MPT) and Megatron-LM 2021 split no sequence over GPUs: an
    # open cp is 1, so the search never prices a plan their software could not run
    for model, chip, stack in (("deepseek-v2", "h800-sxm", "hai-llm-v2"),
                               ("mpt-7b", "a100-80gb-sxm", "pytorch-fsdp-2023"),
                               ("gpt3-175b", "a100-80gb-sxm", "megatron-lm-2021")):
        spec = load_spec({"model": model, "hardware": {"gpu": chip, "count": 512},
                          "training": {"global_batch": 1024}})
        assert (spec.training.software, spec.parallelism.cp) == (stack, 1), model
        assert estimate(spec).parallelism["cp"] == 1
    # Megatron-Core has it: cp stays open for the search
    spec = load_spec({"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 64},
                      "training": {"global_batch": 256}})
    assert spec.training.software == "megatron-core-2024" and spec.parallelism.cp is None
    # a 2021-era A100 run that fixes cp 2 ran the first Megatron with context parallelism
    spec = load_spec({"model": "gpt3-175b", "hardware": {"gpu": "a100-80gb-sxm", "count": 1024},
                      "parallelism": {"cp": 2}, "training": {"global_batch": 1024}})
    assert (spec.training.software, spec.parallelism.cp) == ("megatron-core-2024", 2)
    # a stack named by the spec keeps the plan as written, as for tp
    spec = load_spec({"model": "mpt-7b", "hardware": {"gpu": "a100-80gb-sxm", "count": 64},
                      "parallelism": {"cp": 2}, "training": {"global_batch": 256, "software": "pytorch-fsdp-2023"}})
    assert (spec.training.software, spec.parallelism.cp) == ("pytorch-fsdp-2023", 2)


_MIXTRAL = resolve_model("mixtral-8x7b")


@settings(max_examples=300, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), pp=st.sampled_from([1, 2, 4, 8]), cp=st.sampled_from([1, 2]),
       dp=st.sampled_from([1, 2, 4, 8, 16, 32]), ep=st.sampled_from([1, 2, 4, 8]),
       count=st.sampled_from([64, 128, 256, 512]))
def test_a_plan_megatron_can_run_is_read_as_written(tp, pp, cp, dp, ep, count):
    plan = ParallelPlan(tp=tp, pp=pp, cp=cp, dp=dp, ep=ep)
    hw = resolve_hardware({"gpu": "h100-sxm", "count": count})
    try:
        validate_plan(_MIXTRAL, hw, plan)
    except SpecError:
        read = read_expert_layout(_MIXTRAL, count, plan)
        # read otherwise only where it then runs (or the reading changed nothing)
        if read != plan:
            validate_plan(_MIXTRAL, hw, read)
        return
    assert read_expert_layout(_MIXTRAL, count, plan) == plan
