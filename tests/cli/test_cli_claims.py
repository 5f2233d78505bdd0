"""``colossim claims`` end to end."""

from __future__ import annotations

import json


def test_claims_json(cli):
    code, out, _ = cli("claims", "--json")
    assert code == 0
    rows = {r["claim_id"]: r for r in json.loads(out)}
    assert len(rows) == 24
    assert rows["h100-equals-4-a100"]["verdict"] == "inconsistent"
    assert abs(rows["h100-equals-4-a100"]["value"] - 989.4 / 312) < 1e-9
    assert rows["xai-colossus-100k"]["numbers"]["rank_2024_09"] == 1
    assert rows["meta-llama3"]["verdict"] in ("not checkable yet", "consistent", "inconsistent")
    for r in rows.values():
        assert {"claim", "who", "published_by", "computed", "ratio", "verdict", "tolerance", "why"} <= set(r)


def test_claims_table(cli):
    code, out, _ = cli("claims")
    assert code == 0
    assert "tesla-q1-2024-h100e" in out and "colossim computes" in out and "inconsistent" in out
    assert "consistent" in out.splitlines()[-1]  # the verdict tally


def test_claims_filter_and_bad_verdict(cli):
    code, out, _ = cli("claims", "--verdict", "inconsistent", "--json")
    assert code == 0 and {r["verdict"] for r in json.loads(out)} == {"inconsistent"}
    code, _, err = cli("claims", "--verdict", "maybe")
    assert code == 2 and "unknown verdict 'maybe'" in err and err.strip().count("\n") == 0
