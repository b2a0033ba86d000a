"""Fast NIfTI streaming, atomic writes and small file helpers.

A 4D BOLD run is never loaded whole as float64: :func:`iter_volumes` streams
it volume by volume from disk. Gzipped files are decompressed with
python-isal (Intel ISA-L, about 3x faster than zlib) in a background thread,
so decompression of the next block overlaps the work done on the current
volume; plain ``.nii`` files are read with plain reads into one reused buffer.
Given a :class:`ReadDigest`, a stream also computes the SHA-256 of the whole
file from the bytes it reads, so that the file is read once for both.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import gzip
import hashlib
import io
import mmap
import os
import platform
import re
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.core.page_cache import ReleaseBehind

try:  # python-isal: ISA-L based gzip, a runtime dependency; zlib fallback kept
    from isal import igzip_threaded as _igzip_threaded
except ImportError:  # pragma: no cover - exercised only without isal
    _igzip_threaded = None

GZIP_BACKEND = "isal" if _igzip_threaded is not None else "zlib"
_FADVISE = hasattr(os, "posix_fadvise")  # Linux; not macOS


def missing_file_line(path: Path) -> str:
    """One line for an input that is not there; for a dangling symbolic link (a DataLad / git-annex file whose
    content was not fetched), the link's target and how to fetch it."""
    if path.is_symlink():
        return (f"{path}: a symbolic link to a missing file ({os.readlink(path)}); in a DataLad or git-annex dataset, "
                f"fetch its content first (datalad get {path}).")
    return f"{path}: file not found."


def load_header(path: str | os.PathLike, *, ndim: int | None = None) -> nib.Nifti1Image:
    """Read a NIfTI header (lazily, no data) and check its dimensionality.

    Parameters
    ----------
    path : str or PathLike
        A ``.nii`` or ``.nii.gz`` file.
    ndim : int or None
        Required number of dimensions (a 4D image with one volume counts as 3D
        when ``ndim=3``).

    Returns
    -------
    img : nibabel.Nifti1Image
        A proxy image; its data are not read.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(missing_file_line(path))
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types on corrupt files
        raise ValueError(
            f"{path}: not a readable NIfTI file ({exc}). Re-export it or check the download."
        ) from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise ValueError(f"{path}: expected a NIfTI image, got {type(img).__name__}.")
    shape = img.shape
    if ndim == 3 and len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if ndim is not None and len(shape) != ndim:
        what = "a 4D BOLD series" if ndim == 4 else "a 3D image"
        raise ValueError(
            f"{path}: expected {what} but the image has shape {img.shape} ({len(img.shape)}D)."
            + (" Pass the preprocessed BOLD run (desc-preproc_bold)." if ndim == 4 else "")
        )
    return img


def header_repetition_time(img: nib.Nifti1Image) -> float | None:
    """Repetition time (s) in a NIfTI header (``pixdim[4]`` with its time unit), or None if unset."""
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not np.isfinite(zooms[3]) or zooms[3] <= 0:
        return None
    unit = img.header.get_xyzt_units()[1]
    return float(zooms[3]) * {"msec": 1e-3, "usec": 1e-6}.get(unit, 1.0)


def check_repetition_time(path: str | os.PathLike, t_r: float, rtol: float = 1e-3) -> None:
    """Warn (one line) when the JSON ``t_r`` disagrees with the NIfTI header; the JSON wins (BIDS)."""
    header_tr = header_repetition_time(load_header(path))
    if header_tr is not None and abs(header_tr - t_r) > rtol * t_r:
        warnings.warn(f"{Path(path).name}: RepetitionTime {t_r:g} s in the JSON sidecar differs from the NIfTI "
                      f"header (pixdim[4] = {header_tr:g} s); using the JSON value, as BIDS specifies.",
                      stacklevel=2)


def _scaling(proxy) -> tuple[float, float] | None:
    """(slope, intercept) of an image's array proxy, or None when unscaled."""
    slope, inter = float(proxy.slope), float(proxy.inter)
    if not np.isfinite(slope) or slope == 0 or (slope == 1 and inter == 0):
        return None
    return slope, inter


