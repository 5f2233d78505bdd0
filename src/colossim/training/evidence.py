"""How far the engine has been from published measurements on runs like an estimate's.

Every training estimate carries its *validation evidence*: the published measured runs of the
validation (the reference set, ``validation/training_runs.csv``, and the other published steps,
``validation/training_steps_extra.csv``) on the same chip family and software stack, with the
median, worst and mean signed error the engine makes on them, and the ways the estimate reaches
past them (another part of the family, a mixture-of-experts model, fp8, more GPUs than any of them,
a chip no published run covers). A figure for 100,000 GPUs of a chip nobody has published a run on
is a projection, and the estimate says so next to the number.

The grouped errors live in ``validation/training_evidence.csv`` (one row per chip family and stack,
plus one per family over every stack, :data:`ANY_STACK`), so that an estimate does not run the
validation. ``benchmarks/validate_training.py --write-evidence`` regenerates the file from the
validation; a test holds it equal to the live validation, so it cannot go stale.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from colossim import units
from colossim.catalog.loader import data_path, load_models
from colossim.errors import CatalogError
from colossim.errorstats import chip_family, error_stats

#: The package file of grouped errors, under ``catalog/data``.
EVIDENCE_FILE = "validation/training_evidence.csv"

#: ``software`` of the row that groups every run of a chip family, whatever its stack.
ANY_STACK = "*"

#: Where the grouped errors come from (each row's ``source``).
EVIDENCE_SOURCE = ("colossim's training validation: validation/training_runs.csv (the team's reference "
                   "set) and validation/training_steps_extra.csv (other published steps), each run's "
                   "source in its row; regenerate with benchmarks/validate_training.py --write-evidence")

#: Decimal places of the errors in the file.
ERROR_DECIMALS = 4


class EvidenceRow(BaseModel):
    """The validation's runs on one chip family and software stack (or every stack,
    :data:`ANY_STACK`), and the engine's error on them (predicted / published tokens/s/GPU - 1)."""

    model_config = ConfigDict(frozen=True)
    chip_family: str
    software: str
    runs: int
    moe_runs: int
    fp8_runs: int
    largest_run_gpus: int
    largest_batch_tokens: int
    """The largest global batch of the runs, in tokens (sequences x sequence length)."""
    chips: str
    """The catalog chip ids the runs ran on, ";"-separated (a family holds several parts)."""
    median_abs_error: float
    max_abs_error: float
    mean_signed_error: float
    run_ids: str
    source: str


@lru_cache(maxsize=256)
def _resolved_spec(spec_json: str):
    """A validation run's spec as :func:`colossim.specs.training.load_spec` resolves it, once per
    spec text (the grouping asks for its stack and its batch)."""
    from colossim.specs.training import load_spec

    return load_spec(json.loads(spec_json))


def run_software(run) -> str:
    """The software stack a validation run's spec resolves to (the one its estimate runs on)."""
    return _resolved_spec(run.spec_json).training.software


def run_batch_tokens(run) -> int:
    """A validation run's global batch in tokens, as its spec resolves it (sequences x length)."""
    spec = _resolved_spec(run.spec_json)
    return int(spec.training.global_batch) * int(spec.model.seq_len)


def run_precision(run) -> str:
    """The training precision a validation run's spec asks for (bf16 unless it says)."""
    return str((run.spec.get("training") or {}).get("precision") or "bf16")


def evidence_rows(results: Iterable, software_of: Callable = run_software,
                  batch_tokens_of: Callable = run_batch_tokens) -> list[EvidenceRow]:
    """Grouped errors of validation results (:class:`colossim.training.validate.RunResult`): one row
    per chip family and stack, one per family over every stack; runs without a prediction are
    left out.  Sorted by family, then stack (:data:`ANY_STACK` first)."""
    groups: dict[tuple[str, str], list] = {}
    for r in results:
        if r.error is None:
            continue
        fam = chip_family(r.run.chip)
        for key in ((fam, software_of(r.run)), (fam, ANY_STACK)):
            groups.setdefault(key, []).append(r)
    rows = []
    for (fam, stack), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != ANY_STACK, kv[0][1])):
        st = error_stats(r.error for r in rs)
        rows.append(EvidenceRow(
            chip_family=fam, software=stack, runs=st.n, moe_runs=sum(r.run.is_moe for r in rs),
            fp8_runs=sum(run_precision(r.run) == "fp8" for r in rs),
            largest_run_gpus=max(r.run.num_gpus for r in rs),
            largest_batch_tokens=max(batch_tokens_of(r.run) for r in rs),
            chips=";".join(sorted({r.run.chip for r in rs})),
            median_abs_error=round(st.median_abs, ERROR_DECIMALS), max_abs_error=round(st.max_abs, ERROR_DECIMALS),
            mean_signed_error=round(st.mean_signed, ERROR_DECIMALS),
            run_ids=";".join(sorted(r.run.id for r in rs)), source=EVIDENCE_SOURCE))
    return rows


