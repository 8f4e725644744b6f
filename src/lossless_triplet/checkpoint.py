"""Training checkpoints: one self-checking file per checkpoint, written atomically.

A checkpoint file ``checkpoint-<step>.pt`` (step zero-padded to 8 digits, so
names sort by step) is one header line and a ``torch.save`` payload::

    LOSSLESS-TRIPLET-CHECKPOINT 1 sha256=<hex digest of the payload>\\n<payload>

The payload holds only tensors, dicts, lists, strings and numbers, so it is
read with ``torch.load(weights_only=True)`` (no arbitrary pickle). The file is
written to a temporary file in the same directory, fsynced and renamed
(:func:`lossless_triplet.io.atomic_write_bytes`), and the digest catches
what the rename cannot: a truncated copy, a disk error, an edited file. A bad
checkpoint is refused with a :class:`ValueError` naming it and the way out;
it is never skipped in silence.

What a training state holds is decided by :mod:`lossless_triplet.training`;
this module only stores, finds, verifies and compares.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .io import atomic_write_bytes

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CHECKPOINT_DIR",
    "checkpoint_path",
    "list_checkpoints",
    "latest_checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "check_fingerprint",
]

CHECKPOINT_FORMAT = "LOSSLESS-TRIPLET-CHECKPOINT"
CHECKPOINT_VERSION = 1
# Sub-directory of a model directory where ``lossless-triplet train`` keeps its checkpoints.
CHECKPOINT_DIR = "checkpoints"
# Checkpoints kept after a save: the newest and one before it, to fall back on by hand.
KEEP = 2

_NAME = re.compile(r"checkpoint-(\d+)\.pt")
_HEADER = re.compile(rb"LOSSLESS-TRIPLET-CHECKPOINT (\d+) sha256=([0-9a-f]{64})\n")
_HEADER_MAX = 128


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """``directory / checkpoint-<step:08d>.pt``."""
    return Path(directory) / f"checkpoint-{int(step):08d}.pt"


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint file in ``directory``, by step (empty if none or no directory).

    Temporary files of an unfinished write (``.checkpoint-*.tmp``) are not checkpoints and are not listed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.fullmatch(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``directory``, or None."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def save_checkpoint(directory: str | Path, state: Mapping, *, keep: int = KEEP) -> Path:
    """Write ``state`` as the checkpoint of step ``state["step"]`` and prune older ones.

    Call it on one process only (rank 0). The write is atomic; only after it
    succeeded are checkpoints beyond the ``keep`` newest deleted.

    Args:
        directory: created if needed.
        state: a mapping with an int ``"step"``, holding only tensors, dicts,
            lists, tuples, strings, numbers, bools and None (``weights_only``-safe).
        keep: how many checkpoints to leave (>= 1).

    Returns:
        The path written.

    Raises:
        ValueError: no int ``"step"``, or ``keep`` < 1.
    """
    if not isinstance(state.get("step"), int):
        raise ValueError(f"a checkpoint state needs an int 'step', got {state.get('step')!r}")
    if keep < 1:
        raise ValueError(f"keep={keep} must be >= 1")
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    payload = buffer.getvalue()
    header = f"{CHECKPOINT_FORMAT} {CHECKPOINT_VERSION} sha256={hashlib.sha256(payload).hexdigest()}\n"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, state["step"])
    atomic_write_bytes(path, header.encode() + payload)
    for _, old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _refuse(path: Path, problem: str) -> ValueError:
    others = [p.name for _, p in list_checkpoints(path.parent) if p != path]
    way_out = (f"delete it to resume from {others[-1]}" if others else "delete it to start again")
    return ValueError(f"checkpoint {path} is {problem}; {way_out}, or train without --resume into a new directory")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint, another format version, or incomplete or
            corrupt (the digest does not match, or the payload does not load);
            the message names the file and what to do.
    """
    path = Path(path)
    data = path.read_bytes()
    match = _HEADER.match(data[:_HEADER_MAX])
    if match is None:
        if data.startswith(CHECKPOINT_FORMAT.encode()) or not data:
            raise _refuse(path, f"incomplete or corrupt (bad header, {len(data)} bytes)")
        raise _refuse(path, "not a lossless-triplet checkpoint")
    version = int(match.group(1))
    if version != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path} is format version {version}; this lossless-triplet reads version "
                         f"{CHECKPOINT_VERSION}: resume with a matching release or start again")
    payload = data[match.end():]
    if hashlib.sha256(payload).hexdigest().encode() != match.group(2):
        raise _refuse(path, f"incomplete or corrupt (checksum mismatch over {len(payload)} payload bytes)")
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as error:  # the digest matched, so this is a foreign or damaged writer
        raise _refuse(path, f"unreadable ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise _refuse(path, "not a training state (no int 'step')")
    return state


def check_fingerprint(saved: Mapping, current: Mapping, path: str | Path) -> None:
    """Refuse to resume a run whose settings differ from the checkpoint's.

    Both mappings are flat ``name -> JSON-like value`` descriptions of a run
    (seed, batch, code width, loss, data digest...).

    Raises:
        ValueError: naming every differing setting with its saved and current value.
    """
    keys = sorted(set(saved) | set(current))
    differences = [f"{k}: {saved.get(k, '(absent)')!r} in the checkpoint, {current.get(k, '(absent)')!r} now"
                   for k in keys if saved.get(k) != current.get(k)]
    if differences:
        raise ValueError(f"cannot resume from {path}: it was written by a run with other settings ("
                         + "; ".join(differences) + "). Resume with the same settings, or train into a new "
                         "directory (or remove its checkpoints) to start afresh")
