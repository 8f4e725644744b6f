"""Loaders for the two extra benchmark data sets (not part of the package; used by ``one_shot.py``).

Both read the public copies in ``../shared/data`` relative to the repository root
(``DEFAULT_DATA_ROOT``; every loader takes ``data_root`` to point elsewhere) and return
:class:`lossless_triplet.data.Dataset` objects, so the library's protocol
(:func:`lossless_triplet.pipeline.compare.compare_losses`) runs on them unchanged.

- OpenStack failure data set, DEPL campaign (Cotroneo, De Simone, Liguori, Natella, JSS 2021;
  GPL-3.0): ``DEPL/SEQ.tsv`` holds one row per fault-injection experiment and one column per
  event type (a header row of event names, no index column), each cell the number of times the
  event occurred; ``DEPL/Failure_Labels.txt`` one integer label 1..6 per row, same order.
  No split is given: :func:`load_openstack_depl` makes a stratified 50/50 train/test split
  with a fixed seed. Optional preprocessing: ``log1p`` (natural log of 1 + count, per cell),
  because the counts are heavy-tailed (one event type reaches counts in the hundreds while most
  cells are 0-10); the benchmark measures both and states which it used.
- NSL-KDD (Tavallaee, Bagheri, Lu, Ghorbani, CISDA 2009): ``KDDTrain+_20Percent.txt`` and
  ``KDDTest+.txt``, comma-separated, no header, 43 fields (41 features, the attack name,
  a difficulty score that is dropped). ``protocol_type``, ``service`` and ``flag`` are one-hot
  encoded with the categories of the TRAIN file (a test value never seen in train gets an
  all-zero block). Classes are the attack categories (normal, DoS, Probe, R2L, U2R, grouping
  from the data set's README); the attack name of every row is kept beside the Dataset, so
  test rows whose attack name never occurs in the train file ("unseen attacks") can be
  scored as new faults. Optional ``log1p`` of the 38 numeric columns (all non-negative; bytes
  and counts span 0 .. 1e9). Rows can be subsampled (stratified by attack name, seeded, with
  a per-name floor so rare names survive) to keep a benchmark's run time modest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lossless_triplet.data import Dataset

__all__ = [
    "DEFAULT_DATA_ROOT",
    "OPENSTACK_DEPL_CLASSES",
    "NSL_KDD_FEATURES",
    "NSL_KDD_CATEGORICAL",
    "NSL_KDD_CATEGORIES",
    "ATTACK_CATEGORY",
    "NslKdd",
    "read_openstack_campaign",
    "load_openstack_depl",
    "stratified_split",
    "stratified_subsample",
    "read_nsl_kdd_file",
    "load_nsl_kdd",
]

# benchmarks/ -> repository root -> ../shared/data
DEFAULT_DATA_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

# DEPL campaign, Failure_Labels.txt value k -> OPENSTACK_DEPL_CLASSES[k - 1] (the data set's README).
OPENSTACK_DEPL_CLASSES = ("Instance", "Volume", "SSH", "Cleanup", "Network", "No Failure")
OPENSTACK_NORMAL = "No Failure"

NSL_KDD_FEATURES = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land",
    "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised",
    "root_shell", "su_attempted", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login", "count",
    "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)
NSL_KDD_CATEGORICAL = ("protocol_type", "service", "flag")
NSL_KDD_COLUMNS = (*NSL_KDD_FEATURES, "attack", "difficulty")
NSL_KDD_CATEGORIES = ("normal", "DoS", "Probe", "R2L", "U2R")
NSL_KDD_TRAIN_FILE = "KDDTrain+_20Percent.txt"
NSL_KDD_TEST_FILE = "KDDTest+.txt"

_GROUPS = {
    "DoS": "back land neptune pod smurf teardrop apache2 mailbomb processtable udpstorm",
    "Probe": "ipsweep nmap portsweep satan mscan saint",
    "R2L": "ftp_write guess_passwd imap multihop phf spy warezclient warezmaster sendmail named "
           "snmpgetattack snmpguess xlock xsnoop worm",
    "U2R": "buffer_overflow loadmodule perl rootkit httptunnel ps sqlattack xterm",
}
# Attack name -> category (the usual grouping, as listed in shared/data/nsl-kdd/README.md).
ATTACK_CATEGORY = {"normal": "normal", **{name: cat for cat, names in _GROUPS.items() for name in names.split()}}


def _root(data_root: str | Path | None) -> Path:
    return DEFAULT_DATA_ROOT if data_root is None else Path(data_root)


# --------------------------------------------------------------------------- sampling


def stratified_split(dataset: Dataset, *, test_size: float = 0.5, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Stratified, seeded train/test split (``sklearn.model_selection.train_test_split``).

    Classes with a single row cannot be stratified: such a row goes to train (a held-out class
    needs a training example), the rest is split with stratification.

    Returns:
        ``(train, test)``, each keeping its rows in the original order.
    """
    from sklearn.model_selection import train_test_split

    counts = np.bincount(dataset.labels, minlength=dataset.n_classes)
    single = counts[dataset.labels] < 2
    rows = np.flatnonzero(~single)
    train_rows, test_rows = train_test_split(
        rows, test_size=test_size, random_state=seed, stratify=dataset.labels[rows]
    )
    train_rows = np.sort(np.concatenate([train_rows, np.flatnonzero(single)]))
    return dataset.subset(train_rows), dataset.subset(np.sort(test_rows))


