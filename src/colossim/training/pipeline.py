"""Pipeline-parallel schedules: how many micro-batch slots a step takes, and what is exposed.

Notation (Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters
Using Megatron-LM", section 2.2): ``p`` pipeline stages, ``m`` micro-batches per step and per
pipeline, ``v`` model chunks per stage (interleaved schedule), ``t_f``/``t_b`` the forward/backward
time of one micro-batch on one stage (all of its chunks).

- 1F1B (PipeDream-Flush): step = (m + p - 1) * (t_f + t_b); bubble fraction (p - 1) / m (eq. 1).
- Interleaved 1F1B: the bubble shrinks by v: step = (m + (p - 1) / v) * (t_f + t_b) (eq. 2).
- Zero bubble, ZB-H1 (Qi et al. 2023, "Zero Bubble Pipeline Parallelism", arXiv:2401.10241): the
  backward splits into the input gradient (B - W) and the weight gradient ``t_w`` (W), which
  nothing downstream waits for, so the weight-gradient GEMMs fill the drain:
  bubble = (p - 1)(t_f + t_b - 2 t_w) with m >= p micro-batches, with 1F1B's activation memory
  (fewer micro-batches have fewer weight gradients to fill it with: :func:`pipeline_step_seconds`).
- DualPipe (DeepSeek-AI 2024, DeepSeek-V3 report sec. 3.2.1, Table 2): micro-batches enter from
  both ends, each GPU holds stage i and stage p - 1 - i (two copies of the parameters, p + 1
  micro-batches of activations), and a forward chunk of one micro-batch runs overlapped with a
  backward chunk of another: bubble = (p/2 - 1)(F&B + t_b - 3 t_w), where F&B, the overlapped
  pair, takes t_f + t_b of compute (the communication hides inside it).
- DeepSpeed's pipeline engine (``deepspeed``; deepspeed/runtime/pipe/schedule.py ``TrainSchedule``,
  v0.3-0.9, the engine of Megatron-DeepSpeed, MT-NLG and BLOOM): the same 1F1B order, memory and
  bubble, but each stage issues its sends and receives one by one, each blocking (p2p.py
  ``send``/``recv``), and defers every send to its next step: a middle stage receives an
  activation, sends the previous gradient back, runs the forward, then sends that activation on
  and receives the next gradient, four transfers in line per micro-batch where Megatron's
  ``send_forward_recv_backward`` pairs them (:func:`p2p_exposed_transfers`).
- Uneven stages (layers not divisible by p): every stage runs at the pace of the slowest stage, so
  ``t_f``/``t_b`` are those of the stage with the most layers (plus the logits on the last stage);
  the last stage may hold fewer layers to make room for the logits (:func:`layers_on_last_stage`).

Every function is vectorised: arguments may be numpy arrays (one element per plan).
"""

from __future__ import annotations

import numpy as np

ArrayLike = np.ndarray | float | int

#: The schedules :func:`pipeline_step_seconds` prices (``ParallelPlan.pipeline_schedule``).
SCHEDULES = ("1f1b", "zb1p", "dualpipe", "deepspeed")


#: Schedules that run each backward's weight-gradient GEMMs apart from its input-gradient pass
#: (ZB-H1 defers them to fill the drain, DualPipe splits them likewise): communication the
#: backward would hide under its weight gradients has nothing to hide under there.
SPLIT_BACKWARD_SCHEDULES = ("zb1p", "dualpipe")


def layers_on_slowest_stage(layers: ArrayLike, pp: ArrayLike) -> np.ndarray:
    """Layers on the most loaded stage: ceil(L / p) (uneven stages run at the slowest stage's pace)."""
    return np.ceil(np.asarray(layers, dtype=float) / np.asarray(pp, dtype=float))


#: How a stack may split the layers over pipeline stages (``SoftwareStack.pipeline_layout``):
#: ``any`` split (DeepSpeed's PipelineModule partitions, torchtitan's split points, DeepSeek's
#: 61 layers on 16 stages), ``first_last`` (the first and last stages may differ, the middle ones
#: hold equal shares: Megatron-Core's --decoder-first / --decoder-last-pipeline-num-layers, Llama 3
#: 405B's 126 layers as 7 + 14 x 8 + 7), ``even`` (p divides L: Megatron-LM before Megatron-Core).
PIPELINE_LAYOUTS = ("any", "first_last", "even")


