"""Claim checks that need the inference engine (registered into the fleet claim registry).

Imported by :func:`colossim.fleet.claims.registry.load_engine_evaluators`.

- ``gb200-27t-params``: the largest model one GB200 NVL72 rack and a DGX SuperPOD of 8 racks hold,
  at FP4 and FP8, weights only and with KV-cache headroom (:mod:`colossim.inference.capacity`).
- ``gb200-30x-serving``: NVIDIA's GTC 2024 serving setting on both systems through
  :func:`colossim.inference.estimate.estimate`, the ratio of output tokens/s per GPU, and the
  factor each effect (FP4, the 72-GPU NVLink domain, the chip) contributes.
"""

from __future__ import annotations

import json
from functools import lru_cache

from colossim import units
from colossim.catalog import load_catalog
from colossim.errors import SpecError
from colossim.fleet.claims.registry import Claim, ClaimCheck, at_least, check, evaluator, tolerance, verdict, within
from colossim.inference import capacity as cap
from colossim.inference.estimate import ServingEstimate, all_points, estimate
from colossim.specs.serving import load_serving_spec

COUNT = "claim_tolerance_count"

# --- gb200-27t-params ---------------------------------------------------------------------------
#: The parameter count of the claim.
CLAIMED_PARAMS = 27e12
RACK = {"system": "gb200-nvl72", "count": 72}
#: Source: NVIDIA GTC 2024 press release "NVIDIA Launches Blackwell-Powered DGX SuperPOD": the DGX
#: SuperPOD is built from 8 or more DGX GB200 systems (NVL72 racks), 576 Blackwell GPUs.
SUPERPOD = {"system": "gb200-nvl72", "count": 8 * 72}
#: Bits per parameter of a bare 4-bit format (no block scales): the arithmetic upper bound.
FP4_BITS = 4


@evaluator("gb200-27t-params")
def _gb200_27t(c: Claim) -> ClaimCheck:
    tol = tolerance(COUNT)
    kv = cap.DEFAULT_KV_TOKENS
    res: dict[tuple[str, str, str, int], cap.CapacityResult] = {}
    for where, hw in (("rack", RACK), ("superpod", SUPERPOD)):
        for prec in ("fp4", "fp8"):
            for kind in cap.KINDS:
                for t in (0, kv):
                    res[where, prec, kind, t] = cap.largest_model(hw, prec, kind=kind, kv_tokens=t)
    rack = res["rack", "fp4", "dense", 0]
    bare_bound = rack.hbm_bytes * units.BITS_PER_BYTE / FP4_BITS
    need_bytes = cap.model_bytes(CLAIMED_PARAMS, "fp4", kind="dense")
    need_gpus = cap.gpus_needed(CLAIMED_PARAMS, RACK, "fp4", kind="dense")
    need_gpus_kv = cap.gpus_needed(CLAIMED_PARAMS, RACK, "fp4", kind="dense", kv_tokens=kv)
    holds = sorted({f"{w} at {p.upper()}" + (" with KV" if t else "")
                    for (w, p, k, t), r in res.items() if at_least(r.params, CLAIMED_PARAMS, tol)})

    def t_(where: str, prec: str, kind: str = "dense") -> str:
        a, b = res[where, prec, kind, 0], res[where, prec, kind, kv]
        return f"{a.params_trillions:.1f}T ({b.params_trillions:.1f}T with KV)"

    computed = (f"largest dense model (Llama-3.1-405B shape scaled; {rack.memory_fraction:.0%} of HBM; KV room "
                f"= {kv:,} tokens): one NVL72 rack ({rack.hbm_bytes / units.TERA:.1f} TB HBM): FP4 "
                f"{t_('rack', 'fp4')}, FP8 {t_('rack', 'fp8')}; SuperPOD of 8 racks "
                f"({res['superpod', 'fp4', 'dense', 0].hbm_bytes / units.TERA:.0f} TB): FP4 {t_('superpod', 'fp4')}, "
                f"FP8 {t_('superpod', 'fp8')}; MoE (GPT-MoE-1.8T shape) rack FP4 {t_('rack', 'fp4', 'moe')}. "
                f"27T at NVFP4 ({rack.bytes_per_param:.4f} B/param with block scales) needs "
                f"{need_bytes / units.TERA:.1f} TB = {need_gpus} GPUs ({need_gpus / RACK['count']:.2f} racks; "
                f"{need_gpus_kv} with KV room); the rack's whole HBM at a bare {FP4_BITS} bits/param holds "
                f"{bare_bound / units.TERA:.1f}T")
    rack_fp8 = res["rack", "fp8", "dense", 0]
    on_rack = any(h.startswith("rack") for h in holds)
    reading = ("" if not holds else " -- consistent on a single rack." if on_rack else
               " -- consistent on the SuperPOD reading, not on a single rack.")
    why = (f"The 27T figure is one rack's HBM at {FP4_BITS} bits per parameter ({bare_bound / units.TERA:.1f}T): "
           "weights filling every byte, with no NVFP4 block scales, KV cache or runtime reserve. A deployable "
           f"model on one rack is about {rack.params_trillions:.0f}T at FP4 and {rack_fp8.params_trillions:.0f}T "
           f"at FP8; 27T needs {need_gpus} GPUs at FP4. The claim holds for: {', '.join(holds) or 'no reading'}"
           + (reading or "."))
    numbers: dict[str, float | None] = {}
    for (w, p, k, t), r in res.items():
        numbers[f"{w}_{p}_{k}{'_kv' if t else ''}_params"] = r.params
    numbers.update({"rack_hbm_bytes": rack.hbm_bytes, "rack_bare_fp4_params": bare_bound,
                    "fp4_27t_bytes": need_bytes, "fp4_27t_gpus": float(need_gpus),
                    "fp4_27t_gpus_with_kv": float(need_gpus_kv), "kv_tokens": float(kv)})
    return check(c, computed=computed, value=rack.params, claimed=CLAIMED_PARAMS, verdict=verdict(bool(holds)),
                 why=why, tolerance_parameter=COUNT, numbers=numbers)


