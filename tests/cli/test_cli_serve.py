"""``colossim serve``: estimate, frontier, simulate from the command line."""

from __future__ import annotations

import json

SPEC = json.dumps({"model": "llama3.1-8b", "hardware": {"gpu": "h100-sxm", "count": 1},
                   "serving": {"weights": "fp8", "input_tokens": 512, "output_tokens": 128,
                               "ttft_slo_s": 1.0, "tpot_slo_s": 0.05}})

ESTIMATE_KEYS = {"ttft_s", "tpot_s", "tokens_per_s", "tokens_per_s_per_gpu", "tokens_per_s_per_user",
                 "max_batch", "kv_cache_gib_per_gpu", "memory_gib_per_gpu", "fits", "bound",
                 "cost_usd_per_million_tokens", "energy_kwh_per_million_tokens", "parallelism"}


def test_estimate_json_has_the_contract_fields(cli):
    code, out, _ = cli("serve", "estimate", "-", "--json", input=SPEC)
    assert code == 0
    d = json.loads(out)
    assert ESTIMATE_KEYS <= set(d)
    assert set(d["bound"]) == {"prefill", "decode"}
    assert d["bound"]["decode"] in ("compute", "memory", "comm")
    assert d["tpot_s"] <= 0.05 and d["ttft_s"] <= 1.0 and d["fits"]


def test_estimate_table(cli, tmp_path):
    p = tmp_path / "s.json"
    p.write_text(SPEC)
    code, out, _ = cli("serve", "estimate", str(p))
    assert code == 0 and "TPOT" in out and "tokens/s/GPU" in out
    assert "meets TTFT <= 1 s, TPOT <= 50 ms" in out


def test_estimate_table_without_latency_limits_does_not_claim_to_meet_them(cli):
    spec = json.loads(SPEC)
    del spec["serving"]["ttft_slo_s"], spec["serving"]["tpot_slo_s"]
    code, out, _ = cli("serve", "estimate", "-", input=json.dumps(spec))
    assert code == 0 and "no latency limits given" in out and "meets" not in out
    spec["serving"]["tpot_slo_s"] = 1e-6  # no batch can decode a token in a microsecond
    code, out, _ = cli("serve", "estimate", "-", input=json.dumps(spec))
    assert code == 0 and "MISSES TPOT <= 0.001 ms" in out


def test_frontier_json_and_html(cli, tmp_path):
    html = tmp_path / "f.html"
    code, out, _ = cli("serve", "frontier", "-", "--json", "--html", str(html), input=SPEC)
    assert code == 0
    pts = json.loads(out)["frontier"]
    assert len(pts) >= 3
    text = html.read_text()
    assert "plotly" in text.lower() and "per GPU" in text and "per user" in text
    code, out, err = cli("serve", "frontier", "-", "--html", str(tmp_path / "absent" / "f.html"), input=SPEC)
    msg = (out + err).strip()
    assert code == 2 and len(msg.splitlines()) == 1 and "cannot write" in msg, msg  # was a traceback


def test_simulate_reports_percentiles(cli):
    code, out, _ = cli("serve", "simulate", "-", "--rate", "5", "--requests", "300", "--json", input=SPEC)
    assert code == 0
    d = json.loads(out)
    r = d["result"]
    assert r["completed"] == 300
    assert r["ttft_s"]["p50"] <= r["ttft_s"]["p90"] <= r["ttft_s"]["p99"]
    assert 0 <= r["goodput_fraction"] <= 1


def test_bad_input_is_one_line_exit_2(cli):
    bad = json.loads(SPEC)
    bad["parallelism"] = {"tp": 3}
    code, _, err = cli("serve", "estimate", "-", input=json.dumps(bad))
    assert code == 2
    assert err.strip().count("\n") == 0 and "parallelism.tp" in err and "allowed" in err


def test_model_that_does_not_fit(cli):
    big = json.loads(SPEC)
    big["model"] = "llama3.1-405b"
    code, _, err = cli("serve", "estimate", "-", input=json.dumps(big))
    assert code == 2 and "does not fit" in err and "GiB" in err


def test_simulate_bad_length(cli):
    code, _, err = cli("serve", "simulate", "-", "--rate", "1", "--requests", "10", "--input", "gauss:3",
                       input=SPEC)
    assert code == 2 and "--input" in err


def test_simulate_refuses_a_negative_seed_by_name(cli):
    # numpy's seeding raised a ValueError traceback
    code, _, err = cli("serve", "simulate", "-", "--rate", "1", "--requests", "10", "--seed", "-1", input=SPEC)
    assert code == 2 and "--seed" in err and "Traceback" not in err
