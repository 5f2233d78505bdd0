"""Claim checks that need the training engine (registered into the fleet claim registry).

Imported by :func:`colossim.fleet.claims.registry.load_engine_evaluators`.
"""

from __future__ import annotations

import math

from colossim import units
from colossim.fleet.claims.registry import CONSISTENT, Claim, ClaimCheck, evaluator

#: Llama 3 405B pre-training as the Llama 3 paper describes it (section 3.3): 15.6 T tokens on up
#: to 16,384 H100 with a 2,048-sequence (16 M-token) batch at 8k context.
LLAMA3_SPEC = {"model": "llama3-405b", "hardware": {"gpu": "h100-sxm", "count": 16384},
               "training": {"global_batch": 2048, "precision": "bf16", "tokens": 15.6e12}}
#: Meta's stated end-2024 compute, in H100-equivalents (the claim meta-600k-h100e).
META_2024_H100E = 600_000
#: Days of training in the "what could it train" question.
TRAINING_DAYS = 90
#: Tokens per parameter of a compute-optimal model.  Source: Hoffmann et al. 2022 (Chinchilla),
#: ~20 tokens per parameter.
CHINCHILLA_TOKENS_PER_PARAM = 20
#: Training FLOPs per parameter per token (forward + backward).  Source: Kaplan et al. 2020, C = 6ND.
FLOPS_PER_PARAM_TOKEN = 6


@evaluator("meta-llama3")
def _meta_llama3(c: Claim) -> ClaimCheck:
    from colossim.planning.realistic import with_failures
    from colossim.specs.training import load_spec
    from colossim.training.estimate import estimate

    est = with_failures(LLAMA3_SPEC, estimate(load_spec(LLAMA3_SPEC)))
    # The same MFU on Meta's whole 2024 fleet (all H100e at the H100's dense bf16 peak).
    fleet_tokens_per_s = est.tokens_per_s_per_gpu * META_2024_H100E
    fleet_days = LLAMA3_SPEC["training"]["tokens"] / fleet_tokens_per_s / units.SECONDS_PER_DAY
    budget_flops = (est.tflops_per_gpu * units.TERA * META_2024_H100E * TRAINING_DAYS * units.SECONDS_PER_DAY
                    * (est.ettr or 1.0))
    # C = 6 N D with D = 20 N  ->  N = sqrt(C / 120)
    n_params = math.sqrt(budget_flops / (FLOPS_PER_PARAM_TOKEN * CHINCHILLA_TOKENS_PER_PARAM))
    p = est.parallelism
    computed = (f"Llama 3 405B on 16,384 H100 (best plan tp{p['tp']} pp{p['pp']} cp{p['cp']} dp{p['dp']}): "
                f"{est.time_to_train_days:.0f} days ({est.time_to_train_days_with_failures:.0f} with failures, "
                f"ETTR {est.ettr:.0%}), MFU {est.mfu:.0%}; on 600,000 H100e: {fleet_days:.1f} days; "
                f"600,000 H100e for {TRAINING_DAYS} days train a compute-optimal "
                f"{n_params / 1e12:.1f} T-parameter model on {CHINCHILLA_TOKENS_PER_PARAM * n_params / 1e12:.0f} T tokens")
    ev = est.validation_evidence
    why = ("Training Llama 3 405B is well within Meta's 2024 compute: a few months on one 16k-GPU "
           f"cluster. On the {ev['runs']} published runs of its kind ({ev['basis']}, up to "
           f"{ev['largest_run_gpus']:,} GPUs) the engine's median error is {ev['median_abs_error']:.0%}, "
           f"its worst {ev['max_abs_error']:.0%} and its mean {ev['mean_signed_error']:+.1%}. Failures are "
           "priced as ETTR; restarts for changes of plan or data are not.")
    return ClaimCheck(claim_id=c.id, claim=c.claim, who=c.who, published_by=c.published_by,
                      published_on=c.published_on, needs=c.needs, computed=computed,
                      value=est.time_to_train_days, claimed_value=None, ratio=None, verdict=CONSISTENT,
                      tolerance=None, tolerance_parameter=None, why=why,
                      numbers=(("time_to_train_days", est.time_to_train_days),
                               ("time_to_train_days_with_failures", est.time_to_train_days_with_failures),
                               ("ettr", est.ettr), ("mfu", est.mfu), ("fleet_days", fleet_days),
                               ("compute_optimal_params_90d", n_params)))
