"""Import a Hugging Face ``config.json`` (a local file; no network) as a :class:`ModelSpec`.

Supported ``model_type``: llama, mistral, mixtral, qwen2 and deepseek_v3 (also deepseek_v2, which
has the same keys); and, read the same way, qwen3, phi3, gemma and gemma2 (dense, llama's keys),
qwen2_moe / qwen3_moe (routed experts, with Qwen2-MoE's shared expert as whole experts of the
routed width) and llama4 (its ``text_config``; also llama4_text: MoE layers interleaved with dense
ones, a shared expert, 8,192-token attention chunks in three layers of four), gpt_oss (MoE in every layer,
biases, a 128-token window every other layer) and gemma3 (its ``text_config``; also gemma3_text: five
windowed layers in six, keys its config class defaults filled).  Two families with keys of their
own: falcon (parallel attention and MLP, multi-query
or ``num_kv_heads`` groups, a 4h GELU MLP unless ``ffn_hidden_size``; the first releases' ``n_layer`` /
``n_head`` / ``n_head_kv`` too), gpt_neox (parallel residual, biases, a plain GELU MLP) and
nemotron_h (a hybrid of Mamba-2, attention, squared-ReLU MLP and MoE layers, ``hybrid_override_pattern``
or ``layers_block_type``) and qwen3_next (Gated DeltaNet and gated attention, each layer with its MoE
or MLP, read as a hybrid pattern of sublayers).  Unknown
keys are ignored; a missing required key raises :class:`SpecError` naming it.  Qwen 3's, Gemma 3's
and Qwen3-Next's q/k norms (``qk_norm``) and Gemma 2's and 3's norms after attention and the MLP
(``post_norms``) are read from the family.  What the engine does not model is left out: Gemma 2's
logit soft-capping (priced as a plain loss), GPT-NeoX's rotary share (no FLOPs either way).  A
sliding window is read as transformers applies it: ``layer_types`` where the config lists them,
else every layer (Mistral, Mixtral, Phi-3), the layers from ``max_window_layers`` on under
``use_sliding_window`` (Qwen2 / Qwen3), or every other layer from the first (Gemma 2, gpt-oss).
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from colossim.errors import SpecError
from colossim.specs._validation import validate_model
from colossim.specs.model import GDN_CONV_WIDTH, ModelSpec

SUPPORTED = ("llama", "mistral", "mixtral", "qwen2", "deepseek_v2", "deepseek_v3", "qwen3", "phi3", "gemma",
             "gemma2", "qwen2_moe", "qwen3_moe", "falcon", "gpt_neox", "llama4", "llama4_text", "gpt_oss",
             "gemma3", "gemma3_text", "nemotron_h", "qwen3_next")
#: A Nemotron-H config's layer types, by their names in ``layers_block_type`` (transformers 5.24.0
#: NemotronHConfig, with the legacy names its ``remap_legacy_layer_types`` accepts), as the
#: characters of ``model.hybrid_pattern`` (Megatron-Core's M, *, - and E).
NEMOTRON_H_LAYER_TYPES = {"mamba": "M", "linear_attention": "M", "attention": "*", "full_attention": "*",
                          "mlp": "-", "moe": "E"}
#: NemotronHConfig's defaults (transformers 5.24.0 ``models/nemotron_h/configuration_nemotron_h.py``)
#: for the keys a released config may leave out, by spec field: (config keys, default).  The
#: widths, head counts and layers are still required.
NEMOTRON_H_DEFAULTS = {"mamba_heads": (("mamba_num_heads",), 128), "mamba_head_dim": (("mamba_head_dim",), 64),
                       "mamba_state_dim": (("ssm_state_size",), 128),
                       "mamba_groups": (("n_groups", "mamba_n_groups"), 8),
                       "mamba_conv_width": (("conv_kernel", "mamba_d_conv"), 4),
                       "mamba_chunk_tokens": (("chunk_size", "mamba_chunk_size"), 128),
                       "head_dim": (("head_dim", "attention_head_dim"), 128)}
#: Vision-language checkpoints whose language model is their ``text_config``, and its model type.
TEXT_CONFIG_FAMILIES = {"llama4": "llama4_text", "gemma3": "gemma3_text"}
#: Gemma 3's text keys its released configs may leave to the config class (transformers 5.24.0
#: Gemma3TextConfig defaults); the widths and layer count are still required.
GEMMA3_TEXT_DEFAULTS = {"vocab_size": 262_208, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                        "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 131_072,
                        "sliding_window": 4096}
#: Gemma 3's layers: every ``sliding_window_pattern``-th is global, the others windowed
#: (Gemma3TextConfig: "sliding_attention" when ``(i + 1) % pattern``; pattern 6 by default).
GEMMA3_WINDOW_PATTERN = 6
#: Gemma 3's pre-training length when importing: NeMo 2.5.0's gemma3 pre-training recipe
#: ``seq_length`` (its configs' 131,072, or 32,768 for 1B, is the served context).
GEMMA3_SEQ_LEN = 8192
#: Llama 4's pre-training sequence length (NeMo 2.5's Llama4Config ``seq_length``): its configs'
#: ``max_position_embeddings`` is the served context (10M tokens for Scout), not a training length.
LLAMA4_SEQ_LEN = 8192
#: Families whose configs tie the output head to the embedding unless they say otherwise
#: (transformers' GemmaConfig, Gemma2Config and FalconConfig default ``tie_word_embeddings`` to True;
#: the others to False).
TIED_BY_DEFAULT = ("gemma", "gemma2", "gemma3_text", "falcon")

#: Families whose attention norms each query and key head (transformers' ``Qwen3Attention``,
#: ``Qwen3MoeAttention``, ``Gemma3Attention`` and ``Qwen3NextAttention``: ``q_norm`` / ``k_norm``).
QK_NORM_FAMILIES = ("qwen3", "qwen3_moe", "gemma3_text")
#: Families with a norm after attention and after the MLP as well as before each
#: (transformers' ``Gemma2DecoderLayer`` / ``Gemma3DecoderLayer``: four norms a layer).
POST_NORM_FAMILIES = ("gemma2", "gemma3_text")
#: Families whose "gelu" is a plain (non-gated) MLP after a LayerNorm, as in GPT-2; in the
#: llama-keyed families it is Gemma's gated GeGLU after an RMSNorm.
PLAIN_GELU = ("falcon", "gpt_neox")
#: Falcon's MLP width when its config has no ``ffn_hidden_size``: 4 x hidden (transformers'
#: FalconMLP; the released Falcon-7B/40B/180B configs set none).
FALCON_FFN_RATIO = 4

#: The first Falcon releases' model types, read as falcon: "RefinedWeb" (Falcon-40B, the layout
#: transformers calls ``new_decoder_architecture``) and "RefinedWebModel" (Falcon-7B, multi-query).
FALCON_LEGACY_TYPES = {"RefinedWeb": True, "RefinedWebModel": False}

#: Sequence length used when a config has no ``max_position_embeddings``.
#: Because: 4096 is the pre-training length of most open models of these families.
DEFAULT_SEQ_LEN = 4096
#: ... except where the family's own config class has another default: transformers' FalconConfig
#: ``max_position_embeddings`` = 2048 (the released Falcon configs omit the key).
FAMILY_SEQ_LEN = {"falcon": 2048, "llama4_text": 131072}  # Llama4TextConfig: 4096 * 32

_ACTIVATIONS = {"silu": "swiglu", "swish": "swiglu", "gelu": "geglu", "gelu_pytorch_tanh": "geglu"}


#: The types of the config keys the import reads, checked before any is used, so that a value of
#: the wrong kind is refused naming its key (transformers writes each as below; null is absent).
#: Whole numbers, by the least each may be: widths, head and layer counts at least 1; counts of
#: optional parts (shared experts, dense layers first, MTP modules, a window) at least 0.
HF_INT_KEYS = {**dict.fromkeys((
    "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "vocab_size",
    "intermediate_size", "max_position_embeddings", "head_dim", "attention_head_dim", "moe_intermediate_size",
    "num_experts_per_tok", "num_local_experts", "n_routed_experts", "kv_lora_rank", "q_lora_rank",
    "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "n_layer", "n_head", "n_head_kv", "num_kv_heads",
    "ffn_hidden_size", "intermediate_size_mlp", "interleave_moe_layer_step", "decoder_sparse_step",
    "full_attention_interval", "no_rope_layer_interval", "sliding_window_pattern", "num_ln_in_parallel_attn",
    "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
    "linear_conv_kernel_dim", "attention_chunk_size", "mamba_num_heads", "mamba_head_dim", "ssm_state_size",
    "n_groups", "mamba_n_groups", "conv_kernel", "mamba_d_conv", "chunk_size", "mamba_chunk_size",
    "moe_shared_expert_intermediate_size", "moe_layer_freq"), 1),
    **dict.fromkeys(("num_experts", "n_shared_experts", "first_k_dense_replace", "num_nextn_predict_layers",
                     "shared_expert_intermediate_size", "max_window_layers", "n_group", "topk_group",
                     "sliding_window"), 0)}
HF_BOOL_KEYS = ("tie_word_embeddings", "attention_bias", "use_sliding_window", "new_decoder_architecture",
                "multi_query", "parallel_attn", "bias", "alibi", "use_parallel_residual")
HF_STR_KEYS = ("model_type", "hidden_act", "hidden_activation", "mlp_hidden_act", "topk_method",
               "hybrid_override_pattern", "_name_or_path")
HF_LIST_KEYS = ("layer_types", "layers_block_type", "mlp_only_layers", "moe_layers", "no_rope_layers")


def _check_key_types(cfg: dict[str, Any], path: str) -> None:
    """Refuse, naming the key, a value of a kind transformers never writes for it
    (:data:`HF_INT_KEYS`, :data:`HF_BOOL_KEYS`, :data:`HF_STR_KEYS`, :data:`HF_LIST_KEYS`): a
    string, a boolean or a fraction for a width, a string for a flag, zero heads."""
    for key, value in cfg.items():
        if value is None:
            continue
        if key in HF_INT_KEYS:
            least = HF_INT_KEYS[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise SpecError(f"{path}: {key} = {value!r}: allowed: a whole number >= {least}", field=key,
                                value=value)
        elif key in HF_BOOL_KEYS and not isinstance(value, bool):
            raise SpecError(f"{path}: {key} = {value!r}: allowed: true, false", field=key, value=value,
                            allowed=[True, False])
        elif key in HF_STR_KEYS and not isinstance(value, str):
            raise SpecError(f"{path}: {key} = {value!r}: allowed: a string", field=key, value=value)
        elif key in HF_LIST_KEYS and not isinstance(value, list):
            raise SpecError(f"{path}: {key} = {value!r}: allowed: a list", field=key, value=value)


#: The required keys a config lacks, while :func:`hf_config_to_fields` reads it: each missing one is
#: recorded and read as 1, so that one error names them all.
_MISSING: ContextVar[list[str] | None] = ContextVar("hf_missing_keys", default=None)


def _need(cfg: dict[str, Any], key: str, path: str) -> Any:
    if cfg.get(key) is None:
        missing = _MISSING.get()
        if missing is None:
            raise SpecError(f"{path}: missing required key '{key}' for model_type "
                            f"'{cfg.get('model_type')}'", field=key)
        missing.append(key)
        return 1
    return cfg[key]


def hf_config_to_fields(cfg: dict[str, Any], path: str = "config.json") -> dict[str, Any]:
    """ModelSpec fields from a parsed Hugging Face config (see :func:`load_hf_config`).  A value of
    the wrong kind is refused naming its key (:func:`_check_key_types`); the required keys a config
    lacks are named together, in one error."""
    if cfg.get("model_type") is None:
        raise SpecError(f"{path}: missing required key 'model_type': allowed: {', '.join(SUPPORTED)}",
                        field="model_type", allowed=SUPPORTED)
    _check_key_types(cfg, path)
    missing: list[str] = []
    token = _MISSING.set(missing)
    try:
        fields = _config_fields(cfg, path)
    except SpecError:
        if not missing:
            raise
    finally:
        _MISSING.reset(token)
    if missing:
        names = ", ".join(f"'{k}'" for k in dict.fromkeys(missing))
        raise SpecError(f"{path}: missing required key{'s' if len(set(missing)) > 1 else ''} {names} for "
                        f"model_type '{cfg.get('model_type')}'", field=missing[0])
    return fields


def _config_fields(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    mt = cfg.get("model_type")
    if mt in TEXT_CONFIG_FAMILIES:  # a multimodal checkpoint: the language model is its text_config
        text = _need(cfg, "text_config", path)
        if not isinstance(text, dict):
            raise SpecError(f"{path}: text_config must be a JSON object, got {text!r}", field="text_config")
        mt = TEXT_CONFIG_FAMILIES[mt]
        cfg = {**text, "model_type": mt, "_name_or_path": cfg.get("_name_or_path")}
        _check_key_types(cfg, path)
    if mt == "gemma3_text":
        cfg = {**GEMMA3_TEXT_DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    if mt in FALCON_LEGACY_TYPES:
        cfg = {"new_decoder_architecture": FALCON_LEGACY_TYPES[mt], **cfg, "model_type": "falcon"}
        mt = "falcon"
    if mt not in SUPPORTED:
        raise SpecError(f"{path}: model_type {mt!r} is not supported: allowed: {', '.join(SUPPORTED)}",
                        field="model_type", value=mt, allowed=SUPPORTED)
    if mt == "falcon":
        cfg = _falcon_keys(cfg)
    heads = _need(cfg, "num_attention_heads", path)
    hidden = _need(cfg, "hidden_size", path)
    if mt == "nemotron_h":
        return _nemotron_h_fields(cfg, path)
    if mt == "qwen3_next":
        return _qwen3_next_fields(cfg, path)
    # Gemma 2 names its MLP activation ``hidden_activation`` (``hidden_act`` is a legacy key)
    act = cfg.get("hidden_activation") or cfg.get("hidden_act", "gelu" if mt in PLAIN_GELU else "silu")
    if act not in _ACTIVATIONS:
        raise SpecError(f"{path}: hidden_act {act!r} is not supported: allowed: {', '.join(_ACTIVATIONS)}",
                        field="hidden_act", value=act, allowed=list(_ACTIVATIONS))
    seq = cfg.get("max_position_embeddings") or FAMILY_SEQ_LEN.get(mt, DEFAULT_SEQ_LEN)
    d: dict[str, Any] = {
        "name": cfg.get("_name_or_path") or _name_from_path(Path(path)) or mt,
        "layers": _need(cfg, "num_hidden_layers", path),
        "hidden": hidden,
        "heads": heads,
        "kv_heads": cfg.get("num_key_value_heads") or heads,
        "vocab": _need(cfg, "vocab_size", path),
        "seq_len": seq, "max_seq_len": seq,
        "activation": "gelu" if mt in PLAIN_GELU else _ACTIVATIONS[act],
        "tied_embeddings": bool(cfg.get("tie_word_embeddings", mt in TIED_BY_DEFAULT)),
        "norm": "layernorm" if mt in PLAIN_GELU else "rmsnorm", "position": "rope",
        "qkv_bias": mt in ("qwen2", "qwen2_moe") or bool(cfg.get("attention_bias", False)),
        "qk_norm": mt in QK_NORM_FAMILIES, "post_norms": mt in POST_NORM_FAMILIES,
    }
    if cfg.get("head_dim"):
        d["head_dim"] = cfg["head_dim"]
    d.update(_sliding_window_fields(cfg, mt, d["layers"], path))
    if mt == "falcon":
        # the new decoder architecture normalises attention's and the MLP's inputs apart
        # (transformers' FalconDecoderLayer: ln_attn and ln_mlp unless num_ln_in_parallel_attn is 1)
        norms = cfg.get("num_ln_in_parallel_attn") or (2 if cfg.get("new_decoder_architecture") else 1)
        d.update(ffn_hidden=cfg.get("ffn_hidden_size") or FALCON_FFN_RATIO * hidden,
                 parallel_block=bool(cfg.get("parallel_attn", True)), parallel_norms=norms,
                 bias=bool(cfg.get("bias", False)), position="alibi" if cfg.get("alibi") else "rope")
    elif mt == "gpt_neox":
        bias = bool(cfg.get("attention_bias", True))
        d.update(ffn_hidden=_need(cfg, "intermediate_size", path),
                 parallel_block=bool(cfg.get("use_parallel_residual", True)), parallel_norms=2, bias=bias,
                 qkv_bias=bias)
    elif mt in ("qwen2_moe", "qwen3_moe"):
        d.update(_qwen_moe_fields(cfg, path))
    elif mt == "llama4_text":
        d.update(_llama4_fields(cfg, path, d["layers"]))
    elif mt == "mixtral":
        d.update(experts=_need(cfg, "num_local_experts", path), top_k=_need(cfg, "num_experts_per_tok", path),
                 moe_ffn_hidden=_need(cfg, "intermediate_size", path))
    elif mt == "gpt_oss":
        d.update(_gpt_oss_fields(cfg, path))
    elif mt == "gemma3_text":
        d.update(ffn_hidden=_need(cfg, "intermediate_size", path), seq_len=GEMMA3_SEQ_LEN)
    elif mt.startswith("deepseek"):
        d.pop("kv_heads")
        d.update(ffn_hidden=_need(cfg, "intermediate_size", path),
                 experts=_need(cfg, "n_routed_experts", path), top_k=_need(cfg, "num_experts_per_tok", path),
                 moe_ffn_hidden=_need(cfg, "moe_intermediate_size", path),
                 shared_experts=cfg.get("n_shared_experts") or 0,
                 **_deepseek_moe_layers(cfg, d["layers"]),
                 mtp_modules=cfg.get("num_nextn_predict_layers") or 0,
                 **_routing_groups(cfg),
                 attention="mla", mla_q_lora_rank=cfg.get("q_lora_rank"),
                 mla_kv_lora_rank=_need(cfg, "kv_lora_rank", path),
                 mla_qk_rope_head_dim=_need(cfg, "qk_rope_head_dim", path),
                 mla_qk_nope_head_dim=_need(cfg, "qk_nope_head_dim", path),
                 mla_v_head_dim=_need(cfg, "v_head_dim", path))
        d.pop("head_dim", None)
    else:
        d["ffn_hidden"] = _need(cfg, "intermediate_size", path)
    return d


#: Families whose ``sliding_window`` (when not null) applies to every layer: transformers' Mistral,
#: Mixtral and Phi-3 attention pass it to the flash kernel in each layer.
WINDOW_EVERY_LAYER = ("mistral", "mixtral", "phi3")
#: Families whose ``sliding_window`` applies only under ``use_sliding_window``, to the layers from
#: ``max_window_layers`` on (transformers' Qwen2 / Qwen3 attention: ``layer_idx >= max_window_layers``).
WINDOW_FROM_MAX_WINDOW_LAYERS = ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe")
#: Gemma 2 alternates, the first layer windowed: transformers' Gemma2 ``is_sliding = not
#: bool(layer_idx % 2)``; its config class defaults the window to 4,096 tokens.
GEMMA2_DEFAULT_WINDOW = 4096
#: gpt-oss alternates the same way (transformers 5.24.0 GptOssConfig: "sliding_attention" when
#: ``(i + 1) % 2``), with a 128-token window by default.
GPT_OSS_DEFAULT_WINDOW = 128
#: Families whose layers alternate windowed and global attention, the first windowed, when the
#: config lists no ``layer_types``, with their default windows.
WINDOW_EVERY_OTHER_LAYER = {"gemma2": GEMMA2_DEFAULT_WINDOW, "gpt_oss": GPT_OSS_DEFAULT_WINDOW}
#: gpt-oss's pre-training length when its config names none: the context its yarn rope extends
#: (GptOssConfig ``original_max_position_embeddings`` 4096; ``max_position_embeddings`` 131072 is
#: the extended one).
GPT_OSS_SEQ_LEN = 4096


def _sliding_window_fields(cfg: dict[str, Any], mt: str, layers: Any, path: str) -> dict[str, Any]:
    """``sliding_window`` / ``sliding_window_layers`` of a config: the layers its ``layer_types``
    lists as "sliding_attention" (transformers' newer configs write the list), else the family's
    rule (:data:`WINDOW_EVERY_LAYER`, :data:`WINDOW_FROM_MAX_WINDOW_LAYERS`, Gemma 2's alternation);
    nothing when the config has no window."""
    window = cfg.get("sliding_window")
    if mt in WINDOW_EVERY_OTHER_LAYER:
        window = window or WINDOW_EVERY_OTHER_LAYER[mt]
    if not window or not isinstance(layers, int):
        return {}
    types = cfg.get("layer_types")
    if isinstance(types, list):
        n = sum(t == "sliding_attention" for t in types)
    elif mt in WINDOW_EVERY_LAYER:
        n = layers
    elif mt in WINDOW_FROM_MAX_WINDOW_LAYERS and cfg.get("use_sliding_window"):
        n = max(layers - _int_key(cfg, "max_window_layers", path, least=0), 0)
    elif mt in WINDOW_EVERY_OTHER_LAYER:
        n = (layers + 1) // 2
    elif mt == "gemma3_text":
        pattern = cfg.get("sliding_window_pattern") or GEMMA3_WINDOW_PATTERN
        n = layers - layers // _int_key({"sliding_window_pattern": pattern}, "sliding_window_pattern", path)
    else:
        return {}
    return {"sliding_window": window, "sliding_window_layers": n} if n else {}


def _hybrid_fields(cfg: dict[str, Any], path: str, pattern: str, family: str) -> dict[str, Any]:
    """The fields every hybrid config gives alike: its name, the pattern and its length as the
    layers, the widths and heads, the vocabulary, its context as the sequence length, the tied
    head (untied unless it says so) and RMSNorm."""
    heads = _need(cfg, "num_attention_heads", path)
    seq = cfg.get("max_position_embeddings") or DEFAULT_SEQ_LEN
    return {"name": cfg.get("_name_or_path") or _name_from_path(Path(path)) or family,
            "layers": len(pattern), "hybrid_pattern": pattern, "hidden": _need(cfg, "hidden_size", path),
            "heads": heads, "kv_heads": cfg.get("num_key_value_heads") or heads,
            "vocab": _need(cfg, "vocab_size", path), "seq_len": seq, "max_seq_len": seq,
            "tied_embeddings": bool(cfg.get("tie_word_embeddings", False)), "norm": "rmsnorm"}


def _nemotron_h_fields(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    """ModelSpec fields of a Nemotron-H config: its layers from ``hybrid_override_pattern`` (the
    released configs' key) or ``layers_block_type`` (transformers' newer one), whose length is the
    layer count as transformers takes it; a squared-ReLU MLP (``mlp_hidden_act``), no position
    embedding, RMSNorm, and the Mamba-2 keys with NemotronHConfig's defaults."""
    pattern = cfg.get("hybrid_override_pattern")
    if pattern is None:
        kinds = cfg.get("layers_block_type") or cfg.get("layer_types")
        if not isinstance(kinds, list) or not kinds:
            raise SpecError(f"{path}: missing required key 'hybrid_override_pattern' (or 'layers_block_type') "
                            f"for model_type 'nemotron_h'", field="hybrid_override_pattern")
        pattern = _layer_type_chars(kinds, NEMOTRON_H_LAYER_TYPES, "layers_block_type", path)
    act = cfg.get("mlp_hidden_act", "relu2")
    if act != "relu2":
        raise SpecError(f"{path}: mlp_hidden_act {act!r} is not supported: allowed: relu2", field="mlp_hidden_act",
                        value=act, allowed=["relu2"])
    d: dict[str, Any] = {
        **_hybrid_fields(cfg, path, pattern, "nemotron_h"),
        "ffn_hidden": _need(cfg, "intermediate_size", path) if "-" in pattern else None,
        "activation": "relu2", "position": "none", "qkv_bias": bool(cfg.get("attention_bias", False)),
    }
    for field, (keys, default) in NEMOTRON_H_DEFAULTS.items():
        d[field] = next((cfg[k] for k in keys if cfg.get(k) is not None), default)
    if "E" in pattern:
        d.update(_nemotron_h_moe_fields(cfg, path))
    return {k: v for k, v in d.items() if v is not None}


#: Qwen3-Next's layers when its config lists no ``layer_types``: every ``full_attention_interval``-th
#: attends (gated attention), the others are Gated DeltaNet (transformers 5.24.0 Qwen3NextConfig:
#: ``"linear_attention" if bool((i + 1) % interval_pattern) else "full_attention"``, interval 4).
QWEN3_NEXT_ATTENTION_INTERVAL = 4
#: A Qwen3-Next config's layer types (``layer_types``) as the characters of the mixer sublayer in
#: ``model.hybrid_pattern``: Gated DeltaNet (G) or gated attention (*).
QWEN3_NEXT_LAYER_TYPES = {"linear_attention": "G", "full_attention": "*"}
#: Qwen3-Next's attention head width when its config gives none (transformers 5.24.0
#: Qwen3NextConfig ``head_dim = 256``).
QWEN3_NEXT_HEAD_DIM = 256


def _qwen3_next_fields(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    """ModelSpec fields of a Qwen3-Next config, as a hybrid pattern of sublayers: each layer's mixer
    (G for ``linear_attention``, * for ``full_attention``: gated attention, its q projection twice as
    wide) and its MLP (E, the routed experts and the shared one, or - for the ``mlp_only_layers``
    and, under ``decoder_sparse_step`` n > 1, the layers between MoE layers)."""
    n_layers = _need(cfg, "num_hidden_layers", path)
    kinds = cfg.get("layer_types") or [
        "linear_attention" if (i + 1) % (cfg.get("full_attention_interval") or QWEN3_NEXT_ATTENTION_INTERVAL)
        else "full_attention" for i in range(n_layers)]
    mixers = _layer_type_chars(kinds, QWEN3_NEXT_LAYER_TYPES, "layer_types", path)
    experts = cfg.get("num_experts") or 0
    step = cfg.get("decoder_sparse_step") or 1
    dense = set(cfg.get("mlp_only_layers") or [])
    moe = [experts > 0 and i not in dense and (i + 1) % step == 0 for i in range(len(kinds))]
    pattern = "".join(m + ("E" if e else "-") for m, e in zip(mixers, moe))
    d: dict[str, Any] = {
        **_hybrid_fields(cfg, path, pattern, "qwen3_next"),
        "head_dim": cfg.get("head_dim") or QWEN3_NEXT_HEAD_DIM,
        "attention_output_gate": True, "qk_norm": True, "activation": "swiglu", "position": "rope",
        "gdn_key_heads": _need(cfg, "linear_num_key_heads", path),
        "gdn_value_heads": _need(cfg, "linear_num_value_heads", path),
        "gdn_key_head_dim": _need(cfg, "linear_key_head_dim", path),
        "gdn_value_head_dim": _need(cfg, "linear_value_head_dim", path),
        "gdn_conv_width": cfg.get("linear_conv_kernel_dim") or GDN_CONV_WIDTH,
    }
    if "-" in pattern:
        d["ffn_hidden"] = _need(cfg, "intermediate_size", path)
    if "E" in pattern:
        width = _need(cfg, "moe_intermediate_size", path)
        shared = _routed_width_experts(cfg.get("shared_expert_intermediate_size") or 0, width,
                                       "shared_expert_intermediate_size", path)
        d.update(experts=experts, top_k=_need(cfg, "num_experts_per_tok", path), moe_ffn_hidden=width,
                 shared_experts=shared)
    return d


def _layer_type_chars(kinds: list, types: dict[str, str], key: str, path: str) -> str:
    """A config's list of layer types as pattern characters (``types``: name -> character); a
    type not in ``types`` raises :class:`SpecError` naming ``key`` and the allowed names."""
    bad = sorted({str(k) for k in kinds} - set(types))
    if bad:
        raise SpecError(f"{path}: {key} has {', '.join(bad)}: allowed: {', '.join(types)}", field=key,
                        value=bad[0], allowed=list(types))
    return "".join(types[k] for k in kinds)


def _nemotron_h_moe_fields(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    """The MoE layers of a Nemotron-H config (Nemotron 3): routed experts and their width, and the
    shared expert read as whole experts of the routed width (its ``moe_shared_expert_intermediate_size``
    must be a multiple of it); ``n_group`` / ``topk_group`` as group-limited routing."""
    width = _need(cfg, "moe_intermediate_size", path)
    n_shared = cfg.get("n_shared_experts", 1) or 0
    shared = _routed_width_experts(cfg.get("moe_shared_expert_intermediate_size") or width, width,
                                   "moe_shared_expert_intermediate_size", path)
    return {"experts": _need(cfg, "n_routed_experts", path), "top_k": _need(cfg, "num_experts_per_tok", path),
            "moe_ffn_hidden": width, "shared_experts": n_shared * shared, **_routing_groups(cfg)}


def _routed_width_experts(shared_width: int, width: int, key: str, path: str) -> int:
    """A shared expert ``shared_width`` wide as that many experts of the routed ``width`` (equal
    FLOPs and weights); one whose width is no multiple of it raises :class:`SpecError` naming ``key``."""
    if shared_width % width:
        raise SpecError(f"{path}: {key} = {shared_width} is not a multiple of moe_intermediate_size = {width}: "
                        f"allowed: a whole number of routed-width experts", field=key, value=shared_width)
    return shared_width // width


def _int_key(cfg: dict[str, Any], key: str, path: str, least: int = 1) -> int:
    """A layer-count key of a config (``least`` when absent or null); anything but a whole number
    >= ``least`` is refused, naming the key."""
    value = least if cfg.get(key) is None else cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SpecError(f"{path}: {key} = {value!r}: allowed: a whole number >= {least}", field=key, value=value)
    return value


def _llama4_fields(cfg: dict[str, Any], path: str, layers: Any) -> dict[str, Any]:
    """The MoE fields of a Llama 4 text config: ``num_local_experts`` experts of ``intermediate_size``
    plus one shared expert of that width, ``num_experts_per_tok`` per token, in every
    ``interleave_moe_layer_step``-th layer (transformers' ``moe_layers`` = step - 1, 2 step - 1, ...);
    the other layers' dense MLP is ``intermediate_size_mlp`` wide.  An explicit ``moe_layers`` list
    is read when it is that pattern, and refused otherwise.  Training length: :data:`LLAMA4_SEQ_LEN`."""
    step = _int_key(cfg, "interleave_moe_layer_step", path)
    listed = cfg.get("moe_layers")
    pattern = list(range(step - 1, layers, step)) if isinstance(layers, int) else None
    if isinstance(listed, list) and pattern is not None and listed != pattern:
        raise SpecError(f"{path}: moe_layers = {listed!r}: only every interleave_moe_layer_step-th layer is "
                        f"supported (allowed: {pattern!r})", field="moe_layers")
    out = {"experts": _need(cfg, "num_local_experts", path), "top_k": cfg.get("num_experts_per_tok") or 1,
           "moe_ffn_hidden": _need(cfg, "intermediate_size", path), "shared_experts": 1,
           "moe_layer_interval": step, "seq_len": LLAMA4_SEQ_LEN}
    if step > 1:
        out["ffn_hidden"] = _need(cfg, "intermediate_size_mlp", path)
    return out | _llama4_chunk_fields(cfg, path, layers)


#: Llama 4's attention chunk and NoPE interval when a config names neither (transformers 5.24.0
#: Llama4TextConfig: ``attention_chunk_size`` 8192; ``no_rope_layer_interval`` 4, every fourth layer
#: global without RoPE, the others chunked).
LLAMA4_DEFAULT_CHUNK = 8192
LLAMA4_NOPE_INTERVAL = 4


def _llama4_chunk_fields(cfg: dict[str, Any], path: str, layers: Any) -> dict[str, Any]:
    """``attention_chunk`` / ``attention_chunk_layers`` of a Llama 4 text config, as transformers
    builds its layer types: ``layer_types``' "chunked_attention" where listed, else the RoPE layers
    of ``no_rope_layers`` (1 = RoPE), else all but every ``no_rope_layer_interval``-th layer;
    nothing when ``attention_chunk_size`` is null."""
    chunk = cfg.get("attention_chunk_size", LLAMA4_DEFAULT_CHUNK)
    if not chunk or not isinstance(layers, int):
        return {}
    types, rope = cfg.get("layer_types"), cfg.get("no_rope_layers")
    if isinstance(types, list):
        n = sum(t == "chunked_attention" for t in types)
    elif isinstance(rope, list) and rope:
        n = sum(1 for r in rope[:layers] if r)
    else:
        interval = _int_key({"no_rope_layer_interval": cfg.get("no_rope_layer_interval") or LLAMA4_NOPE_INTERVAL},
                            "no_rope_layer_interval", path)
        n = layers - layers // interval
    return {"attention_chunk": chunk, "attention_chunk_layers": n} if n else {}


def _gpt_oss_fields(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    """The fields of a gpt-oss config: ``num_local_experts`` experts of ``intermediate_size`` in
    every layer, ``num_experts_per_tok`` per token; biases on the attention projections, the
    router and the experts (``attention_bias``, true by default); trained at the yarn rope's
    ``original_max_position_embeddings`` (:data:`GPT_OSS_SEQ_LEN` when absent), served up to
    ``max_position_embeddings``.  The attention sinks (one logit per head) are left out."""
    rope = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    seq = rope.get("original_max_position_embeddings") if isinstance(rope, dict) else None
    return {"experts": _need(cfg, "num_local_experts", path), "top_k": _need(cfg, "num_experts_per_tok", path),
            "moe_ffn_hidden": _need(cfg, "intermediate_size", path), "bias": bool(cfg.get("attention_bias", True)),
            "qkv_bias": False, "seq_len": seq or GPT_OSS_SEQ_LEN}


def _falcon_keys(cfg: dict[str, Any]) -> dict[str, Any]:
    """A Falcon config in llama's key names: the first releases (:data:`FALCON_LEGACY_TYPES`) wrote
    ``n_layer``, ``n_head`` and ``n_head_kv``, which transformers' FalconConfig still reads.  KV heads:
    ``num_kv_heads`` under the "new decoder architecture" (Falcon-40B/180B), one under
    ``multi_query`` (Falcon-7B, the default), else one per head."""
    out = dict(cfg)
    out.setdefault("num_hidden_layers", cfg.get("n_layer"))
    out.setdefault("num_attention_heads", cfg.get("n_head"))
    heads = out["num_attention_heads"]
    if cfg.get("new_decoder_architecture"):
        kv = cfg.get("num_kv_heads") or cfg.get("n_head_kv") or heads
    else:
        kv = 1 if cfg.get("multi_query", True) else heads
    out["num_key_value_heads"] = kv
    return out


def _qwen_moe_fields(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    """The MoE fields of a Qwen2-MoE / Qwen3-MoE config: every ``decoder_sparse_step``-th layer
    routed (transformers: ``(layer_idx + 1) % decoder_sparse_step == 0``; the released models' 1 is
    every layer), the others with the ``intermediate_size`` dense MLP; ``mlp_only_layers`` other
    than none is refused, naming the key; ``num_experts`` experts of ``moe_intermediate_size``,
    ``num_experts_per_tok`` per token, and
    Qwen2-MoE's one shared expert of ``shared_expert_intermediate_size`` as that many routed-width
    experts (Qwen1.5-MoE-A2.7B: 5632 = 4 x 1408; its sigmoid gate, one h-wide vector, is left out)."""
    if cfg.get("mlp_only_layers") not in (None, []):
        raise SpecError(f"{path}: mlp_only_layers = {cfg['mlp_only_layers']!r}: only MoE layers every "
                        "decoder_sparse_step layers are supported (allowed: [])", field="mlp_only_layers",
                        value=cfg["mlp_only_layers"], allowed=[[]])
    step = _int_key(cfg, "decoder_sparse_step", path)
    width = _need(cfg, "moe_intermediate_size", path)
    shared = _routed_width_experts(cfg.get("shared_expert_intermediate_size") or 0, width,
                                   "shared_expert_intermediate_size", path)
    out = {"experts": _need(cfg, "num_experts", path), "top_k": _need(cfg, "num_experts_per_tok", path),
           "moe_ffn_hidden": width, "shared_experts": shared, "moe_layer_interval": step}
    if step > 1:
        out["ffn_hidden"] = _need(cfg, "intermediate_size", path)
    return out


def _deepseek_moe_layers(cfg: dict[str, Any], layers: Any) -> dict[str, int]:
    """``first_dense_layers`` (and ``moe_layer_interval``) of a DeepSeek config: transformers'
    DeepseekV3 layer ``i`` has experts when ``i >= first_k_dense_replace`` and ``i % moe_layer_freq
    == 0``.  The released configs' frequency 1 is every layer after the first k.  Under a frequency
    f > 1 the spec's every-f-th-layer rule counts ``(layers - first) // f`` MoE layers, so ``first``
    is moved, as little as it must be, to give the config's count of them."""
    first = cfg.get("first_k_dense_replace") or 0
    freq = cfg.get("moe_layer_freq") or 1
    if freq == 1 or not isinstance(layers, int):
        return {"first_dense_layers": first}
    count = sum(1 for i in range(first, layers) if i % freq == 0)
    first = min(max(first, layers - freq * (count + 1) + 1), layers - freq * count)
    return {"first_dense_layers": first, "moe_layer_interval": freq}


#: DeepSeek ``topk_method`` values that pick a token's experts from ``topk_group`` of ``n_group``
#: groups (DeepSeek-V2 "group_limited_greedy", DeepSeek-V3 "noaux_tc"); "greedy" has no limit.
GROUP_LIMITED_TOPK_METHODS = ("group_limited_greedy", "noaux_tc")


def _routing_groups(cfg: dict[str, Any]) -> dict[str, int]:
    """``routing_groups`` / ``routing_groups_per_token`` from a DeepSeek config's n_group /
    topk_group, when its topk_method limits the groups (and the limit bites)."""
    g, m = cfg.get("n_group") or 0, cfg.get("topk_group") or 0
    if cfg.get("topk_method") in GROUP_LIMITED_TOPK_METHODS and 0 < m < g:
        return {"routing_groups": g, "routing_groups_per_token": m}
    return {}


def _name_from_path(p: Path) -> str:
    """A model's name from its config's path: the directory of a ``config.json`` (a checkpoint's
    folder, named after the model), else the file's own stem (``llama3-8b.json``)."""
    return p.parent.name if p.name == "config.json" else p.stem


def hf_config_path(path: str | Path, base_dir: str | Path | None = None) -> Path:
    """The ``config.json`` a path names: the file itself, or the one in a directory; a relative path
    is taken from ``base_dir`` (the spec file's folder) when given, else from the working directory."""
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p / "config.json" if p.is_dir() else p


def hf_config_fields(path: str | Path) -> dict[str, Any]:
    """ModelSpec fields from a local Hugging Face ``config.json`` (or a directory holding one):
    :func:`hf_config_to_fields` of the parsed file; a missing or malformed file is a :class:`SpecError`."""
    p = hf_config_path(path)
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError):
        raise SpecError(f"config file '{p}' not found: allowed: a catalog model id, or the path of a "
                        "config.json or of the folder holding one", field="config", value=str(p)) from None
    except UnicodeDecodeError:
        raise SpecError(f"config file '{p}' is not UTF-8 text", field="config", value=str(p)) from None
    except json.JSONDecodeError as e:
        raise SpecError(f"{p}: not valid JSON at line {e.lineno}: {e.msg}", field="config") from None
    if not isinstance(cfg, dict):
        raise SpecError(f"{p}: a config.json is a JSON object", field="config")
    return hf_config_to_fields(cfg, str(p))


def load_hf_config(path: str | Path) -> ModelSpec:
    """A :class:`ModelSpec` from a local Hugging Face ``config.json`` (or a directory holding one)."""
    return validate_model(ModelSpec, hf_config_fields(path), "model")


__all__ = ["SUPPORTED", "hf_config_fields", "hf_config_path", "hf_config_to_fields", "load_hf_config"]
