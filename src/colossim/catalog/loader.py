"""Reading catalog data files: CSV rows validated by a pydantic model, with errors naming the file,
the line and the field.  A file with any bad row loads nothing."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from colossim.errors import CatalogError

M = TypeVar("M", bound=BaseModel)


def data_path(name: str) -> Path:
    """Path of a data file shipped inside the package (``colossim/catalog/data/NAME``)."""
    return Path(str(resources.files("colossim.catalog").joinpath("data", name)))


def read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with their 1-based line numbers (the header is line 1)."""
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = []
            for row in reader:
                if None in row:
                    raise CatalogError(path.name, reader.line_num, "(row)",
                                       f"{len(row[None])} more values than the header's columns")
                rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items()}))
            return rows
    except FileNotFoundError:
        raise CatalogError(str(path), 0, "(file)", "file not found") from None
    except UnicodeDecodeError as e:
        raise CatalogError(path.name, 0, "(file)", f"not UTF-8 text ({e.reason})") from None


def split_aliases(text: str | None) -> list[str]:
    """The ``;``-separated aliases of a catalog row's ``aliases`` column."""
    return [a.strip() for a in (text or "").split(";") if a.strip()]


def label_key(text: str) -> str:
    """A free-text name reduced to lower-case letters and digits ("A100 80GB" -> "a10080gb"), so
    that labels written with other spacing, case or punctuation still match a catalog entry."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def label_index(rows) -> dict[str, str]:
    """Row ids by the :func:`label_key` of each row's ``id``, ``name`` and ``alias_list`` (the first
    row to claim a label keeps it)."""
    index: dict[str, str] = {}
    for row in rows:
        for text in (row.id, row.name, *row.alias_list):
            index.setdefault(label_key(text), row.id)
    return index


def _blank_to_none(row: dict[str, str]) -> dict[str, str | None]:
    return {k: (v if v != "" else None) for k, v in row.items()}


def load_models(path: Path, model: type[M], required: Iterable[str] = ("source",),
                unique_by: tuple[str, ...] = ("id",)) -> list[M]:
    """Validate every row of ``path`` as ``model``.  Raises :class:`CatalogError` on the first bad
    row, naming the file, the line and the field; nothing is returned in that case.  Rows must be
    unique on the ``unique_by`` columns (when the model has them)."""
    out: list[M] = []
    required = tuple(required)
    seen: set[tuple] = set()
    for line, row in read_rows(path):
        for field in required:
            if not row.get(field):
                raise CatalogError(path.name, line, field, "required value is missing")
        try:
            out.append(model.model_validate(_blank_to_none(row)))
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "(row)"
            value = row.get(field, "")
            raise CatalogError(path.name, line, field, f"{err['msg']} (got {value!r})") from None
        if unique_by and all(c in row for c in unique_by):
            key = tuple(row[c] for c in unique_by)
            if key in seen:
                raise CatalogError(path.name, line, "+".join(unique_by), f"duplicate {key!r}")
            seen.add(key)
    return out