# --- gb200-30x-serving --------------------------------------------------------------------------
#: The claimed speed-up per GPU.
CLAIMED_SPEEDUP = 30.0
MODEL = "gpt-moe-1.8t"
#: Source: NVIDIA GB200 NVL72 page, footnote of the "30X real-time LLM inference" chart (GTC 2024):
#: token-to-token latency 50 ms, first-token latency 5 s, 32,768 input / 1,024 output tokens,
#: 8x eight-way HGX H100 air-cooled vs 1x GB200 NVL72, per-GPU comparison.  KV cache at FP8 on both
#: sides so the FP4 effect is the weights and activations only (FP8 KV is what TensorRT-LLM pairs
#: with NVFP4 weights).
SETTING = {"input_tokens": 32_768, "output_tokens": 1_024, "ttft_slo_s": 5.0, "tpot_slo_s": 0.05,
           "kv_cache": "fp8"}
GB200 = "gb200-nvl72"
GB200_GPUS = 72
HGX = "hgx-h100"
#: H100 counts tried (NVIDIA's 64 = 8 HGX nodes; 48 and 72 = 6 and 9 nodes, other pipeline depths);
#: throughput per GPU is compared, so the best count is taken.
H100_COUNTS = (48, 64, 72)
FP4 = {"weights": "fp4", "activations": "fp4"}
FP8 = {"weights": "fp8", "activations": "fp8"}


#: Deepest pipeline tried.  Every depth up to it that divides the GPU count is tried explicitly on
#: every side, because the default plan search adds stages only when memory needs them
#: (:data:`colossim.inference.estimate.PIPELINE_ONLY_WHEN_NEEDED`): without this a 72-GPU domain
#: would lose pipelined plans an 8-GPU domain keeps, and the domain effect would mix in a search
#: policy.
#: Because: NVL72 / 8 = 9 stages of one HGX-sized group; deeper pipelines only lengthen TPOT here.
MAX_PP = 9


def _depths(hw: dict) -> tuple[int, ...]:
    return tuple(d for d in range(1, MAX_PP + 1) if hw["count"] % d == 0)


def _doc(hw: dict, formats: dict, disaggregated: bool, ttft: float, pp: int | None = None) -> dict:
    # the chart served 32k-token prompts, so its model had at least that context (the catalog's
    # 4,096 is aiconfigurator's test entry)
    context = SETTING["input_tokens"] + SETTING["output_tokens"]
    d = {"model": {"name": MODEL, "max_seq_len": context}, "hardware": hw,
         "serving": {**SETTING, **formats, "disaggregated": disaggregated, "ttft_slo_s": ttft}}
    if pp is not None:
        d["parallelism"] = {"pp": pp}
    return d


@lru_cache(maxsize=256)
def _estimate(key: str) -> ServingEstimate | None:
    """The engine's best plan and batch (None when the model fits on no plan)."""
    try:
        return estimate(load_serving_spec(json.loads(key)))
    except SpecError:
        return None


