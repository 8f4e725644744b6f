"""lossless-triplet: learn a code for network status with the lossless triplet loss.

Submodules: ``losses``, ``distances``, ``mining``, ``data``, ``models``,
``training``, ``metrics``. Importing the package itself is light: submodules are
imported on use.
"""

__version__ = "0.1.0"
