"""Narayanan et al. 2021's rule for the tensor-parallel degree (sec. 3.3, Takeaway #1: tensor
parallelism up to the GPUs of a server, then pipeline parallelism across servers): the search's
``tp_fills_server`` constraint and the as-published reading that applies it to runs of the stacks
whose published runs follow it (``training.validate.with_tp_convention``)."""

from __future__ import annotations

import numpy as np
import pytest

from colossim.specs.software import software_stacks
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate
from colossim.training.search import enumerate_plans, server_tp
from colossim.training.validate import validation_runs, with_run_labels, with_tp_convention

#: Narayanan et al. 2021 Table 2's PTD-P GPT-3 row as the team's file writes it: dp given, tp x pp
#: (96) left to the reader.
GPT3_384 = {"model": {"name": "megatron-175b", "seq_len": 2048}, "hardware": {"gpu": "a100-80gb-sxm", "count": 384},
            "parallelism": {"dp": 4, "micro_batch": 1, "recompute": "full", "zero": 0, "sequence_parallel": False},
            "training": {"global_batch": 1536}}


def _plans(spec: dict):
    s = load_spec(spec)
    return enumerate_plans(s.model, s.hardware, s.parallelism, s.training.global_batch, s.seq_len)


def test_with_the_rule_every_pipelined_plan_takes_the_servers_tp():
    free = _plans(GPT3_384)
    ruled = _plans({**GPT3_384, "parallelism": {**GPT3_384["parallelism"], "tp_fills_server": True}})
    # dp 4 on 384 GPUs: tp x pp = 96, so every plan is pipelined; only tp 8 x pp 12 is left
    assert set(zip(free.tp.tolist(), free.pp.tolist())) >= {(8, 12), (4, 24), (2, 48)}
    assert set(zip(ruled.tp.tolist(), ruled.pp.tolist())) == {(8, 12)}
    assert 0 < len(ruled) < len(free)


def test_plans_without_pipelining_are_searched_as_usual():
    spec = {"model": "llama2-7b", "hardware": {"gpu": "h100-sxm", "count": 64}, "training": {"global_batch": 256}}
    free = _plans(spec)
    ruled = _plans({**spec, "parallelism": {"tp_fills_server": True}})
    assert np.array_equal(np.unique(ruled.tp[ruled.pp == 1]), np.unique(free.tp[free.pp == 1]))
    assert set(np.unique(ruled.tp[ruled.pp > 1]).tolist()) == {8}
    assert set(np.unique(free.tp[free.pp > 1]).tolist()) > {8}


def test_a_given_tp_is_kept_whatever_the_rule_says():
    spec = {**GPT3_384, "parallelism": {**GPT3_384["parallelism"], "tp": 4, "tp_fills_server": True}}
    plans = _plans(spec)
    assert set(plans.tp.tolist()) == {4} and set(plans.pp.tolist()) == {24}


@pytest.mark.parametrize("model, hardware, expected", [
    ("gpt3-175b", {"gpu": "a100-80gb-sxm", "count": 64}, 8),  # 96 heads, an 8-GPU DGX
    ("llama3-8b", {"gpu": "h100-sxm", "count": 64}, 8),
    ("llama3-8b", {"gpu": "h100-sxm", "count": 64, "gpus_per_node": 4}, 4),  # a node of four
    ("llama3-8b", {"system": "gb200-nvl72", "count": 72}, 32),  # the catalog's NVL72 node is the 72-GPU rack
    ("mpt-125m", {"gpu": "h100-sxm", "count": 64}, 6),  # 12 heads: the largest divisor within 8
])
def test_the_servers_tp_is_the_largest_the_heads_allow_within_a_node(model, hardware, expected):
    s = load_spec({"model": model, "hardware": hardware})
    assert server_tp(s.model, s.hardware) == expected


def test_the_reading_applies_the_rule_to_megatron_runs_that_leave_tp_open():
    read = with_tp_convention(GPT3_384)
    assert read["parallelism"] == {**GPT3_384["parallelism"], "tp_fills_server": True}
    assert read["model"] == GPT3_384["model"] and read["training"] == GPT3_384["training"]
    # the A100's default stack, Megatron-LM of 2021, is priced at the paper's own split
    assert estimate(load_spec(read)).parallelism["tp"] == 8
    assert estimate(load_spec(GPT3_384)).parallelism["tp"] < 8  # the engine's fastest, without the rule


@pytest.mark.parametrize("change", [
    {"parallelism": {"dp": 4, "tp": 4}},  # tp given
    {"parallelism": {"dp": 4, "tp_fills_server": False}},  # the spec says no
    {"training": {"global_batch": 1536, "software": "nemo-2024"}},  # NeMo's recipes run tp 4 x pp 8
    {"training": {"global_batch": 1536, "software": "megatron-deepspeed-2022"}},  # BLOOM: tp 4 x pp 12
    {"model": {"name": "no-such-model"}},  # does not load: left to the engine's own error
    {"parallelism": "tp8"},  # not a mapping
])
def test_the_reading_leaves_other_specs_as_they_are(change):
    spec = {**GPT3_384, **change}
    assert with_tp_convention(spec) is spec


def test_the_stacks_that_follow_the_rule_are_the_megatron_lm_line():
    follows = {k for k, s in software_stacks().items() if s.tp_fills_server}
    assert follows == {"megatron-lm-2021", "megatron-deepspeed-2021", "megatron-lm-2022", "megatron-core-2024"}


def test_the_annotated_rows_whose_tp_is_inferred_read_alike_as_published():
    """The rows of the team's file that leave tp open on such a stack: the annotated copy wrote
    the rule's tp in by hand, the reading now finds the same."""
    open_tp = [r for r in validation_runs() if r.spec_as_published is not None
               and "tp" not in r.spec_as_published.get("parallelism", {})]
    assert {r.id for r in open_tp} >= {"NAR21-T2-PTD-01", "MCORE24-STRONG-96"}
    for r in open_tp:
        read = with_run_labels(r.spec_as_published, r.model_name, r.gpu_type, r.source, r.interconnect, r.notes)
        ruled = read["parallelism"].get("tp_fills_server") is True
        assert ruled == (r.model_base != "opt-175b"), r.id  # OPT ran metaseq: FSDP and tp 2
        if ruled and r.spec["parallelism"]["pp"] > 1:
            assert estimate(load_spec(read)).parallelism["tp"] == r.spec["parallelism"]["tp"] == 8, r.id
