"""Dates of fleet records: a month (``2024-09``), a quarter (``2024-Q3``) or a half (``2024-H1``).

A date is a :class:`Period` of whole months, ``start`` to ``end`` inclusive, each a month index
``year * 12 + (month - 1)``.  A record dated ``2024-Q1`` is "at or before" a quarter or month whose
last month is March 2024 or later: comparisons use the period's *end* (the source's figure holds by
then).  Time series are quarterly; a quarter is written ``YYYY-Qn``.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from colossim.errors import ColossimError

MONTHS_PER_QUARTER = 3
QUARTERS_PER_YEAR = 4
MONTHS_PER_YEAR = 12
DATE_FORMATS = "YYYY-MM, YYYY-Qn (n = 1-4) or YYYY-Hn (n = 1-2)"

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_HALF = re.compile(r"^(\d{4})-[Hh]([12])$")


@dataclass(frozen=True, order=True)
class Period:
    """Months ``start`` .. ``end`` (inclusive, as month indices) and the text they came from."""

    end: int
    start: int
    text: str

    @property
    def quarter(self) -> str:
        """The quarter that contains the period's last month."""
        return quarter_label(self.end)


def month_index(year: int, month: int) -> int:
    return year * MONTHS_PER_YEAR + (month - 1)


def parse_period(text: str, formats: str = DATE_FORMATS) -> Period:
    """Parse ``YYYY-MM``, ``YYYY-Qn`` or ``YYYY-Hn``; raises ``ValueError`` naming ``formats``."""
    t = text.strip()
    if m := _MONTH.match(t):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= MONTHS_PER_YEAR:
            raise ValueError(f"month {month} is not 01-12 in '{text}'")
        i = month_index(year, month)
        return Period(i, i, t)
    if m := _QUARTER.match(t):
        year, q = int(m[1]), int(m[2])
        start = month_index(year, (q - 1) * MONTHS_PER_QUARTER + 1)
        return Period(start + MONTHS_PER_QUARTER - 1, start, f"{year}-Q{q}")
    if m := _HALF.match(t):
        year, h = int(m[1]), int(m[2])
        half = MONTHS_PER_YEAR // 2
        start = month_index(year, (h - 1) * half + 1)
        return Period(start + half - 1, start, f"{year}-H{h}")
    raise ValueError(f"'{text}' is not a date: use {formats}")


#: The other ways a user writes a date on the command line, read as the record formats:
#: ``2024Q3`` / ``2024 q3`` / ``Q3 2024`` (a quarter or half), ``2024-09-30`` (its month).
USER_DATE_FORMATS = f"{DATE_FORMATS} (or YYYYQn, Qn YYYY, YYYY-MM-DD)"
_QUARTER_OR_HALF_LOOSE = re.compile(r"^(\d{4})\s*-?\s*([QqHh])([1-4])$")
_QUARTER_OR_HALF_FIRST = re.compile(r"^([QqHh])([1-4])\s*[-/ ]?\s*(\d{4})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def _user_form(text: str) -> str:
    """``text`` in a record format where it is one of the looser forms above, else as given."""
    t = text.strip()
    if m := _QUARTER_OR_HALF_LOOSE.match(t):
        return f"{m[1]}-{m[2].upper()}{m[3]}"
    if m := _QUARTER_OR_HALF_FIRST.match(t):
        return f"{m[3]}-{m[1].upper()}{m[2]}"
    if m := _DAY.match(t):
        try:
            datetime.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as e:
            raise ValueError(f"'{text}' is not a date: {e}") from None
        return f"{m[1]}-{m[2]}"
    return t


def parse_date_arg(text: str, field: str = "date") -> Period:
    """A date given by a user: a record format, or ``2024Q3``, ``Q3 2024``, ``2024-09-30`` (its month);
    :class:`ColossimError` (one line, formats listed) when malformed."""
    try:
        return parse_period(_user_form(text), USER_DATE_FORMATS)
    except ValueError as e:
        raise ColossimError(str(e), field=field, value=text, allowed=[USER_DATE_FORMATS]) from None


def quarter_label(month: int) -> str:
    """``YYYY-Qn`` of the quarter containing month index ``month``."""
    year, m0 = divmod(month, MONTHS_PER_YEAR)
    return f"{year}-Q{m0 // MONTHS_PER_QUARTER + 1}"


def quarter_end(label: str) -> int:
    """Month index of the last month of quarter ``label`` (``YYYY-Qn``)."""
    return parse_period(label).end


def quarter_number(label: str) -> int:
    """Quarters since year 0: consecutive quarters differ by one."""
    return quarter_end(label) // MONTHS_PER_QUARTER


def quarters_between(first: str, last: str) -> list[str]:
    """Every quarter from ``first`` to ``last`` inclusive."""
    a, b = quarter_end(first), quarter_end(last)
    return [quarter_label(m) for m in range(a, b + 1, MONTHS_PER_QUARTER)]
