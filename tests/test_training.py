import numpy as np
import pytest
import torch

from lossless_triplet.losses import LosslessTripletLoss, TripletMarginLoss
from lossless_triplet.metrics import retrieval_metrics
from lossless_triplet.models import encode
from lossless_triplet.training import BalancedBatchSampler, TrainConfig, train_encoder


def blobs(n_per_class=60, n_classes=4, n_features=10, seed=0, spread=0.6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(n_classes, n_features))
    x = np.concatenate([c + spread * rng.normal(size=(n_per_class, n_features)) for c in centres])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return x.astype(np.float32), y


def test_sampler_draws_p_classes_times_k_rows():
    labels = np.array([0] * 50 + [1] * 3 + [2] * 20 + [3] * 7)
    sampler = BalancedBatchSampler(labels, classes_per_batch=3, samples_per_class=5, seed=1)
    for _ in range(20):
        batch = sampler.sample()
        assert batch.shape == (15,)
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert len(classes) == 3 and (counts == 5).all()
    # Class 1 has 3 rows < K = 5: drawn with replacement, never an index from another class.
    sampler = BalancedBatchSampler(labels, classes_per_batch=4, samples_per_class=5, seed=1)
    batch = sampler.sample()
    assert (labels[batch].reshape(4, 5) == labels[batch].reshape(4, 5)[:, :1]).all()


def test_sampler_is_reproducible_and_needs_two_classes():
    labels = np.repeat(np.arange(5), 10)
    a = [BalancedBatchSampler(labels, 3, 4, seed=7).sample() for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        BalancedBatchSampler(np.zeros(10, dtype=int), 2, 4)


def test_training_is_reproducible_for_a_seed():
    x, y = blobs()
    config = TrainConfig(embedding_dim=3, hidden=(16,), epochs=2, steps_per_epoch=5, classes_per_batch=4,
                         samples_per_class=8, seed=3)
    first = train_encoder(x, y, LosslessTripletLoss(), config, progress=False)
    second = train_encoder(x, y, LosslessTripletLoss(), config, progress=False)
    assert first.history["train_loss"] == second.history["train_loss"]
    for p, q in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("loss", [LosslessTripletLoss(), TripletMarginLoss()])
def test_training_lowers_the_loss_and_separates_classes(loss):
    x, y = blobs(spread=1.5)
    config = TrainConfig(embedding_dim=3, hidden=(32,), epochs=8, steps_per_epoch=10, classes_per_batch=4,
                         samples_per_class=16, learning_rate=3e-3, seed=0)
    result = train_encoder(x, y, loss, config, test_features=x, test_labels=y, progress=False)
    history = result.history
    assert history["epoch"] == list(range(1, 9))
    assert len(history["test_loss"]) == 8
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["test_loss"][-1] < history["test_loss"][0]
    assert retrieval_metrics(encode(result.model, x), y)["precision_at_1"] > 0.9
    assert result.train_seconds > 0


def test_on_epoch_callback_sees_every_epoch():
    x, y = blobs()
    seen = []
    config = TrainConfig(hidden=(8,), epochs=3, steps_per_epoch=2, classes_per_batch=2, samples_per_class=4)
    train_encoder(x, y, LosslessTripletLoss(), config, progress=False,
                  on_epoch=lambda epoch, model, record: seen.append((epoch, record["train_loss"])))
    assert [e for e, _ in seen] == [1, 2, 3]


def test_bad_inputs():
    x, y = blobs()
    x_bad = x.copy()
    x_bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="impute"):
        train_encoder(x_bad, y, LosslessTripletLoss(), TrainConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match="labels"):
        train_encoder(x, y[:-1], LosslessTripletLoss(), TrainConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match="classes_per_batch"):
        TrainConfig(classes_per_batch=1)
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)


def test_the_loop_skips_code_validation_but_the_callers_module_keeps_it():
    seen = []

    class Spy(LosslessTripletLoss):
        def forward(self, embeddings, labels, indices_tuple=None):
            seen.append(self.validate)
            return super().forward(embeddings, labels, indices_tuple)

    x, y = blobs()
    spy = Spy()
    train_encoder(x, y, spy, TrainConfig(embedding_dim=3, epochs=1, steps_per_epoch=3), progress=False,
                  test_features=x, test_labels=y)
    assert seen and not any(seen)  # codes from the loop's own sigmoid head are not re-checked
    assert spy.validate is True
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        spy(torch.full((4, 3), 2.0), torch.tensor([0, 0, 1, 1]))  # a user's call still is


def test_code_health_counts_distinct_codes_and_saturation():
    from lossless_triplet.training import CodeHealth

    codes = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 1.0], [0.5, 1.0 - 1e-7]])
    health = CodeHealth.of(codes, np.array([0, 1, 2, 2]), final_loss=18.42)
    assert (health.distinct_codes, health.n_classes, health.collapsed) == (3, 3, False)
    assert health.saturated_share == pytest.approx(7 / 8)
    health = CodeHealth.of(codes[:3], np.array([0, 1, 2]))
    assert health.collapsed and "2 distinct value(s) for 3 classes" in health.message(learning_rate=0.5)
    assert "(--lr; it was 0.5)" in health.message(learning_rate=0.5)
