"""Figures: the 3-D code of each loss, and the loss curves.

Built on ``matplotlib.figure.Figure`` (no pyplot, no global state, no display
needed). Colours are the Okabe-Ito colour-blind-safe palette, with its bluish
green for ``normal`` as in the seed's pictures.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from .io import written_at_end

__all__ = [
    "PALETTE", "FAULT_MARKERS", "class_styles", "project_to_3d", "axis_names", "subsample_per_class",
    "status_label", "draw_status_scatter", "plot_embeddings", "plot_loss_curves",
]

# Okabe & Ito, "Color Universal Design", 2008: distinguishable under common colour blindness.
PALETTE = ("#009E73", "#E69F00", "#56B4E9", "#D55E00", "#CC79A7", "#0072B2", "#F0E442", "#000000")


# Marker shapes of the fault classes: a second cue beside the colour (colour-blind readers, greyscale
# prints); each has a close plotly 3-D symbol (see lossless_triplet.report).
FAULT_MARKERS = ("s", "D", "P", "^", "v", "X", "o")  # the open plotly symbols (^, v) fall on dark colours


def class_styles(class_names: Sequence[str]) -> list[tuple[str, str]]:
    """A (colour, matplotlib marker) per class, distinct for up to 49 classes.

    ``normal`` gets the palette's green and a circle; the other classes take the
    rest of the palette and a marker shape each, the shapes shifting by one
    every time the colours come round again.
    """
    others = PALETTE[1:]
    styles, k = [], 0
    for name in class_names:
        if name == "normal":
            styles.append((PALETTE[0], "o"))
            continue
        styles.append((others[k % len(others)], FAULT_MARKERS[(k + k // len(others)) % len(FAULT_MARKERS)]))
        k += 1
    return styles


def project_to_3d(codes: np.ndarray, *, reference: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The codes as 3-D points and a note saying how they were obtained.

    N = 3 codes are returned as they are; N < 3 are padded with zeros; N > 3 are
    projected with a PCA (scikit-learn) fitted once on ``reference`` (default:
    the codes themselves), so that frames of an animation projected with the
    same reference (e.g. the final codes) share one set of axes.

    Shape:
        codes (n, N) float, reference (m, N) float -> (n, 3) float64.

    Raises:
        ValueError: codes not 2-D, or a reference of another width N.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be (n, N), got shape {codes.shape}")
    n = codes.shape[1]
    reference = codes if reference is None else np.asarray(reference, dtype=np.float64)
    if reference.ndim != 2 or reference.shape[1] != n:
        raise ValueError(f"reference must be (m, {n}) like the codes, got shape {reference.shape}")
    if n == 3:
        return codes, "the code itself (N = 3)"
    if n < 3:
        return np.pad(codes, ((0, 0), (0, 3 - n))), f"N = {n}, padded with zeros"

    pca = PCA(n_components=3, random_state=0).fit(reference)
    explained = 100 * pca.explained_variance_ratio_.sum()
    fitted_on = "" if reference is codes else ", fitted on the final codes"
    return pca.transform(codes), f"PCA of the N = {n} code ({explained:.0f}% of variance{fitted_on})"


def axis_names(embedding_dim: int) -> tuple[str, str, str]:
    """Names of the three plot axes for codes of width ``embedding_dim``:
    ``PC 1..3`` after a PCA (N > 3), ``code 1..3`` otherwise."""
    prefix = "PC" if embedding_dim > 3 else "code"
    return tuple(f"{prefix} {i}" for i in (1, 2, 3))


def subsample_per_class(labels: np.ndarray, max_per_class: int, seed: int = 0) -> np.ndarray:
    """Row indices keeping at most ``max_per_class`` rows of each class (seeded), sorted.

    Keeps small fault classes visible beside thousands of normal rows.

    Shape:
        labels (n,) int -> (m,) int64 indices into labels, m <= n.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) > max_per_class:
            rows = rng.choice(rows, size=max_per_class, replace=False)
        parts.append(rows)
    return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def status_label(name: str, count: int | None = None, holdout: Collection[str] = ()) -> str:
    """Legend text of a status: ``"node-down (140, held out)"``, ``"normal (3505)"``, ``"normal"``."""
    notes = ([] if count is None else [str(int(count))]) + (["held out"] if name in holdout else [])
    return f"{name} ({', '.join(notes)})" if notes else name