def stratified_subsample(groups: Sequence, max_rows: int | None, *, seed: int = 0,
                         min_per_group: int = 20) -> np.ndarray:
    """Row indices of a seeded subsample of at most ``max_rows`` rows, stratified by ``groups``.

    Every group keeps ``min(count, min_per_group)`` rows (rare groups survive whole); the rest
    of the budget is shared among the larger groups in proportion to their size (largest
    remainder rounding). With ``max_rows`` None or >= the number of rows, every row is kept.

    Returns:
        int64 array of row indices, sorted (the file order is kept).

    Raises:
        ValueError: ``max_rows`` below the sum of the floors.
    """
    groups = np.asarray(groups)
    n = len(groups)
    if max_rows is None or max_rows >= n:
        return np.arange(n, dtype=np.int64)
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    floor = np.minimum(counts, min_per_group)
    if floor.sum() > max_rows:
        raise ValueError(
            f"max_rows={max_rows} is below the {floor.sum()} rows the per-group floor "
            f"(min_per_group={min_per_group}) keeps; raise max_rows or lower min_per_group"
        )
    extra = counts - floor
    budget = max_rows - floor.sum()
    share = extra * (budget / extra.sum()) if extra.sum() else np.zeros(len(counts))
    take = np.floor(share).astype(np.int64)
    left = int(budget - take.sum())
    if left > 0:
        take[np.argsort(-(share - take), kind="stable")[:left]] += 1
    take = np.minimum(floor + take, counts)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(inverse == g), size=int(k), replace=False)
              for g, k in enumerate(take)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


# --------------------------------------------------------------------------- OpenStack


