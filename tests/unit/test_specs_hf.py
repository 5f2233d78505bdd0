"""Import of Hugging Face config.json files.  The fixtures in tests/data/hf/ are hand-written copies
of the published configs' architecture keys (meta-llama/Meta-Llama-3-8B, mistralai/Mixtral-8x7B-v0.1,
Qwen/Qwen2.5-72B, deepseek-ai/DeepSeek-V3, Qwen/Qwen3-30B-A3B, microsoft/Phi-3-medium-4k-instruct,
google/gemma-2-27b, google/gemma-7b, tiiuae/falcon-180B, EleutherAI/gpt-neox-20b, tiiuae/falcon-7b
in its first release's key names, meta-llama/Llama-4-Maverick-17B-128E / Llama-4-Scout-17B-16E
written from the catalog rows' sources, and openai/gpt-oss-120b written from transformers 5.24.0's
GptOssConfig defaults with the released config's other keys as recalled) plus some keys colossim
ignores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from colossim.errors import SpecError
from colossim.specs.hf_import import load_hf_config
from colossim.specs.model import resolve_model

HF = Path(__file__).parent.parent / "data" / "hf"


@pytest.mark.parametrize("fixture, catalog_id", [("llama3-8b", "llama3-8b"), ("mixtral-8x7b", "mixtral-8x7b"),
                                                 ("qwen2.5-72b", "qwen2.5-72b"), ("deepseek-v3", "deepseek-v3"),
                                                 ("qwen3-30b-a3b", "qwen3-30b-a3b"),
                                                 ("phi-3-medium", "phi-3-medium"), ("gemma-7b", "gemma-7b"),
                                                 ("falcon-180b", "falcon-180b"),
                                                 ("falcon-7b-refinedweb", "falcon-7b"),
                                                 ("gpt-neox-20b", "gpt-neox-20b"),
                                                 ("llama4-maverick", "llama4-maverick"),
                                                 ("llama4-scout", "llama4-scout"),
                                                 ("gpt-oss-120b", "gpt-oss-120b"),
                                                 ("gemma-3-27b-it", "gemma3-27b")])
def test_import_matches_catalog_parameter_counts(fixture, catalog_id):
    m, ref = load_hf_config(HF / f"{fixture}.json"), resolve_model(catalog_id)
    assert m.params_total == ref.params_total
    assert m.params_active == ref.params_active


def test_falcon_and_neox_are_parallel_blocks_with_their_own_norms_and_plain_gelu():
    neox = load_hf_config(HF / "gpt-neox-20b.json")
    assert (neox.activation.value, neox.norm, neox.parallel_block, neox.norms_per_layer) == (
        "gelu", "layernorm", True, 2)
    # two LayerNorms (weight and bias) per layer: the published 20,554,567,680 to the parameter
    assert neox.params_total == 20_554_567_680
    f7 = load_hf_config(HF / "falcon-7b-refinedweb.json")  # n_layer / n_head, multi-query, no context key
    assert (f7.layers, f7.heads, f7.kv_heads, f7.norms_per_layer, f7.seq_len, f7.tied_embeddings) == (
        32, 71, 1, 1, 2048, True)
    f180 = load_hf_config(HF / "falcon-180b.json")  # the new decoder architecture: 8 KV groups, 2 norms
    assert (f180.kv_heads, f180.norms_per_layer, f180.ffn_hidden) == (8, 2, 4 * 14848)


def test_the_first_falcon_model_types_read_as_falcon(tmp_path):
    # Falcon-40B's first config.json: model_type "RefinedWeb", the new decoder layout with n_head_kv
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "RefinedWeb", "hidden_size": 8192, "n_head": 128, "n_head_kv": 8, "n_layer": 60,
        "parallel_attn": True, "bias": False, "vocab_size": 65024}))
    m = load_hf_config(tmp_path)
    assert m.params_total == resolve_model("falcon-40b").params_total and m.kv_heads == 8
    old7b = {**json.loads((HF / "falcon-7b-refinedweb.json").read_text()), "model_type": "RefinedWebModel"}
    (tmp_path / "config.json").write_text(json.dumps(old7b))
    assert load_hf_config(tmp_path).params_total == resolve_model("falcon-7b").params_total


def test_gemma_reads_gelu_as_gated_and_ties_its_head_by_default():
    g = load_hf_config(HF / "gemma-7b.json")
    assert (g.activation.value, g.tied_embeddings, g.head_dim, g.norm) == ("geglu", True, 256, "rmsnorm")


def test_deepseek_is_mla_with_dense_first_layers():
    m = load_hf_config(HF / "deepseek-v3.json")
    assert (m.attention, m.first_dense_layers, m.shared_experts, m.top_k) == ("mla", 3, 1, 8)
    assert m.mtp_modules == 1  # num_nextn_predict_layers


def test_deepseek_group_limited_routing_is_read_only_where_the_method_limits_groups(tmp_path):
    m = load_hf_config(HF / "deepseek-v3.json")  # noaux_tc: 8 groups, 4 per token (node-limited)
    assert (m.routing_groups, m.routing_groups_per_token, m.routing_limited) == (8, 4, True)
    cfg = json.loads((HF / "deepseek-v3.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "topk_method": "greedy"}))
    assert not load_hf_config(tmp_path).routing_limited  # DeepSeek-V2-Lite's plain top-k


def test_missing_required_key_is_named():
    with pytest.raises(SpecError, match="missing required key 'intermediate_size'"):
        load_hf_config(HF / "broken-llama.json")


LLAMA3_8B = json.loads((HF / "llama3-8b.json").read_text())


@pytest.mark.parametrize("key, value", [
    ("num_hidden_layers", True), ("num_hidden_layers", "32"), ("num_hidden_layers", 32.5), ("hidden_size", [4096]),
    ("num_key_value_heads", 0), ("head_dim", 0), ("max_position_embeddings", True), ("vocab_size", -5),
    ("tie_word_embeddings", "false"), ("attention_bias", 1), ("hidden_act", ["silu"]), ("model_type", ["llama"]),
    ("layer_types", "sliding_attention"), ("sliding_window", "4096"),
])
def test_a_value_of_the_wrong_kind_is_refused_naming_its_key(tmp_path, key, value):
    # "false" used to tie the head (bool("false")), true layers to be one layer, 0 KV heads to be one
    # per head: each changed the model without a word
    (tmp_path / "config.json").write_text(json.dumps({**LLAMA3_8B, key: value}))
    with pytest.raises(SpecError, match=f"{key} = .*: allowed: ") as e:
        load_hf_config(tmp_path)
    assert e.value.field == key and "\n" not in str(e.value)


@pytest.mark.parametrize("cfg, key", [
    ({**json.loads((HF / "deepseek-v3.json").read_text()), "n_group": "8"}, "n_group"),
    ({**json.loads((HF / "qwen3-30b-a3b.json").read_text()), "moe_intermediate_size": 0}, "moe_intermediate_size"),
    ({"model_type": "falcon", "hidden_size": "4544", "n_head": 71, "n_layer": 32, "vocab_size": 65024},
     "hidden_size"),
])
def test_wrong_kinds_the_import_computes_with_are_refused_before_use(tmp_path, cfg, key):
    # these were tracebacks (TypeError, ZeroDivisionError) or Falcon's "4544" * 4 read as a width
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match=f"{key} = ") as e:
        load_hf_config(tmp_path)
    assert e.value.field == key


def test_every_missing_required_key_is_named_in_one_error(tmp_path):
    cfg = {k: v for k, v in LLAMA3_8B.items() if k not in ("num_hidden_layers", "vocab_size", "intermediate_size")}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match="missing required keys 'num_hidden_layers', 'vocab_size', "
                                        "'intermediate_size' for model_type 'llama'"):
        load_hf_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in LLAMA3_8B.items() if k != "model_type"}))
    with pytest.raises(SpecError, match="missing required key 'model_type': allowed: llama, "):
        load_hf_config(tmp_path)


def test_deepseek_moe_layer_frequency_sets_the_count_of_expert_layers(tmp_path):
    # transformers' DeepseekV3: layer i has experts when i >= first_k_dense_replace and i % moe_layer_freq == 0
    cfg = json.loads((HF / "deepseek-v3.json").read_text())
    for freq in (1, 2, 3):
        (tmp_path / "config.json").write_text(json.dumps({**cfg, "moe_layer_freq": freq}))
        m = load_hf_config(tmp_path)
        k, n = cfg["first_k_dense_replace"], cfg["num_hidden_layers"]
        assert m.moe_layers == sum(1 for i in range(k, n) if i % freq == 0)
    assert load_hf_config(HF / "deepseek-v3.json").moe_layers == 58  # 61 layers, the first 3 dense


def test_unsupported_model_type(tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{"model_type": "gpt2"}')
    with pytest.raises(SpecError, match="model_type 'gpt2' is not supported"):
        load_hf_config(tmp_path)


# --- a spec names a config.json: as its model string, or as model.hf_config with overrides ---------

from colossim.specs.serving import load_serving_spec  # noqa: E402
from colossim.specs.training import load_spec  # noqa: E402
from colossim.training.estimate import estimate  # noqa: E402

HW = {"gpu": "h100-sxm", "count": 8}
TRAIN = {"global_batch": 64, "precision": "bf16"}


def _checkpoint(folder: Path) -> Path:
    """A checkpoint folder holding Llama 3 8B's config.json."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text((HF / "llama3-8b.json").read_text())
    return folder


