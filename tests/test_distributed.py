"""Two gloo processes on one global batch give the loss and gradients of one process (DDP + cross-rank mining)."""

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lossless_triplet import distributed
from lossless_triplet.bundle import FaultModel
from lossless_triplet.cli import main
from lossless_triplet.losses import make_loss
from lossless_triplet.models import Encoder
from lossless_triplet.training import TrainConfig, batch_loss, train_encoder

WORLD = 2
# (loss name, constructor kwargs): batch-all for every loss, and the miners that look across the batch.
CASES = {
    "lossless-all": ("lossless", {}),
    "triplet-all": ("triplet", {}),
    "linear_lossless-all": ("linear_lossless", {}),
    "contrastive": ("contrastive", {}),
    "lossless-hard": ("lossless", {"mining": "hard"}),
    "triplet-hard": ("triplet", {"mining": "hard"}),
    "triplet-semihard": ("triplet", {"mining": "semihard"}),
}
TRAIN_CONFIG = TrainConfig(embedding_dim=3, hidden=(8,), epochs=2, steps_per_epoch=3, classes_per_batch=4,
                           samples_per_class=4, learning_rate=1e-2, seed=5)


def global_batch():
    """A fixed P x K batch grouped by class, as the sampler draws it: rank 0 alone sees only classes 0 and 1."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(16, 5)))
    y = torch.arange(4).repeat_interleave(4)
    return x, y


def tiny_model():
    torch.manual_seed(0)
    return Encoder(5, 3, (8,)).double()


def training_table():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(80, 5)) + np.repeat(np.arange(4), 20)[:, None]).astype(np.float32)
    return x, np.repeat(np.arange(4), 20)


def one_step(model, name):
    loss_name, kwargs = CASES[name]
    x, y = global_batch()
    loss = batch_loss(model, make_loss(loss_name, **kwargs), x, y)
    loss.backward()
    return loss.detach()


def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from torch.nn.parallel import DistributedDataParallel

    assert distributed.init_from_env(backend="gloo")
    try:
        results = {"rank": distributed.rank(), "world": distributed.world_size()}
        for name in CASES:
            model = tiny_model()
            loss = one_step(DistributedDataParallel(model), name)
            results[name] = {"loss": loss, "grads": [p.grad.clone() for p in model.parameters()]}
        codes = torch.full((2, 3), float(distributed.rank()), requires_grad=True)
        gathered, labels = distributed.gather_with_grad(codes, torch.tensor([10, 11]) + 2 * distributed.rank())
        gathered.sum().backward()
        results["gather"] = {"codes": gathered.detach(), "labels": labels, "grad": codes.grad}
        try:
            distributed.shard_rows(15)
        except ValueError as error:
            results["odd_batch_error"] = str(error)
        x, y = training_table()
        trained = train_encoder(x, y, make_loss("lossless"), TRAIN_CONFIG, progress=False)
        results["train"] = {"history": trained.history,
                            "params": [p.detach().clone() for p in trained.model.parameters()]}
        results["resumed"] = _interrupt_and_resume(os.path.join(out_dir, "checkpoints"))
        try:  # a node with another copy of the table
            train_encoder(x + distributed.rank(), y, make_loss("lossless"), TRAIN_CONFIG, progress=False)
        except ValueError as error:
            results["other_data_error"] = str(error)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        distributed.destroy()


def _interrupt_and_resume(directory):
    """3 steps with a checkpoint, then resumed to 6, in the process group; then a corrupt checkpoint."""
    x, y = training_table()
    first_half = dataclasses.replace(TRAIN_CONFIG, epochs=1)
    train_encoder(x, y, make_loss("lossless"), first_half, progress=False, checkpoint_dir=directory,
                  checkpoint_every=3)
    resumed = train_encoder(x, y, make_loss("lossless"), TRAIN_CONFIG, progress=False, checkpoint_dir=directory,
                            resume=True)
    result = {"history": resumed.history, "start_step": resumed.start_step,
              "params": [p.detach().clone() for p in resumed.model.parameters()]}
    distributed.barrier()
    if distributed.is_main_process():  # only rank 0 reads: the others must still get its error, not hang
        with open(os.path.join(directory, "checkpoint-00000003.pt"), "r+b") as handle:
            handle.truncate(100)
    distributed.barrier()
    try:
        train_encoder(x, y, make_loss("lossless"), TRAIN_CONFIG, progress=False, checkpoint_dir=directory,
                      resume=True)
    except ValueError as error:
        result["corrupt_error"] = str(error)
    return result


def free_port():
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of two spawned gloo processes computed (one spawn for every test here)."""
    import torch.multiprocessing as mp

    if not torch.distributed.is_available():
        pytest.skip("this torch build has no torch.distributed")
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_give_the_single_process_loss_and_gradients(ranks, name):
    model = tiny_model()
    loss = one_step(model, name)
    assert loss.item() > 0
    for result in ranks:
        torch.testing.assert_close(result[name]["loss"], loss, rtol=1e-5, atol=1e-5)
        for got, want in zip(result[name]["grads"], (p.grad for p in model.parameters()), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_each_rank_alone_would_see_a_different_batch():
    # Why the gather matters: rank 0's shard holds 2 of the 4 classes, so its local loss differs.
    x, y = global_batch()
    loss_fn = make_loss("lossless")
    with torch.no_grad():
        whole = loss_fn(tiny_model()(x), y)
        shard = loss_fn(tiny_model()(x[:8]), y[:8])
    assert not torch.isclose(whole, shard)


def test_two_process_training_follows_the_single_process_run(ranks):
    # float32 training: the gradient is summed in another order and rounds differently, and Adam's
    # normalised step turns rounding noise on a near-zero gradient into a step of up to lr (1e-2):
    # the losses agree to 1e-4, the weights (which move by up to 6e-2) to 2e-3.
    x, y = training_table()
    alone = train_encoder(x, y, make_loss("lossless"), TRAIN_CONFIG, progress=False)
    for result in ranks:
        assert result["world"] == WORLD
        np.testing.assert_allclose(result["train"]["history"]["train_loss"], alone.history["train_loss"],
                                   rtol=1e-4)
        for got, want in zip(result["train"]["params"], alone.model.parameters(), strict=True):
            torch.testing.assert_close(got, want.detach(), rtol=0, atol=2e-3)


def test_gather_with_grad_concatenates_in_rank_order_and_sums_gradients(ranks):
    for result in ranks:
        gather = result["gather"]
        assert gather["codes"][:, 0].tolist() == [0, 0, 1, 1]
        assert gather["labels"].tolist() == [10, 11, 12, 13]
        # Each of the 2 ranks' sum() puts gradient 1 on every gathered row: a shard receives 1 + 1.
        assert torch.equal(gather["grad"], torch.full((2, 3), 2.0))


def test_a_resumed_two_process_run_equals_the_uninterrupted_one(ranks):
    for result in ranks:
        resumed = result["resumed"]
        assert resumed["start_step"] == 3
        assert resumed["history"] == result["train"]["history"]
        for got, want in zip(resumed["params"], result["train"]["params"], strict=True):
            assert torch.equal(got, want)
        assert "checkpoint-00000003.pt is incomplete or corrupt" in resumed["corrupt_error"]
        assert "ranks [1] hold other training rows than rank 0" in result["other_data_error"]


def test_shards_partition_the_batch_without_duplicates(ranks):
    shards = [distributed.shard_rows(12, process=r, processes=3) for r in range(3)]
    assert [(s.start, s.stop) for s in shards] == [(0, 4), (4, 8), (8, 12)]
    assert "does not split evenly over 2 processes" in ranks[0]["odd_batch_error"]
    with pytest.raises(ValueError, match="split evenly"):
        distributed.shard_rows(10, process=0, processes=3)


def test_single_process_helpers_answer_for_rank_0_of_1(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.is_distributed()
    assert distributed.init_from_env() is False
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (0, 1, True)
    assert distributed.device() == torch.device("cpu")
    codes, labels = torch.rand(4, 3), torch.arange(4)
    assert distributed.gather_with_grad(codes, labels) == (codes, labels)
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.shard_rows(7) == slice(0, 7)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        distributed.init_from_env()


def _console_script(name):
    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else shutil.which(name)


@pytest.mark.slow
def test_cli_train_under_torchrun_checkpoints_resumes_and_detects(tmp_path, capsys):
    """Two real torchrun launches of 2 workers each: about 50 s of CPU (six interpreters importing torch)."""
    from tests.test_cli import synthetic_table

    torchrun, cli = _console_script("torchrun"), _console_script("lossless-triplet")
    if torchrun is None or cli is None:
        pytest.skip("needs the torchrun and lossless-triplet console scripts on PATH or beside python")
    data = synthetic_table(tmp_path / "train.csv", 40, 0)
    out = tmp_path / "model"
    train = [torchrun, "--standalone", "--nproc_per_node=2", "--no-python", cli, "train", "--data", str(data),
             "--label-column", "state", "--dim", "4", "--no-progress", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*extra):
        done = subprocess.run([*train, *extra], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    first = run("--steps", "4", "--checkpoint-every", "2")
    assert first.count("wrote ") == 1 and "2 processes" in first  # rank 0 alone prints and saves
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-00000002.pt",
                                                                       "checkpoint-00000004.pt"]
    resumed = run("--steps", "6", "--checkpoint-every", "2", "--resume")
    assert "checkpoint-00000004.pt" in resumed
    assert (out / "checkpoints" / "checkpoint-00000006.pt").is_file()
    distributed_model = FaultModel.load(out)
    assert len(distributed_model.info["history"]["train_loss"]) == 1  # --steps 6: one epoch of 6 steps

    # The same 6 steps in one plain process give the same encoder, up to float32 rounding under Adam.
    assert main(["train", "--data", str(data), "--label-column", "state", "--dim", "4", "--no-progress",
                 "--steps", "6", "--out", str(tmp_path / "alone")]) == 0
    alone = FaultModel.load(tmp_path / "alone")
    for name, value in alone.encoder.state_dict().items():
        torch.testing.assert_close(distributed_model.encoder.state_dict()[name], value, rtol=0, atol=2e-3)
    assert main(["detect", "--model", str(out), "--data", str(data), "--out", str(tmp_path / "pred.csv"),
                 "--no-progress"]) == 0
    assert len((tmp_path / "pred.csv").read_text().splitlines()) == 1 + 160
