"""``colossim train`` and the training x reliability composition, end to end."""

from __future__ import annotations

import json

import yaml

SPEC = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 64},
        "parallelism": {"tp": 1, "pp": 1, "cp": 1, "dp": 64, "micro_batch": 1, "zero": 1},
        "training": {"global_batch": 256, "tokens": 1e12}}
REQUIRED = {"step_time_s", "tokens_per_s", "tokens_per_s_per_gpu", "model_flops_per_token", "mfu",
            "mfu_by_convention", "hfu", "tflops_per_gpu", "memory_gib_per_gpu", "memory_breakdown_gib",
            "fits", "time_breakdown_s", "parallelism", "time_to_train_days", "gpu_hours", "energy_mwh",
            "cost_usd", "time_to_train_days_with_failures", "ettr"}


def test_estimate_json_from_stdin_has_every_field(cli):
    code, out, err = cli("train", "estimate", "-", "--json", input=yaml.safe_dump(SPEC))
    assert code == 0, err
    est = json.loads(out)
    assert REQUIRED <= set(est)
    assert set(est["mfu_by_convention"]) == {"megatron", "palm", "6nd"}
    assert set(est["memory_breakdown_gib"]) == {"weights", "gradients", "optimizer", "activations", "buffers"}
    for k in ("compute", "tp_comm", "cp_comm", "ep_comm", "pp_comm", "dp_comm", "pipeline_bubble", "optimizer_step"):
        assert k in est["time_breakdown_s"]
    assert est["time_to_train_days_with_failures"] > est["time_to_train_days"]
    assert 0.5 < est["ettr"] < 1.0


def test_search_json_and_table(cli, tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({**SPEC, "parallelism": {}}))
    code, out, _ = cli("train", "search", str(p), "--top", "3", "--json")
    assert code == 0
    res = json.loads(out)
    assert len(res["results"]) == 3 and res["configs_evaluated"] > 100 and res["configs_per_s"] > 0
    code, out, _ = cli("train", "search", str(p), "--top", "2")
    assert code == 0 and "configs/s" in out
    assert " etp " not in out  # a dense model's table has no expert-tp column


def test_the_estimate_table_says_how_a_run_fine_tunes(cli):
    spec = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 1},
            "training": {"global_batch": 8, "seq_len": 4096, "lora_rank": 16, "lora_targets": ["linear_qkv"],
                         "lora_base_precision": "nf4", "document_tokens": 1024}}
    code, out, err = cli("train", "estimate", "-", input=yaml.safe_dump(spec))
    assert code == 0, err
    assert "rank 16 on linear_qkv: 5.24 M trained weights (QLoRA: base weights in NF4)" in " ".join(out.split())
    assert "1,024 tokens each" in out
    plain = {"global_batch": 8, "seq_len": 4096, "lora_rank": 16}
    code, out, err = cli("train", "estimate", "-", input=yaml.safe_dump({**spec, "training": plain}))
    assert code == 0, err
    assert "trained weights" in out and "QLoRA" not in out and "packed documents" not in out


def test_the_estimate_table_names_a_hybrids_layers(cli):
    spec = {"model": "qwen3-next-80b-a3b", "hardware": {"gpu": "h100-sxm", "count": 64},
            "training": {"global_batch": 256}}
    code, out, err = cli("train", "estimate", "-", input=yaml.safe_dump(spec))
    assert code == 0, err
    assert "36 Gated DeltaNet, 12 attention, 48 MoE" in " ".join(out.split())
    code, out, err = cli("train", "estimate", "-", input=yaml.safe_dump({**spec, "model": "llama3-8b"}))
    assert code == 0, err
    assert "hybrid layers" not in out


def test_search_table_shows_expert_tp_where_the_experts_have_their_own(cli):
    spec = {"model": "mixtral-8x7b", "hardware": {"gpu": "h100-sxm", "count": 64},
            "parallelism": {"tp": 2, "pp": 4, "ep": 8, "etp": 1}, "training": {"global_batch": 256}}
    code, out, err = cli("train", "search", "-", "--top", "2", input=yaml.safe_dump(spec))
    assert code == 0, err
    header = next(line for line in out.splitlines() if "tok/s/GPU" in line)
    assert " etp " in header


def test_bad_specs_are_one_line_exit_2(cli):
    for bad in ({**SPEC, "parallelism": {"tpp": 2}}, {**SPEC, "parallelism": {"tp": 3}},
                {**SPEC, "model": "llama9"}, {**SPEC, "training": {**SPEC["training"], "software": "jax-0.1"}}):
        code, _, err = cli("train", "estimate", "-", input=yaml.safe_dump(bad))
        assert code == 2 and err.strip().count("\n") == 0, err
    code, _, err = cli("train", "estimate", "-", input=yaml.safe_dump({**SPEC, "parallelism": {"tpp": 2}}))
    assert "parallelism.tpp" in err
    code, _, err = cli("train", "estimate", "-", input=yaml.safe_dump(
        {**SPEC, "training": {**SPEC["training"], "software": "jax-0.1"}}))
    assert "training.software" in err and "megatron-core-2024" in err


