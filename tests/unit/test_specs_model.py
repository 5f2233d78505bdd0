"""Model catalog and ModelSpec: every catalog model's implied parameter count against the published
one, resolution by id / alias / mapping, and errors."""

from __future__ import annotations

import pytest

from colossim.errors import SpecError, UnknownNameError
from colossim.specs.model import ModelSpec, load_model_catalog, resolve_model

REQUIRED = ["gpt3-175b", "llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b", "llama3-70b",
            "llama3-405b", "llama3.1-8b", "llama3.1-70b", "llama3.1-405b", "llama3.3-70b",
            "mixtral-8x7b", "mixtral-8x22b", "deepseek-v2", "deepseek-v3", "grok-1", "gpt-moe-1.8t",
            "nemotron4-15b", "nemotron4-340b", "bloom-176b", "opt-175b", "mt-nlg-530b",
            "megatron-1.7b", "megatron-18.4b", "megatron-145.6b", "megatron-1t", "megatron-22b",
            "megatron-175b", "megatron-530b", "mpt-7b", "mpt-30b", "mpt-70b"]

TOLERANCE = 0.03
#: Rows whose published count is a rounded name, with the implied count explained in their notes.
EXCEPTIONS = {
    "llama2-7b": 0.04,     # 6.74B implied; Meta names it 7B
    "gpt-moe-1.8t": 0.05,  # UNCERTAIN architecture (see the row's notes): 1.87T implied vs "1.8T"
    "falcon-40b": 0.04,    # 41.3B implied; TII names it 40B
}
#: Rows whose published active count leaves out what the engine counts, explained in their notes.
ACTIVE_EXCEPTIONS = {
    "deepseek-v2-lite": 0.12,  # DeepSeek's 2.4B activated leaves out the input embedding (0.21B)
    "gpt-oss-120b": 0.12,  # OpenAI's 5.13B active leaves out the input embedding (0.58B)
    "gpt-oss-20b": 0.17,   # and its 3.61B likewise
}


@pytest.mark.parametrize("mid", ["gpt-oss-120b", "gpt-oss-20b"])
def test_gpt_oss_active_counts_leave_out_only_the_input_embedding(mid):
    row, spec = load_model_catalog().rows[mid], resolve_model(mid)
    assert (spec.params_active - spec.vocab * spec.hidden) / 1e9 == pytest.approx(row.active_params_b, abs=0.005)


def test_required_ids_present():
    rows = load_model_catalog().rows
    assert [i for i in REQUIRED if i not in rows] == []


@pytest.mark.parametrize("mid", sorted(load_model_catalog().rows))
def test_implied_params_match_published(mid):
    row = load_model_catalog().rows[mid]
    spec = resolve_model(mid)
    assert spec.params_total / 1e9 == pytest.approx(row.params_b, rel=EXCEPTIONS.get(mid, TOLERANCE))
    if row.active_params_b is not None:
        assert spec.params_active / 1e9 == pytest.approx(row.active_params_b, rel=ACTIVE_EXCEPTIONS.get(mid, 0.03))


def test_every_row_has_a_source_and_lower_case_id():
    for r in load_model_catalog().rows.values():
        assert r.source.strip() and r.id == r.id.lower()


def test_gpt3_closed_form_params():
    # 12 l h^2 + 13 l h + (V + S) h + 2h: biases, LayerNorms, learned positions, tied embeddings
    # (Narayanan et al. 2021 sec 3.3 parameter formula plus the final LayerNorm)
    l, h, v, s = 96, 12288, 50257, 2048
    assert resolve_model("gpt3").params_total == 12 * l * h * h + 13 * l * h + (v + s) * h + 2 * h


def test_moe_active_counts_top_k_and_shared():
    m = resolve_model("deepseek-v3")
    assert m.is_moe and m.dense_layers == 3 and m.moe_layers == 58
    assert m.params_total - m.params_active == 58 * (256 - 8) * m.params_expert
    assert m.params_expert == 3 * 7168 * 2048


def test_gqa_and_mla_attention_kinds():
    assert resolve_model("llama3-70b").attention == "gqa"
    assert resolve_model("gpt3-175b").attention == "mha"
    assert resolve_model("palm-540b").attention == "mqa"
    assert resolve_model("deepseek-v2").attention == "mla"


