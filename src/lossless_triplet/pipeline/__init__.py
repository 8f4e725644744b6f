"""The jobs: fit a fault model, detect and evaluate with it, compare losses, the demo.

Each job composes the layers below (data, models and training, memory, bundle) and is what one
command runs: ``train`` (:func:`fit_fault_model`), ``detect`` (:func:`detect_file`), ``evaluate``
(:func:`evaluate_file`), ``compare`` (:func:`run_comparison`), ``demo`` (:func:`run_demo`). All of
them share the honest protocol of :mod:`.selection`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> submodule: imported on first use, so that ``detect`` does not pay for the comparison's
# forests and the demo's plotting (importing them all took 6.1 s here, ``detect`` alone 3.1 s)
_WHERE = {"LossResult": "compare", "compare_losses": "compare", "DEMO_HOLDOUT": "demo", "run_comparison": "demo",
          "run_demo": "demo", "PREDICTION_COLUMNS": "detect", "detect_file": "detect", "evaluate_file": "detect",
          "evaluate_model": "detect", "identified_chunks": "detect", "fit_fault_model": "fit", "choose": "selection",
          "prepare_features": "selection", "resolve_holdout": "selection", "select": "selection"}

__all__ = ["DEMO_HOLDOUT", "PREDICTION_COLUMNS", "LossResult", "choose", "compare_losses", "detect_file",
           "evaluate_file", "evaluate_model", "fit_fault_model", "identified_chunks", "prepare_features",
           "resolve_holdout", "run_comparison", "run_demo", "select"]

if TYPE_CHECKING:  # for type checkers and readers: the same names, imported eagerly
    from .compare import LossResult, compare_losses
    from .demo import DEMO_HOLDOUT, run_comparison, run_demo
    from .detect import PREDICTION_COLUMNS, detect_file, evaluate_file, evaluate_model, identified_chunks
    from .fit import fit_fault_model
    from .selection import choose, prepare_features, resolve_holdout, select


def __getattr__(name: str):
    """The public names of the jobs, imported from their submodule on first use (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
