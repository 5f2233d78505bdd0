"""Megatron-LM flags a published row's notes name, read into the plan fields the spec leaves open
(``training.validate.with_run_flags``)."""

from __future__ import annotations

import pytest

from colossim.training.validate import RUN_FLAG_FIELDS, validation_runs, with_run_flags

SPEC = {"model": "gpt3-175b", "hardware": {"gpu": "h100-sxm", "count": 96}, "parallelism": {"zero": 1},
        "training": {"global_batch": 1152}}
MCORE_NOTES = ("end-to-end incl. data loading/optimizer/logging; DP/TP/PP comm overlap on (--overlap-grad-reduce "
               "--overlap-param-gather --tp-comm-overlap); precision and recompute not stated")


def test_the_flags_a_row_names_set_the_fields_its_spec_leaves_open():
    read = with_run_flags(SPEC, MCORE_NOTES)
    assert read["parallelism"] == {"zero": 1, "overlap_grad_reduce": True, "overlap_param_gather": True,
                                   "tp_overlap": True}
    assert {k: v for k, v in read.items() if k != "parallelism"} == {
        k: v for k, v in SPEC.items() if k != "parallelism"}
    # every flag in the table sets its own field
    for flag, (field, value) in RUN_FLAG_FIELDS.items():
        assert with_run_flags({"model": "m", "hardware": {}}, f"launched with {flag}")["parallelism"] == {field: value}


@pytest.mark.parametrize("notes", [
    "run without --tp-comm-overlap",
    "no --tp-comm-overlap here",
    "--tp-comm-overlap off",
    "--tp-comm-overlap=false",
    "--tp-comm-overlap disabled for this row",
    "--tp-comm-overlap-cfg tp.yaml",  # another flag that starts alike
    "tp_comm_overlap",  # not a command-line flag
    "",
])
def test_a_denied_or_absent_flag_sets_nothing(notes):
    assert with_run_flags(SPEC, notes) is SPEC


def test_a_flag_named_and_denied_sets_nothing_and_the_spec_wins():
    assert with_run_flags(SPEC, "--tp-comm-overlap in the first runs, without --tp-comm-overlap later") is SPEC
    own = {**SPEC, "parallelism": {"zero": 1, "tp_overlap": False}}
    assert with_run_flags(own, "--tp-comm-overlap")["parallelism"] == {"zero": 1, "tp_overlap": False}
    # the spec's zero 3 is not undone by a distributed optimizer the notes name
    fsdp = {**SPEC, "parallelism": {"zero": 3}}
    assert with_run_flags(fsdp, "--use-distributed-optimizer") is fsdp


def test_the_megatron_core_rows_as_published_read_the_overlap_their_annotated_copy_names():
    runs = [r for r in validation_runs() if r.id.startswith("MCORE24")]
    assert len(runs) == 11
    for r in runs:
        assert r.spec["parallelism"]["tp_overlap"] is True
        assert with_run_flags(r.spec_as_published, r.notes)["parallelism"]["tp_overlap"] is True
    # no other row's notes name a flag
    others = [r for r in validation_runs() if not r.id.startswith("MCORE24") and r.spec_as_published is not None]
    assert others and all(with_run_flags(r.spec_as_published, r.notes) == r.spec_as_published for r in others)
