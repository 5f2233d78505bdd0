"""``colossim train estimate|search SPEC``: the training engine from the command line."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from colossim.cli.common import chart_written, console, emit_json, fmt, to_jsonable
from colossim.outfiles import check_writable, make_folder, write_text_whole
from colossim.training.labels import etp_label, recompute_label, schedule_label

app = typer.Typer(help="Training: memory, step time, MFU, time-to-train, best parallel plan.")


def _read_doc(spec_path: str) -> dict:
    from colossim.specs.training import read_spec_document

    text = sys.stdin.read() if spec_path == "-" else None
    return dict(read_spec_document(spec_path, text))


def _load(doc: dict):
    from colossim.specs.training import load_spec

    return load_spec(doc)


def _profile(path: Path | None):
    if path is None:
        return None
    from colossim.cost.efficiency import load_profile

    return load_profile(path)


def show_evidence(ev: dict) -> None:
    """One line on the published runs an estimate rests on (its ``validation_evidence``), then a
    line per caveat."""
    if not ev:
        return
    if ev.get("runs"):
        console.print(f"checked against {ev['runs']} published run{'s' if ev['runs'] > 1 else ''} "
                      f"({ev['basis']}, up to {ev['largest_run_gpus']:,} GPUs): median |error| "
                      f"{ev['median_abs_error']:.1%}, worst {ev['max_abs_error']:.1%}, mean signed "
                      f"{ev['mean_signed_error']:+.1%}")
    for c in ev.get("caveats", ()):
        console.print(f"[yellow]caveat:[/] {c}")


def _memory_label(est, part: str) -> str:
    """A memory part's row label: the gradients with the dtype they are held in, the weights as
    fp8 parameters where the plan keeps them so (:mod:`colossim.training.memory`'s rules)."""
    from colossim.training import memory as M
    from colossim.training.step import GRAD_REDUCE_BYTES

    p, zero = est.parallelism, est.parallelism.get("zero", 0)
    if part == "gradients":
        held = M.held_gradient_bytes(zero, GRAD_REDUCE_BYTES[p.get("grad_reduce_dtype", "fp32")],
                                     "lora_rank" in est.assumptions)
        return f"gradients ({next(k for k, v in GRAD_REDUCE_BYTES.items() if v == held)})"
    if part == "weights" and est.precision == "fp8" and M.fp8_layer_params(p.get("fp8_param_gather", False), zero):
        return "weights (layers in fp8)"
    return part


def _show(est) -> None:
    p = est.parallelism
    t = Table(title=f"{est.gpus:,} x {est.chip} ({est.precision}, {est.software}) — tp {p['tp']} pp {p['pp']} cp {p['cp']} "
                    f"ep {p['ep']} {etp_label(p)}dp {p['dp']} vpp {p['vpp']} mb {p['micro_batch']} "
                    f"recompute {recompute_label(p)} zero {p['zero']} {schedule_label(p)}".rstrip(),
              show_header=False)
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    rows = [("global batch", f"{est.global_batch:,} x {est.seq_len:,} = {est.global_batch_tokens:,} tokens"),
            ("step time (s)", fmt(est.step_time_s, 4)), ("tokens/s", fmt(est.tokens_per_s)),
            ("tokens/s/GPU", fmt(est.tokens_per_s_per_gpu)), ("TFLOPS/GPU (model)", fmt(est.tflops_per_gpu)),
            ("MFU", f"{est.mfu:.1%}"), ("HFU", f"{est.hfu:.1%}"),
            ("memory GiB/GPU", f"{est.memory_gib_per_gpu:.1f} ({'fits' if est.fits else 'DOES NOT FIT'})")]
    if "lora_rank" in est.assumptions:
        a = est.assumptions
        base = " (QLoRA: base weights in NF4)" if a.get("lora_base_precision") == "nf4" else ""
        rows.insert(1, ("LoRA", f"rank {a['lora_rank']} on {', '.join(a['lora_targets'])}: "
                                f"{fmt(a['trainable_params'] / 1e6)} M trained weights{base}"))
    if "hybrid_layers" in est.assumptions:
        names = {"mamba": "Mamba-2", "gdn": "Gated DeltaNet", "attention": "attention", "mlp": "MLP",
                 "experts": "MoE"}
        kinds = est.assumptions["hybrid_layers"].items()
        rows.insert(1, ("hybrid layers", ", ".join(f"{n} {names[k]}" for k, n in kinds)))
    if "document_tokens" in est.assumptions:
        rows.insert(1, ("packed documents", f"{est.assumptions['document_tokens']:,} tokens each, attending "
                                            f"within themselves"))
    rows += [(f"  {_memory_label(est, k)}", f"{v:.1f}") for k, v in est.memory_breakdown_gib.items()]
    if est.time_to_train_days is not None:
        rows += [("time to train (days)", fmt(est.time_to_train_days)),
                 ("  with failures (days)", fmt(est.time_to_train_days_with_failures)),
                 ("  ETTR", "-" if est.ettr is None else f"{est.ettr:.1%}"), ("GPU-hours", fmt(est.gpu_hours)),
                 ("energy (MWh)", fmt(est.energy_mwh)), ("cost (USD)", fmt(est.cost_usd))]
    for r in rows:
        t.add_row(*r)
    console.print(t)
    total = est.step_time_s
    bars = Table(title="time per step", show_header=False)
    bars.add_column("part")
    bars.add_column("seconds", justify="right")
    bars.add_column("share")
    width = 50
    for k, v in est.time_breakdown_s.items():
        share = v / total if total else 0.0
        bars.add_row(k, f"{v:.3f}", "█" * round(share * width) + f" {share:.0%}")
    console.print(bars)
    show_evidence(est.validation_evidence)


@app.command("estimate")
def estimate_cmd(spec: str = typer.Argument(..., help="Spec file (YAML/JSON) or - for stdin."),
                 json_out: bool = typer.Option(False, "--json", help="Print JSON."),
                 profile: Path | None = typer.Option(None, "--profile", help="Calibration profile JSON.")) -> None:
    """Estimate one plan (omitted plan fields are searched and the best is used)."""
    from colossim.training.estimate import estimate

    doc = _read_doc(spec)
    est = estimate(_load(doc), profile=_profile(profile))
    if est.time_to_train_days is not None:
        from colossim.planning.realistic import with_failures

        est = with_failures(doc, est)
    if json_out:
        emit_json(est)
    else:
        _show(est)


@app.command("search")
def search_cmd(spec: str = typer.Argument(..., help="Spec file (YAML/JSON) or - for stdin."),
               top: int = typer.Option(10, "--top", min=1, help="How many plans to return."),
               json_out: bool = typer.Option(False, "--json", help="Print JSON."),
               html: Path | None = typer.Option(None, "--html", metavar="FILE",
                                                help="Also write a chart of the search (every plan priced, "
                                                     "memory against throughput; the best plans' time per "
                                                     "step) as a self-contained HTML page."),
               profile: Path | None = typer.Option(None, "--profile", help="Calibration profile JSON.")) -> None:
    """Search every valid plan; print the best, plus configs evaluated and configs/s."""
    from colossim.training.estimate import search

    s = _load(_read_doc(spec))
    res = search(s, top=top, profile=_profile(profile))
    if html is not None:
        _write_search_chart(html, s, res)
    if json_out:
        emit_json({"results": res.best, "configs_evaluated": res.configs_evaluated,
                   "configs_fitting": res.configs_fitting, "configs_per_s": res.configs_per_s})
        return
    t = Table(title=f"best of {res.configs_evaluated:,} plans ({res.configs_fitting:,} fit; "
                    f"{res.configs_per_s:,.0f} configs/s), global batch {res.best[0].global_batch:,} x "
                    f"{res.best[0].seq_len:,} tokens")
    # the expert tp column only where a plan's experts have their own (etp_label's rule)
    shape = ("tp", "pp", "cp", "ep", *(("etp",) if any(etp_label(e.parallelism) for e in res.best) else ()),
             "dp", "vpp", "micro_batch")
    # the software column only where the plans run on more than one stack (ZeRO-3 on the chip's FSDP stack)
    mixed = len({e.software for e in res.best}) > 1
    for c in ("#", *(k if k != "micro_batch" else "mb" for k in shape), "recompute", "zero",
              *(("software",) if mixed else ()), "step s", "tok/s/GPU", "MFU", "GiB"):
        t.add_column(c, justify="right")
    for i, e in enumerate(res.best, 1):
        p = e.parallelism
        t.add_row(str(i), *(str(p[k]) for k in shape), recompute_label(p), str(p["zero"]),
                  *((e.software,) if mixed else ()), f"{e.step_time_s:.3f}", fmt(e.tokens_per_s_per_gpu),
                  f"{e.mfu:.1%}", f"{e.memory_gib_per_gpu:.1f}")
    console.print(t)
    show_evidence(res.best[0].validation_evidence)
    chart_written(html)


def _write_search_chart(path: Path, spec, res) -> None:
    from colossim import charts, units

    hw = spec.hardware
    gb = spec.training.global_batch
    title = (f"{spec.model.name} on {hw.count:,} x {hw.accelerator.id} ({spec.training.precision.value}"
             f"{f', global batch {gb:,}' if gb else ''}): {res.configs_evaluated:,} plans, "
             f"{res.configs_fitting:,} fit")
    fig = charts.search_figure(res, title, hbm_gib=units.bytes_to_gib(hw.hbm_bytes))
    charts.write_html(path, charts.html_page([fig, charts.best_plans_table(res)], title))


@app.command("probe")
def probe_cmd(chip: str = typer.Option("h100-sxm", "--chip", help="Catalog chip id of the GPU present."),
              layers: int = typer.Option(24, "--layers"), hidden: int = typer.Option(2048, "--hidden"),
              heads: int = typer.Option(16, "--heads"), ffn_hidden: int = typer.Option(8192, "--ffn-hidden"),
              vocab: int = typer.Option(50304, "--vocab"), seq_len: int = typer.Option(2048, "--seq-len"),
              micro_batch: int = typer.Option(8, "--micro-batch"),
              activation: str = typer.Option("gelu", "--activation", help="gelu or swiglu."),
              recompute: bool = typer.Option(False, "--recompute", help="Checkpoint every block."),
              compile_: bool = typer.Option(False, "--compile", help="torch.compile the model (fused kernels)."),
              steps: int = typer.Option(10, "--steps"), warmup: int = typer.Option(3, "--warmup"),
              predict_only: bool = typer.Option(False, "--predict-only",
                                                help="Only the engine's prediction (no GPU needed)."),
              out: Path | None = typer.Option(None, "--out", help="Write the comparison as JSON."),
              json_out: bool = typer.Option(False, "--json", help="Print JSON."),
              profile: Path | None = typer.Option(None, "--profile", help="Calibration profile JSON.")) -> None:
    """Time real training steps of a GPT (default 1.3B) in PyTorch on this GPU, beside the engine's
    prediction for the same run (needs PyTorch + CUDA unless --predict-only)."""
    from colossim.catalog import load_catalog
    from colossim.training import probe as P

    cfg = P.ProbeConfig(layers, hidden, heads, ffn_hidden, vocab, seq_len, micro_batch, activation,
                        recompute, compile_, steps, warmup)
    if out is not None:
        check_writable(out, "out", create_folders=True)  # before the GPU runs, not after
    chip = load_catalog().accelerator(chip).id
    est = P.predict(cfg, chip, profile=_profile(profile))
    if predict_only:
        row = {"config": asdict(cfg), "chip": chip, "params": P.probe_params(cfg),
               "predicted": P.predicted_row(est)}
    else:
        row = P.compare(cfg, chip, P.measure_step(cfg), est)  # NoGpuError -> one line, exit 2
    if out is not None:
        make_folder(out, "out")  # --out may name a new folder
        write_text_whole(out, json.dumps(to_jsonable(row), indent=2) + "\n", "out")
    if json_out:
        emit_json(row)
        return
    t = Table(title=f"probe GPT {row['params'] / 1e9:.2f}B on {chip}: {cfg.layers} x {cfg.hidden}, "
                    f"{cfg.micro_batch} x {cfg.seq_len} tokens/step, {cfg.activation}"
                    f"{', recompute' if cfg.recompute else ''}{', compiled' if cfg.compile else ', eager'}")
    for c in ("", "measured", "predicted"):
        t.add_column(c, justify="right" if c else "left")
    meas, pred = row.get("measured") or {}, row["predicted"]
    for label, key, f in (("step time (s)", "step_time_s", lambda v: fmt(v, 4)),
                          ("tokens/s", "tokens_per_s", fmt), ("MFU", "mfu", lambda v: f"{v:.1%}"),
                          ("memory GiB", None, lambda v: f"{v:.1f}")):
        m = meas.get(key if key else "max_memory_gib")
        p = pred.get(key if key else "memory_gib")
        t.add_row(label, "-" if m is None else f(m), f(p))
    console.print(t)
    if "error" in row:
        console.print(f"error (predicted / measured tokens/s - 1): {row['error']:+.1%}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="train")
