"""Command-line interface ``lossless-triplet``: parses arguments, calls the library, prints.

Each sub-command lives in its own module with a ``register(subparsers)``
function that adds its parser and sets ``handler``; every command is a thin
wrapper over library functions, so everything here is usable from Python too.

The handlers import the library inside their bodies, after checking their numbers: building the
parser imports no torch, pandas or FastAPI (NumPy at most; a test checks it), so ``--help`` and
argument errors answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Sub-command modules, in the order --help lists them.
COMMAND_MODULES = ("compare", "memory", "report", "serve")


def build_parser() -> argparse.ArgumentParser:
    """The ``lossless-triplet`` argument parser (one sub-command per task)."""
    parser = argparse.ArgumentParser(
        prog="lossless-triplet",
        description="Learn a code for network status with the lossless triplet loss, compare losses, "
        "and recognise fault types from one example.",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log details: imputed values of the encoder input, each loss's metrics, "
                        "resumed checkpoints")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lossless-triplet`` console script; returns the exit status.

    Bad input (a missing file, a wrong column, a bad value) ends with one line on
    stderr naming the problem and exit status 2, not a traceback.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except (ValueError, OSError, ImportError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error  # no repr quotes
        print(f"lossless-triplet {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
