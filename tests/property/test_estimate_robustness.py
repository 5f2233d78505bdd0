"""Any spec a user (or a published run's spec) can write gets either an estimate with physical numbers
or one clear error: catalog models, dense and MoE, on several chips and systems, with any subset of
the plan fixed (the rest searched), any precision, a power limit or not, trained whole or fine-tuned
with LoRA or QLoRA; hybrids of Mamba-2, Gated DeltaNet, attention and MoE layers among them.  No
other exception may escape ``estimate``: a traceback instead of a one-line error is a defect the
CLI would show."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colossim.errors import ColossimError
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate

MODELS = ("gpt3-175b", "llama3-8b", "llama3.1-405b", "mixtral-8x7b", "mixtral-8x22b", "deepseek-v3",
          "grok-1", "nemotron4-15b", "qwen3-30b-a3b", "mpt-7b", "opt-175b", "gemma2-27b",
          "nemotron-h-8b", "nemotron-h-56b", "nemotron-3-nano-30b-a3b", "qwen3-next-80b-a3b")
CHIPS = ("h100-sxm", "a100-80gb-sxm", "a100-40gb-sxm", "h200-sxm", "h800-sxm", "b200", "mi300x")
#: plan fields a spec may fix, with values that are valid for some models and not for others
PLAN_CHOICES = {
    "tp": [1, 2, 4, 8], "pp": [1, 2, 4, 8, 16], "cp": [1, 2], "ep": [1, 2, 8, 64],
    "micro_batch": [1, 2, 4], "recompute": ["none", "selective", "full"], "zero": [0, 1, 2, 3],
    "vpp": [1, 2, 4], "sequence_parallel": [True, False],
}

#: training fields of a fine-tuning, or none: LoRA on its default or a narrower set of targets, QLoRA
FINE_TUNING = ({}, {"lora_rank": 16}, {"lora_rank": 8, "lora_targets": ["linear_qkv", "linear_fc2"]},
               {"lora_rank": 16, "lora_base_precision": "nf4"})


@st.composite
def specs(draw) -> dict:
    hardware = draw(st.one_of(
        st.builds(lambda g, n: {"gpu": g, "count": n}, st.sampled_from(CHIPS),
                  st.sampled_from([8, 64, 256, 1024])),
        st.builds(lambda n: {"system": "gb200-nvl72", "count": n}, st.sampled_from([72, 144, 576]))))
    if draw(st.booleans()):
        hardware["tdp_w"] = draw(st.sampled_from([400, 500]))
    fixed = draw(st.lists(st.sampled_from(sorted(PLAN_CHOICES)), max_size=4, unique=True))
    parallelism = {k: draw(st.sampled_from(PLAN_CHOICES[k])) for k in fixed}
    training = {"global_batch": draw(st.sampled_from([256, 1024, 2048])),
                "precision": draw(st.sampled_from(["bf16", "fp8"])), **draw(st.sampled_from(FINE_TUNING))}
    return {"model": draw(st.sampled_from(MODELS)), "hardware": hardware,
            "parallelism": parallelism, "training": training}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_an_estimate_is_physical_or_the_error_names_its_field(spec):
    try:
        est = estimate(load_spec(spec))
    except ColossimError as err:
        # one line, naming the field at fault
        assert err.field, f"{err!s} has no field"
        assert "\n" not in str(err)
        return
    numbers = [est.step_time_s, est.tokens_per_s_per_gpu, est.mfu, est.hfu, est.memory_gib_per_gpu,
               *est.time_breakdown_s.values()]
    assert all(math.isfinite(x) for x in numbers)
    assert est.step_time_s > 0 and est.tokens_per_s_per_gpu > 0
    # model FLOPs at no more than the chip's peak, hardware FLOPs at least the model's
    assert 0 < est.mfu <= 1 and est.hfu >= est.mfu * (1 - 1e-9)
    assert min(est.time_breakdown_s.values()) >= 0
    assert est.fits
