"""Spheres: one column per seed, the mean of the mask's voxels within a radius (nilearn's ``NiftiSpheresMasker``).

A sphere holds the mask voxels whose centre is within ``radius`` mm of the seed, plus the voxel nearest
to the seed (rounded voxel coordinates) when it is in the mask, plus -- as nilearn does -- the first mask
voxel whose world coordinates truncated to integers equal the seed's. Without a radius a sphere is the
seed's voxel only. Spheres sharing a voxel are refused unless overlap is allowed; the inverse spreads a
voxel shared by several spheres as their mean (nilearn's ``inverse_transform``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import nibabel as nib
import numpy as np
from scipy import sparse

from bidsapp.core.columns.base import ColumnSpace, PathLike, coverage_descriptions, streamed_mean
from bidsapp.core.columns.voxels import load_mask
from bidsapp.core.files import save_nifti, save_npy
from bidsapp.core.io import ReadDigest, load_header
from bidsapp.core.tsv import read_tsv


def read_seeds(path: PathLike) -> tuple[np.ndarray, list[str]]:
    """A seeds table (TSV; columns ``x``, ``y``, ``z`` in mm, optional ``name``) as (n, 3) world coordinates
    and names (``seed-<row>`` when unnamed). Raises ``ValueError`` naming the file and the fix."""
    header, rows = read_tsv(path)
    missing = [c for c in "xyz" if c not in header]
    if missing:
        raise ValueError(f"{path}: a --spheres table needs the columns x, y, z (mm; name optional); "
                         f"{', '.join(missing)} missing (header: {header}).")
    if not rows:
        raise ValueError(f"{path}: the --spheres table has no seed.")
    xyz = np.empty((len(rows), 3))
    for n, row in enumerate(rows):
        try:
            xyz[n] = [float(row[header.index(c)]) for c in "xyz"]
        except ValueError:
            raise ValueError(f"{path}: line {n + 2}: x, y, z must be numbers (mm).") from None
    if not np.isfinite(xyz).all():
        raise ValueError(f"{path}: x, y, z must be finite numbers (mm).")
    names = [row[header.index("name")] if "name" in header and row[header.index("name")] not in ("", "n/a")
             else f"seed-{n + 1}" for n, row in enumerate(rows)]
    seen: dict[str, int] = {}
    for n, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{path}: lines {seen[name] + 2} and {n + 2} both name a seed '{name}'; "
                             "give each seed its own name (columns are told apart by name).")
        seen[name] = n
    return xyz, names


def _world(ijk: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Voxel -> world as nilearn's ``coord_transform`` (the affine times homogeneous coordinates)."""
    return np.dot(affine, np.c_[ijk, np.ones(len(ijk))].T)[:3].T


def sphere_members(mask: np.ndarray, affine: np.ndarray, seeds: np.ndarray, radius: float | None,
                   allow_overlap: bool, names: list[str], source: PathLike = "--spheres") -> sparse.csr_matrix:
    """Which mask voxels (C order) each sphere holds: a boolean (n_seeds, n_mask_voxels) sparse matrix.

    Raises
    ------
    ValueError
        A sphere with no voxel in the mask, or two spheres sharing a voxel without ``allow_overlap``.
    """
    ijk = np.argwhere(mask)
    world = _world(ijk, affine)
    index = {tuple(v): n for n, v in enumerate(ijk.tolist())}
    truncated = world.astype(int)
    rows, cols = [], []
    for s, seed in enumerate(seeds):
        near = np.round(_world(seed[None], np.linalg.inv(affine))[0]).astype(int)
        members = set(np.flatnonzero(((world - seed) ** 2).sum(axis=1) <= radius**2).tolist()) if radius else set()
        if tuple(near.tolist()) in index:
            members.add(index[tuple(near.tolist())])
        same = np.flatnonzero((truncated == np.asarray(seed).astype(int)).all(axis=1))
        if same.size:
            members.add(int(same[0]))
        if not members:
            raise ValueError(f"{source}: sphere '{names[s]}' at ({_mm(seed)}) mm has no voxel inside the run's mask; "
                             "move the seed into the brain, enlarge --sphere-radius or use another mask.")
        rows += [s] * len(members)
        cols += sorted(members)
    A = sparse.csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(len(seeds), len(ijk)))
    if not allow_overlap:
        _check_overlap(A, names, source)
    return A