def evidence_csv(rows: Iterable[EvidenceRow]) -> str:
    """The rows as the text of :data:`EVIDENCE_FILE`."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(EvidenceRow.model_fields), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r.model_dump())
    return out.getvalue()


def write_evidence(rows: Iterable[EvidenceRow], path: str | Path | None = None) -> Path:
    """Write the rows whole to ``path`` (default: the package's :data:`EVIDENCE_FILE`)."""
    from colossim.outfiles import write_text_whole

    target = Path(path) if path is not None else data_path(EVIDENCE_FILE)
    write_text_whole(target, evidence_csv(rows), "evidence")
    evidence_table.cache_clear()
    return target


@lru_cache(maxsize=1)
def evidence_table() -> dict[tuple[str, str], EvidenceRow]:
    """The package's grouped errors by (chip family, stack); empty while the file is missing or
    written for other columns, so that the validation that rewrites it still runs: the evidence
    is advisory and never fails an estimate (the test on the file fails meanwhile)."""
    path = data_path(EVIDENCE_FILE)
    try:
        return {(r.chip_family, r.software): r for r in load_models(path, EvidenceRow)}
    except (OSError, CatalogError):
        return {}


def validation_evidence(chip: str, software: str, gpus: int, precision: str, moe: bool,
                        custom_profile: bool = False, batch_tokens: int | None = None) -> dict:
    """What the validation says about an estimate of ``gpus`` x ``chip`` on ``software`` (a global
    batch of ``batch_tokens`` when given): the runs it rests on (same chip family and stack, else the
    family over every stack), the engine's error on them, and caveats where the estimate reaches
    past them.  ``runs`` 0 and ``basis`` None where no published run covers the chip."""
    fam = chip_family(chip)
    table = evidence_table()
    row, basis, caveats = table.get((fam, software)), f"{fam} on {software}", []
    if row is None:
        row, basis = table.get((fam, ANY_STACK)), f"{fam}, any software stack"
        if row is not None:
            caveats.append(f"no published run on {software} is in the validation; the errors are "
                           f"those of every {fam} run")
    if row is None:
        return {"basis": None, "runs": 0, "caveats": [
            f"no published measured run on {chip} is in the validation: the estimate rests on the "
            "datasheet and on efficiencies not measured in training on this chip"]}
    chips = row.chips.split(";")
    if chip not in chips:
        caveats.append(f"these runs ran on {', '.join(chips)}, not on {chip}")
    if moe and row.moe_runs == 0:
        caveats.append("none of these runs trains a mixture-of-experts model")
    if precision == "fp8" and row.fp8_runs == 0:
        caveats.append("none of these runs trains in fp8")
    if gpus > row.largest_run_gpus:
        caveats.append(f"{gpus:,} GPUs is more than the largest of these runs ({row.largest_run_gpus:,})")
    if batch_tokens is not None and batch_tokens > row.largest_batch_tokens:
        mega, times = units.MEGA, batch_tokens / row.largest_batch_tokens
        caveats.append(f"a batch of {batch_tokens / mega:,.1f}M tokens is {times:,.1f}x the largest of these "
                       f"runs' ({row.largest_batch_tokens / mega:,.1f}M); the time to train counts tokens, not "
                       "whether a batch this large trains as well")
    if custom_profile:
        caveats.append("the errors are those of the default calibration profile, not the one given")
    return {"basis": basis, "runs": row.runs, "median_abs_error": row.median_abs_error,
            "max_abs_error": row.max_abs_error, "mean_signed_error": row.mean_signed_error,
            "largest_run_gpus": row.largest_run_gpus, "largest_batch_tokens": row.largest_batch_tokens,
            "run_ids": row.run_ids.split(";"),
            "caveats": caveats}


__all__ = ["ANY_STACK", "EVIDENCE_FILE", "EVIDENCE_SOURCE", "EvidenceRow", "evidence_csv", "evidence_rows",
           "evidence_table", "run_precision", "run_software", "validation_evidence", "write_evidence"]
