"""Claim checks: every public claim in ``catalog/data/claims.csv``, each with a verdict.

Each claim has an evaluator, a function registered by claim id::

    from colossim.fleet.claims import Claim, ClaimCheck, check, evaluator, verdict, within, tolerance

    @evaluator("meta-llama3")
    def _llama3(c: Claim) -> ClaimCheck:
        days = ...  # computed by the training engine
        return check(c, computed=f"{days:.0f} days on 16,384 H100", value=days, claimed=...,
                     verdict=verdict(within(days, ..., tolerance("claim_tolerance_count"))),
                     tolerance_parameter="claim_tolerance_count", why="...")

The verdict is ``consistent`` (within the tolerance a named parameter in ``fleet_parameters.csv``
sets), ``inconsistent``, or ``not checkable yet`` (with why).  The claims that need only the catalog
and the fleet data are evaluated here (:mod:`.tesla`, :mod:`.meta`, :mod:`.xai`, :mod:`.hardware`).
Claims that need an engine show ``not checkable yet`` until that engine registers an evaluator.

How an engine adds its evaluators: put them in ``colossim/<engine>/claims.py`` (``training``,
``inference`` or ``reliability``; see :data:`registry.ENGINE_MODULES`), decorated with
``@evaluator("claim-id")``.  :func:`check_all` imports those modules when they exist, so nothing else
needs changing.  A claim id may have one evaluator only (a second raises ``ValueError``).
"""

from __future__ import annotations

from colossim.errors import ColossimError
from colossim.fleet.claims import hardware, meta, tesla, xai  # noqa: F401  (register the evaluators)
from colossim.fleet.claims.registry import (CONSISTENT, ENGINE_MODULES, INCONSISTENT, NOT_CHECKABLE, VERDICTS,
                                            Claim, ClaimCheck, at_least, check, claim, claims, evaluator,
                                            in_range, load_engine_evaluators, not_checkable, registered,
                                            tolerance, verdict, within, within_factor)


def check_claim(claim_id: str) -> ClaimCheck:
    """The verdict on one claim (``not checkable yet`` when nothing evaluates it)."""
    load_engine_evaluators()
    c = claim(claim_id)
    fn = registered().get(c.id)
    if fn is None:
        return not_checkable(c)
    try:
        return fn(c)
    except ColossimError as e:
        return not_checkable(c, f"could not be evaluated: {e}")


def check_all() -> tuple[ClaimCheck, ...]:
    """Verdicts on every claim, in the order of ``claims.csv``."""
    load_engine_evaluators()
    return tuple(check_claim(c.id) for c in claims())


__all__ = ["CONSISTENT", "ENGINE_MODULES", "INCONSISTENT", "NOT_CHECKABLE", "VERDICTS", "Claim", "ClaimCheck",
           "at_least", "check", "check_all", "check_claim", "claim", "claims", "evaluator", "in_range",
           "not_checkable", "tolerance", "verdict", "within", "within_factor"]
