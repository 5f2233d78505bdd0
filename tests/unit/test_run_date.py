"""A published run's date, as its source states it (an NGC container tag, an MLPerf Training
round), and the attention kernel that date allows (``training.validate.with_run_date``)."""

from __future__ import annotations

import pytest

from colossim.training.validate import (FLASH2_FIRST_MONTH, run_month, validation_runs, with_run_date,
                                        with_run_labels)

MLPERF_SOURCE = ("mlcommons/training_results_v3.0 NVIDIA_CoreWeave/results/coreweave_hgxh100_n96_ngc23.04_pytorch/"
                 "gpt3/result_*.txt (MLLOG)")
SPEC = {"model": "gpt3-175b", "hardware": {"gpu": "h100-sxm", "count": 768},
        "parallelism": {"tp": 4, "pp": 8}, "training": {"global_batch": 3072}}


@pytest.mark.parametrize("source,month", [
    (MLPERF_SOURCE, (2023, 4)),  # the container (April 2023) is earlier than the round (June 2023)
    ("MLPerf Training v3.1 closed division, NVIDIA Eos", (2023, 11)),
    ("mlcommons/training_results_v4.0 NVIDIA/results/eos_n1452_ngc24.04_nemo", (2024, 4)),
    ("a blog post with container nvcr.io/nvidia/nemo:24.07", None),  # no ngcYY.MM tag
    ("ngc23.13_pytorch", None),  # no such month
    ("Narayanan et al. 2021 (arXiv:2104.04473)", None),
    (None, None),
])
def test_a_source_dates_its_run_by_container_or_mlperf_round(source, month):
    assert run_month(source) == month


def test_a_run_older_than_flashattention_2_runs_the_first_generation_kernel():
    assert FLASH2_FIRST_MONTH == (2023, 8)  # flash-attn 2.0.0: 17 July 2023
    old = with_run_date(SPEC, MLPERF_SOURCE)
    assert old["parallelism"] == {"tp": 4, "pp": 8, "attention_kernel": "flash1"}
    assert {k: v for k, v in old.items() if k != "parallelism"} == {k: v for k, v in SPEC.items() if k != "parallelism"}
    # later software, an undated source, a kernel the spec names or no flash attention: unchanged
    assert with_run_date(SPEC, "training_results_v3.1 ... ngc23.09_nemo") is SPEC
    assert with_run_date(SPEC, "NVIDIA/Megatron-LM README.md") is SPEC
    named = {**SPEC, "parallelism": {**SPEC["parallelism"], "attention_kernel": "flash2"}}
    assert with_run_date(named, MLPERF_SOURCE) is named
    unfused = {**SPEC, "parallelism": {**SPEC["parallelism"], "flash_attention": False}}
    assert with_run_date(unfused, MLPERF_SOURCE) is unfused
    # a spec without a parallelism section gets one
    bare = {k: v for k, v in SPEC.items() if k != "parallelism"}
    assert with_run_date(bare, MLPERF_SOURCE)["parallelism"] == {"attention_kernel": "flash1"}


def test_the_mlperf_v3_rows_as_published_read_as_their_annotated_kernel():
    """The three MLPerf Training v3.0 rows: the annotated copy writes flash1 in by hand; their bare
    specs now get it from their sources (the other rows' specs, dated or not, are left alone)."""
    runs = [r for r in validation_runs() if r.spec_as_published is not None]
    read = {r.id: with_run_labels(r.spec_as_published, r.model_name, r.gpu_type, r.source) for r in runs}
    flash1 = {i for i, s in read.items() if (s.get("parallelism") or {}).get("attention_kernel") == "flash1"}
    assert flash1 == {"MLPERF30-GPT3-768", "MLPERF30-GPT3-1536", "MLPERF30-GPT3-3584"}
    for r in runs:
        if r.id in flash1:
            assert r.spec["parallelism"]["attention_kernel"] == "flash1"
