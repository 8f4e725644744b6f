"""The model bundle: everything ``detect`` needs, in one directory, without pickle.

Layout of a bundle directory (format version :data:`FORMAT_VERSION`):

- ``model.json``: format name and version, feature names, class names, the
  fitted feature view and scaler, encoder architecture, the representation the memory
  compares (code and/or view features, :class:`~lossless_triplet.selection.Representation`),
  loss, training config, and what the selection chose and why;
- ``encoder.safetensors``: encoder weights;
- ``signatures.safetensors``: the fault memory (arrays, with its JSON
  metadata in the safetensors header), rewritten on every ``add-fault``.

Every file is written atomically (temporary file in the same directory,
fsync, rename), so a crash leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import Dataset, Standardizer
from .data.views import FeatureView
from .explain import Explainer
from .memory import FaultMemory
from .selection import Representation, choose, prepare_features

__all__ = ["FORMAT", "FORMAT_VERSION", "FaultModel", "fit_fault_model", "atomic_write_bytes"]

FORMAT = "lossless-triplet-model"
FORMAT_VERSION = 2  # 2: floored view spreads with constant flags, the representation
# rows from which FaultModel.features with a pool computes two halves at once (below it the hand-off costs more)
PARALLEL_ROWS = 2048
MODEL_FILE, ENCODER_FILE, SIGNATURES_FILE = "model.json", "encoder.safetensors", "signatures.safetensors"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename (POSIX-atomic)."""
    atomic_write_files(Path(path).parent, {Path(path).name: data})


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def atomic_write_files(directory: Path, files: dict[str, bytes]) -> None:
    """Write several files of one directory so that either all of them change or none does.

    Every file is first written in full beside its target (a temporary name, fsynced); only when
    all are on disk are they renamed over their targets, in the given order (put the file that
    declares a bundle complete last). A failure while writing (a full disk, a quota) removes
    the temporary files and leaves every target as it was.

    Raises:
        OSError: with the same errno, naming the file, the directory and that nothing was changed.
    """
    directory = Path(directory)
    staged: list[tuple[str, Path]] = []
    name = "?"
    try:
        for name, data in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            staged.append((name, Path(tmp)))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as error:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
        raise OSError(error.errno, f"{error.strerror or error} while saving {name} in {directory}; "
                                   "nothing was changed") from error
    except BaseException:
        for _, tmp in staged:
            tmp.unlink(missing_ok=True)
        raise
    for name, tmp in staged:
        os.replace(tmp, directory / name)
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


