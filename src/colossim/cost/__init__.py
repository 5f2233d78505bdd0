"""The shared cost model: op time on a GPU (compute.py) and collectives on a hierarchical network
(comm.py), with efficiency parameters from calibration profiles (efficiency.py) fitted to published
microbenchmarks (defaults.py, fit.py) or to measurements on the GPU present (calibrate.py).
It knows nothing about training or inference: both workloads price their ops here."""

from colossim.cost.comm import (Network, all_gather_seconds, all_reduce_seconds, all_to_all_seconds,
                                network_for, reduce_scatter_seconds, send_recv_seconds)
from colossim.cost.compute import (attention_seconds, fp8_cast_overhead_seconds, gemm_efficiency,
                                   gemm_seconds, memory_bound_seconds, optimizer_step_seconds)
from colossim.cost.efficiency import CalibrationProfile, default_profile, load_profile, save_profile

__all__ = [
    "CalibrationProfile", "Network", "all_gather_seconds", "all_reduce_seconds", "all_to_all_seconds",
    "attention_seconds", "default_profile", "fp8_cast_overhead_seconds", "gemm_efficiency",
    "gemm_seconds", "load_profile", "memory_bound_seconds", "network_for", "optimizer_step_seconds",
    "reduce_scatter_seconds", "save_profile", "send_recv_seconds",
]