def iter_volumes(
    path: str | os.PathLike, *, dtype: np.dtype = np.float32, mean: MeanAccumulator | None = None,
    digest: ReadDigest | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream the volumes of a 4D NIfTI file.

    Parameters
    ----------
    path : str or PathLike
        4D ``.nii`` or ``.nii.gz`` image.
    dtype : numpy dtype, default=float32
        Floating dtype of the yielded volumes (scaling applied).
    mean : MeanAccumulator, optional
        Also sum every volume into this accumulator (:meth:`MeanAccumulator.of` the same file), from the
        file's values before ``dtype``'s rounding, so that its mean does not depend on ``dtype``.
    digest : ReadDigest, optional
        Also compute the SHA-256 of the whole file (every byte, compressed as stored) from the bytes the
        stream reads; set once the last volume was read and the rest of the file hashed.

    Yields
    ------
    index : int
        Volume index.
    volume : numpy.ndarray, shape (nx, ny, nz)
        The volume, Fortran-ordered like nibabel's arrays. The buffer may be
        reused: copy it if you keep it beyond the loop iteration.
    """
    dtype = np.dtype(dtype)
    img = load_header(path, ndim=4)
    header = img.header
    shape3 = tuple(int(s) for s in img.shape[:3])
    n_vols = int(img.shape[3])
    disk_dtype = header.get_data_dtype()
    nbytes = int(np.prod(shape3)) * disk_dtype.itemsize
    proxy = img.dataobj
    offset = int(proxy.offset)
    scaling = _scaling(proxy)
    path = Path(path)
    native = disk_dtype.newbyteorder("=")

    def convert(raw: np.ndarray) -> np.ndarray:
        if scaling is not None:  # scale in float64 (as nibabel), then round once to ``dtype``
            values = raw.astype(np.float64) * scaling[0] + scaling[1]
        else:
            values = raw.astype(native, copy=False)
        vol = values.astype(dtype, copy=False)
        if mean is not None:  # the volume already in the accumulator's dtype, else the file's values
            mean.add(vol if vol.dtype == mean.dtype else values)
        return vol.reshape(shape3, order="F")

    raw = _gzip_volumes if str(path).endswith(".gz") else _plain_volumes
    for t, buf in raw(path, offset, nbytes, n_vols, digest):
        yield t, convert(np.frombuffer(buf, dtype=disk_dtype))


def _gzip_volumes(path: Path, offset: int, nbytes: int, n_vols: int,
                  digest: ReadDigest | None = None) -> Iterator[tuple[int, bytearray]]:
    """The raw bytes of each volume of a ``.nii.gz`` (one reused buffer); truncated or corrupt data is an error.
    With ``digest``, the compressed bytes are hashed as the decompression thread reads them, in a helper thread
    (hashing in the decompression thread would add its time to this stream's: decompression is its floor)."""
    buf = bytearray(nbytes)
    view = memoryview(buf)
    try:
        with contextlib.ExitStack() as stack:
            source = str(path) if digest is None else stack.enter_context(HashingReader(path, background="copy"))
            fh = stack.enter_context(_igzip_threaded.open(source, "rb", threads=1) if _igzip_threaded is not None
                                     else gzip.open(source, "rb"))
            _read_exact(fh, offset, path, what="header")
            for t in range(n_vols):
                if _read_full(fh, view) < nbytes:
                    raise ValueError(
                        f"{path}: truncated file, volume {t} of {n_vols} is incomplete. "
                        "Re-copy or regenerate the file."
                    )
                yield t, buf
            if digest is not None:
                fh.close()  # stops the decompression thread: the rest of the file is read here
                digest.hexdigest = source.finish()
    except (EOFError, OSError, gzip.BadGzipFile) as exc:
        raise ValueError(
            f"{path}: corrupt or truncated gzip data ({exc}). Re-copy or regenerate the file."
        ) from exc


def _plain_volumes(path: Path, offset: int, nbytes: int, n_vols: int,
                   digest: ReadDigest | None = None) -> Iterator[tuple[int, bytearray]]:
    """The raw bytes of each volume of a ``.nii`` (one reused buffer); a file shorter than its header says is
    an error. With ``digest``, the header is read (not skipped) and each volume is hashed in a helper thread
    while the caller converts it and the next volume is read (two buffers, used in turn)."""
    expected = offset + nbytes * n_vols
    if path.stat().st_size < expected:
        raise ValueError(
            f"{path}: truncated file ({path.stat().st_size} bytes, {expected} expected). "
            "Re-copy or regenerate the file."
        )
    bufs = [bytearray(nbytes) for _ in range(1 if digest is None else 2)]
    # plain reads, not a memory map: the process's RSS stays one volume (two while hashing)
    with open(path, "rb") if digest is None else HashingReader(path, background="shared", depth=2) as fh:
        if digest is None:
            fh.seek(offset)
        else:
            _read_exact(fh, offset, path, what="header")
        for t in range(n_vols):
            buf = bufs[t % len(bufs)]
            if fh.readinto(buf) < nbytes:  # pragma: no cover - size checked above
                raise ValueError(f"{path}: truncated file at volume {t}.")
            yield t, buf
        if digest is not None:
            digest.hexdigest = fh.finish()


def _read_exact(fh, n: int, path: Path, what: str) -> bytes:
    data = fh.read(n)
    if len(data) < n:
        raise ValueError(f"{path}: truncated file (incomplete {what}). Re-copy or regenerate it.")
    return data


class ReadDigest:
    """The SHA-256 of a file that a stream reads whole anyway (:func:`iter_volumes`, :func:`columns_to_npy`),
    computed from the bytes it reads: the file is read once for its values and its checksum.

    Attributes
    ----------
    hexdigest : str or None
        Hex SHA-256 of every byte of the file, in order, from the first to the last; None until a stream
        hashed the whole file (a stream stopped early, or failed, leaves it None).
    """

    def __init__(self):
        self.hexdigest: str | None = None


class HashingReader(io.RawIOBase):
    """A file opened for sequential binary reads whose bytes update a SHA-256 as they are read.

    Seeking is not supported: the hash covers exactly the bytes read, in order. :meth:`finish` reads and
    hashes the rest of the file and returns the hex digest of the whole file. After each block, the kernel is
    asked to read the next one ahead (``POSIX_FADV_WILLNEED``), so that on a cold page cache the disk works
    while the caller decompresses or converts the block it has. The pages the read brings into the page cache
    are released behind it (:class:`bidsapp.core.page_cache.ReleaseBehind`; pages cached before stay cached), so
    that a BOLD run of a GB does not leave a GB of cache behind it and its next blocks reuse those pages.

    Parameters
    ----------
    path : str or PathLike
        The file.
    background : {None, "shared", "copy"}
        Where ``readinto`` hashes its block. None: at once, in the reading thread. Otherwise in a helper
        thread (hashlib releases the GIL), in order, while the caller works; a read waits while ``depth``
        blocks are still being hashed. "shared": the helper reads the caller's buffer, so the caller must
        not change a buffer it read into before ``depth`` more reads (a volume stream that rotates ``depth``
        buffers); "copy": the helper hashes a copy of each block (for a caller that may move data in its
        buffer before its next read, as a gzip decompressor does).
    depth : int
        Blocks that may be waiting for the helper thread.
    """

    def __init__(self, path: str | os.PathLike, *, background: str | None = None, depth: int = 2):
        super().__init__()
        if background not in (None, "shared", "copy"):
            raise ValueError(f"background={background!r}: give None, 'shared' or 'copy'.")
        self._raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._behind = ReleaseBehind(self._raw.fileno())  # the pages this read brings in leave behind it
        self._sha = hashlib.sha256()
        self._copy, self._depth = background == "copy", max(1, int(depth))
        self._pool = ThreadPoolExecutor(max_workers=1) if background else None
        self._pending: collections.deque[Future] = collections.deque()

    def readable(self) -> bool:
        return True

    def _settle(self, keep: int = 0) -> None:
        """Wait until at most ``keep`` blocks are being hashed in the helper thread (raises its error, if any)."""
        while len(self._pending) > keep:
            self._pending.popleft().result()

    def read(self, size: int = -1) -> bytes:
        self._settle()
        data = self._raw.read(size) if size is not None and size >= 0 else self._raw.readall()
        self._sha.update(data)
        self._behind.behind(self._raw.tell())  # a reader that reads, not readinto (Python's gzip)
        return data

    def readinto(self, b) -> int:
        self._settle(keep=self._depth - 1)
        n = self._raw.readinto(b)
        if n:
            self._read_ahead(n)
            block = memoryview(b).cast("B")[:n]
            if self._pool is not None:
                self._pending.append(self._pool.submit(self._sha.update, bytes(block) if self._copy else block))
            else:
                self._sha.update(block)
        return n

    def _read_ahead(self, n: int) -> None:
        """Ask the kernel to read the ``n`` bytes after the current position into the page cache, in the
        background (a no-op where ``posix_fadvise`` is missing), and release the pages behind the read that it
        brought in (:class:`bidsapp.core.page_cache.ReleaseBehind`: the hash thread reads this reader's copy or
        the caller's buffer, never the page cache)."""
        if _FADVISE:
            with contextlib.suppress(OSError):
                pos = self._raw.tell()
                os.posix_fadvise(self._raw.fileno(), pos, n, os.POSIX_FADV_WILLNEED)
                self._behind.behind(pos)

    def finish(self, blocksize: int = 1 << 23) -> str:
        """Hash the bytes not read yet (up to the end of the file); the hex SHA-256 of the whole file."""
        self._settle()
        buf = bytearray(blocksize)
        view = memoryview(buf)
        while n := self._raw.readinto(buf):
            self._sha.update(view[:n])
            self._behind.behind(self._raw.tell())
        self._behind.all()
        return self._sha.hexdigest()

    def close(self) -> None:
        if not self.closed:
            try:
                self._settle()
            finally:
                if self._pool is not None:
                    self._pool.shutdown()
                self._behind.all()  # a read stopped early (an error) leaves nothing of its own behind
                self._raw.close()
        super().close()


class MeanAccumulator:
    """Temporal mean of a 4D image's volumes, summed while a stream reads them (``iter_volumes``).

    The sum follows ``numpy.mean(axis=-1)`` on nibabel's arrays, as nilearn's ``compute_mean``: float32 (and
    float16) data are summed volume after volume in float32, as numpy does for a Fortran-ordered float32
    array, so the mean is bit-identical to nilearn's; integer data (scaled or not) and float64 data are
    summed in float64. One (nx, ny, nz) array of that dtype is the only memory it holds.

    Parameters
    ----------
    shape : tuple of int
        (nx, ny, nz) of the volumes.
    disk_dtype : numpy dtype
        The file's data type (decides the accumulation dtype).
    n_volumes : int
        Volumes of the image: :meth:`mean` refuses a partial sum.
    """

    def __init__(self, shape: tuple[int, int, int], disk_dtype: np.dtype, n_volumes: int):
        disk_dtype = np.dtype(disk_dtype)
        self.dtype = np.dtype(np.float64 if disk_dtype.kind in "iub" or disk_dtype == np.float64 else np.float32)
        self.shape, self.n_volumes, self.count = tuple(int(s) for s in shape), int(n_volumes), 0
        self._sum = np.zeros(int(np.prod(self.shape)), dtype=self.dtype)  # Fortran order, flat
        self._mean: np.ndarray | None = None  # the sum divided in place, once

    @classmethod
    def of(cls, path: str | os.PathLike) -> MeanAccumulator:
        """An empty accumulator for the 4D image at ``path`` (reads its header only)."""
        img = load_header(path, ndim=4)
        return cls(img.shape[:3], img.header.get_data_dtype(), img.shape[3])

    def add(self, values: np.ndarray) -> None:
        """Add one volume's values (flat in Fortran order, or (nx, ny, nz) Fortran-ordered), as the file holds
        them (scaled); a dtype wider than the accumulator's is rounded to it first, as ``numpy.mean`` of an
        array of the accumulator's dtype would see it."""
        if self._mean is not None:
            raise ValueError("this temporal mean is already computed; start a new MeanAccumulator.")
        values = values.reshape(-1, order="F")
        if values.size != self._sum.size:
            raise ValueError(f"a volume of {values.size} voxels added to the mean of {self.shape} volumes.")
        if not np.can_cast(values.dtype, self.dtype, "safe"):
            values = values.astype(self.dtype)
        np.add(self._sum, values, out=self._sum)  # integers widen inside the loop: no full-size copy
        self.count += 1

    def mean(self) -> np.ndarray:
        """The temporal mean, shape (nx, ny, nz), Fortran-ordered, in the accumulation dtype.

        Raises
        ------
        ValueError
            When fewer volumes than the image has were added (a stream stopped early).
        """
        if self._mean is None:
            if self.count != self.n_volumes:
                raise ValueError(f"the temporal mean needs all {self.n_volumes} volumes; {self.count} were read.")
            np.true_divide(self._sum, self.count, out=self._sum, casting="unsafe")
            self._mean = self._sum.reshape(self.shape, order="F")
        return self._mean


def mean_volume(path: str | os.PathLike) -> np.ndarray:
    """Temporal mean of a 4D image, accumulated like ``numpy.mean(axis=-1)`` (:class:`MeanAccumulator`).

    Integer data (scaled or not) and float64 data are accumulated in float64,
    as nilearn does on nibabel's float64 arrays; float32 data are summed volume
    after volume in float32, as numpy does for a Fortran-ordered float32 array,
    so the result is bit-identical to nilearn's ``compute_mean``. A stream that
    reads the volumes anyway (the masking node) gets the same mean by passing
    an accumulator to ``iter_volumes`` instead of reading the file again.

    Returns
    -------
    mean : numpy.ndarray, shape (nx, ny, nz)
    """
    mean = MeanAccumulator.of(path)
    for _ in iter_volumes(path, dtype=mean.dtype, mean=mean):
        pass
    return mean.mean()


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


def _format_cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float | np.floating):
        return "n/a" if not np.isfinite(value) else repr(float(value))
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    return str(value)


#: numeric columns longer than this are formatted once per distinct value when they repeat values
_DISTINCT_FROM = 4096


def _format_column(values) -> list[str]:
    """Format one column; numeric arrays take vectorised paths (features tables have a row per voxel): a long
    column of few distinct values (voxel indices, grid coordinates) formats each distinct value once."""
    arr = np.asarray(values) if isinstance(values, np.ndarray) else None
    if arr is not None and arr.dtype.kind in "iuf" and arr.ndim == 1 and arr.size > _DISTINCT_FROM:
        bits = np.ascontiguousarray(arr).view(f"i{arr.itemsize}")  # -0.0 and 0.0 stay apart
        _, first, inverse = np.unique(bits, return_index=True, return_inverse=True)
        if 4 * first.size < arr.size:
            return np.array(_format_column(arr[first]) + [""], dtype=object)[:-1][inverse].tolist()
    if arr is not None and arr.dtype.kind in "iu":
        return list(map(str, arr.tolist()))  # 2.5x faster than astype(str) and the same text
    if arr is not None and arr.dtype.kind == "f":  # numpy's shortest round-trip text is repr() of the float64
        values = arr.astype(np.float64, copy=False)  # (a float32 value written as the float64 it equals)
        text = values.astype(str)  # 5x faster than repr() per value (features tables: a row per voxel)
        text[~np.isfinite(values)] = "n/a"
        return text.tolist()
    if arr is not None and arr.dtype.kind == "U":
        return arr.tolist()
    values = list(values)
    if all(type(v) is str for v in values):  # labels, structure names: already their text
        return values
    return [_format_cell(v) for v in values]


def format_tsv(columns: dict[str, np.ndarray | list]) -> str:
    """Render a dict of equal-length columns as TSV text (``n/a`` for missing)."""
    names = list(columns)
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"TSV columns have different lengths: { {k: len(v) for k, v in columns.items()} }")
    n = lengths.pop() if lengths else 0
    cols = [_format_column(columns[k]) for k in names]
    lines = ["\t".join(names)]
    lines += ["\t".join(row) for row in zip(*cols)] if n else []
    return "\n".join(lines) + "\n"


