"""Published in-step decompositions against the engine: where does a measured training step's time
go, and which part of it does the cost model miss?

Stas Bekman's table 'Step decomposition @ 8k' (stas00/ml-engineering, insights/when-to-upgrade-
gpus; rows STAS25-* of validation/training_steps_extra.csv and attn-*-instep-* of
microbenchmarks.csv) splits one Llama-3.1-8B step (8 GPUs, DeepSpeed ZeRO-2, seq 8k, mbs 1) into
an attention bucket and an everything-else bucket, on H200 and on B200, with throughputs in the
MFU count (6N + 6 L h s FLOPs per token).  Per chip the script prints both buckets in seconds,
measured and modelled (the engine without the stack's host time), and then solves

    measured else = G / f + M + H        (one equation per chip)

for a common factor f on the engine's GEMM seconds G (M: its other non-attention seconds) and a
host time H that no chip speeds up.  f = 1 says the engine's GEMM speeds hold inside a real step;
H is what ``software_stacks.csv`` carries as ``host_seconds_per_step`` for the stack.  The solve
assumes one f for Hopper and Blackwell; each chip alone only bounds its own f from below (all of its
gap in the GEMMs, no host time), which the script prints last: the H200 row by itself allows GEMMs
up to 1.33x slower than the engine's (benchmarks/error_structure.py finds 1.18x on compute for the
H100 reference runs).
Run: .venv/bin/python benchmarks/instep_decomposition.py"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from rich.console import Console
from rich.table import Table

from colossim.cost.compute import attention_seconds
from colossim.cost.efficiency import default_profile
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate, make_context
from colossim.training.validate import extra_runs

#: The two rows of one recipe on two chips.
ROWS = ("STAS25-H200-LLAMA31-8B-8K", "STAS25-B200-LLAMA31-8B-8K")
#: The table's attention-bucket throughputs (TFLOPS, MFU count), by row: microbenchmarks.csv
#: attn-h200-fa3-instep-llama8b-8k and attn-b200-fa4-instep-llama8b-8k.
ATTENTION_TFLOPS = {ROWS[0]: 447.0, ROWS[1]: 834.0}
#: Probe factor on the GEMM efficiency to measure how many seconds of the step are GEMM seconds.
PROBE = 0.8


def _scaled(profile, factor: float):
    gemm = {k: dataclasses.replace(v, max_efficiency=v.max_efficiency * factor)
            for k, v in profile.gemm.items()}
    return dataclasses.replace(profile, gemm=gemm)


def decompose(run) -> dict[str, float]:
    """Measured and modelled buckets (seconds per step) of one in-step row."""
    spec = load_spec(json.loads(run.spec_json))
    m, seq = spec.model, spec.seq_len
    tokens_per_gpu = spec.training.global_batch * seq / spec.hardware.count
    measured_step = tokens_per_gpu / run.tokens_per_s_per_gpu_measured
    attention_flops = 6.0 * m.layers * m.hidden * seq * tokens_per_gpu  # MFU count, causal
    measured_attention = attention_flops / (ATTENTION_TFLOPS[run.id] * 1e12)
    prof = default_profile(spec.hardware.accelerator.id)
    host = make_context(spec).host_seconds_per_step

    def step_without_host(profile) -> float:
        return estimate(spec, profile=profile).step_time_s - host

    step1 = step_without_host(prof)
    kernel = make_context(spec, prof).attention_kernel
    head_dim = m.hidden // m.heads
    passes = [attention_seconds(1, m.heads, seq, seq, head_dim, head_dim, True, "bf16",
                                spec.hardware.accelerator, prof, backward=b, kernel=kernel)
              for b in (False, True)]
    model_attention = float(sum(passes)) * m.layers * tokens_per_gpu / seq
    gemm = (step_without_host(_scaled(prof, PROBE)) - step1) / (1.0 / PROBE - 1.0)
    model_else_s = step1 - model_attention
    return {"measured_step": measured_step, "measured_attention": measured_attention,
            "measured_else": measured_step - measured_attention, "model_attention": model_attention,
            "model_else": model_else_s, "gemm": gemm, "other": model_else_s - gemm, "host": host,
            "chip": spec.hardware.accelerator.id}


def main() -> None:
    runs = {r.id: r for r in extra_runs()}
    d = {rid: decompose(runs[rid]) for rid in ROWS}
    table = Table(title="In-step decomposition (seconds per step): measured vs colossim without host time")
    for col in ("chip", "attn meas.", "attn model", "else meas.", "else model", "GEMM", "gap"):
        table.add_column(col, justify="right" if col != "chip" else "left")
    for rid, x in d.items():
        table.add_row(x["chip"], f"{x['measured_attention']:.3f}", f"{x['model_attention']:.3f}",
                      f"{x['measured_else']:.3f}", f"{x['model_else']:.3f}", f"{x['gemm']:.3f}",
                      f"{x['measured_else'] - x['model_else']:+.3f}")
    Console().print(table)
    # measured_else = G / f + M + H for both chips: two equations, unknowns 1/f and H
    a = np.array([[x["gemm"], 1.0] for x in d.values()])
    b = np.array([x["measured_else"] - x["other"] for x in d.values()])
    print("rows: " + ", ".join(ROWS) + "; 'GEMM': the model's GEMM seconds within 'else model'")
    inv_f, host = np.linalg.solve(a, b)
    stack_host = next(iter(d.values()))["host"]
    Console().print(f"common GEMM factor f = {1.0 / inv_f:.3f} (1 = the engine's GEMM speeds hold in the "
                    f"step); host time H = {host:.3f} s per step (software_stacks.csv: {stack_host:.3f} s)")
    # one chip alone: G / f + M = measured else with H = 0 is the lowest f its row allows
    bounds = ", ".join(f"{x['chip']} {x['gemm'] / (x['measured_else'] - x['other']):.2f}" for x in d.values())
    Console().print(f"each chip alone, with no host time: f >= {bounds} (the common f assumes the two "
                    "chips' GEMMs are off by the same factor)")


if __name__ == "__main__":
    main()
