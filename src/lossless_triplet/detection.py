"""Old name of :mod:`lossless_triplet.pipeline.detect`, kept so that existing imports keep working."""

from .pipeline.detect import *  # noqa: F403
from .pipeline.detect import __all__  # noqa: F401
