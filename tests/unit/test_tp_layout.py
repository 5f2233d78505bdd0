"""Tensor-parallel groups that fit in a scale-up domain but do not tile it (tp 6 of an 8-GPU node)
cannot all stay inside it: ranks 6-11 straddle two nodes, and a TP collective runs at its slowest
group's pace.  The search leaves such tp out; a written one is priced across the scale-out
network, with a caveat."""

from __future__ import annotations

from dataclasses import replace

import pytest

from colossim.catalog import load_catalog
from colossim.cost import comm
from colossim.cost import default_profile
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate, plan_space

CAT = load_catalog()
P = default_profile("h100-sxm")
NET = comm.network_for(CAT.accelerator("h100-sxm"), CAT.system("hgx-h100"))
MSG = 50e6


def test_a_group_that_does_not_tile_the_node_pays_the_scale_out_and_one_that_does_not():
    t = {n: float(comm.all_reduce_seconds(MSG, n, NET, P)) for n in (4, 6, 8)}
    assert t[6] > 2 * t[8]  # six ranks of which some sit on another node: NICs, not NVLink
    # a cluster of one node keeps every group inside it
    assert float(comm.all_reduce_seconds(MSG, 6, replace(NET, gpus=6), P)) < t[4]


def test_the_search_leaves_out_a_tp_that_straddles_nodes_and_a_written_one_says_so():
    doc = {"model": "gpt3-175b", "hardware": {"gpu": "h100-sxm", "count": 96}, "training": {"global_batch": 512}}
    _, plans = plan_space(load_spec(doc))
    assert set(plans.tp.tolist()) == {1, 2, 4, 8}  # 96 heads also allow 3 and 6
    fixed = {"dp": 2, "vpp": 1, "micro_batch": 1, "recompute": "none", "zero": 1}
    six, eight = (estimate(load_spec({**doc, "parallelism": {"tp": tp, "pp": 48 // tp, **fixed}}))
                  for tp in (6, 8))
    assert six.time_breakdown_s["tp_comm"] > 2 * eight.time_breakdown_s["tp_comm"]
    assert any(c.startswith("tp 6 does not divide the 8-GPU scale-up domain")
               for c in six.validation_evidence["caveats"])
    assert not any("scale-up domain" in c for c in eight.validation_evidence["caveats"])


def test_one_node_of_gpus_may_run_any_tp_the_heads_allow():
    doc = {"model": "gpt3-175b", "hardware": {"gpu": "h100-sxm", "count": 6}, "training": {"global_batch": 6}}
    _, plans = plan_space(load_spec(doc, validate=False))
    assert 6 in set(plans.tp.tolist())


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_tp_that_tiles_the_node_prices_as_one_domain(tp):
    n, d, domains = comm._layout(tp, 1, NET)
    assert (float(d), float(domains)) == (tp, 1.0)
