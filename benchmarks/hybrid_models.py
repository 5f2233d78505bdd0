"""Hybrid models (Nemotron-H, Nemotron Nano 2, Nemotron 3, Qwen3-Next) against transformers of their size:
training searched on the same H100s at two sequence lengths, and serving on one or eight H100s at
short and long contexts (docs/validation-history.md's sixty-fourth round quotes the tables).
Nothing here is validated: no published hybrid run is in the validation set.

Run: .venv/bin/python benchmarks/hybrid_models.py"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from colossim.errors import SpecError
from colossim.inference.estimate import estimate as serve_estimate
from colossim.specs.serving import load_serving_spec
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate
from colossim.training.labels import plan_label

#: (model, H100 count, tokens per step) trained in FP8 at each of TRAIN_SEQ_LENS tokens.
TRAIN_CASES = (("nemotron-h-8b", 64, 2**22), ("llama3.1-8b", 64, 2**22),
               ("nemotron-h-56b", 256, 6 * 2**20), ("llama3.1-70b", 256, 6 * 2**20),
               ("nemotron-3-nano-30b-a3b", 64, 2**22), ("qwen3-next-80b-a3b", 64, 2**22),
               ("qwen3-30b-a3b", 64, 2**22))
TRAIN_SEQ_LENS = (8192, 32768)
#: (model, H100 count) served with FP8 weights at each (prompt, output) of SERVE_LENGTHS.
SERVE_CASES = (("nemotron-nano-9b-v2", 1), ("qwen3-8b", 1), ("llama3.1-8b", 1),
               ("nemotron-3-nano-30b-a3b", 1), ("qwen3-30b-a3b", 1),
               ("nemotron-h-56b", 8), ("llama3.1-70b", 8), ("qwen3-next-80b-a3b", 4), ("qwen3-32b", 4))
SERVE_LENGTHS = ((1024, 256), (8192, 16384), (65536, 1024))


def _model(name: str, context: int) -> dict | str:
    """The catalog model, its context stretched where the request is longer (the Nemotron-H
    Base-8K checkpoints and Llama 3.1's 128K are what they are; the engine prices the shape)."""
    return {"name": name, "max_seq_len": max(context, 131072)}


def training_table() -> Table:
    table = Table(title="Training in FP8 on H100 (searched)")
    for col in ("model", "GPUs", "seq", "plan", "tok/s/GPU", "MFU", "GiB/GPU"):
        table.add_column(col, justify="left" if col in ("model", "plan") else "right")
    for model, count, tokens in TRAIN_CASES:
        for seq in TRAIN_SEQ_LENS:
            spec = {"model": model, "hardware": {"gpu": "h100-sxm", "count": count},
                    "training": {"global_batch": tokens // seq, "seq_len": seq, "precision": "fp8"}}
            try:
                e = estimate(load_spec(spec))
            except SpecError as err:
                table.add_row(model, str(count), f"{seq:,}", str(err).split(":")[0], "-", "-", "-")
                continue
            table.add_row(model, str(count), f"{seq:,}", plan_label(e.parallelism), f"{e.tokens_per_s_per_gpu:,.0f}",
                          f"{e.mfu:.1%}", f"{e.memory_gib_per_gpu:.1f}")
    return table


def serving_table() -> Table:
    table = Table(title="Serving with FP8 weights on H100 (plan and batch searched)")
    for col in ("model", "GPUs", "in / out", "plan", "batch", "TPOT ms", "tok/s/GPU", "state GiB"):
        table.add_column(col, justify="left" if col in ("model", "plan") else "right")
    for model, count in SERVE_CASES:
        for i, o in SERVE_LENGTHS:
            spec = {"model": _model(model, i + o), "hardware": {"gpu": "h100-sxm", "count": count},
                    "serving": {"input_tokens": i, "output_tokens": o, "weights": "fp8"}}
            try:
                e = serve_estimate(load_serving_spec(spec))
            except SpecError as err:
                table.add_row(model, str(count), f"{i:,} / {o:,}", str(err).split(":")[0], "-", "-", "-", "-")
                continue
            p = e.parallelism
            state = e.assumptions.get("recurrent_state_gib_per_gpu")
            table.add_row(model, str(count), f"{i:,} / {o:,}", f"tp{p['tp']} pp{p['pp']} x{p['replicas']}",
                          str(e.batch), f"{e.tpot_s * 1e3:.1f}", f"{e.tokens_per_s_per_gpu:,.0f}",
                          "-" if state is None else f"{state:.1f}")
    return table


def main() -> None:
    console = Console(width=140)
    console.print(training_table())
    console.print(serving_table())


if __name__ == "__main__":
    main()
