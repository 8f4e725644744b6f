"""``python -m lossless_triplet`` runs the command-line interface."""

import sys

from .cli import main

sys.exit(main())
