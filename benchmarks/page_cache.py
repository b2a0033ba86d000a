"""The inputs' state in the page cache before each side of a benchmark: both sides start cold (read from disk,
as after fMRIPrep on another node or a network file system) or both warm (read from memory).

Without it, the side that runs first reads the inputs from disk and the second finds them in memory; on a
machine whose memory cannot keep every case's inputs, that is the measured side, not the software.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def _files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        out += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return out


def evict(paths: Iterable[str | os.PathLike]) -> int:
    """Drop the files (folders: every file under them) from the page cache (written back first); the bytes
    evicted. Needs no privileges (``posix_fadvise(DONTNEED)``)."""
    total = 0
    for f in _files(paths):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            total += os.fstat(fd).st_size
        finally:
            os.close(fd)
    return total


def warm(paths: Iterable[str | os.PathLike]) -> int:
    """Read the files (folders: every file under them) once, so that they are in the page cache; the bytes."""
    total = 0
    for f in _files(paths):
        with open(f, "rb") as fh:
            while block := fh.read(1 << 24):
                total += len(block)
    return total


def prepare(paths: Iterable[str | os.PathLike], state: str) -> None:
    """``state``: ``"cold"`` (:func:`evict`) or ``"warm"`` (:func:`warm`)."""
    paths = list(paths)
    if state == "cold":
        evict(paths)
    elif state == "warm":
        warm(paths)
    else:
        raise ValueError(f"page cache state {state!r}: expected 'cold' or 'warm'.")