@lru_cache(maxsize=64)
def _min_ttft(key: str) -> float | None:
    """The lowest TTFT of any plan and batch of the spec that fits and meets the TPOT limit."""
    try:
        spec = load_serving_spec(json.loads(key))
        points = all_points(spec)
    except SpecError:
        return None
    best = None
    for p in points:
        ok = p.fits & (p.tpot <= spec.serving.tpot_slo_s)
        if ok.any():
            t = float(p.ttft[ok].min())
            best = t if best is None else min(best, t)
    return best


def _key(d: dict) -> str:
    return json.dumps(d, sort_keys=True)


def _best(hws: list[dict], formats: dict, ttft: float) -> ServingEstimate | None:
    """The most tokens/s/GPU over the hardware variants, pipeline depths (:data:`MAX_PP`; tp, ep
    and batch searched by the engine) and both serving modes (aggregated continuous batching with
    chunked prefill; disaggregated prefill/decode) among the points meeting the SLOs."""
    ests = [_estimate(_key(_doc(hw, formats, dis, ttft, pp)))
            for hw in hws for pp in _depths(hw) for dis in (False, True)]
    ok = [e for e in ests if e is not None and e.meets_slo and e.fits]
    return max(ok, key=lambda e: e.tokens_per_s_per_gpu, default=None)


def _lowest_ttft(hws: list[dict], formats: dict) -> float | None:
    ts = [t for hw in hws for pp in _depths(hw) for dis in (False, True)
          if (t := _min_ttft(_key(_doc(hw, formats, dis, SETTING["ttft_slo_s"], pp)))) is not None]
    return min(ts, default=None)


def _tps(e: ServingEstimate | None) -> float | None:
    return e.tokens_per_s_per_gpu if e is not None else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _describe(e: ServingEstimate | None) -> str:
    if e is None:
        return "misses the SLOs on every plan"
    p = e.parallelism
    mode = "disaggregated" if e.disaggregated else "aggregated"
    return (f"{e.tokens_per_s_per_gpu:.2f} tok/s/GPU ({e.gpus} GPUs, tp{p['tp']} pp{p['pp']} ep{p['ep']}, "
            f"{mode}, batch {e.batch}, TTFT {e.ttft_s:.2f} s, TPOT {e.tpot_s * units.KILO:.0f} ms)")


def serving_comparison() -> dict:
    """NVIDIA's setting on GB200 NVL72 (FP4) and HGX H100 (FP8), the ratio per GPU and the effects.

    When the H100 meets the SLOs nowhere, the first-token limit is raised to the lowest TTFT at
    which any H100 plan meets the 50 ms TPOT, for both sides (``ttft_slo_used_s``)."""
    ttft = SETTING["ttft_slo_s"]
    gb = [{"system": GB200, "count": GB200_GPUS}]
    hgx_domain = load_catalog().system(HGX).scaleup_domain_size  # the GB200 "domain of 8" variant
    gb8 = [{**gb[0], "scaleup_domain_size": hgx_domain, "gpus_per_node": hgx_domain}]
    h100 = [{"system": HGX, "count": n} for n in H100_COUNTS]
    h100_72 = [{"system": HGX, "count": GB200_GPUS, "scaleup_domain_size": GB200_GPUS,
                "gpus_per_node": GB200_GPUS}]
    h = _best(h100, FP8, ttft)
    strict = h is not None
    if not strict:
        lowest = _lowest_ttft(h100, FP8)
        if lowest is not None:
            ttft = max(ttft, lowest * (1 + 1e-9))
            h = _best(h100, FP8, ttft)
    runs = {"gb200": _best(gb, FP4, ttft), "h100": h, "gb200_fp8": _best(gb, FP8, ttft),
            "gb200_domain8": _best(gb8, FP4, ttft), "gb200_fp8_domain8": _best(gb8, FP8, ttft),
            "h100_domain72": _best(h100_72, FP8, ttft)}
    t = {k: _tps(e) for k, e in runs.items()}
    ratio = _ratio(t["gb200"], t["h100"])
    # one change at a time from GB200 NVL72 at FP4 (and the H100 with NVL72's domain)
    fp4 = _ratio(t["gb200"], t["gb200_fp8"])
    nvlink = _ratio(t["gb200"], t["gb200_domain8"])
    nvlink_h100 = _ratio(t["h100_domain72"], t["h100"])
    # an exact chain: ratio = (FP4 vs FP8) x (72- vs 8-GPU domain at FP8) x (GB200 vs H100 chip)
    nvlink_fp8 = _ratio(t["gb200_fp8"], t["gb200_fp8_domain8"])
    chip = _ratio(t["gb200_fp8_domain8"], t["h100"])
    return {"runs": runs, "tps": t, "ratio": ratio, "strict_slo": strict, "ttft_slo_used_s": ttft,
            "factor_fp4_vs_fp8": fp4, "factor_nvlink72_vs_8": nvlink, "factor_nvlink72_on_h100": nvlink_h100,
            "chain_fp4_vs_fp8": fp4, "chain_nvlink72_vs_8_at_fp8": nvlink_fp8, "chain_chip": chip}


