"""The jobs: fit a fault model, detect and evaluate with it, compare losses, the demo.

Each job composes the layers below (data, models and training, memory, bundle) and is what one
command runs: ``train`` (:func:`fit_fault_model`), ``detect`` (:func:`detect_file`), ``evaluate``
(:func:`evaluate_file`), ``compare`` (:func:`run_comparison`), ``demo`` (:func:`run_demo`). All of
them share the honest protocol of :mod:`.selection`.
"""

from .compare import LossResult, compare_losses
from .demo import DEMO_HOLDOUT, run_comparison, run_demo
from .detect import PREDICTION_COLUMNS, detect_file, evaluate_file, evaluate_model, identified_chunks
from .fit import fit_fault_model
from .selection import choose, prepare_features, resolve_holdout, select

__all__ = ["DEMO_HOLDOUT", "PREDICTION_COLUMNS", "LossResult", "choose", "compare_losses", "detect_file",
           "evaluate_file", "evaluate_model", "fit_fault_model", "identified_chunks", "prepare_features",
           "resolve_holdout", "run_comparison", "run_demo", "select"]
