"""Every training estimate carries the validation evidence of runs like it
(colossim.training.evidence): the committed grouped errors are the live validation's, the grouping
is the plain median / max / mean of the runs' errors, and an estimate's caveats name where it
reaches past the runs it rests on."""

from __future__ import annotations

import json

import pytest

from colossim.cli.validate import run_training_validation
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate
from colossim.training.evidence import (
    ANY_STACK,
    EVIDENCE_FILE,
    evidence_csv,
    evidence_rows,
    evidence_table,
    validation_evidence,
)
from colossim.training.validate import RunResult, ValidationRun

REGENERATE = "rewrite it with: .venv/bin/python benchmarks/validate_training.py --write-evidence"


def test_the_committed_evidence_is_the_live_validations():
    results, _ = run_training_validation(show_progress=False)
    extra, _ = run_training_validation(show_progress=False, extra=True)
    live = {(r.chip_family, r.software): r for r in evidence_rows([*results, *extra])}
    committed = evidence_table()
    assert live.keys() == committed.keys(), f"{EVIDENCE_FILE} is stale: {REGENERATE}"
    for key, row in live.items():
        assert row == committed[key], f"{EVIDENCE_FILE} is stale at {key}: {REGENERATE}"
    # every run with a prediction counts once per family over every stack
    n = sum(r.error is not None for r in (*results, *extra))
    assert sum(r.runs for (_, stack), r in live.items() if stack == ANY_STACK) == n


def _run(run_id: str, chip: str, model: str, gpus: int, precision: str = "bf16") -> ValidationRun:
    spec = {"model": model, "hardware": {"gpu": chip, "count": gpus},
            "training": {"global_batch": gpus, "precision": precision}}
    return ValidationRun(id=run_id, trust="A", source="test", model_name=model, gpu_type=chip, num_gpus=gpus,
                         measured_metric="tokens_per_s_per_gpu", measured_value=1.0,
                         tokens_per_s_per_gpu_measured=1.0, spec_json=json.dumps(spec))


def _result(run: ValidationRun, error: float | None) -> RunResult:
    return RunResult(run, None if error is None else 1.0 + error, error, {} if error is not None else None,
                     failure=None if error is not None else "no plan")


def test_evidence_groups_errors_by_chip_family_and_stack_in_closed_form():
    runs = [_result(_run("a", "h100-sxm", "llama3-8b", 64), 0.10),
            _result(_run("b", "h100-sxm", "llama3-70b", 512, "fp8"), -0.20),
            _result(_run("c", "h100-sxm", "mixtral-8x7b", 2048), 0.05),
            _result(_run("d", "a100-80gb-sxm", "llama3-8b", 8), 0.01),
            _result(_run("e", "a100-80gb-sxm", "llama3-8b", 16), None)]  # no prediction: left out
    stack = {"a": "s1", "b": "s1", "c": "s2", "d": "s1", "e": "s1"}
    batch = {"a": 2**20, "b": 2**22, "c": 2**21, "d": 2**19, "e": 2**30}  # tokens
    rows = {(r.chip_family, r.software): r for r in evidence_rows(runs, software_of=lambda run: stack[run.id],
                                                                  batch_tokens_of=lambda run: batch[run.id])}
    assert set(rows) == {("A100", ANY_STACK), ("A100", "s1"), ("H100", ANY_STACK), ("H100", "s1"), ("H100", "s2")}
    h = rows[("H100", "s1")]
    assert (h.runs, h.moe_runs, h.fp8_runs, h.largest_run_gpus) == (2, 0, 1, 512)
    assert h.median_abs_error == pytest.approx(0.15) and h.max_abs_error == pytest.approx(0.20)
    assert h.mean_signed_error == pytest.approx(-0.05)
    every = rows[("H100", ANY_STACK)]
    assert (every.runs, every.moe_runs, every.largest_run_gpus) == (3, 1, 2048)
    assert (h.largest_batch_tokens, every.largest_batch_tokens) == (2**22, 2**22)
    assert rows[("A100", "s1")].largest_batch_tokens == 2**19  # e has no prediction: not counted
    assert every.median_abs_error == pytest.approx(0.10)
    assert every.mean_signed_error == pytest.approx((0.10 - 0.20 + 0.05) / 3, abs=1e-4)
    assert every.run_ids == "a;b;c"
    assert rows[("A100", "s1")].runs == 1 and rows[("A100", "s1")].run_ids == "d"
    assert rows[("A100", "s1")].chips == "a100-80gb-sxm" and every.chips == "h100-sxm"
    # the file's text reads back as the same rows
    text = evidence_csv(rows.values())
    assert text.splitlines()[0].startswith("chip_family,software,runs,")
    assert len(text.splitlines()) == 1 + len(rows)