def write_tsv(path: str | os.PathLike, columns: dict[str, np.ndarray | list], *, gzip_: bool = False) -> Path:
    """Atomically write a TSV (optionally gzipped) from a dict of columns."""
    text = format_tsv(columns)
    with atomic_path(path) as tmp:
        if gzip_:
            with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as fh:
                fh.write(text)
        else:
            tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read_tsv(path: str | os.PathLike) -> tuple[list[str], list[list[str]]]:
    """Read a BIDS TSV file into (header, rows of strings); a UTF-8 byte-order mark is ignored."""
    path = Path(path)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig") as fh:
        lines = [ln.rstrip("\n").rstrip("\r") for ln in fh if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: empty TSV file; it needs a header row.")
    header = lines[0].split("\t")
    rows = [ln.split("\t") for ln in lines[1:]]
    for i, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"{path}: line {i} has {len(row)} fields but the header has {len(header)}. "
                "Check that the file is tab-separated."
            )
    return header, rows


def read_tsv_header(path: str | os.PathLike) -> list[str]:
    """The header row of a BIDS TSV file (only its first line is read: a features table has a row per voxel)."""
    path = Path(path)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig") as fh:
        for line in fh:
            if line.strip():
                return line.rstrip("\n").rstrip("\r").split("\t")
    raise ValueError(f"{path}: empty TSV file; it needs a header row.")


