"""Fault memory: one signature per network status, nearest match, unknown detection.

A signature is the centroid of the codes of one status (a prototype, as in
Snell, Swersky, Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS
2017). A new fault type is added from as few as one example, without
retraining: the encoder was trained so that codes of one status cluster
tightly (Arsenault 2018), so one code already says where that status lives.

Unknown rule. Each signature has a radius, the Euclidean distance within which
a code belongs to it:

- learned from data when the signature has at least ``min_members`` rows: the
  ``quantile`` (default 0.99) of its members' distances to the centroid,
  times ``slack`` (default 1.5, headroom for rows the training set did not
  show);
- otherwise (a signature from one or a few examples) the *median* of the
  learned radii, or, when larger, HALF the distance from its centroid to the
  nearest centroid that has a learned radius. One example says nothing about
  how far a new fault spreads; the median assumes it spreads like a known
  status, which fails for a fault beyond the training range (its rows differ
  from its example in the excess, where known statuses do not spread at all,
  see :class:`~lossless_triplet.representation.Representation`). The only
  scale one example has is how far it lies from what is known; half of it
  keeps every known centroid outside its ball (the whole distance would let
  it take over the rows around the known statuses that their own radii
  leave unknown);
- never below the floor ``RADIUS_FLOOR * sqrt(N)`` (N the vector width): a
  thousandth of the diagonal of the unit cube the codes live in. Identical
  member rows (or a collapsed code) would otherwise give a radius of 0, and a
  row would not match its own signature once rounding moved it by 1e-8; with
  the floor a row at distance 0 always matches, and ``unknown_score`` is
  always finite.

A row is assigned the nearest signature whose radius covers it; a row that no
radius covers is ``unknown``. The nearest signature and its distance are
reported either way. ``unknown_score`` (the smallest distance / radius) is the
score used for unknown-detection AUROC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .blocks import concat_rows, row_starts
from .validation import check_codes, check_is_fitted, check_state, state_header

__all__ = ["UNKNOWN", "RADIUS_FLOOR", "Signature", "FaultMemory", "is_reserved"]

UNKNOWN = "unknown"
MAX_SAMPLE = 2048  # member codes kept per signature to re-estimate its radius
RADIUS_FLOOR = 1e-3  # smallest radius, as a share of sqrt(N): the unit cube's diagonal


@dataclass
class Signature:
    """One status in the memory.

    Attributes:
        name: the status name.
        total: (N,) float64 sum of all member codes (centroid = total / count).
        count: number of member rows ever added.
        sample: (m, N) float32 member codes kept to estimate the radius
            (all of them up to ``MAX_SAMPLE``, then a seeded uniform sample).
    """

    name: str
    total: np.ndarray
    count: int
    sample: np.ndarray

    @property
    def centroid(self) -> np.ndarray:
        """(N,) float64 mean code of all members."""
        return self.total / self.count


def is_reserved(name: str) -> bool:
    """Whether ``name`` is the ``unknown`` status in any case (``UNKNOWN``, ``Unknown``...): reserved,
    since ``detect`` output and dashboards would not tell the two apart."""
    return str(name).strip().casefold() == UNKNOWN


def _as_codes(codes, width: int | None = None, *, float64: bool = True) -> np.ndarray:
    """(n, N) float64 codes (one code may come as (N,)), checked by :func:`check_codes` (float32
    codes stay float32 with ``float64=False``)."""
    codes = np.asarray(codes)
    return check_codes(codes[None, :] if codes.ndim == 1 else codes, width=width, float64=float64)


# Codes matched at once: the block's float64 copy and distance terms stay in cache (432-wide KDDI
# vectors, s per 100k rows: 1,024: 0.17; 4,096: 0.40).
_IDENTIFY_BLOCK = 1024


def _nearest(codes: np.ndarray, labels: np.ndarray, centroids: np.ndarray, radii: np.ndarray) -> dict[str, np.ndarray]:
    """:meth:`FaultMemory.identify` of a block of checked codes, (n, N) float32 or float64, against
    (S, N) float64 centroids and (S,) radii; ``labels``: the S names and ``unknown``."""
    codes = codes.astype(np.float64, copy=False)
    d2 = np.einsum("ij,ij->i", codes, codes)[:, None] + (centroids**2).sum(1)[None, :] - 2 * codes @ centroids.T
    distances = np.sqrt(np.maximum(d2, 0.0))
    nearest = distances.argmin(axis=1)
    ratio = distances / radii
    covered = ratio <= 1
    unknown = ~covered.any(axis=1)
    best_covered = np.where(covered, distances, np.inf).argmin(axis=1)
    status = np.where(unknown, len(centroids), best_covered)
    return {
        "status": labels[status],
        "nearest": labels[nearest],
        "distance": distances[np.arange(len(codes)), nearest],
        "unknown": unknown,
        "unknown_score": ratio.min(axis=1),
    }


class FaultMemory:
    """Signatures of network statuses, with nearest match and unknown detection.

    Args:
        quantile: quantile of member distances that sets a learned radius (0 < q <= 1).
        slack: factor (>= 1) applied to learned radii.
        min_members: rows a signature needs before its radius is learned from them.
        seed: seeds the choice of kept member codes once a signature exceeds
            ``MAX_SAMPLE`` rows.

    Learned state (set by :meth:`fit`, changed by :meth:`add` / :meth:`remove`):
    ``signatures_`` (name -> :class:`Signature`), ``embedding_dim_``.

    Raises:
        ValueError: a hyper-parameter out of range.
    """

    def __init__(self, quantile: float = 0.99, slack: float = 1.5, min_members: int = 5, seed: int = 0) -> None:
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile={quantile} must be in (0, 1]")
        if not slack >= 1:
            raise ValueError(f"slack={slack} must be >= 1")
        if min_members < 2:
            raise ValueError(f"min_members={min_members} must be >= 2: a radius needs a spread")
        self.quantile = quantile
        self.slack = slack
        self.min_members = min_members
        self.seed = seed

    # ------------------------------------------------------------------ building
    def fit(self, codes, labels, class_names: Sequence[str]) -> FaultMemory:
        """One signature per class that has rows.

        Shape: codes (n, N) float; labels (n,) int indexing ``class_names``.

        Raises:
            ValueError: bad shapes, non-finite codes, labels out of range, no rows.
        """
        codes = _as_codes(codes)
        labels = np.asarray(labels)
        if labels.shape != (len(codes),):
            raise ValueError(f"labels must have shape ({len(codes)},), got {labels.shape}")
        if labels.min() < 0 or labels.max() >= len(class_names):
            raise ValueError(f"labels must index class_names (0..{len(class_names) - 1})")
        self.embedding_dim_ = codes.shape[1]
        self.signatures_: dict[str, Signature] = {}
        for c, name in enumerate(class_names):
            rows = codes[labels == c]
            if len(rows):
                self.add(name, rows)
        return self

    def _check_fitted(self) -> None:
        check_is_fitted(self, "signatures_", "fit(codes, labels, class_names) or add(name, codes)")

    def add(self, name: str, codes) -> Signature:
        """Create the signature ``name`` from ``codes``, or extend it with them.

        One row is enough. Extending moves the centroid to the mean of all
        members ever added.

        Shape: codes (n, N) or (N,) float.

        Raises:
            ValueError: an empty or reserved name (``unknown`` in any case), codes of another width,
                non-finite codes.
        """
        name = str(name).strip()
        if not name:
            raise ValueError("a fault needs a name: got an empty (or blank) one")
        if is_reserved(name):
            raise ValueError(f"a fault needs a name other than {UNKNOWN!r} in any case: {name!r} would be "
                             "confused with the unknown status")
        if not hasattr(self, "signatures_"):
            self.signatures_ = {}
        width = getattr(self, "embedding_dim_", None)
        codes = _as_codes(codes, width)
        self.embedding_dim_ = codes.shape[1]
        old = self.signatures_.get(name)
        if old is None:
            total, count, sample = codes.sum(axis=0), len(codes), codes.astype(np.float32)
        else:
            total, count = old.total + codes.sum(axis=0), old.count + len(codes)
            sample = np.vstack([old.sample, codes.astype(np.float32)])
        if len(sample) > MAX_SAMPLE:
            rng = np.random.default_rng([self.seed, count])
            sample = sample[np.sort(rng.choice(len(sample), MAX_SAMPLE, replace=False))]
        signature = Signature(name, total, count, sample)
        self.signatures_[name] = signature
        return signature

    def remove(self, name: str) -> None:
        """Forget the signature ``name``. The last signature cannot go: :meth:`identify` would have
        nothing to match (add another first).

        Raises:
            KeyError: no such signature (the message lists the known ones).
            ValueError: it is the last one.
        """
        self._check_fitted()
        name = str(name).strip()  # stored stripped (see add)
        if name not in self.signatures_:
            raise KeyError(f"no fault signature named {name!r}; known: {', '.join(self.signatures_)}")
        if len(self.signatures_) == 1:
            raise ValueError(f"{name!r} is the last signature; add another before removing it")
        del self.signatures_[name]

    @property
    def names(self) -> list[str]:
        """Signature names, in insertion order."""
        return list(getattr(self, "signatures_", {}))

    # ------------------------------------------------------------------ radii
    def _learned_radius(self, signature: Signature) -> float | None:
        if signature.count < self.min_members:
            return None
        distances = np.linalg.norm(signature.sample - signature.centroid, axis=1)
        return float(np.quantile(distances, self.quantile)) * self.slack

    def radii(self) -> dict[str, float]:
        """Radius of every signature (Euclidean distance in code space, > 0), see the module docstring.

        Raises:
            ValueError: an empty memory.
        """
        self._check_fitted()
        learned = {n: self._learned_radius(s) for n, s in self.signatures_.items()}
        known = [r for r in learned.values() if r is not None]
        default = float(np.median(known)) if known else self.default_radius_without_data()
        anchors = np.array([self.signatures_[n].centroid for n, r in learned.items() if r is not None])

        def few_rows(signature: Signature) -> float:  # at least half way to the nearest learned centroid
            if not len(anchors):
                return default
            return max(default, float(np.linalg.norm(anchors - signature.centroid, axis=1).min()) / 2)

        floor = self.radius_floor()
        return {n: max(floor, few_rows(self.signatures_[n]) if r is None else r) for n, r in learned.items()}

    def radius_floor(self) -> float:
        """The smallest radius any signature gets: ``RADIUS_FLOOR * sqrt(N)`` (see the module docstring)."""
        return RADIUS_FLOOR * float(np.sqrt(self.embedding_dim_))

    def default_radius_without_data(self) -> float:
        """Radius used when no signature has ``min_members`` rows: a quarter of the code
        cube's diagonal, sqrt(N)/4 (codes are in [0, 1]^N)."""
        return float(np.sqrt(self.embedding_dim_)) / 4

    def describe(self) -> list[dict]:
        """One JSON-safe row per signature: name, count, radius, whether the radius is learned."""
        radii = self.radii()
        return [{"name": n, "count": s.count, "radius": radii[n], "learned_radius": s.count >= self.min_members}
                for n, s in self.signatures_.items()]

    def entry(self, name: str) -> dict:
        """The :meth:`describe` row of the signature ``name``.

        Raises:
            KeyError: no such signature (the message lists the known ones)."""
        name = str(name).strip()  # stored stripped (see add)
        for row in self.describe():
            if row["name"] == name:
                return row
        raise KeyError(f"no fault signature named {name!r}; known: {', '.join(self.names)}")

    # ------------------------------------------------------------------ matching
    def _matching(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(names + ``unknown`` as fixed-width str, (S, N) centroids, (S,) radii) for :meth:`identify`.

        Cached: the radii take quantiles over every kept member code, far more work than
        matching one row. The cache is keyed on the Signature objects themselves, which
        :meth:`add` replaces and :meth:`remove` drops, so any change rebuilds it.
        """
        key = tuple(self.signatures_.values())
        cached = getattr(self, "_matching_cache", None)
        if cached is None or len(cached[0]) != len(key) or any(a is not b for a, b in zip(cached[0], key)):
            labels = np.array([*self.signatures_, UNKNOWN])  # str, not objects: indexing is a plain copy
            centroids = np.stack([s.centroid for s in key])
            cached = (key, (labels, centroids, np.array(list(self.radii().values()))))
            self._matching_cache = cached
        return cached[1]

    def identify(self, codes) -> dict[str, np.ndarray]:
        """Nearest signature, distance and unknown flag of every code.

        Shape: codes (n, N) float.

        Returns:
            dict of (n,) arrays: ``status`` (str: the nearest signature whose
            radius covers the code, else ``"unknown"``), ``nearest`` (str),
            ``distance`` (float64, Euclidean, to the nearest), ``unknown`` (bool),
            ``unknown_score`` (float64, min over signatures of distance/radius;
            > 1 means unknown).

        Raises:
            ValueError: an empty memory, codes of another width, non-finite codes.
        """
        self._check_fitted()
        if not self.signatures_:
            raise ValueError("the fault memory has no signature left; add one with add(name, codes)")
        codes = _as_codes(codes, self.embedding_dim_, float64=False)
        matching = self._matching()
        return concat_rows([_nearest(codes[start:start + _IDENTIFY_BLOCK], *matching)
                            for start in row_starts(len(codes), _IDENTIFY_BLOCK)])

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-safe metadata, name-keyed arrays) for saving without pickle; see :meth:`from_state`."""
        self._check_fitted()
        meta = {**state_header("FaultMemory", 1), "quantile": self.quantile, "slack": self.slack, "min_members": self.min_members,
                "seed": self.seed, "embedding_dim": self.embedding_dim_,
                "signatures": [{"name": n, "count": s.count} for n, s in self.signatures_.items()]}
        arrays = {}
        for i, s in enumerate(self.signatures_.values()):
            arrays[f"{i}.total"] = s.total
            arrays[f"{i}.sample"] = s.sample
        return meta, arrays

    @classmethod
    def from_state(cls, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> FaultMemory:
        """Rebuild a memory saved with :meth:`to_state`.

        Raises:
            ValueError: another kind or version of state, missing keys or arrays (a corrupt bundle).
        """
        check_state(meta, "FaultMemory", (1,), unversioned=1)  # bundles before versioned states: 1
        try:
            memory = cls(meta["quantile"], meta["slack"], meta["min_members"], meta["seed"])
            memory.embedding_dim_ = int(meta["embedding_dim"])
            memory.signatures_ = {}
            for i, entry in enumerate(meta["signatures"]):
                memory.signatures_[entry["name"]] = Signature(
                    entry["name"], np.asarray(arrays[f"{i}.total"], dtype=np.float64), int(entry["count"]),
                    np.asarray(arrays[f"{i}.sample"], dtype=np.float32))
        except KeyError as missing:
            raise ValueError(f"fault memory state lacks {missing}; the model bundle is corrupt") from None
        return memory
