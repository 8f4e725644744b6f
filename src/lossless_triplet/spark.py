"""``detect`` over telemetry archives on Apache Spark: each source's rows in time order, on executors.

An operator's telemetry is partitioned Parquet: many sources (networks, elements), years of
minutes. :func:`detect_dataframe` runs a saved fault model over any Spark DataFrame holding the
model's feature columns, a source column and a time column:

- rows are grouped by source (``groupBy(source).applyInPandas``) and each group is sorted by time,
  so views that look back (delta: the previous row, baseline: the previous 10) see exactly the rows
  single-machine ``detect`` sees on that source's rows in time order, wherever Spark's partitions
  cut the table; a group is identified in chunks of ``chunk_rows`` with the look-back rows carried
  from one chunk to the next (memory per task: one source's rows plus one chunk);
- the model bundle is shipped once per executor (``SparkContext.addFile``, read back with
  ``SparkFiles.get`` and loaded once per Python worker), never pickled per row; torch uses one
  thread per task (Spark runs one task per core);
- the result has ``detect``'s columns (``row`` is the 0-based position within the source, in time
  order) plus the source and time columns.

Bad input gets a clear error before anything runs: a missing column (each named), a null source
or time (a row shown); two rows with one time in one source are refused by the task that meets
them (the source and time named).

Runs unchanged on ``local[*]`` and on a cluster (``spark-submit``; see docs/spark.md): the
executors need this package installed (or shipped as a packed virtualenv with ``--archives``).
pyspark is the optional extra ``spark``; Spark needs Java 17.

Source: M. Zaharia et al., "Apache Spark: a unified engine for big data processing", CACM 2016;
pandas UDFs: the Spark documentation, "Pandas API on Spark / Grouped Map".
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lossless_triplet.bundle import FaultModel
from lossless_triplet.pipeline.detect import PREDICTION_COLUMNS, identified_chunks, prediction_columns

# pyspark is imported inside the functions that use it: an optional extra (spark), so that this module
# imports (and says what to install) without it.
__all__ = ["detect_dataframe", "detect_parquet", "spark_session", "main"]

CHUNK_ROWS = 65_536
_MARK = "lossless-triplet:"  # prefixes errors raised in tasks, to find them in Spark's wrapped exception
_MODELS: dict[str, object] = {}  # per Python worker: bundle path -> loaded FaultModel


def spark_session(master: str | None = None, app_name: str = "lossless-triplet detect"):
    """The active SparkSession, or a new one (``master`` default: ``local[*]`` outside spark-submit).

    Sets the workers' Python to this interpreter when ``PYSPARK_PYTHON`` is unset (so that local
    workers import this package and its dependencies).

    Raises:
        ImportError: pyspark is not installed (the message names the extra).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ImportError("the Spark engine needs pyspark and Java 17: pip install 'lossless-triplet[spark]'") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit (it sets one)
        master = "local[*]"
    if master is not None:
        builder = builder.master(master)
        if master.startswith("local"):  # a cluster's 200 shuffle partitions are 200 tiny tasks on one machine
            builder = builder.config("spark.sql.shuffle.partitions", str(2 * (os.cpu_count() or 1)))
    return builder.config("spark.ui.showConsoleProgress", "false").getOrCreate()


def _output_schema(frame, source_column: str, time_column: str):
    from pyspark.sql.types import BooleanType, FloatType, LongType, StringType, StructField, StructType

    types = {f.name: f.dataType for f in frame.schema.fields}
    return StructType([StructField("row", LongType()), StructField("status", StringType()),
                       StructField("nearest", StringType()), StructField("distance", FloatType()),
                       StructField("unknown", BooleanType()), StructField("unknown_score", FloatType()),
                       StructField("element", StringType()), StructField("evidence", StringType()),
                       StructField(source_column, types[source_column]), StructField(time_column, types[time_column])])


def _check_input(frame, feature_names, source_column: str, time_column: str) -> None:
    from pyspark.sql import functions as F

    for kind, name in (("source", source_column), ("time", time_column)):
        if name in PREDICTION_COLUMNS:
            raise ValueError(f"the {kind} column {name!r} is also an output column of detect "
                             f"({', '.join(PREDICTION_COLUMNS)}); rename it in the data")
    columns = set(frame.columns)
    missing = [c for c in (source_column, time_column) if c not in columns]
    if missing:
        raise ValueError(f"the data has no column(s) {missing} (--source-column / --time-column); "
                         f"columns: {sorted(columns)[:20]}")
    lacking = [n for n in feature_names if n not in columns]
    if lacking:
        listed = ", ".join(repr(n) for n in lacking[:20]) + (f" and {len(lacking) - 20} more" if len(lacking) > 20 else "")
        raise ValueError(f"the data lacks the model's feature column(s) {listed}; add them under these exact names")
    null = frame.where(F.col(source_column).isNull() | F.col(time_column).isNull()).limit(1).collect()
    if null:
        raise ValueError(f"a row has no {source_column if null[0][source_column] is None else time_column} "
                         f"({source_column}={null[0][source_column]!r}, {time_column}={null[0][time_column]!r}); "
                         "every row needs its source and its time")