def _f(x: float | None, unit: str = "x") -> str:
    return f"{x:.2f}{unit}" if x is not None else "n/a"


@evaluator("gb200-30x-serving")
def _gb200_30x(c: Claim) -> ClaimCheck:
    tol = tolerance(COUNT)
    r = serving_comparison()
    runs, ratio = r["runs"], r["ratio"]
    slo = (f"TTFT <= {SETTING['ttft_slo_s']:g} s" if r["strict_slo"] else
           f"TTFT relaxed to {r['ttft_slo_used_s']:.2f} s (no H100 plan meets {SETTING['ttft_slo_s']:g} s)")
    computed = (f"GPT-MoE-1.8T, {SETTING['input_tokens']:,} in / {SETTING['output_tokens']:,} out, TPOT <= "
                f"{SETTING['tpot_slo_s'] * units.KILO:.0f} ms, {slo}: GB200 NVL72 FP4 {_describe(runs['gb200'])}; "
                f"HGX H100 FP8 over InfiniBand {_describe(runs['h100'])}; ratio {_f(ratio)}. One change at a "
                f"time: FP8 instead of FP4 {_f(r['factor_fp4_vs_fp8'])}, NVLink domain 8 instead of 72 "
                f"{_f(r['factor_nvlink72_vs_8'])}, H100 with a 72-GPU domain {_f(r['factor_nvlink72_on_h100'])}; "
                f"chain FP4 {_f(r['chain_fp4_vs_fp8'])} x domain at FP8 {_f(r['chain_nvlink72_vs_8_at_fp8'])} "
                f"x chip (HBM, FLOPs) {_f(r['chain_chip'])}")
    ok = ratio is not None and within(ratio, CLAIMED_SPEEDUP, tol)
    if ratio is None:
        why = ("colossim finds no H100 plan meeting the 50 ms TPOT at any first-token latency, so no "
               "finite ratio; the claim's 30x cannot be reproduced as a number.")
    else:
        cat = load_catalog()
        g, h = cat.accelerator("gb200"), cat.accelerator("h100-sxm")
        why = (f"colossim finds {ratio:.1f}x per GPU, {'within' if ok else 'outside'} {tol:.0%} of the claimed "
               f"{CLAIMED_SPEEDUP:g}x. The ratio is the product of FP4 (weights and activations at half the bytes "
               "and twice the FLOPs), the NVLink domain (expert and tensor parallelism across 72 GPUs instead of "
               f"8) and the chip itself ({g.hbm_tb_per_s / h.hbm_tb_per_s:.1f}x the HBM bandwidth, "
               f"{g.hbm_gib / h.hbm_gib:.1f}x the capacity, {g.dense_tflops_fp8 / h.dense_tflops_fp8:.1f}x the FP8 "
               "FLOPs). NVIDIA's figure is a projection made before GB200 shipped.")
    numbers = {"ratio": ratio, "gb200_tokens_per_s_per_gpu": r["tps"]["gb200"],
               "h100_tokens_per_s_per_gpu": r["tps"]["h100"], "ttft_slo_used_s": r["ttft_slo_used_s"],
               "h100_meets_stated_slo": float(r["strict_slo"]),
               **{f"{k}_tokens_per_s_per_gpu": v for k, v in r["tps"].items() if k not in ("gb200", "h100")},
               **{k: r[k] for k in ("factor_fp4_vs_fp8", "factor_nvlink72_vs_8", "factor_nvlink72_on_h100",
                                    "chain_fp4_vs_fp8", "chain_nvlink72_vs_8_at_fp8", "chain_chip")}}
    return check(c, computed=computed, value=ratio, claimed=CLAIMED_SPEEDUP, verdict=verdict(ok), why=why,
                 tolerance_parameter=COUNT, numbers=numbers)
