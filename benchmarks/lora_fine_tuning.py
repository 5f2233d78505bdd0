"""LoRA and QLoRA fine-tuning against full training, searched on the same GPUs: the best plan of
each, its tokens/s/GPU and memory, for a few models and target sets (docs/validation-history.md's
sixty-second and sixty-third rounds quote the table).  Nothing here is validated: no published
LoRA run is in the validation set.

Run: .venv/bin/python benchmarks/lora_fine_tuning.py"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from colossim.errors import SpecError
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate
from colossim.training.labels import plan_label

#: (model, H100 count, sequences per step) at 4,096 tokens.
CASES = (("llama3-8b", 1, 16), ("llama3-8b", 8, 64), ("llama3-70b", 1, 16), ("llama3-70b", 8, 32),
         ("llama3-70b", 64, 256), ("llama3-405b", 8, 32), ("mixtral-8x7b", 8, 64))
#: Each case is searched with every weight trained, then with these LoRAs (rank, targets, base
#: weights' storage: bf16, or nf4 for QLoRA; packed documents' tokens, None: one per sequence).
LORAS = ((None, None, None, None), (16, None, None, None), (16, ["linear_qkv"], None, None), (64, None, None, None),
         (16, None, "nf4", None), (16, None, None, 512))


def main() -> None:
    table = Table(title="LoRA and QLoRA against full training (H100, 4,096 tokens; searched)")
    for col in ("model", "GPUs", "training", "plan", "tok/s/GPU", "MFU", "GiB/GPU"):
        table.add_column(col, justify="left" if col in ("model", "training", "plan") else "right")
    for model, count, batch in CASES:
        for rank, targets, base, documents in LORAS:
            work = {"global_batch": batch, "seq_len": 4096}
            label = "full"
            if rank is not None:
                work["lora_rank"] = rank
                label = f"{'QLoRA' if base == 'nf4' else 'LoRA'} r{rank} " + (
                    "all" if targets is None else "+".join(targets))
                if targets is not None:
                    work["lora_targets"] = targets
                if base is not None:
                    work["lora_base_precision"] = base
                if documents is not None:
                    work["document_tokens"] = documents
                    label += f", {documents}-token documents"
            spec = {"model": model, "hardware": {"gpu": "h100-sxm", "count": count}, "training": work}
            try:
                est = estimate(load_spec(spec))
            except SpecError as e:
                table.add_row(model, str(count), label, str(e).split(":")[0], "-", "-", "-")
                continue
            table.add_row(model, str(count), label, plan_label(est.parallelism), f"{est.tokens_per_s_per_gpu:,.0f}",
                          f"{est.mfu:.1%}", f"{est.memory_gib_per_gpu:.1f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