@dataclass
class FaultModel:
    """A trained pipeline: raw rows -> view -> scaler -> encoder -> codes (+ features) -> fault memory.

    Attributes:
        view: fitted :class:`~lossless_triplet.data.views.FeatureView`.
        scaler: fitted :class:`~lossless_triplet.data.Standardizer` (on view features).
        encoder: trained :class:`~lossless_triplet.models.Encoder`.
        memory: :class:`~lossless_triplet.memory.FaultMemory` of the training statuses, over the
            vectors of :attr:`representation`.
        info: JSON-safe description (loss, class names, training config, holdout, selection).
        representation: what the memory compares (default: the code alone).
        explainer: the :class:`~lossless_triplet.explain.Explainer` that names the element and the
            most deviant KPIs of each row (None: a bundle saved without one; no evidence then).
    """

    view: FeatureView
    scaler: Standardizer
    encoder: object
    memory: FaultMemory
    info: dict = field(default_factory=dict)
    representation: Representation = field(default_factory=Representation)
    explainer: Explainer | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Raw input columns the model needs, in order."""
        return self.view.feature_names_in_

    @property
    def history_rows(self) -> int:
        """Rows before a chunk that the view or the explainer look back at (carry them across chunks)."""
        return max(self.view.history_rows, self.explainer.history_rows if self.explainer is not None else 0)

    def recent_rows(self, *parts: np.ndarray | None) -> np.ndarray:
        """The last :attr:`history_rows` raw rows of ``parts`` in order (``previous`` for the next chunk).

        Shape: each part None or (n, F); output float32 (k, F), oldest first."""
        width, keep = len(self.feature_names), self.history_rows
        tails = [part[len(part) - min(len(part), keep):] for part in
                 (np.asarray(p, dtype=np.float32).reshape(-1, width) for p in parts if p is not None)]
        rows = np.concatenate(tails) if tails else np.zeros((0, width), dtype=np.float32)
        return rows[len(rows) - min(len(rows), keep):]

    def features(self, raw: np.ndarray, previous: np.ndarray | None = None, *, pool: Executor | None = None
                 ) -> np.ndarray:
        """Scaled encoder inputs of raw rows (view, then imputation and scaling).

        With a ``pool`` (one worker is enough), :data:`PARALLEL_ROWS` rows or more are computed as
        two halves at once, the first on the pool (NumPy releases the GIL); the second half gets
        the rows before it as history, so the result equals one pass.

        Shape: raw (n, F) float with NaN = missing; previous (F,) the row before, or (k, F) the
        rows before, oldest first (views that look back use the last ``view.history_rows``).
        Output: (n, view features) float32.
        """
        if pool is None or len(raw) < PARALLEL_ROWS:
            return self.scaler.transform(self.view.transform(raw, previous=previous))
        middle = len(raw) // 2
        first = pool.submit(self.features, raw[:middle], previous)
        second = self.features(raw[middle:], previous=self.view.recent_rows(previous, raw[:middle]))
        return np.concatenate([first.result(), second])

    def encode(self, raw: np.ndarray, previous: np.ndarray | None = None, *, pool: Executor | None = None
               ) -> np.ndarray:
        """Codes of raw rows (``previous`` and ``pool`` as in :meth:`features`).

        Shape: raw (n, F) -> (n, N) float32 in [0, 1]."""
        from .models import encode

        return encode(self.encoder, self.features(raw, previous, pool=pool))

    def represent_features(self, x: np.ndarray) -> np.ndarray:
        """The memory's vectors of scaled features (:meth:`features` output): see :attr:`representation`.

        Shape: x (n, view features) float32 -> float32 (n, width of the memory's vectors)."""
        from .models import encode

        return self.representation.combine(encode(self.encoder, x), x)

    def represent(self, raw: np.ndarray, previous: np.ndarray | None = None, *, pool: Executor | None = None
                  ) -> np.ndarray:
        """The memory's vectors of raw rows (``previous`` and ``pool`` as in :meth:`features`)."""
        return self.represent_features(self.features(raw, previous, pool=pool))

    def identify(self, raw: np.ndarray, previous: np.ndarray | None = None, *, pool: Executor | None = None
                 ) -> dict[str, np.ndarray]:
        """Status of raw rows (``previous`` and ``pool`` as in :meth:`features`): see
        :meth:`lossless_triplet.memory.FaultMemory.identify`."""
        return self.memory.identify(self.represent(raw, previous, pool=pool))

    def explain(self, raw: np.ndarray, previous: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Element and evidence of raw rows (``previous`` as in :meth:`features`): see
        :meth:`lossless_triplet.explain.Explainer.explain`; also ``evidence`` (n,) str, the compact
        text ``column:+9.1;column:missing``. Without an explainer every row gets "" for both.

        Shape: raw (n, F) float, NaN = missing."""
        if self.explainer is None:
            empty = np.full(len(raw), "", dtype=str)
            return {"element": empty, "evidence": empty}
        explained = self.explainer.explain(raw, previous=previous)
        return explained | {"evidence": self.explainer.evidence_text(explained)}

    def add_fault(self, name: str, raw: np.ndarray, *, examples: np.ndarray | None = None) -> None:
        """Create or extend the signature ``name`` from raw rows (one is enough).

        The rows are encoded as one stream in time order, so views that look back (delta: the
        previous row, baseline: the previous 10) see the rows before each example; the first
        row has none (a baseline view's first row has no baseline: those features are imputed
        with the training medians). Give the fault's minutes together with the minutes before
        them, and mark the fault's own with ``examples``.

        Args:
            name: signature to create or extend (see :meth:`FaultMemory.add`).
            raw: (n, F) float raw rows in time order, the model's feature columns, NaN = missing.
            examples: the rows that are examples of the fault, as a (n,) boolean mask or row
                indices; the others only give context. Default: every row.

        Raises:
            ValueError: no example row, a mask of another length or an index out of range, and
                as :meth:`encode` and :meth:`FaultMemory.add`.
        """
        codes = self.represent(raw)
        if examples is not None:
            codes = codes[_example_rows(examples, len(codes))]
        self.memory.add(name, codes)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write the bundle into ``directory`` (created if needed); returns it.

        All three files are staged, then renamed (:func:`atomic_write_files`): a failed save (a
        full disk) leaves an existing bundle as it was and removes a directory it created.

        Raises:
            OSError: the write failed; the message names the file and says nothing was changed.
        """
        from safetensors.torch import save as save_tensors

        directory = Path(directory)
        created = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.encoder.state_dict().items()}
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "feature_names": list(self.feature_names),
            "view": self.view.to_dict(),
            "scaler": self.scaler.to_dict(),
            "encoder": self.encoder.config(),
            "representation": self.representation.to_dict(),
            **({"explainer": self.explainer.to_dict()} if self.explainer is not None else {}),
            **self.info,
        }
        try:
            atomic_write_files(directory, {ENCODER_FILE: save_tensors(state), SIGNATURES_FILE: self._signature_bytes(),
                                           MODEL_FILE: (json.dumps(document, indent=1) + "\n").encode()})
        except OSError:
            if created:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        return directory

    def _signature_bytes(self) -> bytes:
        from safetensors.numpy import save as save_arrays

        meta, arrays = self.memory.to_state()
        return save_arrays({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata={"memory": json.dumps(meta)})

    def save_signatures(self, directory: str | Path) -> None:
        """Rewrite only the fault memory of a saved bundle (atomic: on a full disk nothing changes).

        Raises:
            OSError: the write failed (errno kept: ``ENOSPC`` for a full disk); the old file is intact.
        """
        atomic_write_files(Path(directory), {SIGNATURES_FILE: self._signature_bytes()})

    @classmethod
    def load(cls, directory: str | Path) -> FaultModel:
        """Read a bundle written by :meth:`save`.

        Raises:
            FileNotFoundError: not a bundle directory (a file is missing).
            ValueError: another format or version, or a corrupt file.
        """
        from safetensors import safe_open
        from safetensors.torch import load as load_tensors

        from .models import Encoder

        directory = Path(directory)
        for name in (MODEL_FILE, ENCODER_FILE, SIGNATURES_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory} is not a model bundle: {name} is missing "
                                        "(create one with `lossless-triplet train ... --out DIR`)")
        try:
            document = json.loads((directory / MODEL_FILE).read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{directory / MODEL_FILE} is not valid JSON ({error}); the bundle is corrupt") from None
        if document.get("format") != FORMAT:
            raise ValueError(f"{directory} holds format {document.get('format')!r}, not a {FORMAT} bundle")
        if document.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{directory} is bundle format version {document.get('format_version')}; this "
                             f"lossless-triplet reads version {FORMAT_VERSION}: retrain or use a matching release")
        try:
            encoder = Encoder(**document["encoder"])
            encoder.load_state_dict(load_tensors((directory / ENCODER_FILE).read_bytes()))
            with safe_open(directory / SIGNATURES_FILE, framework="numpy") as handle:
                meta = json.loads(handle.metadata()["memory"])
                arrays = {key: handle.get_tensor(key) for key in handle.keys()}
            view = FeatureView.from_dict(document["view"])
            scaler = Standardizer.from_dict(document["scaler"])
            representation = Representation.from_dict(document.get("representation"))
            explainer = Explainer.from_dict(document["explainer"]) if "explainer" in document else None
        except (KeyError, RuntimeError, OSError, TypeError) as error:
            raise ValueError(f"{directory} is a corrupt model bundle: {error}") from None
        encoder.eval()
        memory = FaultMemory.from_state(meta, arrays)
        skip = {"format", "format_version", "feature_names", "view", "scaler", "encoder", "representation", "explainer"}
        info = {k: v for k, v in document.items() if k not in skip}
        return cls(view=view, scaler=scaler, encoder=encoder, memory=memory, info=info, representation=representation,
                   explainer=explainer)


