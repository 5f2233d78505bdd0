"""Invariants of the cost model (hypothesis)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from colossim.catalog import load_catalog
from colossim.cost import comm, compute, default_profile

CAT = load_catalog()
H100 = CAT.accelerator("h100-sxm")
P = default_profile("h100-sxm")
NET = comm.network_for(H100, CAT.system("hgx-h100"))
dims = st.integers(1, 65536)


@settings(max_examples=150, deadline=None)
@given(dims, dims, st.integers(1, 8192), st.sampled_from(["bf16", "fp8"]))
def test_gemm_efficiency_in_unit_interval_and_time_grows_with_flops(m, n, k16, prec):
    k = 16 * k16  # same K alignment for k and 2k (misaligned K is slower by design)
    e = float(compute.gemm_efficiency(m, n, k, prec, H100, P))
    assert 0 < e <= 1
    assert float(compute.gemm_seconds(m, n, 2 * k, prec, H100, P)) >= float(
        compute.gemm_seconds(m, n, k, prec, H100, P)) * (1 - 1e-9)


@settings(max_examples=100, deadline=None)
@given(st.floats(1e3, 1e11), st.sampled_from([2, 4, 8, 16, 64, 512, 4096]),
       st.sampled_from(list(comm.OPS)), st.sampled_from([1, 2, 8]))
def test_collective_time_grows_with_bytes(size, n, op, stride):
    f = comm.OPS[op]
    assert float(f(2 * size, n, NET, P, stride)) >= float(f(size, n, NET, P, stride))


@settings(max_examples=60, deadline=None)
@given(st.floats(1e6, 1e10), st.sampled_from([16, 32, 64, 256, 1024]))
def test_larger_groups_beyond_a_domain_never_faster_per_byte(size, n):
    t1 = float(comm.all_reduce_seconds(size, n, NET, P))
    t2 = float(comm.all_reduce_seconds(size, 2 * n, NET, P))
    assert t2 >= t1 * 0.999


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(dims, dims, dims), min_size=1, max_size=8))
def test_vectorised_equals_elementwise(shapes):
    m, n, k = (np.array(x) for x in zip(*shapes))
    vec = compute.gemm_seconds(m, n, k, "bf16", H100, P)
    one = [float(compute.gemm_seconds(a, b, c, "bf16", H100, P)) for a, b, c in shapes]
    assert np.allclose(vec, one)
    sizes = m.astype(float) * 1e4
    vec = comm.all_reduce_seconds(sizes, 64, NET, P, stride=np.array(n % 3 + 1))
    one = [float(comm.all_reduce_seconds(s, 64, NET, P, stride=int(b % 3 + 1))) for s, b in zip(sizes, n)]
    assert np.allclose(vec, one)


@given(m=st.integers(1, 64).map(lambda x: 128 * x), n=st.integers(1, 64).map(lambda x: 128 * x),
       steps=st.integers(1, 256), k0=st.floats(1.0, 512.0))
@settings(max_examples=200, deadline=None)
def test_a_tile_overhead_costs_short_k_most(m, n, steps, k0):
    """Each tile's fixed fill and epilogue lowers the utilisation of every shape, and the longer
    the K the less: doubling K never loses utilisation."""
    from colossim.cost.compute import TILE_K, shape_utilisation
    k = steps * TILE_K
    with_k0 = float(shape_utilisation(m, n, k, 132, tile_overhead_k=k0))
    assert with_k0 < float(shape_utilisation(m, n, k, 132))
    assert float(shape_utilisation(m, n, 2 * k, 132, tile_overhead_k=k0)) >= with_k0 - 1e-12


_BLOCKS = ("llama3-8b", "mpt-7b", "gpt3-175b", "mixtral-8x7b", "nemotron4-15b", "deepseek-v3")


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(_BLOCKS), st.integers(1, 8), st.sampled_from([512, 2048, 8192]),
       st.sampled_from([1, 2, 8]), st.booleans(), st.sampled_from(["dense", "moe"]))
def test_eager_elementwise_kernels_never_move_fewer_bytes(name, mb, seq, tp, sp, kind):
    """PyTorch-eager norms, RoPE and gated activations move at least a fused kernel's bytes, each op
    and each way; a block with none of them (LayerNorm, no RoPE, plain activation) moves the same."""
    from colossim.specs.model import resolve_model
    from colossim.training.ops import memory_bound_ops

    model = resolve_model(name)
    kinds = [k for k, n in (("dense", model.dense_layers), ("moe", model.moe_layers)) if n]
    kind = kind if kind in kinds else kinds[0]

    def both_ways(fusion):
        return {op.name: (float(op.bytes), float(op.backward_bytes if op.backward_bytes is not None
                                                  else 2.0 * op.bytes))
                for op in memory_bound_ops(model, mb, seq, tp, 1, sp, kind, elementwise_fusion=fusion)}

    fused, eager = both_ways(True), both_ways(False)
    assert fused.keys() == eager.keys()
    for op, (f_fwd, f_bwd) in fused.items():
        assert eager[op][0] >= f_fwd and eager[op][1] >= f_bwd
    plain = model.norm == "layernorm" and model.position != "rope" and not model.activation.gated
    assert (eager == fused) == plain
