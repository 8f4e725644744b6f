"""``report``: rebuild the figures and the HTML report of a saved run, without retraining."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_report(args: argparse.Namespace) -> int:
    from ..runs import load_run, render_run

    written = render_run(load_run(args.run_dir), args.out or args.run_dir)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def register(sub) -> None:
    """Add the ``report`` sub-command."""
    report = sub.add_parser(
        "report", help="rebuild the figures and report.html of a demo/compare run",
        description="Rebuild embeddings_<loss>.png, loss_curves.png, training.gif (when the run was made "
        "with --animate) and the self-contained report.html from what a demo or compare run saved "
        "(metrics.json, codes.npz, history.json, animation.npz), without retraining.")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the --out directory of a demo or compare run")
    report.add_argument("--out", type=Path, help="write the figures here instead of into RUN_DIR")
    report.set_defaults(handler=_cmd_report)
