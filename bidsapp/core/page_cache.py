"""The pages a read brings into the page cache are released behind it; the pages cached before stay.

Reading a 1 GB BOLD run from a cold cache fills 1 GB of page cache that nothing reads again (memory that cgroups
count against a SLURM job), and on a virtual machine whose free memory goes back to its host each of those pages is
fresh memory, slow to touch the first time. :class:`ReleaseBehind` takes a snapshot of which pages of the file are
cached when it is opened (``mincore(2)`` on read-only maps of the file, :data:`WINDOW` bytes at a time: nothing
is read, nothing is cached by asking) and, as the read goes, releases (``POSIX_FADV_DONTNEED``) the pages that
were not: the next blocks reuse them. Pages that were cached before (a mask computed from the same BOLD,
fMRIPrep having just written it, its header read to plan the run) stay cached. A read that stops early (an
error, a truncated file) releases what it brought in when its reader is closed.

Where the snapshot cannot be taken (not Linux, ``mincore`` or ``posix_fadvise`` missing, a file system that
refuses the map, an address-space limit below :data:`WINDOW`) nothing is released. For a file the process may
neither write nor owns (a shared dataset of another user), Linux reports every page as cached (``mincore`` does
not reveal other users' cache), so such a file is left cached, as before. Bytes appended to the file during the
read are not released.
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
#: the page cache may hold a file in folios of up to 2 MiB with 4 KiB pages (up to 2,048 pages with larger
#: pages: 32 MiB with 16 KiB, 128 MiB with 64 KiB), and ``POSIX_FADV_DONTNEED`` drops only the folios inside its
#: range: released ranges end on this boundary (the next one starts there), or at the end of the file
ALIGN = 2 << 20 if mmap.PAGESIZE <= 4096 else 2048 * mmap.PAGESIZE
#: bytes of the file mapped at a time to take the snapshot (a multiple of every page size)
WINDOW = 256 << 20


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
    vec = np.zeros(-(-size // mmap.PAGESIZE), dtype=np.uint8)
    for offset in range(0, size, WINDOW):
        if not _mincore(fd, offset, min(WINDOW, size - offset), vec[offset // mmap.PAGESIZE:]):
            return None
    return (vec & 1).astype(bool)


def _mincore(fd: int, offset: int, length: int, out: np.ndarray) -> bool:
    """``mincore`` of ``length`` bytes of the file from ``offset`` (page-aligned) into ``out``; False on failure."""
    do_mmap, do_munmap, do_mincore = _CALLS
    addr = do_mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, offset)
    if addr in (None, ctypes.c_void_p(-1).value):
        return False
    try:
        return do_mincore(addr, length, out.ctypes.data) == 0
    finally:
        do_munmap(addr, length)


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