def test_aliases_and_case():
    assert resolve_model("GPT3").name == "gpt3-175b"
    assert resolve_model("llama-3.1-405b").name == "llama3.1-405b"
    # a published table's label, spaces and punctuation ignored
    assert resolve_model("Llama 2 70B").name == "llama2-70b"
    assert resolve_model({"name": "Nemotron-4 340B", "seq_len": 2048}).name == "nemotron4-340b"
    with pytest.raises(UnknownNameError):
        resolve_model("Llama 2 71B")


@pytest.mark.parametrize("repo, model", [
    ("meta-llama/Llama-2-70b-hf", "llama2-70b"), ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3-8b"),
    ("meta-llama/Llama-3.1-405B", "llama3.1-405b"), ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
    ("deepseek-ai/DeepSeek-V3-Base", "deepseek-v3"), ("nvidia/Nemotron-4-340B-Base", "nemotron4-340b"),
    ("Qwen/Qwen2.5-72B-Instruct", "qwen2.5-72b"), ("bigscience/bloom", "bloom-176b"),
    ("huggyllama/llama-65b", "llama-65b"), ("tiiuae/falcon-180B", "falcon-180b"),
    ("tiiuae/falcon-40b-instruct", "falcon-40b"), ("EleutherAI/gpt-neox-20b", "gpt-neox-20b"),
    ("google/gemma-2-9b-it", "gemma2-9b"), ("google/gemma-7b", "gemma-7b"), ("Qwen/Qwen3-32B", "qwen3-32b"),
    ("meta-llama/Llama-3.2-1B-Instruct", "llama3.2-1b"), ("codellama/CodeLlama-34b-hf", "codellama-34b"),
    ("microsoft/Phi-3-mini-4k-instruct", "phi-3-mini"), ("deepseek-ai/DeepSeek-V2-Lite", "deepseek-v2-lite")])
def test_hugging_face_repo_ids_name_their_architecture(repo, model):
    assert resolve_model(repo).name == model


def test_a_repo_id_of_another_architecture_is_not_guessed():
    # the version and variant suffixes go, the model's own version does not: DeepSeek-V2.5 is
    # not taken for another DeepSeek, nor Mistral 7B for Mixtral (it is its own row)
    with pytest.raises(UnknownNameError):
        resolve_model("deepseek-ai/DeepSeek-V2.5")
    assert resolve_model("mistralai/Mistral-7B-v0.1").name == "mistral-7b"
    assert resolve_model("mistralai/Mixtral-8x7B-v0.1").name == "mixtral-8x7b"


