"""Accuracy of the training engine on the published runs: prints the per-run table and the error
statistics by group, then the published steps outside the reference set (apart, outside the
targets).  Run: .venv/bin/python benchmarks/validate_training.py [--trust A]"""

from __future__ import annotations

import sys

from colossim.cli.validate import print_extra_training_table, print_training_table, run_training_validation

if __name__ == "__main__":
    trust = sys.argv[sys.argv.index("--trust") + 1] if "--trust" in sys.argv else None
    results, stats = run_training_validation(trust)
    print_training_table(results, stats)
    extra, extra_stats = run_training_validation(trust, extra=True)
    if extra:
        print_extra_training_table(extra, extra_stats)