def _spec_file(folder: Path, model) -> Path:
    p = folder / "spec.json"
    p.write_text(json.dumps({"model": model, "hardware": HW, "training": TRAIN}))
    return p


@pytest.mark.parametrize("model", ["ckpt", "ckpt/config.json", {"hf_config": "ckpt"}])
def test_a_spec_file_names_a_config_beside_it_from_any_working_directory(tmp_path, monkeypatch, model):
    _checkpoint(tmp_path / "run" / "ckpt")
    spec_path = _spec_file(tmp_path / "run", model)
    monkeypatch.chdir(tmp_path)  # not the spec's folder: the path is the spec file's
    spec = load_spec(str(spec_path))
    ref = load_spec({"model": "llama3-8b", "hardware": HW, "training": TRAIN})
    assert spec.model.params_total == ref.model.params_total
    # the same architecture, so the same prediction as the catalog model's
    assert estimate(spec).tokens_per_s_per_gpu == pytest.approx(estimate(ref).tokens_per_s_per_gpu, rel=1e-12)


def test_the_other_keys_of_an_hf_config_mapping_override_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _checkpoint(tmp_path / "ckpt")
    spec = load_spec({"model": {"hf_config": "ckpt", "seq_len": 2048, "name": "my-llama"},
                      "hardware": HW, "training": TRAIN})
    assert (spec.model.seq_len, spec.model.name, spec.model.layers, spec.model.kv_heads) == (2048, "my-llama", 32, 8)


