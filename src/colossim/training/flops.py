"""FLOPs of a transformer, exactly, op by op; and the MFU conventions built on them.

One multiply-add is 2 FLOPs.  Only matrix multiplications are counted (projections, attention
scores and values, MLP / experts, router, logits); norms, activations, softmax and residual adds
are memory-bound and priced by bytes elsewhere (:mod:`colossim.training.ops`).

Per token, forward, one layer (h hidden, a heads, g kv heads, d head dim, f MLP width, S sequence):

- QKV: 2 h (a d + 2 g d); output projection 2 a d h (Narayanan et al. 2021 sec 3.3: 8 h^2 for MHA)
- MLA (DeepSeek-V2 sec 2.1.2): q down 2 h r_q, q up 2 r_q a (d_nope + d_rope), kv down
  2 h (r_kv + d_rope), kv up 2 r_kv a (d_nope + d_v), output 2 a d_v h
- attention scores Q K^T: 2 a d_qk S_kv; attention over values: 2 a d_v S_kv.  Causal attention
  averages S_kv = S / 2 (the masked upper triangle is skipped, as FlashAttention's causal kernels
  do); a sliding-window layer (window w < S) averages w - w^2 / (2 S), the band's mean, and a
  model that mixes such layers with global ones gets the mean over its layers.  ``causal=False``
  counts the full S x S matrix, the convention of Narayanan et al. 2021 eq. 3 and of PaLM
  (Chowdhery et al. 2022, appendix B); in a windowed layer that count is S x min(w, S), every key
  a query could attend (the model never attends the keys beyond its window, so no convention
  should credit them: at 32k tokens and a 4k window they would be 8x the layer's real work).
- MLP: 2 h f per matrix, 2 matrices (gelu / relu / relu2) or 3 (swiglu / geglu)
- MoE layer: router 2 h E, top_k routed experts and the shared experts (2 h f_e per matrix each);
  the first ``first_dense_layers`` layers, and under ``moe_layer_interval`` n > 1 the n - 1 layers
  between MoE layers, have the dense MLP instead
- logits: 2 h V (once per token, after the last layer)

Training: backward = 2 x forward (gradients with respect to activations and to weights);
recomputation adds the forward FLOPs of what is recomputed: ``selective`` = the attention core
(scores, softmax, values; Korthikanti et al. 2022 sec 5), ``full`` = the whole layer forward
(the logits are never recomputed).  A LoRA fine-tuning (:mod:`colossim.training.lora`) has no
weight gradients for its frozen matmuls, so each weight matmul counts 2 x forward instead of 3 x,
and its adapters count 3 x their forward (:func:`frozen_weight_gradient_flops_per_token`).
Note: Korthikanti et al. 2022 appendix A's HFU formula adds
12 l h s per token for selective recompute, three times the 4 l h s forward that is re-executed.
"""

from __future__ import annotations

from typing import Literal

from colossim.cost.compute import causal_keys_per_query
from colossim.specs.model import ModelSpec
from colossim.specs.plan import Recompute
from colossim.training.lora import Lora, adapter_flops_per_token
from colossim.training.ops import HYBRID_MLP_KINDS, attention_layer_kinds, op_sac_recomputed_shares

Convention = Literal["megatron", "palm", "6nd"]
CONVENTIONS: tuple[str, ...] = ("megatron", "palm", "6nd")

#: Because: backward computes two GEMMs per forward GEMM (activation and weight gradients), and
#: twice the attention work (Narayanan et al. 2021 sec 3.3: "backward pass ... twice").
BACKWARD_FACTOR = 2

ATTENTION_CORE_OPS = ("attn_scores", "attn_values")


