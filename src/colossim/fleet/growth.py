"""Growth of a quarterly H100e series: quarter on quarter, year on year, CAGR and doubling time.

For values v(t) at quarters t (consecutive quarters differ by 1):

- quarter on quarter: ``v(t) / v(t-1) - 1``; year on year: ``v(t) / v(t-4) - 1`` (None when the
  earlier quarter is missing or zero);
- CAGR from the first to the last point, ``years = (t_last - t_first) / 4``:
  ``(v_last / v_first) ** (1 / years) - 1``;
- doubling time in years: ``ln 2 / ln(1 + CAGR)`` (infinite for a flat series, None when it shrinks).

A series that doubles every year has CAGR 100 % and a doubling time of 1 year; a constant series has
zero growth everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from colossim.errors import ColossimError
from colossim.fleet.accounting import Series
from colossim.fleet.dates import QUARTERS_PER_YEAR, parse_date_arg, quarter_number


@dataclass(frozen=True)
class GrowthPoint:
    quarter: str
    h100e: float
    qoq: float | None
    yoy: float | None


@dataclass(frozen=True)
class Growth:
    """Growth of a series; rates are fractions (1.0 = +100 %)."""

    points: tuple[GrowthPoint, ...]
    first_quarter: str | None
    last_quarter: str | None
    years: float
    cagr: float | None
    doubling_time_years: float | None


def _rate(now: float, before: float | None) -> float | None:
    if before is None or before <= 0:
        return None
    return now / before - 1


def cagr(first: float, last: float, years: float) -> float | None:
    """Compound annual growth rate from ``first`` to ``last`` over ``years``; None when undefined
    (no time elapsed, or a start at zero)."""
    if years <= 0 or first <= 0 or last < 0:
        return None
    return (last / first) ** (1 / years) - 1


def doubling_time(rate: float | None) -> float | None:
    """Years to double at annual growth ``rate``: ``ln 2 / ln(1 + rate)``; ``inf`` when flat, None
    when shrinking or undefined."""
    if rate is None or rate < 0:
        return None
    if rate == 0:
        return math.inf
    return math.log(2) / math.log1p(rate)


def growth(data: Series | Sequence[tuple[str, float]]) -> Growth:
    """Growth of a series of ``(quarter, H100e)`` (or a :class:`Series`), in quarter order."""
    # quarters as the records write them ("Q1 2024" is 2024-Q1)
    pairs = [(parse_date_arg(q, "quarter").text, v)
             for q, v in (data.pairs() if isinstance(data, Series) else list(data))]
    for q, v in pairs:
        if v < 0 or math.isnan(v):
            raise ColossimError(f"H100e must be >= 0, got {v} at {q}", field="h100e", value=v)
    pairs = sorted(pairs, key=lambda qv: quarter_number(qv[0]))
    by_n = {quarter_number(q): v for q, v in pairs}
    points = tuple(
        GrowthPoint(q, v, _rate(v, by_n.get(quarter_number(q) - 1)),
                    _rate(v, by_n.get(quarter_number(q) - QUARTERS_PER_YEAR)))
        for q, v in pairs)
    if not pairs:
        return Growth((), None, None, 0.0, None, None)
    (q0, v0), (q1, v1) = pairs[0], pairs[-1]
    years = (quarter_number(q1) - quarter_number(q0)) / QUARTERS_PER_YEAR
    rate = cagr(v0, v1, years)
    return Growth(points, q0, q1, years, rate, doubling_time(rate))
