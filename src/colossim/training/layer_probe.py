"""One transformer layer's forward and backward on the GPU present, at a plan's per-GPU shapes,
beside the engine's compute seconds for the same layer.

The validation set's error splits (``benchmarks/error_structure.py``) put the H100 runs' compute
about a tenth slower than the engine prices it, and their communication faster; a multi-GPU run
cannot tell the two apart, one GPU can: with no communication at all, a layer's time on one GPU
is the engine's compute model alone.  A :class:`LayerCase` names a model and the per-GPU slice a
plan gives one GPU of a TP group (heads / tp, the MLP's width / tp, every token of the micro-batch);
:func:`measure_layer` builds a stack of such layers in plain PyTorch (bf16 weights, no
communication, no optimizer) and times the forward and the backward with CUDA events after a hold
at the power limit; two more steps under the PyTorch profiler, back to back, split the timed step
in proportion to their GEMM, attention and other (memory-bound) kernels' seconds.
:func:`predict_layer` gives the engine's side, split the same way
(:func:`colossim.training.step.op_kind_seconds`).

What the slice leaves out, on both sides: sequence parallelism (the norms run on every token, as
with ``sequence_parallel`` false), biases, dropout (the rows' H100 models train without) and the
ALiBi bias (the engine prices none).  The attention runs through PyTorch's FlashAttention-2
backend, priced as ``attention_kernel`` flash2.  Eager PyTorch runs the norms, the rotary
embedding and a gated activation as chains of kernels, which the engine prices with
``elementwise_fusion`` false; ``compile`` fuses them (the engine's fused kernels).

torch is imported lazily and is not a dependency: without it or without a CUDA device
:func:`measure_layer` raises :class:`~colossim.cost.calibrate.NoGpuError`.  The pure parts (the
spec, the engine's side, the kernel classes, the comparison) are tested without a GPU.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import asdict, dataclass, field

from colossim.errors import SpecError

#: Kernel classes of the profiler split, matched on the kernel's name in this order (first match):
#: FlashAttention / cuDNN / PyTorch's memory-efficient attention kernels, then cuBLAS / CUTLASS
#: GEMMs (Hopper's ``nvjet`` and ``sm90_xmma`` kernels included); everything else is memory-bound.
KERNEL_CLASSES = (("attention", re.compile(r"flash|fmha|attn|attention|sdpa", re.I)),
                  ("gemm", re.compile(r"gemm|nvjet|cutlass|xmma|cublas|wgmma|s16816|h16816", re.I)))
#: The profiler split's classes, in the order tables print them.
KINDS = ("gemm", "attention", "memory")
#: Steps the profiler records (their kernels' shares by class are taken, :func:`scale_split`).
#: Because: two steps back to back are enough to average out where one step's kernels start;
#: more only lengthen the trace.
PROFILED_STEPS = 2


@dataclass(frozen=True)
class LayerCase:
    """One layer slice: ``model`` (a catalog id, or a model mapping as a spec takes one) at tensor
    parallelism ``tp`` (the slice one GPU holds), ``micro_batch`` sequences of ``seq_len`` tokens
    (None: the model's).  ``layers`` such layers are stacked in the timed module (per-layer figures
    divide by it); ``hold_seconds`` of steps run before the timing (the GPU at its power limit,
    as in training)."""

    label: str
    model: str | dict
    tp: int = 1
    micro_batch: int = 1
    seq_len: int | None = None
    compile: bool = False
    layers: int = 2
    iters: int = 10
    hold_seconds: float = 15.0

    def __post_init__(self) -> None:
        for name in ("tp", "micro_batch", "layers", "iters"):
            if int(getattr(self, name)) < 1:
                raise SpecError(f"{name} must be >= 1, got {getattr(self, name)}", field=name,
                                value=getattr(self, name))
        if self.hold_seconds < 0:
            raise SpecError(f"hold_seconds must be >= 0, got {self.hold_seconds}", field="hold_seconds",
                            value=self.hold_seconds)


def layer_spec(case: LayerCase, chip: str) -> dict:
    """The training spec whose per-GPU layer is ``case``'s slice: ``tp`` GPUs of ``chip``, one
    micro-batch, sequence parallelism off, FlashAttention-2, elementwise fusion as ``compile``."""
    model = dict(case.model) if isinstance(case.model, dict) else {"name": case.model}
    if case.seq_len is not None:
        model["seq_len"] = case.seq_len
    return {
        "model": model,
        "hardware": {"gpu": chip, "count": case.tp},
        "parallelism": {"tp": case.tp, "pp": 1, "cp": 1, "ep": 1, "dp": 1, "vpp": 1,
                        "micro_batch": case.micro_batch, "recompute": "none", "zero": 0,
                        "sequence_parallel": False, "flash_attention": True,
                        "attention_kernel": "flash2", "elementwise_fusion": case.compile},
        "training": {"global_batch": case.micro_batch, "precision": "bf16"},
    }


def predict_layer(case: LayerCase, chip: str, profile=None) -> dict:
    """The engine's seconds for one layer of ``case`` on ``chip`` (per GPU, one micro-batch, no
    communication): ``fwd``, ``bwd`` and the forward + backward split into ``gemm``,
    ``attention`` and ``memory``; ``flops`` of the forward's GEMMs and attention."""
    import numpy as np

    from colossim.specs.training import load_spec
    from colossim.training.estimate import plan_space
    from colossim.training.ops import gemm_and_attention_flops
    from colossim.training.step import op_kind_seconds, ops_seconds, plan_layer_ops

    spec = load_spec(layer_spec(case, chip))
    if spec.model.windowed_layers:
        # the timed layer attends the whole causal triangle (PyTorch's SDPA takes a window only as
        # a mask, which leaves the flash kernel), so the prediction does too
        model = spec.model.model_copy(update={"sliding_window": None, "sliding_window_layers": None})
        spec = spec.model_copy(update={"model": model})
    ctx, plans = plan_space(spec, profile)  # the spec leaves nothing open: one plan
    kind = spec.model.layer_kinds[0][0]
    ops = plan_layer_ops(ctx, plans, kind)
    t = ops_seconds(ops, ctx)
    kinds = op_kind_seconds(ops, ctx)
    return {"fwd": float(np.ravel(t["fwd"])[0]), "bwd": float(np.ravel(t["bwd"])[0]),
            **{k: float(np.ravel(v)[0]) for k, v in kinds.items()},
            "flops": float(np.ravel(gemm_and_attention_flops(ops))[0])}


