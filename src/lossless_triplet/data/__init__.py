"""Data: labelled tables, the bundled KDDI NFV fault data, and feature scaling.

- :class:`Dataset`: float32 features (n_rows, n_features, NaN = missing), int64 labels,
  feature/class names, optional timestamps.
- :func:`load_table` / :func:`read_feature_table`: CSV, TSV or Parquet files, validated.
- :func:`load_kddi_nfv`, :data:`KDDI_CLASSES`, :func:`export_kddi_csv`: the KDDI NFV IP-core
  fault data (Kawasaki et al., NOMS 2020; MIT licence, see ``kddi_nfv/``).
- :class:`Standardizer`: median imputation + standardisation, fitted on training rows only.

Imports numpy and pandas only (no torch).
"""

from lossless_triplet.data.kddi import KDDI_CLASSES, KDDI_SPLITS, export_kddi_csv, load_kddi_nfv
from lossless_triplet.data.preprocess import Standardizer
from lossless_triplet.data.tables import (
    Dataset,
    iter_feature_table,
    iter_labelled_table,
    load_table,
    read_feature_table,
    table_columns,
)
from lossless_triplet.validation import NotFittedError

__all__ = [
    "KDDI_CLASSES",
    "KDDI_SPLITS",
    "Dataset",
    "NotFittedError",
    "Standardizer",
    "export_kddi_csv",
    "load_kddi_nfv",
    "load_table",
    "read_feature_table",
    "iter_feature_table",
    "iter_labelled_table",
    "table_columns",
]