def to_float(values: list[str], *, path: Path | str, column: str) -> np.ndarray:
    """Convert TSV strings to float, with ``n/a`` (or empty) as NaN."""
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v in ("n/a", "", "NaN", "nan"):
            out[i] = np.nan
            continue
        try:
            out[i] = float(v)
        except ValueError:
            raise ValueError(
                f"{path}: row {i + 1}, column '{column}': '{v}' is not a number."
            ) from None
    return out


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
        if _copy_blocks(fin, fout, size) != size:
            raise ValueError(f"{src}: the file changed while it was copied; run again.")


#: free space :func:`has_room` leaves to the rest of the system beyond what is asked
ROOM_MARGIN = 256 << 20


def has_room(folder: str | os.PathLike, nbytes: int) -> bool:
    """Whether the filesystem of ``folder`` has ``nbytes`` free for this user, plus :data:`ROOM_MARGIN`."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize >= nbytes + ROOM_MARGIN


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
                _read_exact(fin, offset, Path(src), what="header")
                done = _copy_blocks(fin, fout, n, buffers=2, each=each)
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
        done = _copy_blocks(fin, fout, n)
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
            _read_exact(fin, offset, Path(src), what="header")
            views = [memoryview(bytearray(min(width, n_cols) * column)) for _ in range(2)]  # hashed in turn
            for k, c0 in enumerate(range(0, n_cols if column else 0, width)):
                c1 = min(n_cols, c0 + width)
                view = views[k % 2][:(c1 - c0) * column]
                got = _read_full(fin, view)
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


def _read_full(fin, view: memoryview) -> int:
    """Read into all of ``view`` (several reads if the file gives less at once); the bytes read (fewer at the end
    of the file)."""
    done = 0
    while done < len(view):
        got = fin.readinto(view[done:])
        if not got:
            break
        done += got
    return done


def _copy_blocks(fin, fout, n: int, blocksize: int = 1 << 23, buffers: int = 1,
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


def write_nifti_series(
    path: str | os.PathLike,
    volumes: Iterator[np.ndarray],
    *,
    shape: tuple[int, int, int],
    n_volumes: int,
    affine: np.ndarray,
    t_r: float,
    dtype: np.dtype = np.float32,
    atomic: bool = True,
) -> Path:
    """Write a 4D NIfTI (``.nii`` or ``.nii.gz``) volume by volume: memory holds one volume.

    ``volumes`` yields ``n_volumes`` arrays of ``shape``. Written atomically unless ``atomic=False``
    (``path`` is already a temporary file that the caller installs).
    """
    dtype = np.dtype(dtype)
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(tuple(shape) + (int(n_volumes),))
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header.set_xyzt_units("mm", "sec")
    header["pixdim"][4] = t_r
    header.set_slope_inter(1.0, 0.0)
    header["vox_offset"] = 352
    path = Path(path)
    with (atomic_path(path) if atomic else contextlib.nullcontext(path)) as tmp:
        opener = gzip.open if str(path).endswith(".gz") else open
        kwargs = {"compresslevel": 1} if str(path).endswith(".gz") else {}
        with opener(tmp, "wb", **kwargs) as fh:
            fh.write(header.binaryblock)
            fh.write(b"\x00" * (352 - len(header.binaryblock)))
            written = 0
            for vol in volumes:
                if vol.shape != tuple(shape):
                    raise ValueError(f"volume {written} has shape {vol.shape}, expected {tuple(shape)}.")
                fh.write(np.asarray(vol, dtype=dtype.newbyteorder("<")).tobytes(order="F"))
                written += 1
        if written != n_volumes:
            raise ValueError(f"{path}: {written} volumes written, {n_volumes} announced.")
    return path


def write_tsv_rows(
    path: str | os.PathLike, names: list[str], blocks: Iterator[np.ndarray], *, gzip_: bool = True,
    atomic: bool = True,
) -> Path:
    """Write a large numeric TSV block by block (float32 values in their shortest form, NaN as ``n/a``).

    Written atomically unless ``atomic=False`` (``path`` is already a temporary file).
    """
    path = Path(path)
    with (atomic_path(path) if atomic else contextlib.nullcontext(path)) as tmp:
        opener = gzip.open if gzip_ else open
        with opener(tmp, "wt", encoding="utf-8", **({"compresslevel": 6} if gzip_ else {})) as fh:
            fh.write("\t".join(names) + "\n")
            for block in blocks:
                text = np.asarray(block).astype(str)
                text[~np.isfinite(block)] = "n/a"
                fh.write("\n".join("\t".join(row) for row in text.tolist()) + "\n")
    return path
