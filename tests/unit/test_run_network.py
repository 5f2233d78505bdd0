"""The scale-out rate a published row's interconnect description states
(``training.validate.scaleout_gbit_per_s_per_gpu``) and the as-published reading that takes it
(``with_network_label``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from colossim.training.validate import (NAMED_LINK_GBIT_PER_S, scaleout_gbit_per_s_per_gpu, validation_runs,
                                        with_network_label)

SPEC = {"model": "bloom-176b", "hardware": {"gpu": "a100-80gb-sxm", "count": 384},
        "parallelism": {"tp": 4, "pp": 12}, "training": {"global_batch": 2048}}


@pytest.mark.parametrize("text,per_gpu", [
    ("NVLink+NVSwitch intra-node (DGX A100, 8 GPU/node); 8x200Gb/s HDR InfiniBand per node", 200.0),
    ("NVLink4 900GB/s + NVSwitch3 intra-node; 8x ConnectX-7 IB NDR 400Gb/s per node", 400.0),
    ("NVLink (4 inter-GPU links) intra-node; 4x Omni-Path per node (Jean Zay)", 50.0),
    ("1600 Gbps node-node RoCE", 200.0),
    ("RoCE, 3.2 Tbps per node", 400.0),
    ("400 Gb/s per GPU (RoCE)", 400.0),
    ("2x HDR per node, 4 GPUs per node", 100.0),  # the row's own node size wins
    ("NVLink/NVSwitch 900 GB/s intra-node", None),  # bytes: the scale-up domain, not the network
    ("DGX A100 nodes, HDR InfiniBand full fat-tree (Selene)", None),  # no port count: no rate
    ("8x200Gb/s per node; 400 Gb/s per GPU", None),  # two that disagree
    ("8x200Gb/s per node, 0 GPU/node", 200.0),  # a node of no GPUs is not a node size
    ("", None),
])
def test_a_rows_interconnect_states_its_rate_per_gpu(text, per_gpu):
    assert scaleout_gbit_per_s_per_gpu(text, 8) == per_gpu


@given(ports=st.integers(1, 16), rate=st.sampled_from([25, 100, 200, 400, 800]), gpn=st.sampled_from([4, 8, 16]),
       name=st.sampled_from(sorted(NAMED_LINK_GBIT_PER_S)))
def test_a_nodes_ports_are_shared_by_its_gpus(ports, rate, gpn, name):
    assert scaleout_gbit_per_s_per_gpu(f"{ports}x{rate}Gb/s InfiniBand per node", gpn) == ports * rate / gpn
    assert scaleout_gbit_per_s_per_gpu(f"{ports}x {name} per node", gpn) == ports * NAMED_LINK_GBIT_PER_S[name] / gpn


def test_the_spec_takes_a_rate_that_differs_from_its_hardwares_only():
    bloom = with_network_label(SPEC, "4x Omni-Path per node, dedicated NCCL subnet (Jean Zay)")
    assert bloom["hardware"] == {**SPEC["hardware"], "scaleout_gbit_per_s": 50.0}
    assert {k: v for k, v in bloom.items() if k != "hardware"} == {k: v for k, v in SPEC.items() if k != "hardware"}
    # a DGX A100's own rate, no rate, or a rate the spec gives (under either name): unchanged
    assert with_network_label(SPEC, "8x200Gb/s HDR InfiniBand per node") is SPEC
    assert with_network_label(SPEC, "HDR InfiniBand fat tree") is SPEC
    for key in ("scaleout_gbit_per_s", "scaleout_gbps_per_gpu"):
        own = {**SPEC, "hardware": {**SPEC["hardware"], key: 100}}
        assert with_network_label(own, "4x Omni-Path per node") is own
    # hardware the catalog does not know is left to the spec's own error
    unknown = {**SPEC, "hardware": {"gpu": "no-such-chip", "count": 8}}
    assert with_network_label(unknown, "4x Omni-Path per node") is unknown


def test_bloom_as_published_runs_on_the_network_its_annotated_copy_names():
    run = next(r for r in validation_runs() if r.id == "BLOOM176B-PROD")
    assert run.spec["hardware"]["scaleout_gbit_per_s"] == 50
    read = with_network_label(run.spec_as_published, run.interconnect)
    assert read["hardware"]["scaleout_gbit_per_s"] == 50.0


TOKENS = [*"0123456789x× .,;/-GTbpsit", "Gb/s", "per node", "per GPU", "HDR", "Omni-Path", "node-node", "GPU/node",
          "NDR "]


@given(text=st.lists(st.sampled_from(TOKENS), max_size=30).map("".join), gpn=st.integers(1, 72))
def test_any_description_gives_one_positive_rate_or_none(text, gpn):
    """Whatever a row writes, the reading is a rate or nothing: never an error, never a negative
    or infinite rate (a zero port count or zero rate sets nothing in the spec)."""
    rate = scaleout_gbit_per_s_per_gpu(text, gpn)
    assert rate is None or (rate >= 0 and rate < float("inf"))
