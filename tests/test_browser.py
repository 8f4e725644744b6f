"""The HTML report in a real browser: headless Chromium opens it from a file URL, offline.

The page must draw every plot (the report's own probe writes ``data-plots-rendered="k/n"``
on ``<html>``), log no script error (``data-script-errors="0"`` and no "Uncaught" on the
console), and the screenshot must show the plots, not a blank page. ``.ci/run`` installs
Chromium (Debian package ``chromium``); without it this test skips.
"""

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from lossless_triplet.plots import PALETTE
from lossless_triplet.report import write_report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium; .ci/run does it)"
)


def _report(path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 60)
    centres = rng.random((3, 5))
    codes = {"triplet": np.clip(centres[labels] + 0.05 * rng.normal(size=(180, 5)), 0, 1),  # N > 3: PCA
             "lossless": np.clip(centres[labels, :3] + 0.08 * rng.normal(size=(180, 3)), 0, 1)}
    history = {"epoch": [1, 2, 3], "train_loss": [2.0, 1.5, 1.2], "test_loss": [2.1, 1.7, 1.5]}
    metrics = {"dataset": "kddi-nfv", "classes": ["normal", "node-down", "tap-loss"], "holdout": ["node-down"],
               "losses": {n: {"precision_at_1": 0.9, "one_shot_macro_f1": 0.5, "one_shot_macro_f1_std": 0.1,
                              "one_shot_confusion": {"true": ["normal", "node-down", "tap-loss"],
                                                     "predicted": ["normal", "node-down", "tap-loss"],
                                                     "counts": [[50, 5, 5], [10, 40, 10], [0, 3, 57]]}}
                          for n in codes},
               "evidence_by_status": {"node-down": [{"column": "cpu_util/RR-01", "share": 0.9}]},
               "config": {"train": {"epochs": 3, "steps_per_epoch": 2}, "n_draws": 10, "view": "raw"}}
    return write_report(path, metrics, {"triplet": codes["triplet"], "lossless": codes["lossless"][:, :3]},
                        labels, metrics["classes"], {"triplet": history, "lossless": history})


def _near(pixels: np.ndarray, hex_colour: str, tolerance: int = 40) -> float:
    """Fraction of pixels within ``tolerance`` (per channel) of a colour."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(pixels.astype(int) - rgb).max(axis=-1) <= tolerance).mean())


def test_report_renders_offline_in_headless_chromium(tmp_path):
    page = _report(tmp_path / "report.html")
    assert "Kawasaki" in page.read_text(encoding="utf-8")  # KDDI runs credit the data
    shot = tmp_path / "screenshot.png"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",  # software WebGL
        "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr", "--v=0", "--window-size=1200,1600", "--virtual-time-budget=10000",
        f"--screenshot={shot}", "--dump-dom", page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

    root = re.search(r"<html[^>]*>", done.stdout)
    assert root, f"no DOM dumped; stderr: {done.stderr[-2000:]}"
    assert 'data-script-errors="0"' in root.group(0), root.group(0)
    # two 3-D scatters, two one-shot confusions, the loss curves
    assert 'data-plots-rendered="5/5"' in root.group(0), root.group(0)
    errors = [line for line in done.stderr.splitlines()
              if "ERROR:CONSOLE" in line or ("CONSOLE" in line and "Uncaught" in line)]
    assert not errors, errors

    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[:2] == (1600, 1200)
    assert (pixels.min(axis=-1) < 235).mean() > 0.05, "the page looks blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    assert _near(pixels, PALETTE[0]) > 1e-4, "no 'normal' (green) points drawn: did WebGL render the 3-D scatter?"
    assert _near(pixels, PALETTE[5], 20) > 1e-4, "no train-loss curve drawn"
