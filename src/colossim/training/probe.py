"""A real PyTorch training step on the GPU present, next to the engine's prediction for the same run.

Issue 3 asks for a check on real hardware: time the training steps of a ~1B-parameter GPT in PyTorch
and compare them with colossim's prediction for the same configuration. This module holds both
sides, so one command on a lent GPU gives the comparison (``colossim train probe``,
``benchmarks/gpt_step.py``).

The model is written here in plain PyTorch, so nothing is downloaded:

- pre-norm GPT blocks with LayerNorm and learned positions;
- no biases and no dropout, and the input embedding tied to the output head;
- causal attention through ``scaled_dot_product_attention`` (FlashAttention on Ampere/Hopper);
- a GeLU MLP, or a SwiGLU MLP with the gate and up projections fused into one GEMM.

Training runs bf16 autocast over fp32 weights with fused AdamW. Per-block activation checkpointing
(``recompute``) and ``torch.compile`` are options. With ``compile`` off, the norms, activations and
residual adds run as separate eager kernels. The engine prices the eager SwiGLU chain
(``elementwise_fusion`` false, see :func:`probe_spec`), not the rest of what ``torch.compile``
fuses (norm with residual add, the attention's layout copies). Comparing the two modes on one GPU
measures that gap directly (``benchmarks/gpt_step.py``; results committed under
``benchmarks/results/``).

The engine sees the same run as one GPU at tp = pp = dp = 1 with ZeRO 0 and FlashAttention
(:func:`probe_spec`). torch is imported lazily and is not a dependency. Without it, or without a CUDA
device, :func:`measure_step` raises :class:`~colossim.cost.calibrate.NoGpuError`. The pure parts
(the spec, the parameter count, the comparison) are tested without a GPU.
"""

from __future__ import annotations

import datetime as _dt
import statistics
from dataclasses import asdict, dataclass, field

from colossim.errors import SpecError

#: Activations the probe model implements.
PROBE_ACTIVATIONS = ("gelu", "swiglu")


@dataclass(frozen=True)
class ProbeConfig:
    """One probe run. The defaults give a 1.31B-parameter GPT (24 x 2048, GPT-2 vocabulary padded to
    a multiple of 128), at 8 x 2048 tokens per step."""

    layers: int = 24
    hidden: int = 2048
    heads: int = 16
    ffn_hidden: int = 8192
    vocab: int = 50304
    seq_len: int = 2048
    micro_batch: int = 8
    activation: str = "gelu"
    recompute: bool = False
    compile: bool = False
    steps: int = 10
    warmup: int = 3

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "heads", "ffn_hidden", "vocab", "seq_len", "micro_batch", "steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise SpecError(f"probe.{name}: {v!r} is not allowed; give a positive integer",
                                field=f"probe.{name}", value=v)
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise SpecError(f"probe.warmup: {self.warmup!r} is not allowed; give an integer >= 0",
                            field="probe.warmup", value=self.warmup)
        if self.activation not in PROBE_ACTIVATIONS:
            raise SpecError(f"probe.activation: '{self.activation}' is not allowed; allowed: "
                            f"{', '.join(PROBE_ACTIVATIONS)}", field="probe.activation",
                            value=self.activation, allowed=PROBE_ACTIVATIONS)
        if self.hidden % self.heads:
            raise SpecError(f"probe.heads: {self.heads} does not divide probe.hidden {self.hidden}; "
                            f"allowed: a divisor of {self.hidden}", field="probe.heads", value=self.heads)

    @property
    def tokens_per_step(self) -> int:
        return self.micro_batch * self.seq_len


