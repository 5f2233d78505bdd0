"""The real-step probe: the PyTorch GPT and the engine's spec describe the same model, the comparison
is the closed form it claims to be, bad settings are one-line errors. Timing needs a GPU and is
not tested here; the CPU path runs only where torch is installed."""

import importlib.util
import json

import pytest

from colossim.cost.calibrate import NoGpuError
from colossim.errors import SpecError
from colossim.specs.training import load_spec
from colossim.training import probe as P

HAS_TORCH = importlib.util.find_spec("torch") is not None
TINY = dict(layers=2, hidden=128, heads=4, ffn_hidden=512, vocab=1000, seq_len=64, micro_batch=2,
            steps=2, warmup=1)


@pytest.mark.parametrize("cfg", [P.ProbeConfig(), P.ProbeConfig(activation="swiglu", ffn_hidden=5632),
                                 P.ProbeConfig(**TINY)])
def test_engine_counts_the_probe_models_parameters_exactly(cfg):
    spec = load_spec(P.probe_spec(cfg, "h100-sxm"))
    assert spec.model.params_total == P.probe_params(cfg)


def test_default_probe_is_a_1b_gpt_on_one_gpu_with_no_communication():
    cfg = P.ProbeConfig()
    assert 1.2e9 < P.probe_params(cfg) < 1.4e9
    est = P.predict(cfg, "h100-sxm")
    assert est.gpus == 1 and est.parallelism["micro_batch"] == cfg.micro_batch
    comm = {k: v for k, v in est.time_breakdown_s.items() if k.endswith("_comm") or k == "pipeline_bubble"}
    assert comm and all(v == 0 for v in comm.values())
    # bf16 weights: two bytes per parameter
    assert est.memory_breakdown_gib["weights"] == pytest.approx(2 * P.probe_params(cfg) / 2**30)
    assert est.tokens_per_s == pytest.approx(cfg.tokens_per_step / est.step_time_s)


def test_recompute_costs_the_engine_a_forward_pass():
    base, rc = P.predict(P.ProbeConfig(), "h100-sxm"), P.predict(P.ProbeConfig(recompute=True), "h100-sxm")
    assert rc.step_time_s > base.step_time_s
    assert rc.memory_breakdown_gib["activations"] < base.memory_breakdown_gib["activations"]
    # one extra forward: at most a third more compute than the step without
    assert rc.time_breakdown_s["recompute"] <= base.time_breakdown_s["compute"] / 3 * 1.05


def test_compare_is_predicted_over_measured_tokens_per_s():
    cfg = P.ProbeConfig()
    est = P.predict(cfg, "h100-sxm")
    meas = P.StepMeasurement((0.5, 0.4, 0.45), 40.0, "synthetic", "none", "none", P.probe_params(cfg))
    row = P.compare(cfg, "h100-sxm", meas, est)
    assert row["measured"]["step_time_s"] == 0.45
    assert row["error"] == pytest.approx(0.45 / est.step_time_s - 1)
    # same FLOPs per token, so measured MFU scales with the step time
    assert row["measured"]["mfu"] == pytest.approx(est.mfu * est.step_time_s / 0.45)
    json.dumps(row)  # plain data, ready to commit


@pytest.mark.parametrize("kw, field", [({"activation": "relu"}, "probe.activation"),
                                       ({"heads": 7}, "probe.heads"), ({"layers": 0}, "probe.layers"),
                                       ({"warmup": -1}, "probe.warmup")])
def test_bad_probe_settings_name_the_field(kw, field):
    with pytest.raises(SpecError) as e:
        P.ProbeConfig(**kw)
    assert e.value.field == field and "\n" not in str(e.value)


