"""Old name of :mod:`lossless_triplet.pipeline.selection`, kept so that existing imports keep working."""

from .pipeline.selection import *  # noqa: F403
from .pipeline.selection import __all__  # noqa: F401