def probe_params(cfg: ProbeConfig) -> int:
    """Exact parameter count of the probe model: per block two bias-free LayerNorms (h each), QKV
    (3h^2) and output (h^2) projections, the MLP (fc1 h x f, two of them for SwiGLU, and fc2 f x h);
    a final LayerNorm; the token embedding (tied to the head) and the learned positions."""
    h, f = cfg.hidden, cfg.ffn_hidden
    mlp = (3 if cfg.activation == "swiglu" else 2) * h * f
    block = 2 * h + 4 * h * h + mlp
    return cfg.layers * block + h + cfg.vocab * h + cfg.seq_len * h


def probe_spec(cfg: ProbeConfig, chip: str) -> dict:
    """The colossim training spec of the probe run on one ``chip``: the same block (LayerNorm,
    learned positions, no biases or dropout, tied embeddings), one GPU, ZeRO 0, FlashAttention,
    one micro-batch per step. Elementwise fusion follows ``compile``: eager PyTorch runs a SwiGLU
    as separate kernels (``silu``, then the product), which the engine prices with
    ``elementwise_fusion`` false (:data:`colossim.training.ops.EAGER_BYTES_PER_ELEMENT`); a
    LayerNorm and a GeLU are one kernel either way. The loop is bare PyTorch (no framework
    around the step), so no host time per step (``training.host_seconds_per_step`` 0): the
    stack's figure is the Megatron loop's."""
    return {
        "model": {"name": "probe-gpt", "layers": cfg.layers, "hidden": cfg.hidden,
                  "ffn_hidden": cfg.ffn_hidden, "heads": cfg.heads, "kv_heads": cfg.heads,
                  "vocab": cfg.vocab, "seq_len": cfg.seq_len, "activation": cfg.activation,
                  "norm": "layernorm", "position": "learned", "bias": False, "dropout": False,
                  "tied_embeddings": True},
        "hardware": {"gpu": chip, "count": 1},
        "parallelism": {"tp": 1, "pp": 1, "cp": 1, "dp": 1, "vpp": 1, "micro_batch": cfg.micro_batch,
                        "recompute": "full" if cfg.recompute else "none", "zero": 0,
                        "sequence_parallel": False, "flash_attention": True,
                        "elementwise_fusion": cfg.compile},
        "training": {"global_batch": cfg.micro_batch, "precision": "bf16", "host_seconds_per_step": 0.0},
    }


def predict(cfg: ProbeConfig, chip: str, profile=None):
    """The engine's :class:`~colossim.training.estimate.TrainingEstimate` for the probe run."""
    from colossim.specs.training import load_spec
    from colossim.training.estimate import estimate

    return estimate(load_spec(probe_spec(cfg, chip)), profile=profile)


@dataclass(frozen=True)
class StepMeasurement:
    """Timed steps of one probe run (seconds per whole step: forward, backward, optimizer)."""

    step_times_s: tuple[float, ...]
    max_memory_gib: float
    device: str
    driver: str
    library: str
    params: int
    date: str = field(default_factory=lambda: _dt.date.today().isoformat())

    @property
    def step_time_s(self) -> float:
        """Median over the timed steps."""
        return statistics.median(self.step_times_s)


def _build_model(torch, cfg: ProbeConfig):
    """The probe GPT as a ``torch.nn.Module`` (classes made here because torch is imported lazily)."""
    nn, F = torch.nn, torch.nn.functional
    h, f, heads = cfg.hidden, cfg.ffn_hidden, cfg.heads
    gated = cfg.activation == "swiglu"

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(h, bias=False)
            self.qkv = nn.Linear(h, 3 * h, bias=False)
            self.proj = nn.Linear(h, h, bias=False)
            self.ln2 = nn.LayerNorm(h, bias=False)
            self.fc1 = nn.Linear(h, (2 if gated else 1) * f, bias=False)
            self.fc2 = nn.Linear(f, h, bias=False)

        def forward(self, x):
            b, s, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(h, dim=-1)
            q, k, v = (t.view(b, s, heads, h // heads).transpose(1, 2) for t in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, s, h))
            u = self.fc1(self.ln2(x))
            if gated:
                g, u = u.chunk(2, dim=-1)
                u = F.silu(g) * u
            else:
                u = F.gelu(u, approximate="tanh")
            return x + self.fc2(u)

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(cfg.vocab, h)
            self.pos = nn.Embedding(cfg.seq_len, h)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg.layers))
            self.ln_f = nn.LayerNorm(h, bias=False)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
            for blk in self.blocks:
                if cfg.recompute and self.training:
                    x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
                else:
                    x = blk(x)
            return self.ln_f(x) @ self.tok.weight.t()

    return GPT()


