"""Files written whole or not at all (temporary names renamed into place, the umask's modes), the hidden
temporaries a killed writer leaves, checksums, free room, and the read and copy loops under them."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np


def missing_file_line(path: Path) -> str:
    """One line for an input that is not there; for a dangling symbolic link (a DataLad / git-annex file whose
    content was not fetched), the link's target and how to fetch it."""
    if path.is_symlink():
        return (f"{path}: a symbolic link to a missing file ({os.readlink(path)}); in a DataLad or git-annex dataset, "
                f"fetch its content first (datalad get {path}).")
    return f"{path}: file not found."


def read_exact(fh, n: int, path: Path, what: str) -> bytes:
    data = fh.read(n)
    if len(data) < n:
        raise ValueError(f"{path}: truncated file (incomplete {what}). Re-copy or regenerate it.")
    return data


def sha256sum(path: str | os.PathLike, blocksize: int = 1 << 20, *, length: int | None = None) -> str:
    """Hex SHA-256 of a file (of its first ``length`` bytes when given), read in blocks into one reused
    buffer."""
    h, buf = hashlib.sha256(), memoryview(bytearray(blocksize))
    with open(path, "rb", buffering=0) as fh:
        left = os.fstat(fh.fileno()).st_size if length is None else length
        while left > 0:
            k = fh.readinto(buf[:min(blocksize, left)])
            if not k:
                raise ValueError(f"{path}: shorter than {length} bytes.")
            h.update(buf[:k])
            left -= k
    return h.hexdigest()


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:  # pragma: no cover - non-Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover - non-Linux fallback
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


#: marker in the names of files being written (``.<stem>.<random>.tmp<ext>``)
TMP_MARK = ".tmp"


def temporary_path(path: str | os.PathLike) -> Path:
    """Create an empty hidden temporary file next to ``path`` (mode: 0666 minus the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=f"{TMP_MARK}{suffix}",
                               dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The file gets the mode a plain ``open()`` would give it (0666 minus the
    umask: 0644 under the usual 022), not ``mkstemp``'s 0600. On any
    exception the temporary file is removed, so a failed write never leaves
    a file that looks complete; a killed process leaves a hidden
    ``.<name>.<random>.tmp<ext>`` that :func:`remove_temporaries` clears.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_temporaries(folder: str | os.PathLike, belongs: Callable[[str], bool]) -> list[Path]:
    """Remove temporary files that :func:`atomic_path` left in ``folder``.

    Parameters
    ----------
    folder : str or PathLike
        Folder to clean.
    belongs : callable
        Called with the start of the final file name (up to its first dot,
        e.g. ``sub-01_task-a_desc-x_timeseries``); the temporary is removed
        when it returns True. Only call this while no other process writes
        such files (hold the run's lock).

    Returns
    -------
    removed : list of Path
    """
    removed = temporaries(folder, belongs)
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


def temporaries(folder: str | os.PathLike, belongs: Callable[[str], bool]) -> list[Path]:
    """The temporary files :func:`atomic_path` left in ``folder`` whose final name ``belongs`` (as
    :func:`remove_temporaries`, without removing them)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for tmp in folder.glob(f".*{TMP_MARK}*"):
        match = _TMP_NAME.fullmatch(tmp.name)
        if match and belongs(match.group(1)):
            out.append(tmp)
    return out


_TMP_NAME = re.compile(r"\.([^.]+)\.[A-Za-z0-9_]+" + re.escape(TMP_MARK) + r"(\.[A-Za-z0-9.]+)?")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_nifti(img: nib.Nifti1Image, path: str | os.PathLike) -> Path:
    """Atomically save a NIfTI image."""
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def save_npy(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Atomically save a numpy array (loadable with ``mmap_mode='r'``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
    return Path(path)


#: free space :func:`has_room` leaves to the rest of the system beyond what is asked
ROOM_MARGIN = 256 << 20


def has_room(folder: str | os.PathLike, nbytes: int) -> bool:
    """Whether the filesystem of ``folder`` has ``nbytes`` free for this user, plus :data:`ROOM_MARGIN`."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize >= nbytes + ROOM_MARGIN


def read_full(fin, view: memoryview) -> int:
    """Read into all of ``view`` (several reads if the file gives less at once); the bytes read (fewer at the end
    of the file)."""
    done = 0
    while done < len(view):
        got = fin.readinto(view[done:])
        if not got:
            break
        done += got
    return done


def copy_blocks(fin, fout, n: int, blocksize: int = 1 << 23, buffers: int = 1,
                 each: Callable[[memoryview], None] | None = None) -> int:
    """Copy the next ``n`` bytes of ``fin`` to ``fout`` through ``buffers`` reused buffers, used in turn (two
    let a :class:`HashingReader` hash one block while the next is read and written), each block given to
    ``each`` once written; returns the bytes copied."""
    views = [memoryview(bytearray(min(n, blocksize) or 1)) for _ in range(buffers)]
    done = k = 0
    while done < n:
        view = views[k % buffers]
        got = fin.readinto(view[:min(n - done, len(view))])
        if not got:
            break
        fout.write(view[:got])
        if each is not None:
            each(view[:got])
        done, k = done + got, k + 1
    return done
