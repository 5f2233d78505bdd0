"""Training spec loading: YAML / JSON / stdin / dict, unknown fields at every level, impossible
plans with every factor shown, hardware resolution, and valid_mask agreeing with validate_plan."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from colossim.errors import SpecError, UnknownNameError
from colossim.specs import ParallelPlan, load_spec, resolve_hardware, resolve_model, valid_mask, validate_plan
from colossim.specs.training import TrainingWorkload

BASE = {"model": "llama3-70b", "hardware": {"gpu": "h100-sxm", "count": 1024},
        "parallelism": {"tp": 8, "pp": 8, "cp": 1, "ep": 1, "dp": 16, "vpp": 1, "micro_batch": 1,
                        "recompute": "none", "zero": 1, "sequence_parallel": True},
        "training": {"global_batch": 1024, "precision": "bf16", "tokens": 15e12}}


def spec(**sections):
    d = json.loads(json.dumps(BASE))
    for k, v in sections.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
    return d


def test_issue_example_loads_from_yaml(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_text("model: llama3-405b\nhardware: {gpu: h100-sxm, count: 16384}\n"
                 "parallelism: {tp: 8, pp: 18, cp: 1, ep: 1, dp: 113, vpp: 1, micro_batch: 1,\n"
                 "  recompute: none, zero: 1, sequence_parallel: true, uneven_stages: true}\n"
                 "training: {global_batch: 2034, precision: bf16, tokens: 15.6e12}\n")
    with pytest.raises(SpecError, match=r"tp\*pp\*cp\*dp = 8\*18\*1\*113 = 16272 != hardware.count 16384"):
        load_spec(p)
    p.write_text(p.read_text().replace("dp: 113", "dp: 128").replace("pp: 18", "pp: 16")
                 .replace("2034", "2048"))
    s = load_spec(p)
    assert s.parallelism.is_complete and s.model.name == "llama3-405b" and s.hardware.count == 16384
    assert s.training.tokens == 15.6e12


def test_json_file_and_stdin_text(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(BASE))
    assert load_spec(p).parallelism.tp == 8
    assert load_spec("-", text=json.dumps(BASE)).hardware.system_id == "hgx-h100"


@pytest.mark.parametrize("section, key", [("parallelism", "tpp"), ("training", "batch"),
                                          ("hardware", "gpus"), ("model", "layer")])
def test_unknown_field_at_any_level(section, key):
    d = spec()
    if section == "model":
        d["model"] = {"name": "llama3-70b", key: 1}
    else:
        d[section][key] = 1
    with pytest.raises(SpecError, match=rf"unknown field '{section}.{key}': allowed: "):
        load_spec(d)


def test_unknown_top_level_section():
    with pytest.raises(SpecError, match="unknown field 'trainng': allowed: model, hardware, parallelism, training"):
        load_spec({**BASE, "trainng": {}})


def test_tp_not_dividing_heads_lists_allowed():
    with pytest.raises(SpecError, match=r"parallelism.tp = 6 does not divide model.heads = 64: allowed tp: 1, 2, 4, 8"):
        load_spec(spec(parallelism={"tp": 6, "dp": None}))


def test_product_mismatch_shows_every_factor():
    with pytest.raises(SpecError, match=r"^tp\*pp\*cp\*dp = 8\*8\*1\*32 = 2048 != hardware.count 1024$"):
        load_spec(spec(parallelism={"dp": 32}))
    # factors at the spec bound: the product is exact (int64 wrapped it to 51539607544)
    big = 2**31 - 1
    with pytest.raises(SpecError, match=rf"= {8 * big**3} != hardware.count 1024$"):
        load_spec(spec(parallelism={"pp": big, "cp": big, "dp": big}))


def test_a_partial_plan_that_cannot_make_the_count_names_its_factors():
    # one factor: named once (it read "tp = 16 = 16"), with the values it may take
    with pytest.raises(SpecError, match=r"^parallelism.tp = 16 does not divide hardware.count 72: allowed tp: "
                                        r"a divisor of 72 \(1, 2, 3, 4, 6, 8, 9, 12, 18, 24, 36, 72\)$"):
        load_spec(spec(hardware={"gpu": "gb200", "count": 72},
                       parallelism={"tp": 16, "pp": None, "cp": None, "dp": None}))
    with pytest.raises(SpecError, match=r"^tp\*pp\*cp = 8\*3\*1 = 24 does not divide hardware.count 1024: allowed: "
                                        r"factors whose product divides 1024 \(1, 2, 4, .*, 1024\)$"):
        load_spec(spec(parallelism={"pp": 3, "dp": None}))


def test_pp_not_dividing_layers_only_when_uneven_stages_are_refused():
    # uneven stages are allowed by default (Llama 3 405B: 126 layers on 16 stages)
    assert load_spec(spec(parallelism={"pp": 32, "dp": 4})).parallelism.uneven_stages
    with pytest.raises(SpecError, match="parallelism.pp = 32 does not divide model.layers = 80"):
        load_spec(spec(parallelism={"pp": 32, "dp": 4, "uneven_stages": False}))
    with pytest.raises(SpecError, match="parallelism.pp = 32 does not divide model.layers = 80"):
        load_spec(spec(parallelism={"pp": 32, "dp": 4, "allow_uneven": False}))


def test_ep_on_dense_and_moe():
    with pytest.raises(SpecError, match="is dense: allowed ep: 1"):
        load_spec(spec(parallelism={"ep": 2}))
    d = spec(model="mixtral-8x7b", parallelism={"tp": 4, "pp": 4, "dp": 64, "ep": 3})
    with pytest.raises(SpecError, match="ep = 3 does not divide model.experts = 8"):
        load_spec(d)


def test_batch_divisibility_and_fsdp_alias():
    with pytest.raises(SpecError, match="global_batch = 1000 is not a multiple of dp\\*micro_batch = 16\\*1"):
        load_spec(spec(training={"global_batch": 1000}))
    assert load_spec(spec(parallelism={"fsdp": True, "zero": None})).parallelism.zero == 3


def test_partial_plan_and_seq_len_override():
    s = load_spec(spec(parallelism={"tp": 8}, training={"seq_len": 4096}) | {"parallelism": {"tp": 8}})
    assert not s.parallelism.is_complete and "pp" in s.parallelism.missing
    assert s.model.seq_len == 4096 == s.seq_len


def test_bad_yaml_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model: llama3-8b\nhardware: {gpu: h100-sxm, count: 8\n")
    with pytest.raises(SpecError, match="not valid YAML/JSON at line"):
        load_spec(p)
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")


def test_hardware_defaults_and_overrides():
    h = resolve_hardware({"gpu": "h100-sxm", "count": 16})
    assert (h.gpus_per_node, h.scaleup_domain_size, h.system_id) == (8, 8, "hgx-h100")
    assert h.scaleout_bytes_per_s_per_gpu == 400e9 / 8 and h.scaleup_bytes_per_s_per_gpu == 450e9
    g = resolve_hardware({"system": "gb200-nvl72", "count": 144, "scaleout_gbit_per_s": 800, "hbm_gb": 192})
    assert (g.count, g.scaleup_domain_size, g.accelerator.hbm_gib) == (144, 72, 192)
    assert g.scaleout_bytes_per_s_per_gpu == 100e9
    # the datasheet's memory "GB" are binary (JEDEC): 80 GB of HBM hold 80 x 2^30 bytes
    assert h.hbm_bytes == 80 * 2**30
    assert resolve_hardware({"gpu": "h100-sxm", "count": 8, "hbm_gib": 94}).hbm_bytes == 94 * 2**30
    with pytest.raises(SpecError, match="exactly one of 'gpu'"):
        resolve_hardware({"gpu": "h100-sxm", "system": "hgx-h100", "count": 8})
    # a system's id written as the chip reads as that system
    assert resolve_hardware({"gpu": "gb200-nvl72", "count": 144}) == resolve_hardware(
        {"system": "gb200-nvl72", "count": 144})
    # and a chip's id written as the system reads as that chip, with its first system's network
    assert resolve_hardware({"system": "h100-sxm", "count": 16}) == h
    # a system's name in another spelling, with or without its vendor, is that system
    for name in ("DGX H100", "NVIDIA DGX H100", "hgx_h100"):
        assert resolve_hardware({"system": name, "count": 16}) == h
    assert resolve_hardware({"system": "DGX GB200", "count": 144}).system_id == "gb200-nvl72"
    with pytest.raises(UnknownNameError, match="unknown system 'dgx-x9'"):
        resolve_hardware({"system": "dgx-x9", "count": 8})


def test_reference_table_column_names_are_accepted_as_overrides():
    """The team's hardware table names three overrides its own way (same units)."""
    a = resolve_hardware({"gpu": "h100-sxm", "count": 16, "hbm_tbps": 2.0,
                          "scaleup_link_gbps_per_gpu": 1600, "scaleout_gbps_per_gpu": 200})
    assert a.accelerator.hbm_bytes_per_s == 2.0e12
    assert a.scaleup_bytes_per_s_per_gpu == 200e9 and a.scaleout_bytes_per_s_per_gpu == 25e9
    with pytest.raises(SpecError, match=r"hardware\.hbm_tbps"):
        resolve_hardware({"gpu": "h100-sxm", "count": 8, "hbm_tbps": -1})


