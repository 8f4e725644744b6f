"""train -> add-fault from one row -> detect, through the library and the CLI, on KDDI-shaped tables."""

import csv
import json

import numpy as np
import pandas as pd
import pytest

from lossless_triplet.bundle import FORMAT_VERSION, FaultModel
from lossless_triplet.cli import main
from lossless_triplet.data import load_kddi_nfv
from lossless_triplet.pipeline import fit_fault_model
from lossless_triplet.pipeline.detect import detect_file, evaluate_model
from lossless_triplet.training import TrainConfig

TINY = TrainConfig(embedding_dim=4, hidden=(16,), epochs=2, steps_per_epoch=5, samples_per_class=8)


def assert_same_predictions(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal predictions, up to the encoder's float32 rounding, which depends on the batch size."""
    exact = [c for c in a.columns if c not in ("distance", "unknown_score")]
    pd.testing.assert_frame_equal(a[exact], b[exact])
    for column in ("distance", "unknown_score"):
        np.testing.assert_allclose(a[column], b[column], rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def kddi():
    train = load_kddi_nfv("train")
    rows = np.concatenate([np.flatnonzero(train.labels == c)[:40] for c in range(7)])
    return train.subset(np.sort(rows)), load_kddi_nfv("eval")


@pytest.fixture(scope="module")
def model(kddi):
    return fit_fault_model(kddi[0], holdout=["node-down"], view="kpi-stats+delta", config=TINY, progress=False)


def test_fit_leaves_held_out_classes_without_signature(model):
    assert "node-down" not in model.memory.names
    assert len(model.memory.names) == 6
    assert model.info["holdout"] == ["node-down"]


def test_save_load_gives_identical_predictions(model, kddi, tmp_path):
    model.save(tmp_path / "m")
    loaded = FaultModel.load(tmp_path / "m")
    raw = kddi[1].features[:300]
    for key, value in model.identify(raw).items():
        np.testing.assert_array_equal(loaded.identify(raw)[key], value)
    document = json.loads((tmp_path / "m" / "model.json").read_text())
    assert document["format_version"] == FORMAT_VERSION
    assert not list((tmp_path / "m").glob("*.pkl")) and not list((tmp_path / "m").glob("*.tmp"))


def test_bundle_version_and_corruption_are_refused(model, tmp_path):
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    document = json.loads(path.read_text())
    document["format_version"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="version 99"):
        FaultModel.load(tmp_path / "m")
    path.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        FaultModel.load(tmp_path / "m")
    (tmp_path / "m" / "encoder.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="encoder.safetensors"):
        FaultModel.load(tmp_path / "m")


@pytest.fixture
def small_chunks(monkeypatch):
    """Let detect take chunks smaller than its floor, to put chunk boundaries inside a test table."""
    import lossless_triplet.pipeline.detect as detection

    monkeypatch.setattr(detection, "MIN_CHUNK_ROWS", 1)


def test_detect_streams_in_chunks_like_one_pass(model, kddi, tmp_path, small_chunks):
    table = tmp_path / "eval.csv"
    pd.DataFrame(kddi[1].features[:1000], columns=kddi[1].feature_names).assign(extra="x").to_csv(table, index=False)
    assert detect_file(model, table, tmp_path / "a.csv", chunk_rows=1000, progress=False) == 1000
    assert detect_file(model, table, tmp_path / "b.csv", chunk_rows=77, progress=False) == 1000
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert_same_predictions(a, b)
    assert a["row"].tolist() == list(range(1000))
    whole = model.identify(kddi[1].features[:1000])
    assert a["status"].tolist() == whole["status"].tolist()
    np.testing.assert_allclose(a["distance"], whole["distance"], rtol=1e-5)
    assert set(a["unknown"].astype(str).str.lower()) <= {"true", "false"}


def test_detect_carries_ten_rows_across_chunks_for_a_baseline_view(baseline_model, kddi, tmp_path, small_chunks):
    model = baseline_model
    table = tmp_path / "eval.csv"
    pd.DataFrame(kddi[1].features[:300], columns=kddi[1].feature_names).to_csv(table, index=False)
    detect_file(model, table, tmp_path / "a.csv", chunk_rows=1000, progress=False)
    detect_file(model, table, tmp_path / "b.csv", chunk_rows=7, progress=False)  # shorter than the window
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert_same_predictions(a, b)
    assert a["status"].tolist() == model.identify(kddi[1].features[:300])["status"].tolist()


def test_detect_in_blocks_on_workers_equals_one_pass(baseline_model, kddi, tmp_path, monkeypatch):
    """Blocks of 7 rows (shorter than the 10-row window) on two workers, chunks of 1,024 identified
    one ahead: every prediction column equals one pass of identify and explain over the whole table."""
    import lossless_triplet.pipeline.detect as detection

    monkeypatch.setattr(detection, "BLOCK_ROWS", 7)
    monkeypatch.setattr(detection, "worker_count", lambda: 2)
    rows = kddi[1].features[:2_500]
    table = tmp_path / "eval.csv"
    pd.DataFrame(rows, columns=kddi[1].feature_names).to_csv(table, index=False)
    assert detect_file(baseline_model, table, tmp_path / "p.csv", chunk_rows=1_024, progress=False) == 2_500
    got = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    whole = baseline_model.identify(rows) | baseline_model.explain(rows)
    expected = pd.DataFrame({"row": np.arange(2_500)} | detection.prediction_columns(whole))
    expected.to_csv(tmp_path / "whole.csv", index=False)
    assert_same_predictions(got, pd.read_csv(tmp_path / "whole.csv", keep_default_na=False))
    assert got["evidence"].str.len().gt(0).any()  # the evidence columns were compared, not empty


def test_evaluate_in_blocks_equals_one_pass(baseline_model, kddi, tmp_path, monkeypatch):
    import lossless_triplet.pipeline.detect as detection

    data = kddi[1].subset(np.arange(1_500))
    data.to_frame("status").to_csv(tmp_path / "eval.csv", index=False)
    whole = detection.evaluate_file(baseline_model, tmp_path / "eval.csv", "status", retrieval=False)
    monkeypatch.setattr(detection, "BLOCK_ROWS", 7)
    monkeypatch.setattr(detection, "MIN_CHUNK_ROWS", 1)
    monkeypatch.setattr(detection, "worker_count", lambda: 2)
    blocks = detection.evaluate_file(baseline_model, tmp_path / "eval.csv", "status", chunk_rows=500, retrieval=False)
    assert blocks == whole
    one_pass = baseline_model.identify(data.features)["status"]
    assert blocks["statuses"] == {s: int(n) for s, n in zip(*np.unique(one_pass, return_counts=True))}


def test_evaluate_scores_unknown_rows(model, kddi):
    eval_data = kddi[1].subset(np.arange(2000))
    document = evaluate_model(model, eval_data)
    assert document["n_rows"] == 2000
    assert "unknown" in document["truth"]  # node-down rows have no signature
    assert 0 <= document["unknown_auroc"] <= 1
    assert 0 <= document["macro_f1"] <= 1 and 0 <= document["precision_at_1"] <= 1


def test_cli_train_add_fault_detect(kddi, tmp_path, capsys):
    train, evaluation = kddi
    train_csv, eval_csv, one_row = tmp_path / "train.csv", tmp_path / "eval.csv", tmp_path / "one.csv"
    train.to_frame("status").to_csv(train_csv, index=False)
    frame = evaluation.subset(np.arange(500)).to_frame("status")
    frame.to_csv(eval_csv, index=False)
    train_frame = pd.read_csv(train_csv)
    train_frame[train_frame["status"] == "interface-down"].head(1).to_csv(one_row, index=False)
    model_dir = tmp_path / "model"
    assert main(["train", "--data", str(train_csv), "--label-column", "status", "--holdout",
                 "node-down,interface-down", "--steps", "6", "--dim", "4", "--out", str(model_dir),
                 "--no-progress"]) == 0
    trained = FaultModel.load(model_dir)
    # auto: chosen among the link views KDDI's columns allow, on the training table, and recorded
    assert trained.view.name.startswith("kpi-stats+link")
    chosen = trained.info["selection"]
    assert chosen["view"] == trained.view.name and chosen["representation"] == trained.representation.name
    # known classes but the largest pretended new in turn (held-out ones never)
    assert len(chosen["folds"]) == 4 and not set(chosen["folds"]) & {"node-down", "interface-down"}
    assert chosen["inner_steps"] == 1  # a quarter of --steps 6
    assert "chosen on the training table" in capsys.readouterr().out
    assert main(["add-fault", "--model", str(model_dir), "--data", str(one_row), "--name", "interface-down"]) == 0
    assert "interface-down" in FaultModel.load(model_dir).memory.names
    assert main(["detect", "--model", str(model_dir), "--data", str(eval_csv), "--out",
                 str(tmp_path / "pred.csv"), "--no-progress"]) == 0
    with open(tmp_path / "pred.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 500
    assert {"status", "nearest", "distance", "unknown"} <= set(rows[0])
    assert main(["faults", "--model", str(model_dir), "--remove", "interface-down"]) == 0
    assert "interface-down" not in FaultModel.load(model_dir).memory.names
    assert main(["evaluate", "--model", str(model_dir), "--data", str(eval_csv), "--label-column", "status",
                 "--out", str(tmp_path / "ev")]) == 0
    assert json.loads((tmp_path / "ev" / "evaluation.json").read_text())["n_rows"] == 500


@pytest.fixture(scope="module")
def baseline_model(kddi):
    return fit_fault_model(kddi[0], holdout=["node-down"], view="kpi-stats+link+baseline", config=TINY,
                           progress=False)


def test_add_fault_encodes_examples_after_their_context_rows(baseline_model, kddi):
    raw = kddi[1].features[:40]
    mask = np.zeros(40, dtype=bool)
    mask[[20, 21, 30]] = True
    baseline_model.add_fault("x", raw, examples=mask)
    in_stream = baseline_model.represent(raw)[mask]
    np.testing.assert_allclose(baseline_model.memory.signatures_["x"].centroid, in_stream.mean(axis=0), rtol=1e-6)
    assert baseline_model.memory.signatures_["x"].count == 3
    alone = baseline_model.represent(raw[mask])  # without the 10 rows before, the baselines differ
    assert not np.allclose(alone, in_stream, atol=1e-4)
    baseline_model.add_fault("y", raw, examples=np.array([20, 21, 30]))  # indices select the same rows
    np.testing.assert_allclose(baseline_model.memory.signatures_["y"].centroid, in_stream.mean(axis=0), rtol=1e-6)
    for bad, message in [(mask[:-1], "one flag per row"), (np.zeros(40, dtype=bool), "no row"),
                         (np.array([40]), "outside 0..39"), (np.array([0.5]), "boolean mask or integer")]:
        with pytest.raises(ValueError, match=message):
            baseline_model.add_fault("z", raw, examples=bad)
    assert "z" not in baseline_model.memory.names


def test_cli_add_fault_takes_the_labelled_rows_of_a_table(kddi, tmp_path, capsys):
    train, evaluation = kddi
    train_csv, eval_csv, model_dir = tmp_path / "train.csv", tmp_path / "eval.csv", tmp_path / "model"
    train.to_frame("status").to_csv(train_csv, index=False)
    evaluation.subset(np.arange(400)).to_frame("status").to_csv(eval_csv, index=False)
    assert main(["train", "--data", str(train_csv), "--label-column", "status", "--holdout", "bgp-hijacking",
                 "--view", "kpi-stats+link+baseline", "--steps", "4", "--dim", "4", "--out", str(model_dir),
                 "--no-progress"]) == 0
    # the table holds the model's label column with several statuses: refused, not all added
    assert main(["add-fault", "--model", str(model_dir), "--data", str(eval_csv), "--name", "bgp-hijacking"]) == 2
    assert "--label-column status" in capsys.readouterr().err
    assert "bgp-hijacking" not in FaultModel.load(model_dir).memory.names
    assert main(["add-fault", "--model", str(model_dir), "--data", str(eval_csv), "--name", "bgp-hijacking",
                 "--label-column", "status"]) == 0
    labels = np.asarray(evaluation.class_names)[evaluation.labels[:400]]
    mask = labels == "bgp-hijacking"
    assert 0 < mask.sum() < 400
    model = FaultModel.load(model_dir)
    expected = model.represent(evaluation.features[:400])[mask].mean(axis=0)
    np.testing.assert_allclose(model.memory.signatures_["bgp-hijacking"].centroid, expected, rtol=1e-5)
    assert f"from {mask.sum()} row(s) labelled 'bgp-hijacking'" in capsys.readouterr().out
    assert main(["add-fault", "--model", str(model_dir), "--data", str(eval_csv), "--name", "no-such",
                 "--label-column", "status"]) == 2
    assert "no row" in capsys.readouterr().err


def test_detect_names_the_missing_feature_column(model, kddi, tmp_path, capsys):
    model.save(tmp_path / "m")
    frame = pd.DataFrame(kddi[1].features[:10], columns=kddi[1].feature_names)
    frame.drop(columns=["cpu_util/RR-01", "rx-pps/IntGW-01+link-intgw-exgw-a-1"]).to_csv(tmp_path / "x.csv",
                                                                                          index=False)
    status = main(["detect", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "x.csv"), "--out",
                   str(tmp_path / "p.csv"), "--no-progress"])
    assert status == 2
    err = capsys.readouterr().err
    assert "cpu_util/RR-01" in err and "rx-pps/IntGW-01+link-intgw-exgw-a-1" in err


def test_detect_failure_leaves_no_partial_output(model, kddi, tmp_path, small_chunks):
    frame = pd.DataFrame(kddi[1].features[:10], columns=kddi[1].feature_names)
    frame["cpu_util/RR-01"] = frame["cpu_util/RR-01"].astype(object)
    frame.loc[7, "cpu_util/RR-01"] = "oops"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="row 8"):
        detect_file(model, tmp_path / "bad.csv", tmp_path / "pred.csv", chunk_rows=3, progress=False)
    assert list(tmp_path.glob("*pred*")) == []


def test_cli_refuses_bad_steps_and_a_file_as_out_before_training(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n1,2,x\n3,4,z\n")
    assert main(["train", "--data", str(table), "--label-column", "y", "--steps", "0", "--out",
                 str(tmp_path / "m")]) == 2
    assert "--steps 0 must be >= 1" in capsys.readouterr().err
    assert main(["train", "--data", str(table), "--label-column", "y", "--out", str(table)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_collapsed_training_stops_with_the_fix(kddi):
    # lr 1.0 on the raw view saturates every sigmoid: one code for every row, a lossless loss at
    # its bound -ln(eps). Before: a model whose every row was "unknown" with unknown_score NaN.
    config = TrainConfig(embedding_dim=16, epochs=2, steps_per_epoch=50, learning_rate=1.0)
    with pytest.raises(ValueError, match=r"training collapsed: the codes of the 280 training rows take 1 "
                                         r"distinct value\(s\) for 7 classes.*Lower the learning rate \(--lr; it "
                                         r"was 1\), try another loss"):
        fit_fault_model(kddi[0], loss="lossless", view="raw", representation="code", config=config, progress=False)


def test_a_healthy_model_records_its_code_health(model):
    health = model.info["code_health"]
    assert not health["collapsed"] and health["distinct_codes"] >= 6 and health["n_classes"] == 6


def test_train_refuses_a_table_of_constant_columns(tmp_path, capsys):
    table = tmp_path / "constant.csv"
    table.write_text("a,b,status\n" + "".join(f"1,2,{s}\n" for s in ["x", "y", "z"] * 20))
    assert main(["train", "--data", str(table), "--label-column", "status", "--quick", "--out",
                 str(tmp_path / "m")]) != 0
    err = capsys.readouterr().err
    assert "only 1 distinct row(s) of feature values for 3 classes" in err and "constant columns" in err
    assert not (tmp_path / "m").exists()


def test_a_full_disk_leaves_no_partial_bundle_and_says_so(model, kddi, tmp_path, monkeypatch, capsys):
    import errno

    import lossless_triplet.io as io_module

    saved = model.save(tmp_path / "kept")
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    calls = []

    def full_on_second_file(fd):
        calls.append(fd)
        if len(calls) == 2:  # the encoder is on disk, the signatures are not: the bundle must not change
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_module.os, "fsync", full_on_second_file)
    with pytest.raises(OSError, match="No space left on device while saving signatures.safetensors in .*kept; "
                                      "nothing was changed"):
        model.save(saved)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    calls.clear()
    with pytest.raises(OSError, match="nothing was changed"):
        model.save(tmp_path / "new")
    assert not (tmp_path / "new").exists()  # a directory the failed save created is removed
    # The command line: add-fault says why and leaves the bundle as it was.
    one = tmp_path / "one.csv"
    kddi[1].subset(np.arange(1)).to_frame("status").to_csv(one, index=False)
    calls.clear()
    calls.append(None)  # the next write is the second: it fails
    assert main(["add-fault", "--model", str(saved), "--data", str(one), "--name", "x"]) != 0
    assert "No space left on device while saving signatures.safetensors" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before


def test_class_count_errors_say_what_to_change():
    from lossless_triplet.pipeline import resolve_holdout

    with pytest.raises(ValueError, match=r"the table has 1 class\(es\) \(normal\): training needs at least 2.*"
                                         "check the label column"):
        resolve_holdout(["normal"], [])
    with pytest.raises(ValueError, match="holding out 2 of 3 classes leaves 1 to train on.*hold out fewer"):
        resolve_holdout(["a", "b", "c"], ["a", "b"])


def test_detect_takes_at_least_min_chunk_rows(model, kddi, tmp_path, monkeypatch):
    import lossless_triplet.pipeline.detect as detection

    sizes = []
    real = detection.iter_feature_table
    monkeypatch.setattr(detection, "iter_feature_table", lambda *a: sizes.append(a[2]) or real(*a))
    table = tmp_path / "eval.csv"
    pd.DataFrame(kddi[1].features[:50], columns=kddi[1].feature_names).to_csv(table, index=False)
    detect_file(model, table, tmp_path / "p.csv", chunk_rows=7, progress=False)
    assert sizes == [detection.MIN_CHUNK_ROWS]


def test_cli_evaluate_explain_scores_the_evidence_against_a_truth_column(model, kddi, tmp_path, capsys):
    frame = kddi[1].subset(np.arange(400)).to_frame("status")
    # A target element for every fault row: the router of its most deviant evidence column is a hit
    # by construction for half of them, a router that is not in the table a miss for the other half.
    explained = model.explain(kddi[1].features[:400])
    first = [model.feature_names[j].split("/")[1].split("+")[0] for j in explained["evidence_columns"][:, 0]]
    frame["target"] = [(node if i % 2 else "NOWHERE-99") if s != "normal" else ""
                       for i, (node, s) in enumerate(zip(first, frame["status"]))]
    frame.to_csv(tmp_path / "eval.csv", index=False)
    model.save(tmp_path / "m")
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "eval.csv"), "--label-column",
                 "status", "--truth-column", "target"]) == 2
    assert "pass --explain with it" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "eval.csv"), "--label-column",
                 "status", "--explain", "--truth-column", "target", "--out", str(tmp_path / "ev"),
                 "--no-progress"]) == 0
    scores = json.loads((tmp_path / "ev" / "evaluation.json").read_text())["explanation"]
    faults = frame[frame["status"] != "normal"]
    assert {status: entry["rows"] for status, entry in scores.items()} == faults["status"].value_counts().to_dict()
    for status, entry in scores.items():
        hits = [i % 2 == 1 for i in faults.index[faults["status"] == status]]
        assert entry["hit_rate"] == pytest.approx(np.mean(hits))


