"""Spec values that used to run as something else, or fail with a line that did not say what is
allowed: each is now one line naming the field and what it may be."""

from __future__ import annotations

import pytest

from colossim.errors import ColossimError, SpecError
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate

BASE = {"model": "llama3-8b", "hardware": {"gpu": "h100-sxm", "count": 8}, "training": {"global_batch": 64}}


def _with(**sections) -> dict:
    merged = {k: {**BASE[k], **v} if isinstance(v, dict) and isinstance(BASE.get(k), dict) else v
              for k, v in sections.items()}
    return {**BASE, **merged}


@pytest.mark.parametrize("doc, field, message", [
    # true/false for a number (YAML's yes/on too) ran as 1: tp 1, a one-layer model, one token
    (_with(parallelism={"tp": True}), "parallelism.tp", "parallelism.tp = true: allowed: a number, not true/false"),
    (_with(model={"name": "llama3-8b", "layers": True}), "model.layers", "model.layers = true: allowed: a number"),
    (_with(training={"tokens": True}), "training.tokens", "training.tokens = true: allowed: a number"),
    (_with(hardware={"count": True}), "hardware.count", "hardware.count = true: allowed: a number"),
    # 0 Gbit/s out of a node was read as "not given"
    (_with(hardware={"count": 16, "scaleout_gbit_per_s": 0}), "hardware.scaleout_gbit_per_s",
     "hardware.scaleout_gbit_per_s = 0 but the 16 GPUs span 2 scale-up domains of 8: allowed: a rate above 0"),
    # more recomputed layers than a stage has ran as all of them
    (_with(hardware={"count": 64}, parallelism={"recompute": "full", "recompute_num_layers": 400, "tp": 1, "pp": 1,
                                                "dp": 64}),
     "parallelism.recompute_num_layers", r"= 400 is more than the 32 layers of a stage \(pp 1\): allowed: 1 ... 32"),
    (_with(hardware={"gpu": "a100-80gb-sxm"}, training={"precision": "fp8"}), "training.precision",
     "training.precision = fp8 but a100-80gb-sxm has no fp8 tensor cores: allowed: bf16, fp16"),
    (_with(parallelism={"zero": 1, "zero_stage": 1}), "parallelism.zero",
     "zero and zero_stage name the same field: allowed: one of them"),
    (_with(training={"tokens": float("inf")}), "training.tokens", "finite"),
    (_with(hardware={"count": 64}, parallelism={"pp": 64}), "parallelism.pp",
     r"parallelism.pp = 64 > model.layers = 32: allowed pp: 1 ... 32"),
])
def test_a_bad_value_is_one_line_naming_its_field_and_what_is_allowed(doc, field, message):
    with pytest.raises(SpecError, match=message) as e:
        load_spec(doc)
    assert e.value.field == field and "\n" not in str(e.value)


def test_an_empty_model_name_is_an_unknown_model_not_a_folder():
    with pytest.raises(ColossimError, match="unknown model ''"):
        load_spec(_with(model=""))


def test_what_the_catalog_lacks_for_a_chip_is_a_caveat():
    v100 = estimate(load_spec(_with(hardware={"gpu": "v100-sxm", "count": 64}))).validation_evidence["caveats"]
    assert any("v100-sxm has no bf16 tensor cores" in c for c in v100)
    gaudi = estimate(load_spec(_with(hardware={"gpu": "gaudi2", "count": 64}, training={"tokens": 1e12})))
    assert gaudi.assumptions["chip_price_usd"] == 0
    assert any(c == "cost_usd counts energy only: the catalog has no price for gaudi2"
               for c in gaudi.validation_evidence["caveats"])
    h100 = estimate(load_spec(_with(training={"tokens": 1e12}))).validation_evidence["caveats"]
    assert not any("no bf16" in c or "energy only" in c for c in h100)
