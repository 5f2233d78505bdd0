"""Import of Hugging Face config.json files.  The fixtures in tests/data/hf/ are hand-written copies
of the published configs' architecture keys (meta-llama/Meta-Llama-3-8B, mistralai/Mixtral-8x7B-v0.1,
Qwen/Qwen2.5-72B, deepseek-ai/DeepSeek-V3) plus some keys colossim ignores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from colossim.errors import SpecError
from colossim.specs.hf_import import load_hf_config
from colossim.specs.model import resolve_model

HF = Path(__file__).parent.parent / "data" / "hf"


@pytest.mark.parametrize("fixture, catalog_id", [("llama3-8b", "llama3-8b"), ("mixtral-8x7b", "mixtral-8x7b"),
                                                 ("qwen2.5-72b", "qwen2.5-72b"), ("deepseek-v3", "deepseek-v3")])
def test_import_matches_catalog_parameter_counts(fixture, catalog_id):
    m, ref = load_hf_config(HF / f"{fixture}.json"), resolve_model(catalog_id)
    assert m.params_total == ref.params_total
    assert m.params_active == ref.params_active


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


def test_unsupported_model_type(tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{"model_type": "gpt2"}')
    with pytest.raises(SpecError, match="model_type 'gpt2' is not supported"):
        load_hf_config(tmp_path)
