"""Resumable training: 50 + 50 steps equal 100 steps; a bad or foreign checkpoint is refused."""

import dataclasses
import logging

import numpy as np
import pytest
import torch

from lossless_triplet.checkpoint import (
    check_fingerprint,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from lossless_triplet.losses import LosslessTripletLoss, TripletMarginLoss
from lossless_triplet.training import TrainConfig, train_encoder

FULL = TrainConfig(embedding_dim=3, hidden=(8,), epochs=10, steps_per_epoch=10, classes_per_batch=3,
                   samples_per_class=4, learning_rate=1e-2, seed=3)
HALF = dataclasses.replace(FULL, epochs=5)
# Checks that need a checkpoint but not a long run: 10 steps, checkpoints at 5 and 10.
SHORT = dataclasses.replace(FULL, epochs=2, steps_per_epoch=5)
LONGER = dataclasses.replace(SHORT, epochs=4)


def table(seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), 15)
    x = (rng.normal(size=(60, 6)) + y[:, None]).astype(np.float32)
    return x, y


def train(config=FULL, directory=None, *, every=None, resume=False, loss=None, data=None, **kwargs):
    x, y = data or table()
    return train_encoder(x, y, loss or LosslessTripletLoss(), config, progress=False, checkpoint_dir=directory,
                         checkpoint_every=every, resume=resume, **kwargs)


def assert_same_model(a, b):
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.fixture(scope="module")
def uninterrupted():
    x, y = table()
    return train(test_features=x, test_labels=y)


def test_50_then_50_more_steps_equal_100_steps(uninterrupted, tmp_path):
    x, y = table()
    first = train(HALF, tmp_path, every=25, test_features=x, test_labels=y)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [25, 50]
    assert first.history["epoch"] == [1, 2, 3, 4, 5]
    resumed = train(FULL, tmp_path, every=25, resume=True, test_features=x, test_labels=y)
    assert resumed.start_step == 50
    assert_same_model(resumed, uninterrupted)
    assert resumed.history == uninterrupted.history  # epochs 1-5 come from the checkpoint, bit for bit
    # Only the two newest checkpoints are kept; they load without pickle (weights_only).
    assert [step for step, _ in list_checkpoints(tmp_path)] == [75, 100]
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 100 and len(state["step_losses"]) == 100


def test_an_interruption_mid_epoch_resumes_exactly(uninterrupted, tmp_path):
    loss = LosslessTripletLoss()
    calls = []

    def crash_at_step_38(*args):
        calls.append(1)
        if len(calls) == 38:
            raise KeyboardInterrupt
        return LosslessTripletLoss.forward(loss, *args)

    loss.forward = crash_at_step_38  # the repr, and so the run's fingerprint, stay those of LosslessTripletLoss
    with pytest.raises(KeyboardInterrupt):
        train(FULL, tmp_path, every=7, loss=loss)
    assert latest_checkpoint(tmp_path).name == "checkpoint-00000035.pt"  # in the middle of epoch 4
    resumed = train(FULL, tmp_path, every=7, resume=True)
    assert_same_model(resumed, uninterrupted)
    assert resumed.history["train_loss"] == uninterrupted.history["train_loss"]


def test_resuming_with_other_epoch_boundaries_keeps_the_trajectory(uninterrupted, tmp_path):
    # The CLI picks steps_per_epoch from --steps, so a longer resumed run may group epochs differently.
    train(HALF, tmp_path, every=50)
    regrouped = train(dataclasses.replace(FULL, epochs=4, steps_per_epoch=25), tmp_path, every=100, resume=True)
    assert_same_model(regrouped, uninterrupted)
    per_step = np.array(load_checkpoint(latest_checkpoint(tmp_path))["step_losses"])
    np.testing.assert_allclose(regrouped.history["train_loss"], per_step.reshape(4, 25).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(per_step.reshape(10, 10).mean(axis=1), uninterrupted.history["train_loss"],
                               rtol=1e-12)


def test_resume_without_a_checkpoint_starts_at_step_0(tmp_path, caplog):
    # So a job restarted by its scheduler can always pass --resume, even before its first checkpoint.
    with caplog.at_level(logging.WARNING, logger="lossless_triplet.training"):
        fresh = train(SHORT, tmp_path / "none", resume=True)
    assert "starting at step 0" in caplog.text
    assert fresh.start_step == 0
    assert_same_model(fresh, train(SHORT))


@pytest.fixture
def half_run(tmp_path):
    train(SHORT, tmp_path, every=5)
    return tmp_path


def test_a_truncated_checkpoint_is_refused_with_its_name(half_run):
    path = latest_checkpoint(half_run)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"checkpoint-00000010\.pt is incomplete or corrupt.*resume from "
                                         r"checkpoint-00000005\.pt"):
        train(LONGER, half_run, resume=True)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="incomplete or corrupt"):
        train(LONGER, half_run, resume=True)


