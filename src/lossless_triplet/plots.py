"""Figures: the 3-D code of each loss, and the loss curves.

Built on ``matplotlib.figure.Figure`` (no pyplot, no global state, no display
needed). Colours are the Okabe-Ito colour-blind-safe palette, with its bluish
green for ``normal`` as in the seed's pictures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["PALETTE", "class_styles", "project_to_3d", "plot_embeddings", "plot_loss_curves"]

# Okabe & Ito, "Color Universal Design", 2008: distinguishable under common colour blindness.
PALETTE = ("#009E73", "#E69F00", "#56B4E9", "#D55E00", "#CC79A7", "#0072B2", "#F0E442", "#000000")


def class_styles(class_names: Sequence[str]) -> list[tuple[str, str]]:
    """A (colour, marker) per class: ``normal`` in the palette's green, the others
    through the rest of the palette, with a new marker each time the colours repeat."""
    others = PALETTE[1:]
    markers = ("o", "^", "s", "D")
    styles, k = [], 0
    for name in class_names:
        if name == "normal":
            styles.append((PALETTE[0], "o"))
            continue
        styles.append((others[k % len(others)], markers[(k // len(others)) % len(markers)]))
        k += 1
    return styles


def project_to_3d(codes: np.ndarray) -> tuple[np.ndarray, str]:
    """The codes as 3-D points and a note saying how they were obtained.

    N = 3 codes are returned as they are; N > 3 are projected with PCA
    (scikit-learn), N < 3 are padded with zeros.

    Shape: codes (n, N) -> (n, 3) float.
    """
    codes = np.asarray(codes, dtype=np.float64)
    n = codes.shape[1]
    if n == 3:
        return codes, "the code itself (N = 3)"
    if n < 3:
        return np.pad(codes, ((0, 0), (0, 3 - n))), f"N = {n}, padded with zeros"
    from sklearn.decomposition import PCA

    pca = PCA(n_components=3, random_state=0).fit(codes)
    explained = 100 * pca.explained_variance_ratio_.sum()
    return pca.transform(codes), f"PCA projection of the N = {n} code ({explained:.0f}% of variance)"


def plot_embeddings(
    codes: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    *,
    title: str,
    max_points_per_class: int = 400,
    seed: int = 0,
) -> Path:
    """3-D scatter of codes coloured by status, with a legend of status names.

    Large classes are subsampled (at most ``max_points_per_class`` points each,
    seeded) so small fault classes stay visible next to thousands of normal rows.

    Shape:
        codes (n, N) float, labels (n,) int indexing class_names.

    Returns:
        The path written (PNG).
    """
    from matplotlib.figure import Figure

    points, note = project_to_3d(codes)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(7, 6), dpi=110)
    ax = fig.add_subplot(projection="3d")
    styles = class_styles(class_names)
    for c, name in enumerate(class_names):
        rows = np.flatnonzero(labels == c)
        if len(rows) == 0:
            continue
        if len(rows) > max_points_per_class:
            rows = rng.choice(rows, size=max_points_per_class, replace=False)
        colour, marker = styles[c]
        ax.scatter(*points[rows].T, s=9, alpha=0.7, color=colour, marker=marker,
                   label=f"{name} ({int((labels == c).sum())})")
    axis = "PC" if np.asarray(codes).shape[1] > 3 else "code"
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    ax.set_zlabel(f"{axis} 3")
    ax.set_title(f"{title}\n{note}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, markerscale=2, title="status (test rows)", title_fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
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
    from matplotlib.figure import Figure

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
    fig.savefig(path)
    return path
