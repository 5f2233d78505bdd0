"""Serving memory per GPU: weights at their storage format, the KV cache per token, the engine's
activation workspace, and how many sequences fit.

Sharding (one replica = ``tp * pp`` GPUs; see :mod:`colossim.specs.serving`):

- linear weights of attention, dense MLPs, shared experts: split ``tp`` ways, layers ``pp`` ways;
- routed experts: every expert split ``tp`` ways in total (``ep`` experts-wise x ``tp / ep``
  within an expert), so the per-GPU share of the experts is ``1 / tp`` whatever ``ep`` is; ``ep``
  changes the GEMM shapes and the bytes a decode step reads, not the footprint;
- embeddings and the output head: vocabulary-parallel over ``tp``, on the first / last stage;
  kept at 16 bits (:data:`EMBEDDING_FORMAT`);
- KV cache (GQA / MHA): ``2 * kv_heads * head_dim`` values per token per layer, the KV heads split
  over ``tp`` and replicated when ``tp > kv_heads`` (Megatron / TensorRT-LLM / vLLM do);
  MLA: the compressed latent ``kv_lora_rank + qk_rope_head_dim`` per token per layer, replicated on
  every TP rank (DeepSeek-V2 section 2.1; vLLM / SGLang MLA with TP);
- local layers keep at most their span: a sliding-window layer (Mistral 7B, Gemma 2, gpt-oss) its
  window's keys and values, ``min(context, sliding_window)`` tokens, and a chunked-attention layer
  (Llama 4) its current chunk, at most ``attention_chunk`` tokens (the admission reserves that peak),
  as the engines of 2025 allocate them (TensorRT-LLM's per-window KV pools, vLLM's hybrid KV-cache
  manager, SGLang's SWA pool); an engine that keeps the whole context in every layer is
  ``serving.windowed_kv_cache: false``.  A stage holds the model's local layers in proportion, as it
  holds its dense and MoE layers.

The pipeline's worst stage sets the per-GPU figure: ``ceil(layers / pp)`` layers plus the larger of
the embedding and the output head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from colossim import units
from colossim.specs.model import RECURRENT_KINDS, ModelSpec
from colossim.specs.serving import BYTES_PER_ELEMENT

#: Storage format of the token embedding and the output head.
#: Because: the FP8 and NVFP4 post-training quantisation recipes of TensorRT-LLM / ModelOpt and vLLM
#: quantise the linear layers of the blocks and leave ``embed_tokens`` and ``lm_head`` in 16 bits.
EMBEDDING_FORMAT = "bf16"

#: Bytes per activation element in the engine's workspace (bf16 hidden states between kernels).
WORKSPACE_ACTIVATION_BYTES = 2.0
#: Live activation tensors per token during one layer's forward, in units of the widest per-GPU
#: tensor.  Because: the residual stream, the normed input and the widest intermediate (QKV or
#: MLP up/gate output) are live at once, plus one output buffer: 4.
WORKSPACE_TENSORS = 4
#: Bytes per logit of the sampled rows (fp32 logits for sampling, as vLLM / TensorRT-LLM keep them).
LOGIT_BYTES = 4.0
#: HBM the runtime holds outside weights, activations and KV cache (CUDA context, cuBLAS and NCCL
#: workspaces).  Because: a CUDA context with cuBLAS/NCCL initialised takes 0.5-1 GiB on Hopper
#: (nvidia-smi of an idle PyTorch process); 1 GiB is the upper end.
RUNTIME_RESERVE_BYTES = 2.0**30


@dataclass(frozen=True)
class ServingMemory:
    """Bytes per GPU of one replica's worst pipeline stage."""

    weights: float
    workspace: float
    kv_per_token: float
    """KV-cache bytes one token of context occupies on this GPU (its layers, its KV-head share)."""
    usable: float
    """HBM left for the engine after the runtime's reserve (:data:`RUNTIME_RESERVE_BYTES`)."""
    kv_cache_fraction: float = 0.9
    """Share of the memory still free after weights and workspace that the KV cache takes."""
    kv_local_span: int | None = None
    """Tokens a local (sliding-window or chunked) layer keeps at most (None: every layer keeps the
    whole context)."""
    kv_local_share: float = 0.0
    """Share of ``kv_per_token`` in the stage's local layers."""
    state_per_sequence: float = 0.0
    """Bytes one sequence's recurrent state takes whatever its length: a hybrid's Mamba-2 layers
    (:func:`recurrent_state_bytes_per_sequence`); 0 for a transformer."""

    @property
    def free(self) -> float:
        """Bytes free after weights and workspace (negative: they do not fit)."""
        return self.usable - self.weights - self.workspace

    @property
    def kv_budget(self) -> float:
        """Bytes of KV cache: ``kv_cache_fraction`` of the free memory (TensorRT-LLM's
        ``kv_cache_free_gpu_mem_fraction`` semantics); negative when the weights do not fit."""
        f = self.free
        return f * self.kv_cache_fraction if f > 0 else f

    def kv_tokens(self) -> int:
        """KV-cache capacity in tokens of context at ``kv_per_token`` (every layer keeping the
        token; 0 when nothing is left)."""
        return max(0, int(self.kv_budget // self.kv_per_token)) if self.kv_per_token > 0 else 0

    def kv_bytes_per_sequence(self, context_tokens: float) -> float:
        """KV-cache bytes of one sequence of ``context_tokens``: the whole context in the global
        layers, at most ``kv_local_span`` tokens in the local ones."""
        kept = windowed_context(context_tokens, self.kv_local_span)
        return self.kv_per_token * ((1.0 - self.kv_local_share) * context_tokens
                                    + self.kv_local_share * kept) + self.state_per_sequence

    def max_sequences(self, context_tokens: float) -> int:
        """Concurrent sequences of ``context_tokens`` (prompt + output) that fit."""
        per = self.kv_bytes_per_sequence(max(context_tokens, 1.0))
        return max(0, int(self.kv_budget // per)) if per > 0 else 0

    def total(self, sequences: float, context_tokens: float) -> float:
        """Bytes in use with ``sequences`` of ``context_tokens`` each."""
        return self.weights + self.workspace + sequences * self.kv_bytes_per_sequence(context_tokens)


def windowed_context(context_tokens, window: int | None):
    """Tokens a sliding-window layer keeps of a ``context_tokens`` context (and that its decode
    attention reads), ``min(context, window)``, the whole context without a window; for a chunked
    layer, the most it keeps."""
    return context_tokens if window is None else np.minimum(context_tokens, window)


def local_share(model: ModelSpec) -> float:
    """Share of a model's layers with local (sliding-window or chunked) attention (0: none)."""
    local = model.local_attention
    return 0.0 if local is None else local[2] / model.attention_layers


def stage_layers(model: ModelSpec, pp: int) -> int:
    """Layers of the largest pipeline stage."""
    return math.ceil(model.layers / pp)


#: Bytes per element of a Mamba-2 layer's SSM state in the serving cache by default: fp32
#: (``serving.recurrent_state`` chooses).  Source: transformers 5.24.0 NemotronHConfig
#: ``mamba_ssm_cache_dtype = "float32"`` (the state sums over every token of the context, so
#: engines keep it wider than the KV cache).
MAMBA_SSM_STATE_BYTES = 4.0
#: Bytes per element of the convolution's cached inputs (the last ``mamba_conv_width - 1`` tokens
#: of x, B and C): the activations' 16 bits.
MAMBA_CONV_STATE_BYTES = 2.0


def _linear_params(model: ModelSpec, kind: str) -> float:
    """Weights of one layer of ``kind`` that are quantised: its matrices and their biases, not its
    norm gains (nor a recurrent mixer's convolution taps and per-head vectors, which stay at 16 bits)."""
    if kind == "mamba":
        return float(model.hidden * model.mamba_in_proj_width + model.mamba_inner * model.hidden)
    if kind == "gdn":
        return float(model.hidden * model.gdn_in_proj_width + model.gdn_value_width * model.hidden)
    norms = model.norms_per_layer if kind in ("dense", "moe") else 1  # a hybrid's layer has one
    return float(model.params_per_layer(kind) - norms * model._norm_params)


def weight_bytes_per_gpu(model: ModelSpec, weights: str, tp: int, pp: int) -> float:
    """Weight bytes on the GPU holding the largest stage (layers at ``weights``, embeddings at 16 bits).
    Layers of the stage are taken in proportion to the model's mix of layer kinds."""
    w = BYTES_PER_ELEMENT[weights]
    e = BYTES_PER_ELEMENT[EMBEDDING_FORMAT]
    kinds = model.layer_kinds
    per_layer = sum(n * _linear_params(model, k) for k, n in kinds) / model.layers
    # the rest at 16 bits, unsplit: a transformer's norm gains as its engines keep them (no
    # LayerNorm biases); a hybrid's norm gains and its Mamba-2 mixers' taps and per-head vectors
    small = (sum(n * (model.params_per_layer(k) - _linear_params(model, k)) for k, n in kinds) / model.layers
             if model.is_hybrid else model.norms_per_layer * model.hidden)
    blocks = stage_layers(model, pp) * per_layer * w / tp
    norms = stage_layers(model, pp) * small * e
    ends = (model.params_embedding + model.params_output_head) if pp == 1 else max(
        model.params_embedding, model.params_output_head)
    return blocks + norms + ends * e / tp


def attention_share(model: ModelSpec) -> float:
    """Share of the model's layers that attend, and so keep a KV cache (all of a transformer's)."""
    return model.attention_layers / model.layers


def recurrent_state_bytes_per_layer(model: ModelSpec, kind: str, tp: int = 1,
                                    state_bytes: float = MAMBA_SSM_STATE_BYTES) -> float:
    """Bytes one sequence's recurrent state takes in one layer of ``kind`` on one GPU, whatever its
    length: the state (``state_bytes`` an element) and the convolution's last ``conv_width - 1``
    inputs (:data:`MAMBA_CONV_STATE_BYTES`), split over tp with the heads (vLLM / TensorRT-LLM's
    Mamba cache).  Mamba-2: heads x head_dim x state; Gated DeltaNet: value heads x d_k x d_v."""
    if kind == "mamba":
        state = model.mamba_heads_total * model.mamba_head_dim * model.mamba_state_dim
        conv = (model.mamba_conv_width - 1) * model.mamba_conv_channels
    else:
        state = model.gdn_value_heads * model.gdn_key_head_dim * model.gdn_value_head_dim
        conv = (model.gdn_conv_width - 1) * model.gdn_conv_channels
    return (state * state_bytes + conv * MAMBA_CONV_STATE_BYTES) / tp


def recurrent_state_bytes_per_sequence(model: ModelSpec, tp: int = 1, pp: int = 1,
                                       state_bytes: float = MAMBA_SSM_STATE_BYTES) -> float:
    """Bytes one sequence's recurrent state takes on one GPU, whatever its length: its stage's
    share of the model's Mamba-2 and Gated DeltaNet layers (:func:`recurrent_state_bytes_per_layer`)."""
    share = stage_layers(model, pp) / model.layers
    return share * sum(n * recurrent_state_bytes_per_layer(model, k, tp, state_bytes) for k, n in model.layer_kinds
                       if k in RECURRENT_KINDS)


def kv_bytes_per_token_per_layer(model: ModelSpec, kv_format: str, tp: int) -> float:
    """KV-cache bytes one token occupies in one layer on one GPU of a ``tp``-way group."""
    b = BYTES_PER_ELEMENT[kv_format]
    if model.attention == "mla":
        return (model.mla_kv_lora_rank + model.mla_qk_rope_head_dim) * b
    kv_local = math.ceil(model.kv_heads / tp)
    return 2.0 * kv_local * model.head_dim * b


def kv_bytes_per_token(model: ModelSpec, kv_format: str, tp: int = 1, pp: int = 1) -> float:
    """KV-cache bytes one token of context occupies on one GPU (its stage's layers that attend)."""
    return stage_layers(model, pp) * attention_share(model) * kv_bytes_per_token_per_layer(model, kv_format, tp)


def workspace_bytes(model: ModelSpec, tp: int, max_num_tokens: int, max_batch: int) -> float:
    """Activation workspace of one iteration: ``max_num_tokens`` tokens x WORKSPACE_TENSORS x the
    widest per-GPU activation (hidden, QKV or MLP up/gate), plus fp32 logits for ``max_batch`` rows."""
    up = 2 if model.activation.gated else 1
    widths = [model.hidden, (model.heads + 2 * model.kv_heads) * model.qk_head_dim / tp,
              model.mamba_in_proj_width / tp if model.mamba_layers else 0.0,
              model.gdn_in_proj_width / tp if model.gdn_layers else 0.0]
    if model.ffn_hidden:
        widths.append(up * model.ffn_hidden / tp)
    if model.is_moe:
        widths.append(up * model.moe_ffn_hidden * model.top_k / tp)
    act = max_num_tokens * WORKSPACE_TENSORS * max(widths) * WORKSPACE_ACTIVATION_BYTES
    return act + max_batch * model.vocab / tp * LOGIT_BYTES


def serving_memory(model: ModelSpec, hbm_bytes: float, *, weights: str, kv_format: str, tp: int,
                   pp: int, max_num_tokens: int, max_batch: int,
                   kv_cache_fraction: float, windowed_kv_cache: bool = True,
                   recurrent_state_bytes: float = MAMBA_SSM_STATE_BYTES) -> ServingMemory:
    """Memory of one GPU of a ``tp x pp`` replica; with ``windowed_kv_cache`` the local
    (sliding-window or chunked) layers keep at most their span (see the module docstring)."""
    local = model.local_attention
    window = local[1] if windowed_kv_cache and local else None
    return ServingMemory(
        weights=weight_bytes_per_gpu(model, weights, tp, pp),
        workspace=workspace_bytes(model, tp, max_num_tokens, max_batch),
        kv_per_token=kv_bytes_per_token(model, kv_format, tp, pp),
        usable=hbm_bytes - RUNTIME_RESERVE_BYTES, kv_cache_fraction=kv_cache_fraction,
        kv_local_span=window, kv_local_share=local_share(model) if window else 0.0,
        state_per_sequence=recurrent_state_bytes_per_sequence(model, tp, pp, recurrent_state_bytes))


def gib(n_bytes: float) -> float:
    return units.bytes_to_gib(n_bytes)


__all__ = ["EMBEDDING_FORMAT", "LOGIT_BYTES", "MAMBA_CONV_STATE_BYTES", "MAMBA_SSM_STATE_BYTES",
           "RUNTIME_RESERVE_BYTES",
           "ServingMemory", "WORKSPACE_TENSORS", "attention_share", "gib", "recurrent_state_bytes_per_layer",
           "recurrent_state_bytes_per_sequence",
           "kv_bytes_per_token", "kv_bytes_per_token_per_layer", "serving_memory", "stage_layers",
           "weight_bytes_per_gpu", "windowed_context", "local_share", "workspace_bytes"]
