"""The catalog: accelerators, systems and named parameters, loaded from the package's data files.

Every row has a source; a malformed file raises :class:`colossim.errors.CatalogError` naming the
file, the line and the field, and nothing from it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from colossim.catalog.loader import data_path, label_index, label_key, load_models
from colossim.catalog.schema import Accelerator, Alternative, Parameter, System
from colossim.errors import CatalogError, UnknownNameError


@dataclass(frozen=True)
class Catalog:
    accelerators: dict[str, Accelerator]
    systems: dict[str, System]
    system_aliases: dict[str, str]
    parameters: dict[str, Parameter]
    alternatives: tuple[Alternative, ...]

    def accelerator(self, chip: str) -> Accelerator:
        """The chip with id ``chip`` (case-insensitive), or whose id, name or alias it spells with
        other spacing or punctuation ("H100", "A100 80GB", "NVIDIA H100 SXM5 80GB"), with or without its
        vendor in front ("NVIDIA H100", "AMD MI300X")."""
        key = chip.strip().lower()
        if key in self.accelerators:
            return self.accelerators[key]
        found, near = self._by_label(chip, self.accelerator_labels)
        if found is None:
            raise UnknownNameError("chip", chip, self.accelerators, near=near)
        return self.accelerators[found]

    @cached_property
    def accelerator_labels(self) -> dict[str, str]:
        """Chip ids by the :func:`label_key` of each chip's id, name and aliases."""
        return label_index(self.accelerators.values())

    def system(self, name: str) -> System:
        """The system with id or alias ``name`` (case-insensitive), or whose id, name or alias it
        spells with other spacing or punctuation ("DGX H100", "GB200 NVL72"), with or without its
        vendor in front ("NVIDIA DGX H100")."""
        key = name.strip().lower()
        key = self.system_aliases.get(key, key)
        if key in self.systems:
            return self.systems[key]
        found, _ = self._by_label(name, self.system_labels)
        if found is None:
            raise UnknownNameError("system", name, list(self.systems) + list(self.system_aliases))
        return self.systems[found]

    @cached_property
    def system_labels(self) -> dict[str, str]:
        """System ids by the :func:`label_key` of each system's id, name and aliases."""
        return label_index(self.systems.values())

    def _by_label(self, text: str, labels: dict[str, str]) -> tuple[str | None, str | None]:
        """The id ``labels`` (a :func:`label_index`) has for ``text``, or failing that for ``text``
        without a vendor's name in front ("NVIDIA H100", "AMD MI300X"), and that shorter text (None
        when ``text`` starts with no vendor's name)."""
        found = labels.get(label_key(text))
        if found is not None:
            return found, None
        vendor = next((v for v in {a.vendor for a in self.accelerators.values()}
                       if text.strip().lower().startswith(v.lower())), "")
        near = text.strip()[len(vendor):].strip() if vendor else None
        return (labels.get(label_key(near)) if near else None), near

    def parameter(self, pid: str) -> float:
        if pid not in self.parameters:
            raise UnknownNameError("parameter", pid, self.parameters)
        return self.parameters[pid].number

    def alternatives_for(self, chip: str) -> list[Alternative]:
        return [a for a in self.alternatives if a.chip == chip]


def build_catalog() -> Catalog:
    """Load and cross-check every catalog file (no caching; see :func:`load_catalog`)."""
    accs = {a.id: a for a in load_models(data_path("accelerators.csv"), Accelerator)}
    systems = load_models(data_path("systems.csv"), System)
    aliases: dict[str, str] = {}
    for line, s in enumerate(systems, start=2):
        if s.accelerator not in accs:
            raise CatalogError("systems.csv", line, "accelerator", f"unknown chip {s.accelerator!r}")
        for a in s.alias_list:
            aliases[a] = s.id
    params = {p.id: p for p in load_models(data_path("parameters.csv"), Parameter)}
    alts = load_models(data_path("accelerator_alternatives.csv"), Alternative)
    for line, a in enumerate(alts, start=2):
        if a.chip not in accs:
            raise CatalogError("accelerator_alternatives.csv", line, "chip", f"unknown chip {a.chip!r}")
    return Catalog(accs, {s.id: s for s in systems}, aliases, params, tuple(alts))


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The packaged catalog, loaded once per process."""
    return build_catalog()


__all__ = ["Accelerator", "Catalog", "Parameter", "System", "build_catalog", "load_catalog"]
