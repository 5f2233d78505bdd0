"""The claim registry: claims from ``catalog/data/claims.csv``, evaluators keyed by claim id, and the
verdict helpers every evaluator uses.

An evaluator is a function ``(claim: Claim) -> ClaimCheck`` registered with ``@evaluator("id")``.
A claim with no evaluator is reported ``not checkable yet``, naming the engine its ``needs`` column
asks for.  Engines add evaluators from their own ``claims`` module (see
:data:`ENGINE_MODULES`), which :func:`check_all` imports when it exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from colossim.catalog import Parameter
from colossim.catalog.loader import data_path, load_models
from colossim.errors import UnknownNameError

CONSISTENT = "consistent"
INCONSISTENT = "inconsistent"
NOT_CHECKABLE = "not checkable yet"
VERDICTS = (CONSISTENT, INCONSISTENT, NOT_CHECKABLE)

#: engine modules that may register evaluators; imported by :func:`load_engine_evaluators`
ENGINE_MODULES = ("colossim.training.claims", "colossim.inference.claims", "colossim.reliability.claims")
_ENGINE_FOR = {"training": "training engine (colossim.training)",
               "inference": "inference engine (colossim.inference)",
               "reliability": "reliability engine (colossim.reliability)"}


class Claim(BaseModel):
    """A public claim: what was said, by whom, where, and what colossim should compute."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    claim: str
    who: str
    published_by: str
    published_on: str
    kind: str
    needs: str
    what_to_compute: str


@dataclass(frozen=True)
class ClaimCheck:
    """The verdict on one claim.

    ``value`` is what colossim computes for the quantity the claim states (``claimed_value``);
    ``ratio`` = value / claimed_value.  ``numbers`` holds the other figures behind ``computed``.
    ``tolerance`` is the value of the named parameter ``tolerance_parameter`` the verdict used."""

    claim_id: str
    claim: str
    who: str
    published_by: str
    published_on: str
    needs: str
    computed: str
    value: float | None
    claimed_value: float | None
    ratio: float | None
    verdict: str
    tolerance: float | None
    tolerance_parameter: str | None
    why: str
    numbers: tuple[tuple[str, float | None], ...] = field(default=())

    def number(self, name: str) -> float | None:
        for k, v in self.numbers:
            if k == name:
                return v
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "numbers"}
        d["numbers"] = dict(self.numbers)
        return d


Evaluator = Callable[[Claim], ClaimCheck]
_REGISTRY: dict[str, Evaluator] = {}


def evaluator(claim_id: str) -> Callable[[Evaluator], Evaluator]:
    """Register the decorated function as the evaluator of claim ``claim_id`` (one per claim)."""
    def register(fn: Evaluator) -> Evaluator:
        if claim_id in _REGISTRY and _REGISTRY[claim_id] is not fn:
            raise ValueError(f"claim '{claim_id}' already has an evaluator ({_REGISTRY[claim_id].__module__})")
        _REGISTRY[claim_id] = fn
        return fn
    return register


def registered() -> dict[str, Evaluator]:
    return dict(_REGISTRY)


@lru_cache(maxsize=1)
def claims() -> tuple[Claim, ...]:
    """The claims in ``catalog/data/claims.csv``, in file order."""
    return tuple(load_models(data_path("claims.csv"), Claim, required=("claim", "who", "published_by")))


def claim(claim_id: str) -> Claim:
    for c in claims():
        if c.id == claim_id:
            return c
    raise UnknownNameError("claim", claim_id, [c.id for c in claims()])


@lru_cache(maxsize=1)
def _parameters() -> dict[str, Parameter]:
    return {p.id: p for p in load_models(data_path("fleet_parameters.csv"), Parameter)}


def tolerance(pid: str) -> float:
    """A claim tolerance from ``fleet_parameters.csv``."""
    params = _parameters()
    if pid not in params:
        raise UnknownNameError("parameter", pid, params)
    return params[pid].number


def load_engine_evaluators() -> None:
    """Import each engine's ``claims`` module that exists, so its ``@evaluator`` s register."""
    for name in ENGINE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name not in (name, name.rsplit(".", 1)[0]):
                raise


# --- building checks --------------------------------------------------------------------------
def check(c: Claim, *, computed: str, value: float | None, claimed: float | None, verdict: str,
          why: str, tolerance_parameter: str | None = None,
          numbers: dict[str, float | None] | None = None) -> ClaimCheck:
    """A :class:`ClaimCheck` for claim ``c`` (ratio and tolerance filled in)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    ratio = value / claimed if value is not None and claimed else None
    tol = tolerance(tolerance_parameter) if tolerance_parameter else None
    return ClaimCheck(c.id, c.claim, c.who, c.published_by, c.published_on, c.needs, computed, value,
                      claimed, ratio, verdict, tol, tolerance_parameter, why,
                      tuple((numbers or {}).items()))


def not_checkable(c: Claim, why: str | None = None, computed: str = "-") -> ClaimCheck:
    engine = _ENGINE_FOR.get(c.needs, f"'{c.needs}' data")
    return check(c, computed=computed, value=None, claimed=None, verdict=NOT_CHECKABLE,
                 why=why or f"needs the {engine}, which is not built yet")


def within(value: float, claimed: float, tol: float) -> bool:
    """``value`` within the relative tolerance ``tol`` of ``claimed``."""
    return abs(value / claimed - 1) <= tol


def at_least(value: float, claimed: float, tol: float) -> bool:
    """A lower-bound claim ("at least", "more than") holds for ``value`` (with tolerance)."""
    return value >= claimed * (1 - tol)


def in_range(value: float, low: float, high: float, tol: float) -> bool:
    return low * (1 - tol) <= value <= high * (1 + tol)


def within_factor(value: float, claimed: float, factor: float) -> bool:
    """Within ``factor`` either way (order-of-magnitude claims)."""
    return claimed / factor <= value <= claimed * factor


def verdict(ok: bool) -> str:
    return CONSISTENT if ok else INCONSISTENT
