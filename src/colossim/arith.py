"""Integer helpers shared by the plan searches and the spec checks."""

from __future__ import annotations

import math


def divisors(n: int) -> list[int]:
    """Every positive divisor of ``n`` in increasing order (none for n < 1), in O(sqrt n) steps: a
    spec's count, layers or heads may be any integer a user types, so a loop up to n could hang."""
    n = int(n)
    if n < 1:
        return []
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


#: Divisors an error message lists before it elides the rest with "...".
DIVISORS_LISTED = 15


def divisors_text(n: int) -> str:
    """The divisors of ``n`` as an error message lists them: all of them when there are at most
    ``DIVISORS_LISTED`` + 1, else the first ``DIVISORS_LISTED`` and "..."."""
    ds = divisors(n)
    shown = ds if len(ds) <= DIVISORS_LISTED + 1 else [*ds[:DIVISORS_LISTED], "..."]
    return ", ".join(map(str, shown))


__all__ = ["DIVISORS_LISTED", "divisors", "divisors_text"]
