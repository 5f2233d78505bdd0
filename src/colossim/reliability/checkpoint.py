"""Checkpoint and recovery costs from explicit sizes, bandwidths and latencies.

Every time is in seconds.  A checkpoint is written to shared storage; its write time is bounded by
the aggregate storage bandwidth and by each node's own storage path (the slower bound wins).  A
synchronous checkpoint stalls training for the whole write; an asynchronous one (PyTorch DCP
``async_save``, Megatron's async checkpointing) stalls only for the device-to-host copy, and the
write finishes in the background ``write_seconds`` later, so it becomes durable only then.

A recovery after an unexpected failure costs: detection latency + job restart + rescheduling onto a
replacement node (skipped when a hot spare is free) + reading the checkpoint back.  A planned
interruption is announced: the job saves a checkpoint synchronously first (no work lost, no
detection), then restarts and restores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from colossim.errors import ColossimError
from colossim.units import GIGA, SECONDS_PER_HOUR

#: Bytes of checkpointed state per parameter for mixed-precision Adam training:
#: bf16 weights (2) + fp32 master weights (4) + Adam first moment m (4) + second moment v (4).
#: Gradients are not saved.  Because: the standard ZeRO accounting (Rajbhandari et al. 2020,
#: section 3.1: 2 + 2 + 12 bytes with fp16 gradients) minus the gradients.
BYTES_PER_PARAM_MIXED_ADAM = 2 + 4 + 4 + 4

#: Device-to-host copy bandwidth per GPU for the asynchronous checkpoint's staging copy (GB/s).
#: Because: PCIe Gen5 x16 carries ~64 GB/s per direction (PCI-SIG PCIe 5.0 spec) and H100 SXM
#: reaches ~50 GB/s pinned; staging into pageable host memory while 8 GPUs share the host's
#: memory bandwidth achieves well below that, so half the link rate is assumed.
DEFAULT_HOST_COPY_GB_PER_S = 25.0

#: Storage bandwidth of one node's path to shared storage (GB/s).  Because: HGX/DGX-class nodes
#: reach storage through one or two 200-400 Gb/s front-end NICs (25-100 GB/s); the low end is taken
#: so the per-node bound is not optimistic.
DEFAULT_NODE_STORAGE_GB_PER_S = 25.0

#: Time from a failure to the job noticing it (minutes).  Because: hardware faults surface through
#: XID errors and health checks within seconds, hangs through the NCCL watchdog (PyTorch default
#: collective timeout 10 min, usually lowered for large jobs; Llama 3 section 3.3.4 describes
#: faster hang detection with the NCCL flight recorder); 2 min is a tuned large-job value.
DEFAULT_DETECTION_MIN = 2.0

#: Time to relaunch the job on its nodes (minutes): scheduler, process start, NCCL communicator
#: setup, data-loader warm-up.  Because: an assumption for a tuned 10k+ GPU job; Llama 3 reports
#: >90 % effective time with 466 interruptions in 54 days, which bounds the whole per-interruption
#: cost (detection + restart + lost work) below ~17 min.
DEFAULT_RESTART_MIN = 5.0

#: Extra time to get a replacement node when no hot spare is free (minutes): drain, allocate,
#: image and health-check a node.  Because: an assumption of the same order as the restart.
DEFAULT_RESCHEDULE_MIN = 5.0

#: Mean time a failed node stays out of the pool (hours) before it is repaired or swapped.
#: Because: an assumption (drain, diagnose, vendor swap within about a day).
DEFAULT_NODE_REPAIR_HOURS = 24.0


def checkpoint_bytes(params_total: float, bytes_per_param: float = BYTES_PER_PARAM_MIXED_ADAM) -> float:
    """Bytes of one full checkpoint: ``params_total x bytes_per_param`` (weights and optimizer
    state; gradients and activations are not saved)."""
    if not params_total > 0:
        raise ColossimError(f"params must be > 0, got {params_total!r}", field="params", value=params_total)
    if not bytes_per_param > 0:
        raise ColossimError(f"bytes_per_param must be > 0, got {bytes_per_param!r}",
                            field="bytes_per_param", value=bytes_per_param)
    return float(params_total) * bytes_per_param


def write_seconds(bytes_total: float, n_nodes: float, storage_bytes_per_s: float,
                  node_storage_bytes_per_s: float | None) -> float:
    """Seconds to write (or read) one checkpoint: the slower of the aggregate bound
    ``bytes_total / storage`` and the per-node bound ``(bytes_total / n_nodes) / node_storage``.
    Because: a de-duplicated save (torch.distributed.checkpoint) spreads the bytes evenly over all
    nodes, so each node moves ``bytes_total / n_nodes``."""
    aggregate = bytes_total / storage_bytes_per_s
    if node_storage_bytes_per_s is None:
        return aggregate
    return max(aggregate, bytes_total / n_nodes / node_storage_bytes_per_s)


def spare_coverage(hot_spares: int, rate_unexpected_per_hour: float, repair_hours: float) -> float:
    """Probability that a hot spare is free when a node fails.

    Failed nodes under repair form an M/G/inf queue, so their number is Poisson with mean
    ``rate x repair_time`` (Palm's theorem; Little's law for the mean); a spare is free when fewer
    than ``hot_spares`` nodes are already in repair: P[Poisson(m) <= spares - 1]."""
    if hot_spares <= 0:
        return 0.0
    m = rate_unexpected_per_hour * repair_hours
    term, cdf = math.exp(-m), 0.0
    for k in range(hot_spares):
        cdf += term
        term *= m / (k + 1)
    return min(cdf, 1.0)


@dataclass(frozen=True)
class CheckpointCosts:
    """Checkpoint and recovery times of one job, in seconds."""

    bytes_total: float
    bytes_per_gpu: float
    write_seconds: float
    """one checkpoint written to storage (the slower of aggregate and per-node bounds)"""
    host_copy_seconds: float
    """device-to-host staging copy of a GPU's state"""
    stall_seconds: float
    """training time lost per checkpoint (the whole write, or only the copy when asynchronous)"""
    write_lag_seconds: float
    """after the stall, how long until the checkpoint is durable (0 when synchronous)"""
    restore_seconds: float
    spare_coverage: float
    recovery_unexpected_seconds: float
    """detection + restart + expected reschedule + restore"""
    recovery_planned_seconds: float
    """synchronous save + restart + restore"""
    asynchronous: bool


