"""Pipeline schedule closed forms (Narayanan et al. 2021, eqs. 1-2; Qi et al. 2023; DeepSeek-V3 Table 2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from colossim.training.pipeline import (
    bubble_fraction,
    layers_on_last_stage,
    layers_on_slowest_stage,
    micro_batches_in_flight,
    p2p_exposed_transfers,
    pipeline_step_seconds,
    schedule_allows,
    stage_copies,
)


def test_1f1b_bubble_is_p_minus_1_over_m():
    assert bubble_fraction(8, 1, 64) == pytest.approx(7 / 64)
    busy, bubble = pipeline_step_seconds(1.0, 2.0, 64, 8, 1)
    assert busy == pytest.approx(64 * 3.0)
    assert bubble == pytest.approx(7 * 3.0)


def test_interleaving_divides_bubble_by_v():
    assert bubble_fraction(8, 4, 64) == pytest.approx(bubble_fraction(8, 1, 64) / 4)


def test_no_pipeline_no_bubble_no_p2p():
    assert bubble_fraction(1, 1, 16) == 0
    assert p2p_exposed_transfers(1, 1, 16) == 0


def test_uneven_stages_run_at_slowest_pace():
    # Llama 3 405B: 126 layers on 16 stages -> the busiest stage has 8
    assert layers_on_slowest_stage(126, 16) == 8
    assert layers_on_slowest_stage(96, 8) == 12


def test_in_flight_micro_batches():
    assert micro_batches_in_flight(8, 1, 64) == 8
    assert micro_batches_in_flight(8, 1, 4) == 4  # capped by m
    assert micro_batches_in_flight(8, 3, 64) == pytest.approx(8 * (1 + 7 / 24))


def test_vectorised():
    pp = np.array([1, 2, 4, 8])
    out = bubble_fraction(pp, np.ones(4), np.full(4, 16))
    assert out.shape == (4,)
    assert np.allclose(out, (pp - 1) / 16)


def test_blocking_p2p_pays_every_chunk_boundary():
    # Megatron-LM 2021-2022 blocked on each send/recv: 2 (v m + p - 1) transfers; Megatron-Core's
    # --overlap-p2p-communication leaves the interleaved schedule's fill and drain, 2 (p - 1).
    assert p2p_exposed_transfers(4, 2, 8, overlap=False) == 2 * (2 * 8 + 3)
    assert p2p_exposed_transfers(4, 2, 8, overlap=True) == 2 * 3
    # without interleaving the steady state blocks either way
    assert p2p_exposed_transfers(4, 1, 8, overlap=True) == p2p_exposed_transfers(4, 1, 8, overlap=False) == 22
    out = p2p_exposed_transfers(np.array([4, 4]), np.array([2, 2]), 8, overlap=np.array([True, False]))
    assert list(out) == [6, 38]


# --- zero-bubble (ZB-H1) and DualPipe: DeepSeek-V3 report Table 2 -------------------------------

def test_table2_bubbles_in_closed_form():
    f, b, w, p, m = 1.0, 2.0, 0.8, 8, 32
    _, one = pipeline_step_seconds(f, b, m, p, 1, "1f1b", w)
    busy, zb = pipeline_step_seconds(f, b, m, p, 1, "zb1p", w)
    busy_dp, dual = pipeline_step_seconds(f, b, m, p, 1, "dualpipe", w)
    assert one == pytest.approx((p - 1) * (f + b))
    assert zb == pytest.approx((p - 1) * (f + b - 2 * w))
    assert dual == pytest.approx((p / 2 - 1) * ((f + b) + b - 3 * w))
    # every schedule runs each micro-batch through one stage per GPU once
    assert busy == busy_dp == pytest.approx(m * (f + b))


def test_schedules_never_idle_below_zero_and_pp1_has_no_bubble():
    for s in ("1f1b", "zb1p", "dualpipe"):
        assert pipeline_step_seconds(1.0, 1.0, 8, 1, 1, s, 1.0)[1] == 0
    assert pipeline_step_seconds(0.1, 1.0, 64, 16, 1, "zb1p", 1.0)[1] == 0


@settings(max_examples=200, deadline=None)
@given(f=st.floats(0.01, 10), b=st.floats(0.01, 10), share=st.floats(0, 1),
       half=st.integers(1, 32), m=st.integers(1, 512))
def test_zero_bubble_and_dualpipe_never_idle_more_than_1f1b(f, b, share, half, m):
    p, w = 2 * half, share * b
    one = pipeline_step_seconds(f, b, m, p, 1, "1f1b", w)[1]
    assert pipeline_step_seconds(f, b, m, p, 1, "zb1p", w)[1] <= one + 1e-12
    assert pipeline_step_seconds(f, b, m, p, 1, "dualpipe", w)[1] <= one + 1e-12


def test_zero_bubble_with_one_micro_batch_saves_only_the_backward_wave():
    # one micro-batch: p forwards, p input gradients and the first stage's weight gradient in a row
    f, b, w, p = 1.0, 2.0, 0.8, 8
    busy, bubble = pipeline_step_seconds(f, b, 1, p, 1, "zb1p", w)
    assert busy + bubble == pytest.approx(p * f + p * (b - w) + w)
    # from p micro-batches on, the paper's bubble; in between, one deferred weight gradient each
    assert pipeline_step_seconds(f, b, 3, p, 1, "zb1p", w)[1] == pytest.approx((p - 1) * (f + b) - (p - 1 + 2) * w)


@settings(max_examples=300, deadline=None)
@given(f=st.floats(0.01, 10), rest=st.floats(0.0, 10), w1=st.floats(0.0, 5), dw=st.floats(0.0, 5),
       half=st.integers(1, 32), m=st.integers(1, 512), schedule=st.sampled_from(["1f1b", "zb1p", "dualpipe"]))
def test_a_faster_weight_gradient_never_lengthens_a_step(f, rest, w1, dw, half, m, schedule):
    p = 2 * half
    if not schedule_allows(schedule, p, 1, m):
        return
    w2 = w1 + dw
    slow = sum(pipeline_step_seconds(f, rest + w2, m, p, 1, schedule, w2))
    fast = sum(pipeline_step_seconds(f, rest + w1, m, p, 1, schedule, w1))
    assert fast <= slow * (1 + 1e-12) + 1e-12


def test_dualpipe_holds_p_plus_1_micro_batches_and_two_stages():
    assert micro_batches_in_flight(8, 1, 64, "dualpipe") == 9
    assert micro_batches_in_flight(8, 1, 4, "dualpipe") == 4
    assert micro_batches_in_flight(8, 1, 64, "zb1p") == micro_batches_in_flight(8, 1, 64) == 8
    assert list(stage_copies(np.array([1, 2, 16]), "dualpipe")) == [1, 2, 2]
    assert list(stage_copies(np.array([1, 16]), "1f1b")) == [1, 1]


def test_schedule_constraints():
    pp, vpp, m = np.array([1, 2, 3, 4, 4, 8]), np.array([1, 1, 1, 2, 1, 1]), np.array([4, 4, 6, 8, 7, 16])
    assert list(schedule_allows("1f1b", pp, vpp, m)) == [True] * 6
    assert list(schedule_allows("zb1p", pp, vpp, m)) == [True, True, True, False, True, True]
    assert list(schedule_allows("dualpipe", pp, vpp, m)) == [True, True, False, False, False, True]
    assert list(schedule_allows("deepspeed", pp, vpp, m)) == list(schedule_allows("zb1p", pp, vpp, m))


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="allowed 1f1b, zb1p, dualpipe, deepspeed"):
        pipeline_step_seconds(1.0, 2.0, 8, 4, 1, "gpipe")


def test_dualpipe_hides_the_steady_state_send_recv():
    assert p2p_exposed_transfers(8, 1, 64, True, "dualpipe") == 2 * 7
    assert p2p_exposed_transfers(8, 1, 64, True, "1f1b") == 2 * (64 + 7)


def test_last_stage_gives_up_layers_to_the_head():
    # Llama 3 405B: 126 layers on 16 stages, a head worth 0.63 layers -> 7 on the last stage and
    # 8 on the others (Dubey et al. 2024: one layer fewer on the last stage)
    assert float(layers_on_last_stage(126, 16, 1.0, 0.63)) == 7
    # a head worth three layers (DeepSeek-V3's bf16 head and MTP module) on 61 layers / 16 stages
    assert float(layers_on_last_stage(61, 16, 1.0, 3.0)) == 1
    # a light head keeps the even split; no balancing: the average share, fractional included
    assert float(layers_on_last_stage(96, 8, 1.0, 0.35)) == 12
    assert float(layers_on_last_stage(61, 16, 1.0, 3.0, balance=False)) == pytest.approx(61 / 16)
    assert float(layers_on_last_stage(40, 1, 1.0, 5.0)) == 40  # one stage holds everything


def _phase_pace(layers, pp, k, t_ph, h_ph):
    """Sum over phases of the slowest stage's time, k layers on the last stage, the rest spread
    over the others as evenly as whole layers allow."""
    others = np.ceil((layers - k) / max(pp - 1, 1)) if pp > 1 else 0.0
    return sum(max(others * t, k * t + h) for t, h in zip(t_ph, h_ph))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 200), st.integers(1, 64),
       st.lists(st.tuples(st.floats(0.01, 5.0), st.floats(0.0, 20.0)), min_size=1, max_size=3))
@example(3, 2, [(0.5, 1e-09)])  # a head of 2e-9 layers: one layer fewer is faster by 1e-9
@example(21, 2, [(3.0, 0.0), (0.03125, 3.290770332321292e-11)])  # 1.05e-9 layers, in a light phase
def test_balanced_last_stage_is_the_best_layout_phase_by_phase(layers, pp, phases):
    pp = min(pp, layers)
    t_ph, h_ph = [t for t, _ in phases], [h for _, h in phases]
    n_max = float(layers_on_slowest_stage(layers, pp))
    k = float(layers_on_last_stage(layers, pp, t_ph, h_ph))
    if pp == 1:
        assert k == layers
        return
    assert k == int(k) and 1 <= k <= n_max
    assert np.ceil((layers - k) / (pp - 1)) <= n_max  # no other stage grows beyond ceil(L / p)
    feasible = [j for j in range(1, int(n_max) + 1) if np.ceil((layers - j) / (pp - 1)) <= n_max]
    paces = {j: _phase_pace(layers, pp, j, t_ph, h_ph) for j in feasible}
    best = min(paces.values())
    # no whole-layer layout is faster in the sum of the phases, and of the ties k is the largest
    assert paces[int(k)] <= best * (1 + 1e-9) + 1e-12
    # (the layout rounds a head within 1e-9 layers of a whole layer to it, so a pace 1e-9 faster
    # need not be taken; a tie is equal to rounding: a head just over 1e-9 layers in a light
    # phase, 1e-9 x 0.01 s, is a real gain beside a heavy phase of 1,000 s, 1e-14 of the step)
    assert all(j <= k for j, v in paces.items() if v <= best * (1 + 4e-15) + 1e-15)


def test_a_forward_heavy_head_moves_layers_off_the_last_stage():
    # 60 layers on 16 stages (DeepSeek-V2), a layer 1 s forward / 3 s backward and a head of
    # 1.2 / 1.5 s: balanced on the sum (4 s a layer, 2.7 s of head) three layers would tie, but
    # the forward would then run at 3 x 1 + 1.2 = 4.2 s against the others' 4 x 1
    assert float(layers_on_last_stage(60, 16, 4.0, 2.7)) == 3
    assert float(layers_on_last_stage(60, 16, (1.0, 3.0), (1.2, 1.5))) == 2


# --- DeepSpeed's pipeline engine: TrainSchedule replayed ------------------------------------------

def _deepspeed_commands(stage: int, stages: int, m: int) -> list[tuple[str, int]]:
    """One stage's command stream from deepspeed/runtime/pipe/schedule.py (v0.5.4) TrainSchedule:
    ``steps`` and ``_step_to_micro_batch`` with its four ``_*_step_*_id`` helpers, as written there;
    the loads, the reductions and the optimizer step left out."""
    def mb_and_direction(step: int) -> tuple[int, bool]:
        if step % 2 == 0 and stage % 2 == 0:
            return step // 2 - stage // 2, True
        if step % 2 == 1 and stage % 2 == 1:
            return (step - 1) // 2 - stage // 2, True
        if step % 2 == 0 and stage % 2 == 1:
            return step // 2 - stages + (stage + 1) // 2, False
        return (step - 1) // 2 - stages + 1 + stage // 2, False

    def valid(i: int) -> bool:
        return 0 <= i < m

    cmds, prev = [], -1
    for step in range(2 * (m + stages - 1)):
        mb, forward = mb_and_direction(step)
        if forward:
            if valid(mb) and stage > 0:
                cmds.append(("recv_act", mb))
            if valid(prev) and stage > 0:
                cmds.append(("send_grad", prev))
        else:
            if valid(prev) and stage < stages - 1:
                cmds.append(("send_act", prev))
            if valid(mb) and stage < stages - 1:
                cmds.append(("recv_grad", mb))
        if valid(mb):
            cmds.append(("F" if forward else "B", mb))
        prev = mb
    return cmds


def _deepspeed_step(stages: int, m: int, t_f: float, t_b: float, t_x: float) -> float:
    """Step time of TrainSchedule when every send / recv blocks until its peer posts the matching
    call (p2p.py ``send``/``recv`` with NCCL: a rendezvous) and then takes ``t_x``."""
    peer_op = {"send_act": "recv_act", "recv_act": "send_act", "send_grad": "recv_grad", "recv_grad": "send_grad"}
    prog = [_deepspeed_commands(s, stages, m) for s in range(stages)]
    pc, clock = [0] * stages, [0.0] * stages
    while any(pc[s] < len(prog[s]) for s in range(stages)):
        moved = False
        for s in range(stages):
            while pc[s] < len(prog[s]):
                op, mb = prog[s][pc[s]]
                if op in ("F", "B"):
                    clock[s] += t_f if op == "F" else t_b
                    pc[s] += 1
                    moved = True
                    continue
                q = s + 1 if op in ("send_act", "recv_grad") else s - 1
                if pc[q] < len(prog[q]) and prog[q][pc[q]] == (peer_op[op], mb):
                    clock[s] = clock[q] = max(clock[s], clock[q]) + t_x
                    pc[s] += 1
                    pc[q] += 1
                    moved = True
                    continue
                break
        assert moved, "the replay deadlocked"
    return max(clock)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.integers(1, 40), st.integers(1, 3))
@example(35, 240, 3)  # MT-NLG 530B on 2,240 GPUs: pp 35, 240 micro-batches, full recompute
def test_deepspeed_transfers_on_the_critical_path_match_a_replay_of_train_schedule(p, m, b_over_f):
    t_f, t_b = 1000.0, 1000.0 * b_over_f
    base = _deepspeed_step(p, m, t_f, t_b, 0.0)
    # no transfer time: DeepSpeed's schedule is 1F1B's, bubble and all
    busy, bubble = pipeline_step_seconds(t_f, t_b, m, p, 1, "deepspeed")
    assert base == busy + bubble == (m + p - 1) * (t_f + t_b)
    # each unit of transfer time lengthens the step by the transfers in line
    assert _deepspeed_step(p, m, t_f, t_b, 1.0) - base == p2p_exposed_transfers(p, 1, m, True, "deepspeed")


def test_deepspeed_puts_twice_megatrons_transfers_in_line():
    # Megatron-LM pairs the steady-state send and receive (send_forward_recv_backward): 2 (m + p - 1)
    assert p2p_exposed_transfers(35, 1, 240, False, "1f1b") == 548
    assert p2p_exposed_transfers(35, 1, 240, True, "deepspeed") == 4 * 240 + 2 * 35 - 8 == 1022
    assert p2p_exposed_transfers(2, 1, 8, True, "deepspeed") == 16  # no middle stage
    assert p2p_exposed_transfers(8, 1, 1, True, "deepspeed") == 14  # one micro-batch: fill and drain
    assert p2p_exposed_transfers(1, 1, 8, True, "deepspeed") == 0
    assert micro_batches_in_flight(8, 1, 64, "deepspeed") == 8
