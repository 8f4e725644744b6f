"""Every file the package writes goes through lossless_triplet.io: whole or not at all."""

import pytest

from lossless_triplet.data import export_kddi_csv
from lossless_triplet.io import atomic_write_files, atomic_write_text, json_safe, write_json, written_at_end


def test_written_at_end_renames_on_success_keeps_the_suffix_and_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "sub" / "out.csv.gz"
    with written_at_end(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".gz") and tmp != target
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == ["out.csv.gz"]
    with pytest.raises(RuntimeError):
        with written_at_end(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the writer failed")
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == ["out.csv.gz"]


def test_several_files_change_together_or_not_at_all(tmp_path, monkeypatch):
    import errno

    import lossless_triplet.io as io_module

    atomic_write_files(tmp_path, {"a": b"1", "b": b"2"})
    calls = []

    def full_on_second(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_module.os, "fsync", full_on_second)
    with pytest.raises(OSError, match="No space left on device while saving b in .*; nothing was changed"):
        atomic_write_files(tmp_path, {"a": b"3", "b": b"4"})
    assert (tmp_path / "a").read_bytes() == b"1" and (tmp_path / "b").read_bytes() == b"2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_json_is_strict_and_text_is_utf8(tmp_path):
    import numpy as np

    write_json(tmp_path / "m.json", {"x": np.float32(0.5), "nan": float("nan"), 1: np.arange(2)})
    assert (tmp_path / "m.json").read_text() == '{\n  "x": 0.5,\n  "nan": null,\n  "1": [\n    0,\n    1\n  ]\n}\n'
    assert json_safe({"inf": np.inf}) == {"inf": None}
    atomic_write_text(tmp_path / "t.txt", "é")
    assert (tmp_path / "t.txt").read_bytes() == "é".encode()


def test_export_kddi_leaves_the_old_file_when_it_fails(tmp_path, monkeypatch):
    import pandas as pd

    target = tmp_path / "k.csv"
    target.write_text("old")

    def failing(self, path, **kwargs):
        open(path, "w").write("half a ro")
        raise OSError(27, "File too large")

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing)
    with pytest.raises(OSError, match="File too large"):
        export_kddi_csv("eval", target)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["k.csv"]


def test_written_files_get_the_permissions_the_umask_gives(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        with written_at_end(tmp_path / "p.csv") as tmp:
            tmp.write_text("row\n")
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {"0o644"}
