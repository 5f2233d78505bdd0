"""Accuracy of the inference engine on the published serving results: prints the per-entry table
(one entry per published number) and the error statistics by group.
Run: .venv/bin/python benchmarks/validate_serving.py [--trust A]"""

from __future__ import annotations

import sys

from colossim.cli.validate import print_serving_table, run_serving_validation

if __name__ == "__main__":
    trust = sys.argv[sys.argv.index("--trust") + 1] if "--trust" in sys.argv else None
    results, stats = run_serving_validation(trust)
    print_serving_table(results, stats)