def layout_reaches_even_pace(layers: ArrayLike, pp: ArrayLike, layout: str = "any") -> np.ndarray:
    """Whether ``layout`` can split L layers over p stages with no stage above n = ceil(L / p), the
    pace :func:`layers_on_slowest_stage` prices.  ``first_last``: p <= 2, or some middle share m
    <= n with the rest, L - m (p - 2), split over the two end stages at 1 ... n each, i.e. an
    integer m in [max(1, (L - 2n) / (p - 2)), min(n, (L - 2) / (p - 2))].  80 layers on 31
    stages cannot (29 x 2 middle layers leave 11 on each end; 29 x 3 are too many): a search
    under Megatron-Core must not price them at 3 a stage."""
    L = np.asarray(layers, dtype=np.int64)
    p = np.asarray(pp, dtype=np.int64)
    if layout == "any":
        return np.ones(np.broadcast(L, p).shape, dtype=bool)
    if layout == "even":
        return L % p == 0
    if layout != "first_last":
        raise ValueError(f"pipeline layout must be one of {', '.join(PIPELINE_LAYOUTS)}; got {layout!r}")
    n = -(-L // p)
    mid = np.maximum(p - 2, 1)
    lo = np.maximum(1, -(-(L - 2 * n) // mid))
    hi = np.minimum(n, (L - 2) // mid)
    return (p <= 2) | (lo <= hi)


def layers_on_last_stage(layers: ArrayLike, pp: ArrayLike, layer_seconds, head_seconds,
                         balance: bool = True) -> np.ndarray:
    """Layers the last stage keeps when it also runs the output head (logits and loss).

    ``layer_seconds`` / ``head_seconds``: one layer's and the head's time in each phase the
    schedule paces separately (a sequence, e.g. (forward, backward)), or one combined time.

    Without ``balance``: L / p, the average (a fractional count when p does not divide L, the
    slowest stage's ceil(L / p) sets the pace anyway).  With it, the last stage gives up whole
    layers to the others while that shortens the slowest stage, and no other stage grows beyond
    n = ceil(L / p).  That is Megatron-Core's ``--decoder-last-pipeline-num-layers`` and what
    Llama 3 405B did ("one layer fewer on the first and last stages", Dubey et al. 2024,
    sec. 3.3.2).

    Every phase runs at the pace of its slowest stage, max(n t, k t + H) for k layers on the last
    stage (the others hold n whenever k >= L - (p - 1) n), so the step is shortest for every k with
    k t + H <= n t in each phase: k = floor(n - max over phases of H / t), kept within
    [max(L - (p - 1) n, 1), n].  Of the layouts that tie, the largest k: the one closest to the
    even split (Llama 3's 7 of 126 layers on 16 stages, not 6).  Balancing on the phases' sum
    instead can put the head's heavier forward on a last stage that then paces the forward."""
    L = np.asarray(layers, dtype=float)
    p = np.asarray(pp, dtype=float)
    avg = L / p
    t_ph = layer_seconds if isinstance(layer_seconds, (tuple, list)) else (layer_seconds,)
    h_ph = head_seconds if isinstance(head_seconds, (tuple, list)) else (head_seconds,)
    if len(t_ph) != len(h_ph):
        raise ValueError("layer_seconds and head_seconds need the same phases")
    shape = np.broadcast(avg, *t_ph, *h_ph).shape
    if not balance:
        return np.broadcast_to(avg, shape).copy()
    n_max = np.ceil(avg)
    # the head in layers of the phase it weighs most in
    head_layers = np.zeros(shape)
    for t, h in zip(t_ph, h_ph):
        t = np.maximum(np.asarray(t, dtype=float), 1e-30)
        head_layers = np.maximum(head_layers, np.asarray(h, dtype=float) / t)
    lo = np.maximum(L - (p - 1.0) * n_max, 1.0)
    k = np.clip(np.floor(n_max - head_layers + 1e-9), lo, n_max)
    return np.where(p > 1, k, L)


def bubble_slots(pp: ArrayLike, vpp: ArrayLike) -> np.ndarray:
    """Idle micro-batch slots per step: (p - 1) / v (Narayanan et al. 2021 eqs. 1-2)."""
    return (np.asarray(pp, dtype=float) - 1.0) / np.asarray(vpp, dtype=float)


def bubble_fraction(pp: ArrayLike, vpp: ArrayLike, micro_batches: ArrayLike) -> np.ndarray:
    """Bubble time / ideal time = (p - 1) / (v m)."""
    return bubble_slots(pp, vpp) / np.asarray(micro_batches, dtype=float)


def pipeline_step_seconds(t_fwd: ArrayLike, t_bwd: ArrayLike, micro_batches: ArrayLike,
                          pp: ArrayLike, vpp: ArrayLike, schedule: str = "1f1b",
                          t_wgrad: ArrayLike = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(busy seconds, bubble seconds) of one step.

    ``t_fwd``/``t_bwd``: one micro-batch on the slowest stage (``t_bwd`` the whole backward);
    ``t_wgrad``: the weight-gradient part of ``t_bwd``.  Busy = m (t_f + t_b) for every schedule
    (each GPU runs every micro-batch through one stage once); bubble per ``schedule`` (module
    docstring): '1f1b' and 'deepspeed' (p - 1)/v (t_f + t_b); 'zb1p' (p - 1)(t_f + t_b - 2 t_w) with m >= p
    micro-batches, (p - 1)(t_f + t_b) - (p - 1 + min(m - 1, p - 1)) t_w with fewer (there are not
    enough weight gradients to fill the drain; so a faster weight gradient never lengthens the
    step); 'dualpipe' (p/2 - 1)(t_f + 2 t_b - 3 t_w); none below zero."""
    if schedule not in SCHEDULES:
        raise ValueError(f"pipeline schedule {schedule!r}: allowed {', '.join(SCHEDULES)}")
    f, b = np.asarray(t_fwd, dtype=float), np.asarray(t_bwd, dtype=float)
    w = np.asarray(t_wgrad, dtype=float)
    p = np.asarray(pp, dtype=float)
    per_mb = f + b
    busy = np.asarray(micro_batches, dtype=float) * per_mb
    if schedule == "zb1p":
        # the backward wave runs at the input-gradient pace (p - 1 weight gradients saved) and
        # deferred weight gradients fill the drain, one per micro-batch after the first: the
        # paper's (p - 1)(t_f + t_b - 2 t_w) from m >= p on; with one micro-batch only the wave
        # (its critical path is p forwards, p input gradients and one weight gradient)
        m = np.asarray(micro_batches, dtype=float)
        fill = np.clip(m - 1.0, 0.0, np.maximum(p - 1.0, 0.0))
        bubble = (p - 1.0) * per_mb - (p - 1.0 + fill) * w
    elif schedule == "dualpipe":
        bubble = (p / 2.0 - 1.0) * (per_mb + b - 3.0 * w)
    else:
        bubble = bubble_slots(pp, vpp) * per_mb
    return busy, np.maximum(bubble, 0.0)


def micro_batches_in_flight(pp: ArrayLike, vpp: ArrayLike, micro_batches: ArrayLike,
                            schedule: str = "1f1b") -> np.ndarray:
    """Micro-batches whose activations the first stage holds at the peak of the schedule.

    1F1B (and ZB-H1, which keeps 1F1B's memory, and DeepSpeed's TrainSchedule, whose first stage
    also runs p forwards, on steps 0, 2, ..., 2p - 2, before its first backward on step 2p - 1): the
    first stage runs p forward passes before its first backward, so it holds min(p, m)
    micro-batches.  Interleaved with v chunks: Megatron-LM's
    warm-up runs (p - 1) * 2 + (v - 1) * p chunk-forwards on the first stage (schedules.py,
    ``get_num_warmup_microbatches``); in units of whole micro-batches (v chunks each) that is
    p * (1 + (p - 1) / (p v)) (Korthikanti et al. 2022, section 4.2.3), capped by m.  DualPipe:
    p + 1 (DeepSeek-V3 report, Table 2), capped by m.
    """
    p = np.asarray(pp, dtype=float)
    v = np.asarray(vpp, dtype=float)
    m = np.asarray(micro_batches, dtype=float)
    interleaved = p * (1.0 + (p - 1.0) / (p * v))
    held = np.where(v > 1, interleaved, p)
    if schedule == "dualpipe":
        held = np.where(p > 1, p + 1.0, p)
    return np.minimum(held, np.maximum(m, 1.0))


def micro_batches_in_flight_last(pp: ArrayLike, vpp: ArrayLike, micro_batches: ArrayLike,
                                 schedule: str = "1f1b") -> np.ndarray:
    """Micro-batches whose activations the last stage holds at its peak: one, except interleaved,
    where Megatron-LM's warm-up runs (v - 1) * p chunk-forwards on the last rank before its
    first backward (schedules.py ``get_num_warmup_microbatches`` at rank p - 1), so it holds
    (v - 1) p + 1 chunks, ((v - 1) p + 1) / v micro-batches, capped by m."""
    p = np.asarray(pp, dtype=float)
    v = np.asarray(vpp, dtype=float)
    m = np.asarray(micro_batches, dtype=float)
    held = np.where((v > 1) & (schedule == "1f1b"), ((v - 1.0) * p + 1.0) / v, 1.0)
    return np.minimum(held, np.maximum(m, 1.0))


def stage_copies(pp: ArrayLike, schedule: str = "1f1b") -> np.ndarray:
    """Pipeline stages whose parameters one GPU holds: 2 under DualPipe with pp > 1 (stage i and
    stage p - 1 - i, DeepSeek-V3 report sec. 3.2.1), else 1."""
    p = np.asarray(pp, dtype=float)
    return np.where((p > 1) & (schedule == "dualpipe"), 2.0, 1.0)


def schedule_allows(schedule: str, pp: ArrayLike, vpp: ArrayLike, micro_batches: ArrayLike) -> np.ndarray:
    """Plans a schedule can run.  '1f1b': all.  'zb1p' and 'deepspeed': no interleaving (vpp 1).  'dualpipe':
    vpp 1, and with pp > 1 an even pp and at least 2 pp micro-batches (half of them enter from each
    end, and each half must fill its p stages for the steady state that Table 2's bubble
    describes)."""
    p = np.asarray(pp, dtype=np.int64)
    v = np.asarray(vpp, dtype=np.int64)
    m = np.asarray(micro_batches, dtype=float)
    if schedule in ("zb1p", "deepspeed"):
        return v == 1
    if schedule == "dualpipe":
        return (v == 1) & ((p == 1) | ((p % 2 == 0) & (m >= 2 * p)))
    return np.ones(np.broadcast(p, v, m).shape, dtype=bool)


def schedule_rule(schedule: str) -> str:
    """What :func:`schedule_allows` asks of a plan under ``schedule``, in words; empty for 1F1B,
    which allows all."""
    if schedule == "dualpipe":
        return "vpp 1 and either pp 1 or an even pp with at least 2 x pp micro-batches"
    if schedule in ("zb1p", "deepspeed"):
        return "vpp 1"
    return ""


def p2p_exposed_transfers(pp: ArrayLike, vpp: ArrayLike, micro_batches: ArrayLike,
                          overlap: bool | np.ndarray = True, schedule: str = "1f1b") -> np.ndarray:
    """Activation send/recv transfers on the critical path of one step.

    Blocking send/recv (Megatron's 1F1B steady state, ``send_forward_recv_backward``; every
    schedule of Megatron-LM 2021-2022, batched isend/irecv then wait): each of the v chunks of each
    micro-batch pays one forward and one backward transfer, plus the fill and drain:
    2 (v m + p - 1) (= 2 (m + p - 1) without interleaving).  With interleaving and ``overlap``
    (Megatron-Core ``--overlap-p2p-communication``, 2023) the steady-state transfers overlap with
    the next chunk's compute; only the fill and drain, 2 (p - 1), stay exposed.  DualPipe hides
    its steady-state transfers inside the overlapped forward-backward pairs (DeepSeek-V3 report
    sec. 3.2.1): the fill and drain too.  No transfers without pipeline parallelism.

    DeepSpeed's ``TrainSchedule`` (``schedule`` 'deepspeed', no interleaving) sends and receives
    one tensor at a time, each call blocking, and defers each send to the stage's next step
    (RecvActivation, SendGrad, ForwardPass on a forward step; SendActivation, RecvGrad,
    BackwardPass on a backward step).  A middle stage thus runs four transfers in line per
    micro-batch, each a rendezvous with a neighbour on the same path: 4 m + 2 p - 8 transfers on the
    critical path for p >= 3 and m >= 2, 2 (p - 1) with one micro-batch, 2 m for two stages (no
    middle stage: the first stage only sends activations, the last only sends gradients).  The
    counts are those of a discrete-event run of the schedule's command streams, whatever t_f and
    t_b (tests/unit/test_pipeline.py replays it)."""
    p = np.asarray(pp, dtype=float)
    v = np.asarray(vpp, dtype=float)
    m = np.asarray(micro_batches, dtype=float)
    if schedule == "deepspeed":
        in_line = np.where(p > 2, np.maximum(4.0 * m + 2.0 * p - 8.0, 2.0 * (p - 1.0)), 2.0 * m)
        return np.where(p > 1, in_line, 0.0)
    blocking = 2.0 * (v * m + p - 1.0)
    overlapped = 2.0 * (p - 1.0)
    hidden = ((v > 1) | (schedule == "dualpipe")) & np.asarray(overlap, dtype=bool)
    return np.where(p > 1, np.where(hidden, overlapped, blocking), 0.0)