def measure_step(cfg: ProbeConfig, device: str = "cuda") -> StepMeasurement:
    """Time ``cfg.steps`` training steps after ``cfg.warmup`` on ``device`` ("cuda", or "cpu" to
    exercise the code path: the CPU timing says nothing about a GPU). Random token ids, so nothing
    is downloaded."""
    import time

    from colossim.cost.calibrate import NoGpuError, _import_torch

    if device == "cuda":
        torch = _import_torch("train probe")
    else:
        try:
            import torch  # noqa: PLC0415 - optional dependency
        except ImportError:
            raise NoGpuError("train probe needs PyTorch: torch is not installed", field="torch") from None

    dev = torch.device(device)
    torch.manual_seed(0)
    model = _build_model(torch, cfg).to(dev)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    run = torch.compile(model) if cfg.compile else model
    idx = torch.randint(0, cfg.vocab, (cfg.micro_batch, cfg.seq_len + 1), device=dev)
    x, y = idx[:, :-1], idx[:, 1:]
    amp_dtype = torch.bfloat16

    def step():
        with torch.autocast(device_type=device, dtype=amp_dtype):
            logits = run(x)
            loss = torch.nn.functional.cross_entropy(logits.float().view(-1, cfg.vocab), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(cfg.warmup):
        step()
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(cfg.steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        name, mem = props.name, torch.cuda.max_memory_allocated() / 2**30
        drv = str(getattr(torch.cuda, "driver_version", lambda: "unknown")())
    else:
        name, mem, drv = "cpu", 0.0, "none"
    lib = f"torch {torch.__version__}, CUDA {torch.version.cuda}"
    return StepMeasurement(tuple(times), mem, name, drv, lib, params)


def compare(cfg: ProbeConfig, chip: str, measured: StepMeasurement, est) -> dict:
    """One row: measured against predicted step time, tokens/s, MFU (the engine's convention, on
    the measured time) and memory. ``error`` is predicted/measured tokens/s - 1, as in
    ``colossim validate training``."""
    tokens = cfg.tokens_per_step
    meas_tps = tokens / measured.step_time_s
    peak = est.tflops_per_gpu * 1e12 / est.mfu if est.mfu else None
    return {
        "config": asdict(cfg), "chip": chip, "device": measured.device, "driver": measured.driver,
        "library": measured.library, "date": measured.date, "params": measured.params,
        "measured": {"step_time_s": measured.step_time_s, "step_times_s": list(measured.step_times_s),
                     "tokens_per_s": meas_tps,
                     "mfu": (est.model_flops_per_token * meas_tps / peak) if peak else None,
                     "max_memory_gib": measured.max_memory_gib},
        "predicted": predicted_row(est),
        "error": est.tokens_per_s / meas_tps - 1.0,
    }


def predicted_row(est) -> dict:
    """The engine's side of a probe row: step time, tokens/s, MFU, memory, breakdown, stack."""
    return {"step_time_s": est.step_time_s, "tokens_per_s": est.tokens_per_s, "mfu": est.mfu,
            "memory_gib": est.memory_gib_per_gpu, "time_breakdown_s": est.time_breakdown_s,
            "software": est.software}


__all__ = ["PROBE_ACTIVATIONS", "ProbeConfig", "StepMeasurement", "compare", "measure_step", "predict",
           "predicted_row", "probe_params", "probe_spec"]
