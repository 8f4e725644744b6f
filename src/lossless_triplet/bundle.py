"""The model bundle: everything ``detect`` needs, in one directory, without pickle.

Layout of a bundle directory (format version :data:`FORMAT_VERSION`):

- ``model.json``: format name and version, feature names, class names, the
  fitted feature view and scaler, encoder architecture, the representation the memory
  compares (code and/or view features, :class:`~lossless_triplet.representation.Representation`),
  loss, training config, and what the selection chose and why;
- ``encoder.safetensors``: encoder weights;
- ``signatures.safetensors``: the fault memory (arrays, with its JSON
  metadata in the safetensors header), rewritten on every ``add-fault``.

Every file is written atomically (temporary file in the same directory,
fsync, rename), so a crash leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as save_arrays
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .data import Standardizer
from .data.views import FeatureView
from .explain import Explainer
from .io import NO_SPACE, atomic_write_bytes, atomic_write_files  # noqa: F401 (the first two: old names)
from .memory import FaultMemory
from .models import Encoder, encode
from .representation import Representation

__all__ = ["FORMAT", "FORMAT_VERSION", "FaultModel"]

FORMAT = "lossless-triplet-model"
FORMAT_VERSION = 2  # 2: floored view spreads with constant flags, the representation
# rows from which FaultModel.features with a pool computes two halves at once (below it the hand-off costs more)
PARALLEL_ROWS = 2048
MODEL_FILE, ENCODER_FILE, SIGNATURES_FILE = "model.json", "encoder.safetensors", "signatures.safetensors"


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

        return encode(self.encoder, self.features(raw, previous, pool=pool))

    def represent_features(self, x: np.ndarray) -> np.ndarray:
        """The memory's vectors of scaled features (:meth:`features` output): see :attr:`representation`.

        Shape: x (n, view features) float32 -> float32 (n, width of the memory's vectors)."""

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


def __getattr__(name: str):
    """``bundle.fit_fault_model`` moved up to the pipeline layer: say where, rather than a bare
    "cannot import name" (the format layer does not import the pipeline above it, even lazily)."""
    if name == "fit_fault_model":
        raise ImportError("fit_fault_model moved from lossless_triplet.bundle (the model format) to the pipeline: "
                          "from lossless_triplet.pipeline import fit_fault_model")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