@pytest.mark.skipif(HAS_TORCH, reason="torch present")
def test_measure_without_torch_is_a_one_line_error():
    with pytest.raises(NoGpuError):
        P.measure_step(P.ProbeConfig(**TINY))


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (not a dependency)")
@pytest.mark.parametrize("kw", [{}, {"activation": "swiglu", "recompute": True}])
def test_torch_model_runs_on_cpu_with_the_counted_parameters(kw):
    meas = P.measure_step(P.ProbeConfig(**{**TINY, **kw}), device="cpu")
    assert meas.params == P.probe_params(P.ProbeConfig(**{**TINY, **kw}))
    assert len(meas.step_times_s) == TINY["steps"] and meas.step_time_s > 0


def test_measured_h100_step_and_profile_committed_as_data():
    # 2026-11-24, one lent H100 80GB HBM3 (driver 580.159.04, torch 2.11.0+cu130):
    # `colossim calibrate` with its hold at the power limit, and `colossim train probe --profile`
    # on the default 1.32B GPT.  The profile keeps the sustained clock it measured (an 8192^3 bf16
    # GEMM after a minute at 700 W ran at 0.889 of the burst fit), and the engine, given it,
    # predicts the measured eager step within 3 %.
    from pathlib import Path

    from colossim.catalog.loader import data_path
    from colossim.cost.efficiency import load_profile

    prof = load_profile(data_path("profiles/h100-sxm-measured-2026-11-24.json"))
    assert prof.device == "NVIDIA H100 80GB HBM3" and prof.date == "2026-11-24"
    assert 0.85 < prof.gemm["bf16"].sustained_fraction < 0.95
    assert prof.gemm["bf16"].sustained_rows == ("bf16-sustained-8192x8192x8192",)
    run = json.loads((Path(__file__).parents[2] / "benchmarks" / "results" / "h100-2026-11-24"
                      / "probe_calibrated.json").read_text())
    cfg = P.ProbeConfig(**run["config"])
    est = P.predict(cfg, "h100-sxm", profile=prof)
    assert est.step_time_s == pytest.approx(run["predicted"]["step_time_s"], rel=1e-6)
    assert abs(est.step_time_s / run["measured"]["step_time_s"] - 1) < 0.03


def test_eager_probe_prices_the_unfused_swiglu_chain_and_only_that():
    # eager PyTorch runs silu and the product as two kernels; a LayerNorm and a GeLU are one
    # kernel either way, so only the SwiGLU probe moves between eager and compiled
    swiglu = dict(activation="swiglu", ffn_hidden=5632)
    eager, compiled = (P.predict(P.ProbeConfig(**swiglu, compile=c), "h100-sxm") for c in (False, True))
    assert eager.step_time_s > compiled.step_time_s
    gelu_eager, gelu_compiled = (P.predict(P.ProbeConfig(compile=c), "h100-sxm") for c in (False, True))
    assert gelu_eager.step_time_s == pytest.approx(gelu_compiled.step_time_s, rel=1e-12)


@pytest.mark.parametrize("slug", ["eager", "compiled", "eager-recompute", "eager-swiglu", "compiled-swiglu"])
def test_committed_h100_probe_steps_against_todays_prediction(slug):
    # the five 1.32B steps timed on the lent H100 (2026-11-24), predicted with the default
    # profile (GEMMs at the clock the same GPU held under a 100-s GEMM load): every case within
    # 8 %.  Eager GeLU -0.2 %; eager SwiGLU +6.2 % (its strided kernels and the chunk's backward
    # copy are not priced); the compiled steps and the recompute run -6 ... -8 %: in a step the
    # GEMMs seem to run above the held clock (docs/validation-history.md, twenty-ninth round: not modelled)
    from pathlib import Path

    run = json.loads((Path(__file__).parents[2] / "benchmarks" / "results" / "h100-2026-11-24"
                      / f"probe-h100-sxm-{slug}.json").read_text())
    cfg = P.ProbeConfig(**run["config"])
    err = P.predict(cfg, "h100-sxm").step_time_s ** -1 * run["measured"]["step_time_s"] - 1
    assert abs(err) < 0.08
