"""4D image -> samples x features arrays, their descriptions, and the inverse.

Voxel mode returns one column per mask voxel, in the order of
``nilearn.masking.apply_mask`` (C order of the (i, j, k) indices); atlas mode
returns one column per label (mean of its voxels), as ``NiftiLabelsMasker``
with ``strategy="mean"`` and background 0. Both stream the image volume by
volume (``bidsapp.core.io.iter_volumes``). Each streaming function takes an optional
:class:`~bidsapp.core.io.MeanAccumulator` (``mean``) that sums the unsmoothed volumes as they pass, so the
run's temporal mean costs no second read of the file, and an optional :class:`~bidsapp.core.io.ReadDigest`
(``digest``) that receives the SHA-256 of the whole file, hashed from the bytes the stream reads.
"""

from __future__ import annotations

import os
import warnings

import nibabel as nib
import numpy as np

from bidsapp.core.files import atomic_path
from bidsapp.core.io import MeanAccumulator, ReadDigest, iter_volumes, load_header
from bidsapp.core.tsv import read_tsv

FWHM_TO_SIGMA = 1.0 / np.sqrt(8 * np.log(2))
TRUNCATE = 4.0  # scipy's gaussian_filter1d default, as used by nilearn


def _sigmas(affine: np.ndarray, fwhm: float) -> np.ndarray:
    vox = np.sqrt(np.sum(affine[:3, :3] ** 2, axis=0))
    return fwhm * FWHM_TO_SIGMA / vox


class _Smoother:
    """Gaussian smoothing of volumes equal to nilearn's ``smooth_array``.

    Only the bounding box of the voxels that are read (plus the kernel
    radius) is filtered: outside it, results cannot reach those voxels.
    """

    def __init__(self, affine: np.ndarray, fwhm: float, support: np.ndarray):
        if fwhm is None or fwhm <= 0:
            raise ValueError(f"smoothing FWHM must be > 0 mm, got {fwhm}.")
        self.sigmas = _sigmas(affine, fwhm)
        radius = [int(TRUNCATE * s + 0.5) for s in self.sigmas]
        idx = np.nonzero(support)
        lo = [max(int(i.min()) - r, 0) for i, r in zip(idx, radius)]
        hi = [min(int(i.max()) + r + 1, n) for i, r, n in zip(idx, radius, support.shape)]
        self.box = tuple(slice(a, b) for a, b in zip(lo, hi))
        self.support = support[self.box]
        self.n_nonfinite = 0

    def __call__(self, vol: np.ndarray) -> np.ndarray:
        from scipy import ndimage  # imported on use (~0.1 s), by smoothing runs only

        out = np.array(vol[self.box], dtype=vol.dtype, order="F")
        bad = ~np.isfinite(out)
        if bad.any():
            self.n_nonfinite += int(bad.sum())
            out[bad] = 0
        for axis, s in enumerate(self.sigmas):
            if s > 0:
                ndimage.gaussian_filter1d(out, s, output=out, axis=axis)
        return out


def _check_grid(path, img, shape, what: str) -> None:
    if tuple(img.shape[:3]) != tuple(shape):
        raise ValueError(
            f"{path}: BOLD grid {img.shape[:3]} differs from the {what} grid {tuple(shape)}; "
            f"resample the {what} to the BOLD first."
        )


def _zero_nonfinite(row: np.ndarray) -> int:
    """Set non-finite values of ``row`` to 0 in place; return how many there were."""
    bad = ~np.isfinite(row)
    if not bad.any():
        return 0
    row[bad] = 0
    return int(bad.sum())


def _report_nonfinite(path, n: int, what: str, smoothing: bool) -> None:
    if n:
        where = f"within the smoothing kernel's reach of the {what}" if smoothing else f"inside the {what}"
        warnings.warn(f"{path}: {n} non-finite value(s) (NaN or inf) {where} were set to 0 "
                      "(as nilearn's NiftiMasker).", stacklevel=3)


