"""A training plan turned into a realistic wall-clock time: the training engine's state size and
useful time feed the reliability engine (failures, checkpoints, restarts).

The training and reliability cores do not import each other; this module composes them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from colossim import units
from colossim.errors import SpecError
from colossim.reliability import checkpoint as ck
from colossim.reliability.goodput import ReliabilityResult, estimate_reliability
from colossim.reliability.spec import ReliabilityJob, ReliabilitySpec, job_from_document


def job_from_training(doc: dict[str, Any], est=None) -> tuple[ReliabilityJob, Any]:
    """The reliability job of a training spec document: state size from the model (weights,
    fp32 master copy and Adam moments, ``checkpoint.BYTES_PER_PARAM_MIXED_ADAM`` bytes per
    parameter; under a LoRA, of its adapters only), per-GPU state from the estimated plan's
    weights + gradients + optimizer (a LoRA's adapters' gradients + optimizer), and useful
    time = ``reliability.duration_days`` or else the time to train the spec's ``tokens``.
    ``est`` is the spec's training estimate when the caller already has it.
    Returns (job, training estimate)."""
    from colossim.specs.training import load_spec
    from colossim.training.estimate import estimate

    spec = load_spec({k: v for k, v in doc.items() if k != "reliability"})
    est = est if est is not None else estimate(spec)
    rel = ReliabilitySpec.parse(doc.get("reliability"))
    if rel.duration_days is not None:
        useful_hours = rel.duration_days * 24.0
    elif est.time_to_train_days is not None:
        useful_hours = est.time_to_train_days * 24.0
    else:
        raise SpecError("give reliability.duration_days or training.tokens (the useful time to simulate)",
                        field="reliability.duration_days", value=None)
    b = est.memory_breakdown_gib
    lora = spec.training.lora
    if lora is None:
        total = ck.checkpoint_bytes(spec.model.params_total)
        per_gpu = (b["weights"] + b["gradients"] + b["optimizer"]) * units.GIB
    else:
        # a LoRA checkpoints its adapters only: the frozen base is saved already and never changes.
        # Each GPU's share: its adapters' gradient and optimizer bytes, as many as their bf16
        # weights and optimizer state (both gradients and weights are 2 bytes)
        total = ck.checkpoint_bytes(est.assumptions["trainable_params"])
        per_gpu = (b["gradients"] + b["optimizer"]) * units.GIB
    job = ReliabilityJob(chip=spec.hardware.accelerator.id, n_gpus=spec.hardware.count,
                         gpus_per_node=spec.hardware.gpus_per_node, checkpoint_bytes_total=total,
                         checkpoint_bytes_per_gpu=per_gpu, useful_hours=useful_hours, spec=rel)
    return job, est


def reliability_job(doc: dict[str, Any]) -> ReliabilityJob:
    """A reliability document's job: explicit ``checkpoint`` numbers when given, else derived from
    the training spec in the same document."""
    if isinstance(doc, dict) and "checkpoint" not in doc and "model" in doc and "training" in doc:
        return job_from_training(doc)[0]
    return job_from_document(doc)


def run(job: ReliabilityJob) -> ReliabilityResult:
    """Estimate a job's reliability."""
    return estimate_reliability(job.n_gpus, job.gpus_per_node, job.checkpoint_bytes_total,
                                job.checkpoint_bytes_per_gpu, job.useful_hours, job.spec)


def with_failures(doc: dict[str, Any], est=None):
    """The training estimate of ``doc`` with ``time_to_train_days_with_failures`` and ``ettr``
    filled in (when the spec gives ``tokens``)."""
    job, est = job_from_training(doc, est)
    if est.time_to_train_days is None:
        return est
    r = run(job)
    return dataclasses.replace(est, time_to_train_days_with_failures=r.wall_time_days_mean, ettr=r.ettr)