def test_the_old_module_names_still_import():
    import lossless_triplet.bundle as bundle
    from lossless_triplet import detection, experiment, pipeline, selection
    from lossless_triplet.representation import Representation

    assert detection.detect_file is pipeline.detect_file and experiment.compare_losses is pipeline.compare_losses
    assert selection.Representation is Representation and selection.select is pipeline.select
    from lossless_triplet.budget import TRAIN_STEPS  # noqa: F401
    from lossless_triplet.experiment import json_safe, resolve_holdout, write_metrics  # noqa: F401
    from lossless_triplet.http_limits import server_config  # noqa: F401
    with pytest.raises(ImportError, match="from lossless_triplet.pipeline import fit_fault_model"):
        from lossless_triplet.bundle import fit_fault_model  # noqa: F401
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        bundle.nothing  # noqa: B018


def test_add_fault_and_faults_remove_take_a_padded_name_as_the_stored_one(model, kddi, tmp_path, capsys):
    model.save(tmp_path / "m")
    one = tmp_path / "one.csv"
    pd.DataFrame(kddi[1].features[:1], columns=kddi[1].feature_names).to_csv(one, index=False)
    assert main(["add-fault", "--model", str(tmp_path / "m"), "--data", str(one), "--name", " brand-new "]) == 0
    assert "added fault 'brand-new' from 1 row(s)" in capsys.readouterr().out
    assert "brand-new" in FaultModel.load(tmp_path / "m").memory.names
    assert main(["faults", "--model", str(tmp_path / "m"), "--remove", "brand-new "]) == 0
    assert "brand-new" not in FaultModel.load(tmp_path / "m").memory.names
