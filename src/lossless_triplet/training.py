"""Training an encoder with a metric-learning loss on class-balanced P x K batches."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from .models import Encoder

__all__ = ["TrainConfig", "BalancedBatchSampler", "TrainResult", "train_encoder", "seed_everything"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; two runs with equal configs give equal models.

    Attributes:
        embedding_dim: code width N.
        hidden: hidden layer widths of the MLP encoder.
        epochs: number of epochs; one epoch is ``steps_per_epoch`` optimiser steps.
        steps_per_epoch: optimiser steps (batches) per epoch.
        classes_per_batch: P, classes per batch (all classes when fewer exist).
        samples_per_class: K, rows per class per batch (drawn with replacement
            only for classes with fewer than K rows).
        learning_rate: Adam step size.
        weight_decay: Adam L2 penalty.
        seed: seeds torch, the sampler and the test-loss sample.
    """

    embedding_dim: int = 3
    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 30
    steps_per_epoch: int = 50
    classes_per_batch: int = 8
    samples_per_class: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("embedding_dim", "epochs", "steps_per_epoch", "classes_per_batch", "samples_per_class"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.classes_per_batch < 2:
            raise ValueError("classes_per_batch must be >= 2: a triplet needs a negative from another class")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be > 0")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    def to_dict(self) -> dict:
        """JSON-safe copy (tuples become lists)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


def seed_everything(seed: int) -> None:
    """Seed torch's global generator (weights init, dropout) for a reproducible run."""
    torch.manual_seed(seed)


class BalancedBatchSampler:
    """Class-balanced P x K batches: P classes, K rows of each.

    Every batch then holds positives for every anchor and negatives from P - 1
    other classes, whatever the class imbalance (KDDI: 3870 normal rows, 55
    node-down). Batch-hard mining as in Hermans, Beyer, Leibe, "In Defense of
    the Triplet Loss", 2017, uses the same P x K scheme.

    Args:
        labels: (n,) int class ids of the rows to draw from.
        classes_per_batch: P (all classes when fewer exist).
        samples_per_class: K.
        seed: seeds the NumPy generator; the sequence of batches is reproducible.

    Raises:
        ValueError: fewer than 2 classes (no triplet possible).
    """

    def __init__(self, labels: np.ndarray, classes_per_batch: int, samples_per_class: int, seed: int = 0) -> None:
        labels = np.asarray(labels)
        self.classes = np.unique(labels)
        if len(self.classes) < 2:
            raise ValueError(
                f"training needs at least 2 classes, got {len(self.classes)}: triplets need negatives"
            )
        self.members = {c: np.flatnonzero(labels == c) for c in self.classes}
        self.classes_per_batch = min(int(classes_per_batch), len(self.classes))
        self.samples_per_class = int(samples_per_class)
        self.rng = np.random.default_rng(seed)

    @property
    def batch_size(self) -> int:
        return self.classes_per_batch * self.samples_per_class

    def sample(self) -> np.ndarray:
        """Row indices of one batch, shape (P * K,) int64, grouped by class."""
        chosen = self.rng.choice(self.classes, size=self.classes_per_batch, replace=False)
        parts = []
        for c in chosen:
            rows = self.members[c]
            replace = len(rows) < self.samples_per_class
            parts.append(self.rng.choice(rows, size=self.samples_per_class, replace=replace))
        return np.concatenate(parts).astype(np.int64)


@dataclass
class TrainResult:
    """A trained encoder and its per-epoch history.

    Attributes:
        model: the encoder, in eval mode.
        history: lists per epoch: ``epoch``, ``train_loss`` (mean over the
            epoch's batches), ``test_loss`` (batch-all loss on a fixed
            class-balanced sample of the test rows; absent without test data).
        train_seconds: wall-clock seconds of the optimisation (no evaluation).
    """

    model: nn.Module
    history: dict[str, list[float]] = field(default_factory=dict)
    train_seconds: float = 0.0


def _balanced_sample(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        parts.append(rng.choice(rows, size=min(per_class, len(rows)), replace=False))
    return np.sort(np.concatenate(parts))


EpochCallback = Callable[[int, nn.Module, dict], None]


def train_encoder(
    features: np.ndarray,
    labels: np.ndarray,
    loss_fn: nn.Module,
    config: TrainConfig = TrainConfig(),
    *,
    test_features: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    progress: bool = True,
    description: str = "train",
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train a fresh :class:`~lossless_triplet.models.Encoder` with Adam on P x K batches.

    Args:
        features: (n, F) float32 scaled features.
        labels: (n,) int class ids.
        loss_fn: a module called as ``loss_fn(codes, labels)``.
        config: hyper-parameters and seed.
        test_features, test_labels: optional held-aside rows for the per-epoch test loss.
        progress: show a tqdm bar over epochs (on stderr).
        description: label of the progress bar.
        on_epoch: called after each epoch as ``on_epoch(epoch, model, record)``
            (e.g. to record codes for an animation); must not train the model.

    Returns:
        TrainResult with the model in eval mode.

    Raises:
        ValueError: mismatched shapes, non-finite features, fewer than 2 classes,
            a non-finite loss during training (with the epoch and step).
    """
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(
            f"features must be (n, F) and labels (n,), got {features.shape} and {labels.shape}"
        )
    if not np.isfinite(features).all():
        raise ValueError("features hold NaN or inf: impute and scale them first (data.Standardizer)")
    seed_everything(config.seed)
    sampler = BalancedBatchSampler(labels, config.classes_per_batch, config.samples_per_class, config.seed)
    model = Encoder(features.shape[1], config.embedding_dim, config.hidden)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    x_all, y_all = torch.from_numpy(features), torch.from_numpy(labels)

    test_x = test_y = None
    if test_features is not None and test_labels is not None:
        rows = _balanced_sample(np.asarray(test_labels), config.samples_per_class * 2, config.seed)
        test_x = torch.as_tensor(np.asarray(test_features, dtype=np.float32)[rows])
        test_y = torch.as_tensor(np.asarray(test_labels, dtype=np.int64)[rows])

    history: dict[str, list[float]] = {"epoch": [], "train_loss": []}
    if test_x is not None:
        history["test_loss"] = []
    train_seconds = 0.0
    epochs = range(1, config.epochs + 1)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(epochs, desc=description, unit="epoch", leave=False)
        epochs = bar
    for epoch in epochs:
        model.train()
        started = time.perf_counter()
        total = 0.0
        for step in range(config.steps_per_epoch):
            batch = torch.from_numpy(sampler.sample())
            loss = loss_fn(model(x_all[batch]), y_all[batch])
            if not torch.isfinite(loss):
                raise ValueError(f"the loss became {loss.item()} at epoch {epoch}, step {step + 1}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.item()
        train_seconds += time.perf_counter() - started
        record = {"epoch": epoch, "train_loss": total / config.steps_per_epoch}
        model.eval()
        if test_x is not None:
            with torch.no_grad():
                record["test_loss"] = float(loss_fn(model(test_x), test_y))
        for key, value in record.items():
            history[key].append(value)
        if bar is not None:
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "epoch"})
        if on_epoch is not None:
            on_epoch(epoch, model, record)
    model.eval()
    return TrainResult(model=model, history=history, train_seconds=train_seconds)
