"""The ``demo`` and ``compare`` protocol: train every loss under one protocol, save the run, draw it.

:func:`run_comparison` is :func:`~lossless_triplet.pipeline.compare.compare_losses` plus the run
directory (:mod:`lossless_triplet.runs`: metrics.json, codes, history, figures, and with
``animate`` the training animation and report.html); :func:`run_demo` runs it on the bundled KDDI
NFV data with node-down and interface-down held out. Nothing here is tuned on an eval split: the
view and the representation are chosen on the training table (:mod:`.selection`), and the budget
and N are ``train``'s defaults (:mod:`lossless_triplet.defaults`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..animation import CodeRecorder
from ..data import Dataset, load_kddi_nfv
from ..defaults import AUTO_VIEW, LOSS_NAMES
from ..runs import Run, render_run, save_run
from ..training import TrainConfig
from .compare import compare_losses

__all__ = ["DEMO_HOLDOUT", "run_comparison", "run_demo"]

DEMO_HOLDOUT = ("node-down", "interface-down")  # the KDDI fault types the demo gives one example each


def run_comparison(train: Dataset, test: Dataset, *, out: str | Path, losses: Sequence[str] = LOSS_NAMES,
                   holdout: Sequence[str] = (), view: str = AUTO_VIEW, representation: str | None = None,
                   time_ordered: bool | None = None, config: TrainConfig | None = None, n_draws: int = 10,
                   dataset_name: str = "table", progress: bool = True, animate: bool = False
                   ) -> tuple[dict, list[Path]]:
    """Train and measure every loss in ``losses`` (:func:`compare_losses`, same arguments), then save
    the run into ``out``: metrics.json, codes.npz, history.json, embeddings_<loss>.png and
    loss_curves.png; with ``animate`` also animation.npz, training.gif and report.html.

    Returns:
        ``(metrics document, paths written)``.

    Raises:
        ValueError: as :func:`compare_losses`.
    """
    config = config or TrainConfig()
    recorder = CodeRecorder(test.labels, test.class_names, epochs=config.epochs, seed=config.seed) if animate else None
    document, results = compare_losses(
        train, test, losses=losses, holdout=holdout, view=view, config=config, representation=representation,
        time_ordered=time_ordered, n_draws=n_draws, dataset_name=dataset_name, progress=progress,
        on_epoch_factory=recorder.factory if recorder else None,
    )
    run = Run(document, tuple(test.class_names), test.labels, {n: r.test_codes for n, r in results.items()},
              {n: r.history for n, r in results.items()}, recorder.recording() if recorder else None)
    return document, save_run(run, out) + render_run(run, out, report=animate)


def run_demo(out: str | Path = "runs/demo", **options) -> tuple[dict, list[Path]]:
    """:func:`run_comparison` on the bundled KDDI NFV data (train split against eval split) with
    :data:`DEMO_HOLDOUT` held out: what ``lossless-triplet demo`` runs. ``options``: those of
    :func:`run_comparison` but ``holdout`` and ``dataset_name``."""
    return run_comparison(load_kddi_nfv("train"), load_kddi_nfv("eval"), out=out, holdout=DEMO_HOLDOUT,
                          dataset_name="kddi-nfv", **options)
