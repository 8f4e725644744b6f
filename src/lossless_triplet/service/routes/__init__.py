"""One router per resource: ``identify``, ``faults``, ``model``, ``operations`` (health and metrics)."""

from . import faults, identify, model, operations

__all__ = ["faults", "identify", "model", "operations"]