def _out_dtype(img) -> np.dtype:
    return np.dtype(np.float64) if img.header.get_data_dtype() == np.float64 else np.dtype(np.float32)


def apply_weights(
    bold_path: str | os.PathLike, where: tuple[np.ndarray, ...], weights, support: np.ndarray, *,
    smoothing_fwhm: float | None = None, what: str = "columns", mean: MeanAccumulator | None = None,
    digest: ReadDigest | None = None,
) -> tuple[np.ndarray, int]:
    """Each volume's voxels ``where`` (float64, non-finite values set to 0) times ``weights``.

    Parameters
    ----------
    bold_path : path
        4D image.
    where : tuple of arrays
        Voxel indices of the support (3D grid of ``bold_path``).
    weights : (n_columns, n_support) array or sparse matrix
        Column weights of the support voxels (maps' pseudo-inverse, spheres' means).
    support : (x, y, z) bool array
        Voxels that smoothing may draw from (the support's bounding region).
    smoothing_fwhm : float, optional
        Gaussian smoothing (mm) inside ``support`` before weighting, as for voxels.
    what : str
        Name of the columns in the non-finite warning.
    mean : MeanAccumulator, optional
        Sums every volume (before smoothing) for the run's temporal mean.
    digest : ReadDigest, optional
        Receives the SHA-256 of the whole file (``bidsapp.core.io.iter_volumes``).

    Returns
    -------
    X : (n_volumes, n_columns) array, the dtype of :func:`apply_mask`'s output
    n_nonfinite : int
    """
    img = load_header(bold_path, ndim=4)
    smoother = _Smoother(img.affine, smoothing_fwhm, support) if smoothing_fwhm else None
    if smoother is not None:
        where = tuple(w - b.start for w, b in zip(where, smoother.box))
    dtype = _out_dtype(img)
    X = np.empty((img.shape[3], weights.shape[0]), dtype=dtype)
    n_bad = 0
    for t, vol in iter_volumes(bold_path, dtype=dtype, mean=mean, digest=digest):
        v = np.array((smoother(vol) if smoother is not None else vol)[where], dtype=np.float64)
        bad = ~np.isfinite(v)
        n_bad += int(bad.sum())
        v[bad] = 0
        X[t] = weights @ v
    n_bad += smoother.n_nonfinite if smoother is not None else 0
    _report_nonfinite(bold_path, n_bad, what, smoother is not None)
    return X, n_bad


class _Gather:
    """Mask voxels of a Fortran-ordered volume, in nilearn's (C) order, at cache speed.

    The C-order list of Fortran-order flat indices jumps ``nx * ny`` elements between consecutive
    voxels, so gathering in that order misses the cache on every voxel. The voxels are read in memory
    order (ascending flat index) into a buffer the size of the row, which stays in cache, and that
    buffer is permuted into nilearn's order.
    """

    def __init__(self, sub_mask: np.ndarray):
        flat = np.ravel_multi_index(np.nonzero(sub_mask), sub_mask.shape, order="F")  # C order listing
        order = np.argsort(flat, kind="stable")
        self.flat = flat[order]  # memory order
        self.to_c = np.empty_like(order)
        self.to_c[order] = np.arange(order.size)  # position in memory order of each C-order voxel
        self.size = flat.size

    def __call__(self, vol_flat: np.ndarray, out: np.ndarray, buf: np.ndarray) -> np.ndarray:
        np.take(vol_flat, self.flat, out=buf)
        return np.take(buf, self.to_c, out=out)


