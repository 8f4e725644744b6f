"""Labelled telemetry tables: the :class:`Dataset` container and readers for CSV/TSV/Parquet.

Everything downstream (views, scaling, encoders, memory) takes a :class:`Dataset` or a plain
float32 feature matrix, so this module is the one boundary where files are validated: a bad
cell is reported here with its column and row, never later as a NaN loss.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pyarrow.types as pat

logger = logging.getLogger("lossless_triplet")

TIMESTAMP_COLUMN = "timestamp"
# Cell texts read as "missing" (compared after stripping whitespace, case-insensitively).
MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none"})
# The same for pandas' reader, which compares case-sensitively.
_NA_VALUES = sorted(
    {v for t in MISSING_TOKENS for v in (t, t.upper(), t.capitalize())} | {"NaN", "N/a"}
)
PARQUET_SUFFIXES = (".parquet", ".pq")
TSV_SUFFIXES = (".tsv", ".tab")
_MAX_LISTED = 10  # how many offending rows an error message lists


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled table of numeric features, one row per observation (e.g. one minute).

    Attributes:
        features: float32 array, shape (n_rows, n_features), in the units of the source
            columns; NaN marks a missing cell (impute it, e.g. with :class:`Standardizer`).
            Never +/-inf.
        labels: int64 array, shape (n_rows,); ``labels[i]`` indexes ``class_names``.
        feature_names: one name per feature column, unique.
        class_names: one name per class, unique; a class may have no rows.
        timestamps: int64 array, shape (n_rows,), or None when the table has none
            (KDDI: YYYYmmddHHMMSS).

    Inputs are converted to these dtypes (a copy only when needed).

    Raises:
        ValueError: on a shape or length mismatch, duplicate names, non-integer or
            out-of-range labels, or infinite feature values.
    """

    features: np.ndarray
    labels: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    timestamps: np.ndarray | None = None

    @property
    def is_time_ordered(self) -> bool:
        """Whether the rows look like one network's minutes in time order: timestamps that
        strictly increase (repeated times mean several sources per time, not one stream)."""
        return self.timestamps is not None and bool(np.all(np.diff(self.timestamps) > 0))

    def __post_init__(self) -> None:
        features = np.asarray(self.features, dtype=np.float32)
        if features.ndim != 2:
            raise ValueError(
                f"features must be 2-D (n_rows, n_features); got shape {features.shape}"
            )
        if np.isinf(features).any():
            raise ValueError(
                "features contain +/-inf (or values beyond the float32 range, about 3.4e38); "
                "replace them with NaN or finite values"
            )
        labels = _as_int64(self.labels, "labels")
        if labels.shape != (features.shape[0],):
            raise ValueError(
                f"labels must have shape ({features.shape[0]},) to match features; "
                f"got {labels.shape}"
            )
        feature_names = tuple(str(n) for n in self.feature_names)
        class_names = tuple(str(n) for n in self.class_names)
        if len(feature_names) != features.shape[1]:
            raise ValueError(
                f"{len(feature_names)} feature_names for {features.shape[1]} feature columns"
            )
        _check_unique(feature_names, "feature_names")
        _check_unique(class_names, "class_names")
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise ValueError(
                f"labels must lie in 0..{len(class_names) - 1} (indices into class_names "
                f"{class_names}); got {labels.min()}..{labels.max()}"
            )
        timestamps = self.timestamps
        if timestamps is not None:
            timestamps = _as_int64(timestamps, "timestamps")
            if timestamps.shape != labels.shape:
                raise ValueError(
                    f"timestamps must have shape {labels.shape}; got {timestamps.shape}"
                )
        for name, value in (
            ("features", features),
            ("labels", labels),
            ("feature_names", feature_names),
            ("class_names", class_names),
            ("timestamps", timestamps),
        ):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        """Number of rows."""
        return int(self.features.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(n_rows={len(self)}, n_features={self.n_features}, "
            f"class_names={self.class_names})"
        )

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(class_names)``), including classes without rows."""
        return len(self.class_names)

    @property
    def n_features(self) -> int:
        """Number of feature columns."""
        return int(self.features.shape[1])

    @property
    def label_names(self) -> np.ndarray:
        """(n_rows,) object array: the class NAME of each row (``class_names[labels]``)."""
        return np.asarray(self.class_names, dtype=object)[self.labels]

    def class_counts(self) -> dict[str, int]:
        """Rows per class, in ``class_names`` order (0 for a class without rows)."""
        counts = np.bincount(self.labels, minlength=self.n_classes)
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def subset(self, rows: np.ndarray | Sequence[int] | Sequence[bool]) -> Dataset:
        """Select rows, keeping names (labels still index the same ``class_names``).

        Args:
            rows: a boolean mask of shape (n_rows,) or integer row indices (any order,
                repeats allowed).

        Returns:
            A new Dataset with copies of the selected rows.

        Raises:
            ValueError: a mask of the wrong length or non-integer indices.
            IndexError: an index out of range.
        """
        index = np.asarray(rows)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise ValueError(f"boolean mask must have shape ({len(self)},); got {index.shape}")
        elif index.size == 0:
            index = index.astype(np.int64)
        elif not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"rows must be a boolean mask or integer indices; got {index.dtype}")
        return Dataset(
            features=self.features[index],
            labels=self.labels[index],
            feature_names=self.feature_names,
            class_names=self.class_names,
            timestamps=None if self.timestamps is None else self.timestamps[index],
        )

    def to_frame(self, label_column: str = "label") -> pd.DataFrame:
        """The table as a DataFrame: ``timestamp`` (if any), ``label_column`` holding the class
        NAME of each row, then the features (float32, NaN where missing).

        Raises:
            ValueError: ``label_column`` clashes with a feature name or ``timestamp``.
        """
        if label_column in self.feature_names or label_column == TIMESTAMP_COLUMN:
            raise ValueError(
                f"label_column {label_column!r} clashes with a feature or the timestamp column; "
                "choose another name"
            )
        columns: dict[str, np.ndarray] = {}
        if self.timestamps is not None:
            columns[TIMESTAMP_COLUMN] = self.timestamps
        columns[label_column] = self.label_names
        frame = pd.DataFrame(columns)
        features = pd.DataFrame(self.features, columns=list(self.feature_names))
        return pd.concat([frame, features], axis=1)


def load_table(
    path: str | Path,
    label_column: str,
    *,
    class_names: Sequence[str | int] | None = None,
    feature_columns: Sequence[str] | None = None,
) -> Dataset:
    """Read a labelled table (CSV, TSV or Parquet; optionally gzip-compressed text).

    Format: ``.parquet``/``.pq`` is Parquet; ``.tsv``/``.tab`` (also ``.gz``)
    is tab-separated; anything else is comma-separated unless its header line holds no comma
    but tabs (tab-separated) or semicolons (semicolon-separated, as Excel writes in many locales;
    decimal commas are not read: a cell ``1,5`` is refused as non-numeric). Cells that are empty or read ``nan``, ``NA``, ``N/A``, ``null``, ``None``
    (any case) are missing: kept as NaN in ``features`` (impute them later).

    Labels: if every label is an integer (``3`` or ``3.0``), class names are those integers
    as strings, sorted numerically (``"0", "3", "10"``); otherwise class names are the label
    strings sorted alphabetically. Sorting (not order of appearance) gives a train and a
    test file with the same labels the same class indices. Pass ``class_names`` to fix the
    classes and their order yourself.

    Features: ``feature_columns`` in the given order, or by default every column except the
    label and ``timestamp`` that holds numbers; a column with no number at all (e.g. a host
    name) is skipped with a warning on the ``lossless_triplet`` logger. A ``timestamp``
    column, if present, is stored in ``Dataset.timestamps`` when its values are integers.

    Args:
        path: file to read.
        label_column: name of the column with the class of each row.
        class_names: the classes, in index order; every label must be one of them (classes
            without rows are allowed).
        feature_columns: columns to use as features, in order.

    Returns:
        Dataset with float32 features (n_rows, n_features), int64 labels (n_rows,).

    Raises:
        FileNotFoundError: no such file.
        ValueError: empty file or no data rows; ``label_column`` or a listed feature column
            missing (the message lists the available columns); a label cell missing (rows
            named); a label not in ``class_names``; a non-numeric or +/-inf feature cell
            (column, 1-based data row and value named); no feature column left.
    """
    path = Path(path)
    frame = _read_frame(path)
    _require_columns(frame, [label_column], path, what="label column")
    if feature_columns is None:
        feature_columns = _default_feature_columns(frame, label_column, path)
    else:
        feature_columns = [str(c) for c in feature_columns]
        _check_unique(tuple(feature_columns), "feature_columns")
        if label_column in feature_columns:
            raise ValueError(
                f"label column {label_column!r} is also listed in feature_columns; "
                "a feature must not hold the label"
            )
        _require_columns(frame, feature_columns, path, what="feature column")
    if not feature_columns:
        raise ValueError(
            f"{path}: no numeric feature column besides {label_column!r}; "
            f"columns are {list(frame.columns)}"
        )
    labels, names = _encode_labels(frame[label_column], label_column, class_names, path)
    return Dataset(
        features=_feature_matrix(frame, feature_columns, path),
        labels=labels,
        feature_names=tuple(feature_columns),
        class_names=names,
        timestamps=_timestamps(frame, path),
    )


def read_feature_table(path: str | Path, feature_names: Sequence[str]) -> np.ndarray:
    """Read the feature matrix of a table without labels (e.g. new rows to classify).

    Same formats and cell rules as :func:`load_table`; other columns (a label, a timestamp,
    notes) are ignored.

    Args:
        path: CSV, TSV or Parquet file.
        feature_names: the columns to return, in this order (e.g. a model's features).

    Returns:
        float32 array, shape (n_rows, len(feature_names)), NaN where a cell is missing;
        rows in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: empty file or no data rows; any of ``feature_names`` missing (each one is
            named); a non-numeric or +/-inf cell (column, 1-based data row, value named).
    """
    path = Path(path)
    feature_names = [str(n) for n in feature_names]
    if not feature_names:
        raise ValueError("feature_names is empty; pass the model's feature column names")
    frame = _read_frame(path)
    _require_columns(frame, feature_names, path, what="feature column")
    return _feature_matrix(frame, feature_names, path)


def table_columns(path: str | Path) -> list[str]:
    """The column names of a table (CSV, TSV, optionally .gz, or Parquet), from its header line
    or Parquet schema: the rows are not read.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an empty text file, repeated column names, a damaged .gz file.
    """
    path = Path(path)
    _require_file(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in PARQUET_SUFFIXES:

        return list(pq.read_schema(path).names)
    return _text_layout(path, suffixes)[1]


def iter_feature_table(
    path: str | Path, feature_names: Sequence[str], chunk_rows: int = 65_536
) -> Iterator[np.ndarray]:
    """Read the feature matrix of a table chunk by chunk, in file order.

    Memory is bounded by the chunk, not the file. Same formats, column check
    and cell rules as :func:`read_feature_table`; error messages give row
    numbers in the whole file. A CSV is read row for row by one rule (strict CSV, see
    ``_numeric_text_chunks``): one matrix row per data row, or an error naming the row.

    Args:
        path: CSV, TSV (optionally .gz) or Parquet file.
        feature_names: the columns to return, in this order; others are ignored.
        chunk_rows: rows per chunk (>= 1).

    Yields:
        float32 arrays (<= chunk_rows, len(feature_names)), NaN where a cell is missing.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_feature_table`.
    """
    for matrix, _ in _table_chunks(Path(path), [str(n) for n in feature_names], chunk_rows):
        yield matrix


def iter_labelled_table(
    path: str | Path, feature_names: Sequence[str], label_column: str, chunk_rows: int = 65_536, *,
    truth_column: str | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Read features, labels (and optionally a truth column) of a table chunk by chunk (as
    :func:`iter_feature_table`).

    Yields:
        ``(features, labels, truth)``: float32 (rows, len(feature_names)), the label cells as str
        (rows,), and the ``truth_column`` cells as str (rows,; "" where empty) or None.

    Raises:
        FileNotFoundError, ValueError: as :func:`iter_feature_table`; the label (or truth) column
            missing (the message lists the columns), a label cell missing (its data row named).
    """
    label_column = str(label_column)
    features = [str(n) for n in feature_names]
    texts = [label_column] + ([str(truth_column)] if truth_column is not None else [])
    for name in texts:
        if name in features:
            raise ValueError(f"column {name!r} is also a feature column; a feature must not hold a label")
    for matrix, cells in _table_chunks(Path(path), features, chunk_rows, texts):
        yield matrix, cells[label_column], cells.get(truth_column) if truth_column is not None else None


def _table_chunks(path: Path, feature_names: list[str], chunk_rows: int, text_columns: Sequence[str] = ()
                  ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows} must be >= 1")
    _require_file(path)
    suffixes = [s.lower() for s in path.suffixes]
    parquet = bool(suffixes) and suffixes[-1] in PARQUET_SUFFIXES
    text_columns = list(text_columns)
    if text_columns:
        names = table_columns(path)
        for i, name in enumerate(text_columns):
            _require_columns(pd.DataFrame(columns=names), [name], path, what="label column" if i == 0 else "column")
    if parquet:
        chunks = _parquet_chunks(path, feature_names, chunk_rows, text_columns)
    else:
        _, names = _text_layout(path, suffixes)
        _require_columns(pd.DataFrame(columns=names), feature_names, path, what="feature column")
        chunks = _numeric_text_chunks(path, suffixes, feature_names, chunk_rows, text_columns)
    first_row = 0
    for matrix, cells in chunks:
        yield matrix, cells
        first_row += len(matrix)
    if first_row == 0:
        raise ValueError(f"{path} has {'no' if parquet else 'a header but no'} data rows")


def _text_cells(batch, text_columns: Sequence[str], path: Path, first_row: int) -> dict[str, np.ndarray]:
    """The text columns of an Arrow batch as str arrays: the first (the label) must have every cell,
    the others (e.g. a truth column) read "" where empty."""
    out = {}
    for i, name in enumerate(text_columns):
        column = batch.column(name)
        if i == 0:
            out[name] = _label_cells(column, name, path, first_row)
        else:
            out[name] = np.asarray(column.cast("string").fill_null("").to_numpy(zero_copy_only=False), dtype=str)
    return out


def _label_cells(column, label_column: str, path: Path, first_row: int) -> np.ndarray:
    """The label cells of an Arrow column as str; a missing one is an error naming its data row."""
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{path}: the label column {label_column!r} is empty in data row {first_row + row + 1} "
                         "(1-based, header not counted); every row of an evaluated table needs its status")
    return np.asarray(column.cast("string").to_numpy(zero_copy_only=False), dtype=str)


# Bytes of text parsed at once (a block of whole lines, or a block of Arrow's streaming reader);
# tests lower it to put block boundaries inside quoted values, CRLF pairs and rows.
_TEXT_BLOCK_BYTES = 1 << 24
_CELL_GROUP = 4096  # rows whose cells the error locator converts at once


class _Tail:
    """The bytes of a file from ``offset`` on (plain or .gz), as a stream handed to Arrow."""

    def __init__(self, path: Path, offset: int) -> None:
        self.handle = _open_binary(path)
        while offset > 0:  # .gz streams cannot seek cheaply: read and drop
            dropped = self.handle.read(min(offset, 1 << 24))
            if not dropped:
                break
            offset -= len(dropped)

    def read(self, size: int = -1) -> bytes:
        return self.handle.read(size)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.handle.close()

    @property
    def closed(self) -> bool:
        return self.handle.closed


def _numeric_text_chunks(
    path: Path, suffixes: list[str], feature_names: list[str], chunk_rows: int, text_columns: Sequence[str] = ()
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Float32 matrices of a CSV/TSV file, row for row, by one rule wherever blocks fall.

    The rule is Python's ``csv`` module in strict mode (RFC 4180: a quoted value may hold
    separators and line breaks, and its closing quote is followed by a separator or a line
    end; blank lines are not rows) plus the cell rule of :func:`load_table` (a feature cell is
    missing, or a number as Arrow's parser reads it, surrounding spaces allowed). Every data
    row gives one output row, or the read stops with a ValueError naming the data row (and the
    column and value for a bad cell).

    Two readers, one rule. While no quote byte has been seen, every line end is a row end: the
    file is cut into blocks of whole lines and each is parsed by Arrow's multithreaded
    ``read_csv`` (the fast path of the usual export). From the first block holding a quote on,
    the rest of the file goes to Arrow's streaming reader with ``newlines_in_values``, which
    finds row ends outside quotes itself across its blocks (a row longer than a block makes it
    start again with blocks 8 times larger, skipping the rows already given). Arrow names no row
    in its errors, and it accepts quoting that strict CSV refuses (text after a closing quote, a
    quote never closed: both swallow rows silently), so: on any Arrow error the file is scanned
    with the ``csv`` module to name the first bad row, and a file that held a quote is scanned
    once after the read to hold it to the same rule.
    """

    sep, names = _text_layout(path, suffixes)
    types = dict.fromkeys(feature_names, pa.float64()) | dict.fromkeys(text_columns, pa.string())
    read_columns = feature_names + list(text_columns)
    convert = pcsv.ConvertOptions(column_types=types, include_columns=read_columns, null_values=_NA_VALUES,
                                  strings_can_be_null=True)
    done = 0

    def pieces(table):  # a Table (read_csv: one record batch per 1 MB of text) or one record batch
        nonlocal done
        for offset in range(0, table.num_rows, chunk_rows):  # chunks of chunk_rows across its batches
            piece = table.slice(offset, chunk_rows)
            yield _arrow_matrix(piece, feature_names, path, done), _text_cells(piece, text_columns, path, done)
            done += piece.num_rows

    offset = None  # byte offset where the streaming reader takes over (0: the header is quoted)
    try:
        if '"' in _header_line(path):
            offset = 0
        else:
            plain = pcsv.ReadOptions(column_names=names)  # Arrow's own 1 MB blocks: one per thread
            parse = pcsv.ParseOptions(delimiter=sep)
            for start, block in _line_blocks(path, _TEXT_BLOCK_BYTES):
                if b'"' in block:
                    offset = start
                    break
                yield from pieces(pcsv.read_csv(pa.BufferReader(block), read_options=plain, parse_options=parse,
                                                convert_options=convert))
        if offset is not None:
            yield from _streamed(path, offset, sep, read_columns, convert, pieces, header=offset == 0)
    except pa.ArrowInvalid as error:
        raise _first_problem(path, sep, names, feature_names, check_cells_from=done, fallback=f"{error}") from None
    except _DAMAGED_GZIP as error:
        raise _damaged(path, error) from None
    if offset is not None:  # a quote was seen: hold the whole file to strict CSV
        problem = _first_problem(path, sep, names, feature_names, check_cells_from=None, expected_rows=done)
        if problem is not None:
            raise problem


def _streamed(path: Path, offset: int, sep: str, read_columns: list[str], convert, pieces, *, header: bool):
    """Rows from byte ``offset`` on by Arrow's quote-aware streaming reader (see ``_numeric_text_chunks``);
    ``header``: the stream starts with the header line (else with a data row)."""

    names = None if header else _text_layout(path, [s.lower() for s in path.suffixes])[1]
    parse = pcsv.ParseOptions(delimiter=sep, newlines_in_values=True)
    given, block = 0, _TEXT_BLOCK_BYTES
    while True:  # once, unless a row (or the header) is longer than a block: then again with larger blocks
        source, seen = _Tail(path, offset), 0
        try:
            reader = pcsv.open_csv(source, read_options=pcsv.ReadOptions(block_size=block, column_names=names),
                                   parse_options=parse, convert_options=convert)
            if reader.schema.names != read_columns:  # Arrow read the header itself: it must agree
                raise ValueError(f"{path}: the header could not be read consistently; check its quoting")
            for batch in reader:
                skip = min(max(given - seen, 0), batch.num_rows)  # rows a previous attempt gave
                seen += batch.num_rows
                for matrix, cells in pieces(batch.slice(skip)):
                    given += len(matrix)
                    yield matrix, cells
            return
        except pa.ArrowInvalid as error:
            if ("straddl" in str(error) or "cannot infer number of columns" in str(error)) and block < 2**30:
                block *= 8
                continue
            raise
        finally:
            source.close()


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def _line_blocks(path: Path, block_bytes: int) -> Iterator[tuple[int, bytes]]:
    """``(byte offset, block)`` of the data lines of a text file (header skipped, .gz decompressed),
    blocks of about ``block_bytes`` each ending at a line end (LF, CR or CRLF: a CRLF cut between its
    two bytes leaves an empty line, which the parser skips). Only for text without quotes, where
    every line end ends a row.

    Raises:
        ValueError: a damaged or truncated .gz file.
    """
    with _open_binary(path) as handle:
        carry, header, position = b"", True, 0  # position: file offset of carry's first byte
        while data := handle.read(block_bytes):
            block = carry + data
            if header:  # drop the header line, whatever its line end
                end = min((i for i in (block.find(b"\n"), block.find(b"\r")) if i >= 0), default=-1)
                if end < 0:
                    carry = block
                    continue
                block, header, position = block[end + 1:], False, position + end + 1
            cut = max(block.rfind(b"\n"), block.rfind(b"\r")) + 1
            if cut:
                yield position, block[:cut]
            carry, position = block[cut:], position + cut
        if carry.strip() and not header:
            yield position, carry


def _first_problem(path: Path, sep: str, names: list[str], feature_names: list[str], *,
                   check_cells_from: int | None, expected_rows: int | None = None,
                   fallback: str | None = None) -> ValueError | None:
    """The error naming the first data row that breaks the reading rule (strict CSV, the header's
    number of fields, and from data row ``check_cells_from`` on, feature cells that are numbers or
    missing), scanning the file with Python's ``csv`` module.

    Returns None when the file keeps the rule and holds ``expected_rows`` data rows (or no count is
    expected); with ``fallback`` set (Arrow's own message), never None: an error Arrow raised that
    this scan cannot place is still an error.
    """
    positions = [names.index(n) for n in feature_names]
    row, line = 0, 1
    pending: list[tuple[int, list[str]]] = []
    try:
        with _open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape",
                                                         newline="") as handle:
            reader = csv.reader(handle, delimiter=sep, strict=True)
            next(reader, None)
            line = reader.line_num + 1
            for record in reader:
                if record:
                    row += 1
                    if len(record) != len(names):
                        shown = sep.join(record)
                        return ValueError(
                            f"{path}: data row {row} (1-based, header not counted; line {line}) has {len(record)} "
                            f"field(s) but the header has {len(names)}: {shown[:80]!r}{'...' if len(shown) > 80 else ''}"
                            "; fix the line (an empty field is a missing value; a value holding the separator "
                            "must be quoted)")
                    if check_cells_from is not None and row > check_cells_from:
                        pending.append((row, [record[i] for i in positions]))
                        if len(pending) >= _CELL_GROUP:
                            if (bad := _bad_cell(pending, feature_names, path)) is not None:
                                return bad
                            pending = []
                line = reader.line_num + 1
            if pending and (bad := _bad_cell(pending, feature_names, path)) is not None:
                return bad
    except csv.Error as error:
        why = ("a quoted value opened there is never closed (the rest of the file would be read as one cell)"
               if "unexpected end of data" in str(error) else
               f"it is not valid CSV ({error}: after a closing quote comes a separator or a line end; a quote "
               "inside a quoted value is written twice)")
        return ValueError(f"{path}: data row {row + 1} (1-based, header not counted), starting on line {line}: "
                          f"{why}; fix the quoting")
    except _DAMAGED_GZIP as error:
        return _damaged(path, error)
    if expected_rows is not None and row != expected_rows:
        return ValueError(f"{path}: {row} data rows as CSV but {expected_rows} as read; check the quoting")
    if fallback is not None:
        return ValueError(f"{path}: cannot be read ({fallback}); no single row could be named")
    return None


def _bad_cell(rows: list[tuple[int, list[str]]], feature_names: list[str], path: Path) -> ValueError | None:
    """The error for the first cell of ``rows`` (data row, feature cells) that is neither missing nor a
    number by Arrow's parser (the fast path's rule: surrounding spaces allowed), else None."""

    missing = set(_NA_VALUES)
    for j, name in enumerate(feature_names):
        cells = [cells[j] for _, cells in rows]
        try:
            values = pa.array([None if c in missing else c for c in cells], pa.string())
            pc.cast(pc.utf8_trim_whitespace(values), pa.float64())
            continue
        except (pa.ArrowInvalid, UnicodeEncodeError):
            pass
        for (row, _), cell in zip(rows, cells):
            if cell in missing:
                continue
            try:
                pc.cast(pc.utf8_trim_whitespace(pa.array([cell], pa.string())), pa.float64())
            except (pa.ArrowInvalid, UnicodeEncodeError):
                shown = cell.encode("utf-8", "surrogateescape")
                text = repr(cell) if shown.decode("utf-8", "replace") == cell else f"{shown!r} (not UTF-8)"
                return ValueError(
                    f"{path}: column {name!r} has a non-numeric value {text} in data row {row} (1-based, header "
                    "not counted); fix the cell, leave it empty (or nan, NA, N/A, null, None) for a missing "
                    "value")
    return None


_DAMAGED_GZIP = (EOFError, gzip.BadGzipFile, zlib.error)


def _damaged(path: Path, error: Exception) -> ValueError:
    return ValueError(f"{path}: the compressed file is damaged or cut short ({error}); "
                      "compress it again or give the uncompressed table")


def _parquet_chunks(path: Path, feature_names: list[str], chunk_rows: int, text_columns: Sequence[str] = ()
                    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:

    try:
        handle = pq.ParquetFile(path)
        names = handle.schema_arrow.names
        repeated = sorted({n for n in feature_names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{path}: repeated column name(s) {repeated}; make the column names unique")
        _require_columns(pd.DataFrame(columns=names), feature_names, path, what="feature column")
        first_row = 0
        for batch in handle.iter_batches(batch_size=chunk_rows, columns=feature_names + list(text_columns)):
            yield _arrow_matrix(batch, feature_names, path, first_row), _text_cells(batch, text_columns, path, first_row)
            first_row += batch.num_rows
    except (pa.ArrowException, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot be read as Parquet ({error})") from None


def float32_matrix(columns: Sequence) -> np.ndarray:
    """(rows, len(columns)) C-ordered float32 of equal-length numeric columns (Arrow arrays or
    NumPy); Arrow nulls become NaN, finite values beyond the float32 range become inf.

    Filled one column per contiguous row of a (columns, rows) block, then transposed once:
    about 4x faster than writing strided columns of a row-major matrix.
    """
    block = np.empty((len(columns), len(columns[0]) if columns else 0), dtype=np.float32)
    with np.errstate(over="ignore"):
        for j, column in enumerate(columns):
            block[j] = column if isinstance(column, np.ndarray) else column.to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(block.T)


def _arrow_matrix(batch, feature_names: list[str], path: Path, first_row: int) -> np.ndarray:
    """(rows, features) float32 of an Arrow record batch or table; nulls become NaN.

    Numeric and boolean columns are copied straight; a text column (Parquet can hold
    numbers as strings) goes through the checking parser. +/-inf, and finite values beyond
    the float32 range, are refused naming column and row.
    """

    columns = []
    for name in feature_names:
        column = batch.column(name)
        if not (pat.is_integer(column.type) or pat.is_floating(column.type) or pat.is_boolean(column.type)
                or pat.is_null(column.type)):
            column = _parse_numbers(column.to_pandas(), name, path, first_row)
        columns.append(column)
    matrix = float32_matrix(columns)
    if np.isinf(matrix).any():
        row, j = np.argwhere(np.isinf(matrix))[0]
        value = batch.column(feature_names[j])[int(row)].as_py()
        why = "an infinite value" if np.isinf(float(value)) else "a value beyond the float32 range (about 3.4e38)"
        raise ValueError(
            f"{path}: column {feature_names[j]!r} has {why} {str(value)!r} in data row "
            f"{first_row + int(row) + 1} (1-based, header not counted); replace it with a finite "
            "number or leave it empty for a missing value"
        )
    return matrix


# --------------------------------------------------------------------------- reading


def _read_frame(path: Path) -> pd.DataFrame:
    """Read the whole file; cells are checked per column later."""
    _require_file(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in PARQUET_SUFFIXES:
        frame = _read_parquet(path)
    else:
        frame = _read_text(path, suffixes)
    if frame.columns.empty:
        raise ValueError(f"{path} is empty: expected a header line and data rows")
    if len(frame) == 0:
        raise ValueError(f"{path} has a header but no data rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path, engine="pyarrow")


def _read_text(path: Path, suffixes: list[str], **options) -> pd.DataFrame:
    """pandas parses clean numeric columns fast; a column with any other text comes back as
    strings and is parsed (with row-level errors) by ``_parse_numbers``. ``options`` go to
    ``pd.read_csv`` (e.g. ``usecols``, ``chunksize``)."""
    sep, _ = _text_layout(path, suffixes)
    options.setdefault("low_memory", False)  # one dtype per column, never per chunk
    try:
        return pd.read_csv(path, sep=sep, na_values=_NA_VALUES, keep_default_na=False, compression="infer",
                           **options)
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"{path} is empty: expected a header line and data rows") from error


def _text_layout(path: Path, suffixes: list[str]) -> tuple[str, list[str]]:
    """Separator and column names of a CSV/TSV file: the separator from the extension and the first
    line, the names from the first CSV record (a quoted name may hold a line break)."""
    stem_suffixes = suffixes[:-1] if suffixes and suffixes[-1] == ".gz" else suffixes
    header = _header_line(path)
    if not header:
        raise ValueError(f"{path} is empty: expected a header line and data rows")
    if stem_suffixes and stem_suffixes[-1] in TSV_SUFFIXES:
        sep = "\t"
    elif "," in header:
        sep = ","
    else:  # no comma in the first line: a tab- or semicolon-separated table (Excel writes ";" in many locales)
        sep = "\t" if "\t" in header else ";" if ";" in header else ","
    names = _header_record(path, sep) if '"' in header else next(csv.reader([header], delimiter=sep), [])
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:  # pandas would silently rename them "x.1", "x.2"
        raise ValueError(f"{path}: repeated column name(s) {repeated}; make the header unique")
    return sep, names


def _header_record(path: Path, sep: str) -> list[str]:
    """The first CSV record of a text file (its header, quoted names and all)."""
    try:
        with _open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace",
                                                         newline="") as handle:
            return next(csv.reader(handle, delimiter=sep, strict=True), [])
    except csv.Error as error:
        raise ValueError(f"{path}: the header line is not valid CSV ({error}); fix its quoting") from None
    except _DAMAGED_GZIP as error:
        raise _damaged(path, error) from None


def _header_line(path: Path) -> str:
    compressed = path.suffix.lower() == ".gz"
    if not compressed:
        with open(path, "rb") as handle:
            if handle.read(2) == b"\x1f\x8b":
                raise ValueError(f"{path} is gzip-compressed but not named .gz: rename it {path.name}.gz "
                                 "(or decompress it)")
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:  # -sig: drop a BOM
            return handle.readline().rstrip("\r\n")
    except _DAMAGED_GZIP as error:
        raise _damaged(path, error) from None


def _require_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"no such table file: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file (a directory or a device); give the path of a CSV, TSV "
                         "or Parquet table")


def _require_columns(frame: pd.DataFrame, wanted: Sequence[str], path: Path, what: str) -> None:
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        shown = 20  # a wide table can lack hundreds (e.g. a file that is not the expected table at all)
        listed = ", ".join(repr(c) for c in missing[:shown]) + (
            f" and {len(missing) - shown} more" if len(missing) > shown else "")
        fix = ("check the column name (the label option takes the header's spelling)" if what == "label column"
               else "add them under these exact names (the header's spelling; extra columns are ignored)")
        raise ValueError(
            f"{path}: missing {what}{'s' if len(missing) > 1 else ''} {listed}; "
            f"available columns: {_some(list(frame.columns))}; {fix}"
        )


# --------------------------------------------------------------------------- parsing


def _default_feature_columns(frame: pd.DataFrame, label_column: str, path: Path) -> list[str]:
    candidates = [c for c in frame.columns if c not in (label_column, TIMESTAMP_COLUMN)]
    text_only = [c for c in candidates if _has_no_number(frame[c])]
    if text_only:
        logger.warning(
            "%s: skipping column(s) without any number: %s (pass feature_columns to choose)",
            path,
            ", ".join(text_only),
        )
    return [c for c in candidates if c not in text_only]


def _has_no_number(column: pd.Series) -> bool:
    if _is_numeric_dtype(column):
        return False
    missing = _missing_mask(column)
    if missing.all():
        return False  # an all-empty column is a numeric column with every cell missing
    parsed = pd.to_numeric(column[~missing].astype(str).str.strip(), errors="coerce")
    return bool(parsed.isna().all())


def _is_numeric_dtype(column: pd.Series) -> bool:
    """Typed numbers (Parquet ints, floats, bools), as opposed to text still to parse."""
    return bool(pd.api.types.is_numeric_dtype(column.dtype))


def _missing_mask(column: pd.Series) -> np.ndarray:
    """True where a cell is missing: NA in the frame, or a missing token as text."""
    na = column.isna().to_numpy()
    if _is_numeric_dtype(column):
        return na
    text = column.astype(str).str.strip().str.lower()
    return na | text.isin(MISSING_TOKENS).to_numpy()


def _parse_numbers(column: pd.Series, name: str, path: Path, first_row: int = 0) -> np.ndarray:
    """float64 values of one column; missing cells NaN; errors name the row and value."""
    missing = _missing_mask(column)
    if _is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = column.astype(str).str.strip()
        values = pd.to_numeric(text.where(~missing, None), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        bad = np.flatnonzero(np.isnan(values) & ~missing)
        if bad.size:
            row = int(bad[0])
            raise ValueError(
                f"{path}: column {name!r} has a non-numeric value {str(column.iloc[row])!r} in data "
                f"row {first_row + row + 1} (1-based, header not counted){_more(bad)}; fix the cell, leave "
                "it empty for a missing value"
            )
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        row = int(infinite[0])
        raise ValueError(
            f"{path}: column {name!r} has an infinite value {str(column.iloc[row])!r} in data row "
            f"{first_row + row + 1} (1-based, header not counted){_more(infinite)}; replace it with a "
            "finite number or leave it empty for a missing value"
        )
    return values


def _some(names: list[str], limit: int = 20) -> str:
    """At most ``limit`` names for an error message (a wide table has hundreds of columns)."""
    return str(names) if len(names) <= limit else f"{names[:limit]} and {len(names) - limit} more"


def _more(rows: np.ndarray) -> str:
    return f" and {rows.size - 1} more row(s)" if rows.size > 1 else ""


def _feature_matrix(frame: pd.DataFrame, columns: Sequence[str], path: Path, first_row: int = 0) -> np.ndarray:
    matrix = np.empty((len(frame), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        matrix[:, j] = _parse_numbers(frame[name], name, path, first_row)
    return matrix


def _encode_labels(
    column: pd.Series,
    label_column: str,
    class_names: Sequence[str | int] | None,
    path: Path,
) -> tuple[np.ndarray, tuple[str, ...]]:
    missing = np.flatnonzero(_missing_mask(column))
    if missing.size:
        rows = ", ".join(str(r + 1) for r in missing[:_MAX_LISTED])
        raise ValueError(
            f"{path}: label column {label_column!r} is empty in {missing.size} data row(s) "
            f"(1-based): {rows}{' ...' if missing.size > _MAX_LISTED else ''}; "
            "label every row or drop the unlabelled rows"
        )
    text = column.astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    is_integer = bool(np.all(np.isfinite(numbers) & (numbers == np.round(numbers))))
    if is_integer:
        text = pd.Series(numbers.astype(np.int64).astype(str), index=column.index)
    if class_names is None:
        unique = text.unique()
        names = tuple(
            sorted(unique, key=int) if is_integer else sorted(str(u) for u in unique)
        )
    else:
        names = tuple(str(n) for n in class_names)
        _check_unique(names, "class_names")
        unknown = sorted(set(text.unique()) - set(names))
        if unknown:
            raise ValueError(
                f"{path}: label(s) {unknown} in column {label_column!r} are not in "
                f"the known classes {list(names)} (the training table's, when comparing); drop "
                "those rows, or add examples of them to the training data"
            )
    index = {name: i for i, name in enumerate(names)}
    return text.map(index).to_numpy(dtype=np.int64), names


def _timestamps(frame: pd.DataFrame, path: Path) -> np.ndarray | None:
    if TIMESTAMP_COLUMN not in frame.columns:
        return None
    column = frame[TIMESTAMP_COLUMN]
    if _missing_mask(column).any():
        logger.warning("%s: timestamp column has empty cells; timestamps not kept", path)
        return None
    numbers = pd.to_numeric(column.astype(str).str.strip(), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    if not np.all(np.isfinite(numbers) & (numbers == np.round(numbers))):
        logger.warning("%s: timestamp column is not integer; timestamps not kept", path)
        return None
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy(dtype=np.int64)
    if _is_numeric_dtype(column) or np.abs(numbers).max() < 2**53:
        return numbers.astype(np.int64)
    # Beyond 2**53 float64 drops digits (e.g. nanosecond epochs): parse the text exactly.
    return column.astype(str).str.strip().astype(np.int64).to_numpy()


# --------------------------------------------------------------------------- helpers


def _as_int64(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        as_float = array.astype(np.float64)
        if not np.all(np.isfinite(as_float) & (as_float == np.round(as_float))):
            raise ValueError(f"{name} must hold integers; got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _check_unique(names: tuple[str, ...], what: str) -> None:
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"{what} must be unique; repeated: {duplicates}")