def attention_keys_per_query(model: ModelSpec, seq_len: int, causal: bool = True) -> float:
    """Keys one query attends in one layer, the mean over the model's kinds of attention layer
    (:func:`colossim.training.ops.attention_layer_kinds`, the op list's own split).  With the causal
    mask: S / 2 in a global layer and in a sliding-window layer the band's mean
    (:func:`colossim.cost.compute.causal_keys_per_query`).  Without it (the MFU conventions'
    count): every key a query could see, S in a global layer and min(window, S) in a windowed one.
    A chunked layer (chunk C < S) counts as causal attention over sequences of C tokens: C / 2
    keys per query, or C without the mask."""
    def keys(window: int | None, chunk: int | None) -> float:
        span = seq_len if chunk is None else chunk
        if causal:
            return float(causal_keys_per_query(span, window))
        return float(span if window is None else min(window, span))

    return sum(k.share * keys(k.window, k.chunk) for k in attention_layer_kinds(model, seq_len))


def attention_flops_per_token(model: ModelSpec, seq_len: int, causal: bool = True) -> dict[str, float]:
    """Forward FLOPs per token of the attention core (scores and values) of one layer (the mean
    over the layers when some attend a sliding window)."""
    s_kv = attention_keys_per_query(model, seq_len, causal)
    a = model.heads
    return {"attn_scores": 2.0 * a * model.qk_head_dim * s_kv,
            "attn_values": 2.0 * a * model.v_head_dim * s_kv}


def attention_projection_flops_per_token(model: ModelSpec) -> dict[str, float]:
    """Forward FLOPs per token of one layer's attention projections (QKV or MLA, and output)."""
    h, a = model.hidden, model.heads
    if model.attention == "mla":
        r_q, r_kv = model.mla_q_lora_rank, model.mla_kv_lora_rank
        rope, nope, v = model.mla_qk_rope_head_dim, model.mla_qk_nope_head_dim, model.mla_v_head_dim
        out: dict[str, float] = {}
        if r_q is None:
            out["q_proj"] = 2.0 * h * a * model.qk_head_dim
        else:
            out["q_down"] = 2.0 * h * r_q
            out["q_up"] = 2.0 * r_q * a * model.qk_head_dim
        out["kv_down"] = 2.0 * h * (r_kv + rope)
        out["kv_up"] = 2.0 * r_kv * a * (nope + v)
        out["out_proj"] = 2.0 * a * v * h
        return out
    d, g = model.head_dim, model.kv_heads
    gate = 2 if model.attention_output_gate else 1  # a gated attention's q projection is twice as wide
    return {"qkv": 2.0 * h * (gate * a * d + 2 * g * d), "out_proj": 2.0 * a * d * h}


def mlp_flops_per_token(model: ModelSpec, layer_kind: str = "dense") -> dict[str, float]:
    """Forward FLOPs per token of one layer's MLP: dense, or MoE (router + top_k routed experts +
    shared experts).  ``mlp_up`` covers the up and (when gated) gate matrices."""
    h, gated = model.hidden, model.activation.gated
    if layer_kind == "dense":
        f = model.ffn_hidden or 0
        return {"mlp_up": 2.0 * h * f * (2 if gated else 1), "mlp_down": 2.0 * h * f}
    if layer_kind != "moe":
        raise ValueError(f"layer_kind must be 'dense' or 'moe', got {layer_kind!r}")
    fe = model.moe_ffn_hidden
    active = model.top_k
    out = {"router": 2.0 * h * model.experts,
           "expert_up": active * 2.0 * h * fe * (2 if gated else 1),
           "expert_down": active * 2.0 * h * fe}
    if model.shared_experts:
        out["shared_up"] = model.shared_experts * 2.0 * h * fe * (2 if gated else 1)
        out["shared_down"] = model.shared_experts * 2.0 * h * fe
    return out


#: The recurrent mixers' scan products (:func:`colossim.training.ops.mamba_ops`,
#: :func:`colossim.training.ops.gdn_ops`): no weights.
RECURRENT_CORE_OPS = ("ssd_chunk_state", "ssd_chunk_cb", "ssd_chunk_scan", "ssd_state_scan", "gdn_kkt",
                      "gdn_solve", "gdn_wu", "gdn_state", "gdn_out_state", "gdn_out_qk", "gdn_out_av")


