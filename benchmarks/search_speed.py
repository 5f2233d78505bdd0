"""Speed of the plan search: the whole space for Llama 3 405B on 16,384 H100 (target < 2 s on one
core) and a few other cases.  Prints a table of configs evaluated, seconds and configs/s.
Run: .venv/bin/python benchmarks/search_speed.py"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from colossim.specs.training import load_spec
from colossim.training.estimate import search
from colossim.training.labels import etp_label

CASES = [
    ("llama3-405b", "h100-sxm", 16384, 2048, {"uneven_stages": True}),
    ("llama3-70b", "h100-sxm", 1024, 1024, {}),
    ("gpt3-175b", "a100-80gb-sxm", 1024, 1536, {}),
    ("mixtral-8x22b", "h100-sxm", 512, 1024, {}),
]

if __name__ == "__main__":
    t = Table(title="colossim train search speed (one process)")
    for c in ("model", "GPUs", "configs", "fitting", "seconds", "configs/s", "best plan", "tok/s/GPU"):
        t.add_column(c)
    for model, gpu, n, gb, par in CASES:
        spec = load_spec({"model": model, "hardware": {"gpu": gpu, "count": n}, "parallelism": par,
                          "training": {"global_batch": gb}})
        t0 = time.perf_counter()
        res = search(spec, top=1)
        dt = time.perf_counter() - t0
        p = res.best[0].parallelism
        t.add_row(model, f"{n:,}", f"{res.configs_evaluated:,}", f"{res.configs_fitting:,}", f"{dt:.2f}",
                  f"{res.configs_evaluated / dt:,.0f}",
                  f"tp{p['tp']} pp{p['pp']} cp{p['cp']} ep{p['ep']} {etp_label(p)}dp{p['dp']} v{p['vpp']} mb{p['micro_batch']} "
                  f"{p['recompute']} z{p['zero']}", f"{res.best[0].tokens_per_s_per_gpu:,.0f}")
    Console(width=160).print(t)
