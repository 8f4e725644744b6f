"""load_table / read_feature_table / Dataset: formats, labels and one clear error per misuse."""

import gzip
import logging

import numpy as np
import pandas as pd
import pytest

from lossless_triplet.data import Dataset, load_table, read_feature_table


def write(path, text):
    path.write_text(text)
    return path


def test_string_labels_sorted_with_nan_kept_and_timestamp_not_a_feature(tmp_path):
    path = write(
        tmp_path / "t.csv",
        "timestamp,a,label,b\n"
        "20200101000000,1.5,normal,2\n"
        "20200101000100,,fault-x,3\n"
        "20200101000200,2.5,normal,NaN\n",
    )
    data = load_table(path, "label")
    assert data.class_names == ("fault-x", "normal")
    np.testing.assert_array_equal(data.labels, [1, 0, 1])
    assert data.feature_names == ("a", "b")
    assert data.features.dtype == np.float32 and data.labels.dtype == np.int64
    np.testing.assert_array_equal(data.features, [[1.5, 2], [np.nan, 3], [2.5, np.nan]])
    np.testing.assert_array_equal(data.timestamps, [20200101000000, 20200101000100, 20200101000200])


def test_integer_labels_sorted_numerically(tmp_path):
    path = write(tmp_path / "t.csv", "x,status\n1,10\n2,3.0\n3,0\n4,3\n")
    data = load_table(path, "status")
    assert data.class_names == ("0", "3", "10")
    np.testing.assert_array_equal(data.labels, [2, 1, 0, 1])
    assert data.timestamps is None


def test_class_names_fix_the_order_and_unknown_label_is_named(tmp_path):
    path = write(tmp_path / "t.csv", "x,y\n1,b\n2,a\n3,b\n")
    data = load_table(path, "y", class_names=["b", "a", "unseen"])
    np.testing.assert_array_equal(data.labels, [0, 1, 0])
    assert data.class_counts() == {"b": 2, "a": 1, "unseen": 0}
    assert data.label_names.tolist() == ["b", "a", "b"]  # the file's labels, row by row
    with pytest.raises(ValueError, match=r"\['a'\].*not in the known classes \['b', 'c'\]"):
        load_table(path, "y", class_names=["b", "c"])


def test_missing_label_column_lists_available_columns(tmp_path):
    path = write(tmp_path / "t.csv", "x,y\n1,2\n")
    with pytest.raises(ValueError, match=r"'status'.*available columns: \['x', 'y'\]"):
        load_table(path, "status")


@pytest.mark.parametrize("text", ["", "x,label\n"])
def test_empty_file_or_header_only(tmp_path, text):
    with pytest.raises(ValueError, match="empty|no data rows"):
        load_table(write(tmp_path / "t.csv", text), "label")


def test_missing_label_cells_name_the_rows(tmp_path):
    path = write(tmp_path / "t.csv", "x,label\n1,a\n2,\n3,a\n4,NA\n")
    with pytest.raises(ValueError, match=r"2 data row\(s\) \(1-based\): 2, 4"):
        load_table(path, "label")


