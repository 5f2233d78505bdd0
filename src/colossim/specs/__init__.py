"""Frozen, validated inputs: the model (what), the parallel plan (how), the system (on what) and
the training workload, and :func:`load_spec` that reads them from YAML / JSON / a dict."""

from colossim.specs.model import Activation, ModelSpec, load_model_catalog, resolve_model
from colossim.specs.plan import ParallelPlan, Recompute
from colossim.specs.system import SystemSpec, resolve_hardware
from colossim.specs.training import (Precision, TrainingSpec, TrainingWorkload, load_spec,
                                     valid_mask, validate_plan)

__all__ = ["Activation", "ModelSpec", "ParallelPlan", "Precision", "Recompute", "SystemSpec",
           "TrainingSpec", "TrainingWorkload", "load_model_catalog", "load_spec", "resolve_hardware",
           "resolve_model", "valid_mask", "validate_plan"]