def kernel_class(name: str) -> str:
    """The class (``gemm``, ``attention`` or ``memory``) of a GPU kernel by its name."""
    for kind, pattern in KERNEL_CLASSES:
        if pattern.search(name):
            return kind
    return "memory"


def _device_events(trace: dict):
    """(category, name, seconds) of each device event of a Chrome trace: kernels, copies, fills."""
    for ev in trace.get("traceEvents", []):
        cat = str(ev.get("cat", "")).lower()
        if cat in ("kernel", "gpu_memcpy", "gpu_memset"):
            yield cat, str(ev.get("name", "")), float(ev.get("dur", 0.0)) / 1e6


def split_trace(trace: dict) -> dict[str, float]:
    """Seconds of device time by kernel class in a Chrome trace (``export_chrome_trace``): the
    ``kernel`` events by :func:`kernel_class`, device copies and fills as memory."""
    out = dict.fromkeys(KINDS, 0.0)
    for cat, name, seconds in _device_events(trace):
        out[kernel_class(name) if cat == "kernel" else "memory"] += seconds
    return out


def scale_split(kernel_seconds: dict[str, float], total_seconds: float) -> dict[str, float]:
    """``total_seconds`` (a timed step) split in proportion to the profiled kernels' seconds by
    class.  Because: the profiler records whatever kernels run while it is on, and with the GPU
    kept busy (the host a step ahead) those include some of the step before the recorded ones, so
    its sums are right in proportion, not in total; the timed step has no idle gaps to leave out."""
    busy = sum(kernel_seconds.values())
    if busy <= 0:
        return dict.fromkeys(kernel_seconds, 0.0)
    return {k: total_seconds * v / busy for k, v in kernel_seconds.items()}


@dataclass(frozen=True)
class LayerMeasurement:
    """Timed steps of one case, per layer: forward and backward seconds of each timed step, the
    profiled step's device seconds by kernel class, the clock and power read while timing."""

    fwd_s: tuple[float, ...]
    bwd_s: tuple[float, ...]
    kinds_s: dict
    device: str
    library: str
    sm_clock_mhz: float | None = None
    power_w: float | None = None
    attention_backend: str = ""
    date: str = field(default="")

    @property
    def fwd(self) -> float:
        return statistics.median(self.fwd_s)

    @property
    def bwd(self) -> float:
        return statistics.median(self.bwd_s)


