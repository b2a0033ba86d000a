"""``.npy`` arrays on disk: written with their SHA-256, copied or transposed from a source file, cleaned in place in
the output file, mapped and released column by column, read row block by row block."""

from __future__ import annotations

import errno
import hashlib
import io
import mmap
import os
import platform
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bidsapp.core.files import atomic_path, copy_blocks, read_exact, read_full, temporary_path
from bidsapp.core.io import HashingReader, ReadDigest


def save_npy_hashed(array: np.ndarray, path: str | os.PathLike, *, block: int = 1 << 24) -> str:
    """Atomically save ``array`` as :func:`save_npy` does (the same bytes as :func:`numpy.save`) and return the
    hex SHA-256 of the file, computed from the bytes written while they are written: no second read.

    The ``.npy`` header is hashed, then the array's memory in ``block``-byte pieces in a helper thread while
    this thread writes the same memory to the file (hashlib and file writes release the GIL). The file holds
    exactly the hashed bytes: the header, then the array's bytes in C order.

    Raises
    ------
    ValueError
        For an array of Python objects (``np.save`` would pickle them).
    """
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise ValueError(f"{path}: an array of Python objects has no fixed bytes to hash; give a numeric array.")
    head = io.BytesIO()
    fields = np.lib.format.header_data_from_array_1_0(array)
    try:  # numpy.save's choice: format 1.0 unless the header is too long for it
        np.lib.format.write_array_header_1_0(head, fields)
    except ValueError:
        head = io.BytesIO()
        np.lib.format.write_array_header_2_0(head, fields)
    sha = hashlib.sha256(head.getvalue())
    data = memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")
    pieces = [data[k:k + block] for k in range(0, len(data), block)]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh, ThreadPoolExecutor(max_workers=1) as pool:
        hashed = pool.submit(lambda: [sha.update(piece) for piece in pieces])
        fh.write(head.getvalue())
        for piece in pieces:
            fh.write(piece)
        hashed.result()
    return sha.hexdigest()


