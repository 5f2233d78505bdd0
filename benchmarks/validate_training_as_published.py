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

import sys
from pathlib import Path

from colossim.cli.validate import print_training_table, run_training_validation


def main(path: Path | None) -> None:
    if path is not None and not path.exists():
        print(f"reference file {path} not found: pass its path")
        raise SystemExit(2)
    # a file: its rows as written (with their MoE columns, colossim.training.validate.load_runs);
    # none: the package's copy of the specs as published
    results, stats = run_training_validation(as_published=True, runs_file=path)
    failed = sum(r.error is None for r in results)
    title = f"Training, specs as published ({path.name if path else 'package copy'})"
    print_training_table(results, stats, title=title)
    print(f"predicted {len(results) - failed} of {len(results)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