def draw_status_scatter(ax, points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], *,
                        marker_size: float = 9, counts: Sequence[int] | None = None,
                        holdout: Collection[str] = ()) -> None:
    """Scatter 3-D points on a matplotlib ``Axes3D``, one colour and marker per status.

    Each class present gets a legend label (:func:`status_label`): its name, its
    row count when ``counts`` (one per class) is given, and whether it is in ``holdout``.

    Shape:
        points (n, 3) float, labels (n,) int indexing class_names.
    """
    styles = class_styles(class_names)
    for c, name in enumerate(class_names):
        rows = labels == c
        if not rows.any():
            continue
        colour, marker = styles[c]
        label = status_label(name, None if counts is None else counts[c], holdout)
        ax.scatter(*points[rows].T, s=marker_size, alpha=0.75, color=colour, marker=marker,
                   label=label, depthshade=False)


def plot_embeddings(
    codes: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    *,
    title: str,
    max_points_per_class: int = 400,
    seed: int = 0,
    holdout: Collection[str] = (),
) -> Path:
    """3-D scatter of codes coloured by status, with a legend of status names.

    Large classes are subsampled (at most ``max_points_per_class`` points each,
    seeded) so small fault classes stay visible next to thousands of normal rows;
    the legend gives each class's full row count and marks the ``holdout``
    classes. N > 3 codes are shown through a PCA (said in the title).

    Shape:
        codes (n, N) float, labels (n,) int indexing class_names.

    Returns:
        The path written (PNG, about 770 x 660 px).
    """

    codes = np.asarray(codes)
    labels = np.asarray(labels)
    points, note = project_to_3d(codes)
    rows = subsample_per_class(labels, max_points_per_class, seed)
    counts = np.bincount(labels, minlength=len(class_names))
    fig = Figure(figsize=(9, 6), dpi=110)
    # The legend gets its own strip on the right, so it never hides points.
    ax = fig.add_axes((0.0, 0.02, 0.72, 0.9), projection="3d")
    draw_status_scatter(ax, points[rows], labels[rows], class_names, counts=counts, holdout=holdout)
    for setter, name in zip((ax.set_xlabel, ax.set_ylabel, ax.set_zlabel), axis_names(codes.shape[1])):
        setter(name)
    fig.suptitle(f"{title}\n{note}", fontsize=10)
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="center left", bbox_to_anchor=(0.72, 0.5), fontsize=8, markerscale=2,
               title="status (test rows)", title_fontsize=8)
    path = Path(path)
    with written_at_end(path) as tmp:
        fig.savefig(tmp)
    return path


def plot_loss_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path) -> Path:
    """One panel per loss: train and test loss per epoch, with the zero line.

    The zero line shows the seed's observation: the hinge triplet loss falls to
    0 (its triplets stop teaching), the lossless loss does not.

    Args:
        histories: loss name -> history with ``epoch``, ``train_loss`` and
            optionally ``test_loss`` lists.

    Returns:
        The path written (PNG).
    """

    names = list(histories)
    fig = Figure(figsize=(3.6 * max(1, len(names)), 3.4), dpi=110)
    axes = fig.subplots(1, max(1, len(names)), squeeze=False)[0]
    for ax, name in zip(axes, names):
        history = histories[name]
        ax.plot(history["epoch"], history["train_loss"], color=PALETTE[5], label="train")
        if history.get("test_loss"):
            ax.plot(history["epoch"], history["test_loss"], color=PALETTE[3], linestyle="--", label="test")
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (batch-all mean)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with written_at_end(path) as tmp:
        fig.savefig(tmp)
    return path
