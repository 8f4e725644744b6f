"""``iter_feature_table`` (what ``detect`` reads CSV with) against Python's ``csv`` module, row for row.

Tables are built with quoted line breaks, separators and quotes inside notes, short and long rows,
blank and whitespace-only lines, a BOM and mixed line ends, a quote never closed, text after a
closing quote and cells that are not numbers, and read in small blocks (so boundaries fall inside
quoted values and CRLF pairs). The reference is ``csv.reader(strict=True)``: every data row gives
one output row, or the read stops with an error naming the first bad data row.
"""

import csv
import io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lossless_triplet.data import iter_feature_table, tables

HEADER = ["a", "note", "b", "c"]
FEATURES = ["c", "a"]
MISSING = {"", "nan", "NaN", "NA", "N/A", "null", "None"}

numbers = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:.6g}"),
    st.sampled_from(sorted(MISSING) + [" 3.5", "7 ", "+2", ".5", "1e3"]),
)
note_text = st.text(alphabet=st.sampled_from(list('ab ,;"\n\r\t\u2028\x0c\x85é')), max_size=12)


def quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


notes = st.one_of(st.sampled_from(["x", "", "ok"]), note_text.map(quoted))


@st.composite
def tables_text(draw):
    """(text, what was broken) of a CSV table; most are clean, some hold one defect."""
    rows = []
    for _ in range(draw(st.integers(1, 25))):
        cells = [draw(numbers), draw(notes), draw(numbers), draw(numbers)]
        rows.append(",".join(cells))
    defect = draw(st.sampled_from(["none"] * 6 + ["short", "long", "spaces", "unclosed", "after-quote", "word",
                                                  "blank"]))
    at = draw(st.integers(0, len(rows) - 1))
    if defect == "short":
        rows[at] = rows[at].rsplit(",", 1)[0] if not rows[at].endswith('"') else "1,2"
    elif defect == "long":
        rows[at] = rows[at] + ",9"
    elif defect == "spaces":
        rows.insert(at, "   ")
    elif defect == "unclosed":
        parts = rows[at].split(",", 1)
        rows[at] = f'{parts[0]},"oops,1,2'
    elif defect == "after-quote":
        rows[at] = '1,"quoted"tail,2,3'
    elif defect == "word":
        rows[at] = "1,x,2,three"
    elif defect == "blank":
        rows.insert(at, "")
    ends = draw(st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(rows) + 1, max_size=len(rows) + 1))
    text = ",".join(HEADER) + ends[0] + "".join(r + e for r, e in zip(rows, ends[1:]))
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text


def reference(text: str):
    """("ok", float32 rows) or ("error", data row) by csv.reader(strict=True) and the cell rule."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    header = next(reader)
    rows = []
    try:
        for record in reader:
            if not record:
                continue
            if len(record) != len(header):
                return "error", len(rows) + 1
            values = []
            for name in FEATURES:
                cell = record[header.index(name)]
                if cell in MISSING:
                    values.append(math.nan)
                    continue
                try:
                    values.append(float(cell.strip()))
                except ValueError:
                    return "error", len(rows) + 1
            rows.append(values)
    except csv.Error:
        return "error", len(rows) + 1
    return "ok", np.asarray(rows, dtype=np.float32).reshape(-1, len(FEATURES))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=tables_text(), block=st.sampled_from([16, 40, 64, 1000, 1 << 20]), chunk=st.sampled_from([1, 3, 1000]))
def test_detect_reads_like_strict_csv_row_for_row(tmp_path, monkeypatch, text, block, chunk):
    monkeypatch.setattr(tables, "_TEXT_BLOCK_BYTES", block)
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode("utf-8"))
    expected = reference(text)
    if expected[0] == "ok":
        if len(expected[1]) == 0:
            with pytest.raises(ValueError, match="no data rows"):
                list(iter_feature_table(path, FEATURES, chunk_rows=chunk))
            return
        got = np.vstack(list(iter_feature_table(path, FEATURES, chunk_rows=chunk)))
        np.testing.assert_array_equal(got, expected[1])
    else:
        with pytest.raises(ValueError, match=rf"data row {expected[1]} "):
            list(iter_feature_table(path, FEATURES, chunk_rows=chunk))


def test_a_quoted_line_break_at_a_block_boundary_gives_one_row(tmp_path, monkeypatch):
    # Before: an extra output row (blocks were cut at any line end) or "data row N has 1 field(s)".
    monkeypatch.setattr(tables, "_TEXT_BLOCK_BYTES", 64)
    lines = ["a,note,b,c"] + [f"{i},x,{i},{i}" for i in range(30)]
    lines[12] = '11,"line one\n' + "," * 5 + '\nline three",11,11'
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    got = np.vstack(list(iter_feature_table(path, FEATURES)))
    np.testing.assert_array_equal(got, [[i, i] for i in range(30)])


def test_a_quote_never_closed_is_an_error_not_lost_rows(tmp_path):
    rows = [f"{i},ok,{i},{i}" for i in range(200)]
    rows[99] = '99,"oops,99,99'
    path = tmp_path / "t.csv"
    path.write_text("a,note,b,c\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="data row 100 .*starting on line 101: a quoted value opened there is "
                                         "never closed"):
        list(iter_feature_table(path, FEATURES))


def test_a_row_number_is_not_shifted_by_line_separators_python_splits_on(tmp_path):
    # U+2028, a form feed and NEL are not line ends in CSV.
    path = tmp_path / "t.csv"
    path.write_text("a,note,b,c\n" + "".join(f"{i},n\u2028o\x0ct\x85e,{i},{i}\n" for i in range(99)) + "1,x,2\n")
    with pytest.raises(ValueError, match="data row 100 "):
        list(iter_feature_table(path, FEATURES))


def test_a_byte_that_is_not_utf8_is_named_with_its_row_and_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,note,b,c\n1,x,2,3\n4,x,5,\xff\n")
    with pytest.raises(ValueError, match=r"column 'c' has a non-numeric value b'\\xff' \(not UTF-8\) in data row 2"):
        list(iter_feature_table(path, FEATURES))
    path.write_bytes(b"a,note,b,c\n1,\xff,2,3\n")  # in a column that is not read: ignored
    np.testing.assert_array_equal(np.vstack(list(iter_feature_table(path, FEATURES))), [[3, 1]])


@pytest.mark.parametrize("cell", ["-nan", "+nan", "nan(123)", "NaN", "N/A"])
def test_every_nan_spelling_is_missing(tmp_path, cell):
    path = tmp_path / "t.csv"
    path.write_text(f"a,note,b,c\n1,x,2,{cell}\n")
    got = np.vstack(list(iter_feature_table(path, FEATURES)))
    assert np.isnan(got[0, 0]) and got[0, 1] == 1


def test_a_quoted_line_break_in_a_header_name(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('a,"my\nnote",b,c\n1,x,2,3\n')
    np.testing.assert_array_equal(np.vstack(list(iter_feature_table(path, FEATURES))), [[3, 1]])
