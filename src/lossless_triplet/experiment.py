"""Old name of :mod:`lossless_triplet.pipeline.compare`, kept so that existing imports keep working
(with the helpers that lived here: ``resolve_holdout``, ``json_safe``, ``write_metrics``)."""

from .io import json_safe  # noqa: F401
from .pipeline.compare import *  # noqa: F403
from .pipeline.compare import __all__ as _moved
from .pipeline.selection import resolve_holdout  # noqa: F401
from .runs import write_metrics  # noqa: F401

__all__ = [*_moved, "json_safe", "resolve_holdout", "write_metrics"]