def test_non_numeric_cell_names_column_row_and_value(tmp_path):
    rows = [f"{i},{i * 2},a" for i in range(20)]
    rows[16] = "16,oops,a"  # data row 17
    path = write(tmp_path / "t.csv", "x,speed,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"column 'speed'.*'oops'.*data row 17"):
        load_table(path, "label")


@pytest.mark.parametrize("cell", ["inf", "-inf", "1e999"])
def test_infinite_cell_is_refused(tmp_path, cell):
    path = write(tmp_path / "t.csv", f"x,label\n1,a\n{cell},b\n")
    with pytest.raises(ValueError, match=r"column 'x'.*infinite.*data row 2"):
        load_table(path, "label")


def test_text_only_column_is_skipped_by_default_but_refused_when_listed(tmp_path, caplog):
    path = write(tmp_path / "t.csv", "host,x,label\nr1,1,a\nr2,2,b\n")
    with caplog.at_level(logging.WARNING, logger="lossless_triplet"):
        data = load_table(path, "label")
    assert data.feature_names == ("x",)
    assert "host" in caplog.text
    with pytest.raises(ValueError, match=r"column 'host'.*'r1'.*data row 1"):
        load_table(path, "label", feature_columns=["x", "host"])


def test_feature_columns_select_and_order(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,c,label\n1,2,3,x\n")
    data = load_table(path, "label", feature_columns=["c", "a"])
    assert data.feature_names == ("c", "a")
    np.testing.assert_array_equal(data.features, [[3, 1]])
    with pytest.raises(ValueError, match="'zz'"):
        load_table(path, "label", feature_columns=["a", "zz"])
    with pytest.raises(ValueError, match="label"):
        load_table(path, "label", feature_columns=["a", "label"])


@pytest.mark.parametrize("name", ["t.tsv", "t.tab", "t.txt"])
def test_tsv_by_extension_or_sniffed(tmp_path, name):
    path = write(tmp_path / name, "x\ty\tlabel\n1\t2\ta\n3\t4\tb\n")
    data = load_table(path, "label")
    assert data.feature_names == ("x", "y")
    np.testing.assert_array_equal(data.features, [[1, 2], [3, 4]])


def test_semicolon_separated_tables_are_read_like_comma_separated_ones(tmp_path):
    # Excel's CSV in many locales. Before, the whole header came back as one column name.
    comma = load_table(write(tmp_path / "c.csv", "x,y,label\n1,2.5,a\n3,4,b\n"), "label")
    semicolon = load_table(write(tmp_path / "s.csv", "x;y;label\n1;2.5;a\n3;4;b\n"), "label")
    assert semicolon.feature_names == comma.feature_names == ("x", "y")
    np.testing.assert_array_equal(semicolon.features, comma.features)
    with pytest.raises(ValueError, match="'1,5'"):  # a decimal comma is named, not misread
        load_table(write(tmp_path / "d.csv", "x;y;label\n1,5;2;a\n3;4;b\n"), "label")


def test_gzip_csv(tmp_path):
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("x,label\n1,a\n2,b\n")
    np.testing.assert_array_equal(load_table(path, "label").features, [[1], [2]])


def test_parquet_roundtrip(tmp_path):
    frame = pd.DataFrame(
        {"timestamp": [5, 6, 7], "x": [1.0, np.nan, 3.0], "n": [1, 2, 3], "status": [4, 0, 4]}
    )
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    data = load_table(path, "status")
    assert data.class_names == ("0", "4") and data.feature_names == ("x", "n")
    np.testing.assert_array_equal(data.labels, [1, 0, 1])
    np.testing.assert_array_equal(data.features, [[1, 1], [np.nan, 2], [3, 3]])
    np.testing.assert_array_equal(data.timestamps, [5, 6, 7])


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        load_table("/nonexistent/t.csv", "label")


def test_read_feature_table_orders_ignores_extras_and_names_missing(tmp_path):
    path = write(tmp_path / "t.csv", "note,b,a,status\nhi,2,1,x\nyo,,3,y\n")
    np.testing.assert_array_equal(read_feature_table(path, ["a", "b"]), [[1, 2], [3, np.nan]])
    with pytest.raises(ValueError, match=r"'c', 'd'"):
        read_feature_table(path, ["a", "c", "d"])


def test_dataset_validates_and_subsets():
    data = Dataset(
        features=np.arange(12, dtype=np.float64).reshape(4, 3),
        labels=[0, 1, 1, 0],
        feature_names=("a", "b", "c"),
        class_names=("n", "f"),
        timestamps=np.array([1, 2, 3, 4]),
    )
    assert data.features.dtype == np.float32 and len(data) == 4 and data.n_classes == 2
    part = data.subset(data.labels == 1)
    np.testing.assert_array_equal(part.timestamps, [2, 3])
    np.testing.assert_array_equal(data.subset([3, 0]).features[:, 0], [9, 0])
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        Dataset(np.zeros((2, 1)), [0, 2], ("a",), ("n", "f"))
    with pytest.raises(ValueError, match="2 feature_names for 1"):
        Dataset(np.zeros((2, 1)), [0, 1], ("a", "b"), ("n", "f"))
    with pytest.raises(ValueError, match="labels must have shape"):
        Dataset(np.zeros((2, 1)), [0, 1, 1], ("a",), ("n", "f"))
    with pytest.raises(ValueError, match="inf"):
        Dataset(np.array([[np.inf], [0]]), [0, 1], ("a",), ("n", "f"))
    with pytest.raises(ValueError, match="unique"):
        Dataset(np.zeros((2, 2)), [0, 1], ("a", "a"), ("n", "f"))


def test_repeated_header_names_are_refused(tmp_path):
    path = write(tmp_path / "t.csv", "x,x,label\n1,2,a\n")
    with pytest.raises(ValueError, match=r"repeated column name\(s\) \['x'\]"):
        load_table(path, "label")


def test_iter_feature_table_streams_chunks_and_names_the_bad_row(tmp_path):
    from lossless_triplet.data import iter_feature_table

    frame = pd.DataFrame({"a": [1.0, 2, 3, 4, 5], "b": ["1", "n/a", "", "x", "5"], "extra": list("vwxyz")})
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match=r"column 'b' has a non-numeric value 'x' in data row 4"):
        list(iter_feature_table(tmp_path / "t.csv", ["a", "b"], chunk_rows=2))
    frame.loc[3, "b"] = "4"
    frame.to_csv(tmp_path / "t.csv", index=False)
    chunks = list(iter_feature_table(tmp_path / "t.csv", ["b", "a"], chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    np.testing.assert_array_equal(np.vstack(chunks), [[1, 1], [np.nan, 2], [np.nan, 3], [4, 4], [5, 5]])
    with pytest.raises(ValueError, match="'nope'"):
        list(iter_feature_table(tmp_path / "t.csv", ["a", "nope"]))


def test_iter_feature_table_fills_chunks_across_arrow_blocks(tmp_path):
    """Arrow parses a text block in record batches of about 1 MB; a chunk gathers them up to chunk_rows
    (detect identifies a chunk's blocks on all cores: 1 MB of KDDI rows, about 1,200, kept one busy)."""
    from lossless_triplet.data import iter_feature_table

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(30_000, 8)), columns=list("abcdefgh"))
    frame.to_csv(tmp_path / "t.csv", index=False)  # about 4 MB: several Arrow batches, one text block
    chunks = list(iter_feature_table(tmp_path / "t.csv", list("hab"), chunk_rows=7_000))
    assert [len(c) for c in chunks] == [7_000] * 4 + [2_000]
    np.testing.assert_array_equal(np.vstack(chunks), frame[list("hab")].to_numpy(np.float32))


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_iter_feature_table_in_small_blocks_equals_the_whole_file_read(tmp_path, monkeypatch, suffix):
    """Blocks cut at line ends (here ~40 bytes) give the same rows as pandas reading it all."""
    from lossless_triplet.data import iter_feature_table, tables

    monkeypatch.setattr(tables, "_TEXT_BLOCK_BYTES", 40)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(57, 3)) * 1000, columns=["a", "b", "c"]).round(3)
    frame.iloc[[3, 20, 40], 1] = np.nan
    frame["note"] = "x,y"  # quoted text column with the separator inside, not a feature
    path = tmp_path / f"t{suffix}"
    frame.to_csv(path, index=False)
    chunks = list(iter_feature_table(path, ["c", "b"], chunk_rows=5))
    assert all(len(c) <= 5 for c in chunks)
    np.testing.assert_array_equal(np.vstack(chunks), frame[["c", "b"]].to_numpy(np.float32))