def test_scaleout_rate_is_needed_only_beyond_one_scaleup_domain():
    """tpu-v6e has no scale-out rate in the catalog: a 256-chip pod slice runs, 512 chips need one."""
    assert resolve_hardware({"gpu": "tpu-v6e", "count": 256}).count == 256
    with pytest.raises(SpecError, match="scaleout_gbit_per_s"):
        resolve_hardware({"gpu": "tpu-v6e", "count": 512})
    assert resolve_hardware({"gpu": "tpu-v6e", "count": 512, "scaleout_gbit_per_s": 100}).count == 512


def test_valid_mask_agrees_with_validate_plan():
    model = resolve_model("mixtral-8x7b")
    hw = resolve_hardware({"gpu": "h100-sxm", "count": 64})
    wl = TrainingWorkload(global_batch=256)
    grid = list(itertools.product([1, 2, 4, 8, 16], [1, 2, 4, 8], [1, 2], [1, 2, 4, 8], [1, 2, 4, 8, 16, 32, 64],
                                  [1, 2], [1, 2, 3]))
    tp, pp, cp, ep, dp, vpp, mb = (np.array(c) for c in zip(*grid))
    mask = valid_mask(model, hw, tp, pp, cp, ep, dp, vpp, mb, 256, tp_within_domain=False)
    for i, (t, p, c, e, d, v, m) in enumerate(grid):
        plan = ParallelPlan(tp=t, pp=p, cp=c, ep=e, dp=d, vpp=v, micro_batch=m)
        try:
            validate_plan(model, hw, plan, wl)
            ok = True
        except SpecError:
            ok = False
        assert ok == bool(mask[i]), plan
    assert mask.sum() > 10


