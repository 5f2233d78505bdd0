"""CLI end to end: chips and h100e, and the one-line error with exit code 2."""

from __future__ import annotations

import json


def test_chips_list_and_filter(cli):
    code, out, _ = cli("chips", "--vendor", "AMD", "--json")
    assert code == 0
    ids = {c["id"] for c in json.loads(out)}
    assert ids == {"mi250x", "mi300x", "mi325x", "mi355x"}
    code, out, _ = cli("chips", "--since", "2025", "--json")
    assert {c["release_year"] for c in json.loads(out)} <= {2025, 2026}


def test_chips_show_has_sources(cli):
    code, out, _ = cli("chips", "show", "h100-sxm")
    assert code == 0
    assert "989.4" in out and "source" in out


def test_h100e_all_metrics_json(cli):
    code, out, _ = cli("h100e", "10000", "a100-80gb-sxm", "--metric", "all", "--json")
    assert code == 0
    rows = {r["metric"]: r for r in json.loads(out)}
    assert round(rows["bf16"]["h100e"]) == 3153
    assert rows["ark-4x-a100"]["h100e"] == 2500


def test_h100e_of_a_count_that_is_not_a_number_of_chips_is_one_line_exit_2(cli):
    for count in ("nan", "inf"):
        code, out, err = cli("h100e", count, "h100-sxm", "--metric", "all")
        assert code == 2 and out == "" and err.strip() == f"error: count must be a finite number >= 0, got {count}"


def test_unknown_chip_is_one_line_exit_2(cli):
    code, out, err = cli("chips", "show", "h1000")
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "unknown chip 'h1000'" in err and "h100-sxm" in err
    # a bare family name with two catalog parts is ambiguous: the parts are offered first
    code, _, err = cli("chips", "show", "a100")
    assert code == 2 and "did you mean a100-40gb-sxm, a100-80gb-sxm" in err


def test_chips_resolve_from_their_names_and_aliases(cli):
    from colossim.catalog import load_catalog
    from colossim.catalog.loader import label_key

    cat = load_catalog()
    for label, chip in (("H100", "h100-sxm"), ("A100 80GB", "a100-80gb-sxm"), ("A100-SXM4-40GB", "a100-40gb-sxm"),
                        ("NVIDIA H100 SXM5 80GB", "h100-sxm"), ("TPU v5p", "tpu-v5p"), ("H200", "h200-sxm"),
                        ("NVIDIA H100", "h100-sxm"), ("AMD MI300X", "mi300x"), ("Google TPU v5p", "tpu-v5p")):
        assert cat.accelerator(label).id == chip
    # with the vendor in front, an ambiguous part still offers both SKUs
    code, _, err = cli("chips", "show", "NVIDIA A100")
    assert code == 2 and "a100-40gb-sxm, a100-80gb-sxm" in err and "Traceback" not in err
    # no label names two chips
    owners: dict[str, set[str]] = {}
    for a in cat.accelerators.values():
        for text in (a.id, a.name, *a.alias_list):
            owners.setdefault(label_key(text), set()).add(a.id)
    assert {k: v for k, v in owners.items() if len(v) > 1} == {}
    code, out, _ = cli("chips", "show", "H100")
    assert code == 0 and "h100-sxm" in out


def test_unknown_metric_and_vendor(cli):
    code, _, err = cli("h100e", "5", "h100-sxm", "--metric", "flops")
    assert code == 2 and "unknown metric 'flops'" in err
    code, _, err = cli("chips", "--vendor", "nvidai")
    assert code == 2 and "NVIDIA" in err


def test_systems_list_by_chip_and_show_with_source(cli):
    code, out, _ = cli("systems", "--chip", "h200", "--json")
    assert code == 0
    rows = {s["id"]: s for s in json.loads(out)}
    # the DGX board first: a spec naming only the chip takes its network
    assert list(rows)[0] == "hgx-h200"
    assert set(rows) == {"hgx-h200", "aws-p5e", "aws-p5en", "gcp-a3-ultra", "azure-nd-h200-v5"}
    assert {s["accelerator"] for s in rows.values()} == {"h200-sxm"}
    code, out, _ = cli("systems", "show", "p4d.24xlarge")
    assert code == 0 and "aws-p4d" in out and "aws.amazon.com" in out


def test_systems_of_a_chip_with_none_is_one_line_exit_2(cli):
    code, out, err = cli("systems", "--chip", "tpu-v4")
    assert code == 2 and out == "" and err.strip().count("\n") == 0
    assert "no catalog system is built on chip 'tpu-v4'" in err and "hardware.gpu" in err
    code, _, err = cli("systems", "show", "p9")
    assert code == 2 and "unknown system 'p9'" in err