def test_iter_feature_table_reads_padded_numbers_and_names_the_row_of_a_bad_cell(tmp_path, monkeypatch):
    """Space-padded numbers are numbers; a cell that is not one is named with its data row, though
    Arrow's own error names none."""
    from lossless_triplet.data import iter_feature_table, tables

    monkeypatch.setattr(tables, "_TEXT_BLOCK_BYTES", 16)
    lines = ["a,b"] + [f"{i},{2 * i}" for i in range(10)] + [" 10 , 20 ", "11,22"]
    path = write(tmp_path / "t.csv", "\n".join(lines) + "\n")
    got = np.vstack(list(iter_feature_table(path, ["a", "b"], chunk_rows=3)))
    np.testing.assert_array_equal(got, [[i, 2 * i] for i in range(12)])
    write(path, "\n".join(lines + ["12,oops"]) + "\n")
    with pytest.raises(ValueError, match=r"'b'.*'oops'.*data row 13"):
        list(iter_feature_table(path, ["a", "b"], chunk_rows=3))


@pytest.mark.parametrize("cell, why", [("inf", "infinite"), ("1e39", "float32 range")])
def test_iter_feature_table_refuses_inf_and_float32_overflow_naming_the_row(tmp_path, cell, why):
    from lossless_triplet.data import iter_feature_table

    path = write(tmp_path / "t.csv", f"a,b\n1,2\n3,{cell}\n")
    with pytest.raises(ValueError, match=rf"'b'.*{why}.*data row 2"):
        list(iter_feature_table(path, ["a", "b"]))


