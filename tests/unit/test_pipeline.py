"""Pipeline schedule closed forms (Narayanan et al. 2021, eqs. 1-2)."""

from __future__ import annotations

import numpy as np
import pytest

from colossim.training.pipeline import (
    bubble_fraction,
    layers_on_slowest_stage,
    micro_batches_in_flight,
    p2p_exposed_transfers,
    pipeline_step_seconds,
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