def test_a_serving_spec_names_a_config_too(tmp_path, monkeypatch):
    _checkpoint(tmp_path / "ckpt")
    p = tmp_path / "serve.json"
    p.write_text(json.dumps({"model": "ckpt", "hardware": {"gpu": "h100-sxm", "count": 1},
                             "serving": {"input_tokens": 512, "output_tokens": 128}}))
    monkeypatch.chdir(Path(__file__).parent)
    assert load_serving_spec(str(p)).model.params_total == resolve_model("llama3-8b").params_total


def test_a_catalog_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = _checkpoint(tmp_path / "llama2-7b")  # holds Llama 3 8B's config, named like a catalog model
    assert (folder / "config.json").is_file()
    assert resolve_model("llama2-7b").vocab == 32000  # the catalog's Llama 2, not the folder's 128,256


def test_a_checkpoint_path_reads_its_own_config_even_when_named_like_a_catalog_model(tmp_path, monkeypatch):
    # a downloaded checkpoint sits in a folder named after its repo; a path to it (with a separator,
    # or written as a path) is that config, here cut to 16 layers, not the catalog's Llama 3.1 8B
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "ckpt" / "Llama-3.1-8B"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**LLAMA3_8B, "num_hidden_layers": 16}))
    for name in (str(folder), "ckpt/Llama-3.1-8B", "./ckpt/Llama-3.1-8B/"):
        assert resolve_model(name).layers == 16, name
    assert resolve_model("meta-llama/Llama-3.1-8B").layers == 32  # a repo id with no such folder: the catalog's
    (tmp_path / "empty").mkdir()
    for name in ("empty", "./empty", str(tmp_path / "empty")):
        with pytest.raises(SpecError, match="config file '.*empty/config.json' not found: allowed: a catalog model"):
            resolve_model(name)


@pytest.mark.parametrize("model, message", [
    ("missing.json", "config file '.*missing.json' not found"),
    ({"hf_config": 3}, "model.hf_config must be the path of a config.json or of its folder, got 3"),
    ({"hf_config": "ckpt", "layerz": 2}, "unknown field 'model.layerz'"),
])
def test_a_bad_config_reference_is_one_line_naming_it(tmp_path, monkeypatch, model, message):
    monkeypatch.chdir(tmp_path)
    _checkpoint(tmp_path / "ckpt")
    with pytest.raises(SpecError, match=message) as e:
        load_spec({"model": model, "hardware": HW, "training": TRAIN})
    assert "\n" not in str(e.value)


