"""Old name of :mod:`lossless_triplet.pipeline.compare`, kept so that existing imports keep working."""

from .pipeline.compare import *  # noqa: F403
from .pipeline.compare import __all__  # noqa: F401
