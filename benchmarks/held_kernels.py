"""Kernels timed on the GPU present while it sits at its power limit, for the mechanisms a layer's
time depends on beyond a GEMM's shape (benchmarks/layer_step.py found the engine's layer totals
within a few per cent on an H100 but its GEMMs slower and its attention faster than measured):

1. ``attention``: FlashAttention-2 (PyTorch SDPA, flash backend) forward + backward, causal,
   head dim 128, over sequence lengths and batch x heads counts: how the throughput falls when
   few work units (batch x heads x query blocks) share the GPU's SMs;
2. ``duty``: the 8192^3 bf16 GEMM back to back, then alternating with a memory-bound copy that
   takes about a quarter / half of the loop: whether a GEMM holds a higher clock when the power
   limit is shared with low-power kernels (its throughput inside each loop, from CUDA events
   around the GEMMs alone);
3. ``gemm_shapes``: GEMMs of real layer slices (forward, input-gradient and weight-gradient
   shapes), each back to back for a few seconds, then timed.

Before the first section the 8192^3 GEMM runs ``--prehold`` seconds (the GPU at its limit).  Every
timing carries the SM clock and board power NVML reads during it.  Writes one JSON (``--out``);
the engine's predictions for the same kernels are computed afterwards, off the GPU.
Run: python benchmarks/held_kernels.py [--prehold 20] [--out FILE.json]"""

from __future__ import annotations

import argparse
import json
import time

from colossim.training.layer_probe import nvml_reader

#: (seq, batch x heads) pairs of the attention sweep: causal, head dim 128.
ATTENTION_SEQS = (1024, 2048, 4096, 8192, 16384)
ATTENTION_BH = (4, 8, 12, 16, 24, 32, 48, 64, 128, 256)
#: Because: q, k, v, out and their gradients of the largest pair stay under ~10 GB.
ATTENTION_MAX_TOKENS_X_BH = 16384 * 256
#: GEMM shapes (m, n, k) of layer slices: MPT-7B at mb 6 (tp 1) and GPT-3 175B at tp 8, forward
#: and the backward's two GEMMs of each weight (input gradient m x k from m x n by n x k; weight
#: gradient k x n from k x m by m x n).
GEMM_SHAPES = ((12288, 12288, 4096), (12288, 4096, 12288), (4096, 12288, 12288),
               (12288, 16384, 4096), (12288, 4096, 16384), (4096, 16384, 12288),
               (2048, 4608, 12288), (2048, 12288, 4608), (12288, 4608, 2048),
               (2048, 6144, 12288), (2048, 12288, 6144), (8192, 8192, 8192))