def test_an_estimate_rests_on_the_runs_of_its_chip_and_stack():
    est = estimate(load_spec({"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 64},
                              "training": {"global_batch": 256}}))
    ev = est.validation_evidence
    row = evidence_table()[("H100", est.software)]
    assert ev["basis"] == f"H100 on {est.software}" and ev["runs"] == row.runs >= 10
    assert ev["median_abs_error"] == row.median_abs_error and ev["max_abs_error"] == row.max_abs_error
    assert ev["caveats"] == []  # dense, bf16, 64 GPUs, 2M tokens a step: inside what the runs cover
    assert (est.global_batch, est.seq_len, est.global_batch_tokens) == (256, 8192, 256 * 8192)
    assert "MCORE24-WEAK-01" in ev["run_ids"]
    # NeMo's performance-table rows ran NeMo's recipes: their own group, not Megatron-Core's
    assert "NEMO2407-LLAMA3-8B-8" not in ev["run_ids"]
    nemo = estimate(load_spec({"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 8},
                               "training": {"global_batch": 128, "software": "nemo-2024"}}))
    assert "NEMO2407-LLAMA3-8B-8" in nemo.validation_evidence["run_ids"]


def test_an_estimate_says_where_it_reaches_past_its_runs():
    h100 = evidence_table()[("H100", ANY_STACK)]
    ev = validation_evidence("h100-sxm", "megatron-core-2024", 4 * h100.largest_run_gpus, "bf16", moe=True,
                             custom_profile=True)
    text = " | ".join(ev["caveats"])
    assert "mixture-of-experts" in text and f"{4 * h100.largest_run_gpus:,} GPUs" in text
    assert "calibration profile" in text
    # another part of the family: the H100 runs all ran on the SXM part
    assert validation_evidence("h100-pcie", "megatron-core-2024", 8, "bf16", moe=False)["caveats"] == [
        "these runs ran on h100-sxm, not on h100-pcie"]
    # a stack no run used falls back to the family, and says so
    ev = validation_evidence("a100-80gb-sxm", "torchtitan-2024", 8, "bf16", moe=False)
    assert ev["basis"] == "A100, any software stack" and ev["runs"] == evidence_table()[("A100", ANY_STACK)].runs
    assert "torchtitan-2024" in ev["caveats"][0]
    # no A100 run trains in fp8
    assert any("fp8" in c for c in validation_evidence("a100-80gb-sxm", "megatron-lm-2022", 8, "fp8",
                                                       moe=False)["caveats"])
    # a batch beyond every run's: the time to train extrapolates in batch as well
    mcore = evidence_table()[("H100", "megatron-core-2024")]
    big = 3 * mcore.largest_batch_tokens
    ev = validation_evidence("h100-sxm", "megatron-core-2024", 64, "bf16", moe=False, batch_tokens=big)
    assert ev["caveats"] == [f"a batch of {big / 1e6:,.1f}M tokens is 3.0x the largest of these runs' "
                             f"({mcore.largest_batch_tokens / 1e6:,.1f}M); the time to train counts tokens, "
                             "not whether a batch this large trains as well"]
    assert validation_evidence("h100-sxm", "megatron-core-2024", 64, "bf16", moe=False,
                               batch_tokens=mcore.largest_batch_tokens)["caveats"] == []
    # a chip no published run covers: nothing to rest on
    ev = validation_evidence("mi300x", "megatron-core-2024", 64, "bf16", moe=False)
    assert ev["runs"] == 0 and ev["basis"] is None and "mi300x" in ev["caveats"][0]


def test_cli_estimate_prints_and_emits_its_evidence(cli, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("model: llama3-8b\nhardware: {gpu: mi300x, count: 64}\ntraining: {global_batch: 256}\n")
    code, out, _ = cli("train", "estimate", str(spec))
    assert code == 0 and "no published measured run on mi300x" in " ".join(out.split())
    spec.write_text("model: llama3-8b\nhardware: {gpu: h100-sxm, count: 64}\ntraining: {global_batch: 256}\n")
    code, out, _ = cli("train", "estimate", str(spec), "--json")
    ev = json.loads(out)["validation_evidence"]
    assert code == 0 and ev["runs"] >= 10 and ev["basis"].startswith("H100 on ")
    code, out, _ = cli("train", "search", str(spec), "--top", "2")
    assert code == 0 and f"checked against {ev['runs']} published runs" in out


def test_an_evidence_file_missing_or_of_other_columns_never_fails_an_estimate(tmp_path, monkeypatch):
    # the validation that rewrites the file runs estimates: a stale file must not stop it
    import colossim.training.evidence as E

    stale = tmp_path / "training_evidence.csv"
    stale.write_text("chip_family,software,runs\nH100,*,3\n")
    spec = load_spec({"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 8},
                      "training": {"global_batch": 64}})
    try:
        for path in (stale, tmp_path / "missing.csv"):
            monkeypatch.setattr(E, "data_path", lambda name, p=path: p)
            E.evidence_table.cache_clear()
            assert E.evidence_table() == {}
            assert estimate(spec).validation_evidence["runs"] == 0
    finally:
        monkeypatch.undo()
        E.evidence_table.cache_clear()
    assert estimate(spec).validation_evidence["runs"] > 0