def test_global_batch_defaults_to_whole_sequences_per_gpu_near_2m_tokens():
    from colossim.specs.training import DEFAULT_BATCH_TOKENS, load_spec

    spec = load_spec({"model": "gpt3-175b", "hardware": {"gpu": "a100-80gb-sxm", "count": 992},
                      "parallelism": {"zero": 3}, "training": {}})
    gb = spec.training.global_batch
    assert gb % 992 == 0 and abs(gb * 2048 - DEFAULT_BATCH_TOKENS) <= 992 * 2048 / 2
    tiny = load_spec({"model": "gpt3-175b", "hardware": {"gpu": "a100-80gb-sxm", "count": 8192},
                      "training": {}})
    assert tiny.training.global_batch == 8192  # at least one sequence per GPU


def test_meaningless_fields_do_not_keep_a_plan_open():
    from colossim.specs.plan import ParallelPlan

    p = ParallelPlan(tp=1, pp=1, cp=1, dp=8, micro_batch=1, recompute="full", zero=3)
    assert p.missing == ["ep"]  # sequence_parallel at tp 1 and vpp at pp 1 mean nothing
    assert "sequence_parallel" in ParallelPlan(tp=2, pp=2, cp=1, ep=1, dp=2, vpp=1, micro_batch=1,
                                               recompute="none", zero=1).missing


