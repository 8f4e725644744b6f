"""The bundled KDDI NFV IP-core fault data set (ITU AI/ML in 5G Challenge 2020, PS-032-KDDI).

Source: J. Kawasaki, G. Mouri, Y. Suzuki, "Comparative Analysis of Network Fault
Classification Using Machine Learning", IEEE/IFIP NOMS 2020,
doi:10.1109/NOMS47738.2020.9110454; repository ITU-AI-ML-in-5G-Challenge/
ITU-ML5G-PS-032-KDDI-naist-lsm, MIT licence. The compact copy in ``kddi_nfv/`` is built by
``scripts/build_kddi_bundle.py``; ``kddi_nfv/PROVENANCE.md`` says exactly how.

An emulated IP core (routers IntGW-01/02, RR-01, TR-01/02; 22 links) with faults injected on
schedule; one row per minute (with gaps between fault runs), 121 KPI columns.
"""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import numpy as np

from lossless_triplet.data.tables import Dataset
from lossless_triplet.io import written_at_end

# Index = the source's `status` code 0..6 (label.tsv; Kawasaki et al. NOMS 2020).
KDDI_CLASSES = (
    "normal",
    "bgp-hijacking",
    "bgp-injection",
    "node-down",
    "interface-down",
    "tap-loss",
    "tap-delay",
)
KDDI_SPLITS = ("train", "eval")
_SPLIT_ALIASES = {"train": "train", "eval": "eval", "test": "eval"}
_BUNDLE_DIR = "kddi_nfv"


def load_kddi_nfv(split: str = "train") -> Dataset:
    """Load one split of the bundled KDDI NFV fault data.

    The two splits are separate recording campaigns (train: 2020-06-29 .. 07-06, 5,969 rows;
    eval: 2020-07-07 .. 07-13, 5,333 rows), so eval is a fair test of train.

    Args:
        split: ``"train"`` or ``"eval"`` (``"test"`` is accepted for ``"eval"``).

    Returns:
        Dataset with, in time order:

        - ``features``: float32 (n_rows, 121), in the KPI's own units: CPU percent
          (``cpu_util/*``), packets per second (``rx-pps``, ``tx-pps``,
          ``network-*-packets-rate``), BGP prefix counts
          (``prefix-activity-received-current-prefixes``), link admin status 0/1
          (``admin-status``). NaN where the source cell is empty (rx-pps, tx-pps and
          admin-status, almost only in node-down minutes).
        - ``labels``: int64 (n_rows,), the status code 0..6 indexing ``KDDI_CLASSES``.
        - ``feature_names``: ``"<kpi-file-stem>/<original column>"``, e.g.
          ``"rx-pps/IntGW-01+link-intgw-exgw-a-1"``, ``"cpu_util/IntGW-01"``.
        - ``class_names``: ``KDDI_CLASSES``.
        - ``timestamps``: int64 (n_rows,), YYYYmmddHHMMSS.

    Raises:
        ValueError: an unknown split (the message lists the valid ones).
        FileNotFoundError: the bundled files are missing (a broken install).
    """
    name = _SPLIT_ALIASES.get(split) if isinstance(split, str) else None
    if name is None:
        raise ValueError(
            f"unknown KDDI split {split!r}; valid: 'train', 'eval' (or its alias 'test')"
        )
    resource = resources.files("lossless_triplet.data") / _BUNDLE_DIR / f"{name}.npz"
    if not resource.is_file():
        raise FileNotFoundError(
            f"bundled KDDI file {_BUNDLE_DIR}/{name}.npz is missing from the installed package; "
            "reinstall lossless-triplet or rebuild it with scripts/build_kddi_bundle.py"
        )
    with np.load(io.BytesIO(resource.read_bytes()), allow_pickle=False) as archive:
        return Dataset(
            features=archive["features"],
            labels=archive["status"].astype(np.int64),
            feature_names=tuple(str(n) for n in archive["feature_names"]),
            class_names=KDDI_CLASSES,
            timestamps=archive["timestamp"],
        )


def export_kddi_csv(split: str, path: str | Path, *, label_column: str = "status") -> Path:
    """Write one KDDI split as a plain CSV, e.g. to try the generic table commands on it.

    Columns: ``timestamp``, ``label_column`` holding the class NAME (e.g. ``"node-down"``),
    then the 121 features (float32 text that reads back to the same float32 values; empty
    cells for NaN). Parent folders are created.

    Args:
        split: ``"train"`` or ``"eval"`` (``"test"`` is accepted for ``"eval"``).
        path: the CSV file to write (``.csv.gz`` is gzip-compressed).
        label_column: name of the label column.

    Returns:
        The path written.

    Raises:
        ValueError: an unknown split.
    """
    path = Path(path)
    frame = load_kddi_nfv(split).to_frame(label_column=label_column)
    with written_at_end(path) as tmp:  # the temporary name keeps .gz: pandas compresses by it
        frame.to_csv(tmp, index=False, na_rep="")
    return path
