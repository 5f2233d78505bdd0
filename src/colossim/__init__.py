"""colossim: plan, size and simulate AI supercomputers.

The analytical core is pure functions over frozen, validated specs:

- :mod:`colossim.catalog` -- accelerators, systems (data files with a source on every row)
- :mod:`colossim.fleet` -- H100-equivalents, fleet accounting, claim checks
- :mod:`colossim.training`, :mod:`colossim.inference`, :mod:`colossim.reliability` -- engines

The CLI (:mod:`colossim.cli`) is a thin layer over the same functions.
"""

from colossim.errors import ColossimError

__version__ = "0.1.0"

__all__ = ["ColossimError", "__version__"]
