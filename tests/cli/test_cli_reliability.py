"""``colossim reliability SPEC``: JSON output, tables, and one-line errors naming the field."""

from __future__ import annotations

import json

import pytest

SPEC = """
hardware: {gpu: h100-sxm, count: 16384}
checkpoint: {params: 405e9}
model: {ignored: true}
reliability: {failure_rate_source: llama3, duration_days: 10, checkpoint_interval_min: auto,
              storage_gb_per_s: 2000, restart_min: 5, async_checkpoint: true, trials: 200}
"""


def test_json_has_the_contract_fields(cli):
    code, out, err = cli("reliability", "-", "--json", input=SPEC)
    assert code == 0, err
    r = json.loads(out)
    for key in ("mttf_hours", "interruptions_expected", "checkpoint_interval_min", "checkpoint_seconds", "ettr",
                "wall_time_days_p50", "wall_time_days_p90", "young_interval_min", "daly_interval_min",
                "breakdown"):
        assert key in r
    assert r["mttf_hours"] == pytest.approx(3.093, abs=0.001)  # 16,384 GPUs at Llama 3 rates
    assert 0.85 < r["ettr"] < 1
    assert r["wall_time_days_p50"] > 10
    # async: the stall is the 5.67 TB / 16,384 GPUs host copy at 25 GB/s
    assert r["checkpoint_seconds"] == pytest.approx(405e9 * 14 / 16384 / 25e9)


def test_table_and_system_hardware(cli, tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(SPEC.replace("gpu: h100-sxm", "system: dgx-h100"))
    code, out, _ = cli("reliability", str(p))
    assert code == 0 and "ETTR" in out and "MTTF" in out


@pytest.mark.parametrize(("patch", "field"), [
    ("restart_min: 5", "reliability.restart_min"),
    ("storage_gb_per_s: 2000", "reliability.storage_gb_per_s"),
    ("checkpoint_interval_min: auto", "reliability.checkpoint_interval_min"),
    ("duration_days: 10", "reliability.duration_days"),
    ("trials: 200", "reliability.seed"),  # a negative seed was numpy's ValueError traceback
])
def test_negative_values_are_one_line_errors(cli, patch, field):
    key = field.split(".")[1]
    new = f"{key}: -1" if patch.startswith(key) else f"{patch}, {key}: -1"  # set the key, or add it
    code, _, err = cli("reliability", "-", input=SPEC.replace(patch, new))
    assert code == 2 and field in err and err.strip().count("\n") == 0


def test_unknown_field_custom_without_rate_and_bad_hardware(cli):
    code, _, err = cli("reliability", "-", input=SPEC.replace("trials: 200", "trials: 200, restart: 3"))
    assert code == 2 and "reliability.restart" in err and "restart_min" in err
    code, _, err = cli("reliability", "-", input=SPEC.replace("llama3", "custom"))
    assert code == 2 and "unexpected_per_1000_node_days" in err
    code, _, err = cli("reliability", "-", input=SPEC.replace("count: 16384", "count: 0"))
    assert code == 2 and "hardware.count" in err
    code, _, err = cli("reliability", "-", input=SPEC.replace("h100-sxm", "h1000"))
    assert code == 2 and "h100-sxm" in err
    code, _, err = cli("reliability", "-", input=SPEC.replace("checkpoint: {params: 405e9}\n", ""))
    assert code == 2 and "checkpoint" in err


def test_async_interval_shorter_than_the_write_is_refused(cli):
    spec = SPEC.replace("storage_gb_per_s: 2000", "storage_gb_per_s: 1").replace(
        "checkpoint_interval_min: auto", "checkpoint_interval_min: 5")
    code, _, err = cli("reliability", "-", input=spec)
    assert code == 2 and "checkpoint_interval_min" in err
