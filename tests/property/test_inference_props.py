"""Invariants of the serving cost model (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.inference.step import iteration_seconds, make_context
from colossim.specs.model import resolve_model
from colossim.specs.system import resolve_hardware

_CTX = {}


def ctx(model: str, tp: int):
    key = (model, tp)
    if key not in _CTX:
        _CTX[key] = make_context(resolve_model(model), resolve_hardware({"gpu": "h100-sxm", "count": 8}),
                                 weights="fp8", activations="fp8", kv_cache="fp8", tp=tp, pp=1, ep=1,
                                 attention_seq_hint=2048)
    return _CTX[key]


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(["llama3.1-8b", "llama3.1-70b", "mixtral-8x7b"]),
       tp=st.sampled_from([1, 2, 4, 8]), a=st.integers(1, 4096), b=st.integers(1, 4096),
       ctx_len=st.integers(1, 32768))
def test_more_tokens_never_cost_less(model, tp, a, b, ctx_len):
    c = ctx(model, tp)
    lo, hi = sorted((a, b))
    t = iteration_seconds(c, np.array([lo, hi], dtype=float), np.array([lo, hi], dtype=float) * ctx_len,
                          0.0, np.array([lo, hi], dtype=float))["total"]
    assert t[0] <= t[1] * (1 + 1e-9)
    assert np.all(t > 0)


@settings(max_examples=40, deadline=None)
@given(model=st.sampled_from(["llama3.1-8b", "llama3.1-70b"]), tokens=st.integers(1, 8192))
def test_buckets_sum_to_total(model, tokens):
    it = iteration_seconds(ctx(model, 8), float(tokens), 1e5, 1e6, 1.0)
    parts = it["compute"] + it["memory"] + it["comm"] + it["overhead"]
    assert np.isclose(parts, it["total"])