def test_gemma2_reads_its_own_activation_key_and_ties_its_head_by_default():
    m, ref = load_hf_config(HF / "gemma2-27b.json"), resolve_model("gemma2-27b")
    assert (m.activation.value, m.tied_embeddings, m.head_dim) == ("geglu", True, 128)
    # the config's 256,000-token table against the paper's 256,128; everything else is the catalog's,
    # and Gemma Team 2024 Table 2's 26,047,480,320 non-embedding parameters exactly, its four norms a
    # layer counted (post_norms)
    assert m.post_norms and not m.qk_norm and m.norms_per_layer == 4
    assert m.params_total - m.params_embedding == ref.params_total - ref.params_embedding
    assert m.params_total - m.params_embedding == 26_047_480_320
    # every other layer from the first attends a 4,096-token window, as the catalog row says
    assert (m.sliding_window, m.windowed_layers) == (ref.sliding_window, ref.windowed_layers) == (4096, 23)


def test_llama4_reads_its_text_config_with_interleaved_moe_layers_at_its_training_length():
    mav, scout = load_hf_config(HF / "llama4-maverick.json"), load_hf_config(HF / "llama4-scout.json")
    assert (mav.moe_layer_interval, mav.moe_layers, mav.dense_layers, mav.ffn_hidden) == (2, 24, 24, 16384)
    assert (scout.moe_layer_interval, scout.moe_layers, scout.dense_layers) == (1, 48, 0)
    for m in (mav, scout):
        assert (m.shared_experts, m.top_k, m.moe_ffn_hidden, m.seq_len) == (1, 1, 8192, 8192)
    assert (mav.max_seq_len, scout.max_seq_len) == (1048576, 10485760)
    # Meta's announced counts: 17B active for both, 400B and 109B total (Scout's with its vision encoder)
    assert mav.params_total == pytest.approx(400e9, rel=0.01) and scout.params_total == pytest.approx(109e9, rel=0.02)
    assert mav.params_active == pytest.approx(17e9, rel=0.02) == scout.params_active
    # three layers in four attend 8,192-token chunks, the fourth is global (transformers' layer types)
    assert (mav.attention_chunk, mav.chunked_layers, scout.chunked_layers) == (8192, 36, 36)


def test_gemma3_reads_its_text_config_with_five_windowed_layers_in_six(tmp_path):
    # the released vision-language config: its text_config leaves vocab and the window pattern to the class
    m = load_hf_config(HF / "gemma-3-27b-it.json")
    ref = resolve_model("gemma3-27b")
    assert (m.params_total, m.vocab, m.tied_embeddings, m.activation.value) == (ref.params_total, 262208, True, "geglu")
    assert (m.sliding_window, m.windowed_layers, m.seq_len, m.max_seq_len) == (1024, 52, 8192, 131072)
    # Gemma 3 Technical Report Table 1: 25,600M non-embedding parameters
    assert (m.params_total - m.params_embedding) / 1e6 == pytest.approx(25600, abs=1.5)
    # gemma3_text with layer_types (the 1B checkpoint's shape), and a window pattern of 3
    text = {"model_type": "gemma3_text", "hidden_size": 1152, "intermediate_size": 6912, "num_hidden_layers": 26,
            "num_attention_heads": 4, "num_key_value_heads": 1, "vocab_size": 262144, "sliding_window": 512,
            "max_position_embeddings": 32768,
            "layer_types": ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(26)]}
    (tmp_path / "config.json").write_text(json.dumps(text))
    one = load_hf_config(tmp_path)
    assert (one.params_total, one.windowed_layers) == (resolve_model("gemma3-1b").params_total, 22)
    (tmp_path / "config.json").write_text(json.dumps({**text, "layer_types": None, "sliding_window_pattern": 3}))
    assert load_hf_config(tmp_path).windowed_layers == 26 - 8


@pytest.mark.parametrize("extra, chunked", [
    ({"layer_types": ["chunked_attention"] * 40 + ["full_attention"] * 8}, 40),
    ({"no_rope_layers": [1, 0] * 24}, 24),
    ({"no_rope_layer_interval": 2}, 24),
    ({"attention_chunk_size": None}, 0),
])
def test_llama4_chunked_layers_follow_the_config(tmp_path, extra, chunked):
    cfg = json.loads((HF / "llama4-maverick.json").read_text())
    cfg["text_config"].update(extra)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert load_hf_config(tmp_path).chunked_layers == chunked