def compare_layer(case: LayerCase, chip: str, meas: LayerMeasurement, pred: dict) -> dict:
    """One row: measured against predicted seconds per layer (forward, backward, total and by
    kernel class) and ``error`` = predicted / measured layer time - 1 (negative: the engine's
    layer is faster than the GPU's)."""
    measured_total = meas.fwd + meas.bwd
    predicted_total = pred["fwd"] + pred["bwd"]
    return {
        "case": asdict(case),
        "chip": chip, "device": meas.device, "library": meas.library, "date": meas.date,
        "sm_clock_mhz": meas.sm_clock_mhz, "power_w": meas.power_w,
        "attention_backend": meas.attention_backend,
        "measured": {"fwd_s": meas.fwd, "bwd_s": meas.bwd, "total_s": measured_total,
                     "fwd_steps_s": list(meas.fwd_s), "bwd_steps_s": list(meas.bwd_s), **meas.kinds_s,
                     "tflops": 3.0 * pred["flops"] / measured_total / 1e12},
        "predicted": {"fwd_s": pred["fwd"], "bwd_s": pred["bwd"], "total_s": predicted_total,
                      **{k: pred[k] for k in KINDS}, "tflops": 3.0 * pred["flops"] / predicted_total / 1e12},
        "error": predicted_total / measured_total - 1.0,
    }


