"""How much a compute kernel loses when a communication-like kernel shares the GPU with it, at
the power limit.  NCCL drives a collective with a few thread blocks per channel that stream
through HBM while the GEMMs of the overlapped backward run; one GPU cannot run NCCL against
peers, but it can run a kernel of that shape: a Triton copy confined to ``ctas`` thread blocks
on a second stream.  Prints, for 0 / 8 / 16 / 32 / 64 such blocks, the 8192^3 bf16 GEMM's and a
FlashAttention-2 forward + backward's throughput beside it.
Needs PyTorch, Triton and a CUDA GPU.
Run: python benchmarks/contention.py [--out FILE.json]"""

from __future__ import annotations

import argparse
import json
import time

#: Thread blocks the side copy runs on (0: no side copy).  NCCL's default channel counts on a
#: single node sit in this range (colossim.training.step.NCCL_OVERLAP_CHANNELS = 16).
SIDE_CTAS = (0, 8, 16, 32, 64)
#: Bytes of each side-copy buffer.  Because: far beyond L2 (50 MB), so the copy streams HBM.
SIDE_BYTES = 2**28


def main() -> None:  # pragma: no cover - needs a GPU
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F
    import triton
    import triton.language as tl
    from torch.nn.attention import SDPBackend, sdpa_kernel

    @triton.jit
    def side_copy(src, dst, n, flag, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        nprog = tl.num_programs(0)
        go = tl.load(flag)
        while go != 0:
            for start in range(pid * BLOCK, n, nprog * BLOCK):
                offs = start + tl.arange(0, BLOCK)
                m = offs < n
                tl.store(dst + offs, tl.load(src + offs, mask=m), mask=m)
            go = tl.load(flag, volatile=True)

    dev = "cuda"
    n = SIDE_BYTES // 4
    src = torch.randn(n, device=dev)
    dst = torch.empty_like(src)
    flag = torch.zeros(1, device=dev, dtype=torch.int32)
    side = torch.cuda.Stream()
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    c = torch.empty(8192, 8192, device=dev, dtype=torch.bfloat16)
    q, k, v = (torch.randn(1, 32, 8192, 128, device=dev, dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    go = torch.randn(1, 32, 8192, 128, device=dev, dtype=torch.bfloat16)

    def gemm():
        torch.matmul(a, b, out=c)

    def attn():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o.backward(go)

    kernels = {"gemm_8192": (gemm, 2 * 8192**3),
               "attention_s8192_bh32": (attn, 4 * 32 * 8192**2 * 128 * 0.5 * 3.5)}
    end = time.perf_counter() + 15.0  # to the power limit
    while time.perf_counter() < end:
        for _ in range(10):
            gemm()
        torch.cuda.synchronize()
    rows = []
    for ctas in SIDE_CTAS:
        for name, (fn, flops) in kernels.items():
            copied0 = time.perf_counter()
            if ctas:
                flag.fill_(1)
                torch.cuda.synchronize()
                with torch.cuda.stream(side):
                    side_copy[(ctas,)](src, dst, n, flag, BLOCK=4096)
            hold_end = time.perf_counter() + 3.0
            while time.perf_counter() < hold_end:
                for _ in range(5):
                    fn()
                torch.cuda.current_stream().synchronize()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            for _ in range(10):
                fn()
            e1.record()
            e1.synchronize()
            t = e0.elapsed_time(e1) / 1e3 / 10
            if ctas:
                flag.fill_(0)  # the side copy sees it and ends
                side.synchronize()
            rows.append({"side_ctas": ctas, "kernel": name, "seconds": t, "tflops": flops / t / 1e12,
                         "wall_s": time.perf_counter() - copied0})
            print(f"side copy on {ctas:2d} blocks: {name} {flops / t / 1e12:7.1f} TFLOPS", flush=True)
    out = {"device": torch.cuda.get_device_properties(0).name, "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "rows": rows}
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