def test_gpt_oss_is_moe_in_every_layer_with_biases_a_window_every_other_layer_and_its_yarn_base_length(tmp_path):
    m = load_hf_config(HF / "gpt-oss-120b.json")
    assert (m.experts, m.top_k, m.moe_ffn_hidden, m.ffn_hidden, m.moe_layers) == (128, 4, 2880, None, 36)
    assert (m.bias, m.qkv_bias, m.head_dim, m.kv_heads) == (True, False, 64, 8)
    assert (m.sliding_window, m.windowed_layers, m.seq_len, m.max_seq_len) == (128, 18, 4096, 131072)
    # OpenAI's model card: 116.83B in total (its 5.13B active leaves out the input embedding)
    assert m.params_total / 1e9 == pytest.approx(116.83, abs=0.005)
    assert (m.params_active - m.vocab * m.hidden) / 1e9 == pytest.approx(5.13, abs=0.005)
    # without layer_types, a window or the rope's base length, the family's defaults: the same model
    cfg = json.loads((HF / "gpt-oss-120b.json").read_text())
    for key in ("layer_types", "sliding_window", "rope_scaling"):
        cfg.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    bare = load_hf_config(tmp_path)
    assert (bare.sliding_window, bare.windowed_layers, bare.seq_len, bare.params_total) == (
        128, 18, 4096, m.params_total)
    # gpt-oss-20b: 24 layers of 32 experts, 20.91B
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 24, "num_local_experts": 32}))
    small = load_hf_config(tmp_path)
    assert small.params_total == resolve_model("gpt-oss-20b").params_total
    assert (small.windowed_layers, small.params_total / 1e9) == (12, pytest.approx(20.91, abs=0.005))


@pytest.mark.parametrize("value", [0, "2", 1.5, True])
def test_a_llama4_interleave_step_that_is_no_whole_number_is_named(tmp_path, value):
    cfg = json.loads((HF / "llama4-maverick.json").read_text())
    cfg["text_config"]["interleave_moe_layer_step"] = value
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match=r"interleave_moe_layer_step = .*: allowed: a whole number >= 1") as e:
        load_hf_config(tmp_path)
    assert "\n" not in str(e.value)


def test_llama4_moe_layers_other_than_every_step_th_are_named(tmp_path):
    cfg = json.loads((HF / "llama4-maverick.json").read_text())
    cfg["text_config"]["moe_layers"] = [0, 5, 9]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match=r"moe_layers = \[0, 5, 9\]: only every interleave_moe_layer_step-th"):
        load_hf_config(tmp_path)


def _qwen15_moe() -> dict:
    """Qwen/Qwen1.5-MoE-A2.7B's config.json architecture keys (model card: 14.3B parameters, 2.7B
    activated; 60 experts of 1408, top-4, one shared expert of 5632 = 4 x 1408)."""
    return {"model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632, "num_attention_heads": 16,
            "num_key_value_heads": 16, "num_hidden_layers": 24, "vocab_size": 151936,
            "max_position_embeddings": 8192, "hidden_act": "silu", "num_experts": 60, "num_experts_per_tok": 4,
            "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632, "decoder_sparse_step": 1,
            "tie_word_embeddings": False}


def test_qwen2_moe_takes_its_shared_expert_as_whole_routed_width_experts(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(_qwen15_moe()))
    m = load_hf_config(tmp_path)
    assert (m.experts, m.top_k, m.moe_ffn_hidden, m.shared_experts, m.qkv_bias) == (60, 4, 1408, 4, True)
    assert m.params_total == pytest.approx(14.3e9, rel=0.01)
    assert m.params_active == pytest.approx(2.7e9, rel=0.01)


def test_qwen_moe_layers_every_decoder_sparse_step_th_layer_leave_the_others_dense(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**_qwen15_moe(), "decoder_sparse_step": 2}))
    m = load_hf_config(tmp_path)
    assert (m.moe_layer_interval, m.moe_layers, m.dense_layers, m.ffn_hidden) == (2, 12, 12, 5632)


@pytest.mark.parametrize("key, value", [("decoder_sparse_step", 0), ("mlp_only_layers", [0, 1]),
                                        ("shared_expert_intermediate_size", 5000)])
def test_a_qwen_moe_layout_the_engine_cannot_hold_is_named(tmp_path, key, value):
    (tmp_path / "config.json").write_text(json.dumps({**_qwen15_moe(), key: value}))
    with pytest.raises(SpecError, match=key):
        load_hf_config(tmp_path)
