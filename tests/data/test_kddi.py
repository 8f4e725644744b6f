"""The bundled KDDI NFV data (Kawasaki et al., NOMS 2020) against its README and source TSVs."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossless_triplet.data import KDDI_CLASSES, export_kddi_csv, load_kddi_nfv, load_table

# /work/shared sits beside the clone (../shared from the repository root), in CI as here.
SOURCE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "kddi-nfv-ps032"

# Class counts from the data README, in KDDI_CLASSES order.
COUNTS = {
    "train": (3870, 95, 191, 55, 233, 762, 763),
    "eval": (3505, 377, 329, 140, 157, 423, 402),
}
GROUPS = {
    "cpu_util": 5,
    "rx-pps": 22,
    "tx-pps": 22,
    "network-incoming-packets-rate": 22,
    "network-outgoing-packets-rate": 22,
    "prefix-activity-received-current-prefixes": 6,
    "admin-status": 22,
}


@pytest.fixture(scope="module", params=["train", "eval"])
def split(request):
    return request.param, load_kddi_nfv(request.param)


def test_shapes_dtypes_and_class_counts(split):
    name, data = split
    assert len(data) == {"train": 5969, "eval": 5333}[name]
    assert data.features.shape == (len(data), 121)
    assert data.features.dtype == np.float32 and data.labels.dtype == np.int64
    assert data.timestamps.dtype == np.int64
    assert data.class_names == KDDI_CLASSES
    assert tuple(data.class_counts().values()) == COUNTS[name]


def test_feature_groups_and_no_leak_columns(split):
    _, data = split
    stems = [n.split("/", 1)[0] for n in data.feature_names]
    assert {s: stems.count(s) for s in set(stems)} == GROUPS
    assert not any(s.startswith("failure") or s == "cpu-util" for s in stems)
    assert "rx-pps/IntGW-01+link-intgw-exgw-a-1" in data.feature_names
    assert "cpu_util/IntGW-01" in data.feature_names


def test_time_order_and_missing_cells(split):
    _, data = split
    assert np.all(np.diff(data.timestamps) > 0)
    assert not np.isinf(data.features).any()
    missing = np.isnan(data.features).any(axis=0)
    # Only rx-pps, tx-pps and admin-status have empty cells in the source.
    with_missing = {n.split("/", 1)[0] for n, m in zip(data.feature_names, missing) if m}
    assert with_missing == {"rx-pps", "tx-pps", "admin-status"}


def test_test_is_an_alias_of_eval_and_bad_split_is_refused():
    np.testing.assert_array_equal(load_kddi_nfv("test").timestamps, load_kddi_nfv("eval").timestamps)
    with pytest.raises(ValueError, match="'train', 'eval'"):
        load_kddi_nfv("validation")


@pytest.mark.skipif(not SOURCE.is_dir(), reason="source data ../shared/data not beside the clone")
@pytest.mark.parametrize(
    ("split_name", "kpi", "row"),
    [
        ("train", "cpu_util", 0),
        ("train", "rx-pps", 1234),
        ("train", "network-incoming-packets-rate", 5968),
        ("eval", "prefix-activity-received-current-prefixes", 777),
        ("eval", "admin-status", 4000),
        ("eval", "tx-pps", 2500),
    ],
)
def test_values_equal_source_tsv(split_name, kpi, row):
    source = pd.read_csv(SOURCE / split_name / f"{kpi}.tsv", sep="\t", index_col=0)
    data = load_kddi_nfv(split_name)
    at = np.flatnonzero(data.timestamps == source["timestamp"].iloc[row])
    assert at.size == 1
    for column in source.columns.drop("timestamp")[:3]:
        expected = np.float32(source[column].iloc[row])
        got = data.features[at[0], data.feature_names.index(f"{kpi}/{column}")]
        np.testing.assert_array_equal(got, expected)


@pytest.mark.skipif(not SOURCE.is_dir(), reason="source data ../shared/data not beside the clone")
def test_labels_and_missing_cells_equal_source():
    data = load_kddi_nfv("eval")
    labels = pd.read_csv(SOURCE / "eval" / "label.tsv", sep="\t", index_col=0)
    np.testing.assert_array_equal(data.timestamps, labels["timestamp"].to_numpy())
    np.testing.assert_array_equal(data.labels, labels["status"].to_numpy().astype(np.int64))
    rx = pd.read_csv(SOURCE / "eval" / "rx-pps.tsv", sep="\t", index_col=0)
    columns = [i for i, n in enumerate(data.feature_names) if n.startswith("rx-pps/")]
    np.testing.assert_array_equal(
        np.isnan(data.features[:, columns]), rx.drop(columns="timestamp").isna().to_numpy()
    )


def test_export_csv_reads_back_identically(tmp_path):
    path = export_kddi_csv("eval", tmp_path / "sub" / "eval.csv")
    header = path.read_text().split("\n", 1)[0].split(",")
    assert header[:2] == ["timestamp", "status"]
    back = load_table(path, "status", class_names=KDDI_CLASSES)
    data = load_kddi_nfv("eval")
    np.testing.assert_array_equal(back.features, data.features)  # NaN positions included
    np.testing.assert_array_equal(back.labels, data.labels)
    np.testing.assert_array_equal(back.timestamps, data.timestamps)
    assert back.feature_names == data.feature_names
    assert set(pd.read_csv(path, usecols=["status"])["status"]) == set(KDDI_CLASSES)