def mamba_flops_per_token(model: ModelSpec, causal: bool = True) -> dict[str, float]:
    """Forward FLOPs per token of one Mamba-2 mixer (d = d_inner, G groups, N state, Q chunk, H
    heads): input projection 2 h (2 d + 2 G N + H); the SSD scan's chunk states 2 d N, C B^T within
    the chunk 2 G Q N, the intra-chunk product 2 d Q (d Q under the causal mask, the half below
    the diagonal) and the inter-chunk one 2 d N; output projection 2 d h.  The convolution, dt and
    the gating are elementwise, priced by bytes.  NeMo's Nemotron-H MFU formula (nemo_toolkit 2.5.0
    ``utils/flops_formulas.py`` ``_mamba_layer_flops``) counts the projections and 2 d N of the scan
    ("We ignore part of the flops of scan because the chunk size is not known")."""
    h, d, G, N, Q = (model.hidden, model.mamba_inner, model.mamba_groups, model.mamba_state_dim,
                     model.mamba_chunk_tokens)
    return {"in_proj": 2.0 * h * model.mamba_in_proj_width,
            "ssd_chunk_state": 2.0 * d * N,
            "ssd_chunk_cb": 2.0 * G * Q * N,
            "ssd_chunk_scan": (1.0 if causal else 2.0) * d * Q,
            "ssd_state_scan": 2.0 * d * N,
            "mamba_out_proj": 2.0 * d * h}


def gdn_flops_per_token(model: ModelSpec, causal: bool = True) -> dict[str, float]:
    """Forward FLOPs per token of one Gated DeltaNet mixer (H value heads of d_v, keys of d_k, chunk
    C), the products :func:`colossim.training.ops.gdn_ops` runs per chunk divided by its C tokens:
    input projection 2 h (2 H_k d_k + 2 H d_v + 2 H); per value head beta K K^T C d_k (under the
    causal mask; 2 C d_k without), the triangular solve 2 C^2 / 3, w and u (d_k + d_v) C (2 x
    without), the state recurrence 4 d_k d_v, the output from the state 2 d_k d_v and within the
    chunk (d_k + d_v) C (2 x without); output projection 2 H d_v h."""
    h, C, H = model.hidden, model.gdn_chunk_tokens, model.gdn_value_heads
    dk, dv = model.gdn_key_head_dim, model.gdn_value_head_dim
    m = 1.0 if causal else 2.0
    return {"in_proj": 2.0 * h * model.gdn_in_proj_width,
            "gdn_kkt": H * m * C * dk, "gdn_solve": H * 2.0 * C * C / 3.0, "gdn_wu": H * m * (dk + dv) * C,
            "gdn_state": H * 4.0 * dk * dv, "gdn_out_state": H * 2.0 * dk * dv,
            "gdn_out_qk": H * m * C * dk, "gdn_out_av": H * m * dv * C,
            "gdn_out_proj": 2.0 * model.gdn_value_width * h}


def layer_flops_per_token(model: ModelSpec, seq_len: int, layer_kind: str = "dense",
                          causal: bool = True) -> dict[str, float]:
    """Forward FLOPs per token of one layer, by op name (the names :mod:`ops` uses): a transformer
    block, or a hybrid's Mamba-2, attention or MLP layer."""
    if layer_kind == "mamba":
        return mamba_flops_per_token(model, causal)
    if layer_kind == "gdn":
        return gdn_flops_per_token(model, causal)
    if layer_kind == "attention":
        return {**attention_projection_flops_per_token(model), **attention_flops_per_token(model, seq_len, causal)}
    if layer_kind in HYBRID_MLP_KINDS:
        return mlp_flops_per_token(model, HYBRID_MLP_KINDS[layer_kind])
    return {**attention_projection_flops_per_token(model),
            **attention_flops_per_token(model, seq_len, causal),
            **mlp_flops_per_token(model, layer_kind)}


def logits_flops_per_token(model: ModelSpec) -> float:
    """Forward FLOPs per token of the output projection to the vocabulary: 2 h V."""
    return 2.0 * model.hidden * model.vocab


def forward_flops_per_token(model: ModelSpec, seq_len: int, causal: bool = True) -> dict[str, float]:
    """Forward FLOPs per token of the whole model, by op, summed over layers; ``logits`` too."""
    total: dict[str, float] = {}
    for kind, n in model.layer_kinds:
        for op, f in layer_flops_per_token(model, seq_len, kind, causal).items():
            total[op] = total.get(op, 0.0) + n * f
    total["logits"] = logits_flops_per_token(model)
    return total