def sphere_sizes(shape: tuple, affine: np.ndarray, seeds: np.ndarray, radius: float | None) -> np.ndarray:
    """Voxels of the whole grid in each sphere (the seed's voxel counts even outside the grid's mask): the
    denominator of a sphere's coverage."""
    sizes = np.ones(len(seeds), dtype=np.int64)
    if not radius:
        return sizes
    inv = np.linalg.inv(affine)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    for s, seed in enumerate(seeds):  # the grid voxels of a box around the seed, then the distance
        centre = _world(seed[None], inv)[0]
        half = np.ceil(radius / zooms) + 1
        lo = np.maximum(np.floor(centre - half), 0).astype(int)
        hi = np.minimum(np.ceil(centre + half), np.asarray(shape) - 1).astype(int)
        if (hi < lo).any():
            continue
        ijk = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
        sizes[s] = max(1, int((((_world(ijk, affine) - seed) ** 2).sum(axis=1) <= radius**2).sum()))
    return sizes


def _mm(xyz) -> str:
    return ", ".join(f"{v:g}" for v in xyz)


def _check_overlap(A: sparse.csr_matrix, names: list[str], source) -> None:
    counts = np.asarray(A.sum(axis=0)).ravel()
    if (counts >= 2).any():
        shared = int(np.flatnonzero(counts >= 2)[0])
        a, b = np.flatnonzero(A[:, shared].toarray().ravel())[:2]
        raise ValueError(f"{source}: spheres '{names[a]}' and '{names[b]}' overlap ({int((counts >= 2).sum())} "
                         "shared voxel(s)); move the seeds apart, reduce --sphere-radius or pass --allow-overlap.")


