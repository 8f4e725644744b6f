"""Rows a block at a time: the steps that run over many rows (matching codes, explaining rows,
identifying a chunk) cut them into blocks of a few thousand, so that each step's arrays stay in the
CPU caches, and join the blocks' results afterwards.

Plain NumPy, nothing of the package: a leaf that the memory, the evidence and the pipeline share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["concat_rows", "row_starts"]


def row_starts(n_rows: int, size: int) -> range:
    """The first row of each block of ``size`` rows over ``n_rows`` rows; no rows give one empty block
    (so a step still returns its empty result with the right keys and shapes).

    Raises:
        ValueError: size < 1."""
    if size < 1:
        raise ValueError(f"size={size} must be >= 1 row per block")
    return range(0, max(n_rows, 1), size)


def concat_rows(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The row-wise concatenation of block results (dicts of arrays with the same keys), key by key;
    a single part is returned as it is.

    Shape: part i maps each key to (n_i, ...) arrays; the output maps it to (sum n_i, ...).

    Raises:
        ValueError: no part."""
    if not parts:
        raise ValueError("concat_rows needs at least one block result")
    if len(parts) == 1:
        return dict(parts[0])
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