def recompute_flops_per_token(model: ModelSpec, seq_len: int, recompute: Recompute | str,
                              causal: bool = True, selective_recompute: str = "attention") -> float:
    """Extra forward FLOPs per token that activation recomputation adds in backward; selective
    recompute re-runs the attention core, or under ``selective_recompute='ops'`` torchtitan's
    every-second-matmul share of each layer (:func:`colossim.training.ops.op_sac_recomputed_shares`)."""
    rc = Recompute(recompute)
    fwd = forward_flops_per_token(model, seq_len, causal)
    if rc is Recompute.full:
        return sum(fwd.values()) - fwd["logits"]
    if rc is Recompute.selective and selective_recompute == "ops":
        total = 0.0
        for kind, n in model.layer_kinds:
            layer = layer_flops_per_token(model, seq_len, kind, causal)
            gemms = [k for k in layer if k not in ATTENTION_CORE_OPS + RECURRENT_CORE_OPS]
            shares = op_sac_recomputed_shares(gemms, model)
            total += n * sum(layer[k] * shares[k] for k in gemms)
        return total
    if rc is Recompute.selective:
        return sum(fwd[k] for k in ATTENTION_CORE_OPS)
    return 0.0


def palm_params(model: ModelSpec) -> float:
    """PaLM's N (appendix B): the active parameters without the input embedding, the output matrix
    counted once even when it is the tied embedding."""
    return model.params_active - model.params_embedding + (model.vocab * model.hidden if model.tied_embeddings else 0)


def frozen_weight_gradient_flops_per_token(model: ModelSpec, seq_len: int,
                                           convention: Convention = "megatron") -> float:
    """The weight-gradient FLOPs per token that a convention's count includes and a LoRA, which
    freezes every base weight, does not run: one forward of every weight matmul (the attention
    core has no weights), the logits included -- under ``palm`` 2 N and under ``6nd`` 2 x
    ``params_active``, the weight-gradient third of their 6 N."""
    if convention == "megatron":
        fwd = forward_flops_per_token(model, seq_len, causal=False)
        return sum(v for k, v in fwd.items() if k not in ATTENTION_CORE_OPS + RECURRENT_CORE_OPS)
    if convention == "palm":
        return 2.0 * palm_params(model)
    if convention == "6nd":
        return 2.0 * model.params_active
    raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")


def _lora_change(model: ModelSpec, seq_len: int, convention: Convention, lora: Lora | None) -> float:
    """What a LoRA changes in a convention's FLOPs per token: its adapters' forward, backward and
    weight gradients (3 x their forward) less the frozen weights' gradients."""
    if lora is None:
        return 0.0
    return ((1 + BACKWARD_FACTOR) * adapter_flops_per_token(model, lora)
            - frozen_weight_gradient_flops_per_token(model, seq_len, convention))


def hardware_flops_per_token(model: ModelSpec, seq_len: int, recompute: Recompute | str = "none",
                             causal: bool = True, selective_recompute: str = "attention",
                             lora: Lora | None = None) -> float:
    """FLOPs the GPUs execute per trained token: 3 x forward (forward + backward at 2x) plus the
    recomputed forward.  Causal attention is halved by default (what a causal flash-attention kernel
    runs).  With ``recompute="full", causal=False`` on a GPT (MHA, 4h gelu MLP) this is exactly
    Narayanan et al. 2021 eq. 3 divided by the tokens per step: 96 l h^2 (1 + S/(6h) + V/(16 l h)).
    Under ``lora`` the frozen weights' gradients are not run and the adapters are (their forward
    recomputed too under full recompute)."""
    fwd = sum(forward_flops_per_token(model, seq_len, causal).values())
    out = (1 + BACKWARD_FACTOR) * fwd + recompute_flops_per_token(model, seq_len, recompute, causal,
                                                                  selective_recompute)
    if lora is None:
        return out
    # the frozen weight matmuls are the same causal or not: megatron's count of their gradients
    again = adapter_flops_per_token(model, lora) if Recompute(recompute) is Recompute.full else 0.0
    return out + _lora_change(model, seq_len, "megatron", lora) + again


