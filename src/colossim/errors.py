"""Errors raised at the boundary of colossim.

Every error a user can cause is a :class:`ColossimError`: it carries the offending field, the value
and what is allowed, and its ``str`` is one line.  The CLI prints that line and exits with code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ColossimError(Exception):
    """A user-facing error: one line naming the field, the value and what is allowed."""

    def __init__(self, message: str, *, field: str | None = None, value: object = None,
                 allowed: Iterable[str] | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = list(allowed) if allowed is not None else None
        super().__init__(" ".join(message.split()))


class UnknownNameError(ColossimError):
    """An id (chip, system, organisation, metric, model...) that is not in the catalog."""

    def __init__(self, kind: str, name: str, valid: Iterable[str], near: str | None = None) -> None:
        """``near``: the text to find close names to, when not ``name`` itself (a chip written
        with its vendor in front is matched without it)."""
        valid = sorted(set(valid))
        close = closest(near or name, valid)
        hint = f"did you mean {', '.join(close)}?" if close else f"valid: {', '.join(valid[:12])}" + (
            ", ..." if len(valid) > 12 else "")
        super().__init__(f"unknown {kind} '{name}': {hint}", field=kind, value=name, allowed=valid)


class CatalogError(ColossimError):
    """A malformed data file: names the file, the line and the field."""

    def __init__(self, file: str, line: int, field: str, problem: str) -> None:
        self.file = file
        self.line = line
        super().__init__(f"{file}:{line}: field '{field}': {problem}", field=field)


class SpecError(ColossimError):
    """A spec (training, serving, reliability) that is invalid."""


def closest(name: str, valid: Iterable[str], n: int = 3) -> list[str]:
    """The closest valid names to ``name`` (case-insensitive), best first: those that begin with
    it ("a100" -> a100-40gb-sxm, a100-80gb-sxm), then difflib's, then those sharing its first
    three characters."""
    valid = list(valid)
    lower = {v.lower(): v for v in valid}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.5)
    prefix = [v for v in valid if v.lower().startswith(name.lower()[:3])] if len(name) >= 3 else []
    starts = sorted(v for v in valid if name and v.lower().startswith(name.lower()))
    out = starts[:n] + [lower[h] for h in hits if lower[h] not in starts][:max(n - len(starts), 0)]
    for p in prefix:
        if p not in out and len(out) < n:
            out.append(p)
    return out
