"""Two gloo processes on one global batch give the loss and gradients of one process (DDP + cross-rank mining)."""

import os
import socket

import numpy as np
import pytest
import torch

from lossless_triplet import distributed
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
        try:
            distributed.shard_rows(15)
        except ValueError as error:
            results["odd_batch_error"] = str(error)
        x, y = training_table()
        trained = train_encoder(x, y, make_loss("lossless"), TRAIN_CONFIG, progress=False)
        results["train"] = {"history": trained.history,
                            "params": [p.detach().clone() for p in trained.model.parameters()]}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        distributed.destroy()


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
    # float32 training: summing the gradient in another order rounds differently, and Adam's
    # normalised steps carry that into the weights, so a looser tolerance than the float64 checks.
    x, y = training_table()
    alone = train_encoder(x, y, make_loss("lossless"), TRAIN_CONFIG, progress=False)
    for result in ranks:
        assert result["world"] == WORLD
        np.testing.assert_allclose(result["train"]["history"]["train_loss"], alone.history["train_loss"],
                                   rtol=1e-4)
        for got, want in zip(result["train"]["params"], alone.model.parameters(), strict=True):
            torch.testing.assert_close(got, want.detach(), rtol=1e-3, atol=1e-4)


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
