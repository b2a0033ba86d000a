"""A file read once leaves the page cache as it was: the pages its read brought in are released behind it.

Reading a 1 GB BOLD run from a cold cache fills 1 GB of page cache that nothing reads again (memory that cgroups
count against a SLURM job), and on a virtual machine whose free memory goes back to its host each of those pages is
fresh memory, slow to touch the first time. :class:`ReleaseBehind` takes a snapshot of which pages of the file are
cached when it is opened (``mincore(2)`` on a read-only map of the file: nothing is read, nothing is cached by
asking) and, as the read goes, releases (``POSIX_FADV_DONTNEED``) the pages that were not: the next blocks reuse
them. Pages that were cached before (a mask computed from the same BOLD, a rerun, fMRIPrep having just written
it) stay cached.

Where the snapshot cannot be taken (not Linux, ``mincore`` or ``posix_fadvise`` missing, a file system that
refuses the map) nothing is released. For a file the process may neither write nor owns, Linux reports every page
as cached (``mincore`` does not reveal other users' cache), so such a file, too, is left as it is.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import sys

import numpy as np

#: bytes behind the read position whose pages are not released yet
LAG = 8 << 20
#: the page cache may hold a file in folios of up to 2 MiB, and ``POSIX_FADV_DONTNEED`` drops only the folios
#: inside its range: released ranges end on this boundary (the next one starts there), or at the end of the file
ALIGN = 2 << 20


def _libc_calls():
    if not (sys.platform.startswith("linux") and hasattr(os, "posix_fadvise")):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        calls = libc.mmap, libc.munmap, libc.mincore
    except (OSError, AttributeError):
        return None
    calls[0].restype, calls[0].argtypes = ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                                             ctypes.c_int, ctypes.c_int, ctypes.c_int64)
    calls[1].restype, calls[1].argtypes = ctypes.c_int, (ctypes.c_void_p, ctypes.c_size_t)
    calls[2].restype, calls[2].argtypes = ctypes.c_int, (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    return calls


_CALLS = _libc_calls()


def resident_pages(fd: int) -> np.ndarray | None:
    """Which pages of the file open as ``fd`` are in the page cache (bool, one per ``mmap.PAGESIZE`` bytes), or
    None where that cannot be told. Reads nothing and changes nothing in the cache."""
    size = os.fstat(fd).st_size
    if _CALLS is None or size == 0:
        return None
    do_mmap, do_munmap, do_mincore = _CALLS
    addr = do_mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        return None
    try:
        vec = np.zeros(-(-size // mmap.PAGESIZE), dtype=np.uint8)
        if do_mincore(addr, size, vec.ctypes.data) != 0:
            return None
    finally:
        do_munmap(addr, size)
    return (vec & 1).astype(bool)


class ReleaseBehind:
    """Release the pages of a file that were not cached when this was made, up to a read position.

    Parameters
    ----------
    fd : int
        The file, open for reading (``posix_fadvise`` needs no more).
    """

    def __init__(self, fd: int):
        self.fd = fd
        resident = resident_pages(fd)
        self._fresh = None if resident is None or resident.all() else ~resident  # pages this read brings in
        self._done = 0  # bytes from the start that were dealt with

    @property
    def active(self) -> bool:
        """Whether any page will be released."""
        return self._fresh is not None

    def behind(self, pos: int) -> None:
        """Release the fresh pages before ``pos`` but the last :data:`LAG` bytes (ranges ending on :data:`ALIGN`)."""
        self._release((pos - LAG) // ALIGN * ALIGN)

    def all(self) -> None:
        """Release the fresh pages of the whole file (its read is over)."""
        if self._fresh is not None:
            self._release(self._fresh.size * mmap.PAGESIZE)

    def _release(self, end: int) -> None:
        if self._fresh is None or end <= self._done:
            return
        first, last = self._done // mmap.PAGESIZE, min(-(-end // mmap.PAGESIZE), self._fresh.size)
        edges = np.diff(np.concatenate([[0], self._fresh[first:last].view(np.int8), [0]]))
        with contextlib.suppress(OSError):
            for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
                start, stop = (first + int(a)) * mmap.PAGESIZE, (first + int(b)) * mmap.PAGESIZE
                length = 0 if first + int(b) == self._fresh.size else stop - start  # 0: to the end of the file
                os.posix_fadvise(self.fd, start, length, os.POSIX_FADV_DONTNEED)
        self._done = end