def _masked_rows(bold_path, mask: np.ndarray, smoothing_fwhm: float | None, mean: MeanAccumulator | None = None,
                 digest: ReadDigest | None = None):
    """Header, output dtype, column count and a generator of (index, row) with a reused row buffer;
    the generator returns the count of non-finite values set to 0."""
    img = load_header(bold_path, ndim=4)
    mask = np.asarray(mask, dtype=bool)
    _check_grid(bold_path, img, mask.shape, "mask")
    if not mask.any():
        raise ValueError("The mask is empty: no voxel to extract.")
    smoother = _Smoother(img.affine, smoothing_fwhm, mask) if smoothing_fwhm else None
    gather = _Gather(smoother.support if smoother else mask)
    dtype = _out_dtype(img)

    def rows():
        n_bad = 0
        row = np.empty(gather.size, dtype=dtype)
        buf = np.empty(gather.size, dtype=dtype)
        for t, vol in iter_volumes(bold_path, dtype=dtype, mean=mean, digest=digest):
            if smoother is not None:
                vol = smoother(vol)
            gather(vol.ravel(order="F"), row, buf)
            n_bad += _zero_nonfinite(row)
            yield t, row
        return n_bad + (smoother.n_nonfinite if smoother is not None else 0)

    return img, dtype, gather.size, rows()


def _each_row(rows, put) -> int:
    """Hand every ``(t, row)`` of a :func:`_masked_rows` generator to ``put``; return the generator's count
    of non-finite values (its return value)."""
    while True:
        try:
            t, row = next(rows)
        except StopIteration as stop:
            return stop.value
        put(t, row)


def apply_mask(
    bold_path: str | os.PathLike, mask: np.ndarray, *, smoothing_fwhm: float | None = None,
    return_nonfinite: bool = False, mean: MeanAccumulator | None = None, digest: ReadDigest | None = None,
) -> np.ndarray | tuple[np.ndarray, int]:
    """Mask a 4D image into a (n_volumes, n_voxels) float32 (float64 for float64 data) array.

    Non-finite values (NaN, inf) are set to 0 before smoothing and masking, as
    nilearn's ``NiftiMasker`` does; their number is given in one warning.

    Parameters
    ----------
    bold_path : path
        4D NIfTI (``.nii`` or ``.nii.gz``).
    mask : numpy.ndarray of bool, shape (nx, ny, nz)
        On the BOLD grid.
    smoothing_fwhm : float or None
        Isotropic Gaussian FWHM in mm (anisotropic voxels handled), applied to
        each volume before masking, as NiftiMasker's ``smoothing_fwhm``.
    return_nonfinite : bool
        Also return the number of non-finite values set to 0 (inside the
        mask, or within reach of the smoothing kernel).
    mean : MeanAccumulator, optional
        Sums every volume (before smoothing) for the run's temporal mean.
    digest : ReadDigest, optional
        Receives the SHA-256 of the whole file (``bidsapp.core.io.iter_volumes``).

    Returns
    -------
    X : numpy.ndarray, float32 (float64 for float64 data), shape (n_volumes, n_voxels)
    n_nonfinite : int
        Only with ``return_nonfinite``.
    """
    img, dtype, n_cols, rows = _masked_rows(bold_path, mask, smoothing_fwhm, mean, digest)
    out = np.empty((img.shape[3], n_cols), dtype=dtype)
    n_bad = _each_row(rows, out.__setitem__)
    _report_nonfinite(bold_path, n_bad, "mask", bool(smoothing_fwhm))
    return (out, n_bad) if return_nonfinite else out


def mask_to_npy(
    bold_path: str | os.PathLike, mask: np.ndarray, path: str | os.PathLike, *,
    smoothing_fwhm: float | None = None, mean: MeanAccumulator | None = None, digest: ReadDigest | None = None,
) -> int:
    """:func:`apply_mask` written row by row to an ``.npy`` file (atomically), never held in memory.

    The array is the same as :func:`apply_mask`'s; writing each row from one reused buffer saves the
    page faults of a fresh (n_volumes x n_voxels) array and the copy of ``numpy.save``. ``mean``, ``digest``:
    as for :func:`apply_mask`.

    Returns
    -------
    n_nonfinite : int
        Non-finite values set to 0 (also reported in one warning).
    """
    img, dtype, n_cols, rows = _masked_rows(bold_path, mask, smoothing_fwhm, mean, digest)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": (int(img.shape[3]), int(n_cols))})
        n_bad = _each_row(rows, lambda _t, row: fh.write(memoryview(row).cast("B")))
    _report_nonfinite(bold_path, n_bad, "mask", bool(smoothing_fwhm))
    return n_bad