class RowsInPlace:
    """A float ``.npy`` of shape (n, m) copied into a temporary file next to ``path`` (or, :meth:`take`, renamed
    to it) and mapped read-write (:attr:`array`), for work that writes its result over the array's leading rows
    (or, :meth:`new`, an empty one to write a result into); :meth:`keep` then makes the file an ``.npy`` of those
    rows and :meth:`install` renames it to ``path``.

    No fresh memory holds the array: reading the file into a new array and writing the result to a new file
    fault in twice the array's size, which costs more than the arithmetic on a virtual machine whose free
    memory goes back to its host (about 2 s per GiB the first time it is touched). The temporary file is
    removed on :meth:`discard`; a killed process leaves a hidden ``.tmp`` that :func:`remove_temporaries`
    clears.

    A write through a map cannot return an error: a block the filesystem must allocate then, on a full disk,
    ends the process by ``SIGBUS``. So the file's blocks are all allocated before it is mapped: the copy is
    written through a buffer (a kernel copy may share the source's blocks, a reflink, copied at the first write
    to each), then ``posix_fallocate`` reserves every block (a full disk is an ``OSError`` there); callers
    check :func:`has_room` first. On NFS, closing the file after :meth:`keep` writes the mapped pages back and
    reports an error as ``write()`` would. A copy-on-write filesystem (btrfs, ZFS) allocates at every write
    even to reserved blocks: there only :func:`has_room`'s margin stands between a disk filling up during the
    cleaning and a ``SIGBUS``. :meth:`install` cuts the file: nothing may read :attr:`array` (or a view of
    it) past the kept rows after it, so hold no other reference to the map.
    """

    def __init__(self, src: str | os.PathLike, path: str | os.PathLike):
        self._open(path, lambda tmp: _copy_into(src, tmp) or np.load(tmp, mmap_mode="r+"))

    @classmethod
    def take(cls, src: str | os.PathLike, path: str | os.PathLike) -> RowsInPlace:
        """As ``RowsInPlace(src, path)``, but ``src`` itself becomes the temporary file (renamed: no byte
        copied, no new page; ``src`` is gone, even if the work then fails). Copied instead when ``src`` is on
        another filesystem."""
        self = cls.__new__(cls)
        self._open(path, lambda tmp: _rename_or_copy(src, tmp) or np.load(tmp, mmap_mode="r+"))
        return self

    @classmethod
    def new(cls, path: str | os.PathLike, shape: tuple[int, int], dtype=np.float32) -> RowsInPlace:
        """An output array of ``shape`` (C order) in a new temporary file next to ``path``, mapped read-write:
        written there instead of in fresh memory, then saved by :meth:`keep` and :meth:`install` alike."""
        self = cls.__new__(cls)
        self._open(path, lambda tmp: np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape)))
        return self

    def _open(self, path: str | os.PathLike, mapped: Callable[[Path], np.memmap]) -> None:
        """The temporary file next to ``path``, mapped by ``mapped(tmp)``, every block reserved (no allocation
        under the map); removed if any of it fails."""
        self.path = Path(path)
        self.tmp = temporary_path(self.path)
        try:
            self.array = mapped(self.tmp)
            with open(self.tmp, "r+b") as fh:
                os.posix_fallocate(fh.fileno(), 0, max(os.fstat(fh.fileno()).st_size, 1))
        except BaseException:
            self.discard()
            raise

    def keep(self, n_rows: int) -> int:
        """Make the file's header say (``n_rows``, m), same header length; returns the file's new length
        (header + those rows). Call :meth:`install` once the array's mapping is no longer read."""
        a = self.array
        if a.ndim != 2 or not a.flags.c_contiguous or not 0 <= n_rows <= a.shape[0]:
            raise ValueError(f"{self.tmp}: cannot keep {n_rows} rows of a {a.shape} array.")
        head = _header_of_length({"descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False,
                                  "shape": (int(n_rows), int(a.shape[1]))}, a.offset)
        with open(self.tmp, "r+b") as fh:
            fh.write(head)
        return a.offset + n_rows * a.shape[1] * a.itemsize

    def install(self, length: int) -> Path:
        """Drop the mapping, cut the file to ``length`` (from :meth:`keep`), rename it to ``path``."""
        self.array = None  # its last reference: unmapped
        os.truncate(self.tmp, length)
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (the mapping, if any, goes with the last reference to :attr:`array`)."""
        self.tmp.unlink(missing_ok=True)


def _rename_or_copy(src: str | os.PathLike, dst: Path) -> None:
    """Rename ``src`` over the existing file ``dst``; copy it when they are on two filesystems."""
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_into(src, dst)


def _copy_into(src: str | os.PathLike, dst: Path) -> None:
    """Copy ``src`` into the existing file ``dst`` through a buffer (its own blocks: never a reflink)."""
    with open(src, "rb", buffering=0) as fin, open(dst, "r+b", buffering=0) as fout:
        size = os.fstat(fin.fileno()).st_size
        if copy_blocks(fin, fout, size) != size:
            raise ValueError(f"{src}: the file changed while it was copied; run again.")


def _header_of_length(fields: dict, length: int) -> bytes:
    """An ``.npy`` format 1.0 header of exactly ``length`` bytes (the data's offset): numpy's, padded with
    spaces when shorter (numpy reads any padding)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, fields)
    head = buf.getvalue()
    if len(head) > length or length - 10 > 0xFFFF:
        raise ValueError(f"an .npy header of {len(head)} bytes does not fit in {length}.")
    body = head[10:-1] + b" " * (length - len(head)) + b"\n"
    return head[:8] + struct.pack("<H", len(body)) + body


def copy_to_npy(src: str | os.PathLike, offset: int, dtype: np.dtype, shape: tuple[int, ...],
                fortran_order: bool, path: str | os.PathLike, *, digest: ReadDigest | None = None,
                each: Callable[[memoryview], None] | None = None) -> Path:
    """Atomically write an ``.npy`` whose data are ``src``'s bytes from ``offset`` (e.g. a dtseries' data
    block), copied by the kernel (``copy_file_range``: no pass through this process's memory).

    With ``digest``, the whole of ``src`` is read through this process instead, once: each block is hashed in
    a helper thread while it is written and the next one read (no slower than the kernel copy followed by a
    second read for the checksum), and given to ``each`` (e.g. :class:`FiniteCheck`) after it is written.
    Without ``digest``, ``each`` is not called.

    Raises
    ------
    ValueError
        Naming ``src``, when it holds fewer bytes than ``shape`` and ``dtype`` need.
    """
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    with atomic_path(path) as tmp:
        with (open(src, "rb") if digest is None else HashingReader(src, background="shared", depth=2) as fin,
              open(tmp, "wb") as fout):
            np.lib.format.write_array_header_1_0(
                fout, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": bool(fortran_order),
                       "shape": tuple(int(v) for v in shape)})
            fout.flush()
            if digest is None:
                done = _kernel_copy(fin, fout, offset, n)
            else:
                read_exact(fin, offset, Path(src), what="header")
                done = copy_blocks(fin, fout, n, buffers=2, each=each)
            if done != n:
                raise ValueError(f"{src}: the file is truncated ({done} of {n} data bytes); copy it again from "
                                 "its source.")
            if digest is not None:
                digest.hexdigest = fin.finish()
    return Path(path)


