"""A comparison run on disk: what ``demo`` / ``compare`` save, and the pictures rebuilt from it.

A run directory holds:

- ``metrics.json``: the metrics document (DESIGN.md schema);
- ``codes.npz``: the test codes of every loss, the test labels and class names
  (plain arrays: ``np.load(path, allow_pickle=False)`` reads it);
- ``history.json``: per-loss training history (``epoch``, ``train_loss``, ``test_loss``);
- ``animation.npz``: the training recording (only with ``--animate``,
  :class:`~lossless_triplet.animation.Recording`).

:func:`render_run` draws ``embeddings_<loss>.png``, ``loss_curves.png``,
``training.gif`` (when recorded) and ``report.html`` from these files alone,
so ``lossless-triplet report RUN_DIR`` rebuilds them without retraining.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .animation import Recording, write_training_gif
from .io import write_json, written_at_end
from .plots import plot_embeddings, plot_loss_curves
from .report import write_report

__all__ = ["Run", "save_run", "load_run", "render_run", "write_metrics", "CODES_FILE", "HISTORY_FILE", "METRICS_FILE",
           "ANIMATION_FILE"]

CODES_FILE = "codes.npz"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
ANIMATION_FILE = "animation.npz"


@dataclass
class Run:
    """Everything the pictures of one comparison need.

    Attributes:
        metrics: the metrics.json document.
        class_names: one name per class.
        test_labels: (n,) int64 class ids of the test rows.
        test_codes: loss name -> (n, N) float32 test codes.
        histories: loss name -> ``epoch`` / ``train_loss`` / ``test_loss`` lists.
        recording: the training animation's recording, or None.
    """

    metrics: dict
    class_names: tuple[str, ...]
    test_labels: np.ndarray
    test_codes: dict[str, np.ndarray]
    histories: dict[str, dict[str, list]] = field(default_factory=dict)
    recording: Recording | None = None


def write_metrics(document: dict, out_dir: str | Path) -> Path:
    """Write ``metrics.json`` (strict JSON: non-finite numbers become null) into ``out_dir``."""
    return write_json(Path(out_dir) / METRICS_FILE, document)


def save_run(run: Run, out_dir: str | Path) -> list[Path]:
    """Write ``metrics.json``, ``codes.npz``, ``history.json`` and (if recorded) ``animation.npz``.

    Returns:
        The paths written.

    Raises:
        ValueError: no codes, or codes of different shapes across losses or
            whose row count differs from the labels.
    """
    names = list(run.test_codes)
    if not names:
        raise ValueError("the run has no codes to save")
    shapes = {np.shape(run.test_codes[n]) for n in names}
    if len(shapes) != 1 or next(iter(shapes))[0] != len(run.test_labels):
        raise ValueError(f"test codes must all be (n, N) with n = {len(run.test_labels)}; got {sorted(shapes)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_metrics(run.metrics, out_dir)]
    codes_path = out_dir / CODES_FILE
    with written_at_end(codes_path) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(
            handle,
            losses=np.array(names, dtype=str),
            class_names=np.array(run.class_names, dtype=str),
            test_labels=np.asarray(run.test_labels, dtype=np.int64),
            test_codes=np.stack([np.asarray(run.test_codes[n], dtype=np.float32) for n in names]),
        )
    written.append(codes_path)
    history_path = out_dir / HISTORY_FILE
    write_json(history_path, run.histories, indent=1)
    written.append(history_path)
    if run.recording is not None:
        written.append(run.recording.save(out_dir / ANIMATION_FILE))
    return written


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory written by :func:`save_run` (``demo`` / ``compare``).

    Raises:
        FileNotFoundError: the directory, or one of metrics.json / codes.npz /
            history.json, is missing (the message says how to make one).
        ValueError: a file that does not hold what a run saves.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory {run_dir}")
    for name in (METRICS_FILE, CODES_FILE, HISTORY_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir} has no {name}: give the --out directory of a `lossless-triplet demo` or `compare` run"
            )
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    with np.load(run_dir / CODES_FILE, allow_pickle=False) as data:
        missing = {"losses", "class_names", "test_labels", "test_codes"} - set(data.files)
        if missing:
            raise ValueError(f"{run_dir / CODES_FILE} lacks {sorted(missing)}")
        names = [str(n) for n in data["losses"]]
        test_codes = {n: data["test_codes"][i] for i, n in enumerate(names)}
        class_names = tuple(str(c) for c in data["class_names"])
        test_labels = data["test_labels"].astype(np.int64)
    histories = json.loads((run_dir / HISTORY_FILE).read_text())
    animation = run_dir / ANIMATION_FILE
    recording = Recording.load(animation) if animation.is_file() else None
    return Run(metrics, class_names, test_labels, test_codes, histories, recording)


def render_run(run: Run, out_dir: str | Path, *, report: bool = True) -> list[Path]:
    """Draw the pictures of a run: ``embeddings_<loss>.png``, ``loss_curves.png``,
    ``training.gif`` (when the run has a recording) and ``report.html`` (when ``report``).

    Returns:
        The paths written.
    """

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = run.metrics.get("dataset", "table")
    holdout = run.metrics.get("holdout", [])
    written = [
        plot_embeddings(codes, run.test_labels, run.class_names, out_dir / f"embeddings_{name}.png",
                        title=f"{dataset}: {name} loss, test rows", holdout=holdout)
        for name, codes in run.test_codes.items()
    ]
    if run.histories:
        written.append(plot_loss_curves(run.histories, out_dir / "loss_curves.png"))
    gif = None
    if run.recording is not None:
        gif = write_training_gif(run.recording, out_dir / "training.gif", holdout=holdout)
        written.append(gif)
    if report:
        written.append(write_report(out_dir / "report.html", run.metrics, run.test_codes, run.test_labels,
                                    run.class_names, run.histories, animation_gif=gif))
    return written
