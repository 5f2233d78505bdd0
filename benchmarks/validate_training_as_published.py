"""Accuracy of the training engine on the team's reference runs with their specs exactly as
written (no colossim annotations: no catalog names, no ``flash_attention: false`` / overlap flags
for 2021-22 software).  This is what a run nobody annotated looks like to the engine;
``validate_training.py`` runs the package's annotated copy.  Prints per-run errors and the
statistics.  Without an argument it reads the specs as published that the package keeps beside its
copy (``spec_json_as_published``, the same as ``colossim validate training --as-published``); with
a path, that file (e.g. ``../shared/reference/validation/training-runs.csv``).

Run: .venv/bin/python benchmarks/validate_training_as_published.py [PATH_TO_training-runs.csv]
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from colossim.errors import ColossimError
from colossim.errorstats import Targets, error_stats
from colossim.specs.training import load_spec
from colossim.training.estimate import estimate
from colossim.training.validate import TARGET_MAX_ABS, TARGET_MEAN_SIGNED, TARGET_MEDIAN_ABS, with_run_labels

def main(path: Path) -> None:
    console = Console()
    if not path.exists():
        console.print(f"reference file {path} not found: pass its path")
        raise SystemExit(2)
    table = Table(title=f"Training, specs as published ({path.name})")
    for c in ("run", "published", "predicted", "error", "plan used / failure"):
        table.add_column(c, justify="left" if c in ("run", "plan used / failure") else "right")
    errors, failures = [], 0
    for row in csv.DictReader(path.open(encoding="utf-8")):
        published = float(row["tokens_per_s_per_gpu_measured"])
        try:
            spec = with_run_labels(json.loads(row["spec_json"]), row.get("model_name"), row.get("gpu_type"))
            est = estimate(load_spec(spec))
        except ColossimError as e:
            failures += 1
            table.add_row(row["id"], f"{published:,.1f}", "-", "-", str(e)[:70])
            continue
        err = est.tokens_per_s_per_gpu / published - 1
        errors.append(err)
        p = est.parallelism
        table.add_row(row["id"], f"{published:,.1f}", f"{est.tokens_per_s_per_gpu:,.1f}", f"{err:+.1%}",
                      f"tp{p['tp']} pp{p['pp']} cp{p['cp']} dp{p['dp']} v{p['vpp']} mb{p['micro_batch']} "
                      f"{p['recompute']} z{p['zero']}")
    console.print(table)
    st = error_stats(errors, Targets(TARGET_MEDIAN_ABS, TARGET_MAX_ABS, TARGET_MEAN_SIGNED))
    console.print(f"predicted {st.n} of {st.n + failures}: median |err| {st.median_abs:.1%}, "
                  f"max |err| {st.max_abs:.1%}, mean signed {st.mean_signed:+.1%}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        from colossim.cli.validate import print_training_table, run_training_validation

        results, stats = run_training_validation(as_published=True)
        print_training_table(results, stats, title="Training, specs as published (package copy)")