def _identify_group(model_file: str, feature_names: list[str], source_column: str, time_column: str,
                    chunk_rows: int):
    """The pandas function each task runs on one source's rows (closure over plain values only)."""

    def identify(frame):

        model = _model(model_file)
        frame = frame.sort_values(time_column, kind="stable")
        times = frame[time_column]
        if times.duplicated().any():
            when = times[times.duplicated()].iloc[0]
            source = frame[source_column].iloc[0]
            raise ValueError(f"{_MARK} source {source!r} has two rows at {time_column}={when!r}; one row per "
                             "source and time (a view that looks back needs an order)")
        raw = frame[feature_names].to_numpy(dtype=np.float32, na_value=np.nan)
        chunks = (raw[start:start + chunk_rows] for start in range(0, len(raw), chunk_rows))
        parts = [pd.DataFrame(prediction_columns(result)) for _, result in identified_chunks(model, chunks)]
        out = (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PREDICTION_COLUMNS[1:]))
        out.insert(0, "row", np.arange(len(out), dtype=np.int64))
        out[source_column] = frame[source_column].to_numpy()
        out[time_column] = times.to_numpy()
        return out

    return identify


def _model(model_file: str):
    """The bundle shipped with ``addFile``, loaded once per Python worker, torch and BLAS on one thread."""
    model = _MODELS.get(model_file)
    if model is None:
        from pyspark import SparkFiles
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(1)  # one task per core: more threads per task only contend
        threadpool_limits(1, user_api="blas")  # for the rest of this worker process (the memory's products)
        model = _MODELS[model_file] = FaultModel.load(SparkFiles.get(model_file))
    return model


def detect_dataframe(frame, model_dir: str | Path, *, source_column: str, time_column: str,
                     chunk_rows: int = CHUNK_ROWS):
    """Identify every row of a Spark DataFrame, per source in time order (see the module docstring).

    Args:
        frame: a ``pyspark.sql.DataFrame`` with the model's feature columns, ``source_column`` and
            ``time_column`` (any orderable type: timestamp, integer, ISO text); other columns are
            ignored.
        model_dir: a saved model bundle on a path the driver can read; it is shipped to the executors.
        source_column: the network / element each row belongs to.
        time_column: the row's time within its source.
        chunk_rows: rows identified at once within a source (bounds a task's working memory).

    Returns:
        A lazy DataFrame: ``row`` (long, 0-based within the source in time order), ``status``,
        ``nearest`` (str), ``distance`` (float), ``unknown`` (bool), ``unknown_score`` (float), the
        source and the time column.

    Raises:
        ValueError: a missing column, a null source or time (before anything runs); two rows at one
            time in one source (when the result is computed; see :func:`detect_parquet`).
        ImportError: pyspark is missing.
    """

    model_dir = Path(model_dir).resolve()
    feature_names = list(FaultModel.load(model_dir).feature_names)  # also checks the bundle on the driver
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows} must be >= 1")
    _check_input(frame, feature_names, source_column, time_column)
    frame.sparkSession.sparkContext.addFile(str(model_dir), recursive=True)
    selected = frame.select(*feature_names, source_column, time_column)
    return selected.groupBy(source_column).applyInPandas(
        _identify_group(model_dir.name, feature_names, source_column, time_column, chunk_rows),
        schema=_output_schema(frame, source_column, time_column))


def detect_parquet(model_dir: str | Path, data: str | Path, out: str | Path, *, source_column: str,
                   time_column: str, spark=None, chunk_rows: int = CHUNK_ROWS) -> int:
    """Read a Parquet directory (or file), identify every row (:func:`detect_dataframe`) and write
    the result as Parquet into ``out`` (which must not exist). Returns the number of rows written.

    Raises:
        ValueError: as :func:`detect_dataframe` (an error raised inside a task is re-raised here with
            its own message); ``out`` exists; ``data`` is not readable Parquet.
        FileNotFoundError: no ``data``.
    """
    spark = spark or spark_session()
    data, out = Path(data), Path(out)
    if not data.exists():
        raise FileNotFoundError(f"no such Parquet file or directory: {data}")
    if out.exists():
        raise ValueError(f"{out} exists; give a new directory for the results (Spark writes several files)")
    try:
        frame = spark.read.parquet(str(data))
    except Exception as error:  # Spark's AnalysisException: not Parquet, no files
        raise ValueError(f"{data}: cannot be read as Parquet ({str(error).splitlines()[0]})") from None
    result = detect_dataframe(frame, model_dir, source_column=source_column, time_column=time_column,
                              chunk_rows=chunk_rows)
    try:
        result.write.parquet(str(out))
    except Exception as error:
        text = str(error)
        if _MARK in text:  # our own error from a task: say it plainly
            line = next(line for line in text.splitlines() if _MARK in line)
            raise ValueError(line[line.index(_MARK) + len(_MARK):].strip()) from None
        raise
    return spark.read.parquet(str(out)).count()


def main(argv=None) -> int:
    """``spark-submit lossless_triplet/spark.py --model M --data DIR --source-column S --time-column T --out OUT``
    (the same as ``lossless-triplet detect --engine spark``)."""
    p = argparse.ArgumentParser(prog="lossless_triplet.spark", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="Parquet directory or file")
    p.add_argument("--source-column", required=True)
    p.add_argument("--time-column", required=True)
    p.add_argument("--out", type=Path, required=True, help="directory to write (must not exist)")
    p.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    args = p.parse_args(argv)
    n = detect_parquet(args.model, args.data, args.out, source_column=args.source_column,
                       time_column=args.time_column, spark=spark_session(args.master))
    print(f"identified {n} rows; wrote {args.out}")
    return 0


if __name__ == "__main__":  # spark-submit .../lossless_triplet/spark.py: run the installed module's main, so
    # that the functions shipped to the executors are found there by name, not pickled from __main__
    from lossless_triplet.spark import main as installed_main

    raise SystemExit(installed_main())