def read_label_table(path: str | os.PathLike) -> dict[int, str]:
    """Read a ``dseg.tsv``-style label table (columns ``index`` and ``name``)."""
    header, rows = read_tsv(path)
    if "index" not in header or "name" not in header:
        raise ValueError(f"{path}: a label table needs the columns 'index' and 'name' (got {header}).")
    i_idx, i_name = header.index("index"), header.index("name")
    table: dict[int, str] = {}
    line_of: dict = {}
    for n, row in enumerate(rows, start=2):
        try:
            value = float(row[i_idx])
            index = int(value)
        except (ValueError, OverflowError):
            value, index = None, None
        if index is None or index != value:  # 3.6 would name region 3
            raise ValueError(f"{path}: line {n}: index '{row[i_idx]}' is not an integer; write the region's "
                             "label value as in the atlas image.")
        name = row[i_name]
        for key, what in ((("index", index), f"index {index}"), (("name", name), f"name '{name}'")):
            if key in line_of:
                raise ValueError(f"{path}: line {n}: {what} is already on line {line_of[key]}; each region needs "
                                 "one index and its own name (the columns are named by it).")
            line_of[key] = n
        table[index] = name
    return table


def warn_unnamed_labels(labels: np.ndarray, names: dict[int, str], table: str | os.PathLike) -> None:
    """One warning when labels of the atlas are missing from its label table (they become region-<label>)."""
    missing = sorted(set(np.unique(labels).astype(int).tolist()) - {0} - set(names))
    if missing:
        import warnings

        shown = ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else "")
        warnings.warn(f"{table}: {len(missing)} label(s) of the atlas are not in this label table ({shown}): "
                      "their columns are named region-<label>; check that the table belongs to the atlas.",
                      stacklevel=2)


def load_labels(
    labels_path: str | os.PathLike, bold_shape, bold_affine: np.ndarray, *, resample: bool = False
) -> np.ndarray:
    """Load an integer labels image on the BOLD grid (nearest-neighbour resampling on request)."""
    from bidsapp.core.masks import describe_grid, resample_to_grid, same_grid

    img = load_header(labels_path, ndim=3)
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4:
        data = data[..., 0]
    if not np.all(np.isfinite(data)) or not np.allclose(data, np.round(data)):
        raise ValueError(f"{labels_path}: an atlas must hold integer labels (0 = background).")
    data = np.round(data).astype(np.int64)
    if not same_grid(data.shape, img.affine, bold_shape, bold_affine):
        if not resample:
            raise ValueError(
                f"{labels_path}: atlas grid ({describe_grid(data.shape, img.affine)}) differs from the BOLD "
                f"grid ({describe_grid(bold_shape, bold_affine)}); pass an atlas in the run's space and "
                "resolution, or allow nearest-neighbour resampling (resample=True)."
            )
        data = np.round(resample_to_grid(data, img.affine, bold_shape, bold_affine, order=0)).astype(np.int64)
    if not (data != 0).any():
        raise ValueError(f"{labels_path}: the atlas has no labelled voxel on the BOLD grid.")
    return data