def _kernel_copy(fin, fout, offset: int, n: int) -> int:
    """Copy ``n`` bytes of ``fin`` from ``offset`` to the end of ``fout`` with ``copy_file_range`` (through
    userspace where the kernel refuses); returns the bytes copied (fewer at the end of ``fin``)."""
    done = 0
    try:
        while done < n:
            k = os.copy_file_range(fin.fileno(), fout.fileno(), n - done, offset + done)
            if k == 0:
                break
            done += k
    except OSError as exc:  # EXDEV on old kernels, EINVAL on some filesystems: copy through userspace
        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP) or done:
            raise
        fin.seek(offset)
        fout.seek(0, os.SEEK_END)
        done = copy_blocks(fin, fout, n)
    return done


#: bytes of whole columns that :func:`columns_to_npy` reads per block
COLUMN_BLOCK_BYTES = 1 << 23


#: rows per tile of :func:`columns_to_npy`'s transposition: a tile's source (the block's columns, this many
#: values of each) stays in a core's cache while its rows are written
TRANSPOSE_ROWS = 64


def columns_to_npy(src: str | os.PathLike, offset: int, dtype: np.dtype, shape: tuple[int, int],
                   path: str | os.PathLike, *, digest: ReadDigest | None = None,
                   each: Callable[[memoryview], None] | None = None) -> Path:
    """Atomically write a C-order ``.npy`` of ``shape`` (n_rows, n_columns) from ``src``'s values at ``offset``,
    stored column after column (Fortran order: a dtseries' data block), transposed block by block.

    The result has the layout of a volume run's masked array, a row per volume: the cleaning node cleans it in
    its own file, in place, instead of writing a second array of the same size into new pages. The file's
    blocks are reserved before it is mapped (a full disk is an ``OSError``, not a ``SIGBUS``); a copy-on-write
    filesystem (btrfs, ZFS) allocates at every write even to reserved blocks, so callers check
    :func:`has_room` first (:func:`copy_to_npy` writes through ``write()`` when room is short). ``src`` is read
    once, by blocks of whole columns; with ``digest``, each block is hashed in a helper thread while the next is
    read, and the rest of the file after the data too (``digest.hexdigest``: the SHA-256 of the whole file).
    Each block is given to ``each`` (e.g. :class:`FiniteCheck`) once transposed.

    Raises
    ------
    ValueError
        Naming ``src``, when it holds fewer bytes than ``shape`` and ``dtype`` need.
    """
    dtype = np.dtype(dtype)
    n_rows, n_cols = (int(v) for v in shape)
    column = n_rows * dtype.itemsize
    width = max(1, COLUMN_BLOCK_BYTES // max(column, 1))  # columns per block
    rows = RowsInPlace.new(path, (n_rows, n_cols), dtype)  # mapped, every block reserved, renamed when complete
    try:
        with (open(src, "rb", buffering=0) if digest is None  # noqa: SIM115 - closed by the with
              else HashingReader(src, background="shared", depth=2)) as fin:
            read_exact(fin, offset, Path(src), what="header")
            views = [memoryview(bytearray(min(width, n_cols) * column)) for _ in range(2)]  # hashed in turn
            for k, c0 in enumerate(range(0, n_cols if column else 0, width)):
                c1 = min(n_cols, c0 + width)
                view = views[k % 2][:(c1 - c0) * column]
                got = read_full(fin, view)
                if got != len(view):
                    raise ValueError(f"{src}: the file is truncated ({c0 * column + got} of {n_cols * column} data "
                                     "bytes); copy it again from its source.")
                block = np.frombuffer(view, dtype=dtype).reshape(c1 - c0, n_rows)
                for r in range(0, n_rows, TRANSPOSE_ROWS):
                    rows.array[r:r + TRANSPOSE_ROWS, c0:c1] = block[:, r:r + TRANSPOSE_ROWS].T
                if each is not None:
                    each(view)
            if digest is not None:
                digest.hexdigest = fin.finish()
    except BaseException:
        rows.discard()
        raise
    return rows.install(rows.keep(n_rows))


class FiniteCheck:
    """Whether every value of a stream of blocks of ``dtype`` values is finite, from one sum per block (the
    blocks a copy has in memory anyway: no second pass over the file).

    ``finite`` is None until a block was seen, and after a block that does not hold whole values (a short
    read): the caller then checks the file itself.
    """

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype, self.finite = np.dtype(dtype), None
        self._whole = True

    def __call__(self, block: memoryview) -> None:
        if not self._whole or len(block) % self.dtype.itemsize:
            self._whole, self.finite = False, None
            return
        ok = bool(np.isfinite(np.frombuffer(block, dtype=self.dtype).sum()))  # NaN and inf propagate to the sum
        self.finite = ok if self.finite is None else self.finite and ok


#: alignment of the ranges :func:`release_columns` drops (a huge page)
RELEASE_ALIGN = 2 << 20


def release_columns(array: np.ndarray, start: int, stop: int) -> None:
    """Drop the pages of columns ``start:stop`` of a read-only memory-mapped, Fortran-ordered 2D array from
    this process's memory (``madvise(MADV_DONTNEED)``); anything else is left alone.

    The file's pages stay in the page cache, and reading the columns again maps them again (same values: the
    mapping is shared and read-only). A pass over the columns by chunks that releases each chunk once copied
    holds one chunk of the file in its resident memory instead of all of it (a dtseries, whose layout is
    column-major, cleaned into a new array). The range is widened to :data:`RELEASE_ALIGN`: the page cache may
    hold the file in 2 MB folios, which a narrower range leaves mapped; a neighbouring chunk being read then
    maps a few of its pages again, with the same values.
    """
    mm = getattr(array, "_mmap", None)
    if (mm is None or getattr(array, "mode", None) != "r" or array.ndim != 2 or not array.flags.f_contiguous
            or not hasattr(mm, "madvise") or stop <= start):
        return
    column = array.shape[0] * array.itemsize
    lo = array.ctypes.data - np.frombuffer(mm, dtype=np.uint8).ctypes.data + start * column
    hi = lo + (stop - start) * column
    lo, hi = lo // RELEASE_ALIGN * RELEASE_ALIGN, min(-(-hi // RELEASE_ALIGN) * RELEASE_ALIGN, len(mm))
    mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


#: ``madvise`` advice that maps every page of a range writable in one call, as writing each page would (Linux
#: >= 5.14; Python's ``mmap`` names it from 3.12): the same number on the architectures that take their values
#: from asm-generic/mman-common.h
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23 if platform.machine().lower() in (
    "x86_64", "amd64", "aarch64", "arm64", "ppc64le", "ppc64", "s390x", "riscv64") else None)


