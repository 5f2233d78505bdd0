"""Capex and power on worked examples, with the parameters shown."""

from __future__ import annotations

import pytest

from colossim.catalog import load_catalog
from colossim.errors import ColossimError, UnknownNameError
from colossim.fleet.costs import capex, node_overhead, power


def test_power_of_100k_h100_worked_example():
    # 100,000 x 700 W x 1.82 x 1.2 = 152.88 MW with the default system overhead ...
    p = power({"h100-sxm": 100_000}, system_overhead=1.82)
    assert p.mw == pytest.approx(152.88)
    assert p.pue == 1.2 and p.by_chip[0].node_overhead == 1.82
    # ... and with the DGX H100's own 10.2 kW / (8 x 700 W) = 1.8214 from the systems catalog
    p = power({"h100-sxm": 100_000})
    assert p.by_chip[0].overhead_from == "hgx-h100"
    assert p.mw == pytest.approx(100_000 * 700 * (10_200 / 5_600) * 1.2 / 1e6)  # 153.0 MW
    assert p.it_mw == pytest.approx(127.5) and p.chips_mw == pytest.approx(70.0)


def test_capex_of_100k_h100_worked_example():
    c = capex({"h100-sxm": 100_000})
    assert c.chips_usd == pytest.approx(100_000 * 33_600)  # catalog price (low = high = 33,600)
    assert c.all_in_usd == pytest.approx(100_000 * 33_600 * 1.5)  # all_in_capex_multiplier
    assert (c.multiplier, c.price_point) == (1.5, "mid")
    assert c.per_chip_all_in_usd == pytest.approx(50_400)


def test_price_points_and_overrides():
    c = capex({"a100-80gb-sxm": 10}, price_point="low", multiplier=2)
    assert c.chips_usd == 100_000 and c.all_in_usd == 200_000
    assert capex({"a100-80gb-sxm": 10}).chips_usd == 125_000  # midpoint of 10,000-15,000
    assert power({"h100-sxm": 1000}, pue=1.1).mw == pytest.approx(1000 * 700 * 10.2 / 5.6 * 1.1 / 1e6)


def test_node_overhead_from_systems_else_the_parameter():
    assert node_overhead("gb200") == (pytest.approx(120_000 / (72 * 1200)), "gb200-nvl72")
    assert node_overhead("dojo-d1") == (pytest.approx(15_000 / (25 * 400)), "dojo-training-tile")
    default = load_catalog().parameter("system_overhead")
    assert node_overhead("tpu-v5p") == (default, "system_overhead parameter")


def test_unknown_prices_are_listed_not_guessed():
    c = capex({"dojo-d1": 3000, "h100-sxm": 1})
    assert c.unpriced == ("dojo-d1",) and c.chips_usd == 33_600
    p = power({"cerebras-wse3": 1, "h100-sxm": 0})
    assert p.unpowered == () and p.mw > 0


def test_bad_inputs():
    with pytest.raises(ColossimError, match="PUE"):
        power({"h100-sxm": 1}, pue=0.9)
    with pytest.raises(ColossimError, match="multiplier"):
        capex({"h100-sxm": 1}, multiplier=0.5)
    with pytest.raises(ColossimError, match="price point"):
        capex({"h100-sxm": 1}, price_point="median")
    with pytest.raises(ColossimError, match=">= 0"):
        capex({"h100-sxm": -1})
    with pytest.raises(UnknownNameError):
        power({"h1000": 1})
