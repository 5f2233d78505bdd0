"""Collectives on a hierarchical network: a scale-up domain (NVLink/NVSwitch, NVL72) and a scale-out
fabric (InfiniBand / RoCE / EFA, rail-optimised, one or more NICs per GPU).

Conventions (nccl-tests, "PERFORMANCE.md"): ``message_bytes`` S is the full buffer per GPU; an
all-reduce on n GPUs moves 2(n-1)/n S per GPU, reduce-scatter / all-gather / all-to-all (n-1)/n S;
bus bandwidth = that traffic / time.  Each fabric's achievable bus bandwidth vs S is a
:class:`colossim.cost.efficiency.BusCurve` fitted to published nccl-tests rows.

Rank order: ranks are packed tp innermost, then cp, then dp/ep, then pp, so a group's ``stride`` is
the product of the sizes of the dimensions inside it (tp group: 1; dp group: tp x cp).  A group of n
ranks with stride s has min(n, domain // s) members in each scale-up domain (at least 1).

Algorithms (NCCL picks the fastest per size; so does this model):
- inside one domain: ring, or NVLS (NVLink SHARP, reduction in the NVSwitch) for all-reduce on
  Hopper+ switches with at least NVLS_MIN_GPUS GPUs;
- across domains, all-reduce: ring over rails (each of the d members per domain drives its own
  NIC, latency 2(N-1) scale-out hops) or tree / NVLSTree (intra-domain reduce, inter-domain tree,
  latency 2 log2 N hops; Sanders et al. 2009 two-tree, as in NCCL 2.4+); chunks are pipelined, so
  the slower of the intra and inter phases sets the bandwidth;
- across domains, reduce-scatter / all-gather: ring; all-to-all: direct sends, the off-domain share
  over the NICs.

Vectorised over ``message_bytes``, ``group_size``, ``stride`` (numpy arrays broadcast).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from colossim.catalog import load_catalog
from colossim.catalog.schema import Accelerator, System
from colossim.cost import rows as R
from colossim.cost.efficiency import BusCurve, CalibrationProfile
from colossim.errors import ColossimError

ArrayLike = np.ndarray | float | int

#: Source: microbenchmarks.csv coll-h200-4g-allreduce-ring-8g ("NVLS first chosen at 5 GPUs").
NVLS_MIN_GPUS = 5
#: Because: first NVIDIA generation with NVLink SHARP in the NVSwitch is Hopper (NVSwitch 3, 2022).
NVLS_FIRST_YEAR = 2022
#: Because: an NVL72-class domain (72 GPUs on one NVSwitch fabric) uses its own measured curve.
NVL72_MIN_DOMAIN = 72
#: NCCL's latency model for a ring all-reduce with the LL protocol: a base latency plus one hop
#: latency per ring step (2(d-1) steps).  Source: NVIDIA/nccl src/graph/tuning.cc (baseLat ring LL
#: 6.8 us; hwLat NVLink ring LL 0.6 us).  Only the ratio is used: the absolute latency is the
#: measured one of the profile's curve, taken on LATENCY_REFERENCE_GPUS GPUs.
RING_BASE_LATENCY_US = 6.8
NVLINK_HOP_LATENCY_US = 0.6
#: Because: the small-message nccl-tests rows of microbenchmarks.csv (coll-h100-8g-allreduce-lat-8b,
#: coll-a100-8g-allreduce-lat-32k) were measured on 8 GPUs.
LATENCY_REFERENCE_GPUS = 8
#: NCCL's latency model of a ring pass (reduce-scatter or all-gather, n - 1 steps) with the Simple
#: protocol, the one it runs bandwidth-bound messages with: a base latency plus one latency per
#: ring step, an in-domain (NVLink) step far cheaper than one over the network; of the n - 1 steps
#: of n ranks on N domains, N - 1 cross the network.  Source: NVIDIA/nccl src/graph/tuning.cc, read
#: in NCCL 2.29.7-1 (Debian's nvidia-nccl source package, nvidia-nccl_2.29.7-1.orig.tar.gz):
#: ``baseLat`` Ring Simple 8.4 us; ``hwLat`` NVLINK Ring Simple 3.4 us, NET Ring Simple 14.0 us;
#: the ring's latency adds ``(nsteps - nInterSteps) * intraLat + nInterSteps * interLat``.  The
#: base and the in-domain steps are scaled so that a pass on LATENCY_REFERENCE_GPUS GPUs of one
#: domain takes the profile's measured latency (8.4 + 7 x 3.4 = 32.2 us against 32.6 us measured on
#: 8 H100); the network steps are NCCL's own.
NCCL_RING_SIMPLE_BASE_US = 8.4
NCCL_RING_SIMPLE_NVLINK_STEP_US = 3.4
NCCL_RING_SIMPLE_NET_STEP_US = 14.0
#: Plateau of the scale-out fabric for ring-type traffic (ring all-reduce, reduce-scatter,
#: all-gather, all-to-all, send/recv): a fraction of the NIC line rate.  The fitted scale-out curve
#: comes from tree / NVLSTree / SHARP all-reduce rows, whose bus bandwidth exceeds the line rate
#: (in-network or tree reduction moves less than the ring's 2(n-1)/n per NIC); a ring cannot.
#: Source: microbenchmarks.csv coll-h100-32g-allreduce-nvidia (no SHARP, 370 GB/s bus bandwidth on
#: 4 nodes of 8 x 400 Gb/s = 0.925 of 400 GB/s per node), coll-h200-32g-allreduce-ring-p5en
#: (Ring, 364.9 GB/s on 3200 Gb/s EFA = 0.91), coll-a100-32g-allreduce-nvidia (192 GB/s on
#: 8 x 200 Gb/s = 0.96); 0.925 the H100 InfiniBand value.
SCALEOUT_RING_FRACTION = 0.925


@dataclass(frozen=True)
class Network:
    """A hierarchical network with explicit numbers (one direction, per GPU)."""

    scaleup_domain_size: int
    scaleup_bytes_per_s_per_gpu: float
    scaleout_bytes_per_s_per_gpu: float
    gpus_per_node: int
    nvls: bool
    scaleup_fabric: str = "nvlink"  # "nvlink" (8-GPU HGX class) | "nvl72"
    gpus: int | None = None  # GPUs in all (None: more than one domain's)

    def __post_init__(self) -> None:
        if self.scaleup_domain_size < 1:
            raise ColossimError("scaleup_domain_size must be >= 1", field="scaleup_domain_size",
                                value=self.scaleup_domain_size)
        if self.scaleup_bytes_per_s_per_gpu <= 0 or self.scaleout_bytes_per_s_per_gpu <= 0:
            raise ColossimError("link bandwidths must be > 0", field="bandwidth",
                                value=(self.scaleup_bytes_per_s_per_gpu,
                                       self.scaleout_bytes_per_s_per_gpu))
        if self.scaleup_fabric not in ("nvlink", "nvl72"):
            raise ColossimError(f"unknown scale-up fabric '{self.scaleup_fabric}'",
                                field="scaleup_fabric", value=self.scaleup_fabric,
                                allowed=["nvlink", "nvl72"])


def network_for(chip: Accelerator, system: System | None = None, *, nvls: bool | None = None,
                scaleout_bytes_per_s_per_gpu: float | None = None,
                scaleup_bytes_per_s_per_gpu: float | None = None) -> Network:
    """The network of ``system`` (or, without one, of an 8-GPU-node of ``chip`` as the catalog
    describes it), with the given per-GPU rates in place of the catalog's.  ``nvls`` defaults to
    NVIDIA chips from 2022 on with an NVSwitch domain >= 8."""
    domain = system.scaleup_domain_size if system else (chip.scaleup_domain_size or 1)
    gpn = system.gpus_per_node if system else min(domain, 8)
    up = scaleup_bytes_per_s_per_gpu or chip.scaleup_bytes_per_s
    if up is None:
        raise ColossimError(f"chip '{chip.id}' has no scale-up link bandwidth in the catalog",
                            field="chip", value=chip.id)
    out = scaleout_bytes_per_s_per_gpu
    if out is None:
        out = system.scaleout_bytes_per_s_per_gpu if system and system.nic_gbit_per_s else None
    if out is None:
        out = chip.scaleout_bytes_per_s
    if not out:
        raise ColossimError(f"no scale-out bandwidth known for '{chip.id}': give a system or "
                            "scaleout_bytes_per_s_per_gpu", field="scaleout_bytes_per_s_per_gpu",
                            value=None)
    if nvls is None:
        nvls = chip.vendor == "NVIDIA" and chip.release_year >= NVLS_FIRST_YEAR and domain >= 8
    fabric = "nvl72" if domain >= NVL72_MIN_DOMAIN else "nvlink"
    return Network(domain, up, out, gpn, bool(nvls), fabric)


def network_of_hardware(hardware) -> Network:
    """The network of a resolved spec's hardware (:class:`colossim.specs.system.SystemSpec`): its
    catalog system's fabric, with the spec's sizes and bandwidths (overrides included) as the truth."""
    system = load_catalog().systems.get(hardware.system_id) if hardware.system_id else None
    net = network_for(hardware.accelerator, system,
                      scaleout_bytes_per_s_per_gpu=hardware.scaleout_bytes_per_s_per_gpu or None,
                      scaleup_bytes_per_s_per_gpu=hardware.scaleup_bytes_per_s_per_gpu)
    return replace(net, scaleup_domain_size=hardware.scaleup_domain_size, gpus_per_node=hardware.gpus_per_node,
                   gpus=hardware.count)


def _a(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def busbw(curve: BusCurve, link_bytes_per_s: float, message_bytes: ArrayLike) -> np.ndarray:
    """Achievable bus bandwidth at message size S: plateau / (1 + (S_half / S)^gamma)."""
    s = np.maximum(_a(message_bytes), 1.0)
    return curve.link_fraction * link_bytes_per_s / (1.0 + (curve.half_size_bytes / s) ** curve.gamma)


def straddles_domains(extent: ArrayLike, domain: int, gpus: int | None = None) -> np.ndarray:
    """Whether groups spanning ``extent`` consecutive ranks, fewer than a scale-up domain's
    ``domain`` GPUs, cannot all stay inside one: the extent does not tile the domain (6 of 8
    GPUs: ranks 6-11 sit on two nodes), and the ``gpus`` in all (None: more than a domain) span
    more than one domain."""
    e = _a(extent)
    out = (e > 1) & (e < domain) & (np.mod(domain, np.maximum(e, 1.0)) != 0)
    return out & (gpus is None or gpus > domain)


def _layout(group_size: ArrayLike, stride: ArrayLike, network: Network):
    """(members, members per domain, domains) of the slowest of the groups of ``group_size``
    ranks ``stride`` apart, laid out consecutively.  Groups that fit in a domain but do not tile
    it (6 of 8 GPUs) cannot all stay inside: every other one straddles two domains (ranks 6-11 of
    8-GPU nodes), and a collective runs at its slowest group's pace, so such a group is priced
    over two domains of half its members each."""
    n = np.maximum(_a(group_size), 1.0)
    s = np.maximum(_a(stride), 1.0)
    d = np.clip(np.floor(network.scaleup_domain_size / s), 1.0, n)
    domains = np.ceil(n / d)
    straddles = (n > 1) & straddles_domains(n * s, network.scaleup_domain_size, network.gpus)
    d = np.where(straddles, np.ceil(n / 2.0), d)
    domains = np.where(straddles, 2.0, domains)
    return n, d, domains


def _intra_ring_curve(profile: CalibrationProfile) -> BusCurve:
    return profile.curve("nvlink")


def _scaleout_ring_curve(profile: CalibrationProfile) -> BusCurve:
    """The scale-out curve with its plateau capped at SCALEOUT_RING_FRACTION of the line rate."""
    so = profile.curve("scaleout")
    return replace(so, link_fraction=min(so.link_fraction, SCALEOUT_RING_FRACTION))


def _intra_nvls_curve(network: Network, profile: CalibrationProfile) -> BusCurve:
    return profile.curve("nvl72" if network.scaleup_fabric == "nvl72" else "nvls")


def ring_latency_scale(d: ArrayLike) -> np.ndarray:
    """Latency of a ring all-reduce on ``d`` GPUs relative to the measured 8-GPU one: NCCL's own
    cost model (base + 2(d-1) hops), (RING_BASE_LATENCY_US + 2(d-1) NVLINK_HOP_LATENCY_US) /
    (the same at d = LATENCY_REFERENCE_GPUS)."""
    d = _a(d)
    steps = 2.0 * (np.maximum(d, 1.0) - 1.0)
    ref = 2.0 * (LATENCY_REFERENCE_GPUS - 1.0)
    return (RING_BASE_LATENCY_US + steps * NVLINK_HOP_LATENCY_US) / (
        RING_BASE_LATENCY_US + ref * NVLINK_HOP_LATENCY_US)


def _intra_allreduce(S, d, network: Network, profile: CalibrationProfile):
    """(bandwidth time, latency) of an all-reduce of S bytes on d GPUs of one domain."""
    L = network.scaleup_bytes_per_s_per_gpu
    traffic = 2.0 * (d - 1.0) / np.maximum(d, 1.0) * S
    ring = _intra_ring_curve(profile)
    t_ring = traffic / busbw(ring, L, S)
    lat = np.where(d > 1, ring.latency_seconds * ring_latency_scale(d), 0.0)
    if network.nvls:
        nv = _intra_nvls_curve(network, profile)
        t_nvls = traffic / busbw(nv, L, S)
        use = (d >= NVLS_MIN_GPUS) & (t_nvls + nv.latency_seconds < t_ring + ring.latency_seconds)
        return np.where(use, t_nvls, t_ring), np.where(use & (d > 1), nv.latency_seconds, lat)
    return t_ring, lat


def all_reduce_seconds(message_bytes: ArrayLike, group_size: ArrayLike, network: Network,
                       profile: CalibrationProfile, stride: ArrayLike = 1) -> np.ndarray:
    """Time of an all-reduce of ``message_bytes`` per GPU over ``group_size`` GPUs (see module)."""
    S = _a(message_bytes)
    n, d, N = _layout(group_size, stride, network)
    t_in, lat_in = _intra_allreduce(S, d, network, profile)
    so = profile.curve("scaleout")
    share = S / d  # each of the d members per domain drives its own NIC with 1/d of the buffer
    bw_so = busbw(so, network.scaleout_bytes_per_s_per_gpu, share)
    so_ring = _scaleout_ring_curve(profile)
    bw_ring = busbw(so_ring, network.scaleout_bytes_per_s_per_gpu, share)
    # ring over rails: every rail ring moves 2(n-1)/n of its share through each NIC
    t_ring = np.maximum(t_in, 2.0 * (n - 1.0) / n * share / bw_ring) + lat_in \
        + 2.0 * (N - 1.0) * so_ring.latency_seconds
    # tree: each domain's share goes up the tree and comes back down (2 x share per NIC)
    t_tree = np.maximum(t_in, 2.0 * share / bw_so) + lat_in \
        + 2.0 * np.ceil(np.log2(np.maximum(N, 1.0))) * so.latency_seconds
    t = np.where(N > 1, np.minimum(t_ring, t_tree), t_in + lat_in)
    return np.where(n > 1, t, 0.0)


def _ring_pass_latency(n, d, N, profile: CalibrationProfile) -> np.ndarray:
    """Latency of one ring pass (reduce-scatter or all-gather) of n ranks, d per domain, over N
    domains, by NCCL's step model (``NCCL_RING_SIMPLE_BASE_US``): the base, n - N in-domain steps
    and N - 1 network steps.  (The scale-out curve's own latency, fitted to tree and NVLSTree
    all-reduce rows, is a tree level's, not a ring step's.)"""
    ref_us = NCCL_RING_SIMPLE_BASE_US + (LATENCY_REFERENCE_GPUS - 1.0) * NCCL_RING_SIMPLE_NVLINK_STEP_US
    seconds_per_us = _intra_ring_curve(profile).latency_seconds / ref_us
    n, N = _a(n), _a(N)
    t = (seconds_per_us * (NCCL_RING_SIMPLE_BASE_US + (n - N) * NCCL_RING_SIMPLE_NVLINK_STEP_US)
         + (N - 1.0) * NCCL_RING_SIMPLE_NET_STEP_US * 1e-6)
    return np.where(n > 1, t, 0.0)


def _ring_one_pass(S, n, d, N, network: Network, profile: CalibrationProfile):
    """Reduce-scatter or all-gather (one ring pass, (n-1)/n S per GPU)."""
    ring = _intra_ring_curve(profile)
    traffic = (n - 1.0) / n * S
    t_in = (d - 1.0) / np.maximum(d, 1.0) * S / busbw(ring, network.scaleup_bytes_per_s_per_gpu, S)
    so = _scaleout_ring_curve(profile)
    share = S / d
    t_out = traffic / d / busbw(so, network.scaleout_bytes_per_s_per_gpu, share)
    t = np.where(N > 1, np.maximum(t_in, t_out), t_in) + _ring_pass_latency(n, d, N, profile)
    return np.where(n > 1, t, 0.0)


def reduce_scatter_seconds(message_bytes: ArrayLike, group_size: ArrayLike, network: Network,
                           profile: CalibrationProfile, stride: ArrayLike = 1) -> np.ndarray:
    """Time of a reduce-scatter whose input is ``message_bytes`` per GPU (ring; NCCL's choice)."""
    n, d, N = _layout(group_size, stride, network)
    return _ring_one_pass(_a(message_bytes), n, d, N, network, profile)


def all_gather_seconds(message_bytes: ArrayLike, group_size: ArrayLike, network: Network,
                       profile: CalibrationProfile, stride: ArrayLike = 1) -> np.ndarray:
    """Time of an all-gather whose output is ``message_bytes`` per GPU (ring; NCCL's choice)."""
    n, d, N = _layout(group_size, stride, network)
    return _ring_one_pass(_a(message_bytes), n, d, N, network, profile)


def domain_layout(group_size: ArrayLike, stride: ArrayLike, network: Network):
    """(n, d, N): a group's size, its members per scale-up domain and the domains it spans."""
    return _layout(group_size, stride, network)


def all_to_all_seconds(message_bytes: ArrayLike, group_size: ArrayLike, network: Network,
                       profile: CalibrationProfile, stride: ArrayLike = 1) -> np.ndarray:
    """Time of an all-to-all of ``message_bytes`` per GPU (each GPU sends S/n to every peer):
    the in-domain share (d-1)/n S over NVLink at the all-to-all fraction of the ring curve, the
    off-domain share (n-d)/n S over the GPU's NIC, concurrently."""
    S = _a(message_bytes)
    n, d, _ = _layout(group_size, stride, network)
    return all_to_all_split_seconds((d - 1.0) / n * S, (n - d) / n * S, S, group_size, network,
                                    profile, stride)


#: Kernels that move an all-to-all's off-domain bytes: NCCL's all-to-all (nccl-tests
#: ``alltoall_perf``; Megatron-Core's dispatcher) and DeepEP's normal dispatch / combine kernels
#: (NVLink + RDMA forwarding; DeepSeek's deduplicating dispatch).
ALLTOALL_KERNELS = ("nccl", "deepep")


def _alltoall_nic_fractions(kernel: str) -> list[float]:
    """Each build row's measured NIC rate of an all-to-all's off-domain bytes, over the line rate
    of the GPU's NIC (:func:`scaleout_alltoall_fraction`)."""
    cat = load_catalog()

    def nic(chip: str) -> Network:
        return network_for(cat.accelerator(chip))

    if kernel == "deepep":  # normal kernels: the rows give the RDMA bottleneck bandwidth itself
        return [r.value * 1e9 / nic(r.hardware).scaleout_bytes_per_s_per_gpu for r in R.load_rows()
                if "deepep" in r.id and r.metric == "gb_per_s" and r.id not in R.HELD_OUT]
    out = []
    for s in R.collective_samples():
        if s.op != "all_to_all" or s.busbw_bytes_per_s is None or s.row in R.HELD_OUT:
            continue
        net = nic(s.chip)
        n, d = float(s.gpus), float(min(net.scaleup_domain_size, s.gpus))
        if n > d:  # busbw counts (n-1)/n of the buffer; (n-d)/n of it crosses the NIC meanwhile
            out.append(s.busbw_bytes_per_s * (n - d) / (n - 1.0) / net.scaleout_bytes_per_s_per_gpu)
    return out


@lru_cache(maxsize=None)
def scaleout_alltoall_fraction(kernel: str = "nccl") -> float:
    """Fraction of its NIC's line rate at which a GPU's off-domain all-to-all bytes move, measured
    (geometric mean of the build rows of :data:`ALLTOALL_KERNELS` ``kernel``).

    'nccl': the nccl-tests all-to-all rows spanning several scale-up domains
    (coll-a100-32g-alltoall-nvidia: 24 GB/s bus bandwidth on 4 DGX A100, its NICs at 0.74 of
    200 Gb/s; the held-out coll-h100-32g-alltoall-nvidia, 48 GB/s on 400 Gb/s, gives the same).
    'deepep': DeepEP's normal-kernel rows (coll-h800-ep16/ep64-alltoall-deepep, 43 / 51 GB/s of RDMA
    on 400 Gb/s NICs at MoE-dispatch sizes, 4,096 tokens x 7,168 x top-8).  Neither curve falls at
    those sizes as a ring all-reduce's does: the exchange sends to every peer at once, so only its
    latency is size-independent overhead (added by the caller), not a pipeline of n - 1 steps."""
    if kernel not in ALLTOALL_KERNELS:
        raise ColossimError(f"all-to-all kernel '{kernel}' is unknown", field="kernel", value=kernel,
                            allowed=list(ALLTOALL_KERNELS))
    f = _alltoall_nic_fractions(kernel)
    if not f:
        raise ColossimError(f"no measured all-to-all rows for kernel '{kernel}' in the catalog",
                            field="kernel", value=kernel)
    return float(np.exp(np.mean(np.log(f))))


def all_to_all_split_seconds(in_domain_bytes: ArrayLike, scaleout_bytes: ArrayLike,
                             message_bytes: ArrayLike, group_size: ArrayLike, network: Network,
                             profile: CalibrationProfile, stride: ArrayLike = 1,
                             kernel: str = "nccl") -> np.ndarray:
    """Time of an all-to-all-like exchange whose bytes per GPU are given by fabric: what crosses
    the scale-up domain (``in_domain_bytes``, NVLink) and what goes out over the GPU's NIC
    (``scaleout_bytes``), concurrently.  ``message_bytes`` (the buffer, all copies) sets where on
    the NVLink curve the in-domain part sits; the NIC moves its bytes at the measured all-to-all
    fraction of its line rate for the ``kernel`` that sends them (:func:`scaleout_alltoall_fraction`).
    A deduplicating MoE dispatch sends fewer bytes than (d-1)/n and (n-d)/n of the buffer
    (:func:`colossim.training.step.moe_dispatch_copies`)."""
    S = _a(message_bytes)
    n, d, N = _layout(group_size, stride, network)
    ring = _intra_ring_curve(profile)
    bw_in = profile.alltoall_fraction * busbw(ring, network.scaleup_bytes_per_s_per_gpu, S)
    t_in = _a(in_domain_bytes) / bw_in
    so = _scaleout_ring_curve(profile)
    t_out = _a(scaleout_bytes) / (scaleout_alltoall_fraction(kernel) * network.scaleout_bytes_per_s_per_gpu)
    lat = np.where(d > 1, ring.latency_seconds, 0.0) + np.where(N > 1, so.latency_seconds, 0.0)
    return np.where(n > 1, np.maximum(t_in, t_out) + lat, 0.0)


def send_recv_seconds(message_bytes: ArrayLike, network: Network, profile: CalibrationProfile,
                      crosses_scaleout: bool | np.ndarray = False) -> np.ndarray:
    """Time to send ``message_bytes`` from one GPU to another (pipeline-stage boundary): over
    NVLink at the measured one-way copy fraction, or over the GPU's NIC."""
    S = _a(message_bytes)
    ring = _intra_ring_curve(profile)
    shape_in = busbw(ring, 1.0, S) / ring.link_fraction  # the ring curve's size dependence, in (0,1)
    t_in = S / (profile.p2p_fraction * network.scaleup_bytes_per_s_per_gpu * shape_in) \
        + ring.latency_seconds
    so = _scaleout_ring_curve(profile)
    t_out = S / busbw(so, network.scaleout_bytes_per_s_per_gpu, S) + so.latency_seconds
    return np.where(np.asarray(crosses_scaleout, dtype=bool), t_out, t_in)


def bus_bandwidth(op: str, message_bytes: ArrayLike, group_size: ArrayLike, seconds: ArrayLike):
    """nccl-tests bus bandwidth of a measured or predicted collective (for reports and fitting)."""
    n = np.maximum(_a(group_size), 1.0)
    factor = 2.0 * (n - 1.0) / n if op == "all_reduce" else (n - 1.0) / n
    return factor * _a(message_bytes) / _a(seconds)


OPS = {
    "all_reduce": all_reduce_seconds,
    "reduce_scatter": reduce_scatter_seconds,
    "all_gather": all_gather_seconds,
    "all_to_all": all_to_all_seconds,
}