def map_writable(array: np.ndarray) -> bool:
    """Map every page of a read-write memory-mapped array (its whole file) writable in one call, before work
    that writes all of it; whether it was done.

    Writing through a shared file map takes a page fault the first time each page (or large folio) is written:
    the kernel maps the page-cache pages a read touches for reading only. In a 1,200-volume run the cleaning's
    apply step went from 1.1-1.4 to 0.94-0.98 s of wall time and from 2.0-2.4 to 1.6 CPU s
    (``benchmarks/README.md``). For pages not yet in the page cache (a new file) one call allocates them all on
    one core, which cost more than the faults spread over the cleaning's threads: use it on a file just
    written. It changes no value and reports failure instead of raising ``SIGBUS``; an older kernel
    (``EINVAL``), another system, or an array that is not a read-write map is left as it was (False).
    """
    mm = getattr(array, "_mmap", None)
    if (MADV_POPULATE_WRITE is None or mm is None or getattr(array, "mode", None) not in ("r+", "w+")
            or not hasattr(mm, "madvise") or os.uname().sysname != "Linux"):
        return False
    try:
        mm.madvise(MADV_POPULATE_WRITE)  # holds the GIL (Python's mmap): call it where nothing else waits on it
    except (OSError, ValueError):  # ValueError: a closed map
        return False
    return True


def iter_npy_rows(path: str | os.PathLike, rows_per_block: int) -> Iterator[tuple[int, np.ndarray]]:
    """Read a 2D C-ordered ``.npy`` file by blocks of rows with plain reads (bounded memory).

    Yields
    ------
    start : int
        Index of the block's first row.
    block : numpy.ndarray, shape (n_rows, n_columns)
    """
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        if len(shape) != 2 or fortran:
            raise ValueError(f"{path}: expected a 2D C-ordered array, got shape {shape}.")
        n, m = shape
        step = max(1, int(rows_per_block))
        for start in range(0, n, step):
            count = min(step, n - start)
            block = np.empty((count, m), dtype=dtype)
            if fh.readinto(memoryview(block).cast("B")) < block.nbytes:
                raise ValueError(f"{path}: truncated array at row {start}.")
            yield start, block
