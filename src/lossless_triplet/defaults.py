"""One home for the names and defaults that the library, the command line and the service share.

Plain Python (no NumPy, torch or pandas): the command-line parser imports it to build its choices
and help without loading the heavy modules. Library functions take their defaults from here, so
``fit_fault_model(data)`` and ``lossless-triplet train`` train the same model.
"""

from __future__ import annotations

__all__ = ["AUTO_VIEW", "DEFAULT_LOSS", "EMBEDDING_DIM", "LOSS_NAMES", "DEFAULT_MAX_BODY_BYTES", "QUICK_BUDGET", "QUICK_STEPS",
           "TOKEN_ENV", "TRAIN_STEPS", "epochs_and_steps"]

# The losses by the names the CLI and metrics.json use, in the order demo and compare train them
# (lossless_triplet.losses.LOSSES maps each to its module).
LOSS_NAMES = ("triplet", "linear_lossless", "lossless", "contrastive", "soft_margin")
DEFAULT_LOSS = "triplet"  # train's loss: the best measured on KDDI and OpenStack (README, "Results")
AUTO_VIEW = "auto"  # the view (and representation) chosen on the training table by the honest protocol

EMBEDDING_DIM = 16  # code width N of a fault model
TRAIN_STEPS = 1200  # optimiser steps of a default training
QUICK_STEPS = 150  # ... of `train --quick`
QUICK_BUDGET = {"epochs": 6, "steps_per_epoch": 15}  # `demo --quick` / `compare --quick`: a smoke run
MAX_STEPS_PER_EPOCH = 50

# The detection service (lossless_triplet.service, `lossless-triplet serve`)
TOKEN_ENV = "LOSSLESS_TRIPLET_TOKEN"  # environment variable holding the bearer token for fault changes
DEFAULT_MAX_BODY_BYTES = 32 * 2**20  # 5,000 rows of the 121 KDDI columns as row objects take ~30 MB


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
