"""Accuracy of the training engine on the published runs: prints the per-run table and the error
statistics by group, then the published steps outside the reference set (apart, outside the
targets).  With --runs FILE, the runs of that CSV file instead (the team's reference format, each
spec as written).  With --write-evidence, also rewrites the package's grouped errors by chip family
and software stack (catalog/data/validation/training_evidence.csv), the validation evidence every
training estimate carries (colossim.training.evidence); a test fails until it is rewritten after
the engine's numbers move.
Run: .venv/bin/python benchmarks/validate_training.py [--trust A] [--runs FILE] [--write-evidence]"""

from __future__ import annotations

import sys

from colossim.cli.validate import print_extra_training_table, print_training_table, run_training_validation

if __name__ == "__main__":
    trust = sys.argv[sys.argv.index("--trust") + 1] if "--trust" in sys.argv else None
    runs_file = sys.argv[sys.argv.index("--runs") + 1] if "--runs" in sys.argv else None
    results, stats = run_training_validation(trust, runs_file=runs_file)
    print_training_table(results, stats)
    if runs_file is None:
        extra, extra_stats = run_training_validation(trust, extra=True)
        if extra:
            print_extra_training_table(extra, extra_stats)
        if "--write-evidence" in sys.argv:
            if trust is not None:
                sys.exit("--write-evidence groups every run: leave out --trust")
            from colossim.training.evidence import evidence_rows, write_evidence

            print(f"evidence written to {write_evidence(evidence_rows([*results, *extra]))}")
