"""The training engine: FLOPs (:mod:`.flops`), the per-GPU op list (:mod:`.ops`), memory
(:mod:`.memory`), pipeline schedules, step time, search and validation.  Pure functions over the
frozen specs of :mod:`colossim.specs`; submodules are imported explicitly (no eager imports here)."""
