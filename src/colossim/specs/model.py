"""The model: a transformer's architecture (dense or MoE, MHA / GQA / MQA / MLA), its parameter
counts, and the model catalog (``catalog/data/models.csv``, a source on every row).

Parameter counts are exact for the block the fields describe: weights of every matrix, biases when
``bias`` (or ``qkv_bias``), the norms' gains (and LayerNorm biases when the model has biases), the
token embedding, a learned position table when ``position == "learned"`` and an output head unless
``tied_embeddings``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from colossim.catalog.loader import data_path, label_index, label_key, load_models, split_aliases
from colossim.errors import SpecError, UnknownNameError
from colossim.specs._validation import SpecChoice, SpecInt, validate_model


class Activation(SpecChoice):
    """MLP activation.  ``swiglu`` / ``geglu`` are gated (three matrices: gate, up, down); the
    others use two (up, down)."""

    gelu = "gelu"
    swiglu = "swiglu"
    geglu = "geglu"
    relu = "relu"
    relu2 = "relu2"

    @property
    def gated(self) -> bool:
        return self in (Activation.swiglu, Activation.geglu)

    @property
    def mlp_matrices(self) -> int:
        """Weight matrices in one MLP (or one expert): 3 when gated, else 2."""
        return 3 if self.gated else 2


AttentionKind = Literal["mha", "gqa", "mqa", "mla"]


#: pydantic's own reading of an integer field, for the defaults derived before validation
_INT = TypeAdapter(int)


def _lax_int(value: Any) -> int | None:
    """``value`` as pydantic's lax mode will read it into an int field ("8", "8.0", 8.0 are 8, True
    is 1), else None (the field's validation then names it)."""
    if value is None:
        return None
    try:
        return _INT.validate_python(value)
    except ValidationError:
        return None


#: Layer characters of a hybrid pattern (Megatron-Core ``mamba_hybrid_layer_allocation.Symbols``,
#: megatron-core 0.16.1 on PyPI): a Mamba-2 mixer, an attention layer, an MLP layer, an MoE layer;
#: and G, colossim's own, a Gated DeltaNet mixer (Megatron-Core's ``ssm/gated_delta_net.py``, which
#: Qwen3-Next's layers alternate with gated attention).
HYBRID_LAYER_KINDS = {"M": "mamba", "*": "attention", "-": "mlp", "E": "experts", "G": "gdn"}
#: A hybrid's recurrent layer kinds: each keeps a fixed state per sequence instead of a KV cache.
RECURRENT_KINDS = ("mamba", "gdn")
#: Layer kinds whose MLP is a mixture of experts: a transformer's MoE block, a hybrid's MoE layer.
MOE_KINDS = ("moe", "experts")
#: Mamba-2 defaults, as Megatron-Core's ``MambaMixer`` and NeMo's Nemotron-H configurations set
#: them (megatron-core 0.16.1 ``ssm/mamba_mixer.py``: ``expand=2``, ``d_conv=4``,
#: ``chunk_size=128``; nemo_toolkit 2.5.0 ``collections/llm/gpt/model/ssm.py``
#: ``NemotronHConfigBase``: ``mamba_head_dim=64``, ``mamba_num_groups=8``; ``mamba_state_dim``
#: 128 in the 4B / 8B configurations; Dao and Gu 2024, "Transformers are SSMs", arXiv:2405.21060,
#: the Mamba-2 block).
MAMBA_EXPAND = 2
MAMBA_HEAD_DIM = 64
MAMBA_STATE_DIM = 128
MAMBA_GROUPS = 8
MAMBA_CONV_WIDTH = 4
MAMBA_CHUNK_TOKENS = 128
#: Gated DeltaNet defaults: the causal convolution's taps (Megatron-Core ``linear_conv_kernel_dim``;
#: transformers 5.24.0 Qwen3NextConfig ``linear_conv_kernel_dim = 4``) and the chunk of the chunked
#: delta rule (fla-core 0.6.0 on PyPI, ``fla/ops/gated_delta_rule/chunk.py`` ``chunk_size=64``).
GDN_CONV_WIDTH = 4
GDN_CHUNK_TOKENS = 64


class ModelSpec(BaseModel):
    """A decoder-only transformer.  Omitted fields get their usual defaults: ``kv_heads = heads``,
    ``head_dim = hidden / heads``, ``attention`` from the head counts (or ``mla`` when the MLA
    ranks are given)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    name: str = Field("custom", description="catalog id, or a label for a custom model")
    layers: SpecInt = Field(ge=1, description="transformer blocks")
    hidden: SpecInt = Field(ge=1, description="model width h")
    ffn_hidden: SpecInt | None = Field(None, ge=1, description="dense MLP width (blank when every layer is MoE)")
    heads: SpecInt = Field(ge=1, description="query heads")
    kv_heads: SpecInt | None = Field(None, ge=1, description="key/value heads (GQA groups); default heads")
    head_dim: SpecInt | None = Field(None, ge=1, description="per-head width; default hidden / heads")
    vocab: SpecInt = Field(ge=1)
    seq_len: SpecInt = Field(ge=1, description="training sequence length (tokens)")
    max_seq_len: SpecInt | None = Field(None, ge=1, description="longest context the model supports")
    activation: Activation = Activation.gelu
    experts: SpecInt = Field(0, ge=0, description="routed experts per MoE layer; 0 or 1 = dense")
    top_k: SpecInt = Field(0, ge=0, description="routed experts per token")
    moe_ffn_hidden: SpecInt | None = Field(None, ge=1, description="width of one expert (and of one shared expert)")
    shared_experts: SpecInt = Field(0, ge=0, description="always-on experts per MoE layer")
    first_dense_layers: SpecInt = Field(0, ge=0, description="leading layers with a dense MLP (MoE models)")
    moe_layer_interval: SpecInt = Field(1, ge=1, description="after the first_dense_layers, every n-th layer "
                                        "is an MoE layer and the others have the dense MLP (Llama 4 Maverick: "
                                        "2; Hugging Face interleave_moe_layer_step, Megatron-Core moe_layer_freq)")
    routing_groups: SpecInt = Field(0, ge=0, description="group-limited routing: the routed experts fall into "
                                "this many equal groups (Hugging Face n_group); 0: no limit")
    routing_groups_per_token: SpecInt = Field(0, ge=0, description="groups a token's top_k experts may come "
                                          "from (Hugging Face topk_group; DeepSeek's device- / node-limited "
                                          "routing M)")
    attention: AttentionKind | None = None
    mla_q_lora_rank: SpecInt | None = Field(None, ge=1)
    mla_kv_lora_rank: SpecInt | None = Field(None, ge=1)
    mla_qk_rope_head_dim: SpecInt | None = Field(None, ge=1)
    mla_qk_nope_head_dim: SpecInt | None = Field(None, ge=1)
    mla_v_head_dim: SpecInt | None = Field(None, ge=1)
    tied_embeddings: bool = False
    parallel_block: bool = Field(False, description="attention and MLP in parallel (PaLM): one residual add")
    parallel_norms: int = Field(1, ge=1, le=2, description="LayerNorms of a parallel block: 1 shared by attention "
                                          "and MLP (PaLM, Falcon-7B) or 2, one each (GPT-NeoX, Falcon-40B/180B)")
    mtp_modules: SpecInt = Field(0, ge=0, description="multi-token-prediction modules trained with the model "
                             "(DeepSeek-V3: 1), each a transformer block of the last layer's kind plus a "
                             "2h x h projection, sharing the embedding and output head, run on the last "
                             "pipeline stage after the main model; outside the parameter counts")
    sliding_window: SpecInt | None = Field(None, ge=1, description="keys a sliding-window layer attends: each "
                                           "query sees itself and the window - 1 tokens before it (Mistral 7B, "
                                           "Gemma 2); blank: every layer attends the whole sequence")
    sliding_window_layers: SpecInt | None = Field(None, ge=0, description="layers with sliding-window attention, "
                                                  "the others attending the whole sequence (Gemma 2: half of "
                                                  "them); default every layer when sliding_window is given")
    attention_chunk: SpecInt | None = Field(None, ge=1, description="tokens of one chunk in a chunked-attention "
                                            "layer: the sequence is cut into chunks of this many tokens and "
                                            "each query sees the keys of its own chunk up to itself (Llama 4's "
                                            "RoPE layers: 8,192); blank: no chunked layers")
    attention_chunk_layers: SpecInt | None = Field(None, ge=0, description="layers with chunked attention, the "
                                                   "others global (Llama 4: 3 in 4); default every layer when "
                                                   "attention_chunk is given")
    norm: Literal["layernorm", "rmsnorm"] = "rmsnorm"
    position: Literal["rope", "learned", "alibi", "none"] = "rope"
    bias: bool = Field(False, description="every linear layer (and LayerNorm) has a bias")
    qkv_bias: bool = Field(False, description="only the QKV projection has a bias (Qwen2)")
    dropout: bool = Field(False, description="trained with dropout (stores dropout masks)")
    hybrid_pattern: str | None = Field(None, description="a hybrid Mamba-Transformer's layers, one character "
                                       "each (Megatron-Core's hybrid_override_pattern): M a Mamba-2 mixer, * an "
                                       "attention layer, - an MLP layer, E an MoE layer (experts, top_k, "
                                       "moe_ffn_hidden), G a Gated DeltaNet mixer, each with its own norm and "
                                       "residual (Nemotron-H, Nemotron 3; Qwen3-Next as G/* and E pairs); "
                                       "blank: every layer is a transformer block")
    mamba_heads: SpecInt | None = Field(None, ge=1, description="Mamba-2 heads of a mixer; default "
                                        "MAMBA_EXPAND x hidden / mamba_head_dim")
    mamba_head_dim: SpecInt = Field(MAMBA_HEAD_DIM, ge=1, description="channels of one Mamba-2 head (P)")
    mamba_state_dim: SpecInt = Field(MAMBA_STATE_DIM, ge=1, description="state size of one Mamba-2 head (N)")
    mamba_groups: SpecInt = Field(MAMBA_GROUPS, ge=1, description="B / C groups of a Mamba-2 mixer (G), "
                                  "shared by its heads")
    mamba_conv_width: SpecInt = Field(MAMBA_CONV_WIDTH, ge=1, description="taps of the Mamba-2 mixer's "
                                      "causal depthwise convolution")
    mamba_chunk_tokens: SpecInt = Field(MAMBA_CHUNK_TOKENS, ge=1, description="tokens of one chunk of the "
                                        "Mamba-2 state-space-duality (SSD) scan")
    gdn_key_heads: SpecInt | None = Field(None, ge=1, description="query / key heads of a Gated DeltaNet mixer "
                                          "(Qwen3-Next linear_num_key_heads)")
    gdn_value_heads: SpecInt | None = Field(None, ge=1, description="value heads of a Gated DeltaNet mixer, a "
                                            "multiple of the key heads (linear_num_value_heads); each keeps a "
                                            "key_head_dim x value_head_dim state")
    gdn_key_head_dim: SpecInt | None = Field(None, ge=1, description="width of a Gated DeltaNet key head")
    gdn_value_head_dim: SpecInt | None = Field(None, ge=1, description="width of a Gated DeltaNet value head")
    gdn_conv_width: SpecInt = Field(GDN_CONV_WIDTH, ge=1, description="taps of the Gated DeltaNet mixer's "
                                    "causal depthwise convolution")
    gdn_chunk_tokens: SpecInt = Field(GDN_CHUNK_TOKENS, ge=1, description="tokens of one chunk of the chunked "
                                      "gated delta rule")
    attention_output_gate: bool = Field(False, description="a hybrid's attention gates its output by a sigmoid "
                                        "of a second query-wide projection (Qwen3-Next's gated attention)")
    qk_norm: bool = Field(False, description="an RMSNorm over each query and key head before the rotary "
                          "embedding, its gain one head wide and shared by the heads (Qwen3, Gemma 3, "
                          "OLMo 2, Qwen3-Next: q_norm / k_norm)")
    post_norms: bool = Field(False, description="a norm on the attention's and the MLP's output before each "
                             "residual add, beside the two input norms: four norms a layer (Gemma 2 and 3: "
                             "post_attention_layernorm, post_feedforward_layernorm)")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        d = {k: v for k, v in data.items() if v is not None}
        heads, hidden = _lax_int(d.get("heads")), _lax_int(d.get("hidden"))
        mla = d.get("attention") == "mla" or d.get("mla_kv_lora_rank") is not None
        if isinstance(heads, int) and heads > 0 and isinstance(hidden, int):
            if "head_dim" not in d and not mla:
                if hidden % heads:
                    raise ValueError(f"hidden {hidden} is not divisible by heads {heads}: give head_dim")
                d["head_dim"] = hidden // heads
            d.setdefault("kv_heads", heads)
            if "attention" not in d:
                kv = d["kv_heads"]
                d["attention"] = ("mla" if mla else "mha" if kv == heads else "mqa" if kv == 1
                                  else "gqa")
        return d

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.hybrid_pattern is not None:
            self._check_hybrid()
        if self.heads % self.kv_heads:
            raise ValueError(f"kv_heads {self.kv_heads} must divide heads {self.heads}")
        if self.attention == "mla":
            need = ("mla_kv_lora_rank", "mla_qk_rope_head_dim", "mla_qk_nope_head_dim", "mla_v_head_dim")
            missing = [f for f in need if getattr(self, f) is None]
            if missing:
                raise ValueError(f"attention 'mla' needs {', '.join(missing)}")
        if self.is_moe:
            if not 1 <= self.top_k <= self.experts:
                raise ValueError(f"top_k {self.top_k} must be between 1 and experts {self.experts}")
            if self.moe_ffn_hidden is None:
                raise ValueError("an MoE model (experts > 1) needs moe_ffn_hidden")
            if self.first_dense_layers > self.layers:
                raise ValueError(f"first_dense_layers {self.first_dense_layers} > layers {self.layers}")
            if self.moe_layer_interval > 1 and self.moe_layers == 0:
                raise ValueError(f"no MoE layer: moe_layer_interval {self.moe_layer_interval} is more than the "
                                 f"{self.layers - self.first_dense_layers} layers after the first_dense_layers")
            self._check_routing_groups()
        if self.dense_layers and self.ffn_hidden is None:
            raise ValueError("dense MLP layers need ffn_hidden")
        if self.sliding_window_layers is not None:
            if self.sliding_window is None:
                raise ValueError("sliding_window_layers needs sliding_window (the window's tokens)")
            if self.sliding_window_layers > self.layers:
                raise ValueError(f"sliding_window_layers {self.sliding_window_layers} > layers {self.layers}")
        if self.attention_chunk_layers is not None:
            if self.attention_chunk is None:
                raise ValueError("attention_chunk_layers needs attention_chunk (the chunk's tokens)")
            if self.attention_chunk_layers > self.layers:
                raise ValueError(f"attention_chunk_layers {self.attention_chunk_layers} > layers {self.layers}")
        if self.qk_norm and self.attention == "mla":
            raise ValueError("qk_norm normalises GQA / MHA heads (MLA has its own latent norms): allowed attention: "
                             "gqa, mha, mqa")
        if self.post_norms and self.parallel_block:
            raise ValueError("post_norms follow attention and MLP in sequence: allowed: parallel_block false")
        if self.attention_output_gate and not self.is_hybrid:
            raise ValueError("attention_output_gate is modelled in a hybrid_pattern model's attention layers: "
                             "allowed: false without hybrid_pattern")
        if self.windowed_layers and self.chunked_layers:
            raise ValueError("a model has sliding-window or chunked-attention layers, not both: allowed: one of "
                             "sliding_window, attention_chunk")
        return self

    def _check_hybrid(self) -> None:
        pattern = self.hybrid_pattern
        bad = sorted(set(pattern) - set(HYBRID_LAYER_KINDS))
        if bad or not pattern:
            raise ValueError(f"hybrid_pattern {pattern!r} has {', '.join(map(repr, bad)) or 'no layers'}: "
                             f"allowed characters: M (Mamba-2), G (Gated DeltaNet), * (attention), - (MLP), "
                             f"E (MoE)")
        if len(pattern) != self.layers:
            raise ValueError(f"hybrid_pattern has {len(pattern)} layers but layers is {self.layers}: they "
                             f"must agree")
        if ("E" in pattern) != self.is_moe:
            raise ValueError("hybrid_pattern has MoE layers (E) but no experts: give experts, top_k and "
                             "moe_ffn_hidden" if "E" in pattern else
                             "a hybrid_pattern model's experts live in its MoE layers: allowed: E in the pattern, "
                             "or no experts")
        if self.attention_output_gate and self.attention == "mla":
            raise ValueError("attention_output_gate gates GQA / MHA attention: allowed attention: gqa, mha, mqa")
        if self.first_dense_layers or self.moe_layer_interval > 1:
            raise ValueError("a hybrid_pattern model places its MoE layers by E: allowed first_dense_layers 0 and "
                             "moe_layer_interval 1")
        unsupported = [f for f, on in (("parallel_block", self.parallel_block), ("dropout", self.dropout),
                                       ("post_norms", self.post_norms),
                                       ("mtp_modules", self.mtp_modules > 0),
                                       ("sliding_window", self.sliding_window is not None),
                                       ("attention_chunk", self.attention_chunk is not None)) if on]
        if unsupported:
            raise ValueError(f"a hybrid_pattern model cannot have {', '.join(unsupported)}: allowed: Mamba-2, "
                             f"attention, MLP and MoE layers")
        if self.mlp_layers and self.ffn_hidden is None:
            raise ValueError("hybrid_pattern has MLP layers (-): they need ffn_hidden")
        if self.mamba_layers:
            if self.mamba_heads_total % self.mamba_groups:
                raise ValueError(f"mamba_groups {self.mamba_groups} must divide mamba_heads "
                                 f"{self.mamba_heads_total}")
        if self.gdn_layers:
            need = ("gdn_key_heads", "gdn_value_heads", "gdn_key_head_dim", "gdn_value_head_dim")
            missing = [f for f in need if getattr(self, f) is None]
            if missing:
                raise ValueError(f"hybrid_pattern has Gated DeltaNet layers (G): they need {', '.join(missing)}")
            if self.gdn_value_heads % self.gdn_key_heads:
                raise ValueError(f"gdn_key_heads {self.gdn_key_heads} must divide gdn_value_heads "
                                 f"{self.gdn_value_heads}")

    def _check_routing_groups(self) -> None:
        g, m = self.routing_groups, self.routing_groups_per_token
        if not g and not m:
            return
        if g < 1 or self.experts % g:
            raise ValueError(f"routing_groups {g} must divide experts {self.experts}")
        if not 1 <= m <= g:
            raise ValueError(f"routing_groups_per_token {m} must be between 1 and routing_groups {g}")
        if self.top_k > m * (self.experts // g):
            raise ValueError(f"top_k {self.top_k} exceeds the {m * (self.experts // g)} experts of "
                             f"routing_groups_per_token {m} groups")

    @property
    def routing_limited(self) -> bool:
        """Group-limited routing: a token's experts come from fewer than all groups."""
        return self.is_moe and 0 < self.routing_groups_per_token < self.routing_groups

    # --- shape helpers ----------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def moe_layers(self) -> int:
        """Layers with routed experts: every ``moe_layer_interval``-th layer after the
        ``first_dense_layers`` (Hugging Face Llama 4's layers step - 1, 2 step - 1, ...); none for a
        dense model."""
        if not self.is_moe:
            return 0
        if self.is_hybrid:
            return self._pattern_count("E")
        return (self.layers - min(self.first_dense_layers, self.layers)) // self.moe_layer_interval

    @property
    def dense_layers(self) -> int:
        """Transformer blocks with a dense MLP: all of them for a dense model; for MoE the
        ``first_dense_layers`` and those between MoE layers; none in a hybrid, whose layers are
        :attr:`layer_kinds`."""
        return 0 if self.is_hybrid else self.layers - self.moe_layers

    # --- hybrid Mamba-Transformer models ----------------------------------------------------
    @property
    def is_hybrid(self) -> bool:
        """Layers given one by one by :attr:`hybrid_pattern` (Mamba-2, attention and MLP layers)."""
        return self.hybrid_pattern is not None

    def _pattern_count(self, char: str) -> int:
        return self.hybrid_pattern.count(char) if self.is_hybrid else 0

    @property
    def mamba_layers(self) -> int:
        """Mamba-2 mixer layers (M)."""
        return self._pattern_count("M")

    @property
    def gdn_layers(self) -> int:
        """Gated DeltaNet mixer layers (G)."""
        return self._pattern_count("G")

    @property
    def recurrent_layers(self) -> int:
        """Layers that keep a recurrent state instead of a KV cache (Mamba-2 and Gated DeltaNet)."""
        return self.mamba_layers + self.gdn_layers

    @property
    def mlp_layers(self) -> int:
        """A hybrid's MLP layers (-); 0 for a transformer, whose MLPs sit in its blocks."""
        return self._pattern_count("-")

    @property
    def attention_layers(self) -> int:
        """Layers that attend: every block of a transformer, a hybrid's attention layers (*)."""
        return self._pattern_count("*") if self.is_hybrid else self.layers

    @property
    def layer_kinds(self) -> tuple[tuple[str, int], ...]:
        """(kind, count) of the model's layers, kinds with none left out: ``dense`` and ``moe``
        transformer blocks, or a hybrid's ``mamba``, ``attention``, ``mlp`` and ``experts`` (MoE)
        layers."""
        if self.is_hybrid:
            kinds = (("mamba", self.mamba_layers), ("gdn", self.gdn_layers), ("attention", self.attention_layers),
                     ("mlp", self.mlp_layers), ("experts", self.moe_layers))
        else:
            kinds = (("dense", self.dense_layers), ("moe", self.moe_layers))
        return tuple((k, n) for k, n in kinds if n > 0)

    def stage_layer_kinds(self, stage_layers: np.ndarray | int) -> list[tuple[str, np.ndarray]]:
        """(kind, count) of the layers a pipeline stage of ``stage_layers`` holds at its heaviest:
        as many MoE layers as it can (:meth:`most_moe_layers_in`); a hybrid's kinds in their
        shares of the model (the pattern interleaves them)."""
        n = np.asarray(stage_layers, dtype=float)
        if self.is_hybrid:
            return [(k, n * c / self.layers) for k, c in self.layer_kinds]
        moe_on = self.most_moe_layers_in(stage_layers)
        present = dict(self.layer_kinds)
        return [(k, v) for k, v in (("dense", n - moe_on), ("moe", moe_on)) if k in present]

    @property
    def mamba_heads_total(self) -> int:
        """Mamba-2 heads of a mixer: ``mamba_heads``, or MAMBA_EXPAND x hidden / mamba_head_dim."""
        return self.mamba_heads or MAMBA_EXPAND * self.hidden // self.mamba_head_dim

    @property
    def mamba_inner(self) -> int:
        """Inner width of a Mamba-2 mixer: heads x head_dim (d_inner)."""
        return self.mamba_heads_total * self.mamba_head_dim

    @property
    def mamba_in_proj_width(self) -> int:
        """Outputs of the mixer's input projection: z and x (d_inner each), B and C (groups x
        state each) and one dt per head (Megatron-Core ``MambaMixer.in_proj``)."""
        return 2 * self.mamba_inner + 2 * self.mamba_groups * self.mamba_state_dim + self.mamba_heads_total

    @property
    def gdn_key_width(self) -> int:
        """Query (and key) width of a Gated DeltaNet mixer: key heads x key_head_dim."""
        return self.gdn_key_heads * self.gdn_key_head_dim

    @property
    def gdn_value_width(self) -> int:
        """Value (and output gate) width of a Gated DeltaNet mixer: value heads x value_head_dim."""
        return self.gdn_value_heads * self.gdn_value_head_dim

    @property
    def gdn_in_proj_width(self) -> int:
        """Outputs of the mixer's input projection: q and k, v and the output gate z, and one beta
        and one decay (alpha) per value head (Megatron-Core ``GatedDeltaNet.in_proj_dim``;
        transformers' Qwen3-Next ``in_proj_qkvz`` and ``in_proj_ba``)."""
        return 2 * self.gdn_key_width + 2 * self.gdn_value_width + 2 * self.gdn_value_heads

    @property
    def gdn_conv_channels(self) -> int:
        """Channels of the mixer's causal convolution: q, k and v."""
        return 2 * self.gdn_key_width + self.gdn_value_width

    @property
    def mamba_conv_channels(self) -> int:
        """Channels of the mixer's depthwise convolution: x, B and C."""
        return self.mamba_inner + 2 * self.mamba_groups * self.mamba_state_dim

    def most_moe_layers_in(self, n: np.ndarray | int) -> np.ndarray | int:
        """The most MoE layers that ``n`` consecutive layers hold (a pipeline stage's worst case):
        all of them up to :attr:`moe_layers`, or under interleaving one in ``moe_layer_interval``,
        rounded up."""
        return np.minimum(-(-np.asarray(n) // self.moe_layer_interval), self.moe_layers)

    @property
    def windowed_layers(self) -> int:
        """Layers whose attention sees only the last ``sliding_window`` tokens (0 without a window)."""
        if self.sliding_window is None:
            return 0
        return self.layers if self.sliding_window_layers is None else self.sliding_window_layers

    @property
    def chunked_layers(self) -> int:
        """Layers whose queries see only their own ``attention_chunk`` (0 without chunks)."""
        if self.attention_chunk is None:
            return 0
        return self.layers if self.attention_chunk_layers is None else self.attention_chunk_layers

    @property
    def local_attention(self) -> tuple[str, int, int] | None:
        """(kind, span, layers) of the layers whose attention is local, ``("window", sliding_window,
        windowed_layers)`` or ``("chunk", attention_chunk, chunked_layers)``; None when every layer
        is global."""
        if self.windowed_layers:
            return "window", self.sliding_window, self.windowed_layers
        if self.chunked_layers:
            return "chunk", self.attention_chunk, self.chunked_layers
        return None

    @property
    def qk_head_dim(self) -> int:
        """Width of one query/key head (MLA: nope + rope parts)."""
        if self.attention == "mla":
            return self.mla_qk_nope_head_dim + self.mla_qk_rope_head_dim
        return self.head_dim

    @property
    def v_head_dim(self) -> int:
        return self.mla_v_head_dim if self.attention == "mla" else self.head_dim

    @property
    def norms_per_layer(self) -> int:
        """Norms of a transformer block: a parallel block's one or two, else the two input norms
        (and with :attr:`post_norms` the two output norms)."""
        return self.parallel_norms if self.parallel_block else 4 if self.post_norms else 2

    @property
    def _norm_params(self) -> int:
        return self.hidden * (2 if self.norm == "layernorm" and self.bias else 1)

    # --- parameter counts --------------------------------------------------------------------
    @property
    def params_attention(self) -> int:
        """Attention weights (and biases) of one layer."""
        h, a = self.hidden, self.heads
        if self.attention == "mla":
            qk, nope, rope, v = (self.qk_head_dim, self.mla_qk_nope_head_dim,
                                 self.mla_qk_rope_head_dim, self.mla_v_head_dim)
            r_q, r_kv = self.mla_q_lora_rank, self.mla_kv_lora_rank
            q = h * a * qk if r_q is None else h * r_q + r_q + r_q * a * qk  # + q_a_layernorm gain
            kv = h * (r_kv + rope) + r_kv + r_kv * a * (nope + v)  # + kv_a_layernorm gain
            return q + kv + a * v * h
        q_dim, kv_dim = a * self.head_dim, self.kv_heads * self.head_dim
        weights = h * q_dim * (2 if self.attention_output_gate else 1) + 2 * h * kv_dim + q_dim * h
        biases = (q_dim + 2 * kv_dim + h if self.bias else
                  q_dim + 2 * kv_dim if self.qkv_bias else 0)
        qk_norms = 2 * self.head_dim if self.qk_norm else 0  # q_norm and k_norm gains, one head wide
        return weights + biases + qk_norms

    def _mlp_params(self, width: int) -> int:
        m = self.activation.mlp_matrices
        return m * self.hidden * width + ((m - 1) * width + self.hidden if self.bias else 0)

    @property
    def params_mlp_dense(self) -> int:
        """Dense MLP of one layer (0 when the model has no dense layers)."""
        return self._mlp_params(self.ffn_hidden) if self.ffn_hidden else 0

    @property
    def params_expert(self) -> int:
        """One routed (or shared) expert."""
        return self._mlp_params(self.moe_ffn_hidden) if self.is_moe else 0

    @property
    def params_router(self) -> int:
        return self.hidden * self.experts if self.is_moe else 0

    @property
    def params_per_layer_dense(self) -> int:
        """A layer with a dense MLP: attention + norms + MLP."""
        return self.params_attention + self.norms_per_layer * self._norm_params + self.params_mlp_dense

    @property
    def params_per_layer_moe(self) -> int:
        """An MoE layer, all experts: attention + norms + router + routed and shared experts."""
        return (self.params_attention + self.norms_per_layer * self._norm_params + self.params_router
                + (self.experts + self.shared_experts) * self.params_expert)

    @property
    def params_mamba(self) -> int:
        """One Mamba-2 mixer: input and output projections, the convolution's taps and biases, each
        head's dt bias, A and D, and the gated RMSNorm's gain over d_inner (Megatron-Core
        ``MambaMixer``; no projection biases)."""
        d_in, c = self.mamba_inner, self.mamba_conv_channels
        return (self.hidden * self.mamba_in_proj_width + c * (self.mamba_conv_width + 1)
                + 3 * self.mamba_heads_total + d_in + d_in * self.hidden)

    @property
    def params_gdn(self) -> int:
        """One Gated DeltaNet mixer: input and output projections, the convolution's taps (no bias),
        each value head's dt bias and decay (A_log), and the gated RMSNorm's gain over a value head
        (Megatron-Core ``GatedDeltaNet``; transformers' Qwen3-Next ``Qwen3NextGatedDeltaNet``)."""
        return (self.hidden * self.gdn_in_proj_width + self.gdn_conv_channels * self.gdn_conv_width
                + 2 * self.gdn_value_heads + self.gdn_value_head_dim + self.gdn_value_width * self.hidden)

    def params_per_layer(self, kind: str) -> int:
        """Parameters of one layer of ``kind`` (:attr:`layer_kinds`), all experts; a hybrid's
        layers have one norm each."""
        if kind == "dense":
            return self.params_per_layer_dense
        if kind == "moe":
            return self.params_per_layer_moe
        body = {"mamba": self.params_mamba, "attention": self.params_attention, "mlp": self.params_mlp_dense,
                "gdn": self.params_gdn if self.gdn_layers else 0,
                "experts": self.params_router + (self.experts + self.shared_experts) * self.params_expert}
        if kind not in body:
            raise ValueError(f"layer kind must be one of dense, moe, {', '.join(body)}; got {kind!r}")
        return body[kind] + self._norm_params

    def routed_params_per_layer(self, kind: str) -> int:
        """Routed-expert parameters of one layer of ``kind`` (0 but in an MoE block or layer)."""
        return self.experts * self.params_expert if kind in MOE_KINDS else 0

    @property
    def params_per_layer_moe_active(self) -> int:
        """An MoE layer as one token sees it: top_k routed experts plus the shared ones."""
        return (self.params_per_layer_moe
                - (self.experts - self.top_k) * self.params_expert)

    @property
    def params_embedding(self) -> int:
        """Lookup tables (token embedding + learned positions): no matmul FLOPs.  The output head
        is :attr:`params_output_head` (the same matrix when tied)."""
        pos = (self.max_seq_len or self.seq_len) * self.hidden if self.position == "learned" else 0
        return self.vocab * self.hidden + pos

    @property
    def params_output_head(self) -> int:
        """Untied output projection (0 when tied to the embedding)."""
        return 0 if self.tied_embeddings else self.vocab * self.hidden

    @property
    def params_final_norm(self) -> int:
        """The norm after the last layer."""
        return self._norm_params

    @property
    def params_total(self) -> int:
        """Every parameter, all experts."""
        return (self.params_embedding + self.params_output_head + self.params_final_norm
                + sum(n * self.params_per_layer(k) for k, n in self.layer_kinds))

    @property
    def params_active(self) -> int:
        """Parameters one token uses (routed experts: top_k of them), embeddings included."""
        return (self.params_total
                - self.moe_layers * (self.experts - self.top_k) * self.params_expert)

    @property
    def params_expert_total(self) -> int:
        """Routed-expert parameters of the whole model (sharded by expert parallelism)."""
        return self.moe_layers * self.experts * self.params_expert


# --- the catalog --------------------------------------------------------------------------
class ModelRow(BaseModel):
    """One row of ``models.csv``: the architecture, the published parameter count and sources."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    aliases: str | None = None
    params_b: float = Field(gt=0, description="published parameter count, billions")
    active_params_b: float | None = Field(None, gt=0)
    layers: int
    hidden: int
    ffn_hidden: int | None = None
    heads: int
    kv_heads: int | None = None
    head_dim: int | None = None
    vocab: int
    seq_len: int
    max_seq_len: int | None = None
    activation: Activation
    norm: Literal["layernorm", "rmsnorm"]
    position: Literal["rope", "learned", "alibi", "none"]
    bias: bool = False
    qkv_bias: bool = False
    dropout: bool = False
    tied_embeddings: bool = False
    experts: int | None = None
    top_k: int | None = None
    moe_ffn_hidden: int | None = None
    shared_experts: int | None = None
    first_dense_layers: int | None = None
    moe_layer_interval: int | None = None
    routing_groups: int | None = None
    routing_groups_per_token: int | None = None
    attention: AttentionKind | None = None
    mla_q_lora_rank: int | None = None
    mla_kv_lora_rank: int | None = None
    mla_qk_rope_head_dim: int | None = None
    mla_qk_nope_head_dim: int | None = None
    mla_v_head_dim: int | None = None
    parallel_block: bool = False
    parallel_norms: int | None = Field(None, ge=1, le=2)
    mtp_modules: int | None = None
    sliding_window: int | None = None
    sliding_window_layers: int | None = None
    attention_chunk: int | None = None
    attention_chunk_layers: int | None = None
    hybrid_pattern: str | None = None
    mamba_heads: int | None = None
    mamba_head_dim: int | None = None
    mamba_state_dim: int | None = None
    mamba_groups: int | None = None
    gdn_key_heads: int | None = None
    gdn_value_heads: int | None = None
    gdn_key_head_dim: int | None = None
    gdn_value_head_dim: int | None = None
    attention_output_gate: bool = False
    qk_norm: bool = False
    post_norms: bool = False
    software: str | None = Field(None, description="the software stack of the model's developers' "
                                 "published training runs (software_stacks.csv); a training spec naming "
                                 "this model and no training.software gets it")
    source: str
    notes: str | None = None

    @property
    def alias_list(self) -> list[str]:
        return split_aliases(self.aliases)

    @property
    def spec_fields(self) -> dict[str, Any]:
        """The row's architecture fields as given (blanks omitted, derived fields not filled)."""
        keep = set(ModelSpec.model_fields) - {"name"}
        d = {k: v for k, v in self.model_dump().items() if k in keep and v is not None}
        d["name"] = self.id
        return d


@dataclass(frozen=True)
class ModelCatalog:
    """The packaged model catalog: rows by id, and aliases to ids."""

    rows: dict[str, ModelRow]
    aliases: dict[str, str]

    @cached_property
    def labels(self) -> dict[str, str]:
        """Model ids by the :func:`label_key` of each row's id, name and aliases (first row wins)."""
        return label_index(self.rows.values())

    def _key(self, name: str) -> str | None:
        key = name.strip().lower()
        key = self.aliases.get(key, key)
        return key if key in self.rows else catalog_id_for_label(name, self)

    def row(self, name: str) -> ModelRow:
        """The row for an id or alias (case-insensitive), or a label that names one ignoring spaces
        and punctuation ("Llama 2 70B"); :class:`UnknownNameError` otherwise."""
        key = self._key(name)
        if key is None:
            raise UnknownNameError("model", name, list(self.rows))
        return self.rows[key]

    def has(self, name: str) -> bool:
        return self._key(name) is not None

    def names_exactly(self, name: str) -> bool:
        """Whether ``name`` is a row's id or alias (case-insensitive), not only a label that names one."""
        key = name.strip().lower()
        return self.aliases.get(key, key) in self.rows

    def software_of(self, name: str) -> str | None:
        """The software stack a catalog model's row names (None for a model not in the catalog, or
        whose row names none).  ``name`` may carry complete_by_shape's " (by shape)" suffix."""
        key = name.removesuffix(BY_SHAPE_SUFFIX)
        return self.row(key).software if self.has(key) else None

    def spec(self, name: str) -> ModelSpec:
        """The :class:`ModelSpec` of a catalog model."""
        return ModelSpec.model_validate(self.row(name).spec_fields)


@lru_cache(maxsize=1)
def load_model_catalog() -> ModelCatalog:
    """The model catalog, loaded once per process (every row must build a valid ModelSpec)."""
    rows = load_models(data_path("models.csv"), ModelRow)
    aliases = {a: r.id for r in rows for a in r.alias_list}
    for r in rows:
        ModelSpec.model_validate(r.spec_fields)
    return ModelCatalog({r.id: r for r in rows}, aliases)


#: Names published tables (and the team's reference file's columns) give MoE fields, and the spec
#: field each one is.
TABLE_FIELD_NAMES = {"moe_experts": "experts", "moe_topk": "top_k"}


def read_table_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """A model mapping with the MoE fields as published tables name them (``moe_experts`` /
    ``moe_topk``, the reference file's columns) renamed to the spec's (``experts`` / ``top_k``)
    where those are not given."""
    d = dict(data)
    for table, field in TABLE_FIELD_NAMES.items():
        if table in d and field not in d:
            d[field] = d.pop(table)
    return d


def _tabled_moe_width(data: Mapping[str, Any]) -> int | None:
    """The ``ffn_hidden`` of an MoE model (``experts`` > 1) that gives no ``moe_ffn_hidden``: a
    table's one MLP width, which may be the experts' (Mixtral, Jiang et al. 2024 Table 1: 14336) or
    the dense layers' (DeepSeek-V3: 18432, its experts 2048); None when there is no such ambiguity."""
    experts = data.get("experts")
    if isinstance(experts, int) and experts > 1 and data.get("moe_ffn_hidden") is None:
        return data.get("ffn_hidden")
    return None


def _agrees_with_tabled_width(base: Mapping[str, Any], width: int | None) -> bool:
    """Whether a catalog model has ``width`` (:func:`_tabled_moe_width`) as its experts' or its
    dense layers' MLP width (any model, when there is no tabled width)."""
    return width is None or width in (base.get("moe_ffn_hidden"), base.get("ffn_hidden"))


def _expert_width_from_table(data: dict[str, Any]) -> dict[str, Any]:
    """An MoE mapping matching no catalog model whose one MLP width is ambiguous
    (:func:`_tabled_moe_width`) and which has no dense layers (``first_dense_layers``): every
    layer's MLP is the MoE, so the width is one expert's, as Mixtral-family tables and Hugging Face
    configs (``intermediate_size``) write it.  With dense layers it stays ambiguous and
    ``moe_ffn_hidden`` must be given."""
    if _tabled_moe_width(data) is not None and not data.get("first_dense_layers"):
        data = dict(data)
        data["moe_ffn_hidden"] = data.pop("ffn_hidden")
    return data


#: Key of a model mapping that names a local Hugging Face ``config.json`` (the other keys override it).
HF_CONFIG_KEY = "hf_config"


def names_hf_config(x: str, base_dir: Any = None) -> bool:
    """Whether a model string is the path of a Hugging Face config rather than a catalog name.  A
    catalog id or alias is the catalog's model.  Otherwise it is a path when it ends in ``.json``,
    is written as one (from ``/``, ``.`` or ``~``, or ending in a separator), or names a file or
    folder that exists (``ckpt/Llama-3.1-8B``, a downloaded checkpoint named after its repo: its own
    config, not the catalog's model of that name) -- except a bare name the catalog knows as a
    label, for which the catalog wins over a folder of that name.  A repo id with no such folder
    (``meta-llama/Meta-Llama-3-8B``) is a catalog label."""
    cat = load_model_catalog()
    if not x.strip() or cat.names_exactly(x):
        return False
    if x.lower().endswith(".json") or x.startswith(("/", ".", "~")) or x.endswith(("/", os.sep)):
        return True
    from colossim.specs.hf_import import hf_config_path
    p = hf_config_path(x, base_dir)
    bare = "/" not in x and os.sep not in x
    return (p.is_file() or p.parent.is_dir() and p.name == "config.json") and not (bare and cat.has(x))


def resolve_model(x: str | Mapping[str, Any] | ModelSpec) -> ModelSpec:
    """A :class:`ModelSpec` from a catalog id or alias (``"gpt3"``, ``"llama3.1-405b"``), a mapping
    of fields, or a mapping whose ``name`` is a catalog id plus overrides
    (``{"name": "llama3-8b", "seq_len": 4096}``).  A local Hugging Face ``config.json`` (of the
    families :data:`colossim.specs.hf_import.SUPPORTED` lists) may stand for the model: its path
    as the string (``"ckpt/config.json"``, or the folder holding it), or as ``hf_config`` in a
    mapping whose other keys override it (``{"hf_config": "ckpt", "seq_len": 8192}``).  Unknown
    ids raise :class:`UnknownNameError` with the closest ids; unknown fields, bad values and
    missing or malformed config files raise :class:`SpecError`."""
    if isinstance(x, ModelSpec):
        return x
    cat = load_model_catalog()
    if isinstance(x, str):
        if not names_hf_config(x):
            return cat.spec(x)
        x = {HF_CONFIG_KEY: x}
    if not isinstance(x, Mapping):
        raise SpecError(f"model must be a catalog id or a mapping of fields, got {x!r}",
                        field="model", value=x)
    stated = {k: x[k] for k in STATED_COUNT_FIELDS if k in x}
    x = {k: v for k, v in x.items() if k not in STATED_COUNT_FIELDS}
    if HF_CONFIG_KEY in x:
        from colossim.specs.hf_import import hf_config_fields
        path = x[HF_CONFIG_KEY]
        if not isinstance(path, str) or not path:
            raise SpecError(f"model.{HF_CONFIG_KEY} must be the path of a config.json or of its folder, "
                            f"got {path!r}", field=f"model.{HF_CONFIG_KEY}", value=path)
        overrides = read_table_fields({k: v for k, v in x.items() if k != HF_CONFIG_KEY})
        return _check_stated_counts(validate_model(ModelSpec, {**hf_config_fields(path), **overrides}, "model"),
                                    stated)
    data = read_table_fields(x)
    name = data.get("name")
    if isinstance(name, str) and cat.has(name):
        base = cat.row(name).spec_fields
        # derived fields of the base are recomputed from the overrides (e.g. a new hidden size)
        data = {**base, **data, "name": cat.row(name).id}
    elif isinstance(name, str) and "layers" not in data:
        cat.row(name)  # raises UnknownNameError with the closest ids
    else:
        try:
            data = complete_by_shape(data, cat)
        except (TypeError, ValueError):  # a value of the wrong type (experts: {a: 1}), which the
            data = {"vocab": DEFAULT_VOCAB, **data}  # validation names (not the vocabulary left out)
    return _check_stated_counts(validate_model(ModelSpec, data, "model"), stated)


#: Parameter counts a model mapping may state, in billions (the team's reference file's columns,
#: tables' "params"), each with the count of the shape it is checked against.  They are not used:
#: the shape sets every FLOP and byte.
STATED_COUNT_FIELDS = {"params_b": "params_total", "active_params_b": "params_active"}

#: How far a stated parameter count may sit from the shape's, as a ratio either way, and still be
#: that model's.  Because: published counts are rounded names (Gemma 2 2B has 2.61B parameters,
#: Llama 2 7B 6.74B, GPT-MoE-1.8T's shape 1.87T), so only a shape off by more than that -- a width
#: or a layer count mistyped -- is refused.
STATED_COUNT_RATIO = 1.5


def _check_stated_counts(spec: ModelSpec, stated: Mapping[str, Any]) -> ModelSpec:
    """``spec``, once each stated count (:data:`STATED_COUNT_FIELDS`) is within
    :data:`STATED_COUNT_RATIO` of the count its shape implies; else a one-line :class:`SpecError`
    naming the field, both counts and the shape fields to check.  A dense model's
    ``active_params_b`` is checked against all its parameters."""
    for key, value in stated.items():
        field = f"model.{key}"
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise SpecError(f"{field} must be a positive number of billions of parameters (got {value!r})",
                            field=field, value=value)
        implied = getattr(spec, STATED_COUNT_FIELDS[key]) / 1e9
        if max(implied / value, value / implied) > STATED_COUNT_RATIO:
            raise SpecError(f"{field} {value:g} disagrees with the shape, which gives {implied:.4g}B parameters "
                            f"(allowed: within {STATED_COUNT_RATIO:g}x; check layers, hidden, ffn_hidden, heads, "
                            "vocab and the expert fields)", field=field, value=value)
    return spec


#: Vocabulary assumed for a model given by shape without ``vocab`` and matching no catalog model.
#: Because: Megatron-LM pads GPT-2's 50,257-token BPE to 51,200 (a multiple of 128 x tp), the
#: vocabulary of most published GPT-style training runs.
DEFAULT_VOCAB = 51200
#: MLP width assumed without ``ffn_hidden``: 4 h for non-gated MLPs (GPT, Vaswani et al. 2017),
#: 8/3 h rounded up to a multiple of GATED_FFN_MULTIPLE for gated ones (Shazeer 2020; Llama).
NON_GATED_FFN_RATIO = 4
GATED_FFN_RATIO = 8 / 3
GATED_FFN_MULTIPLE = 256
#: Appended to the catalog id a shape-completed model took its missing fields from.
BY_SHAPE_SUFFIX = " (by shape)"
#: Fields whose equality identifies a catalog model from a shape (the ones given are compared).
SHAPE_KEYS = ("layers", "hidden", "heads", "kv_heads", "activation", "experts")


def _plain(v: Any) -> str:
    return str(getattr(v, "value", v))


def _same_field(base: dict[str, Any], key: str, value: Any) -> bool:
    """Whether catalog fields ``base`` have ``value`` for ``key`` (a blank ``experts`` is 0, a
    blank ``kv_heads`` is ``heads``)."""
    default = 0 if key == "experts" else base.get("heads") if key == "kv_heads" else None
    return _plain(base.get(key, default)) == _plain(value)


#: How far a run's vocabulary may sit above or below a catalog model's and still be that model's,
#: as a fraction.  Because: tables quote the vocabulary padded to a multiple of 128 x tp (Megatron-LM
#: pads GPT-2's 50,257 tokens to 51,200, +1.9 %) or unpadded; a different tokenizer differs by far
#: more (MPT's 50,432 vs Megatron-Core's 131,072-token scaling runs of the same shape).
VOCAB_PADDING_TOLERANCE = 0.02

#: The unit padded vocabularies are a multiple of.  Source: Megatron-LM
#: ``_vocab_size_with_padding`` pads to a multiple of ``make_vocab_size_divisible_by`` (default
#: 128) x tp.  Of two vocabularies within :data:`VOCAB_PADDING_TOLERANCE`, the larger is the other
#: padded only when it is such a multiple: MPT's 50,368 (64 x 787) is its own tokenizer's size,
#: not GPT-2's 50,304 padded.
VOCAB_PADDING_MULTIPLE = 128


def _vocab_padded(base_vocab: Any, vocab: Any) -> bool:
    """Whether ``vocab`` is ``base_vocab`` up to padding: the two within
    :data:`VOCAB_PADDING_TOLERANCE` of each other, the larger a multiple of
    :data:`VOCAB_PADDING_MULTIPLE` (or the two equal)."""
    try:
        b, v = float(base_vocab), float(vocab)
    except (TypeError, ValueError):
        return False
    return v == b or (abs(v - b) <= VOCAB_PADDING_TOLERANCE * b and max(v, b) % VOCAB_PADDING_MULTIPLE == 0)


def _same_gating(base: dict[str, Any], model: Mapping[str, Any]) -> bool:
    """Whether ``model``'s activation (if it gives one) is gated exactly when ``base``'s is: the
    MLP's shape.  Tables name the activation loosely (OPT's ReLU written as GeLU)."""
    if "activation" not in model:
        return True
    gated = {a.value for a in Activation if a.gated}
    return (_plain(base.get("activation", "gelu")) in gated) == (_plain(model["activation"]) in gated)


#: Suffixes of Hugging Face repo names for releases of one architecture (instruction-tuned, chat,
#: base weights, transformers format, context variants, point releases): "Meta-Llama-3-8B-Instruct"
#: is Meta-Llama-3-8B's shape, "Mixtral-8x7B-Instruct-v0.1" Mixtral 8x7B's, "gemma-2-9b-it" (Google's
#: instruction-tuned suffix) Gemma 2 9B's.
VARIANT_SUFFIX = re.compile(r"(?:[-_ ](?:instruct|chat|base|hf|it|\d+k|v\d+\.\d+))+$", re.IGNORECASE)


def catalog_id_for_label(label: str, cat: ModelCatalog | None = None) -> str | None:
    """The catalog model a free-text model label names, or None: the label, the text outside its
    parentheses or the text inside them equals a catalog id, name or alias once case, spaces and
    punctuation are ignored ("Llama 2 70B" -> llama2-70b, "GPT 175B (GPT-3)" -> gpt3-175b); a
    Hugging Face repo id by its name after the organisation, with or without a variant suffix
    ("meta-llama/Meta-Llama-3-8B-Instruct" -> llama3-8b).  For the model names of published tables,
    which follow no naming scheme."""
    keys = (cat or load_model_catalog()).labels
    outside = re.sub(r"\([^)]*\)", " ", label)
    repo = label.rsplit("/", 1)[-1]  # a Hugging Face repo id names the model after its organisation
    variant = VARIANT_SUFFIX.sub("", repo)
    for part in (label, outside, *re.findall(r"\(([^)]*)\)", label), repo, variant):
        key = label_key(part)
        if key and key in keys:
            return keys[key]
    return None


def name_by_label(model: Any, label: str | None, cat: ModelCatalog | None = None) -> Any:
    """A spec's ``model`` named after the catalog model ``label`` names (:func:`catalog_id_for_label`)
    when it is a mapping without a name and every shape field it gives (:data:`SHAPE_KEYS`,
    ``ffn_hidden``, ``vocab``; of the activation, whether it is gated) agrees with that model's;
    otherwise ``model`` unchanged.  So a published run's own model name settles what its shape
    leaves open: which of two models of one shape it is (GPT-3 175B or OPT-175B), or the whole
    architecture when the spec gives none.  A label naming an MoE model settles its experts too: a
    spec that writes Mixtral 8x7B's shape without ``experts`` (a table of dense columns) has left
    them out, not made it dense, and its one MLP width is read as for an MoE table row
    (:func:`_tabled_moe_width`); ``experts`` given as 0 or 1 is another, dense model."""
    if not label or not isinstance(model, Mapping) or model.get("name"):
        return model
    cat = cat or load_model_catalog()
    found = catalog_id_for_label(label, cat)
    if found is None:
        return model
    base = cat.row(found).spec_fields
    read = read_table_fields(model)
    width = _tabled_moe_width(read if "experts" in read else {**read, "experts": base.get("experts")})
    if width is not None:  # one MLP width for an MoE: the catalog supplies both
        read.pop("ffn_hidden")
    keys = tuple(k for k in SHAPE_KEYS + ("ffn_hidden", "moe_ffn_hidden", "top_k", "vocab")
                 if k in read and k != "activation")
    if (not all(_same_field(base, k, read[k]) for k in keys) or not _same_gating(base, read)
            or not _agrees_with_tabled_width(base, width)):
        return model
    return {**read, "name": found}


def complete_by_shape(data: dict[str, Any], cat: ModelCatalog | None = None) -> dict[str, Any]:
    """A model mapping without a catalog name is the catalog model of the same shape (same layers,
    hidden, heads and whichever of kv_heads / activation / experts / ffn_hidden it gives; among
    several, the one with the vocabulary it gives, else the closest within padding
    (:data:`VOCAB_PADDING_TOLERANCE`), none beyond): it takes that model's other fields -- vocab or
    ffn_hidden if missing, and the block (norm, positions, biases, dropout, tied embeddings) and the
    software its developers' runs used.  A shape that matches no catalog model gets the standard
    defaults (:data:`DEFAULT_VOCAB`, 4 h or 8/3 h MLP; the rest are ModelSpec's).  The fields it
    gives always win; ``name`` records where the rest came from.  An MoE shape with one MLP width
    (``ffn_hidden``, no ``moe_ffn_hidden``) matches a model whose experts' or dense layers' width
    that is, and takes both from it; matching none, the width is the experts'
    (:func:`_expert_width_from_table`).  A hybrid row matches only a shape that gives its
    ``hybrid_pattern``: a transformer's shape never becomes a hybrid."""
    data = read_table_fields(data)
    dense = not (data.get("experts") or 0) > 1
    cat = cat or load_model_catalog()
    width = _tabled_moe_width(data)
    shape = {k: v for k, v in data.items() if not (width is not None and k == "ffn_hidden")}
    given = {k: shape[k] for k in SHAPE_KEYS + ("ffn_hidden", "moe_ffn_hidden", "top_k") if k in shape}
    if {"layers", "hidden", "heads"} <= given.keys():
        # a hybrid's layers are its pattern: a shape matches a hybrid row only by that pattern
        matches = [base for base in (row.spec_fields for row in cat.rows.values())
                   if all(_same_field(base, k, v) for k, v in given.items())
                   and _agrees_with_tabled_width(base, width)
                   and base.get("hybrid_pattern") == data.get("hybrid_pattern")]
        # one shape, several models (GPT-3 6.7B and MPT-7B): the given vocabulary decides, and a
        # vocabulary no match has (beyond padding) means another model of that shape
        exact = [base for base in matches if "vocab" in data and _same_field(base, "vocab", data["vocab"])]
        if "vocab" in data and not exact:
            matches = sorted((base for base in matches if _vocab_padded(base.get("vocab"), data["vocab"])),
                             key=lambda base: abs(float(base["vocab"]) - float(data["vocab"])))
        if exact or matches:
            base = (exact or matches)[0]
            return {**base, **shape, "name": f"{base['name']}{BY_SHAPE_SUFFIX}"}
    out = _expert_width_from_table(data)
    out.setdefault("vocab", DEFAULT_VOCAB)
    hidden = _lax_int(data.get("hidden"))
    if dense and "ffn_hidden" not in out and hidden is not None:
        gated = str(data.get("activation", "gelu")) in {a.value for a in Activation if a.gated}
        out["ffn_hidden"] = (int(-(-hidden * GATED_FFN_RATIO // GATED_FFN_MULTIPLE) * GATED_FFN_MULTIPLE)
                             if gated else NON_GATED_FFN_RATIO * hidden)
    return out


__all__ = ["DEFAULT_VOCAB", "HF_CONFIG_KEY", "TABLE_FIELD_NAMES", "Activation", "ModelCatalog", "ModelRow",
           "ModelSpec", "catalog_id_for_label", "complete_by_shape", "load_model_catalog", "name_by_label",
           "names_hf_config", "read_table_fields", "resolve_model"]