def test_a_flipped_byte_and_a_foreign_file_are_refused(half_run):
    path = latest_checkpoint(half_run)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_checkpoint(path)
    torch.save({"step": 10}, path)  # a plain torch.save file is not a checkpoint of ours
    with pytest.raises(ValueError, match="not a lossless-triplet checkpoint"):
        train(LONGER, half_run, resume=True)


def test_a_leftover_temporary_file_is_not_a_checkpoint(half_run):
    (half_run / ".checkpoint-00000015.pt.abc123.tmp").write_bytes(b"half a write")
    assert latest_checkpoint(half_run).name == "checkpoint-00000010.pt"
    assert train(LONGER, half_run, resume=True).start_step == 10


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(config=dataclasses.replace(LONGER, seed=4)), "seed: 3 in the checkpoint, 4 now"),
        (dict(config=dataclasses.replace(LONGER, samples_per_class=8)), "samples_per_class"),
        (dict(config=dataclasses.replace(LONGER, embedding_dim=4)), "embedding_dim"),
        (dict(loss=TripletMarginLoss()), "loss"),
        (dict(data=table(seed=1)), "data_sha256"),
    ],
)
def test_resuming_another_run_is_refused(half_run, change, message):
    with pytest.raises(ValueError, match=f"cannot resume from .*checkpoint-00000010.pt.*{message}"):
        train(directory=half_run, resume=True, **{"config": LONGER, **change})


def test_other_misuse_is_refused(half_run):
    with pytest.raises(ValueError, match="already holds checkpoints.*--resume"):
        train(LONGER, half_run, every=10)
    with pytest.raises(ValueError, match="step 10, past this run's 5 steps"):
        train(dataclasses.replace(SHORT, epochs=1), half_run, resume=True)
    x, y = table()
    with pytest.raises(ValueError, match="no test loss at step 5"):  # the first run had no test rows
        train(LONGER, half_run, resume=True, test_features=x, test_labels=y)
    with pytest.raises(ValueError, match="need a checkpoint_dir"):
        train(LONGER, None, every=10)
    with pytest.raises(ValueError, match="checkpoint_every=0"):
        train(LONGER, half_run, every=0)


def test_save_and_load_round_trip(tmp_path):
    state = {"step": 3, "weights": torch.arange(4.0), "notes": ["a", 1, 2.5], "nested": {"x": (1, 2)}}
    path = save_checkpoint(tmp_path, state, keep=1)
    assert path == checkpoint_path(tmp_path, 3)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["weights"], state["weights"]) and loaded["notes"] == ["a", 1, 2.5]
    save_checkpoint(tmp_path, {**state, "step": 4}, keep=1)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [4]
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="int 'step'"):
        save_checkpoint(tmp_path, {"weights": torch.zeros(1)})
    check_fingerprint({"seed": 1}, {"seed": 1}, path)
    with pytest.raises(ValueError, match="dim: '\\(absent\\)' in the checkpoint, 3 now"):
        check_fingerprint({"seed": 1}, {"seed": 1, "dim": 3}, path)


def test_cli_checkpoint_every_resume_and_refusals(tmp_path, capsys):
    from lossless_triplet.cli import main
    from tests.test_cli import synthetic_table

    data = synthetic_table(tmp_path / "train.csv", 20, 0)
    out = tmp_path / "model"
    base = ["train", "--data", str(data), "--label-column", "state", "--dim", "4", "--no-progress", "--out", str(out)]
    assert main([*base, "--steps", "4", "--checkpoint-every", "2"]) == 0
    assert [step for step, _ in list_checkpoints(out / "checkpoints")] == [2, 4]
    assert main([*base, "--steps", "6", "--checkpoint-every", "2"]) == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert main([*base, "--steps", "6", "--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out
    latest_checkpoint(out / "checkpoints").write_bytes(b"LOSSLESS-TRIPLET-CHECKPOINT 1 sha256=")
    assert main([*base, "--steps", "6", "--resume"]) == 2
    assert "checkpoint-00000004.pt is incomplete or corrupt" in capsys.readouterr().err
    assert main([*base, "--steps", "6", "--checkpoint-every", "0"]) == 2