def read_openstack_campaign(folder: str | Path, class_names: Sequence[str], *, log1p: bool = False) -> Dataset:
    """One campaign folder (``SEQ.tsv`` + ``Failure_Labels.txt``) as a Dataset, rows in file order.

    Args:
        folder: e.g. ``<data_root>/openstack-failures/DEPL``.
        class_names: label k (1-based) is ``class_names[k - 1]``.
        log1p: store ``log(1 + count)`` instead of the raw counts.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: row counts differ, a label outside 1..len(class_names), a negative or
            non-numeric count.
    """
    folder = Path(folder)
    seq, labels_file = folder / "SEQ.tsv", folder / "Failure_Labels.txt"
    for path in (seq, labels_file):
        if not path.is_file():
            raise FileNotFoundError(f"missing OpenStack file {path}")
    frame = pd.read_csv(seq, sep="\t", header=0)
    # pandas turns a header one field shorter than the rows into an index: refuse both forms.
    if not isinstance(frame.index, pd.RangeIndex) or str(frame.columns[0]).startswith("Unnamed"):
        raise ValueError(f"{seq}: unexpected index column {frame.columns[0]!r}; expected event names only")
    try:
        counts = frame.to_numpy(dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{seq}: every cell must be an event count ({error})") from None
    if np.isnan(counts).any() or (counts < 0).any():
        raise ValueError(f"{seq}: event counts must be non-negative numbers without gaps")
    raw = [line.strip() for line in labels_file.read_text().splitlines() if line.strip()]
    if len(raw) != len(frame):
        raise ValueError(f"{labels_file} has {len(raw)} labels for {len(frame)} rows of {seq}")
    labels = np.array([int(v) for v in raw], dtype=np.int64)
    if labels.min() < 1 or labels.max() > len(class_names):
        raise ValueError(f"{labels_file}: labels must lie in 1..{len(class_names)}; got {labels.min()}..{labels.max()}")
    return Dataset(
        features=np.log1p(counts) if log1p else counts,
        labels=labels - 1,
        feature_names=tuple(str(c) for c in frame.columns),
        class_names=tuple(class_names),
    )


def load_openstack_depl(data_root: str | Path | None = None, *, log1p: bool = True,
                        test_size: float = 0.5, seed: int = 0) -> tuple[Dataset, Dataset]:
    """The OpenStack DEPL campaign, split 50/50 (stratified by failure class, seeded).

    Classes (``OPENSTACK_DEPL_CLASSES``): Instance, Volume, SSH, Cleanup, Network, No Failure.
    Features: the 104 event-type counts, ``log1p`` of them by default (see the module docstring).

    Returns:
        ``(train, test)`` Datasets.
    """
    data = read_openstack_campaign(_root(data_root) / "openstack-failures" / "DEPL",
                                   OPENSTACK_DEPL_CLASSES, log1p=log1p)
    return stratified_split(data, test_size=test_size, seed=seed)


# --------------------------------------------------------------------------- NSL-KDD


@dataclass(frozen=True)
class NslKdd:
    """NSL-KDD ready for the protocol.

    Attributes:
        train, test: Datasets, classes ``NSL_KDD_CATEGORIES``; features = the 38 numeric
            columns then the one-hot blocks ``protocol_type=<v>``, ``service=<v>``, ``flag=<v>``.
        train_attacks, test_attacks: (n,) str arrays, the attack name of every row.
        train_file_attacks: every attack name that occurs in the (whole) train file.
        info: how the rows were chosen (file sizes, subsampling, preprocessing).
    """

    train: Dataset
    test: Dataset
    train_attacks: np.ndarray
    test_attacks: np.ndarray
    train_file_attacks: tuple[str, ...]
    info: dict

    @property
    def unseen_test(self) -> np.ndarray:
        """(n_test,) bool: the row's attack name never occurs in the train file."""
        return ~np.isin(self.test_attacks, self.train_file_attacks)

    @property
    def unseen_names(self) -> list[str]:
        """Attack names of the test rows that never occur in the train file, sorted."""
        return sorted(set(self.test_attacks[self.unseen_test].tolist()))


def read_nsl_kdd_file(path: str | Path) -> pd.DataFrame:
    """One NSL-KDD file as a DataFrame with the 43 named columns (``NSL_KDD_COLUMNS``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a row without 43 fields, or an attack name outside ``ATTACK_CATEGORY``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing NSL-KDD file {path}")
    frame = pd.read_csv(path, header=None, skipinitialspace=True)
    if frame.shape[1] != len(NSL_KDD_COLUMNS):
        raise ValueError(f"{path}: expected {len(NSL_KDD_COLUMNS)} comma-separated fields per row, got {frame.shape[1]}")
    frame.columns = list(NSL_KDD_COLUMNS)
    for column in (*NSL_KDD_CATEGORICAL, "attack"):
        frame[column] = frame[column].astype(str).str.strip()  # also drops a trailing \r
    unknown = sorted(set(frame["attack"]) - set(ATTACK_CATEGORY))
    if unknown:
        raise ValueError(f"{path}: attack name(s) {unknown} are not in the category grouping ATTACK_CATEGORY")
    return frame


def _nsl_features(frame: pd.DataFrame, categories: dict[str, list[str]], log1p: bool) -> tuple[np.ndarray, list[str]]:
    numeric = [c for c in NSL_KDD_FEATURES if c not in NSL_KDD_CATEGORICAL]
    values = frame[numeric].to_numpy(dtype=np.float64)
    if log1p:
        if (values < 0).any():
            raise ValueError("NSL-KDD numeric columns must be non-negative for log1p")
        values = np.log1p(values)
    blocks, names = [values], list(numeric)
    for column in NSL_KDD_CATEGORICAL:
        cats = categories[column]
        index = {v: i for i, v in enumerate(cats)}
        codes = frame[column].map(index).to_numpy(dtype=np.float64)  # NaN: unseen in train
        onehot = np.zeros((len(frame), len(cats)))
        seen = ~np.isnan(codes)
        onehot[np.flatnonzero(seen), codes[seen].astype(np.int64)] = 1.0
        blocks.append(onehot)
        names += [f"{column}={v}" for v in cats]
    return np.hstack(blocks), names


def load_nsl_kdd(data_root: str | Path | None = None, *, max_train: int | None = 8000,
                 max_test: int | None = 4000, seed: int = 0, min_per_name: int = 20,
                 log1p: bool = True) -> NslKdd:
    """NSL-KDD (20 % train subset, full test), classes = attack categories.

    Categories of the one-hot blocks are learned from the whole train file. Subsampling
    (``stratified_subsample`` by attack name, ``min_per_name`` floor, seeded) happens after
    the attack names of the train file are recorded, so "unseen" always means "not in the
    train file".

    Args:
        data_root: folder holding ``nsl-kdd/``.
        max_train, max_test: row caps (None keeps every row).
        seed: subsampling seed (train uses ``seed``, test ``seed + 1``).
        min_per_name: rows kept per attack name whatever the cap (all when fewer).
        log1p: ``log(1 + x)`` of the numeric columns.
    """
    folder = _root(data_root) / "nsl-kdd"
    train_frame = read_nsl_kdd_file(folder / NSL_KDD_TRAIN_FILE)
    test_frame = read_nsl_kdd_file(folder / NSL_KDD_TEST_FILE)
    categories = {c: sorted(train_frame[c].unique().tolist()) for c in NSL_KDD_CATEGORICAL}
    train_file_attacks = tuple(sorted(train_frame["attack"].unique().tolist()))
    info = {"train_file_rows": len(train_frame), "test_file_rows": len(test_frame),
            "max_train": max_train, "max_test": max_test, "seed": seed, "min_per_name": min_per_name,
            "log1p": log1p, "categorical_levels": {c: len(v) for c, v in categories.items()}}
    train_frame = train_frame.iloc[stratified_subsample(train_frame["attack"], max_train, seed=seed,
                                                        min_per_group=min_per_name)]
    test_frame = test_frame.iloc[stratified_subsample(test_frame["attack"], max_test, seed=seed + 1,
                                                      min_per_group=min_per_name)]

    def dataset(frame: pd.DataFrame) -> Dataset:
        features, names = _nsl_features(frame, categories, log1p)
        labels = frame["attack"].map(ATTACK_CATEGORY).map(NSL_KDD_CATEGORIES.index).to_numpy(np.int64)
        return Dataset(features=features, labels=labels, feature_names=tuple(names),
                       class_names=NSL_KDD_CATEGORIES)

    return NslKdd(
        train=dataset(train_frame),
        test=dataset(test_frame),
        train_attacks=train_frame["attack"].to_numpy(dtype=str),
        test_attacks=test_frame["attack"].to_numpy(dtype=str),
        train_file_attacks=train_file_attacks,
        info=info,
    )
