"""Import of Hugging Face config.json files.  The fixtures in tests/data/hf/ are hand-written copies
of the published configs' architecture keys (meta-llama/Meta-Llama-3-8B, mistralai/Mixtral-8x7B-v0.1,
Qwen/Qwen2.5-72B, deepseek-ai/DeepSeek-V3) plus some keys colossim ignores."""

from __future__ import annotations

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


def test_missing_required_key_is_named():
    with pytest.raises(SpecError, match="missing required key 'intermediate_size'"):
        load_hf_config(HF / "broken-llama.json")


def test_unsupported_model_type(tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{"model_type": "gpt2"}')
    with pytest.raises(SpecError, match="model_type 'gpt2' is not supported"):
        load_hf_config(tmp_path)