def test_a_plan_space_left_empty_names_what_was_fixed_and_the_rules(cli):
    # 24 GPUs at tp 2 leave dp 12, which no micro-batch fits into a 100-sequence batch
    spec = {"model": "llama2-7b", "hardware": {"gpu": "h100-sxm", "count": 24},
            "parallelism": {"tp": 2, "pp": 1}, "training": {"global_batch": 100}}
    code, _, err = cli("train", "estimate", "-", input=yaml.safe_dump(spec))
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "GPUs 24, global_batch 100" in err and "(fixed: tp 2, pp 1)" in err
    assert "dp x micro_batch must divide global_batch" in err
    spec["training"]["global_batch"] = 96  # 12 x 8: now there are plans
    code, _, err = cli("train", "estimate", "-", input=yaml.safe_dump(spec))
    assert code == 0, err


def test_estimate_reports_the_software_stack(cli):
    code, out, err = cli("train", "estimate", "-", "--json", input=yaml.safe_dump(SPEC))
    assert code == 0, err
    assert json.loads(out)["software"] == "megatron-core-2024"  # the H100's default
    a100 = {**SPEC, "hardware": {"gpu": "a100-80gb-sxm", "count": 64}}
    code, out, err = cli("train", "estimate", "-", input=yaml.safe_dump(a100))
    assert code == 0, err
    assert "megatron-lm-2021" in out


def test_reliability_from_a_training_spec(cli):
    doc = {**SPEC, "reliability": {"failure_rate_source": "llama3", "duration_days": 10, "trials": 200}}
    code, out, err = cli("reliability", "-", "--json", input=yaml.safe_dump(doc))
    assert code == 0, err
    r = json.loads(out)
    assert r["useful_hours"] == 240
    assert 0.5 < r["ettr"] <= 1.0 and r["checkpoint_seconds"] > 0 and r["mttf_hours"] > 0


def test_a_spec_takes_its_model_from_a_hugging_face_config_beside_it(cli, tmp_path, monkeypatch):
    from pathlib import Path

    hf = Path(__file__).resolve().parents[1] / "data" / "hf" / "llama3-8b.json"
    (tmp_path / "run" / "ckpt").mkdir(parents=True)
    (tmp_path / "run" / "ckpt" / "config.json").write_text(hf.read_text())
    spec = tmp_path / "run" / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "model": "ckpt"}))
    monkeypatch.chdir(tmp_path)  # the config is found beside the spec, not in the working directory
    code, out, err = cli("train", "estimate", str(spec), "--json")
    assert code == 0, err
    code_ref, out_ref, _ = cli("train", "estimate", "-", "--json", input=yaml.safe_dump(SPEC))
    # Llama 3 8B's own config.json is the catalog's llama3-8b: the same prediction
    assert json.loads(out)["tokens_per_s_per_gpu"] == json.loads(out_ref)["tokens_per_s_per_gpu"]
    spec.write_text(yaml.safe_dump({**SPEC, "model": {"hf_config": "elsewhere/config.json"}}))
    code, out, err = cli("train", "estimate", str(spec))
    assert code == 2
    assert "config file" in err and "elsewhere/config.json' not found" in err
    assert len(err.strip().splitlines()) == 1


def test_search_writes_a_chart_of_the_plans_it_priced(cli, tmp_path):
    page = tmp_path / "search.html"
    code, out, err = cli("train", "search", "-", "--top", "3", "--html", str(page),
                         input=yaml.safe_dump({**SPEC, "parallelism": {}}))
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "plotly" in html
    assert "every plan priced" in html and "best 3" in html and "time per step of the best plans" in html
    assert f"chart written to {page}" in out.replace("\n", "")
    # with --json the chart is still written and stdout stays one JSON document
    code, out, err = cli("train", "search", "-", "--top", "2", "--json", "--html", str(page),
                         input=yaml.safe_dump({**SPEC, "parallelism": {}}))
    assert code == 0 and len(json.loads(out)["results"]) == 2


def test_a_chart_that_cannot_be_written_is_one_line_exit_2(cli, tmp_path):
    code, out, err = cli("train", "search", "-", "--html", str(tmp_path / "absent" / "s.html"),
                         input=yaml.safe_dump(SPEC))
    msg = (out + err).strip()
    assert code == 2 and len(msg.splitlines()) == 1 and "Traceback" not in msg, msg
    assert "cannot write" in msg and "absent" in msg


def test_the_table_names_the_dtype_the_gradients_and_weights_are_held_in(cli):
    """Megatron-Core's stack holds ZeRO-1 gradients in its fp32 buffer, NeMo's recipes in bf16 with
    the layers' weights as fp8 parameters, ZeRO-3 in bf16; the JSON's plan says which."""
    def show(parallelism, training):
        spec = {**SPEC, "parallelism": {**SPEC["parallelism"], **parallelism},
                "training": {**SPEC["training"], **training}}
        code, table, err = cli("train", "estimate", "-", input=yaml.safe_dump(spec))
        assert code == 0, err
        code, out, _ = cli("train", "estimate", "-", "--json", input=yaml.safe_dump(spec))
        return table, json.loads(out)["parallelism"]

    table, plan = show({}, {})
    assert "gradients (fp32)" in table and "weights (layers in fp8)" not in table
    assert (plan["grad_reduce_dtype"], plan["fp8_param_gather"]) == ("fp32", False)
    table, plan = show({}, {"software": "nemo-2024", "precision": "fp8"})
    assert "gradients (bf16)" in table and "weights (layers in fp8)" in table
    assert (plan["grad_reduce_dtype"], plan["fp8_param_gather"]) == ("bf16", True)
    table, _ = show({"zero": 3}, {})
    assert "gradients (bf16)" in table and "gradients (fp32)" not in table
