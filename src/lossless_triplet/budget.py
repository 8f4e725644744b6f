"""Old name of :mod:`lossless_triplet.defaults` (the training budget and code width live there now)."""

from .defaults import EMBEDDING_DIM, QUICK_STEPS, TRAIN_STEPS, epochs_and_steps  # noqa: F401

__all__ = ["EMBEDDING_DIM", "QUICK_STEPS", "TRAIN_STEPS", "epochs_and_steps"]
