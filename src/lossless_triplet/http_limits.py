"""Old name of :mod:`lossless_triplet.service.server` (bounded request heads for the service)."""

from .service.server import *  # noqa: F403
from .service.server import __all__  # noqa: F401