def main() -> None:  # pragma: no cover - needs a GPU
    ap = argparse.ArgumentParser()
    ap.add_argument("--prehold", type=float, default=20.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    nvml = nvml_reader()

    dev = "cuda"
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    c = torch.empty(8192, 8192, device=dev, dtype=torch.bfloat16)

    def hold(fn, seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for _ in range(5):
                fn()
            torch.cuda.synchronize()

    def timed(fn, iters):
        """Median seconds per call over ``iters`` events, with NVML read mid-way."""
        ts, clk = [], []
        for _ in range(iters):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            fn()
            e1.record()
            clk.append(nvml())
            torch.cuda.synchronize()
            ts.append(e0.elapsed_time(e1) / 1e3)
        ts.sort()
        clocks = [x for x in clk if x[0] is not None]
        return (ts[len(ts) // 2], sorted(x[0] for x in clocks)[len(clocks) // 2] if clocks else None,
                sorted(x[1] for x in clocks)[len(clocks) // 2] if clocks else None)

    out = {"device": torch.cuda.get_device_properties(0).name, "torch": torch.__version__,
           "cuda": torch.version.cuda, "date": time.strftime("%Y-%m-%d")}
    hold(lambda: torch.matmul(a, b, out=c), args.prehold)

    rows = []
    for s in ATTENTION_SEQS:
        for bh in ATTENTION_BH:
            if s * bh > ATTENTION_MAX_TOKENS_X_BH:
                continue
            q, k, v = (torch.randn(1, bh, s, 128, device=dev, dtype=torch.bfloat16, requires_grad=True)
                       for _ in range(3))
            go = torch.randn(1, bh, s, 128, device=dev, dtype=torch.bfloat16)

            def fb():
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                o.backward(go)

            def fw():
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True)

            hold(fb, 0.4)
            t, mhz, w = timed(fb, 7)
            tf, _, _ = timed(lambda: [fw() for _ in range(3)], 5)
            rows.append({"seq": s, "bh": bh, "fwd_bwd_s": t, "fwd_s": tf / 3, "sm_clock_mhz": mhz, "power_w": w})
            del q, k, v, go
    out["attention"] = rows
    print(f"attention: {len(rows)} points", flush=True)

    x = torch.empty(2**28, device=dev, dtype=torch.float32)  # 1 GiB
    y = torch.empty_like(x)
    duty = []
    gemm_t, _, _ = timed(lambda: torch.matmul(a, b, out=c), 5)
    copy_t, _, _ = timed(lambda: y.copy_(x), 5)
    for copies_per_gemm in (0.0, 0.5, 1.0, 2.0):  # a 1-GiB copy takes ~0.4 x the GEMM's time
        n_copy = copies_per_gemm

        def loop():
            for i in range(8):
                torch.matmul(a, b, out=c)
                for _ in range(int(n_copy) + (1 if (n_copy % 1) and i % 2 else 0)):
                    y.copy_(x)

        hold(loop, 6.0)
        ev = []
        clk = []
        for j in range(20):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            torch.matmul(a, b, out=c)
            e1.record()
            for _ in range(int(n_copy) + (1 if (n_copy % 1) and j % 2 else 0)):
                y.copy_(x)
            ev.append((e0, e1))
            clk.append(nvml())
        torch.cuda.synchronize()
        ts = sorted(e0.elapsed_time(e1) / 1e3 for e0, e1 in ev)
        clocks = [v for v in clk if v[0] is not None]
        duty.append({"copies_per_gemm": copies_per_gemm, "gemm_s": ts[len(ts) // 2],
                     "tflops": 2 * 8192**3 / ts[len(ts) // 2] / 1e12,
                     "sm_clock_mhz": sorted(v[0] for v in clocks)[len(clocks) // 2] if clocks else None,
                     "power_w": sorted(v[1] for v in clocks)[len(clocks) // 2] if clocks else None})
    out["duty"] = {"gemm_burst_s": gemm_t, "copy_s": copy_t, "rows": duty}
    print("duty:", json.dumps(duty), flush=True)
    del x, y

    shapes = []
    for m, n, k in GEMM_SHAPES:
        p = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        r = torch.randn(k, n, device=dev, dtype=torch.bfloat16)
        o = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
        hold(lambda: torch.matmul(p, r, out=o), 3.0)
        t, mhz, w = timed(lambda: torch.matmul(p, r, out=o), 15)
        shapes.append({"m": m, "n": n, "k": k, "seconds": t, "tflops": 2 * m * n * k / t / 1e12,
                       "sm_clock_mhz": mhz, "power_w": w})
        print(f"gemm {m}x{n}x{k}: {2 * m * n * k / t / 1e12:.0f} TFLOPS at {mhz} MHz, {w} W", flush=True)
    out["gemm_shapes"] = shapes
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    for r in rows:
        fl = 4 * r["bh"] * r["seq"] ** 2 * 128 * 0.5 * 3.5
        print(f"attn s={r['seq']:6d} bh={r['bh']:4d}: {fl / r['fwd_bwd_s'] / 1e12:6.1f} TFLOPS fwd+bwd "
              f"at {r['sm_clock_mhz']} MHz {r['power_w']} W")


if __name__ == "__main__":
    main()