def test_flashattention3_only_on_hopper():
    spec = {"model": "llama3-8b", "hardware": {"gpu": "a100-80gb-sxm", "count": 8},
            "parallelism": {"attention_kernel": "flash3"}, "training": {"global_batch": 64}}
    with pytest.raises(SpecError, match="flash3 .* Hopper GPUs only; a100-80gb-sxm is ampere"):
        load_spec(spec)
    spec["hardware"]["gpu"] = "h200-sxm"
    assert load_spec(spec).parallelism.attention_kernel == "flash3"


@pytest.mark.parametrize(("written", "read"), [("BF16", "bf16"), (" bfloat16 ", "bf16"), ("float16", "fp16"),
                                                ("FP8", "fp8"), ("mxfp8", "fp8")])
def test_precision_reads_any_case_and_the_names_frameworks_use(written, read):
    assert load_spec(spec(training={"precision": written})).training.precision.value == read


def test_choices_read_any_case_and_unknown_ones_name_the_allowed():
    assert load_spec(spec(parallelism={"recompute": "Full"})).parallelism.recompute.value == "full"
    assert resolve_model({"name": "llama3-8b", "activation": "SwiGLU"}).activation.value == "swiglu"
    with pytest.raises(SpecError, match=r"^training.precision: Input should be 'bf16', 'fp16' or 'fp8' "
                                        r"\(got 'int8'\)$"):
        load_spec(spec(training={"precision": "int8"}))


def test_a_batch_given_in_tokens_is_that_many_whole_sequences():
    """Papers give the batch in tokens (Llama 3 405B: 16M at 8,192): global_batch_tokens reads as
    the sequences it holds, at the model's or training's sequence length."""
    base = {"model": {"name": "llama3-405b", "seq_len": 8192}, "hardware": {"gpu": "h100-sxm", "count": 8192},
            "parallelism": {"tp": 8, "pp": 16, "cp": 1}}
    spec = load_spec({**base, "training": {"global_batch_tokens": 16 * 2**20}})
    assert spec.training.global_batch == 2048
    assert load_spec({**base, "training": {"global_batch_tokens": 16 * 2**20, "seq_len": 4096}}
                     ).training.global_batch == 4096
    assert load_spec({**base, "training": {"global_batch_tokens": 16 * 2**20, "global_batch": 2048}}
                     ).training.global_batch == 2048
    with pytest.raises(SpecError, match=r"^training\.global_batch_tokens 16777217 is not a whole number of "
                                        r"8192-token sequences \(allowed: multiples of 8192, e\.g\. 16777216 or "
                                        r"16785408\)$"):
        load_spec({**base, "training": {"global_batch_tokens": 16 * 2**20 + 1}})
    with pytest.raises(SpecError, match=r"is 2048 sequences of 8192 tokens, but training\.global_batch is 2000"):
        load_spec({**base, "training": {"global_batch_tokens": 16 * 2**20, "global_batch": 2000}})


def test_the_training_section_may_be_left_out_the_model_and_hardware_may_not():
    spec = load_spec({"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 64}})
    assert spec.training.precision.value == "bf16"
    assert spec.training.global_batch * spec.model.seq_len == 2**21  # the default batch, whole sequences
    for missing in ("model", "hardware"):
        data = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 64}}
        del data[missing]
        with pytest.raises(SpecError, match=f"^spec is missing '{missing}'$"):
            load_spec(data)
