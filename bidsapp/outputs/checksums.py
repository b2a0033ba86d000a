"""SHA-256 of input and output files, cached by file identity so unchanged files are not re-read."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bidsapp.core.files import sha256sum, temporaries, write_text


def _identity(st: os.stat_result) -> list[int]:
    """What must stay equal for a cached checksum to hold (any write or rename changes ctime)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def identities(paths) -> dict[str, list[int]]:
    """Each file's identity (size, mtime, ctime, inode, device), by path: taken when a run is planned."""
    return {str(p): _identity(os.stat(p)) for p in paths if p is not None}


def identity_stamp(paths) -> str:
    """Short hash of the identities (size, mtime, ctime, inode, device) of files: changes with any write."""
    return hashlib.sha1(json.dumps(list(identities(paths).items())).encode()).hexdigest()


def check_unchanged(planned: dict[str, list[int]], when: str) -> None:
    """Raise ``ValueError`` naming the first file whose identity is not the one it had when the run was planned.

    A run's outputs are described by the checksums of its inputs; an input written, replaced or renamed over
    between planning and the sidecar (any write changes ctime) may have been read as one content and hashed as
    another. Equal identities at planning, while hashing and when the sidecar is written mean every node of
    the invocation read the bytes that were hashed.
    """
    for path, identity in planned.items():
        try:
            now = _identity(os.stat(path))
        except OSError:
            now = None
        if now != list(identity):
            raise ValueError(f"{path}: this input changed while the run was using it ({when}: it was written, "
                             "replaced or removed after the run was planned), so the outputs could not match its "
                             "checksum; nothing was finished for this run. Rerun once the input files are no "
                             "longer being written.")


def written_digest(path: str | os.PathLike, sha256: str) -> dict:
    """What a node that hashed a file while writing it hands to the sink (:func:`carried_digest`): the digest
    and the file's identity (size, mtime, ctime, inode, device) once written and closed."""
    return {"sha256": sha256, "identity": _identity(os.stat(path))}


def carried_digest(written: dict | None, before: os.stat_result, after: os.stat_result) -> str | None:
    """The SHA-256 a node computed while writing a file (:func:`written_digest`), if it still holds for the file
    the sink moved into the outputs (``os.rename``), else None (the sink then hashes the file).

    ``before`` is the file's stat taken just before the rename, ``after`` the moved file's stat. The digest
    holds when ``before`` is the identity recorded when the file was written (size, mtime, ctime, inode,
    device: any write, truncation or replacement since changes one of them, as for :class:`ChecksumCache`),
    and ``after`` is the same inode on the same device with the same size and mtime (a rename changes only
    ctime): the moved file is the one that was hashed, unwritten since. A copy is another inode, so it is
    never vouched for this way.
    """
    if not written or "sha256" not in written or written.get("identity") != _identity(before):
        return None
    same = [after.st_size, after.st_mtime_ns, after.st_ino, after.st_dev] == \
        [before.st_size, before.st_mtime_ns, before.st_ino, before.st_dev]
    return str(written["sha256"]) if same else None


class ChecksumCache:
    """SHA-256 of files, remembered by (path, size, mtime, ctime, inode, device).

    One small JSON file per path under ``folder`` (written atomically), so any number of
    processes can share the cache without a lock. With ``folder=None`` nothing is cached.
    """

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = Path(folder) if folder is not None else None

    def _entry(self, path: Path) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / (hashlib.sha1(str(path).encode()).hexdigest() + ".json")

    def remove_temporaries(self) -> list[Path]:
        """Remove the temporary files that a killed process left in the cache folder (an entry's
        :func:`~bidsapp.core.files.atomic_path` file, killed before its rename); the files removed.

        Another process may be writing an entry at that moment: its rename then fails, which :meth:`record`
        takes as an entry not written (the file is hashed again next time). No entry is ever half-written. What
        cannot be removed (a read-only folder, a folder of that name) is kept, as :meth:`record` only costs time
        there.
        """
        if self.folder is None:
            return []
        removed = []
        try:
            found = temporaries(self.folder, lambda _: True)
        except OSError:
            return []
        for tmp in found:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                continue
            removed.append(tmp)
        return removed

    def cached(self, path: str | os.PathLike, st: os.stat_result | None = None) -> str | None:
        """The cached hex SHA-256 of ``path`` if it was recorded for the file as it is (``st``: its stat, taken
        now when not given), else None."""
        path = Path(path).resolve()
        entry = self._entry(path)
        if entry is None or not entry.exists():
            return None
        st = st or os.stat(path)
        try:
            cached = json.loads(entry.read_text())
            if cached["path"] == str(path) and cached["identity"] == _identity(st):
                return cached["sha256"]
        except (OSError, ValueError, KeyError):
            pass
        return None

    def sha256(self, path: str | os.PathLike) -> str:
        """Hex SHA-256 of ``path``, read from the cache when the file has not changed."""
        path = Path(path).resolve()
        before = os.stat(path)
        found = self.cached(path, before)
        if found is not None:
            return found
        digest = sha256sum(path)
        after = os.stat(path)
        if _identity(after) != _identity(before):  # changed while being read: hash what is there now
            return self.sha256(path)
        self.record(path, digest, after)  # a read-only or full cache folder only costs time
        return digest

    def record(self, path: str | os.PathLike, digest: str, st: os.stat_result | None = None) -> bool:
        """Remember ``digest`` for ``path`` as it is now (``st``: its stat when it was hashed); returns whether
        it was written (a read-only or full cache folder only costs time)."""
        entry = self._entry(Path(path).resolve())
        if entry is None:
            return False
        st = st or os.stat(path)
        try:
            write_text(entry, json.dumps({"path": str(Path(path).resolve()), "identity": _identity(st),
                                          "sha256": digest}))
        except OSError:
            return False
        return True

    def record_read(self, path: str | os.PathLike, digest: str | None, before: os.stat_result) -> bool:
        """Remember ``digest``, the SHA-256 a reader computed from the bytes it read, if the file is still the
        one it read: ``before`` (its stat taken before the read) and its stat now must give the same identity
        (any write in between changes ctime). Returns whether it was recorded; a file changed while being read,
        or ``digest`` None (the reader did not hash the whole file), is left to :meth:`sha256`."""
        if digest is None or self.folder is None:
            return False
        try:
            after = os.stat(path)
        except OSError:
            return False
        if _identity(after) != _identity(before):
            return False
        return self.record(path, digest, before)

    def many(self, paths: list, workers: int = 4) -> list[str]:
        """Checksums of several files, read in parallel (hashlib releases the GIL)."""
        if len(paths) <= 1:
            return [self.sha256(p) for p in paths]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(self.sha256, paths))