def apply_labels(
    bold_path: str | os.PathLike,
    labels: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    smoothing_fwhm: float | None = None,
    return_nonfinite: bool = False,
    mean: MeanAccumulator | None = None,
    digest: ReadDigest | None = None,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, int]:
    """Mean signal of each region, as ``NiftiLabelsMasker(strategy="mean")``.

    Non-finite values are set to 0 first (as nilearn), counted in one warning.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (nx, ny, nz)
        0 is background.
    mask : numpy.ndarray of bool or None
        Voxels outside it are ignored.

    return_nonfinite : bool
        Also return the number of non-finite values set to 0.
    mean : MeanAccumulator, optional
        Sums every volume (before smoothing) for the run's temporal mean.
    digest : ReadDigest, optional
        Receives the SHA-256 of the whole file (``bidsapp.core.io.iter_volumes``).

    Returns
    -------
    signals : numpy.ndarray, float32 (float64 for float64 data), shape (n_volumes, n_regions)
    label_values : numpy.ndarray of int, shape (n_regions,)
        Sorted label values, one per column.
    n_nonfinite : int
        Only with ``return_nonfinite``.
    """
    img = load_header(bold_path, ndim=4)
    _check_grid(bold_path, img, labels.shape, "atlas")
    labels = np.asarray(labels).copy()
    if mask is not None:
        labels[~np.asarray(mask, bool)] = 0
    support = labels != 0
    if not support.any():
        raise ValueError("No labelled voxel inside the mask: check that atlas and mask overlap.")
    smoother = _Smoother(img.affine, smoothing_fwhm, support) if smoothing_fwhm else None
    sub = labels[smoother.box] if smoother else labels
    sel = np.nonzero(sub != 0)
    flat = np.ravel_multi_index(sel, sub.shape, order="F")
    values, inverse = np.unique(sub[sel], return_inverse=True)
    counts = np.bincount(inverse, minlength=values.size).astype(np.float64)
    dtype = _out_dtype(img)
    out = np.empty((img.shape[3], values.size), dtype=dtype)
    n_bad = 0
    for _t, vol in iter_volumes(bold_path, dtype=dtype, mean=mean, digest=digest):
        if smoother is not None:
            vol = smoother(vol)
        v = np.take(vol.ravel(order="F"), flat)
        n_bad += _zero_nonfinite(v)
        out[_t] = np.bincount(inverse, weights=v, minlength=values.size) / counts
    n_bad += smoother.n_nonfinite if smoother is not None else 0
    _report_nonfinite(bold_path, n_bad, "atlas", smoother is not None)
    return (out, values, n_bad) if return_nonfinite else (out, values)


def voxel_features(mask: np.ndarray, affine: np.ndarray) -> dict[str, np.ndarray]:
    """Describe each column of a voxel array.

    Returns
    -------
    table : dict of str to numpy.ndarray
        ``column``, ``i``, ``j``, ``k`` (voxel indices) and ``x``, ``y``, ``z``
        (world coordinates in mm, from the affine), one entry per column.
    """
    ijk = np.array(np.nonzero(mask)).T
    xyz = nib.affines.apply_affine(affine, ijk)
    return {
        "column": np.arange(ijk.shape[0]),
        "i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2],
        "x": np.round(xyz[:, 0], 4), "y": np.round(xyz[:, 1], 4), "z": np.round(xyz[:, 2], 4),
    }


def label_features(
    labels: np.ndarray, affine: np.ndarray, label_values: np.ndarray, names: dict[int, str] | None = None
) -> dict[str, np.ndarray]:
    """Describe each column of an atlas array: label value, name and centroid.

    ``i, j, k`` is the centroid in voxel coordinates and ``x, y, z`` in mm.
    """
    labels = np.asarray(labels)
    idx = np.nonzero(labels)
    lab = labels[idx]
    pos = np.searchsorted(label_values, lab)
    ok = (pos < label_values.size) & (label_values[np.minimum(pos, label_values.size - 1)] == lab)
    counts = np.bincount(pos[ok], minlength=label_values.size)
    centroid = np.stack(
        [np.bincount(pos[ok], weights=c[ok], minlength=label_values.size) for c in idx], axis=1
    ) / np.maximum(counts, 1)[:, None]
    xyz = nib.affines.apply_affine(affine, centroid)
    names = names or {}
    return {
        "column": np.arange(label_values.size),
        "label": label_values.astype(int),
        "name": np.array([names.get(int(v), f"region-{int(v)}") for v in label_values], dtype=object),
        "i": np.round(centroid[:, 0], 3), "j": np.round(centroid[:, 1], 3), "k": np.round(centroid[:, 2], 3),
        "x": np.round(xyz[:, 0], 3), "y": np.round(xyz[:, 1], 3), "z": np.round(xyz[:, 2], 3),
    }


