"""Loaders of the benchmark data sets (benchmarks/datasets.py) on tiny files in the real formats,
plus a smoke test on the real copies in ../shared/data (skipped where they are absent)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name: str, filename: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


bd = _load("benchmark_datasets", "datasets.py")


# --------------------------------------------------------------------------- OpenStack


def _write_openstack(root: Path, counts: np.ndarray, labels, *, header=None, trailing_newline=False) -> Path:
    folder = root / "openstack-failures" / "DEPL"
    folder.mkdir(parents=True)
    names = header or [f"nova_event_{i}" for i in range(counts.shape[1])]
    lines = ["\t".join(names)] + ["\t".join(str(int(v)) for v in row) for row in counts]
    # The real SEQ.tsv has no newline after its last row; Failure_Labels.txt has one.
    (folder / "SEQ.tsv").write_text("\n".join(lines) + ("\n" if trailing_newline else ""))
    (folder / "Failure_Labels.txt").write_text("".join(f"{v}\n" for v in labels))
    return folder


def test_openstack_reads_counts_labels_and_names(tmp_path):
    counts = np.array([[0, 3, 10], [1, 0, 0], [2, 2, 2], [0, 0, 99]])
    folder = _write_openstack(tmp_path, counts, [1, 6, 3, 6])
    data = bd.read_openstack_campaign(folder, bd.OPENSTACK_DEPL_CLASSES)
    assert data.feature_names == ("nova_event_0", "nova_event_1", "nova_event_2")
    np.testing.assert_array_equal(data.features, counts.astype(np.float32))
    assert [data.class_names[i] for i in data.labels] == ["Instance", "No Failure", "SSH", "No Failure"]
    logged = bd.read_openstack_campaign(folder, bd.OPENSTACK_DEPL_CLASSES, log1p=True)
    np.testing.assert_allclose(logged.features, np.log1p(counts), rtol=1e-6)


def test_openstack_split_is_stratified_seeded_and_keeps_singletons_in_train(tmp_path):
    rng = np.random.default_rng(0)
    labels = [1] * 10 + [2] * 6 + [3] * 1 + [6] * 20
    _write_openstack(tmp_path, rng.integers(0, 5, size=(len(labels), 4)), labels)
    train, test = bd.load_openstack_depl(tmp_path, seed=0)
    assert len(train) + len(test) == len(labels)
    tr, te = train.class_counts(), test.class_counts()
    assert (tr["Instance"], te["Instance"]) == (5, 5)
    assert (tr["Volume"], te["Volume"]) == (3, 3)
    assert (tr["SSH"], te["SSH"]) == (1, 0)  # a single row can only be the training example
    assert (tr["No Failure"], te["No Failure"]) == (10, 10)
    again, _ = bd.load_openstack_depl(tmp_path, seed=0)
    np.testing.assert_array_equal(again.features, train.features)
    other, _ = bd.load_openstack_depl(tmp_path, seed=1)
    assert not np.array_equal(other.features, train.features)


def test_openstack_errors(tmp_path):
    folder = _write_openstack(tmp_path / "a", np.ones((3, 2)), [1, 2])
    with pytest.raises(ValueError, match="2 labels for 3 rows"):
        bd.read_openstack_campaign(folder, bd.OPENSTACK_DEPL_CLASSES)
    folder = _write_openstack(tmp_path / "b", np.ones((2, 2)), [1, 7])
    with pytest.raises(ValueError, match="1..6"):
        bd.read_openstack_campaign(folder, bd.OPENSTACK_DEPL_CLASSES)
    # A header one name short of the rows: the first field would be an index column.
    folder = _write_openstack(tmp_path / "c", np.ones((2, 3)), [1, 2], header=["e1", "e2"])
    with pytest.raises(ValueError, match="index column"):
        bd.read_openstack_campaign(folder, bd.OPENSTACK_DEPL_CLASSES)
    with pytest.raises(FileNotFoundError):
        bd.read_openstack_campaign(tmp_path / "missing", bd.OPENSTACK_DEPL_CLASSES)


# --------------------------------------------------------------------------- NSL-KDD


def _nsl_row(protocol, service, flag, attack, src_bytes=100, count=3, difficulty=20):
    numeric_names = [c for c in bd.NSL_KDD_FEATURES if c not in bd.NSL_KDD_CATEGORICAL]
    numeric = [0.0] * 38
    numeric[numeric_names.index("src_bytes")] = src_bytes
    numeric[numeric_names.index("count")] = count
    fields = [numeric[0], protocol, service, flag, *numeric[1:]]
    return ",".join(str(v) for v in fields) + f",{attack},{difficulty}"


def _write_nsl(root: Path, train_rows, test_rows) -> None:
    folder = root / "nsl-kdd"
    folder.mkdir(parents=True)
    # CRLF line ends and no newline after the last row, as in the real files.
    (folder / bd.NSL_KDD_TRAIN_FILE).write_text("\r\n".join(train_rows), newline="")
    (folder / bd.NSL_KDD_TEST_FILE).write_text("\r\n".join(test_rows), newline="")


@pytest.fixture
def nsl_root(tmp_path):
    train = ([_nsl_row("tcp", "http", "SF", "normal")] * 6 + [_nsl_row("udp", "private", "S0", "neptune", 0)] * 4
             + [_nsl_row("tcp", "ftp", "SF", "guess_passwd")] * 2 + [_nsl_row("icmp", "ecr_i", "SF", "ipsweep")] * 3
             + [_nsl_row("tcp", "telnet", "SF", "rootkit")])
    test = [_nsl_row("tcp", "http", "SF", "normal"), _nsl_row("tcp", "http", "SF", "mscan"),
            _nsl_row("tcp", "gopher", "RSTR", "apache2"), _nsl_row("udp", "private", "S0", "neptune", 0)]
    _write_nsl(tmp_path, train, test)
    return tmp_path


def test_nsl_kdd_features_classes_and_one_hot(nsl_root):
    data = bd.load_nsl_kdd(nsl_root, max_train=None, max_test=None, log1p=False)
    train, test = data.train, data.test
    assert (len(train), len(test)) == (16, 4)
    assert train.class_names == bd.NSL_KDD_CATEGORIES
    assert train.class_counts() == {"normal": 6, "DoS": 4, "Probe": 3, "R2L": 2, "U2R": 1}
    assert [test.class_names[i] for i in test.labels] == ["normal", "Probe", "DoS", "DoS"]
    names = list(train.feature_names)
    assert names[:38] == [c for c in bd.NSL_KDD_FEATURES if c not in bd.NSL_KDD_CATEGORICAL]
    assert names[38:] == ["protocol_type=icmp", "protocol_type=tcp", "protocol_type=udp",
                          "service=ecr_i", "service=ftp", "service=http", "service=private", "service=telnet",
                          "flag=S0", "flag=SF"]
    assert "difficulty" not in names and test.feature_names == train.feature_names
    row = dict(zip(names, test.features[2]))  # tcp / gopher / RSTR: service and flag unseen in train
    assert row["protocol_type=tcp"] == 1 and row["src_bytes"] == 100 and row["count"] == 3
    assert all(row[n] == 0 for n in names if n.startswith(("service=", "flag=")))
    np.testing.assert_array_equal(train.features[:, 38:].sum(axis=1), 3)  # one level per block
    np.testing.assert_array_equal(data.unseen_test, [False, True, True, False])
    assert data.unseen_names == ["apache2", "mscan"]
    logged = bd.load_nsl_kdd(nsl_root, max_train=None, max_test=None, log1p=True)
    np.testing.assert_allclose(logged.train.features[:, :38], np.log1p(train.features[:, :38]), rtol=1e-6)
    np.testing.assert_array_equal(logged.train.features[:, 38:], train.features[:, 38:])


def test_nsl_kdd_subsampling_keeps_rare_names_and_unseen_means_train_file(nsl_root):
    data = bd.load_nsl_kdd(nsl_root, max_train=7, max_test=None, min_per_name=1, seed=0)
    assert (len(data.train), len(data.test)) == (7, 4)
    assert set(data.train_attacks) == {"normal", "neptune", "guess_passwd", "ipsweep", "rootkit"}
    assert data.info["max_train"] == 7 and data.info["train_file_rows"] == 16
    # "Unseen" is judged against the whole train file, not the subsample.
    assert data.train_file_attacks == ("guess_passwd", "ipsweep", "neptune", "normal", "rootkit")
    with pytest.raises(ValueError, match="floor"):
        bd.load_nsl_kdd(nsl_root, max_train=4, min_per_name=1)


def test_nsl_kdd_rejects_unknown_attack_and_bad_rows(tmp_path):
    _write_nsl(tmp_path / "a", [_nsl_row("tcp", "http", "SF", "normal"), _nsl_row("tcp", "http", "SF", "zerg")],
               [_nsl_row("tcp", "http", "SF", "normal")])
    with pytest.raises(ValueError, match="zerg"):
        bd.load_nsl_kdd(tmp_path / "a")
    _write_nsl(tmp_path / "b", ["1,2,3"], ["1,2,3"])
    with pytest.raises(ValueError, match="43"):
        bd.load_nsl_kdd(tmp_path / "b")


def test_every_readme_attack_name_has_a_category():
    assert set(bd.ATTACK_CATEGORY.values()) == set(bd.NSL_KDD_CATEGORIES)
    assert len(bd.ATTACK_CATEGORY) == 1 + 10 + 6 + 15 + 8


def test_stratified_subsample():
    groups = np.array(["a"] * 1000 + ["b"] * 100 + ["c"] * 3)
    rows = bd.stratified_subsample(groups, 200, seed=0, min_per_group=20)
    assert len(rows) == 200 and np.all(np.diff(rows) > 0)
    kept = {g: int(np.sum(groups[rows] == g)) for g in "abc"}
    assert kept["c"] == 3 and kept["b"] >= 20 and kept["a"] > kept["b"]
    np.testing.assert_array_equal(rows, bd.stratified_subsample(groups, 200, seed=0, min_per_group=20))
    assert len(bd.stratified_subsample(groups, None)) == len(groups)
    with pytest.raises(ValueError, match="floor"):
        bd.stratified_subsample(groups, 30, min_per_group=20)


# --------------------------------------------------------------------------- results.md section


def test_results_section_replaces_only_its_own_block(tmp_path):
    one_shot = _load("benchmark_one_shot", "one_shot.py")
    path = tmp_path / "results.md"
    one_shot.write_section(path, "first")
    assert one_shot.START in path.read_text() and "first" in path.read_text()
    path.write_text("# Results\n\n## speed\nkeep me\n\n" + path.read_text().split("\n\n", 2)[2] + "\n## after\nme too\n")
    one_shot.write_section(path, "second")
    text = path.read_text()
    assert "second" in text and "first" not in text
    assert "keep me" in text and "me too" in text and text.count(one_shot.START) == 1


# --------------------------------------------------------------------------- the real files


REAL = bd.DEFAULT_DATA_ROOT


@pytest.mark.skipif(not (REAL / "openstack-failures" / "DEPL" / "SEQ.tsv").is_file(),
                    reason="shared/data/openstack-failures not present")
def test_real_openstack_depl():
    data = bd.read_openstack_campaign(REAL / "openstack-failures" / "DEPL", bd.OPENSTACK_DEPL_CLASSES)
    assert len(data) == 1076  # README: 1,076 experiments in DEPL
    assert data.n_classes == 6 and all(c > 0 for c in data.class_counts().values())
    assert data.class_counts() == {"Instance": 224, "Volume": 151, "SSH": 41, "Cleanup": 69, "Network": 52,
                                   "No Failure": 539}
    assert data.n_features == 104 and np.all(data.features >= 0)
    train, test = bd.load_openstack_depl(REAL)
    assert len(train) == len(test) == 538


@pytest.mark.skipif(not (REAL / "nsl-kdd" / bd.NSL_KDD_TEST_FILE).is_file(), reason="shared/data/nsl-kdd not present")
def test_real_nsl_kdd():
    data = bd.load_nsl_kdd(REAL, max_train=None, max_test=None)
    assert (len(data.train), len(data.test)) == (25_192, 22_544)  # README row counts
    assert data.train.n_features == 38 + 3 + 66 + 11
    assert all(n > 0 for n in data.train.class_counts().values())  # normal + 4 categories
    assert data.train.class_counts()["normal"] == 13_449
    assert len(data.unseen_names) == 18 and int(data.unseen_test.sum()) == 3_752
    small = bd.load_nsl_kdd(REAL)  # the benchmark's caps
    assert len(small.train) == 8000 and len(small.test) == 4000
    assert set(small.train_attacks) == set(data.train_file_attacks)  # rare names survive the cap
