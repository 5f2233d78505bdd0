"""The data-parallel reduction's gradient dtype and the fp8 weight gather (plan fields
``grad_reduce_dtype`` and ``fp8_param_gather``), the NeMo stack that sets them, and the validation
reading a NeMo performance-table run as that stack."""

from __future__ import annotations

import json

import pytest

from colossim.cost import comm as C
from colossim.errors import SpecError
from colossim.specs.software import software_stacks
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate, make_context
from colossim.training.step import FP8_PARAM_GATHER_BYTES, GRAD_REDUCE_BYTES, PARAM_GATHER_BYTES
from colossim.training.validate import validate, validation_runs, with_run_software

# Llama 2 7B on one DGX H100, pure data parallelism, the reduction after the backward (nothing
# hides it): the step's DP seconds are one all-reduce of every gradient.
EXPOSED_DP = {"model": "llama2-7b", "hardware": {"gpu": "h100-sxm", "count": 8},
              "parallelism": {"tp": 1, "pp": 1, "cp": 1, "dp": 8, "vpp": 1, "micro_batch": 1, "zero": 0,
                              "recompute": "full", "overlap_grad_reduce": False},
              "training": {"global_batch": 64}}

NEMO_SOURCE = ("NVIDIA/NeMo docs/source/performance/performance_summary.md, final version before removal "
               "(container NeMo 24.07)")


def _with(spec: dict, section: str, **fields) -> dict:
    return {**spec, section: {**spec[section], **fields}}


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_an_exposed_all_reduce_moves_the_dtypes_bytes_per_gradient(dtype):
    spec = load_spec(_with(EXPOSED_DP, "parallelism", grad_reduce_dtype=dtype))
    ctx = make_context(spec)
    nbytes = spec.model.params_total * GRAD_REDUCE_BYTES[dtype]
    expected = C.all_reduce_seconds(nbytes, 8, ctx.network, ctx.profile, stride=1)
    # (the engine counts the GPU's parameters layer by layer: the model's total to a millionth)
    assert estimate(spec).time_breakdown_s["dp_comm"] == pytest.approx(float(expected), rel=1e-5)


def test_bf16_gradients_halve_the_bandwidth_term_and_touch_nothing_else():
    fp32 = estimate(load_spec(EXPOSED_DP))
    bf16 = estimate(load_spec(_with(EXPOSED_DP, "parallelism", grad_reduce_dtype="bf16")))
    t32, t16 = fp32.time_breakdown_s, bf16.time_breakdown_s
    # half the bytes: less than the fp32 time, more than half of it (the latency terms stay)
    assert t32["dp_comm"] / 2 < t16["dp_comm"] < t32["dp_comm"]
    assert {k: v for k, v in t16.items() if k != "dp_comm"} == {k: v for k, v in t32.items() if k != "dp_comm"}
    # the gradient buffer (ZeRO 0: every gradient on every GPU) is held in the reduction's dtype:
    # 2 bytes less per parameter, and nothing else in memory moves
    m32, m16 = fp32.memory_breakdown_gib, bf16.memory_breakdown_gib
    params = load_spec(EXPOSED_DP).model.params_total
    assert (m32["gradients"] - m16["gradients"]) * 2**30 == pytest.approx(2 * params, rel=1e-6)
    assert {k: v for k, v in m16.items() if k != "gradients"} == {k: v for k, v in m32.items() if k != "gradients"}


def test_the_default_stacks_reduce_in_fp32_and_nemo_in_bf16_with_fp8_weights():
    stacks = software_stacks()
    assert {s.grad_reduce_dtype for k, s in stacks.items() if k != "nemo-2024"} == {"fp32"}
    assert not any(s.fp8_param_gather for k, s in stacks.items() if k != "nemo-2024")
    nemo = load_spec(_with(EXPOSED_DP, "training", software="nemo-2024"))
    assert (nemo.parallelism.grad_reduce_dtype, nemo.parallelism.fp8_param_gather) == ("bf16", True)
    plain = load_spec(EXPOSED_DP)
    assert (plain.training.software, plain.parallelism.grad_reduce_dtype) == ("megatron-core-2024", "fp32")
    # the spec's own field wins over its stack's
    own = load_spec(_with(_with(EXPOSED_DP, "training", software="nemo-2024"), "parallelism",
                          grad_reduce_dtype="fp32"))
    assert own.parallelism.grad_reduce_dtype == "fp32"
    # NeMo's stack is Megatron-Core's but for the two flags (and how its published runs chose tp:
    # NeMo's recipes run GPT-3 175B at tp 4 x pp 8, test_tp_convention; and NeMo's own FSDP option)
    core, nemo_stack = stacks["megatron-core-2024"], stacks["nemo-2024"]
    differs = {f for f in type(core).model_fields if getattr(core, f) != getattr(nemo_stack, f)}
    assert differs == {"id", "name", "grad_reduce_dtype", "fp8_param_gather", "default_for_chips_released_from",
                       "zero_stages", "zero3_stack", "run_sources", "tp_fills_server", "source", "notes"}


def _zero(z: int, precision: str, gather: bool) -> dict:
    spec = _with(_with(EXPOSED_DP, "parallelism", zero=z, overlap_grad_reduce=True, fp8_param_gather=gather),
                 "training", precision=precision)
    return load_spec(spec)


