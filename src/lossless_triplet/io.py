"""Writing files safely: every file the package writes goes through this module.

A file is first written in full beside its target under a temporary name (same directory, so the
rename stays on one file system), flushed to disk, and only then renamed over the target: a crash,
a full disk or an exception leaves the old file or the new one, never half of one, and no
temporary file behind. Leaf module (the standard library and NumPy only), so every layer may use it.
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["NO_SPACE", "atomic_write_bytes", "atomic_write_files", "atomic_write_text", "json_safe", "write_json",
           "written_at_end"]

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # the errnos of a full disk or quota


def _temporary(directory: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """``(fd, path)`` of a new file with a unique name in ``directory``, created with the permissions the
    umask gives (``tempfile.mkstemp`` would make every file the package writes 0600)."""
    for _ in range(100):
        path = directory / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {prefix}...{suffix} in {directory}")


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def atomic_write_files(directory: str | Path, files: dict[str, bytes]) -> None:
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
            fd, tmp = _temporary(directory, f".{name}.", ".tmp")
            staged.append((name, tmp))
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
    _fsync_directory(directory)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename (POSIX-atomic).

    Raises:
        OSError: as :func:`atomic_write_files`."""
    path = Path(path)
    atomic_write_files(path.parent, {path.name: data})


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def written_at_end(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to (by a library that wants a file name: a CSV
    writer streaming chunks, matplotlib's ``savefig``, Pillow), renamed over ``path`` when the block
    ends without an error and removed when it raises. The temporary name keeps ``path``'s suffix,
    so writers that choose a format by extension see the right one. Parent directories are created.

    Yields:
        The temporary :class:`~pathlib.Path` (an empty file until written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path.parent, f".{path.stem}.", path.suffix or ".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def json_safe(value):
    """A copy of ``value`` that strict JSON accepts: NumPy scalars and arrays become Python
    numbers and lists, non-finite floats become None, dict keys become strings."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path: str | Path, document, *, indent: int = 2) -> Path:
    """Write ``document`` as strict JSON (:func:`json_safe`: non-finite numbers become null) to
    ``path``, atomically; returns ``path``."""
    path = Path(path)
    atomic_write_text(path, json.dumps(json_safe(document), indent=indent, allow_nan=False) + "\n")
    return path
