"""Verdicts on the public claims: the fleet- and catalog-level ones are evaluated for real."""

from __future__ import annotations

import pytest

from colossim.fleet import claims as claims_pkg
from colossim.fleet.claims import (CONSISTENT, INCONSISTENT, NOT_CHECKABLE, ClaimCheck, check, check_all,
                                   check_claim, claims, evaluator, registry, tolerance)

EXPECTED = {
    "tesla-q1-2024-h100e": CONSISTENT,
    "tesla-q1-2024-growth": CONSISTENT,
    "tesla-2024-target": CONSISTENT,
    "tesla-dojo-500m": CONSISTENT,
    "tesla-q1-2024-capex": CONSISTENT,
    "tesla-nvidia-spend-2024": CONSISTENT,
    "tesla-competitive-spend": CONSISTENT,
    "tesla-h100-range": CONSISTENT,
    "tesla-10k-cluster": CONSISTENT,
    "tesla-20x-18-months": CONSISTENT,
    "meta-350k-h100": CONSISTENT,
    "meta-600k-h100e": CONSISTENT,
    "meta-8x-tesla": INCONSISTENT,
    "h100-equals-4-a100": INCONSISTENT,
    "meta-doubling-since-2023": CONSISTENT,
    "meta-llama3": NOT_CHECKABLE,
    "xai-26k-30k": INCONSISTENT,
    "xai-colossus-100k": CONSISTENT,
    "xai-colossus-cost": CONSISTENT,
    "xai-colossus-most-powerful": CONSISTENT,
    "xai-colossus-200k": CONSISTENT,
    "gb200-27t-params": NOT_CHECKABLE,
    "gb200-30x-serving": NOT_CHECKABLE,
    "nvidia-no-comparable-hardware": INCONSISTENT,
}
CHECKS = {c.claim_id: c for c in check_all()}
#: engine claims an engine has since registered an evaluator for (their verdicts are the engine's tests)
ENGINE_EVALUATED = {c.id for c in claims() if c.needs not in ("catalog", "fleet") and c.id in registry.registered()}


def test_every_claim_gets_the_expected_verdict():
    assert [c.id for c in claims()] == list(EXPECTED)
    got = {k: v.verdict for k, v in CHECKS.items() if k not in ENGINE_EVALUATED}
    assert got == {k: v for k, v in EXPECTED.items() if k not in ENGINE_EVALUATED}


def test_claims_needing_only_catalog_or_fleet_are_evaluated_for_real():
    for c in claims():
        check_ = CHECKS[c.id]
        if c.needs in ("catalog", "fleet"):
            assert check_.verdict != NOT_CHECKABLE, c.id
            assert check_.computed != "-" and check_.why and check_.numbers, c.id
        elif c.id not in ENGINE_EVALUATED:
            assert check_.verdict == NOT_CHECKABLE and f"{c.needs} engine" in check_.why, c.id


def test_tesla_q1_2024_from_holdings():
    c = CHECKS["tesla-q1-2024-h100e"]
    # 35,000 H100 (Musk) + 7,360 + 4,032 + 1,752 A100 at 312 / 989.4 each
    assert c.value == pytest.approx(35_000 + 13_144 * 312 / 989.4)
    assert c.ratio == pytest.approx(c.value / 40_000) and c.tolerance == tolerance("claim_tolerance_count")


def test_growth_claims_imply_bases():
    assert CHECKS["tesla-q1-2024-growth"].number("base_implied_130") == pytest.approx(40_000 / 2.3)
    assert CHECKS["tesla-2024-target"].number("base_implied") == pytest.approx(85_000 / 5.67)
    assert CHECKS["tesla-20x-18-months"].value == pytest.approx(85_000 / (13_144 * 312 / 989.4))


def test_dojo_dollar_equivalence():
    c = CHECKS["tesla-dojo-500m"]
    assert c.number("implied_usd_per_h100") == 50_000
    assert c.number("h100_chip_usd") == 33_600 and c.number("h100_all_in_usd") == pytest.approx(50_400)
    assert c.value == pytest.approx(500e6 / 50_400)
    assert c.number("colossus_all_in_usd_per_gpu") == pytest.approx(47_000)


def test_meta_claims():
    assert CHECKS["meta-600k-h100e"].value == 606_402
    assert CHECKS["meta-600k-h100e"].number("non_h100_as_a100_bf16") == pytest.approx(250_000 * 989.4 / 312)
    assert CHECKS["meta-350k-h100"].number("h100_in_clusters") == 2 * 24_576 + 100_000
    assert CHECKS["meta-8x-tesla"].value == pytest.approx(600_000 / 85_000)  # about 7.1, not 8


def test_h100_is_not_four_a100_on_any_datasheet_metric():
    c = CHECKS["h100-equals-4-a100"]
    assert c.value == pytest.approx(989.4 / 312)  # 3.17x dense bf16
    assert c.number("h100_over_a100_fp8_vs_bf16") == pytest.approx(1978.9 / 312)
    assert c.number("h100_over_a100_hbm_bandwidth") == pytest.approx(3.35 / 2.039)
    assert c.number("h100_over_a100_bf16_per_watt") == pytest.approx(989.4 / 312 * 400 / 700)
    assert c.number("h100_over_a100_bf16_per_dollar") == pytest.approx(989.4 / 312 * 12_500 / 33_600)


def test_colossus_claims():
    c = CHECKS["xai-colossus-100k"]
    assert c.value == 100_000 and c.number("rank_2024_09") == 1
    assert c.number("power_mw") == pytest.approx(100_000 * 700 * 10.2 / 5.6 * 1.2 / 1e6)
    assert CHECKS["xai-colossus-cost"].value == pytest.approx(3.36e9)
    assert CHECKS["xai-colossus-200k"].value == 200_000


def test_no_comparable_hardware_ranks_mi300x_first_on_peaks():
    c = CHECKS["nvidia-no-comparable-hardware"]
    assert c.value == pytest.approx(1307.4 / 989.4)
    assert "mi300x" in c.computed


def test_registry_is_extensible_and_one_evaluator_per_claim(monkeypatch):
    registry.load_engine_evaluators()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    fake = registry.Claim(id="engine-test-claim", claim="x", who="w", published_by="p", published_on="2024-01",
                          kind="planning", needs="training", what_to_compute="y")
    monkeypatch.setattr(registry, "claims", lambda: (*claims(), fake))
    assert check_claim("engine-test-claim").verdict == NOT_CHECKABLE
    assert "training engine" in check_claim("engine-test-claim").why

    @evaluator("engine-test-claim")
    def _engine(c):  # what an engine's claims module does
        return check(c, computed="42 days", value=42.0, claimed=None, verdict=CONSISTENT, why="test")

    assert check_claim("engine-test-claim").computed == "42 days"
    with pytest.raises(ValueError, match="already has an evaluator"):
        evaluator("engine-test-claim")(lambda c: c)  # type: ignore[arg-type,return-value]


def test_engine_modules_are_imported_when_present():
    assert registry.ENGINE_MODULES == ("colossim.training.claims", "colossim.inference.claims",
                                       "colossim.reliability.claims")
    registry.load_engine_evaluators()  # absent modules are skipped without error
    assert "how an engine adds its evaluators" in (claims_pkg.__doc__ or "").lower()


def test_claim_check_is_frozen_and_serialisable():
    c = CHECKS["tesla-10k-cluster"]
    assert isinstance(c, ClaimCheck)
    with pytest.raises(AttributeError):
        c.verdict = INCONSISTENT  # type: ignore[misc]
    d = c.to_dict()
    assert d["verdict"] == CONSISTENT and d["numbers"]["h100"] == 10_000
