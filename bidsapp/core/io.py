"""Fast NIfTI streaming: headers, volumes, their mean and the file's SHA-256 from one read.

A 4D BOLD run is never loaded whole as float64: :func:`iter_volumes` streams
it volume by volume from disk. Gzipped files are decompressed with
python-isal (Intel ISA-L, about 3x faster than zlib) in a background thread,
so decompression of the next block overlaps the work done on the current
volume; plain ``.nii`` files are read with plain reads into one reused buffer.
Given a :class:`ReadDigest`, a stream also computes the SHA-256 of the whole
file from the bytes it reads, so that the file is read once for both.

What is written lives beside it: :mod:`bidsapp.core.files` (atomic writes, temporaries, checksums),
:mod:`bidsapp.core.tsv` (tables) and :mod:`bidsapp.core.npy` (arrays).
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import hashlib
import io
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.core.files import atomic_path, missing_file_line, read_exact, read_full
from bidsapp.core.page_cache import ReleaseBehind

try:  # python-isal: ISA-L based gzip, a runtime dependency; zlib fallback kept
    from isal import igzip_threaded as _igzip_threaded
except ImportError:  # pragma: no cover - exercised only without isal
    _igzip_threaded = None

GZIP_BACKEND = "isal" if _igzip_threaded is not None else "zlib"
_FADVISE = hasattr(os, "posix_fadvise")  # Linux; not macOS


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
            read_exact(fh, offset, path, what="header")
            for t in range(n_vols):
                if read_full(fh, view) < nbytes:
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
            read_exact(fh, offset, path, what="header")
        for t in range(n_vols):
            buf = bufs[t % len(bufs)]
            if fh.readinto(buf) < nbytes:  # pragma: no cover - size checked above
                raise ValueError(f"{path}: truncated file at volume {t}.")
            yield t, buf
        if digest is not None:
            digest.hexdigest = fh.finish()


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


