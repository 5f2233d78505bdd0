"""One transformer layer's forward + backward on the GPU present, at the per-GPU shapes of the
validation set's H100 plans, beside the engine's compute seconds for the same layer (no
communication on either side; colossim.training.layer_probe).  Prints one row per case: measured
and predicted seconds per layer, by kernel class (GEMM, attention, memory-bound) from one profiled
step, the SM clock and board power read while timing, and the error (predicted / measured - 1;
negative: the engine's layer is faster than the GPU's).  Predictions use the chip's default
profile and, with --profile, a calibrated one beside it.  Without a CUDA GPU (or torch, which is
not a dependency) it prints the predictions alone.

Run: .venv/bin/python benchmarks/layer_step.py [--chip h100-sxm] [--profile FILE] [--out DIR]
     [--only LABEL ...] [--hold SECONDS]
(--out writes the rows as one JSON list, rewritten after each case, to commit as data with the
device, date and versions.)"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from colossim.cli.common import to_jsonable
from colossim.cost.calibrate import NoGpuError
from colossim.cost.efficiency import load_profile
from colossim.training import layer_probe as L

#: The Megatron-Core 2024 weak-scaling model at 384 GPUs (rows MCORE24-WEAK-04 ..., tp 8).
MCORE_7168 = {"name": "mcore24-7168", "layers": 48, "hidden": 7168, "ffn_hidden": 28672, "heads": 56,
              "kv_heads": 56, "vocab": 131072, "seq_len": 4096, "activation": "gelu"}

CASES = [
    L.LayerCase("mpt-7b tp1 mb6", "mpt-7b", tp=1, micro_batch=6),
    L.LayerCase("nemotron4-15b tp8 mb4", "nemotron4-15b", tp=8, micro_batch=4),
    L.LayerCase("mcore 7168 tp8 mb4", MCORE_7168, tp=8, micro_batch=4),
    L.LayerCase("gpt3-175b tp4 mb1", "gpt3-175b", tp=4, micro_batch=1, layers=4),
    L.LayerCase("gpt3-175b tp8 mb1", "gpt3-175b", tp=8, micro_batch=1, layers=4),
    L.LayerCase("llama3-70b tp4 s8192", "llama3-70b", tp=4, micro_batch=1, seq_len=8192),
    L.LayerCase("llama3-405b tp8 s8192", "llama3-405b", tp=8, micro_batch=1, seq_len=8192),
    L.LayerCase("nemotron4-340b tp8 mb1", "nemotron4-340b", tp=8, micro_batch=1),
    L.LayerCase("llama3-70b tp4 s8192 compiled", "llama3-70b", tp=4, micro_batch=1, seq_len=8192,
                compile=True),
    L.LayerCase("mcore 7168 tp8 mb4 compiled", MCORE_7168, tp=8, micro_batch=4, compile=True),
]


def _ms(x) -> str:
    return f"{x * 1e3:.2f}" if x is not None else "-"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--chip", default="h100-sxm")
    ap.add_argument("--profile", type=Path, default=None, help="a calibrated profile to predict with too")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--only", nargs="*", default=None, help="labels (substrings) of the cases to run")
    ap.add_argument("--hold", type=float, default=None, help="seconds of steps before each timing")
    args = ap.parse_args()
    prof = load_profile(args.profile) if args.profile else None
    t = Table(title=f"one layer, forward + backward, per GPU on {args.chip}: measured vs colossim (ms)")
    for c in ("case", "meas", "pred", "error", "GEMM m/p", "attn m/p", "mem m/p", "TFLOPS m",
              "MHz", "W", *(("pred cal", "err cal") if prof else ())):
        t.add_column(c, justify="left" if c == "case" else "right")
    console = Console(width=170)
    note, rows = None, []
    for case in CASES:
        if args.only and not any(o in case.label for o in args.only):
            continue
        if args.hold is not None:
            case = dataclasses.replace(case, hold_seconds=args.hold)
        pred = L.predict_layer(case, args.chip)
        cal = L.predict_layer(case, args.chip, prof) if prof else None
        row = None
        if note is None:
            try:
                row = L.compare_layer(case, args.chip, L.measure_layer(case, args.chip), pred)
            except NoGpuError as e:
                note = str(e)
            except Exception as e:  # noqa: BLE001 - one case's failure must not lose the others
                console.print(f"[red]{case.label}: {type(e).__name__}: {str(e)[:300]}[/red]")
        if row is not None and cal is not None:
            row["predicted_calibrated"] = {"fwd_s": cal["fwd"], "bwd_s": cal["bwd"],
                                           **{k: cal[k] for k in L.KINDS}, "profile": str(args.profile)}
        if args.out is not None and row is not None:
            rows.append({"label": case.label, **row})
            args.out.write_text(json.dumps(to_jsonable(rows), indent=1) + "\n", encoding="utf-8")
        m = row["measured"] if row else {}
        total = pred["fwd"] + pred["bwd"]
        cells = [case.label, _ms(m.get("total_s")), _ms(total),
                 f"{row['error']:+.1%}" if row else "-",
                 *(f"{_ms(m.get(k))}/{_ms(pred[k])}" for k in L.KINDS),
                 f"{m['tflops']:.0f}" if m else "-",
                 f"{row['sm_clock_mhz']:.0f}" if row and row["sm_clock_mhz"] else "-",
                 f"{row['power_w']:.0f}" if row and row["power_w"] else "-"]
        if prof:
            ctotal = cal["fwd"] + cal["bwd"]
            cells += [_ms(ctotal), f"{ctotal / m['total_s'] - 1:+.1%}" if m else "-"]
        t.add_row(*cells)
        if row:
            console.print(f"{case.label}: attention kernels {row['attention_backend'] or '-'}", highlight=False)
    console.print(t)
    if note:
        console.print(f"predictions only: {note}")
