"""The default training budget of a fault model, shared by :func:`~lossless_triplet.bundle.fit_fault_model`
and the ``train`` command (plain numbers: the CLI parser imports this without torch)."""

from __future__ import annotations

__all__ = ["EMBEDDING_DIM", "QUICK_STEPS", "TRAIN_STEPS", "epochs_and_steps"]

EMBEDDING_DIM = 16  # code width N of a fault model
TRAIN_STEPS = 1200  # optimiser steps of a default training
QUICK_STEPS = 150  # ... of `train --quick`
MAX_STEPS_PER_EPOCH = 50


def epochs_and_steps(steps: int) -> tuple[int, int]:
    """``(epochs, steps_per_epoch)`` doing exactly ``steps`` optimiser steps, at most 50 per epoch
    (an epoch ends with a progress line and, with checkpoints on, a checkpoint).

    Raises:
        ValueError: ``steps`` < 1.
    """
    if steps < 1:
        raise ValueError(f"--steps {steps} must be >= 1")
    per_epoch = max(d for d in range(1, min(steps, MAX_STEPS_PER_EPOCH) + 1) if steps % d == 0)
    return steps // per_epoch, per_epoch
