"""Memory invariants over random plans (hypothesis): more parallelism or sharding never costs memory,
bigger micro-batches and less recomputation never save it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.specs import resolve_model
from colossim.training.memory import memory_per_gpu

MODELS = [resolve_model(m) for m in ("llama3-70b", "mixtral-8x7b", "deepseek-v2", "gpt3-175b")]

plans = st.fixed_dictionaries({
    "tp": st.sampled_from([1, 2, 4, 8]), "pp": st.sampled_from([1, 2, 4, 5]), "cp": st.sampled_from([1, 2]),
    "ep": st.sampled_from([1, 2, 4]), "dp": st.sampled_from([4, 8, 16]), "vpp": st.sampled_from([1, 2]),
    "micro_batch": st.integers(1, 4), "recompute": st.sampled_from(["none", "selective", "full"]),
    "zero": st.integers(0, 3), "sequence_parallel": st.booleans(),
})


def total(model, **plan):
    return float(memory_per_gpu(model, **plan).total)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(MODELS), plans)
def test_memory_monotone(model, plan):
    base = total(model, **plan)
    assert base > 0
    for key, bigger in (("tp", 2), ("pp", 2), ("zero", 1)):
        if (key == "zero" and plan["zero"] == 3) or (key == "pp" and (
                plan["vpp"] > 1 or model.layers % (2 * plan["pp"]))):
            # interleaving holds p (1 + (p-1)/(p v)) micro-batches, and uneven stages put
            # ceil(L/p) layers on the first stage: in those cases more pp can cost memory
            continue
        more = dict(plan, **{key: plan[key] * bigger if key != "zero" else plan["zero"] + 1})
        assert total(model, **more) <= base * (1 + 1e-12), key
    assert total(model, **dict(plan, micro_batch=plan["micro_batch"] + 1)) >= base
    order = ["full", "selective", "none"]
    i = order.index(plan["recompute"])
    if i < 2:
        assert total(model, **dict(plan, recompute=order[i + 1])) >= base


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(MODELS), st.lists(plans, min_size=2, max_size=6))
def test_vectorised_equals_scalar(model, plist):
    arrays = {k: np.array([p[k] for p in plist]) for k in plist[0] if k != "recompute"}
    codes = {"none": 0, "selective": 1, "full": 2}
    arrays["recompute"] = np.array([codes[p["recompute"]] for p in plist])
    vec = memory_per_gpu(model, **arrays).total
    np.testing.assert_allclose(vec, [total(model, **p) for p in plist], rtol=1e-12)