class Spheres(ColumnSpace):
    """Columns are spheres around seeds: the mean of the mask voxels each sphere holds."""

    kind = "spheres"
    what = "spheres around seeds (mean of their mask voxels)"
    image = ("probseg", ".nii.gz", None)
    column_prefix = "sphere"
    regions = True
    options = ("spheres", "sphere_radius", "allow_overlap")

    def __init__(self, members: np.ndarray, affine: np.ndarray, table: dict | None = None,
                 radius: float | None = None, allow_overlap: bool = False):
        self.members, self.affine = np.asarray(members, dtype=bool), np.asarray(affine)  # (nx, ny, nz, n_seeds)
        self.table, self.radius, self.allow_overlap = table or {}, radius, allow_overlap

    @classmethod
    def claims(cls, bold: PathLike, atlas: PathLike | None, *, spheres: PathLike | None = None, **options) -> bool:
        return spheres is not None

    @classmethod
    def check_inputs(cls, bold: PathLike, *, atlas: PathLike | None = None, resample: bool = False,
                     mask: PathLike | None = None, spheres: PathLike | None = None,
                     sphere_radius: float | None = None, allow_overlap: bool = False, **options) -> int:
        if atlas is not None:
            raise ValueError("--spheres and --atlas both define the columns; give one of them.")
        if sphere_radius is not None and not (math.isfinite(sphere_radius) and sphere_radius >= 0):
            raise ValueError(f"--sphere-radius {sphere_radius}: give a radius >= 0 mm.")
        seeds, names = read_seeds(spheres)
        if mask is not None:
            img = load_header(bold, ndim=4)
            mask_data, _ = load_mask(mask)
            if mask_data.shape == img.shape[:3]:
                sphere_members(mask_data, img.affine, seeds, sphere_radius, allow_overlap, names, spheres)
        return len(names)

    @classmethod
    def build(cls, bold: PathLike, mask_file: PathLike, *, spheres: PathLike, sphere_radius: float | None = None,
              allow_overlap: bool = False, **args) -> Spheres:
        mask, affine = load_mask(mask_file)
        seeds, names = read_seeds(spheres)
        A = sphere_members(mask, affine, seeds, sphere_radius, allow_overlap, names, spheres)
        members = np.zeros(mask.shape + (len(names),), dtype=bool)
        ijk = np.argwhere(mask)
        for s in range(len(names)):
            members[tuple(ijk[A[s].indices].T) + (s,)] = True
        n_voxels = np.asarray(A.sum(axis=1)).ravel()
        table = {"column": np.arange(len(names)), "name": np.array(names, dtype=object),
                 "x": seeds[:, 0], "y": seeds[:, 1], "z": seeds[:, 2], "n_voxels": n_voxels,
                 "coverage": np.round(np.minimum(1.0, n_voxels / sphere_sizes(mask.shape, affine, seeds,
                                                                           sphere_radius)), 6)}
        return cls(members, affine, table, sphere_radius, allow_overlap)

    def _matrix(self) -> tuple[tuple[np.ndarray, ...], sparse.csr_matrix]:
        """The union of the spheres (voxel indices, C order) and the (n_seeds, n_union) membership matrix."""
        union = self.members.any(axis=3)
        where = np.nonzero(union)
        return where, sparse.csr_matrix(self.members[where].T.astype(np.float64))

    def transform(self, bold: PathLike, out: PathLike, *, smoothing_fwhm: float | None = None,
                  mean_out: PathLike | None = None, digest: ReadDigest | None = None, **args) -> int:
        from bidsapp.core import masking

        where, A = self._matrix()
        weights = sparse.diags(1.0 / np.asarray(A.sum(axis=1)).ravel()) @ A
        with streamed_mean(bold, mean_out) as mean:
            X, n_bad = masking.apply_weights(bold, where, weights, self.members.any(axis=3),
                                             smoothing_fwhm=smoothing_fwhm, what="spheres", mean=mean,
                                             digest=digest)
        save_npy(X, out)
        return n_bad

    def features(self) -> dict[str, np.ndarray]:
        return self.table

    def save_image(self, path: PathLike) -> str:
        save_nifti(nib.Nifti1Image(self.members.astype(np.uint8), self.affine), path)
        return str(path)

    @classmethod
    def from_outputs(cls, mask_file: PathLike, image_file: PathLike | None, features: dict) -> Spheres:
        img = nib.load(image_file)
        keep = [int(c) for c in features["column"]]
        return cls(np.asanyarray(img.dataobj)[..., keep] > 0, img.affine)

    @property
    def n_columns(self) -> int:
        return self.members.shape[3]

    def _spread(self) -> tuple[tuple[np.ndarray, ...], sparse.csr_matrix]:
        """(union voxels, (n_union, n_seeds) weights): a voxel in k spheres gets 1/k of each (nilearn)."""
        where, A = self._matrix()
        share = 1.0 / np.maximum(1, np.asarray(A.sum(axis=0)).ravel())
        return where, (A @ sparse.diags(share)).T.tocsr()

    def inverse(self, values) -> nib.Nifti1Image:
        values = self.check_values(values)
        where, W = self._spread()
        data = np.zeros(self.members.shape[:3] + values.shape[:-1], dtype=np.result_type(values.dtype, np.float32))
        data[where] = (W @ values.T)
        return nib.Nifti1Image(data, self.affine)

    def inverse_rows(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        where, W = self._spread()
        vol = np.zeros(self.members.shape[:3], dtype=np.float32)
        for block in blocks:
            for row in np.asarray(block):
                vol[where] = W @ self.check_values(row)
                yield vol

    @classmethod
    def memory_terms(cls, n_volumes: int, n_columns: int, support_voxels: int) -> dict[str, int]:
        """The membership image (one byte per grid voxel and seed is bounded by the mask) and its matrix."""
        return {"masking": 2 * max(1, n_columns) * support_voxels, "derivatives": max(1, n_columns) * support_voxels}

    @staticmethod
    def feature_descriptions() -> dict[str, dict]:
        return {
            "column": {"Description": "Column of _timeseries.npy (0-based)."},
            "name": {"Description": "Name of the seed (the --spheres table's name column; seed-<row> when absent)."},
            **{c: {"Description": f"World {c} coordinate of the seed, as given in the --spheres table.", "Units": "mm"}
               for c in "xyz"},
            "n_voxels": {"Description": "Voxels of the run's mask in the sphere (mean of their signals)."},
            **coverage_descriptions("sphere's voxels on the run's grid (n_voxels / voxels of the grid within the "
                                    "radius)"),
        }
