#!/usr/bin/env python
"""Build the compact KDDI NFV copy bundled inside ``lossless_triplet.data``.

Source data: J. Kawasaki, G. Mouri, Y. Suzuki, "Comparative Analysis of Network Fault
Classification Using Machine Learning", NOMS 2020 (doi:10.1109/NOMS47738.2020.9110454),
published in ITU-AI-ML-in-5G-Challenge/ITU-ML5G-PS-032-KDDI-naist-lsm under the MIT licence.

For each split (``train/``, ``eval/``) the script reads the seven KPI files listed in
``FEATURE_FILES`` and ``label.tsv``, checks that every file holds exactly the same set of
``timestamp`` values (one row each), joins them on ``timestamp`` in time order and writes
``<split>.npz`` with:

- ``features``: float32 (n_rows, 121), NaN where the source cell is empty;
- ``status``: int8 (n_rows,), the network status 0..6 from ``label.tsv``;
- ``timestamp``: int64 (n_rows,), YYYYmmddHHMMSS as in the source;
- ``feature_names``: unicode (121,), ``"<kpi-file-stem>/<original column>"``.

``cpu-util.tsv`` is left out (the per-router CPU repeated per interface, redundant with
``cpu_util.tsv``) and ``failure*.tsv`` are never read: they hold the status itself.
The archives are written byte-for-byte reproducibly (fixed zip member dates), so a rebuild
from the same source gives the same SHA-256 as recorded in PROVENANCE.md.

Usage (from the repository root)::

    python scripts/build_kddi_bundle.py [--source ../shared/data/kddi-nfv-ps032]
                                        [--out src/lossless_triplet/data/kddi_nfv]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "kddi-nfv-ps032"
DEFAULT_OUT = REPO_ROOT / "src" / "lossless_triplet" / "data" / "kddi_nfv"

# Provenance of the source folder, as stated in its README.md.
SOURCE_REPO = "ITU-AI-ML-in-5G-Challenge/ITU-ML5G-PS-032-KDDI-naist-lsm"
SOURCE_COMMIT = "f0c54cfde8fb9a5b78e116de7814a1afbd856799"
SOURCE_FOLDERS = {"train": "dataset/stable", "eval": "dataset_eval/stable"}
CITATION = (
    'J. Kawasaki, G. Mouri, Y. Suzuki, "Comparative Analysis of Network Fault Classification '
    'Using Machine Learning", IEEE/IFIP NOMS 2020, doi:10.1109/NOMS47738.2020.9110454'
)

# (file stem, number of feature columns); order fixes the feature order in the bundle.
FEATURE_FILES = (
    ("cpu_util", 5),
    ("rx-pps", 22),
    ("tx-pps", 22),
    ("network-incoming-packets-rate", 22),
    ("network-outgoing-packets-rate", 22),
    ("prefix-activity-received-current-prefixes", 6),
    ("admin-status", 22),
)
N_FEATURES = sum(n for _, n in FEATURE_FILES)  # 121
LABEL_FILE = "label"
N_STATUSES = 7  # 0 normal .. 6 tap-delay (source README)
SPLITS = ("train", "eval")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # earliest zip date: makes the archive reproducible


class BundleError(RuntimeError):
    """The source folder does not look like the KDDI PS-032 data the bundle expects."""


def read_tsv(path: Path) -> pd.DataFrame:
    """Read one source TSV (first column a row number) and index it by ``timestamp``."""
    if not path.is_file():
        raise BundleError(f"missing source file {path}; pass --source pointing at kddi-nfv-ps032")
    frame = pd.read_csv(path, sep="\t", index_col=0)
    if "timestamp" not in frame.columns:
        raise BundleError(f"{path} has no 'timestamp' column; columns are {list(frame.columns)}")
    duplicated = frame["timestamp"][frame["timestamp"].duplicated()]
    if len(duplicated):
        raise BundleError(f"{path}: timestamp {duplicated.iloc[0]} appears more than once")
    return frame.set_index("timestamp")


def check_same_timestamps(reference: pd.Index, frame: pd.DataFrame, path: Path) -> None:
    """Raise unless ``frame`` holds exactly the timestamps of ``reference``."""
    only_here = frame.index.difference(reference)
    only_there = reference.difference(frame.index)
    if len(only_here) or len(only_there):
        raise BundleError(
            f"{path}: timestamps do not align with {LABEL_FILE}.tsv "
            f"({len(only_here)} only here, e.g. {list(only_here[:3])}; "
            f"{len(only_there)} missing, e.g. {list(only_there[:3])})"
        )


def build_split(split_dir: Path) -> dict[str, np.ndarray]:
    """Join the KPI files of one split on ``timestamp``; return the arrays of ``<split>.npz``."""
    labels = read_tsv(split_dir / f"{LABEL_FILE}.tsv").sort_index()
    timestamps = labels.index
    blocks, names = [], []
    for stem, n_columns in FEATURE_FILES:
        assert not stem.startswith("failure"), "failure*.tsv hold the label: never a feature"
        path = split_dir / f"{stem}.tsv"
        frame = read_tsv(path)
        if frame.shape[1] != n_columns:
            raise BundleError(f"{path}: expected {n_columns} KPI columns, found {frame.shape[1]}")
        check_same_timestamps(timestamps, frame, path)
        blocks.append(frame.reindex(timestamps).to_numpy(dtype=np.float64))
        names.extend(f"{stem}/{column}" for column in frame.columns)
    features = np.concatenate(blocks, axis=1)
    if np.isinf(features).any():
        raise BundleError(f"{split_dir}: infinite feature values; the source looks corrupted")

    status = labels["status"].to_numpy(dtype=np.float64)
    valid = np.isfinite(status) & (status == np.round(status)) & (status >= 0)
    if not valid.all() or status.max() >= N_STATUSES:
        raise BundleError(f"{split_dir}/label.tsv: status must be an integer 0..{N_STATUSES - 1}")
    return {
        "features": features.astype(np.float32),
        "status": status.astype(np.int8),
        "timestamp": timestamps.to_numpy(dtype=np.int64),
        "feature_names": np.array(names, dtype=np.str_),
    }


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed ``.npz`` that ``np.load(allow_pickle=False)`` reads, reproducibly."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def describe_split(split: str, arrays: dict[str, np.ndarray]) -> list[str]:
    """Markdown lines: rows, time span, class counts and missing cells per KPI file."""
    names = [str(n) for n in arrays["feature_names"]]
    missing = np.isnan(arrays["features"]).sum(axis=0)
    counts = np.bincount(arrays["status"].astype(np.int64), minlength=N_STATUSES)
    incomplete = np.isnan(arrays["features"]).any(axis=1)
    lines = [
        f"- `{split}.npz`: {len(arrays['status'])} rows, timestamps "
        f"{arrays['timestamp'][0]} .. {arrays['timestamp'][-1]}; status counts 0..6: "
        f"{', '.join(str(int(c)) for c in counts)}; empty (NaN) cells per KPI file: "
        + ", ".join(
            f"{stem} {int(sum(m for n, m in zip(names, missing) if n.startswith(stem + '/')))}"
            for stem, _ in FEATURE_FILES
        ),
        f"  (rows with an empty cell, per status 0..6: "
        f"{', '.join(str(int(c)) for c in np.bincount(arrays['status'][incomplete], minlength=N_STATUSES))}"
        "; node-down minutes lack telemetry from the failed router)",
    ]
    return lines


def provenance(source: Path, out: Path, built: dict[str, dict[str, np.ndarray]]) -> str:
    """The text of PROVENANCE.md."""
    used = [f"{stem}.tsv" for stem, _ in FEATURE_FILES] + [f"{LABEL_FILE}.tsv"]
    sums = [
        f"    {sha256(source / split / name)}  {split}/{name}" for split in SPLITS for name in used
    ]
    bundle = [f"    {sha256(out / f'{split}.npz')}  {split}.npz" for split in SPLITS]
    stats = [line for split in SPLITS for line in describe_split(split, built[split])]
    return "\n".join(
        [
            "# KDDI NFV IP-core fault data: bundled copy",
            "",
            "Derived, compact copy of the ITU AI/ML in 5G Challenge 2020 problem PS-032-KDDI data,",
            "loaded by `lossless_triplet.data.load_kddi_nfv`. Licence: MIT, see `LICENSE` beside",
            "this file (copied unchanged from the source).",
            "",
            "## Source",
            f"- Repository: https://github.com/{SOURCE_REPO}",
            f"- Commit: {SOURCE_COMMIT}",
            f"- Folders: `{SOURCE_FOLDERS['train']}` (split `train`) and "
            f"`{SOURCE_FOLDERS['eval']}` (split `eval`)",
            f"- Data and fault-injection design: {CITATION}.",
            "",
            "## What `scripts/build_kddi_bundle.py` did",
            "- Read, per split, " + ", ".join(f"`{n}`" for n in used) + ".",
            "- Checked that every file holds the same set of `timestamp` values (one row each),",
            "  joined them on `timestamp` and sorted rows in time order.",
            f"- Kept {N_FEATURES} feature columns named `<kpi-file-stem>/<original column>`:",
            "  " + ", ".join(f"{stem} ({n})" for stem, n in FEATURE_FILES) + ".",
            "- Left out `cpu-util.tsv` (per-router CPU repeated per interface: redundant with",
            "  `cpu_util.tsv`) and never read the three `failure*` label files",
            "  (they hold the status: label leaks).",
            "- Stored features as float32 (about 7 significant digits; the source has float64",
            "  text), empty source cells as NaN, `status` (0..6) as int8 and `timestamp`",
            "  (YYYYmmddHHMMSS) as int64, in `<split>.npz` (read with `np.load`, no pickle).",
            "",
            "Status codes: 0 normal, 1 bgp-hijacking, 2 bgp-injection, 3 node-down,",
            "4 interface-down, 5 tap-loss, 6 tap-delay.",
            "",
            "## Contents",
            *stats,
            "",
            "## Rebuild",
            "From the repository root, with the source folder beside the clone:",
            "",
            "    python scripts/build_kddi_bundle.py --source ../shared/data/kddi-nfv-ps032 \\",
            "        --out src/lossless_triplet/data/kddi_nfv",
            "",
            "The archives are reproducible byte for byte. SHA-256 of the inputs:",
            "",
            *sums,
            "",
            "and of the outputs:",
            "",
            *bundle,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Build ``train.npz``, ``eval.npz``, ``LICENSE`` and ``PROVENANCE.md`` in ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="kddi-nfv-ps032 folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="bundle folder to write")
    args = parser.parse_args(argv)

    built = {split: build_split(args.source / split) for split in SPLITS}
    if not np.array_equal(built["train"]["feature_names"], built["eval"]["feature_names"]):
        raise BundleError("train and eval KPI files have different columns")
    args.out.mkdir(parents=True, exist_ok=True)
    for split, arrays in built.items():
        write_npz(args.out / f"{split}.npz", arrays)
    shutil.copyfile(args.source / "LICENSE", args.out / "LICENSE")
    (args.out / "PROVENANCE.md").write_text(provenance(args.source, args.out, built))
    for path in sorted(args.out.iterdir()):
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
