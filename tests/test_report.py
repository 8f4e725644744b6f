"""`compare --animate` end to end: the saved run, the GIF, the self-contained report, and `report RUN_DIR`."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from lossless_triplet.cli import main
from lossless_triplet.runs import load_run
from tests.test_cli import synthetic_table

FIGURES = ("embeddings_triplet.png", "embeddings_lossless.png", "loss_curves.png", "training.gif", "report.html")


@pytest.fixture(scope="module")
def animated_run(tmp_path_factory):
    """One small animated comparison (N = 5, so the pictures go through the PCA), shared by the tests."""
    root = tmp_path_factory.mktemp("animated")
    train = synthetic_table(root / "train.csv", 30, 0)
    test = synthetic_table(root / "test.csv", 15, 1)
    out = root / "run"
    status = main(["compare", "--train", str(train), "--test", str(test), "--label-column", "state",
                   "--holdout", "cpu-hog", "--losses", "triplet,lossless", "--dim", "5", "--epochs", "2",
                   "--steps-per-epoch", "3", "--out", str(out), "--no-progress", "--animate"])
    assert status == 0
    return out


def test_animated_run_saves_what_report_needs(animated_run):
    for name in ("metrics.json", "codes.npz", "history.json", "animation.npz", *FIGURES):
        assert (animated_run / name).stat().st_size > 0, name
    with np.load(animated_run / "codes.npz", allow_pickle=False) as data:
        assert data["losses"].tolist() == ["triplet", "lossless"]
        assert data["test_codes"].shape == (2, 60, 5) and data["test_codes"].dtype == np.float32
        assert data["class_names"].tolist() == sorted(["ok", "disk-full", "link-flap", "cpu-hog"])
    history = json.loads((animated_run / "history.json").read_text())
    assert history["lossless"]["epoch"] == [1, 2] and len(history["triplet"]["test_loss"]) == 2
    run = load_run(animated_run)
    assert run.recording is not None and run.recording.epochs.tolist() == [1, 2]


def test_gif_has_enough_frames_is_wide_and_small(animated_run):
    gif = animated_run / "training.gif"
    with Image.open(gif) as image:
        assert image.n_frames >= 10
        assert image.width > image.height
        image.seek(image.n_frames - 1)
        last = np.asarray(image.convert("RGB"))
    assert gif.stat().st_size < 5_000_000
    # something besides the white background was drawn, in more than a couple of colours
    assert (last.min(axis=2) < 200).mean() > 0.01
    assert len(np.unique(last.reshape(-1, 3), axis=0)) > 10


def test_report_is_self_contained(animated_run):
    page = (animated_run / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, flags=re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", page, flags=re.IGNORECASE)
    assert "Plotly.newPlot" in page and "plotly.js" in page.lower()
    assert page.count('class="plotly-graph-div') == 5  # two 3-D scatters, two confusions, the loss curves
    assert page.count("one-shot confusion") == 2 and "Evidence by status" in page
    assert "data:image/gif;base64," in page
    for text in ("One-shot recognition", "cpu-hog", "held out", "Configuration", "MAP@R", "Arsenault"):
        assert text in page
    assert "Kawasaki" not in page  # the KDDI credit belongs to KDDI runs only


def test_one_shot_confusion_and_evidence_are_in_metrics(animated_run):
    metrics = json.loads((animated_run / "metrics.json").read_text())
    for loss in metrics["losses"].values():
        confusion = loss["one_shot_confusion"]
        counts = np.asarray(confusion["counts"])
        assert confusion["predicted"] == sorted(["ok", "disk-full", "link-flap", "cpu-hog"])
        assert counts.shape == (len(confusion["true"]), len(confusion["predicted"]))
        assert counts.sum() == pytest.approx(60)  # every test row once per draw, averaged over draws
    evidence = metrics["evidence_by_status"]
    assert set(evidence) == {"ok", "disk-full", "link-flap", "cpu-hog"}
    assert all(0 < e["share"] <= 1 for entries in evidence.values() for e in entries)


def test_a_collapsed_code_is_marked_not_bolded():
    from lossless_triplet.report import METRIC_COLUMNS, _table

    rows = [("linear_lossless", {"compactness": 0.002, "saturated_share": 0.97}, False),
            ("triplet", {"compactness": 0.25, "saturated_share": 0.02}, False)]
    table = _table(rows, METRIC_COLUMNS)
    assert "0.002 (collapsed)" in table and '<td class="best">0.250</td>' in table


def test_report_command_rebuilds_without_retraining(animated_run, tmp_path, capsys):
    out = tmp_path / "rebuilt"
    assert main(["report", str(animated_run), "--out", str(out)]) == 0
    for name in FIGURES:
        assert (out / name).stat().st_size > 0, name
    assert not (out / "metrics.json").exists()  # read, not rewritten
    with Image.open(out / "training.gif") as new, Image.open(animated_run / "training.gif") as old:
        assert new.n_frames == old.n_frames and new.size == old.size
    assert "report.html" in capsys.readouterr().out


def test_report_on_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "codes.npz" in err or "metrics.json" in err
    assert "Traceback" not in err
    assert main(["report", str(tmp_path / "nowhere")]) == 2
