"""A parallel plan as text, for tables and charts: pure functions over a plan dict (the spec's
field names, as :meth:`colossim.training.plans.PlanArrays.plan_dict` and the estimates give it).

Kept apart from the plan arrays so that the CLI can import them without numpy at start-up.
"""

from __future__ import annotations


def schedule_label(plan: dict) -> str:
    """A plan's pipeline schedule for tables and charts: its name when it pipelines with a schedule other than
    (interleaved) 1F1B, else ''."""
    sched = plan.get("pipeline_schedule", "1f1b")
    return sched if sched != "1f1b" and plan.get("pp", 1) > 1 else ""


def etp_label(plan: dict) -> str:
    """A plan's expert tensor-parallel degree for tables and charts: ``etp1 `` when the experts have their own
    (etp below tp), else '' (etp = tp, and every dense plan)."""
    etp = plan.get("etp", plan.get("tp"))
    return f"etp{etp} " if etp != plan.get("tp") else ""


def recompute_label(plan: dict) -> str:
    """A plan's recompute policy for tables and charts: ``full(3/stage)`` for Megatron's block method."""
    label = str(plan.get("recompute", ""))
    if plan.get("recompute_num_layers"):
        label += f"({plan['recompute_num_layers']}/stage)"
    return label


def plan_label(plan: dict) -> str:
    """A plan on one line for tables and charts, e.g. ``tp8 pp16 cp1 dp128 v8 mb1 full(1/stage) z1``
    (``ep``/``etp`` only where they are set, the pipeline schedule in place of ``v`` where it is
    not (interleaved) 1F1B, ``z3/8`` for ZeRO-3 sharded over groups of 8 ranks)."""
    ep = (f"ep{plan['ep']} " if plan.get("ep", 1) > 1 else "") + etp_label(plan)
    v = schedule_label(plan) or f"v{plan['vpp']}"
    return (f"tp{plan['tp']} pp{plan['pp']} cp{plan['cp']} {ep}dp{plan['dp']} {v} mb{plan['micro_batch']} "
            f"{recompute_label(plan)} z{plan['zero']}" + (f"/{plan['shard_group']}" if plan.get("shard_group") else ""))


__all__ = ["etp_label", "plan_label", "recompute_label", "schedule_label"]
