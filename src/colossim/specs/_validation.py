"""Turning pydantic validation failures of user specs into one-line :class:`SpecError`s that name
the field (with its dotted path), the value and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Annotated, Any, TypeVar, get_args

from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo

from colossim.errors import SpecError

M = TypeVar("M", bound=BaseModel)

#: Other names a spec may give a choice, by enum class name: the names frameworks and configs use
#: (PyTorch / Hugging Face dtypes ``bfloat16`` / ``float16``; Blackwell's block-scaled ``mxfp8``,
#: which runs at the FP8 tensor-core rate, Transformer Engine's MXFP8 recipe).
ENUM_ALIASES: dict[str, dict[str, str]] = {
    "Precision": {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "mxfp8": "fp8", "float8": "fp8"},
    "NumberFormat": {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "mxfp8": "fp8", "float8": "fp8",
                     "nvfp4": "fp4", "mxfp4": "fp4"},
}


#: Largest value an integer spec field may take (2^31 - 1).  Because: every count, width, length
#: and parallel degree of a real system is orders of magnitude below it, while the search lists
#: divisors up to a field's square root and the engine multiplies several fields in int64 arrays;
#: a larger value (a typo, 1e30 layers) would hang the search or overflow, so it is refused.
MAX_SPEC_INTEGER = 2**31 - 1

#: An integer spec field, at most :data:`MAX_SPEC_INTEGER`.
SpecInt = Annotated[int, Field(le=MAX_SPEC_INTEGER)]


class SpecChoice(str, Enum):
    """A spec field's named choices, read whatever their case and surrounding spaces (``BF16`` is
    ``bf16``) and under the other names of :data:`ENUM_ALIASES`."""

    @classmethod
    def _missing_(cls, value: object) -> SpecChoice | None:
        if not isinstance(value, str):
            return None
        key = value.strip().lower()
        key = ENUM_ALIASES.get(cls.__name__, {}).get(key, key)
        return next((m for m in cls if m.value == key), None)


def check_known_fields(data: Mapping[str, Any], allowed: list[str], prefix: str) -> None:
    """Raise :class:`SpecError` for the first key of ``data`` that is not in ``allowed``."""
    for key in data:
        if key not in allowed:
            path = f"{prefix}.{key}" if prefix else str(key)
            raise SpecError(f"unknown field '{path}': allowed: {', '.join(allowed)}",
                            field=path, value=data[key], allowed=allowed)


def _takes(annotation: Any, kinds: tuple[type, ...]) -> bool:
    """Whether a field's type is one of ``kinds``, or a union or annotation of one."""
    if annotation in kinds:
        return True
    return any(_takes(a, kinds) for a in get_args(annotation) if not isinstance(a, FieldInfo))


def _field_names(model: type[BaseModel]) -> dict[str, str]:
    """Every name a spec may give each field of ``model`` -- its own, then its other names
    (``validation_alias``) -- mapped to the field's name."""
    names: dict[str, str] = {}
    for name, f in model.model_fields.items():
        others = getattr(f.validation_alias, "choices", [f.validation_alias]) if f.validation_alias else []
        names.update({n: name for n in dict.fromkeys([name, *map(str, others)]) if n not in names})
    return names


def _check_no_bool_numbers(model: type[BaseModel], names: Mapping[str, str], data: Mapping[str, Any],
                           prefix: str) -> None:
    """Refuse true/false given for a number (YAML's ``yes`` / ``on`` too), which pydantic reads as 1
    or 0: ``tp: true`` would be tp 1, ``layers: true`` a one-layer model."""
    for key, value in data.items():
        field = model.model_fields.get(names.get(str(key), ""))
        if (isinstance(value, bool) and field is not None and _takes(field.annotation, (int, float))
                and not _takes(field.annotation, (bool, Any))):
            path = f"{prefix}.{key}" if prefix else str(key)
            raise SpecError(f"{path} = {str(value).lower()}: allowed: a number, not true/false", field=path,
                            value=value)


def validate_model(model: type[M], data: Mapping[str, Any], prefix: str) -> M:
    """``model.model_validate(data)`` with unknown fields and bad values as one-line SpecErrors."""
    if not isinstance(data, Mapping):
        raise SpecError(f"'{prefix}' must be a mapping of fields, got {data!r}", field=prefix,
                        value=data)
    names = _field_names(model)
    # the fields' own names first, then the other names, as the unknown-field error lists them
    check_known_fields(data, [*model.model_fields, *(n for n in names if n not in model.model_fields)], prefix)
    for field in model.model_fields:  # a field and its other name both written
        given = [n for n, f in names.items() if f == field and n in data]
        if len(given) > 1:
            path = f"{prefix}.{given[0]}" if prefix else given[0]
            raise SpecError(f"{path}: {' and '.join(given)} name the same field: allowed: one of them",
                            field=path, value=data[given[0]], allowed=given)
    _check_no_bool_numbers(model, names, data, prefix)
    try:
        return model.model_validate(dict(data))
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
        path = ".".join(p for p in (prefix, loc) if p)
        value = data.get(str(err["loc"][0])) if err["loc"] else None
        msg = str(err["msg"]).removeprefix("Value error, ")
        shown = f" (got {value!r})" if value is not None else ""
        raise SpecError(f"{path or model.__name__}: {msg}{shown}", field=path,
                        value=value) from None