def model_flops_per_token(model: ModelSpec, seq_len: int, convention: Convention = "megatron",
                          lora: Lora | None = None) -> float:
    """Model FLOPs per trained token (no recomputation) under an MFU convention:

    - ``megatron``: 3 x the exact forward FLOPs with attention over the full S x S matrix (causal
      not halved) and the logits: Narayanan et al. 2021 eq. 3 without its recompute pass, i.e.
      72 l h^2 (1 + S/(6h) + V/(12 l h)) for a GPT.  Used by Megatron-LM's MFU (Korthikanti et al.
      2022 table 5).
    - ``palm``: 6 N + 12 L H Q T (Chowdhery et al. 2022, PaLM, appendix B), N = the parameters that
      take part in a matmul (active, non-embedding weights plus the output head, which is the
      embedding matrix when tied), L layers, H heads, Q head dim, T sequence length (attention not
      halved).  MosaicML's llm-foundry MFU uses this form.
    - ``6nd``: 6 x ``params_active`` (Kaplan et al. 2020; Hoffmann et al. 2022 C = 6 N D) with N the
      active parameters including the embedding tables, as most published "6ND" figures do; it
      ignores attention's S-dependent FLOPs.

    In the attention terms of ``megatron`` and ``palm`` a sliding-window layer counts min(window, S)
    keys per query instead of S (:func:`attention_keys_per_query` without the causal mask); without
    windows they are the published formulas.

    Under ``lora`` each convention drops the frozen weights' gradients
    (:func:`frozen_weight_gradient_flops_per_token`) and adds 3 x the adapters' forward: the work
    the fine-tuning needs.
    """
    return _full_model_flops_per_token(model, seq_len, convention) + _lora_change(model, seq_len, convention, lora)


def _full_model_flops_per_token(model: ModelSpec, seq_len: int, convention: Convention) -> float:
    """:func:`model_flops_per_token` with every weight trained."""
    if convention == "megatron":
        fwd = sum(forward_flops_per_token(model, seq_len, causal=False).values())
        return (1 + BACKWARD_FACTOR) * fwd
    if convention == "palm":
        n = palm_params(model)
        q = (model.qk_head_dim + model.v_head_dim) / 2  # Because: PaLM's Q assumes equal q/k/v head dims
        # Source: PaLM appendix B, 6N + 12 L H Q T per token (forward + backward).
        keys = attention_keys_per_query(model, seq_len, causal=False)  # seq_len without windows
        return 6.0 * n + 12.0 * model.attention_layers * model.heads * q * keys
    if convention == "6nd":
        return 6.0 * model.params_active  # Source: Kaplan et al. 2020 C ~ 6 N per token
    raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")


def narayanan_eq3_flops_per_token(layers: int, hidden: int, seq_len: int, vocab: int) -> float:
    """Narayanan et al. 2021 eq. 3 per token, F / (B s) = 96 l h^2 (1 + s/(6h) + V/(16 l h)):
    the paper's closed form for a GPT with full recomputation (for checking, not for the engine)."""
    l, h, s, v = layers, hidden, seq_len, vocab
    return 96.0 * l * h * h * (1 + s / (6.0 * h) + v / (16.0 * l * h))  # Source: Narayanan 2021 eq. 3


__all__ = ["ATTENTION_CORE_OPS", "BACKWARD_FACTOR", "CONVENTIONS", "RECURRENT_CORE_OPS", "gdn_flops_per_token",
           "mamba_flops_per_token",
           "attention_flops_per_token",
           "attention_keys_per_query",
           "attention_projection_flops_per_token", "forward_flops_per_token",
           "frozen_weight_gradient_flops_per_token",
           "hardware_flops_per_token", "layer_flops_per_token", "logits_flops_per_token",
           "mlp_flops_per_token", "model_flops_per_token", "narayanan_eq3_flops_per_token",
           "palm_params", "recompute_flops_per_token"]
