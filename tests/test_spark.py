"""``detect --engine spark`` equals single-machine ``detect``, row for row, on local[2].

Skipped without pyspark (the ``spark`` extra) or Java; ``.ci/run`` installs both.
"""

import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17 (openjdk-17-jre-headless)", allow_module_level=True)

from lossless_triplet.cli import main  # noqa: E402
from lossless_triplet.data import Dataset  # noqa: E402
from lossless_triplet.pipeline import fit_fault_model  # noqa: E402
from lossless_triplet.pipeline.detect import detect_file  # noqa: E402
from lossless_triplet.spark import detect_dataframe, detect_parquet, spark_session  # noqa: E402
from lossless_triplet.training import TrainConfig  # noqa: E402

NAMES = [f"{kpi}/node-{i}" for kpi in ("cpu", "rx") for i in range(3)]
CLASSES = ("normal", "link-down", "cpu-hog")
pytestmark = pytest.mark.slow


def synthetic(n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=(0.7, 0.15, 0.15))
    centres = np.random.default_rng(0).normal(0, 2, size=(3, len(NAMES)))
    x = centres[labels] + rng.normal(0, 0.4, size=(n, len(NAMES)))
    x[rng.random(x.shape) < 0.02] = np.nan
    return Dataset(x.astype(np.float32), labels, tuple(NAMES), CLASSES)


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    # A baseline view: each row looks back 10 rows of its own source.
    model = fit_fault_model(synthetic(300, 1), view="kpi-stats+baseline", representation="code",
                            config=TrainConfig(embedding_dim=4, hidden=(16,), epochs=2, steps_per_epoch=10),
                            progress=False)
    return model.save(tmp_path_factory.mktemp("spark") / "model")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Three sources of 70 minutes each, shuffled over 4 Parquet files (a source spans every file)."""
    parts = []
    for k, source in enumerate(["rr-01", "rr-02", "tr-07"]):
        data = synthetic(70, 10 + k)
        frame = pd.DataFrame(data.features, columns=NAMES)
        frame["source"] = source
        frame["minute"] = pd.date_range("2026-01-01", periods=70, freq="min") + pd.Timedelta(minutes=k)
        parts.append(frame)
    frame = pd.concat(parts).sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame["extra"] = "ignored"
    folder = tmp_path_factory.mktemp("archive") / "telemetry"
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 4)):
        frame.iloc[rows].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder, frame


def test_spark_equals_detect_row_for_row(spark, model_dir, archive, tmp_path):
    folder, frame = archive
    out = tmp_path / "out"
    assert detect_parquet(model_dir, folder, out, source_column="source", time_column="minute", spark=spark) == 210
    got = pd.read_parquet(out).sort_values(["source", "minute"]).reset_index(drop=True)
    assert list(got.columns) == ["row", "status", "nearest", "distance", "unknown", "unknown_score", "element",
                                 "evidence", "source", "minute"]
    from lossless_triplet.bundle import FaultModel

    model = FaultModel.load(model_dir)
    for source, rows in frame.sort_values("minute").groupby("source"):
        table = tmp_path / f"{source}.parquet"
        rows[NAMES].to_parquet(table, index=False)
        detect_file(model, table, tmp_path / f"{source}.csv", progress=False)
        want = pd.read_csv(tmp_path / f"{source}.csv")
        mine = got[got["source"] == source].reset_index(drop=True)
        assert mine["row"].tolist() == want["row"].tolist()
        assert mine["status"].tolist() == want["status"].tolist()
        assert mine["nearest"].tolist() == want["nearest"].tolist()
        assert mine["unknown"].tolist() == want["unknown"].tolist()
        assert mine["element"].tolist() == want["element"].fillna("").tolist()
        assert mine["evidence"].tolist() == want["evidence"].fillna("").tolist()
        np.testing.assert_allclose(mine["distance"], want["distance"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mine["unknown_score"], want["unknown_score"], rtol=1e-5, atol=1e-6)


def test_bad_input_gets_a_clear_error(spark, model_dir, archive, tmp_path):
    folder, frame = archive
    with pytest.raises(ValueError, match=r"lacks the model's feature column\(s\) 'rx/node-2'"):
        detect_dataframe(spark.createDataFrame(frame.drop(columns=["rx/node-2"])), model_dir,
                         source_column="source", time_column="minute")
    with pytest.raises(ValueError, match="source column 'status' is also an output column"):
        detect_dataframe(spark.createDataFrame(frame.rename(columns={"source": "status"})), model_dir,
                         source_column="status", time_column="minute")
    with pytest.raises(ValueError, match=r"no column\(s\) \['site'\]"):
        detect_dataframe(spark.createDataFrame(frame), model_dir, source_column="site", time_column="minute")
    for column in ("source", "minute"):
        nulls = frame.copy()
        nulls[column] = nulls[column].astype(object)
        nulls.loc[5, column] = None
        nulls.to_parquet(tmp_path / f"null-{column}.parquet", index=False)  # Parquet keeps the null a null
        with pytest.raises(ValueError, match=f"a row has no {column}"):
            detect_parquet(model_dir, tmp_path / f"null-{column}.parquet", tmp_path / "o", source_column="source",
                           time_column="minute", spark=spark)
    twice = pd.concat([frame, frame.iloc[[3]]])
    twice.to_parquet(tmp_path / "twice.parquet", index=False)
    with pytest.raises(ValueError, match=rf"source '{frame.loc[3, 'source']}' has two rows at minute="):
        detect_parquet(model_dir, tmp_path / "twice.parquet", tmp_path / "o", source_column="source",
                       time_column="minute", spark=spark)


def test_the_cli_engine(spark, model_dir, archive, tmp_path, capsys):
    folder, _ = archive
    out = tmp_path / "cli"
    assert main(["detect", "--engine", "spark", "--model", str(model_dir), "--data", str(folder), "--source-column",
                 "source", "--time-column", "minute", "--out", str(out)]) == 0
    assert len(pd.read_parquet(out)) == 210 and "identified 210 rows" in capsys.readouterr().out
    assert main(["detect", "--engine", "spark", "--model", str(model_dir), "--data", str(folder), "--out",
                 str(tmp_path / "x")]) == 2
    assert "--source-column and --time-column" in capsys.readouterr().err
