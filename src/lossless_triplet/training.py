"""Training an encoder with a metric-learning loss on class-balanced P x K batches.

The loop counts global optimiser steps (``epochs x steps_per_epoch``); the
history stays per epoch. It runs unchanged in one process or under torchrun
(DistributedDataParallel, see :mod:`lossless_triplet.distributed`), and can
write resumable checkpoints (see :mod:`lossless_triplet.checkpoint`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import check_fingerprint, latest_checkpoint, load_checkpoint, save_checkpoint
from .defaults import EMBEDDING_DIM, TRAIN_STEPS, epochs_and_steps
from .models import Encoder, encode

__all__ = [
    "TrainConfig",
    "BalancedBatchSampler",
    "TrainResult",
    "train_encoder",
    "batch_loss",
    "seed_everything",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; two runs with equal configs give equal models.

    Attributes:
        embedding_dim: code width N (default :data:`~lossless_triplet.defaults.EMBEDDING_DIM`, 16).
        hidden: hidden layer widths of the MLP encoder.
        epochs: number of epochs; one epoch is ``steps_per_epoch`` optimiser steps (default: the
            ``train`` budget, :data:`~lossless_triplet.defaults.TRAIN_STEPS` = 24 x 50 steps).
        steps_per_epoch: optimiser steps (batches) per epoch.
        classes_per_batch: P, classes per batch (all classes when fewer exist).
        samples_per_class: K, rows per class per batch (drawn with replacement
            only for classes with fewer than K rows).
        learning_rate: Adam step size.
        weight_decay: Adam L2 penalty.
        seed: seeds torch, the sampler and the test-loss sample.
    """

    embedding_dim: int = EMBEDDING_DIM
    hidden: tuple[int, ...] = (64, 64)
    epochs: int = epochs_and_steps(TRAIN_STEPS)[0]
    steps_per_epoch: int = epochs_and_steps(TRAIN_STEPS)[1]
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

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole run: ``epochs * steps_per_epoch``."""
        return self.epochs * self.steps_per_epoch

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
    the Triplet Loss", 2017, uses the same P x K scheme. Under torchrun every
    rank draws the same global batch and encodes its own shard of it
    (:func:`lossless_triplet.distributed.shard_rows`).

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
        """Rows per batch, P * K."""
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

    def state_dict(self) -> dict:
        """The generator's position, as ``{"rng": JSON text}`` (its 128-bit integers survive as text)."""
        return {"rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a position saved by :meth:`state_dict`."""
        self.rng.bit_generator.state = json.loads(state["rng"])


@dataclass
class TrainResult:
    """A trained encoder and its per-epoch history.

    Attributes:
        model: the encoder, in eval mode, on the CPU.
        history: lists per epoch: ``epoch``, ``train_loss`` (mean over the
            epoch's batches), ``test_loss`` (batch-all loss on a fixed
            class-balanced sample of the test rows; absent without test data).
        train_seconds: wall-clock seconds of the optimisation (no evaluation),
            summed over the interrupted runs a resumed run continues.
        start_step: optimiser steps already done by the checkpoint resumed from (0: a fresh run).
        health: :class:`CodeHealth` of the training rows' codes after the last step (None when
            not measured).
    """

    model: nn.Module
    history: dict[str, list[float]] = field(default_factory=dict)
    train_seconds: float = 0.0
    start_step: int = 0
    health: CodeHealth | None = None


DISTINCT_RESOLUTION = 1e-4  # codes (or features) closer than this in every unit count as one
SATURATED_WITHIN = 1e-6  # a code unit this close to 0 or 1 is saturated (the sigmoid passes ~no gradient)


def distinct_rows(x: np.ndarray, resolution: float = DISTINCT_RESOLUTION) -> int:
    """Number of distinct rows of ``x`` once rounded to ``resolution``.

    Shape: x (n, F) float. Output: int in [0, n]."""
    x = np.asarray(x, dtype=np.float64)
    return len(np.unique(np.round(x / resolution), axis=0)) if len(x) else 0


@dataclass
class CodeHealth:
    """Whether a trained code can still tell the training classes apart.

    A code has collapsed when its training rows take fewer distinct values (at
    :data:`DISTINCT_RESOLUTION`) than there are classes: no signature can then separate them,
    whatever the memory does. The usual causes: a learning rate so large that every sigmoid
    saturates at exactly 0 or 1 (``saturated_share`` near 1), or a lossless loss stuck at its
    bound -ln(eps) = 18.42 (every negative at distance 0).

    Attributes:
        distinct_codes, n_rows, n_classes: counts over the training rows.
        saturated_share: share of code units within :data:`SATURATED_WITHIN` of 0 or 1.
        final_loss: mean training loss of the last epoch (nan when unknown).
        collapsed: ``distinct_codes < n_classes``.
    """

    distinct_codes: int
    n_rows: int
    n_classes: int
    saturated_share: float
    final_loss: float
    collapsed: bool

    @classmethod
    def of(cls, codes: np.ndarray, labels: np.ndarray, final_loss: float = float("nan")) -> CodeHealth:
        """Measure codes (n, N) in [0, 1] of rows with labels (n,)."""
        codes = np.asarray(codes, dtype=np.float64)
        distinct, n_classes = distinct_rows(codes), len(np.unique(labels))
        saturated = float(np.mean(np.minimum(codes, 1 - codes) <= SATURATED_WITHIN)) if codes.size else 0.0
        return cls(distinct, len(codes), n_classes, saturated, float(final_loss), distinct < n_classes)

    def message(self, learning_rate: float | None = None) -> str:
        """What happened and the fix, for an error or a warning."""
        lr = f"; it was {learning_rate:g}" if learning_rate is not None else ""
        return (f"training collapsed: the codes of the {self.n_rows} training rows take {self.distinct_codes} "
                f"distinct value(s) for {self.n_classes} classes, so no signature can tell the classes apart "
                f"({self.saturated_share:.0%} of code units saturated at 0 or 1; final training loss "
                f"{self.final_loss:.4g}). Lower the learning rate (--lr{lr}), try another loss (--loss triplet), "
                "or give features that vary more between the statuses")

    def to_dict(self) -> dict:
        """JSON-safe fields (for model.json and metrics.json)."""
        return asdict(self)


def _balanced_sample(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        parts.append(rng.choice(rows, size=min(per_class, len(rows)), replace=False))
    return np.sort(np.concatenate(parts))


def _mean(values: list[float]) -> float:
    # A plain running sum, in step order: the same float whether the epoch ran in one go or was resumed.
    total = 0.0
    for value in values:
        total += value
    return total / len(values)


def _history_so_far(step_losses: list[float], test_losses: dict[int, float], per_epoch: int,
                    with_test: bool) -> dict[str, list[float]]:
    """The per-epoch history of the epochs a checkpoint already finished (empty for a fresh run).

    Rebuilt from the per-step losses, so a resumed run may group steps into epochs differently.
    """
    history: dict[str, list[float]] = {"epoch": [], "train_loss": []}
    if with_test:
        history["test_loss"] = []
    for epoch in range(1, len(step_losses) // per_epoch + 1):
        end = epoch * per_epoch
        history["epoch"].append(epoch)
        history["train_loss"].append(_mean(step_losses[end - per_epoch : end]))
        if with_test:
            if end not in test_losses:
                raise ValueError(f"the checkpoint has no test loss at step {end} (the end of epoch {epoch}): "
                                 "resume with the steps_per_epoch and test rows of the first run")
            history["test_loss"].append(test_losses[end])
    return history


EpochCallback = Callable[[int, nn.Module, dict], None]


def batch_loss(model: nn.Module, loss_fn: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss of one global batch, in one process or across a process group.

    In one process this is ``loss_fn(model(features), labels)``. In a process
    group every rank passes the same global batch, encodes only its own shard
    of rows (:func:`~lossless_triplet.distributed.shard_rows`) and computes the
    loss on the gathered global codes
    (:func:`~lossless_triplet.distributed.gather_codes`; the labels need no
    gathering, every rank holds the global batch's), so mining sees the whole
    batch. Every rank then returns the same value, and with ``model`` wrapped
    in DistributedDataParallel the averaged gradients equal the single-process
    ones (see :mod:`lossless_triplet.distributed`).

    Shape:
        features: (B, F) float, labels: (B,) int (on any device; the shard moves
        to the model's). Output: scalar.

    Raises:
        ValueError: the number of processes does not divide B.
    """
    rows = distributed.shard_rows(len(labels))
    where = next(model.parameters()).device
    codes = distributed.gather_codes(model(features[rows].to(where)))
    return loss_fn(codes, labels.to(where))


def _without_validation(loss_fn: nn.Module) -> nn.Module:
    """The loss as the loop calls it: a shallow copy with ``validate=False`` when it has that switch.

    The codes come from the loop's own :class:`~lossless_triplet.models.Encoder`, whose sigmoid
    head puts them in [0, 1]^N, so the per-call shape, finiteness and range checks (a pass over
    the codes and a device sync each) prove nothing here; a non-finite loss is still caught by
    the loop. The caller's module keeps its setting for its own calls. The one-class check of the
    batch losses is not a code check and stays on.
    """
    if getattr(loss_fn, "validate", None) is not True:
        return loss_fn
    trusted = copy.copy(loss_fn)
    trusted.validate = False
    return trusted


def _data_digest(features: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(features).data)
    digest.update(np.ascontiguousarray(labels).data)
    return digest.hexdigest()


def _fingerprint(config: TrainConfig, loss_fn: nn.Module, features: np.ndarray, digest: str) -> dict:
    """What a resumed run must share with the checkpoint: all but the length of the run."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("epochs", "steps_per_epoch")}
    return {**settings, "loss": repr(loss_fn), "data_shape": list(features.shape), "data_sha256": digest}


def _check_same_data(digest: str) -> None:
    """Every rank must train on the same rows: each indexes the global batch into its own copy."""
    digests = distributed.gather_objects(digest)
    differing = [r for r, d in enumerate(digests) if d != digests[0]]
    if differing:
        raise ValueError(f"ranks {differing} hold other training rows than rank 0: give every process the same "
                         "table (same file contents on every node) and the same options")


def _open_checkpoints(directory: Path, resume: bool, fingerprint: dict | None, total_steps: int) -> dict | None:
    """On rank 0: the state to resume from (or None), after every check."""

    found = latest_checkpoint(directory)
    if not resume:
        if found is not None:
            raise ValueError(f"{directory} already holds checkpoints (latest {found.name}) of an earlier run: "
                             "pass --resume (resume=True) to continue it, or use another output directory")
        return None
    if found is None:
        log.warning("no checkpoint in %s yet: starting at step 0", directory)
        return None
    state = load_checkpoint(found)
    check_fingerprint(state["fingerprint"], fingerprint, found)
    if state["step"] > total_steps:
        raise ValueError(f"{found} is at step {state['step']}, past this run's {total_steps} steps: "
                         "ask for at least as many steps")
    log.info("resuming from %s (step %d)", found, state["step"])
    return state


def _agree(action: Callable[[], object]) -> object:
    """Run ``action`` on rank 0 and give every rank its result, or raise its error on every rank."""
    outcome = None
    if distributed.is_main_process():
        try:
            outcome = ("ok", action())
        except (ValueError, FileNotFoundError) as error:
            outcome = (type(error).__name__, str(error))
    outcome = distributed.broadcast_object(outcome)
    if outcome[0] == "FileNotFoundError":
        raise FileNotFoundError(outcome[1])
    if outcome[0] != "ok":
        raise ValueError(outcome[1])
    return outcome[1]


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
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train a fresh :class:`~lossless_triplet.models.Encoder` with Adam on P x K batches.

    Runs ``config.total_steps`` optimiser steps. Inside a process group
    (``torchrun``; :func:`lossless_triplet.distributed.init_from_env`) the
    encoder is wrapped in DistributedDataParallel and every step is
    :func:`batch_loss` over the global P x K batch: the same losses and, up to
    rounding, the same model as one process. Only rank 0 shows progress and
    writes checkpoints.

    Args:
        features: (n, F) float32 scaled features (the same on every rank).
        labels: (n,) int class ids.
        loss_fn: a module called as ``loss_fn(codes, labels)``.
        config: hyper-parameters and seed.
        test_features, test_labels: optional held-aside rows for the per-epoch test loss.
        progress: show a tqdm bar over epochs (on stderr).
        description: label of the progress bar.
        on_epoch: called after each epoch as ``on_epoch(epoch, model, record)``
            (e.g. to record codes for an animation); must not train the model.
            A resumed run calls it for the epochs after the checkpoint only;
            under torchrun every rank calls it.
        checkpoint_dir: where checkpoints are written and read.
        checkpoint_every: write a checkpoint (model, optimiser, sampler, RNG,
            history so far) every this many steps, and at the last step when
            it is a multiple; None: never.
        resume: continue from the latest checkpoint in ``checkpoint_dir``
            (from step 0, with a logged warning, when there is none yet). The
            run must have the same settings except its length (``epochs``,
            ``steps_per_epoch``): resuming a 50-step checkpoint with a 100-step
            config gives the same model as 100 uninterrupted steps.

    Returns:
        TrainResult with the model in eval mode on the CPU and the :class:`CodeHealth` of the
        training rows' codes (a collapse is logged as a warning; callers decide whether it is
        an error: ``train`` stops, ``compare`` records it).

    Raises:
        ValueError: mismatched shapes, non-finite features, fewer than 2 classes,
            a non-finite loss during training (with the epoch and step), a
            process count that does not divide the batch, ranks holding
            different training rows, checkpoint options
            without ``checkpoint_dir``, existing checkpoints without ``resume``,
            a corrupt checkpoint or one from a run with other settings.
    """
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(
            f"features must be (n, F) and labels (n,), got {features.shape} and {labels.shape}"
        )
    if not np.isfinite(features).all():
        raise ValueError("features hold NaN or inf: impute and scale them first (data.Standardizer)")
    if checkpoint_every is not None and int(checkpoint_every) < 1:
        raise ValueError(f"checkpoint_every={checkpoint_every} must be >= 1 (or None for no checkpoints)")
    if (checkpoint_every is not None or resume) and checkpoint_dir is None:
        raise ValueError("checkpoint_every and resume need a checkpoint_dir")
    seed_everything(config.seed)
    sampler = BalancedBatchSampler(labels, config.classes_per_batch, config.samples_per_class, config.seed)
    distributed.shard_rows(sampler.batch_size)  # fail now, not at the first step
    model = Encoder(features.shape[1], config.embedding_dim, config.hidden).to(distributed.device())
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    x_all, y_all = torch.from_numpy(features), torch.from_numpy(labels)

    test_x = test_y = None
    if test_features is not None and test_labels is not None:
        rows = _balanced_sample(np.asarray(test_labels), config.samples_per_class * 2, config.seed)
        test_x = torch.as_tensor(np.asarray(test_features, dtype=np.float32)[rows]).to(distributed.device())
        test_y = torch.as_tensor(np.asarray(test_labels, dtype=np.int64)[rows]).to(distributed.device())

    total_steps, per_epoch = config.total_steps, config.steps_per_epoch
    step_losses: list[float] = []
    test_losses: dict[int, float] = {}  # by the global step that ended the epoch
    train_seconds = 0.0
    fingerprint = None
    checkpointing = checkpoint_dir is not None and (checkpoint_every is not None or resume)
    digest = _data_digest(features, labels) if checkpointing or distributed.world_size() > 1 else None
    if distributed.world_size() > 1:
        _check_same_data(digest)
    if checkpointing:
        checkpoint_dir = Path(checkpoint_dir)
        if distributed.is_main_process():
            fingerprint = _fingerprint(config, loss_fn, features, digest)
        state = _agree(lambda: _open_checkpoints(checkpoint_dir, resume, fingerprint, total_steps))
        if state is not None:
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            sampler.load_state_dict(state["sampler"])
            torch.set_rng_state(state["torch_rng"])
            step_losses = [float(v) for v in state["step_losses"]]
            test_losses = {int(k): float(v) for k, v in state["test_losses"].items()}
            train_seconds = float(state["train_seconds"])
    start_step = len(step_losses)
    history = _history_so_far(step_losses, test_losses, per_epoch, with_test=test_x is not None)

    net: nn.Module = model
    if distributed.is_distributed():

        cuda = distributed.device().type == "cuda"
        net = DistributedDataParallel(model, device_ids=[distributed.device().index] if cuda else None)
    bar = None
    if progress and distributed.is_main_process():

        bar = tqdm(total=config.epochs, initial=start_step // per_epoch, desc=description, unit="epoch", leave=False)

    loss_fn = _without_validation(loss_fn)
    model.train()
    for step in range(start_step + 1, total_steps + 1):
        started = time.perf_counter()
        batch = torch.from_numpy(sampler.sample())
        loss = batch_loss(net, loss_fn, x_all[batch], y_all[batch])
        epoch, step_in_epoch = (step - 1) // per_epoch + 1, (step - 1) % per_epoch + 1
        if not torch.isfinite(loss):
            raise ValueError(f"the loss became {loss.item()} at epoch {epoch}, step {step_in_epoch}")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step_losses.append(loss.item())
        train_seconds += time.perf_counter() - started
        if step_in_epoch == per_epoch:
            record = {"epoch": epoch, "train_loss": _mean(step_losses[-per_epoch:])}
            model.eval()
            if test_x is not None:
                with torch.no_grad():
                    record["test_loss"] = test_losses[step] = float(loss_fn(model(test_x), test_y))
            for key, value in record.items():
                history[key].append(value)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "epoch"})
            if on_epoch is not None:
                on_epoch(epoch, model, record)
            model.train()
        if checkpoint_every is not None and step % checkpoint_every == 0 and distributed.is_main_process():

            save_checkpoint(checkpoint_dir, {
                "step": step,
                "fingerprint": fingerprint,
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "sampler": sampler.state_dict(),
                "torch_rng": torch.get_rng_state(),  # nothing draws from it after init today; kept for dropout
                "step_losses": list(step_losses),
                "test_losses": dict(test_losses),
                "train_seconds": train_seconds,
                "world_size": distributed.world_size(),
            })
    if bar is not None:
        bar.close()
    model.eval()
    model = model.cpu()
    health = CodeHealth.of(encode(model, features), labels,
                           history["train_loss"][-1] if history.get("train_loss") else float("nan"))
    if health.collapsed:
        log.warning("%s", health.message(config.learning_rate))
    return TrainResult(model=model, history=history, train_seconds=train_seconds, start_step=start_step,
                       health=health)