def _build_stack(torch, model, case: LayerCase, gqa: dict):  # pragma: no cover - needs torch
    """``case.layers`` rank-local layers of ``model`` (a ModelSpec) as a torch module; GQA's K and V
    go to the attention as they are, or repeated to every query head when ``gqa["expand"]``."""
    nn, F = torch.nn, torch.nn.functional
    tp, h = case.tp, model.hidden
    heads, d = model.heads // tp, model.head_dim
    kv = max(model.kv_heads // tp, 1)
    gated = model.activation.gated
    f = model.ffn_hidden // tp
    act = model.activation.value

    class RMSNorm(nn.Module):  # Hugging Face's LlamaRMSNorm, kernel by kernel (eager chain)
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(h))

        def forward(self, x):
            y = x.to(torch.float32)
            y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-5)
            return self.weight * y.to(x.dtype)

    def norm():
        return RMSNorm() if model.norm == "rmsnorm" else nn.LayerNorm(h, bias=False)

    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.n1, self.n2 = norm(), norm()
            self.qkv = nn.Linear(h, (heads + 2 * kv) * d, bias=False)
            self.out = nn.Linear(heads * d, h, bias=False)
            self.up = nn.Linear(h, (2 if gated else 1) * f, bias=False)
            self.down = nn.Linear(f, h, bias=False)

        def forward(self, x, cos, sin):
            b, s, _ = x.shape
            q, k, v = self.qkv(self.n1(x)).split((heads * d, kv * d, kv * d), dim=-1)
            q = q.view(b, s, heads, d).transpose(1, 2)
            k = k.view(b, s, kv, d).transpose(1, 2)
            v = v.view(b, s, kv, d).transpose(1, 2)
            if cos is not None:
                q = q * cos + rotate_half(q) * sin
                k = k * cos + rotate_half(k) * sin
            if kv != heads and gqa["expand"]:  # the backend takes no GQA: repeat K and V
                k, v = (t.repeat_interleave(heads // kv, dim=1) for t in (k, v))
            if kv != heads and not gqa["expand"]:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            else:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.out(a.transpose(1, 2).reshape(b, s, heads * d))
            u = self.up(self.n2(x))
            if gated:
                g, u = u.chunk(2, dim=-1)
                u = (F.silu(g) if act == "swiglu" else F.gelu(g, approximate="tanh")) * u
            elif act == "relu2":
                u = torch.square(F.relu(u))
            elif act == "relu":
                u = F.relu(u)
            else:
                u = F.gelu(u, approximate="tanh")
            return x + self.down(u)

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(Layer() for _ in range(case.layers))

        def forward(self, x, cos, sin):
            for layer in self.layers:
                x = layer(x, cos, sin)
            return x

    return Stack()


def nvml_reader():  # pragma: no cover - needs a GPU
    """A function returning the SM clock (MHz) and board power (W) NVML reads now, or (None, None)
    without NVML (nvidia-ml-py)."""
    try:
        import pynvml  # noqa: PLC0415

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception:  # noqa: BLE001 - NVML is optional
        return lambda: (None, None)
    return lambda: (float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
                    pynvml.nvmlDeviceGetPowerUsage(handle) / 1e3)


def measure_layer(case: LayerCase, chip: str = "h100-sxm") -> LayerMeasurement:  # pragma: no cover
    """Time ``case`` on the CUDA device present (see the module's docstring)."""
    import datetime as _dt
    import os
    import tempfile
    import time

    from colossim.cost.calibrate import _import_torch
    from colossim.specs.training import load_spec

    torch = _import_torch("layer probe")
    from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: PLC0415

    spec = load_spec(layer_spec(case, chip))
    model, s, b = spec.model, spec.seq_len, case.micro_batch
    dev = torch.device("cuda")
    torch.manual_seed(0)
    gqa = {"expand": False}
    stack = _build_stack(torch, model, case, gqa).to(dev, torch.bfloat16)
    run = torch.compile(stack) if case.compile else stack
    x = torch.randn(b, s, model.hidden, device=dev, dtype=torch.bfloat16, requires_grad=True)
    gy = torch.randn_like(x)
    cos = sin = None
    if model.position == "rope":
        d = model.head_dim
        inv = 1.0 / (500000.0 ** (torch.arange(0, d, 2, device=dev, dtype=torch.float32) / d))
        ang = torch.outer(torch.arange(s, device=dev, dtype=torch.float32), inv)
        ang = torch.cat((ang, ang), dim=-1)
        cos, sin = ang.cos().to(torch.bfloat16), ang.sin().to(torch.bfloat16)

    def step(events=None):
        if events:
            events[0].record()
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            y = run(x, cos, sin)
        if events:
            events[1].record()
        y.backward(gy)
        if events:
            events[2].record()
        x.grad = None
        for p in stack.parameters():
            p.grad = None

    try:
        step()
    except RuntimeError:  # the FlashAttention-2 backend refused GQA: repeat K and V for it
        if gqa["expand"] or model.kv_heads == model.heads:
            raise
        gqa["expand"] = True
        step()
    torch.cuda.synchronize()
    end = time.perf_counter() + case.hold_seconds
    while time.perf_counter() < end:
        step()
        torch.cuda.synchronize()
    read = nvml_reader()
    fwd, bwd, clocks, power = [], [], [], []
    for _ in range(case.iters):
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
        step(ev)
        c, w = read()  # read while the step's kernels still run
        torch.cuda.synchronize()
        fwd.append(ev[0].elapsed_time(ev[1]) / 1e3 / case.layers)
        bwd.append(ev[1].elapsed_time(ev[2]) / 1e3 / case.layers)
        if c is not None:
            clocks.append(c)
            power.append(w)
    # the profiled steps run back to back after two that are not recorded: the GPU stays busy and
    # at its power-limited clock while the profiler starts (an idle GPU would boost its clock)
    schedule = torch.profiler.schedule(wait=1, warmup=1, active=PROFILED_STEPS)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA],
                                schedule=schedule) as prof:
        for i in range(2 + PROFILED_STEPS):
            step()
            if i == 1 + PROFILED_STEPS:  # every recorded kernel done before the trace closes
                torch.cuda.synchronize()
            prof.step()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path, encoding="utf-8") as fh:
            trace = json.load(fh)
    kinds = scale_split(split_trace(trace), statistics.median(fwd) + statistics.median(bwd))
    names = sorted({name for cat, name, _ in _device_events(trace)
                    if cat == "kernel" and kernel_class(name) == "attention"})
    props = torch.cuda.get_device_properties(0)
    return LayerMeasurement(tuple(fwd), tuple(bwd), kinds, props.name,
                            f"torch {torch.__version__}, CUDA {torch.version.cuda}",
                            statistics.median(clocks) if clocks else None,
                            statistics.median(power) if power else None,
                            "; ".join(n[:60] for n in names[:3]) + (" (K, V repeated)" if gqa["expand"] else ""),
                            _dt.date.today().isoformat())


__all__ = ["KERNEL_CLASSES", "KINDS", "PROFILED_STEPS", "LayerCase", "LayerMeasurement", "compare_layer",
           "kernel_class", "layer_spec", "measure_layer", "nvml_reader", "predict_layer", "scale_split",
           "split_trace"]