@pytest.mark.parametrize("mid", ["llama-7b", "llama-13b", "llama-33b", "llama-65b"])
def test_the_first_llamas_mlp_width_is_the_gated_default_rule(mid):
    # LLaMA's int(8h/3) up to a multiple of 256 (facebookresearch/llama model.py), which the engine
    # also assumes for a gated shape given without ffn_hidden; the rows' widths come from released
    # derivatives, so the two agree only if both are right
    from colossim.specs.model import GATED_FFN_MULTIPLE, GATED_FFN_RATIO

    m = resolve_model(mid)
    rule = -(-int(m.hidden * GATED_FFN_RATIO) // GATED_FFN_MULTIPLE) * GATED_FFN_MULTIPLE
    assert m.ffn_hidden == rule and (m.seq_len, m.kv_heads, m.vocab) == (2048, m.heads, 32000)


def test_parallel_blocks_and_wide_heads_of_the_added_families():
    # Falcon and GPT-NeoX run attention and MLP side by side; Falcon-180B in closed form: per layer
    # q and o (h^2 each), k and v (8 groups of 64), a 4h GELU MLP, two LayerNorms; tied embeddings
    f = resolve_model("falcon-180b")
    h, layers, vocab = 14848, 80, 65024
    per_layer = 2 * h * h + 2 * h * 8 * 64 + 2 * h * 4 * h + 2 * 2 * h
    assert f.parallel_block and resolve_model("gpt-neox-20b").parallel_block
    assert f.params_total == pytest.approx(layers * per_layer + vocab * h, rel=1e-4)
    # Gemma's heads are wider than its model: 16 x 256 = 4,096 > 3,072
    g = resolve_model("gemma-7b")
    assert (g.head_dim, g.heads * g.head_dim, g.hidden) == (256, 4096, 3072)


def test_catalog_plus_overrides_recomputes_derived_fields():
    m = resolve_model({"name": "llama3-8b", "seq_len": 4096, "hidden": 2048, "heads": 16})
    assert (m.name, m.seq_len, m.head_dim, m.kv_heads) == ("llama3-8b", 4096, 128, 8)


def test_custom_mapping():
    m = resolve_model({"layers": 2, "hidden": 64, "ffn_hidden": 256, "heads": 4, "vocab": 100, "seq_len": 32})
    assert isinstance(m, ModelSpec) and m.head_dim == 16 and m.attention == "mha"


def test_unknown_id_suggests_closest():
    with pytest.raises(UnknownNameError, match="llama3-8b"):
        resolve_model("llama3-8c")


def test_unknown_field_names_it_and_the_allowed_ones():
    with pytest.raises(SpecError, match=r"unknown field 'model.hiden': allowed: name, layers, hidden"):
        resolve_model({"name": "llama3-8b", "hiden": 1})


def test_stated_parameter_counts_are_checked_against_the_shape_not_used():
    """A mapping may state its published counts (the reference file's params_b / active_params_b
    columns); a rounded name passes, a shape a factor off is refused naming the field."""
    v3 = {"layers": 61, "hidden": 7168, "ffn_hidden": 18432, "heads": 128, "vocab": 129280, "seq_len": 4096,
          "activation": "swiglu", "experts": 256, "top_k": 8, "moe_ffn_hidden": 2048, "shared_experts": 1}
    assert resolve_model({**v3, "params_b": 671, "active_params_b": 37}) == resolve_model(v3)
    assert resolve_model({"name": "llama2-7b", "params_b": 7}) == resolve_model("llama2-7b")  # 6.74B named 7B
    with pytest.raises(SpecError, match=r"^model\.params_b 67 disagrees with the shape, which gives 671B"):
        resolve_model({**v3, "params_b": 67})
    # top-8 of 256 experts is 37B active, not 671B: the active count is checked on its own
    with pytest.raises(SpecError, match=r"^model\.active_params_b 671 disagrees .* gives 37\.\d+B"):
        resolve_model({**v3, "active_params_b": 671})
    for value in ("seven", 0, True):
        with pytest.raises(SpecError, match=r"^model\.params_b must be a positive number"):
            resolve_model({"name": "llama2-7b", "params_b": value})


@pytest.mark.parametrize("bad, needle", [
    ({"heads": 32, "kv_heads": 5}, "kv_heads 5 must divide heads 32"),
    ({"experts": 8, "top_k": 9, "moe_ffn_hidden": 10}, "top_k 9"),
    ({"experts": 8, "top_k": 2}, "moe_ffn_hidden"),
    ({"layers": 0}, "model.layers"),
    ({"parallel_block": True, "parallel_norms": 3}, "model.parallel_norms: Input should be less than or equal to 2"),
])
def test_bad_values_are_spec_errors(bad, needle):
    with pytest.raises(SpecError, match=needle):
        resolve_model({"name": "llama3-8b", **bad})


def test_shape_without_vocab_takes_the_catalog_model_of_that_shape():
    from colossim.specs.model import resolve_model

    m = resolve_model({"layers": 96, "hidden": 12288, "ffn_hidden": 49152, "heads": 96, "kv_heads": 96,
                       "seq_len": 2048, "activation": "gelu"})
    ref = resolve_model("gpt3-175b")
    assert m.vocab == ref.vocab and m.name.startswith("gpt3-175b")
    # Nemotron-4 15B given without ffn_hidden: the catalog's squared-ReLU width
    n = resolve_model({"layers": 32, "hidden": 6144, "heads": 48, "kv_heads": 8, "vocab": 256000,
                       "seq_len": 4096, "activation": "relu2"})
    assert n.ffn_hidden == resolve_model("nemotron4-15b").ffn_hidden
    # the fields given always win
    assert resolve_model({"layers": 96, "hidden": 12288, "heads": 96, "seq_len": 1024,
                          "activation": "gelu"}).seq_len == 1024


def test_shape_matching_nothing_gets_the_standard_defaults():
    from colossim.specs.model import DEFAULT_VOCAB, resolve_model

    m = resolve_model({"layers": 7, "hidden": 1000, "heads": 10, "seq_len": 512, "activation": "gelu"})
    assert (m.vocab, m.ffn_hidden) == (DEFAULT_VOCAB, 4000)
    g = resolve_model({"layers": 7, "hidden": 4096, "heads": 32, "seq_len": 512, "activation": "swiglu"})
    assert g.ffn_hidden == 11008  # 8/3 x 4096 = 10923, up to a multiple of 256 (Llama 7B's width)


def test_a_full_shape_is_the_catalog_model_of_that_shape():
    from colossim.specs.model import resolve_model

    # GPT-3 6.7B and MPT-7B share 32 x 4096, 32 heads, 16384 MLP: the given vocabulary decides
    shape = {"layers": 32, "hidden": 4096, "ffn_hidden": 16384, "heads": 32, "kv_heads": 32,
             "seq_len": 2048, "activation": "gelu"}
    mpt = resolve_model({**shape, "vocab": 50368})
    assert mpt.name == "mpt-7b (by shape)" and mpt.position == "alibi" and not mpt.bias
    gpt = resolve_model({**shape, "vocab": 50257})
    assert gpt.name.startswith("gpt3-") and gpt.position == "learned" and gpt.bias
    # the fields given win over the catalog model's
    assert resolve_model({**shape, "vocab": 50368, "position": "rope"}).position == "rope"
    # a different MLP width is a different model
    other = resolve_model({**shape, "ffn_hidden": 11008, "vocab": 50368})
    assert "(by shape)" not in other.name
    # so is a different tokenizer (Megatron-Core's 131,072-token scaling runs of MPT-30B's shape):
    # neither MPT's block nor its software stack applies
    mpt30 = {"layers": 48, "hidden": 7168, "ffn_hidden": 28672, "heads": 56, "kv_heads": 56,
             "seq_len": 4096, "activation": "gelu"}
    assert resolve_model({**mpt30, "vocab": 50432}).name == "mpt-30b (by shape)"
    megatron = resolve_model({**mpt30, "vocab": 131072})
    assert "(by shape)" not in megatron.name and megatron.position != "alibi"
    # a vocabulary padded for tensor parallelism (GPT-2's 50,257 to 50,304) is still that model's:
    # the closest of the catalog's (Megatron's 175B row pads to 51,200)
    gpt3 = {"layers": 96, "hidden": 12288, "ffn_hidden": 49152, "heads": 96, "kv_heads": 96,
            "seq_len": 2048, "activation": "gelu"}
    assert resolve_model({**gpt3, "vocab": 50304}).name == "gpt3-175b (by shape)"
    assert resolve_model({**gpt3, "vocab": 51072}).name == "megatron-175b (by shape)"


@pytest.mark.parametrize("layers, hidden, heads, mpt", [
    (12, 768, 12, "mpt-125m"), (24, 1024, 16, "mpt-350m"), (24, 1536, 12, "mpt-760m"), (24, 2048, 16, "mpt-1b"),
    (32, 2560, 20, "mpt-3b")])
def test_the_small_mpt_shapes_with_mpts_vocabulary_are_mpt_on_its_software(layers, hidden, heads, mpt):
    from colossim.specs.model import load_model_catalog, resolve_model

    shape = {"layers": layers, "hidden": hidden, "heads": heads, "seq_len": 2048, "activation": "gelu"}
    m = resolve_model({**shape, "vocab": 50368})
    assert m.name == f"{mpt} (by shape)" and m.position == "alibi" and m.ffn_hidden == 4 * hidden
    assert load_model_catalog().software_of(m.name) == "pytorch-fsdp-2023"
    # the same shape with GPT-2's tokenizer, raw or padded to 64, is another model: 50,368 is not
    # a padding of 50,304 (the larger of two padded vocabularies is a multiple of 128)
    for vocab in (50257, 50304):
        assert "(by shape)" not in resolve_model({**shape, "vocab": vocab}).name


def test_vocabularies_are_the_same_up_to_padding_to_a_multiple_of_128():
    from colossim.specs.model import _vocab_padded

    assert _vocab_padded(50257, 51200) and _vocab_padded(51200, 50257)  # Megatron pads to 128 x tp
    assert _vocab_padded(50257, 50304) and _vocab_padded(32000, 32256) and _vocab_padded(50368, 50368)
    assert not _vocab_padded(50368, 50304)  # 50,368 = 64 x 787: MPT's own size, no padding of 50,304
    assert not _vocab_padded(50257, 55296)  # a multiple of 128, but 10 % away: another tokenizer


@pytest.mark.parametrize("label, expected", [
    ("Llama 2 70B", "llama2-70b"), ("OPT-175B", "opt-175b"), ("MPT-7b", "mpt-7b"),
    ("MT-NLG 530B", "mt-nlg-530b"), ("Nemotron-4 340B", "nemotron4-340b"),
    ("GPT 175B (GPT-3)", "gpt3-175b"),            # the part in parentheses names it
    ("GPT-3 175B (MLPerf reference, C4)", "gpt3-175b"),  # the part outside does
    ("GPT 22B", None), ("GPT-530B (Table 1 arch)", None), ("", None),
])
def test_free_text_model_labels_resolve_to_catalog_ids(label, expected):
    from colossim.specs.model import catalog_id_for_label

    assert catalog_id_for_label(label) == expected


def test_a_label_names_a_shape_only_where_the_shape_agrees():
    from colossim.specs.model import name_by_label

    gpt3_shape = {"layers": 96, "hidden": 12288, "ffn_hidden": 49152, "heads": 96, "kv_heads": 96,
                  "seq_len": 2048, "activation": "gelu"}
    # by shape alone this is GPT-3; the row's label says OPT-175B (ReLU written as GeLU: same MLP)
    assert resolve_model(gpt3_shape).name.startswith("gpt3-175b")
    named = name_by_label(gpt3_shape, "OPT-175B")
    assert named == {**gpt3_shape, "name": "opt-175b"}
    m = resolve_model(named)
    assert m.name == "opt-175b" and m.activation.value == "gelu"  # the given fields still win
    # a label whose model disagrees with a given field (vocab, MLP gating, layers) changes nothing
    for other in ({"vocab": 51200}, {"activation": "swiglu"}, {"layers": 80}):
        assert name_by_label({**gpt3_shape, **other}, "OPT-175B") == {**gpt3_shape, **other}
    # a spec that already names its model, a catalog id, or an unknown label: unchanged
    assert name_by_label({"name": "gpt3-175b"}, "OPT-175B") == {"name": "gpt3-175b"}
    assert name_by_label("llama3-8b", "OPT-175B") == "llama3-8b"
    assert name_by_label(gpt3_shape, "GPT 22B") is gpt3_shape
    # a spec that gives no architecture at all takes the labelled model whole
    bare = {"seq_len": 4096, "activation": "swiglu"}
    m = resolve_model(name_by_label(bare, "Llama 2 70B"))
    assert (m.layers, m.hidden, m.seq_len) == (80, 8192, 4096)


# Mixtral 8x7B as a table writes it (Jiang et al. 2024 Table 1): the MLP width is each expert's
MIXTRAL_AS_TABLED = {"layers": 32, "hidden": 4096, "ffn_hidden": 14336, "heads": 32, "kv_heads": 8,
                     "vocab": 32000, "seq_len": 4096, "activation": "swiglu", "experts": 8, "top_k": 2}


def test_an_moe_table_row_reads_its_mlp_width_as_the_experts():
    from colossim.specs.model import name_by_label

    m = resolve_model(MIXTRAL_AS_TABLED)
    catalog = resolve_model("mixtral-8x7b")
    assert m.name.startswith("mixtral-8x7b") and (m.moe_ffn_hidden, m.ffn_hidden) == (14336, None)
    assert m.params_total == catalog.params_total and m.params_active == catalog.params_active
    # the reference file's column names for the MoE fields
    renamed = {k: v for k, v in MIXTRAL_AS_TABLED.items() if k not in ("experts", "top_k")}
    assert resolve_model({**renamed, "moe_experts": 8, "moe_topk": 2}).params_active == catalog.params_active
    # the row's label names the catalog model when the shape agrees, not when the width differs
    assert name_by_label(MIXTRAL_AS_TABLED, "Mixtral 8x7B")["name"] == "mixtral-8x7b"
    assert "name" not in name_by_label({**MIXTRAL_AS_TABLED, "ffn_hidden": 16384}, "Mixtral 8x7B")
    # another width is another model: not completed from Mixtral's row
    wider = resolve_model({**MIXTRAL_AS_TABLED, "ffn_hidden": 16384})
    assert not wider.name.startswith("mixtral") and wider.moe_ffn_hidden == 16384


def test_a_label_naming_an_moe_model_supplies_the_experts_a_dense_table_left_out():
    # a table of dense columns (no experts) labelled Mixtral 8x7B: the label says it is the MoE
    from colossim.specs.model import name_by_label

    dense_columns = {k: v for k, v in MIXTRAL_AS_TABLED.items() if k not in ("experts", "top_k")}
    named = name_by_label(dense_columns, "Mixtral 8x7B")
    assert named["name"] == "mixtral-8x7b" and "ffn_hidden" not in named
    m = resolve_model(named)
    assert (m.experts, m.top_k, m.moe_ffn_hidden) == (8, 2, 14336)
    assert m.params_active == resolve_model("mixtral-8x7b").params_active
    # experts written as 1 is a dense model of that shape, and another width another model
    assert "name" not in name_by_label({**dense_columns, "experts": 1}, "Mixtral 8x7B")
    assert "name" not in name_by_label({**dense_columns, "ffn_hidden": 16384}, "Mixtral 8x7B")
    # a dense label is unchanged by this
    assert name_by_label(dense_columns, "Llama 2 70B") is dense_columns


def test_an_moe_table_row_with_dense_layers_must_say_which_width_is_the_experts():
    with pytest.raises(SpecError) as e:
        # a shape of no catalog model (heads 34), so nothing settles which width the table gave
        resolve_model({**MIXTRAL_AS_TABLED, "heads": 34, "kv_heads": 2, "head_dim": 128, "first_dense_layers": 1})
    assert "moe_ffn_hidden" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("width", [18432, 2048])
def test_an_moe_table_width_may_be_the_dense_layers_or_the_experts(width):
    # DeepSeek-V3 (arXiv:2412.19437): dense layers 18432 wide, experts 2048; a table gives one of them
    from colossim.specs.model import name_by_label

    bare = {"layers": 61, "hidden": 7168, "heads": 128, "vocab": 129280, "seq_len": 4096,
            "activation": "swiglu", "experts": 256, "top_k": 8, "ffn_hidden": width}
    m, catalog = resolve_model(bare), resolve_model("deepseek-v3")
    assert m.name.startswith("deepseek-v3") and (m.ffn_hidden, m.moe_ffn_hidden) == (18432, 2048)
    assert m.params_total == catalog.params_total
    assert resolve_model(name_by_label(bare, "DeepSeek-V3")).params_total == catalog.params_total


@pytest.mark.parametrize("field, value, message", [
    ("experts", {"a": 1}, r"^model.experts: Input should be a valid integer \(got \{'a': 1\}\)$"),
    ("top_k", "two", r"^model.top_k: Input should be a valid integer, unable to parse string"),
    ("kv_heads", [8], r"^model.kv_heads: Input should be a valid integer \(got \[8\]\)$"),
])
def test_a_custom_shape_with_a_value_of_the_wrong_type_names_that_field(field, value, message):
    # matching the shape against the catalog compared the raw value (a TypeError traceback), and
    # falling through left the vocabulary out, so the error named vocab instead
    with pytest.raises(SpecError, match=message):
        resolve_model({"name": "my-moe", "layers": 2, "hidden": 64, "heads": 4, "seq_len": 128, field: value})
