"""Pipeline-parallel schedules: how many micro-batch slots a step takes, and what is exposed.

Notation (Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters
Using Megatron-LM", section 2.2): ``p`` pipeline stages, ``m`` micro-batches per step and per
pipeline, ``v`` model chunks per stage (interleaved schedule), ``t_f``/``t_b`` the forward/backward
time of one micro-batch on one stage (all of its chunks).

- 1F1B (PipeDream-Flush): step = (m + p - 1) * (t_f + t_b); bubble fraction (p - 1) / m (eq. 1).
- Interleaved 1F1B: the bubble shrinks by v: step = (m + (p - 1) / v) * (t_f + t_b) (eq. 2).
- Uneven stages (layers not divisible by p): every stage runs at the pace of the slowest stage, so
  ``t_f``/``t_b`` are those of the stage with the most layers (plus the logits on the last stage).

Every function is vectorised: arguments may be numpy arrays (one element per plan).
"""

from __future__ import annotations

import numpy as np

ArrayLike = np.ndarray | float | int


def layers_on_slowest_stage(layers: ArrayLike, pp: ArrayLike) -> np.ndarray:
    """Layers on the most loaded stage: ceil(L / p) (uneven stages run at the slowest stage's pace)."""
    return np.ceil(np.asarray(layers, dtype=float) / np.asarray(pp, dtype=float))


def bubble_slots(pp: ArrayLike, vpp: ArrayLike) -> np.ndarray:
    """Idle micro-batch slots per step: (p - 1) / v (Narayanan et al. 2021 eqs. 1-2)."""
    return (np.asarray(pp, dtype=float) - 1.0) / np.asarray(vpp, dtype=float)


def bubble_fraction(pp: ArrayLike, vpp: ArrayLike, micro_batches: ArrayLike) -> np.ndarray:
    """Bubble time / ideal time = (p - 1) / (v m)."""
    return bubble_slots(pp, vpp) / np.asarray(micro_batches, dtype=float)


def pipeline_step_seconds(t_fwd: ArrayLike, t_bwd: ArrayLike, micro_batches: ArrayLike,
                          pp: ArrayLike, vpp: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(busy seconds, bubble seconds) of one step of the (interleaved) 1F1B schedule.

    ``t_fwd``/``t_bwd``: one micro-batch on the slowest stage.  Busy = m (t_f + t_b); bubble =
    (p - 1)/v (t_f + t_b)."""
    per_mb = np.asarray(t_fwd, dtype=float) + np.asarray(t_bwd, dtype=float)
    busy = np.asarray(micro_batches, dtype=float) * per_mb
    return busy, bubble_slots(pp, vpp) * per_mb


def micro_batches_in_flight(pp: ArrayLike, vpp: ArrayLike, micro_batches: ArrayLike) -> np.ndarray:
    """Micro-batches whose activations the first stage holds at the peak of the schedule.

    1F1B: the first stage runs p forward passes before its first backward, so it holds
    min(p, m) micro-batches.  Interleaved with v chunks: Megatron-LM's warm-up runs
    (p - 1) * 2 + (v - 1) * p chunk-forwards on the first stage (schedules.py,
    ``get_num_warmup_microbatches``); in units of whole micro-batches (v chunks each) that is
    p * (1 + (p - 1) / (p v)) (Korthikanti et al. 2022, section 4.2.3), capped by m.
    """
    p = np.asarray(pp, dtype=float)
    v = np.asarray(vpp, dtype=float)
    m = np.asarray(micro_batches, dtype=float)
    interleaved = p * (1.0 + (p - 1.0) / (p * v))
    held = np.where(v > 1, interleaved, p)
    return np.minimum(held, np.maximum(m, 1.0))


def p2p_exposed_transfers(pp: ArrayLike, vpp: ArrayLike, micro_batches: ArrayLike,
                          overlap: bool | np.ndarray = True) -> np.ndarray:
    """Activation send/recv transfers on the critical path of one step.

    Blocking send/recv (Megatron's 1F1B steady state, ``send_forward_recv_backward``; every
    schedule of Megatron-LM 2021-2022, batched isend/irecv then wait): each of the v chunks of each
    micro-batch pays one forward and one backward transfer, plus the fill and drain:
    2 (v m + p - 1) (= 2 (m + p - 1) without interleaving).  With interleaving and ``overlap``
    (Megatron-Core ``--overlap-p2p-communication``, 2023) the steady-state transfers overlap with
    the next chunk's compute; only the fill and drain, 2 (p - 1), stay exposed.
    No transfers without pipeline parallelism."""
    p = np.asarray(pp, dtype=float)
    v = np.asarray(vpp, dtype=float)
    m = np.asarray(micro_batches, dtype=float)
    blocking = 2.0 * (v * m + p - 1.0)
    overlapped = 2.0 * (p - 1.0)
    hidden = (v > 1) & np.asarray(overlap, dtype=bool)
    return np.where(p > 1, np.where(hidden, overlapped, blocking), 0.0)
