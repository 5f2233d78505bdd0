"""Sustained GEMM throughput on the GPU present: the 8192^3 bf16 (or fp8) GEMM on random data, back to back
for a while, timed every few seconds beside the SM clock, power draw and temperature NVML reports.
Shows how far the clock a GPU holds at its power limit sits below the burst rate the short
benchmarks see (colossim.cost.calibrate's hold measures the end point of this curve).  Needs
PyTorch + CUDA (and nvidia-ml-py for the clock / power columns).
--precision fp8 times torch._scaled_mm on e4m3 operands with unit scales and a bf16 output (the
GEMM colossim.cost.calibrate holds for fp8).
Run: python benchmarks/gemm_sustained.py [--seconds 120] [--every 5] [--size 8192] [--precision bf16|fp8]
     [--out FILE.json]"""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from rich.table import Table

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--precision", choices=("bf16", "fp8"), default="bf16")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch  # noqa: PLC0415 - optional, needs a GPU

    try:
        import pynvml  # noqa: PLC0415
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception:  # noqa: BLE001 - NVML is optional
        pynvml = handle = None

    def nvml() -> dict:
        if handle is None:
            return {}
        return {"sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
                "power_w": pynvml.nvmlDeviceGetPowerUsage(handle) / 1e3,
                "temperature_c": pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
                "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1e3}

    n = args.size
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    if args.precision == "fp8":
        a8, b8 = a.to(torch.float8_e4m3fn), b.t().contiguous().to(torch.float8_e4m3fn).t()
        one = torch.ones((), device="cuda")

        def gemm():
            return torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    else:
        def gemm():
            return torch.matmul(a, b, out=c)
    flops = 2.0 * n ** 3
    rows, start = [], time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        t0 = time.perf_counter()
        calls = 0
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        while time.perf_counter() - t0 < args.every:
            for _ in range(10):
                gemm()
            calls += 10
            torch.cuda.synchronize()
            sample = nvml()  # read while the GEMMs run hot
        e1.record()
        torch.cuda.synchronize()
        tflops = calls * flops / (e0.elapsed_time(e1) / 1e3) / 1e12
        rows.append({"t_s": round(time.perf_counter() - start, 1), "tflops": round(tflops, 1), **sample})
    props = torch.cuda.get_device_properties(0)
    table = Table(title=f"{props.name}: {n}^3 {args.precision} GEMM held {args.seconds:.0f} s (random data)")
    for col in rows[0]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    Console().print(table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"device": props.name, "torch": torch.__version__, "cuda": torch.version.cuda,
                       "date": time.strftime("%Y-%m-%d"), "size": n, "precision": args.precision, "rows": rows}, f, indent=1)