@pytest.mark.parametrize("line, count", [("3,4,5", 3), ("3", 1)])
def test_iter_feature_table_names_a_line_with_another_field_count(tmp_path, line, count):
    """pandas would drop the extra field (or fill the short line with NaN) without a word."""
    from lossless_triplet.data import iter_feature_table

    path = write(tmp_path / "t.csv", f"a,b\n1,2\n\n{line}\n6,7\n")
    with pytest.raises(ValueError, match=rf"data row 2 .* has {count} field\(s\) but the header has 2"):
        list(iter_feature_table(path, ["a", "b"]))


def test_iter_feature_table_reads_a_bom_and_quoted_line_breaks(tmp_path):
    from lossless_triplet.data import iter_feature_table

    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbfa,b,note\r\n1,2,"two\nlines"\r\n3,4,x\r\n')
    np.testing.assert_array_equal(np.vstack(list(iter_feature_table(path, ["a", "b"]))), [[1, 2], [3, 4]])


def test_blank_lines_keep_rows_and_row_numbers_aligned(tmp_path, monkeypatch):
    """Blank lines are not rows: a bad cell in a later block is named by its data row, not its line."""
    from lossless_triplet.data import iter_feature_table, tables

    monkeypatch.setattr(tables, "_TEXT_BLOCK_BYTES", 64)
    rows = [f"{i},{2 * i}" for i in range(40)]
    text = "a,b\n" + "\n".join(rows[:5]) + "\n\n\n" + "\n".join(rows[5:30]) + "\n 30 , 60 \n" + "\n".join(rows[31:])
    path = write(tmp_path / "t.csv", text + "\n")
    got = np.vstack(list(iter_feature_table(path, ["a", "b"], chunk_rows=4)))
    np.testing.assert_array_equal(got, [[i, 2 * i] for i in range(40)])
    write(path, text.replace(" 30 , 60 ", "30,abc") + "\n")
    with pytest.raises(ValueError, match=r"'abc' in data row 31 "):
        list(iter_feature_table(path, ["a", "b"], chunk_rows=4))


@pytest.mark.parametrize("end", ["\r", "\r\n", "\n"])
def test_every_line_end_reads_the_same(tmp_path, monkeypatch, end):
    from lossless_triplet.data import iter_feature_table, tables

    monkeypatch.setattr(tables, "_TEXT_BLOCK_BYTES", 7)  # cuts fall inside CRLF pairs too
    path = tmp_path / "t.csv"
    path.write_bytes(end.join(["a,b", *(f"{i},{i + 1}" for i in range(20))]).encode() + end.encode())
    np.testing.assert_array_equal(np.vstack(list(iter_feature_table(path, ["a", "b"]))),
                                  [[i, i + 1] for i in range(20)])


def test_damaged_or_misnamed_gzip_gets_a_clear_error(tmp_path):
    from lossless_triplet.data import iter_feature_table

    packed = gzip.compress(("a,b\n" + "1,2\n" * 5000).encode())
    (tmp_path / "cut.csv.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="damaged or cut short"):
        list(iter_feature_table(tmp_path / "cut.csv.gz", ["a", "b"]))
    (tmp_path / "t.csv").write_bytes(packed)
    with pytest.raises(ValueError, match="gzip-compressed but not named .gz: rename it t.csv.gz"):
        list(iter_feature_table(tmp_path / "t.csv", ["a", "b"]))


def test_parquet_errors_name_the_file_and_the_fix(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lossless_triplet.data import iter_feature_table

    pq.write_table(pa.Table.from_arrays([pa.array([1.0])] * 3, names=["a", "b", "a"]), tmp_path / "dup.parquet")
    pq.write_table(pa.table({"a": pa.array([], pa.float64()), "b": pa.array([], pa.float64())}),
                   tmp_path / "empty.parquet")
    write(tmp_path / "junk.parquet", "not parquet")
    for name, words in (("dup", r"repeated column name\(s\) \['a'\]"), ("empty", "has no data rows"),
                        ("junk", "cannot be read as Parquet")):
        with pytest.raises(ValueError, match=rf"{name}.parquet.*{words}"):
            list(iter_feature_table(tmp_path / f"{name}.parquet", ["a", "b"]))
