"""Grayordinates: fMRIPrep's CIFTI-2 (``dtseries.nii``) and GIFTI (``func.gii`` pairs) runs.

A run becomes a float32 (n_volumes, n_grayordinates) array whose columns are
described by a nibabel :class:`~nibabel.cifti2.cifti2_axes.BrainModelAxis`
(the CIFTI's own brain models, or the two hemispheres of a GIFTI pair, left
first, every vertex). The same axis turns a vector or a matrix over the
columns back into a ``dscalar.nii`` / ``dtseries.nii`` or per-hemisphere
``func.gii``. Atlas mode averages the columns of each label of a ``dlabel.nii``
(or a ``label.gii`` pair), as ``wb_command -cifti-parcellate -method MEAN``.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.cifti2 import cifti2_axes as ca

from bidsapp.core import cifti
from bidsapp.core.files import has_room, save_npy
from bidsapp.core.io import ReadDigest
from bidsapp.core.npy import FiniteCheck, columns_to_npy, copy_to_npy

BrainModels = ca.BrainModelAxis
CIFTI_EXTENSIONS = (".dtseries.nii",)
GIFTI_EXTENSIONS = (".func.gii",)
LEFT, RIGHT = "CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_CORTEX_RIGHT"
_CHUNK = 16384  # grayordinates per block when a dtseries is converted (non-float32 or scaled files)


def is_grayordinate_file(path: str | os.PathLike) -> bool:
    """Whether a BOLD file is a CIFTI-2 dtseries or a GIFTI func file (by its extension)."""
    return str(path).endswith(CIFTI_EXTENSIONS + GIFTI_EXTENSIONS)


def is_cifti(path: str | os.PathLike) -> bool:
    return str(path).endswith(CIFTI_EXTENSIONS)


def dtseries_header(path: str | os.PathLike) -> cifti.DenseCifti:
    """The header of a CIFTI-2 dtseries (shape, series, brain models), checked; the data are not read."""
    info = cifti.read_header(path)
    if info.series is None or info.series.unit != "SECOND":
        unit = info.series.unit if info.series else info.row_type
        raise ValueError(f"{path}: the CIFTI series axis is not time (it is {unit}); give a dtseries whose "
                         "rows are volumes in seconds (fMRIPrep's *_bold.dtseries.nii).")
    return info


def open_dtseries(path: str | os.PathLike) -> tuple[np.ndarray, BrainModels, cifti.Series]:
    """Memory-map a CIFTI-2 dtseries without reading it.

    Returns
    -------
    data : numpy.memmap, shape (n_volumes, n_grayordinates)
        A read-only memory map of the stored values (Fortran order, the file's layout), in the
        file's dtype, NIfTI scaling not applied; no copy is made.
    brain_models : BrainModelAxis
        What each column is.
    series : cifti.Series
        Start and step (the repetition time) of the rows, in seconds.
    """
    info = dtseries_header(path)
    return info.memmap(), info.brain_models, info.series


def zero_nonfinite(X: np.ndarray, path) -> int:
    """Set NaN and infinite values of ``X`` to 0 in place (the volume runs' policy, nilearn's NiftiMasker's);
    one warning naming ``path`` and the count. Returns the count."""
    import warnings

    if np.isfinite(X.sum()):  # one cheap pass; a non-finite (or overflowing) sum means a closer look
        return 0
    bad = ~np.isfinite(X)
    n = int(bad.sum())
    if n:
        X[bad] = 0
        cols = int(bad.any(axis=0).sum())
        warnings.warn(f"{path}: {n} non-finite value(s) (NaN or inf) in {cols} grayordinate(s) were set to 0 "
                      "(as for volume runs and nilearn's NiftiMasker).", stacklevel=3)
    return n


def _read_exactly(path, offset: int, buf: np.ndarray) -> None:
    view = memoryview(buf).cast("B")
    got = 0
    with open(path, "rb", buffering=0) as fh:
        fh.seek(offset)
        while got < len(view):
            n = fh.readinto(view[got:])
            if not n:
                break
            got += n
    if got != len(view):
        raise ValueError(f"{path}: the file is truncated ({got} of {len(view)} data bytes); copy it again from "
                         "fMRIPrep's outputs.")


def read_dtseries(path: str | os.PathLike) -> tuple[np.ndarray, BrainModels, cifti.Series]:
    """A dtseries as a float32 (n_volumes, n_grayordinates) array in the file's (Fortran) order.

    A native float32 file is read with one ``readinto`` (no intermediate copy); other dtypes and
    scaled files are converted column block by column block from the memory map. Values are returned
    as stored (NaN included: :func:`read_run` applies the non-finite policy).

    Returns
    -------
    X, brain_models, series
    """
    info = dtseries_header(path)
    n_rows, n_cols = info.shape
    buf = np.empty((n_cols, n_rows), dtype=np.float32)  # X = buf.T: the file's layout, a straight copy
    if info.plain_float32:
        _read_exactly(path, info.offset, buf)
    else:
        try:
            raw = info.memmap().T
        except ValueError as exc:  # mmap longer than the file
            raise ValueError(f"{path}: the file is truncated ({exc}); copy it again from fMRIPrep's outputs.") from exc
        for start in range(0, n_cols, _CHUNK):
            block = np.asarray(raw[start:start + _CHUNK], dtype=np.float64)
            buf[start:start + _CHUNK] = block * info.slope + info.inter if info.scaled else block
    return buf.T, info.brain_models, info.series


def _hemisphere(img, path, expected: str) -> None:
    meta = {}
    for source in [img.meta] + [d.meta for d in img.darrays[:1]]:
        meta.update(dict(source) if source is not None else {})
    primary = meta.get("AnatomicalStructurePrimary")
    if primary is not None and ca.BrainModelAxis.to_cifti_brain_structure_name(primary) != expected:
        raise ValueError(f"{path}: AnatomicalStructurePrimary is {primary}, expected the "
                         f"{'left' if expected == LEFT else 'right'} hemisphere; swap the files.")


#: vertices per hemisphere of the standard meshes, by space (and fsLR density)
MESH_VERTICES = {"fsaverage": 163842, "fsaverage6": 40962, "fsaverage5": 10242, "fsaverage4": 2562,
                 "fsaverage3": 642, "fsLR_32k": 32492, "fsLR_59k": 59292, "fsLR_164k": 163842}


def mesh_vertices(path: str | os.PathLike) -> tuple[str | None, int | None]:
    """The standard mesh a file's name says it is on (``space-fsaverage5``, ``space-fsLR_den-32k``) and its
    number of vertices per hemisphere; (None, None) for ``fsnative`` and unknown spaces."""
    ents = dict(part.split("-", 1) for part in Path(path).name.split(".")[0].split("_") if "-" in part)
    space = ents.get("space")
    mesh = f"{space}_{ents['den']}" if space == "fsLR" and "den" in ents else space
    return (mesh, MESH_VERTICES[mesh]) if mesh in MESH_VERTICES else (None, None)


def load_gifti(path: str | os.PathLike) -> nib.GiftiImage:
    """``nib.load`` of a GIFTI file, with one line naming the file when it cannot be read."""
    try:
        img = nib.load(str(path))
    except Exception as exc:  # truncated XML (ExpatError), Dim0 disagreeing with the data (ValueError), ...
        raise ValueError(f"{path}: not a readable GIFTI file ({type(exc).__name__}: {exc}); copy it again from "
                         "its source.") from None
    if not isinstance(img, nib.GiftiImage):
        raise ValueError(f"{path}: not a GIFTI file (nibabel reads it as {type(img).__name__}).")
    external = sorted({d.ext_fname for d in img.darrays if d.encoding == 4 or d.ext_fname})
    if external:  # data outside the file would escape the input checksums (a stale output could be reused)
        raise ValueError(f"{path}: its data arrays are stored in an external file ({external[0]}); save the GIFTI "
                         "with its data inside (base64 encoding, as fMRIPrep writes it).")
    return img


def read_gifti_pair(left: str | os.PathLike, right: str | os.PathLike) -> tuple[np.ndarray, BrainModels]:
    """Join a left and a right ``func.gii`` (one data array per volume) into one array.

    Returns
    -------
    X : numpy.ndarray, float32, shape (n_volumes, n_vertices_left + n_vertices_right)
        Left hemisphere's vertices first, then the right's, every vertex in order.
    brain_models : BrainModelAxis
        ``CIFTI_STRUCTURE_CORTEX_LEFT`` / ``_RIGHT`` surface models over all vertices.
    """
    parts, models = [], []
    lengths = {}
    for path, name in ((left, LEFT), (right, RIGHT)):
        if path is None or not Path(path).is_file():
            raise ValueError(f"{path}: missing hemisphere ({'hemi-L' if name == LEFT else 'hemi-R'}); fMRIPrep "
                             "writes both hemi-L and hemi-R func.gii files, give the pair.")
        img = load_gifti(path)
        if not img.darrays:
            raise ValueError(f"{path}: the GIFTI file has no data arrays.")
        _hemisphere(img, path, name)
        one_2d = len(img.darrays) == 1 and img.darrays[0].data.ndim == 2
        if one_2d:  # one 2D array (vertices x time)
            data = np.asarray(img.darrays[0].data, dtype=np.float32).T
        else:
            sizes = {d.data.size for d in img.darrays}
            if len(sizes) != 1:
                raise ValueError(f"{path}: data arrays of different lengths {sorted(sizes)}.")
            data = np.stack([np.asarray(d.data, dtype=np.float32).ravel() for d in img.darrays])
        mesh, n_mesh = mesh_vertices(path)
        flipped = data.shape[0] == n_mesh if n_mesh else one_2d and data.shape[0] > data.shape[1]
        if (n_mesh and data.shape[1] != n_mesh) or flipped:
            raise ValueError(
                f"{path}: {data.shape[1]} vertices x {data.shape[0]} volumes"
                + (f", but the {mesh} mesh has {n_mesh} vertices" if n_mesh else "")
                + ("; its data look transposed (time x vertices): GIFTI stores vertices first, one data array per "
                   "volume or one (vertices x volumes) array" if flipped else "; give the run's func.gii of that space")
                + ".")
        lengths[path] = data.shape[0]
        parts.append(data)
        models.append(BrainModels.from_surface(np.arange(data.shape[1]), data.shape[1], name))
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{left} has {lengths[left]} volumes but {right} has {lengths[right]}; the hemispheres "
                         "must come from the same run.")
    return np.ascontiguousarray(np.concatenate(parts, axis=1)), models[0] + models[1]


def read_surface(path: str | os.PathLike, structure: str | None = None) -> np.ndarray:
    """Vertex coordinates (n_vertices, 3) in mm of a ``surf.gii`` (checked to be of ``structure``, e.g.
    ``CIFTI_STRUCTURE_CORTEX_LEFT``, when its metadata name one)."""
    img = load_gifti(path)
    if structure is not None and img.darrays:
        _hemisphere(img, path, structure)
    coords = [d.data for d in img.darrays if d.intent == nib.nifti1.intent_codes["NIFTI_INTENT_POINTSET"]]
    if not coords:
        raise ValueError(f"{path}: no NIFTI_INTENT_POINTSET array; give a surf.gii (e.g. midthickness).")
    return np.asarray(coords[0], dtype=np.float64)


def read_surfaces(files: dict, bm: BrainModels) -> dict[str, np.ndarray]:
    """``{"L": surf.gii, "R": surf.gii}`` -> {CIFTI structure: vertex coordinates}, checked against ``bm``."""
    out = {}
    for hemi, path in files.items():
        name = LEFT if hemi == "L" else RIGHT
        coords = read_surface(path, name)
        if name in bm.nvertices and coords.shape[0] != bm.nvertices[name]:
            raise ValueError(f"{path}: {coords.shape[0]} vertices but the run's hemi-{hemi} mesh has "
                             f"{bm.nvertices[name]}; give the surface of the run's space and density (or "
                             "--surface none).")
        out[name] = coords
    return out


def features(bm: BrainModels, surfaces: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Describe each column: ``column, structure, vertex, i, j, k, x, y, z``.

    ``vertex`` is n/a for volume structures, ``i, j, k`` for surface ones; ``x, y, z`` (mm)
    come from the CIFTI affine for voxels and from ``surfaces`` (CIFTI structure name ->
    (n_vertices, 3) coordinates) for vertices, n/a when no surface is given.
    """
    n = len(bm)
    surf = bm.surface_mask
    vertex = np.where(surf, bm.vertex, -1).astype(float)
    vertex[~surf] = np.nan
    ijk = bm.voxel.astype(float)
    ijk[surf] = np.nan
    xyz = np.full((n, 3), np.nan)
    if (~surf).any():
        xyz[~surf] = nib.affines.apply_affine(bm.affine, bm.voxel[~surf])
    for name, coords in (surfaces or {}).items():
        name = BrainModels.to_cifti_brain_structure_name(name)
        sel = surf & (bm.name == name)
        if not sel.any():
            continue
        if coords.shape[0] != bm.nvertices[name]:
            raise ValueError(f"surface of {name} has {coords.shape[0]} vertices but the run's has "
                             f"{bm.nvertices[name]}; give the surface of the run's space and density.")
        xyz[sel] = coords[bm.vertex[sel]]
    as_int = {k: np.array([None if v != v else int(v) for v in a], dtype=object)
              for k, a in (("vertex", vertex), ("i", ijk[:, 0]), ("j", ijk[:, 1]), ("k", ijk[:, 2]))}
    return {"column": np.arange(n), "structure": np.asarray(bm.name, dtype=object), **as_int,
            "x": np.round(xyz[:, 0], 4), "y": np.round(xyz[:, 1], 4), "z": np.round(xyz[:, 2], 4)}


def _keys(bm: BrainModels) -> np.ndarray:
    """One hashable key per column: (structure, vertex) or (structure, i, j, k)."""
    return np.array([f"{n}:{v}" if v >= 0 else f"{n}:{a}:{b}:{c}"
                     for n, v, (a, b, c) in zip(bm.name, bm.vertex, bm.voxel)], dtype=object)


def align_columns(values: np.ndarray, source: BrainModels, target: BrainModels, path,
                  fix: str = "use an atlas in the run's space") -> np.ndarray:
    """Values over ``source``'s columns moved onto ``target``'s, matched by identity (structure and vertex,
    or voxel), 0 where ``source`` has no value. A different volume grid or mesh is an error naming
    ``path`` and ending with ``fix``."""
    if source == target:
        return values
    if source.volume_mask.any() and target.volume_mask.any() and not (
            source.volume_shape == target.volume_shape and np.allclose(source.affine, target.affine, atol=1e-4)):
        raise ValueError(f"{path}: its volume grid differs from the run's; {fix}.")
    for name, n in source.nvertices.items():
        if target.nvertices.get(name, n) != n:
            raise ValueError(f"{path}: its {name} mesh has {n} vertices but the run's has {target.nvertices[name]} "
                             f"(different space or density); {fix}.")
    index = {k: j for j, k in enumerate(_keys(source))}
    pos = np.array([index.get(k, -1) for k in _keys(target)])
    if (pos < 0).all():
        raise ValueError(f"{path}: none of its grayordinates is a grayordinate of the run (different space "
                         f"or density?); {fix}.")
    return np.where(pos >= 0, values[np.maximum(pos, 0)], 0)


UNASSIGNED = "???"  # Workbench's name of the unassigned label


def _apply_keys(data: np.ndarray, keys: dict[int, int], table: dict[int, str], path) -> np.ndarray:
    """Label values mapped through ``keys`` (file key -> region key); values not in ``keys`` -> 0 (no region).
    Non-zero values that ``table`` (the file's label table) does not name are counted in one warning."""
    import warnings

    values, inverse = np.unique(np.asarray(data, dtype=np.int64), return_inverse=True)
    counts = np.bincount(inverse.ravel(), minlength=values.size)
    missing = [(int(v), int(n)) for v, n in zip(values, counts) if v != 0 and int(v) not in table]
    if missing:
        shown = ", ".join(f"{v} ({n})" for v, n in missing[:5]) + (" ..." if len(missing) > 5 else "")
        warnings.warn(f"{path}: {sum(n for _, n in missing)} grayordinate(s) carry values its label table does not "
                      f"name (value (count): {shown}); they are in no region, as Workbench reads them.", stacklevel=3)
    return np.array([keys.get(int(v), 0) for v in values], dtype=np.int64)[inverse.ravel()]


def _free_key(taken: set[int]) -> int:
    """The key Workbench gives a label whose key is taken (``taken`` includes 0): one past the largest when
    the keys are compact (as many holes as negative keys at most), else the smallest free positive key."""
    top = max(taken)
    if 0 < top < len(taken):
        return top + 1
    return next(k for k in itertools.count(1) if k not in taken)


def merge_label_tables(tables: list[dict[int, str]]) -> tuple[list[dict[int, int]], dict[int, str]]:
    """Merge label tables as ``wb_command -cifti-create-label`` does: one region per name.

    Tables are taken in order, each by increasing key: a name seen before joins that region; a new
    name keeps its key when it is free, otherwise takes a free key as Workbench picks it (one past the
    largest key when the keys are compact, else the smallest free positive key). Key 0 and keys named
    ``???`` are no region (``???`` is Workbench's unassigned label; unlike Workbench, key 0 is no
    region whatever its name, e.g. FreeSurfer's ``unknown`` / medial wall: 0 is background).

    Returns
    -------
    keys : list of dict of int to int
        For each table, file key -> region key (0: no region).
    names : dict of int to str
        Region key -> name.
    """
    names: dict[int, str] = {}
    region: dict[str, int] = {UNASSIGNED: 0}
    out = []
    for table in tables:
        keys = {}
        for key in sorted(table):
            name = table[key]
            if key == 0:
                keys[key] = 0
            elif name in region:
                keys[key] = region[name]
            else:
                new = key if key not in names else _free_key(set(names) | {0})
                names[new], region[name], keys[key] = name, new, new
        out.append(keys)
    return out, names


def _label_keys(values: np.ndarray, path) -> np.ndarray:
    """Label values as int64 keys; a value that is not a whole number is an error naming the file."""
    keys = np.rint(values)
    if not np.array_equal(keys, values):
        bad = values[keys != values]
        raise ValueError(f"{path}: label values must be whole numbers (label keys), found {bad[0]:g} and "
                         f"{bad.size - 1} other(s); give an atlas of integer keys.")
    return keys.astype(np.int64)


def read_dlabel(path: str | os.PathLike, bm: BrainModels,
                atlas_counts: dict | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """Labels of a ``dlabel.nii`` on the run's grayordinates and its label table.

    As Workbench reads it, a value that is not a key of the label table, or whose key is named
    ``???``, is in no region; key 0 is never a region.

    Returns
    -------
    labels : numpy.ndarray of int, shape (n_grayordinates,)
        Label key of each column of the run (0: not in the atlas).
    names : dict of int to str
        Label table of the first map (key 0 left out).
    """
    try:
        info = cifti.read_header(path)
        table = info.label_table(0)
    except ValueError as exc:
        raise ValueError(f"{path}: not a dense label file (dlabel.nii with a label map over brain models): "
                         f"{str(exc).removeprefix(f'{path}: ')}") from None
    data = _label_keys(np.asarray(info.memmap()[0], dtype=np.float64) * info.slope + info.inter, path)
    if info.shape[0] > 1:
        import warnings

        warnings.warn(f"{path}: the dlabel has {info.shape[0]} label maps; the first is used.", stacklevel=2)
    (keys,), names = merge_label_tables([table])  # keys sharing a name are one region, as in Workbench
    labels = _apply_keys(data, keys, table, path)
    if atlas_counts is not None:  # grayordinates of each region in the file (the denominator of its coverage)
        atlas_counts.update(zip(*[a.tolist() for a in np.unique(labels[labels != 0], return_counts=True)]))
    return align_columns(labels, info.brain_models, bm, path), names


def read_label_gifti_pair(left, right, bm: BrainModels,
                          atlas_counts: dict | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """Labels of a ``label.gii`` pair on the run's grayordinates, and the merged label table.

    The pair is read as ``wb_command -cifti-create-label -left-label L -right-label R`` reads it: a
    key means what its own file's table names it, and one name is one region (a name in both
    hemispheres is one region over both, whatever its keys; the same key with two names is two
    regions, the right's moved to a free key: see :func:`merge_label_tables`). A value missing from
    its file's table, or whose key is named ``???``, is in no region; key 0 is never a region.
    """
    data, tables, models = [], [], []
    for path, name in ((left, LEFT), (right, RIGHT)):
        img = load_gifti(path)
        if not img.darrays:
            raise ValueError(f"{path}: the GIFTI file has no data arrays.")
        _hemisphere(img, path, name)
        lab = _label_keys(np.asarray(img.darrays[0].data, dtype=np.float64).ravel(), path)
        table = {int(k): "" if v is None else str(v) for k, v in img.labeltable.get_labels_as_dict().items()}
        if (lab != 0).any() and not set(table) - {0}:
            raise ValueError(f"{path}: its vertices have labels but its label table is empty; give a label.gii "
                             "whose label table names its keys.")
        data.append(lab)
        tables.append(table)
        models.append(BrainModels.from_surface(np.arange(lab.size), lab.size, name))
    keys, names = merge_label_tables(tables)
    labels = np.concatenate([_apply_keys(lab, k, t, p) for lab, k, t, p in zip(data, keys, tables, (left, right))])
    if atlas_counts is not None:  # vertices of each region in the files (the denominator of its coverage)
        atlas_counts.update(zip(*[a.tolist() for a in np.unique(labels[labels != 0], return_counts=True)]))
    return align_columns(labels, models[0] + models[1], bm, left), names


def parcellate(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the columns of each label (``wb_command -cifti-parcellate -method MEAN``).

    Parameters
    ----------
    X : numpy.ndarray, shape (n_volumes, n_grayordinates)
    labels : numpy.ndarray of int, shape (n_grayordinates,)
        0 = not in any region.

    Returns
    -------
    R : numpy.ndarray, float32, shape (n_volumes, n_labels)
    values : numpy.ndarray of int
        The label of each column of ``R``, sorted.
    """
    from scipy import sparse

    labels = np.asarray(labels)
    if labels.shape != (X.shape[1],):
        raise ValueError(f"labels of shape {labels.shape} for {X.shape[1]} grayordinates.")
    values, inverse = np.unique(labels[labels != 0], return_inverse=True)
    if values.size == 0:
        raise ValueError("the atlas has no label on the run's grayordinates.")
    cols = np.flatnonzero(labels != 0)
    counts = np.bincount(inverse, minlength=values.size)
    avg = sparse.csr_matrix((1.0 / counts[inverse], (cols, inverse)), shape=(X.shape[1], values.size))
    R = np.empty((X.shape[0], values.size), dtype=np.float32)
    for start in range(0, X.shape[0], 256):  # rows in blocks: X may be a memory map
        R[start:start + 256] = (avg.T @ np.asarray(X[start:start + 256], dtype=np.float64).T).T
    return R, values


def label_features(bm: BrainModels, labels: np.ndarray, values: np.ndarray, names: dict[int, str],
                   surfaces: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Describe atlas columns: ``column, label, name, n_grayordinates, structure`` (the structure holding
    most of the region's grayordinates) and the region's mean ``x, y, z`` where known."""
    per = features(bm, surfaces)
    xyz = np.column_stack([per["x"], per["y"], per["z"]]).astype(float)
    struct, count, centre = [], [], []
    for v in values:
        sel = labels == v
        names_in, n_in = np.unique(bm.name[sel], return_counts=True)
        struct.append(str(names_in[np.argmax(n_in)]))
        count.append(int(sel.sum()))
        centre.append(xyz[sel].mean(axis=0) if np.isfinite(xyz[sel]).all() else np.full(3, np.nan))
    centre = np.array(centre)
    return {"column": np.arange(values.size), "label": np.asarray(values, dtype=int),
            "name": np.array([names.get(int(v), f"region-{int(v)}") for v in values], dtype=object),
            "n_grayordinates": np.array(count), "structure": np.array(struct, dtype=object),
            "x": np.round(centre[:, 0], 3), "y": np.round(centre[:, 1], 3), "z": np.round(centre[:, 2], 3)}


def _check_columns(values: np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype == bool:
        values = values.astype(np.uint8)
    if values.ndim not in (1, 2) or values.shape[-1] != n:
        raise ValueError(f"values of shape {values.shape} do not match the {n} columns; give (n_features,) or "
                         "(n, n_features).")
    return values


def expand_labels(values: np.ndarray, labels: np.ndarray, label_values: np.ndarray) -> np.ndarray:
    """Values over atlas columns painted onto the grayordinates (0 outside every region)."""
    values = _check_columns(values, len(label_values))
    pos = np.searchsorted(label_values, labels)
    inside = (labels != 0) & (pos < len(label_values))
    inside[inside] = np.asarray(label_values)[pos[inside]] == labels[inside]
    out = np.zeros(values.shape[:-1] + labels.shape, dtype=np.result_type(values.dtype, np.float32))
    out[..., inside] = values[..., pos[inside]]
    return out


def to_dscalar(values, bm: BrainModels, names: list[str] | None = None) -> nib.Cifti2Image:
    """A ``dscalar.nii`` of one map ((n_grayordinates,)) or several ((n_maps, n_grayordinates))."""
    values = _check_columns(values, len(bm))
    data = np.atleast_2d(values).astype(np.float32)
    names = names or [f"map-{k}" for k in range(data.shape[0])]
    return nib.Cifti2Image(data, header=(ca.ScalarAxis(names), bm))


def to_dtseries(X, bm: BrainModels, t_r: float, start: float = 0.0) -> nib.Cifti2Image:
    """A ``dtseries.nii`` of (n_volumes, n_grayordinates) rows ``t_r`` seconds apart."""
    X = _check_columns(X, len(bm))
    if X.ndim != 2:
        raise ValueError(f"a dtseries needs (n_volumes, n_grayordinates) values, got shape {X.shape}.")
    return nib.Cifti2Image(np.asarray(X, dtype=np.float32), header=(ca.SeriesAxis(start, t_r, X.shape[0]), bm))


def to_gifti(values, bm: BrainModels, intent: str = "NIFTI_INTENT_NONE") -> dict[str, nib.GiftiImage]:
    """Per-hemisphere ``func.gii`` (``{"L": img, "R": img}``) of a vector or matrix over surface columns.

    Each row becomes one data array (of ``intent``; ``NIFTI_INTENT_TIME_SERIES`` for volumes of a run)
    over every vertex of the hemisphere (0 where the run has no column, e.g. the medial wall of fsLR
    91k). Volume columns are left out, with one warning (:func:`to_dscalar` keeps them).
    """
    values = _check_columns(values, len(bm))
    if bm.volume_mask.any():
        import warnings

        warnings.warn(f"to_gifti: the {int(bm.volume_mask.sum())} volume (subcortical) columns are not written to "
                      "the func.gii files; use to_dscalar to keep every grayordinate.", stacklevel=2)
    rows = np.atleast_2d(values).astype(np.float32)
    out = {}
    for name, hemi, primary in ((LEFT, "L", "CortexLeft"), (RIGHT, "R", "CortexRight")):
        sel = bm.surface_mask & (bm.name == name)
        if not sel.any():
            continue
        full = np.zeros((rows.shape[0], bm.nvertices[name]), dtype=np.float32)
        full[:, bm.vertex[sel]] = rows[:, sel]
        img = nib.GiftiImage(meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": primary}))
        for row in full:
            img.add_gifti_data_array(nib.gifti.GiftiDataArray(row, intent=intent, datatype="NIFTI_TYPE_FLOAT32"))
        out[hemi] = img
    if not out:
        raise ValueError("no cortical surface columns: use to_dscalar for volume-only brain models.")
    return out


def dlabel_table(labels: np.ndarray, names: dict[int, str]) -> dict[int, tuple[str, tuple]]:
    """The label table of :func:`to_dlabel` / :func:`write_dlabel`: ``???`` for 0, every other key present
    named from ``names`` (``region-<key>`` when unnamed), random colours (seeded: the same every time)."""
    rng = np.random.default_rng(0)
    table = {0: ("???", (0.0, 0.0, 0.0, 0.0))}
    for key in sorted(set(int(v) for v in np.unique(labels)) - {0}):
        table[key] = (names.get(key, f"region-{key}"), tuple(rng.random(3).tolist()) + (1.0,))
    return table


def to_dlabel(labels: np.ndarray, bm: BrainModels, names: dict[int, str]) -> nib.Cifti2Image:
    """A ``dlabel.nii`` of integer labels over the grayordinates, with a label table (random colours)."""
    return nib.Cifti2Image(np.asarray(labels, dtype=np.float32)[None],
                           header=(ca.LabelAxis(["labels"], [dlabel_table(labels, names)]), bm))


def write_dlabel(path: str | os.PathLike, labels: np.ndarray, bm: BrainModels, names: dict[int, str]) -> None:
    """Write :func:`to_dlabel`'s file without building nibabel's CIFTI objects."""
    cifti.write_dense(path, np.asarray(labels, dtype=np.float32)[None], bm, names=["labels"],
                      labels=dlabel_table(labels, names))


def brain_models_of(path: str | os.PathLike) -> BrainModels:
    """The brain model axis (columns) of a dense CIFTI file (e.g. a run's ``_desc-brain_mask.dscalar.nii``)."""
    return cifti.read_header(path).brain_models


def read_run(bold: str | os.PathLike,
             bold_right: str | os.PathLike | None = None) -> tuple[np.ndarray, BrainModels, int]:
    """A grayordinate run as float32 (n_volumes, n_grayordinates), its columns (dtseries or GIFTI pair) and
    the number of NaN or infinite values set to 0 (:func:`zero_nonfinite`, one warning)."""
    if is_cifti(bold):
        X, bm, _ = read_dtseries(bold)
    else:
        X, bm = read_gifti_pair(bold, bold_right)
    return X, bm, zero_nonfinite(X, bold if bold_right is None else f"{bold} / {Path(bold_right).name}")


def write_run_array(bold: str | os.PathLike, bold_right: str | os.PathLike | None,
                    path: str | os.PathLike, *, digest: ReadDigest | None = None) -> tuple[BrainModels, int]:
    """Write a grayordinate run as a float32 (n_volumes, n_grayordinates) ``.npy``; return its columns and the
    number of non-finite values set to 0.

    A native float32 dtseries without scaling (fMRIPrep's) is read once, by blocks, into a C-order ``.npy`` (a
    row per volume, as a volume run's masked array: the cleaning node cleans it in place,
    :func:`bidsapp.core.npy.columns_to_npy`), and checked by a sum of each block read
    (:class:`~bidsapp.core.npy.FiniteCheck`); ``digest`` receives the dtseries' SHA-256 from the same read. That
    array is written through a memory map; when the folder has less room than it plus
    :data:`~bidsapp.core.files.ROOM_MARGIN` (a copy-on-write filesystem allocates under the map, where a full disk
    is a ``SIGBUS``), the file's bytes are written as they are instead, column-major, through ``write()``
    (:func:`bidsapp.core.npy.copy_to_npy`: a full disk is then an ``OSError``). Other files, and files with NaN or
    infinite values, go through :func:`read_run` (``digest`` stays unset).
    """
    if is_cifti(bold):
        info = dtseries_header(bold)
        if info.plain_float32:
            check = FiniteCheck(info.dtype)
            if has_room(Path(path).parent, int(np.prod(info.shape)) * np.dtype(info.dtype).itemsize):
                columns_to_npy(bold, info.offset, info.dtype, info.shape, path, digest=digest, each=check)
            else:
                copy_to_npy(bold, info.offset, info.dtype, info.shape, True, path, digest=digest, each=check)
            if check.finite if check.finite is not None else np.isfinite(np.load(path, mmap_mode="r").sum()):
                return info.brain_models, 0
    X, bm, n_bad = read_run(bold, bold_right)
    save_npy(X, path)
    return bm, n_bad


def write_column_mask(bold, bold_right, out: str | os.PathLike) -> tuple[str, int]:
    """Write the run's columns as a ``dscalar.nii`` of ones (the grayordinate counterpart of a brain mask);
    returns the sentence recorded as the run's ``MaskSource`` and the number of columns."""
    columns = dtseries_header(bold) if is_cifti(bold) else read_gifti_pair(bold, bold_right)[1]
    n = columns.shape[1] if is_cifti(bold) else len(columns)
    cifti.write_dense(out, np.ones((1, n), np.float32), columns, names=["columns"])
    what = (f"the CIFTI brain models of {Path(bold).name}" if is_cifti(bold)
            else f"every vertex of {Path(bold).name} and {Path(bold_right).name}")
    return f"no mask computed: {what} define the {n} columns", n


def run_shape(bold: str | os.PathLike, bold_right: str | os.PathLike | None = None) -> tuple[int, int]:
    """(n_volumes, n_grayordinates) of a grayordinate run (header only for CIFTI)."""
    if is_cifti(bold):
        return dtseries_header(bold).shape
    X, bm = read_gifti_pair(bold, bold_right)
    return X.shape[0], len(bm)


def surface_columns(bold: str | os.PathLike, bold_right: str | os.PathLike | None = None) -> tuple[int, int]:
    """(surface vertices, all columns) of a grayordinate run: a CIFTI's header, or the GIFTI pair (all vertices)."""
    if is_cifti(bold):
        bm = dtseries_header(bold).brain_models
        return int(np.count_nonzero(bm.surface_mask)), len(bm)
    n = run_shape(bold, bold_right)[1]
    return n, n


def check_series_step(path: str | os.PathLike, t_r: float, rtol: float = 1e-3) -> None:
    """Warn (one line) when the JSON ``t_r`` disagrees with the dtseries' series step; the JSON wins (BIDS)."""
    import warnings

    series = dtseries_header(path).series
    if abs(series.step - t_r) > rtol * t_r:
        warnings.warn(f"{Path(path).name}: RepetitionTime {t_r:g} s in the JSON sidecar differs from the CIFTI "
                      f"series step ({series.step:g} s); using the JSON value, as BIDS specifies.", stacklevel=2)