def checkpoint_costs(*, bytes_total: float, bytes_per_gpu: float, n_gpus: int, gpus_per_node: int,
                     storage_gb_per_s: float, node_storage_gb_per_s: float | None,
                     asynchronous: bool, host_copy_gb_per_s: float = DEFAULT_HOST_COPY_GB_PER_S,
                     detection_min: float = DEFAULT_DETECTION_MIN,
                     restart_min: float = DEFAULT_RESTART_MIN,
                     reschedule_min: float = DEFAULT_RESCHEDULE_MIN, hot_spares: int = 0,
                     rate_unexpected_per_hour: float = 0.0,
                     node_repair_hours: float = DEFAULT_NODE_REPAIR_HOURS) -> CheckpointCosts:
    """Checkpoint stall, write lag and recovery times of a job from explicit sizes and rates.

    ``bytes_total`` is the state written once (weights + optimizer); ``bytes_per_gpu`` is what one
    GPU holds and copies to the host.  Every byte lives on some GPU, so ``bytes_per_gpu x n_gpus``
    must be at least ``bytes_total``."""
    for name, v in (("checkpoint_bytes_total", bytes_total), ("checkpoint_bytes_per_gpu", bytes_per_gpu),
                    ("storage_gb_per_s", storage_gb_per_s), ("host_copy_gb_per_s", host_copy_gb_per_s)):
        if not v > 0:
            raise ColossimError(f"{name} must be > 0, got {v!r}", field=name, value=v)
    if node_storage_gb_per_s is not None and not node_storage_gb_per_s > 0:
        raise ColossimError(f"node_storage_gb_per_s must be > 0, got {node_storage_gb_per_s!r}",
                            field="node_storage_gb_per_s", value=node_storage_gb_per_s)
    for name, v in (("detection_min", detection_min), ("restart_min", restart_min),
                    ("reschedule_min", reschedule_min), ("node_repair_hours", node_repair_hours),
                    ("hot_spares", hot_spares)):
        if not v >= 0:
            raise ColossimError(f"{name} must be >= 0, got {v!r}", field=name, value=v)
    # Because: a relative tolerance so that bytes_total / n_gpus rounding does not trip the check
    if bytes_per_gpu * n_gpus < bytes_total * (1 - 1e-9):
        raise ColossimError(
            f"checkpoint_bytes_per_gpu x GPUs ({bytes_per_gpu:.4g} x {n_gpus}) is less than "
            f"checkpoint_bytes_total ({bytes_total:.4g}): the state must fit on the GPUs",
            field="checkpoint_bytes_per_gpu", value=bytes_per_gpu)
    n_nodes = n_gpus / gpus_per_node
    node_bw = node_storage_gb_per_s * GIGA if node_storage_gb_per_s is not None else None
    write = write_seconds(bytes_total, n_nodes, storage_gb_per_s * GIGA, node_bw)
    copy = bytes_per_gpu / (host_copy_gb_per_s * GIGA)
    if asynchronous:
        stall, lag = copy, write
    else:
        # Because: a synchronous save streams from GPU memory to storage; the copy overlaps the write
        stall, lag = max(write, copy), 0.0
    coverage = spare_coverage(int(hot_spares), rate_unexpected_per_hour, node_repair_hours)
    minute = SECONDS_PER_HOUR / 60
    restore = write  # Because: reads are assumed to run at the write bandwidth (same bounds)
    rec_u = (detection_min + restart_min + (1 - coverage) * reschedule_min) * minute + restore
    rec_p = max(write, copy) + restart_min * minute + restore
    return CheckpointCosts(bytes_total=bytes_total, bytes_per_gpu=bytes_per_gpu, write_seconds=write,
                           host_copy_seconds=copy, stall_seconds=stall, write_lag_seconds=lag,
                           restore_seconds=restore, spare_coverage=coverage,
                           recovery_unexpected_seconds=rec_u, recovery_planned_seconds=rec_p,
                           asynchronous=asynchronous)