def fit_fault_model(
    data: Dataset,
    *,
    loss: str = "triplet",
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
    training row through a delta or a baseline; :func:`~lossless_triplet.selection.prepare_features`),
    and get no signature (add them later from one example with :meth:`FaultModel.add_fault`).
    With ``view="auto"`` or ``representation=None`` the choices are made on this table alone by
    :func:`~lossless_triplet.selection.select` (inner leave-one-known-fault-out one-shot validation)
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
        representation: what the memory compares, by name (``code``, ``code+0.5*excess``, ...; see
            :meth:`~lossless_triplet.selection.Representation.parse`); None: chosen by the selection.
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
    from .budget import EMBEDDING_DIM, TRAIN_STEPS, epochs_and_steps
    from .experiment import resolve_holdout
    from .losses import make_loss
    from .training import TrainConfig, distinct_rows, train_encoder

    if config is None:
        epochs, per_epoch = epochs_and_steps(TRAIN_STEPS)
        config = TrainConfig(embedding_dim=EMBEDDING_DIM, epochs=epochs, steps_per_epoch=per_epoch)
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


def _example_rows(examples, n_rows: int) -> np.ndarray:
    """Row indices of ``examples`` (a boolean mask of ``n_rows`` or indices), at least one."""
    examples = np.asarray(examples)
    if examples.dtype == bool:
        if examples.shape != (n_rows,):
            raise ValueError(f"examples is a boolean mask of shape {examples.shape}; give one flag per row, "
                             f"shape ({n_rows},)")
        rows = np.flatnonzero(examples)
    elif examples.ndim == 1 and (examples.size == 0 or np.issubdtype(examples.dtype, np.integer)):
        rows = examples.astype(np.int64)
        if ((rows < 0) | (rows >= n_rows)).any():
            raise ValueError(f"examples holds row indices outside 0..{n_rows - 1}")
    else:
        raise ValueError(f"examples must be a boolean mask or integer row indices, got {examples.dtype} "
                         f"of shape {examples.shape}")
    if rows.size == 0:
        raise ValueError("examples selects no row; mark at least one row as an example of the fault")
    return rows
