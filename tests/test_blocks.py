"""Rows a block at a time: the starts and the joined results."""

import numpy as np
import pytest

from lossless_triplet.blocks import concat_rows, row_starts


def test_row_starts_cover_every_row_once_and_give_one_block_for_no_rows():
    assert list(row_starts(10, 4)) == [0, 4, 8]
    assert list(row_starts(8, 4)) == [0, 4]
    assert list(row_starts(0, 4)) == [0]  # one empty block: a step still returns its keys
    rows = np.arange(10)
    assert np.concatenate([rows[s:s + 3] for s in row_starts(10, 3)]).tolist() == rows.tolist()
    with pytest.raises(ValueError, match="size=0 must be >= 1"):
        row_starts(5, 0)


def test_concat_rows_joins_block_results_key_by_key():
    parts = [{"a": np.array([1, 2]), "b": np.array([[1, 1], [2, 2]])}, {"a": np.array([3]), "b": np.array([[3, 3]])}]
    out = concat_rows(parts)
    assert out["a"].tolist() == [1, 2, 3] and out["b"].tolist() == [[1, 1], [2, 2], [3, 3]]
    assert concat_rows(parts[:1])["a"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="at least one"):
        concat_rows([])