def unmask(X: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """Inverse of :func:`apply_mask`: features back to a 3D (1D input) or 4D image.

    Parameters
    ----------
    X : numpy.ndarray, shape (n_voxels,) or (n_samples, n_voxels)
    mask : numpy.ndarray of bool
    affine : numpy.ndarray, shape (4, 4)
    """
    X = np.asarray(X)
    mask = np.asarray(mask, dtype=bool)
    n = int(mask.sum())
    if X.shape[-1] != n:
        raise ValueError(f"X has {X.shape[-1]} features but the mask has {n} voxels.")
    if X.ndim == 1:
        data = np.zeros(mask.shape, dtype=X.dtype)
        data[mask] = X
    elif X.ndim == 2:
        data = np.zeros(mask.shape + (X.shape[0],), dtype=X.dtype)
        data[mask] = X.T
    else:
        raise ValueError(f"X must be 1D or 2D, got shape {X.shape}.")
    return nib.Nifti1Image(data, affine)


def label_positions(labels: np.ndarray, label_values: np.ndarray) -> np.ndarray:
    """The column of each voxel's region: its index in ``label_values``, -1 for background (0) and values that are
    no region. Any integer values, negative or beyond 2**31 included (found by search, not by a table indexed by
    value, whose size would be the largest label).

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (nx, ny, nz)
    label_values : numpy.ndarray of int, shape (n_regions,)

    Returns
    -------
    numpy.ndarray of int64, shape (nx, ny, nz)
    """
    values = np.asarray(label_values)
    if not values.size:
        return np.full(labels.shape, -1, dtype=np.int64)
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    at = np.clip(np.searchsorted(ranked, labels), 0, values.size - 1)
    return np.where((ranked[at] == labels) & (labels != 0), order[at], -1).astype(np.int64)


def unmask_labels(X: np.ndarray, labels: np.ndarray, label_values: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """Inverse transform of atlas mode: paint each region with its value."""
    X = np.asarray(X)
    if X.shape[-1] != label_values.size:
        raise ValueError(f"X has {X.shape[-1]} features but there are {label_values.size} regions.")
    pos = label_positions(labels, label_values)
    inside = pos >= 0
    if X.ndim == 1:
        data = np.zeros(labels.shape, dtype=X.dtype)
        data[inside] = X[pos[inside]]
    else:
        data = np.zeros(labels.shape + (X.shape[0],), dtype=X.dtype)
        data[inside] = X[:, pos[inside]].T
    return nib.Nifti1Image(data, affine)


def unmask_rows(blocks, mask: np.ndarray):
    """Volumes of the inverse transform, one at a time (bounded memory).

    Parameters
    ----------
    blocks : iterable of numpy.ndarray, shape (n_rows, n_voxels)
        Consecutive blocks of rows of X (e.g. from :func:`bidsapp.core.npy.iter_npy_rows`).
    mask : numpy.ndarray of bool, shape (nx, ny, nz)

    Yields
    ------
    volume : numpy.ndarray, shape (nx, ny, nz)
    """
    mask = np.asarray(mask, dtype=bool)
    n = int(mask.sum())
    vol = np.zeros(mask.shape, dtype=np.float32)
    for block in blocks:
        if block.shape[1] != n:
            raise ValueError(f"X has {block.shape[1]} features but the mask has {n} voxels.")
        for row in block:
            vol[mask] = row
            yield vol


def unmask_label_rows(blocks, labels: np.ndarray, label_values: np.ndarray):
    """Like :func:`unmask_rows` for atlas mode: each region painted with its value, volume by volume."""
    pos = label_positions(labels, label_values)
    inside = pos >= 0
    take = pos[inside]
    vol = np.zeros(labels.shape, dtype=np.float32)
    for block in blocks:
        if block.shape[1] != label_values.size:
            raise ValueError(f"X has {block.shape[1]} features but there are {label_values.size} regions.")
        for row in block:
            vol[inside] = row[take]
            yield vol
