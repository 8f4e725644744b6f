"""Fit a fault model on a labelled table: the honest protocol's choices, training, the memory.

What ``lossless-triplet train`` runs. The result is a :class:`~lossless_triplet.bundle.FaultModel`,
saved and loaded by :mod:`lossless_triplet.bundle` (the format); this module only builds one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..bundle import FaultModel
from ..data import Dataset
from ..defaults import DEFAULT_LOSS
from ..explain import Explainer
from ..losses import make_loss
from ..memory import FaultMemory
from ..training import TrainConfig, distinct_rows, train_encoder
from .selection import choose, prepare_features, resolve_holdout

__all__ = ["fit_fault_model"]


def fit_fault_model(
    data: Dataset,
    *,
    loss: str = DEFAULT_LOSS,
    holdout: Sequence[str] = (),
    view: str = "auto",
    representation: str | None = None,
    time_ordered: bool | None = None,
    config=None,
    memory: FaultMemory | None = None,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
) -> FaultModel:
    """Train the full pipeline on a labelled table and build its fault memory.

    Held-out classes are removed from training, history included (their minutes never reach a
    training row through a delta or a baseline; :func:`~lossless_triplet.pipeline.selection.prepare_features`),
    and get no signature (add them later from one example with :meth:`FaultModel.add_fault`).
    With ``view="auto"`` or ``representation=None`` the choices are made on this table alone by
    :func:`~lossless_triplet.pipeline.selection.select` (inner leave-one-known-fault-out one-shot validation)
    and recorded in ``info["selection"]`` (saved in model.json).

    Under torchrun (an initialised process group, see
    :mod:`lossless_triplet.distributed`) every rank computes the same view,
    scaler, selection and memory (they are deterministic given the table) and trains its
    shard of each batch; every rank returns the same model, and only rank 0
    should save it.

    Args:
        data: the labelled training table (raw features, NaN = missing), rows in table order.
        loss: a name from :data:`lossless_triplet.losses.LOSSES` (default ``"triplet"``).
        holdout: class names left out.
        view: a feature view name, or ``"auto"``: chosen among
            :func:`~lossless_triplet.data.views.candidate_views` by the selection.
        representation: what the memory compares, by name (``code``, ``code+16*sorted_excess``, ...; see
            :meth:`~lossless_triplet.representation.Representation.parse`); None: chosen by the selection.
        time_ordered: whether the rows are one network's minutes in time order (baseline views
            become candidates); None: True when the table has strictly increasing timestamps.
        config: :class:`~lossless_triplet.training.TrainConfig` (default: N = 16, 24 x 50
            steps, as the ``train`` command).
        memory: an unfitted memory with the radius rule you want (default FaultMemory()).
        progress: show a progress bar (rank 0 only).
        checkpoint_dir, checkpoint_every, resume: resumable training, see
            :func:`~lossless_triplet.training.train_encoder`.

    Raises:
        ValueError: an unknown loss, view or held-out class; too few classes; training rows
            whose features take fewer distinct values than there are classes; a training run
            whose code collapsed (:class:`~lossless_triplet.training.CodeHealth`: the message
            names the fix); a checkpoint problem (see :func:`~lossless_triplet.training.train_encoder`).
    """
    config = config or TrainConfig()
    loss_fn = make_loss(loss, embedding_dim=config.embedding_dim)
    heldout = resolve_holdout(data.class_names, holdout)
    known = ~np.isin(data.labels, heldout)
    time_ordered = data.is_time_ordered if time_ordered is None else bool(time_ordered)
    n_classes, n_distinct = len(np.unique(data.labels[known])), distinct_rows(np.nan_to_num(data.features[known]))
    if n_distinct < n_classes:
        raise ValueError(
            f"the {int(known.sum())} training rows hold only {n_distinct} distinct row(s) of feature values for "
            f"{n_classes} classes: nothing can tell the classes apart. Check that the KPI columns vary (a table "
            "of constant columns cannot be learned) and that --label-column names the status")
    selection = choose(data, known, view=view, representation=representation, time_ordered=time_ordered,
                       loss=loss, config=config)
    prepared = prepare_features(data.features, data.feature_names, known, selection.view)
    labels = data.labels[known]
    trained = train_encoder(prepared.x_known, labels, loss_fn, config, progress=progress, description=loss,
                            checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume)
    if trained.health is not None and trained.health.collapsed:
        raise ValueError(trained.health.message(config.learning_rate))
    model = FaultModel(view=prepared.view, scaler=prepared.scaler, encoder=trained.model,
                       memory=memory or FaultMemory(), representation=selection.representation.fit(
                           prepared.x_known, prepared.view.invariant_features_),
                       explainer=Explainer.for_table(data, time_ordered=time_ordered, rows=known))
    model.memory.fit(model.represent_features(prepared.x_known), labels, data.class_names)
    model.info = {"loss": loss, "class_names": list(data.class_names), "holdout": list(holdout),
                  "time_ordered": time_ordered, "selection": selection.to_dict(),
                  "train_config": config.to_dict(), "history": trained.history, "n_train_rows": int(known.sum()),
                  "code_health": trained.health.to_dict() if trained.health is not None else None}
    return model