def test_fp8_weights_are_gathered_at_one_byte_under_the_distributed_optimizer_only():
    assert (FP8_PARAM_GATHER_BYTES, PARAM_GATHER_BYTES) == (1, 2)
    # fp8 + ZeRO 1: the gather halves
    assert make_context(_zero(1, "fp8", True)).param_gather_bytes == FP8_PARAM_GATHER_BYTES
    faster, slower = (estimate(_zero(1, "fp8", g)).time_breakdown_s["dp_comm"] for g in (True, False))
    assert faster < slower
    # bf16 training has no fp8 weights to gather; ZeRO-3's per-layer gathers stay bf16
    for z, precision in ((1, "bf16"), (3, "fp8")):
        on, off = (estimate(_zero(z, precision, g)) for g in (True, False))
        assert on.step_time_s == off.step_time_s
        assert on.memory_breakdown_gib == off.memory_breakdown_gib


def test_fp8_weights_are_the_parameters_so_no_bf16_copy_is_held():
    """With fp8 weights kept as fp8 parameters (ZeRO 1) the layers' weights take one byte each
    and a cached transpose (two) instead of bf16 plus a cached fp8 copy and transpose (four): two
    bytes less per layer parameter; the embedding and the output head stay bf16 either way."""
    from colossim.training.memory import (FP8_PARAM_BYTES, FP8_TRANSPOSE_CACHE_BYTES, FP8_WEIGHT_CACHE_BYTES,
                                          WEIGHT_BYTES)

    fp8_params, cached = (estimate(_zero(1, "fp8", g)).memory_breakdown_gib for g in (True, False))
    m = load_spec(EXPOSED_DP).model
    layer_params = m.params_total - m.params_embedding - m.params_output_head - m.params_final_norm
    per_param = WEIGHT_BYTES + FP8_WEIGHT_CACHE_BYTES - FP8_PARAM_BYTES - FP8_TRANSPOSE_CACHE_BYTES
    assert per_param == 2
    assert (cached["weights"] - fp8_params["weights"]) * 2**30 == pytest.approx(per_param * layer_params, rel=1e-6)
    assert {k: v for k, v in fp8_params.items() if k not in ("weights", "buffers")} == {
        k: v for k, v in cached.items() if k not in ("weights", "buffers")}


def test_a_bad_dtype_is_one_line_naming_the_field_and_the_choices():
    with pytest.raises(SpecError) as e:
        load_spec(_with(EXPOSED_DP, "parallelism", grad_reduce_dtype="fp16"))
    msg = str(e.value)
    assert "\n" not in msg and "grad_reduce_dtype" in msg and "fp32" in msg and "bf16" in msg


def test_a_run_from_nemos_performance_tables_reads_as_the_nemo_stack():
    spec = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 8}}
    assert with_run_software(spec, NEMO_SOURCE)["training"] == {"software": "nemo-2024"}
    training = {"global_batch": 128, "precision": "fp8"}
    assert with_run_software({**spec, "training": training}, NEMO_SOURCE)["training"] == {
        **training, "software": "nemo-2024"}
    # a stack the spec names wins; another source names no stack
    named = {**spec, "training": {"software": "megatron-core-2024"}}
    assert with_run_software(named, NEMO_SOURCE) is named
    for source in ("NVIDIA/Megatron-LM README.md 'Training Speed and Scalability'", "", None):
        assert with_run_software(spec, source) is spec


def test_every_nemo_table_row_predicts_the_same_as_published_and_as_colossims_copy():
    """The package's copies of NeMo's 24.07 rows name ``nemo-2024``; the team's specs do not, and
    the validation reads the stack from the row's source: both give the same figure."""
    runs = [r for r in validation_runs() if r.id.startswith("NEMO2407")]
    assert len(runs) == 6 and all(json.loads(r.spec_json)["training"]["software"] == "nemo-2024" for r in runs)

    def predict(spec):
        est = estimate(load_spec(spec))
        return est.tokens_per_s_per_gpu, est.parallelism

    ours = validate(predict, runs)
    published = validate(predict, runs, as_published=True)
    assert [r.predicted_tokens_per_s_per_gpu for r in ours] == pytest.approx(
        [r.predicted_tokens_per_s_per_gpu for r in published], rel=1e-12)


def test_a_run_from_korthikanti_et_al_reads_as_the_release_that_paper_introduced():
    """Korthikanti et al. 2022 ran Megatron-LM 3.0, the release it introduced: a row citing it
    runs ``megatron-lm-2022`` even where its plan asks for nothing that release added (full
    recompute without sequence parallelism), as the package's annotated copy names it."""
    source = ("Korthikanti et al. 2022, 'Reducing Activation Recomputation in Large Transformer Models' "
              "(arXiv:2205.05198, MLSys 2023)")
    spec = {"model": "megatron-175b", "hardware": {"gpu": "a100-80gb-sxm", "count": 64},
            "parallelism": {"tp": 8, "pp": 8, "dp": 1, "recompute": "full", "sequence_parallel": False},
            "training": {"global_batch": 64}}
    read = with_run_software(spec, source)
    assert read["training"] == {"global_batch": 64, "software": "megatron-lm-2022"}
    # the title alone is enough; Narayanan et al. 2021 names no stack (the A100's default runs it)
    assert with_run_software(spec, "reducing activation recomputation in large transformer models")["training"][
        "software"] == "megatron-lm-2022"
    assert with_run_software(spec, "Narayanan et al. 2021 (arXiv:2104.04473)") is spec
    annotated = {r.id: r for r in validation_runs()}
    for run_id in ("KOR22-T5-FULL-01", "KOR22-T5-01", "KOR22-DP8-530B"):
        run = annotated[run_id]
        assert run.spec["training"]["software"] == "megatron-lm-2022"
        assert with_run_software(run.spec_as_published, run.source)["training"]["software"] == "megatron-lm-2022"
