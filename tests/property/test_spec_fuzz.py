"""Whatever a user writes into a spec field, loading the spec either succeeds or raises one
:class:`ColossimError` line naming a field: no TypeError, OverflowError or ValueError escapes.  Each
field is fuzzed on its own (beside one other), from a catalog model and from a custom shape.  It
found: a dict for ``experts`` compared with an int while matching the shape, and ``heads: "4"``
(which pydantic reads as 4) skipping the derived kv_heads, then ``heads % None``."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.errors import ColossimError
from colossim.specs.serving import load_serving_spec
from colossim.specs.training import load_spec

TRAINING = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 64},
            "parallelism": {"tp": 2}, "training": {"global_batch": 256, "precision": "bf16", "tokens": 1e12}}
SERVING = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 8}, "parallelism": {},
           "serving": {"input_tokens": 1000, "output_tokens": 200}}
MODEL_FIELDS = ["name", "layers", "hidden", "ffn_hidden", "heads", "kv_heads", "vocab", "seq_len", "activation",
                "experts", "top_k", "moe_ffn_hidden", "shared_experts", "first_dense_layers"]
FIELDS = {
    "model": MODEL_FIELDS,
    "hardware": ["gpu", "system", "count", "tdp_w", "hbm_gb", "scaleup_gbit_per_s", "gpus_per_node"],
    "parallelism": ["tp", "pp", "cp", "ep", "dp", "vpp", "micro_batch", "recompute", "zero", "etp",
                    "sequence_parallel", "recompute_num_layers", "uneven_stages"],
    "training": ["global_batch", "precision", "tokens", "software"],
    "serving": ["weights", "kv_cache", "input_tokens", "output_tokens", "batch", "ttft_slo_s", "max_num_tokens",
                "kv_cache_fraction", "disaggregated", "prefill_fraction"],
}
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**40), st.floats(), st.text(max_size=6),
                   st.sampled_from(["llama3-8b", "h100", "bf16", "full", "8", "1e30"]),
                   st.lists(st.integers(0, 9), max_size=2),
                   st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


#: the model a fuzzed spec starts from: a catalog id, a catalog id with overrides, or a custom shape
#: (matched against the catalog by its shape, which reads the values before validation does)
MODELS = ["llama3-8b", {"name": "llama3-8b"}, {"name": "my-model", "layers": 4, "hidden": 256, "heads": 4,
                                               "seq_len": 512}]


def _edited(base: dict, model, edits) -> dict:
    spec = json.loads(json.dumps({**base, "model": model}))
    for section, field, value in edits:
        if section == "model" and not isinstance(spec["model"], dict):
            spec["model"] = {"name": spec["model"]}
        spec[section][field] = value
    return spec


def _loads_or_names_a_field(load, spec) -> None:
    try:
        load(spec)
    except ColossimError as err:
        assert err.field and "\n" not in str(err), str(err)


TRAINING_FIELDS = [(s, f) for s in ("model", "hardware", "parallelism", "training") for f in FIELDS[s]]
SERVING_FIELDS = [(s, f) for s in ("model", "hardware", "serving") for f in FIELDS[s]] + [
    ("parallelism", f) for f in ("tp", "pp", "ep", "replicas")]


@pytest.mark.parametrize("section, field", TRAINING_FIELDS)
@settings(max_examples=25, deadline=None)
@given(model=st.sampled_from(MODELS), value=VALUES, other=st.sampled_from(TRAINING_FIELDS), other_value=VALUES)
def test_any_value_in_a_training_spec_loads_or_is_one_line(section, field, model, value, other, other_value):
    spec = _edited(TRAINING, model, [(*other, other_value), (section, field, value)])
    _loads_or_names_a_field(load_spec, spec)


@pytest.mark.parametrize("section, field", SERVING_FIELDS)
@settings(max_examples=25, deadline=None)
@given(model=st.sampled_from(MODELS), value=VALUES)
def test_any_value_in_a_serving_spec_loads_or_is_one_line(section, field, model, value):
    _loads_or_names_a_field(load_serving_spec, _edited(SERVING, model, [(section, field, value)]))
