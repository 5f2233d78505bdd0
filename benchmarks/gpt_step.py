"""A real PyTorch training step of a ~1B GPT on the GPU present, beside colossim's prediction
for the same run (issue 3's check on real hardware). Prints one row per configuration: measured and
predicted step time, tokens/s, MFU and memory, and the error (predicted / measured tokens/s - 1).

The configurations separate the mechanisms: eager against torch.compile (unfused against fused
norms, activations and residual adds), activation checkpointing, GeLU against SwiGLU. Without a CUDA
GPU (or without torch, which is not a dependency) it prints the predictions alone.

Run: .venv/bin/python benchmarks/gpt_step.py [--chip h100-sxm] [--out DIR]
(--out writes one JSON per configuration, to commit as data with the device, date and versions.)"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from colossim.cli.common import to_jsonable
from colossim.cost.calibrate import NoGpuError
from colossim.training import probe as P

CASES = [
    ("eager", P.ProbeConfig()),
    ("compiled", P.ProbeConfig(compile=True)),
    ("eager, recompute", P.ProbeConfig(recompute=True, micro_batch=16)),
    ("eager, swiglu", P.ProbeConfig(activation="swiglu", ffn_hidden=5632)),
    ("compiled, swiglu", P.ProbeConfig(activation="swiglu", ffn_hidden=5632, compile=True)),
]

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--chip", default="h100-sxm")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    t = Table(title=f"probe GPT training step on {args.chip}: measured vs colossim")
    for c in ("case", "params", "tokens/step", "step s meas", "step s pred", "MFU meas", "MFU pred",
              "GiB meas", "GiB pred", "error"):
        t.add_column(c, justify="left" if c == "case" else "right")
    note = None
    for name, cfg in CASES:
        est = P.predict(cfg, args.chip)
        row = {"predicted": P.predicted_row(est)}
        if note is None:
            try:
                row = P.compare(cfg, args.chip, P.measure_step(cfg), est)
            except NoGpuError as e:
                note = str(e)
        if args.out is not None and "measured" in row:
            args.out.mkdir(parents=True, exist_ok=True)
            slug = name.replace(", ", "-")
            (args.out / f"probe-{args.chip}-{slug}.json").write_text(
                json.dumps(to_jsonable(row), indent=2) + "\n", encoding="utf-8")
        m, p = row.get("measured", {}), row["predicted"]
        t.add_row(name, f"{P.probe_params(cfg) / 1e9:.2f}B", f"{cfg.tokens_per_step:,}",
                  f"{m['step_time_s']:.4f}" if m else "-", f"{p['step_time_s']:.4f}",
                  f"{m['mfu']:.1%}" if m else "-", f"{p['mfu']:.1%}",
                  f"{m['max_memory_gib']:.1f}" if m else "-", f"{p['memory_gib']:.1f}",
                  f"{row['error']:+.1%}" if "error" in row else "-")
    Console(width=160).print(t)
    if note:
        Console().print(f"predictions only: {note}")
