"""The CLI end to end: demo on the bundled data, compare on a table it has never seen, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from lossless_triplet.cli import main

METRIC_KEYS = {"precision_at_1", "r_precision", "map_at_r", "one_shot_macro_f1", "heldout_accuracy",
               "compactness", "final_train_loss", "train_seconds"}


def synthetic_table(path, n_per_class, seed):
    """Four string-labelled classes in 6 features, with a text column and a missing cell."""
    rng = np.random.default_rng(seed)
    centres = {"ok": 0.0, "disk-full": 3.0, "link-flap": -3.0, "cpu-hog": 6.0}
    frames = []
    for name, centre in centres.items():
        x = centre + rng.normal(size=(n_per_class, 6))
        frame = pd.DataFrame(x, columns=[f"kpi_{i}" for i in range(6)])
        frame["state"] = name
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table.loc[3, "kpi_2"] = np.nan
    table.to_csv(path, index=False)
    return path


def test_compare_on_an_unseen_table_with_string_labels(tmp_path, capsys):
    train = synthetic_table(tmp_path / "train.csv", 40, 0)
    test = synthetic_table(tmp_path / "test.csv", 20, 1)
    out = tmp_path / "run"
    status = main(["compare", "--train", str(train), "--test", str(test), "--label-column", "state",
                   "--holdout", "disk-full,cpu-hog", "--losses", "lossless,triplet", "--epochs", "2",
                   "--steps-per-epoch", "5", "--draws", "10", "--out", str(out), "--no-progress"])
    assert status == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["dataset"] == "train"
    assert doc["classes"] == sorted(["ok", "disk-full", "link-flap", "cpu-hog"])
    assert doc["holdout"] == ["disk-full", "cpu-hog"]
    assert set(doc["losses"]) == {"lossless", "triplet"}
    for metrics in doc["losses"].values():
        assert METRIC_KEYS <= set(metrics)
        assert all(isinstance(metrics[k], float) for k in METRIC_KEYS)
        assert 0 <= metrics["one_shot_macro_f1"] <= 1
    assert doc["config"]["train"]["epochs"] == 2
    for name in ("embeddings_lossless.png", "embeddings_triplet.png", "loss_curves.png"):
        assert (out / name).stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "lossless" in printed and "MAP@R" in printed


@pytest.mark.slow
def test_quick_demo_on_the_bundled_data(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["dataset"] == "kddi-nfv"
    assert doc["holdout"] == ["node-down", "interface-down"]
    assert doc["classes"][0] == "normal" and len(doc["classes"]) == 7
    assert set(doc["losses"]) == {"triplet", "linear_lossless", "lossless", "contrastive", "soft_margin"}
    for metrics in doc["losses"].values():
        assert METRIC_KEYS <= set(metrics)
        assert 0 < metrics["precision_at_1"] <= 1
        assert metrics["retrieval_method"] == "exact" and metrics["retrieval_queries"] == 5333
        assert isinstance(metrics["collapsed"], bool) and metrics["distinct_codes"] >= 1
    for name in ("triplet", "linear_lossless", "lossless", "contrastive", "soft_margin"):
        assert (out / f"embeddings_{name}.png").exists()
    assert (out / "loss_curves.png").exists()


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["--label-column", "nope"], "nope"),
        (lambda d: ["--label-column", "state", "--holdout", "mystery"], "mystery"),
        (lambda d: ["--label-column", "state", "--losses", "hinge2"], "hinge2"),
        (lambda d: ["--label-column", "state", "--holdout", "ok,disk-full,cpu-hog"], "at least 2 must stay"),
        (lambda d: ["--label-column", "state", "--dim", "0"], "--dim 0 must be >= 1"),
        (lambda d: ["--label-column", "state", "--draws", "-1"], "--draws -1 must be >= 1"),
        (lambda d: ["--label-column", "state", "--test", str(d)], "is not a regular file"),
    ],
)
def test_bad_input_gives_one_clear_error(tmp_path, capsys, make_args, message):
    train = synthetic_table(tmp_path / "train.csv", 10, 0)
    try:
        status = main(["compare", "--train", str(train), "--test", str(train), "--epochs", "1",
                       "--steps-per-epoch", "1", "--out", str(tmp_path / "o"), "--no-progress", *make_args(tmp_path)])
    except SystemExit as refused:  # an argument the parser refuses (an unknown loss name): argparse exits 2
        status = refused.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_empty_and_non_numeric_tables_are_refused(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    good = synthetic_table(tmp_path / "good.csv", 10, 0)
    assert main(["compare", "--train", str(empty), "--test", str(good), "--label-column", "state"]) == 2
    assert "empty" in capsys.readouterr().err.lower()
    bad = pd.read_csv(good)
    bad["kpi_1"] = bad["kpi_1"].astype(object)
    bad.loc[5, "kpi_1"] = "n/a?"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    assert main(["compare", "--train", str(tmp_path / "bad.csv"), "--test", str(good), "--label-column", "state"]) == 2
    err = capsys.readouterr().err
    assert "kpi_1" in err and "row" in err


def test_the_parser_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; from lossless_triplet.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'pandas', 'sklearn', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_detect_imports_neither_the_comparison_nor_the_plotting():
    """``detect`` starts in half the time when the pipeline package does not import every job
    (scikit-learn's forests, SciPy, matplotlib: 6.3-7.3 s -> 3.1-3.5 s for a 100-row file here)."""
    import subprocess
    import sys

    code = ("import sys; from lossless_triplet.pipeline.detect import detect_file; "
            "from lossless_triplet.pipeline import detect_file as same; assert same is detect_file; "
            "print(sorted(m for m in ('sklearn', 'scipy', 'matplotlib', 'plotly') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    import lossless_triplet.pipeline as pipeline

    for name in pipeline.__all__:  # every public name still resolves, lazily
        assert getattr(pipeline, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pipeline.nope  # noqa: B018


def test_training_budget_is_split_into_whole_epochs_of_at_most_50_steps():
    from lossless_triplet.defaults import TRAIN_STEPS, epochs_and_steps

    assert epochs_and_steps(TRAIN_STEPS) == (24, 50)  # the budget fit_fault_model and `train` share
    assert epochs_and_steps(7) == (1, 7) and epochs_and_steps(101) == (101, 1) and epochs_and_steps(120) == (3, 40)
    with pytest.raises(ValueError, match="must be >= 1"):
        epochs_and_steps(0)


@pytest.mark.parametrize("argv, expected", [
    (["demo"], (24, 50)),  # train's budget: nothing is tuned on an eval split
    (["compare", "--train", "a.csv", "--test", "b.csv", "--label-column", "s"], (24, 50)),
    (["demo", "--quick"], (6, 15)),
    (["demo", "--quick", "--epochs", "2"], (2, 15)),
    (["compare", "--train", "a.csv", "--test", "b.csv", "--label-column", "s", "--steps-per-epoch", "5"], (24, 5)),
])
def test_each_command_trains_the_train_budget_and_options_override_it(argv, expected):
    from lossless_triplet.cli import build_parser
    from lossless_triplet.cli.compare import _train_config

    config = _train_config(build_parser().parse_args(argv))
    assert (config.epochs, config.steps_per_epoch) == expected


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_serve_refuses_a_port_out_of_range_before_loading_anything(tmp_path, capsys, port):
    assert main(["serve", "--model", str(tmp_path / "none"), f"--port={port}"]) == 2
    assert f"--port {port} must be a TCP port, 0 to 65535" in capsys.readouterr().err
