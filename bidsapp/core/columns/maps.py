"""Maps: one column per map of a probabilistic atlas (a 4D float image, e.g. DiFuMo), as nilearn's
``NiftiMapsMasker``: the least-squares fit of the maps inside the mask to each volume.

As nilearn with ``resampling_target="data"``, maps on another grid are resampled to the run (linear
interpolation) when allowed (``--resample-mask``); maps with no weight inside the mask are left out with a
warning; the columns are ``pinv(M) @ v`` for the masked maps ``M`` (the min-norm least-squares solution
that ``scipy.linalg.lstsq`` returns), computed volume by volume.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.core.columns.base import ColumnSpace, PathLike, coverage_descriptions, streamed_mean
from bidsapp.core.columns.voxels import load_mask
from bidsapp.core.coverage import map_coverage
from bidsapp.core.files import save_nifti, save_npy
from bidsapp.core.io import ReadDigest, load_header


def is_maps_image(path: PathLike) -> bool:
    """Whether an ``--atlas`` file is probabilistic maps: a 4D NIfTI with more than one volume, or with one
    volume whose weights are not integers (a one-volume integer image is a labels atlas)."""
    name = str(path)
    if not name.endswith((".nii", ".nii.gz")):
        return False
    img = nib.load(path)
    if len(img.shape) != 4:
        return False
    if img.shape[3] > 1:
        return True
    one = np.asanyarray(img.dataobj)[..., 0]  # one volume: maps when its weights are not integer labels
    return not (np.isfinite(one).all() and np.array_equal(one, np.round(one)))


def _check_weights(path: PathLike, data: np.ndarray) -> None:
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: the probabilistic atlas has {int((~np.isfinite(data)).sum())} non-finite weight(s) "
                         "(NaN or inf); give maps with finite weights >= 0.")
    if (data < 0).any():
        raise ValueError(f"{path}: the probabilistic atlas has {int((data < 0).sum())} negative weight(s) "
                         f"(min {float(data.min()):g}); give maps with weights >= 0 (probabilities).")


def _on_grid(path: PathLike, img, shape, affine: np.ndarray, resample: bool) -> bool:
    """Whether the maps are on the run's grid; another grid is refused unless resampling is allowed."""
    from bidsapp.core.masks import describe_grid, same_grid

    if same_grid(img.shape, img.affine, shape, affine):
        return True
    if not resample:
        raise ValueError(f"{path}: atlas grid ({describe_grid(img.shape, img.affine)}) differs from the BOLD grid "
                         f"({describe_grid(shape, affine)}); pass maps in the run's space and resolution, or "
                         "--resample-mask to resample them (linear, as nilearn's NiftiMapsMasker).")
    return False


def check_maps(path: PathLike, shape, affine: np.ndarray, *, resample: bool = False) -> int:
    """Refuse maps with negative or non-finite weights, or on another grid without ``resample``; the number
    of maps."""
    img = nib.load(path)
    _check_weights(path, np.asanyarray(img.dataobj))
    _on_grid(path, img, shape, affine, resample)
    return img.shape[3]


def load_maps(path: PathLike, shape, affine: np.ndarray, *, resample: bool = False) -> np.ndarray:
    """The maps on the run's grid, float64 (nx, ny, nz, n_maps); resampled (linear) only when allowed."""
    from bidsapp.core.masks import resample_to_grid

    img = nib.load(path)
    data = np.asanyarray(img.dataobj).astype(np.float64)
    _check_weights(path, data)
    if _on_grid(path, img, shape, affine, resample):
        return data
    return np.stack([resample_to_grid(data[..., k], img.affine, shape, affine, order=1)
                     for k in range(data.shape[3])], axis=-1)


def map_names(atlas: PathLike, labels: PathLike | None, n: int) -> list[str]:
    """Names of the maps: ``--atlas-labels`` or the TSV beside the atlas (``index``, ``name``; indices 1..n, a
    row 0 ignored, or 0..n-1), ``map-<k>`` (1-based) without a table. A table whose indices are not one per map
    (a table of another atlas, or a 0 = background row read as the first map) raises ``ValueError``."""
    from bidsapp.core.masking import read_label_table

    if labels is None:
        beside = Path(str(atlas).removesuffix(".gz").removesuffix(".nii") + ".tsv")
        labels = beside if beside.is_file() else None
    table = read_label_table(labels) if labels else {}
    if not table:
        return [f"map-{k + 1}" for k in range(n)]
    if table.get(0, "").strip().lower() in ("background", "unknown", "???", "none", "n/a"):
        del table[0]  # a dseg.tsv's background row names no map
    if not table:
        return [f"map-{k + 1}" for k in range(n)]
    keys = set(table)
    if keys == set(range(n)):
        first = 0
    elif keys - {0} == set(range(1, n + 1)):  # 1..n; a row 0 (background, as in a dseg.tsv) names no map
        first = 1
    else:
        raise ValueError(f"{labels}: the label table's indices ({_span(keys)}) do not match the {n} map(s) of "
                         f"{atlas}; give one row per map, index 1..{n} (or 0..{n - 1}).")
    return [table[k + first] for k in range(n)]


def _span(keys: set[int]) -> str:
    """``index 1..5, 8`` style summary of a label table's indices."""
    ordered, parts = sorted(keys), []
    start = prev = ordered[0]
    for k in [*ordered[1:], None]:
        if k is not None and k == prev + 1:
            prev = k
            continue
        parts.append(f"{start}..{prev}" if prev > start else f"{start}")
        if k is not None:
            start = prev = k
    return f"{len(keys)} row(s): index {', '.join(parts)}"


class Maps(ColumnSpace):
    """Columns are the maps of a probabilistic atlas, fitted by least squares inside the mask."""

    kind = "maps"
    what = "probabilistic atlas maps (least-squares fit inside the mask)"
    image = ("probseg", ".nii.gz", None)
    column_prefix = "map"
    regions = True

    def __init__(self, maps: np.ndarray, affine: np.ndarray, names: list[str] | None = None,
                 coverage: np.ndarray | None = None):
        self.maps, self.affine = np.asarray(maps), np.asarray(affine)  # (nx, ny, nz, n_maps), 0 outside the mask
        self.names = names or [f"map-{k + 1}" for k in range(self.maps.shape[3])]
        self.coverage = coverage  # fraction of each map's weight inside the mask (None: not known)

    @classmethod
    def claims(cls, bold: PathLike, atlas: PathLike | None, **options) -> bool:
        from bidsapp.core.grayordinates import is_grayordinate_file

        return atlas is not None and not is_grayordinate_file(bold) and is_maps_image(atlas)

    @classmethod
    def check_inputs(cls, bold: PathLike, *, atlas: PathLike | None = None, resample: bool = False,
                     mask: PathLike | None = None, **options) -> int:
        img = load_header(bold, ndim=4)
        n = check_maps(atlas, img.shape[:3], img.affine, resample=resample)
        map_names(atlas, options.get("atlas_labels"), n)
        return n

    @classmethod
    def build(cls, bold: PathLike, mask_file: PathLike, *, atlas_file: PathLike, atlas_labels: PathLike | None = None,
              resample: bool = False, **args) -> Maps:
        img = load_header(bold, ndim=4)
        maps = load_maps(atlas_file, img.shape[:3], img.affine, resample=resample)
        names = map_names(atlas_file, atlas_labels, maps.shape[3])
        mask, _ = load_mask(mask_file)
        fraction = map_coverage(maps, mask)
        maps = np.where(mask[..., None], maps, 0.0)
        keep = np.abs(maps).sum(axis=(0, 1, 2)) > 0
        if not keep.any():
            raise ValueError(f"{atlas_file}: no map has weight inside the run's mask.")
        if not keep.all():
            warnings.warn(f"{atlas_file}: {int((~keep).sum())} map(s) with no weight inside the mask left out "
                          f"({', '.join(n for n, k in zip(names, keep) if not k)}), as nilearn's NiftiMapsMasker.",
                          stacklevel=2)
        return cls(maps[..., keep], img.affine, [n for n, k in zip(names, keep) if k], fraction[keep])

    def _support(self) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        where = np.nonzero((self.maps != 0).any(axis=3))
        return where, self.maps[where]  # (n_support, n_maps)

    def transform(self, bold: PathLike, out: PathLike, *, smoothing_fwhm: float | None = None,
                  mean_out: PathLike | None = None, digest: ReadDigest | None = None, **args) -> int:
        from bidsapp.core import masking

        where, M = self._support()
        with streamed_mean(bold, mean_out) as mean:
            X, n_bad = masking.apply_weights(bold, where, np.linalg.pinv(M), (self.maps != 0).any(axis=3),
                                             smoothing_fwhm=smoothing_fwhm, what="maps", mean=mean, digest=digest)
        save_npy(X, out)
        return n_bad

    def features(self) -> dict[str, np.ndarray]:
        n = self.maps.shape[3]
        flat = self.maps.reshape(-1, n)
        peak = np.array(np.unravel_index(np.argmax(flat, axis=0), self.maps.shape[:3])).T
        ijk = np.indices(self.maps.shape[:3]).reshape(3, -1)
        centroid = (ijk @ flat) / flat.sum(axis=0)
        peak_xyz = nib.affines.apply_affine(self.affine, peak)
        cen_xyz = nib.affines.apply_affine(self.affine, centroid.T)
        table = {"column": np.arange(n), "name": np.array(self.names, dtype=object),
                 **{f"peak_{c}": np.round(peak_xyz[:, a], 3) for a, c in enumerate("xyz")},
                 **{f"centroid_{c}": np.round(cen_xyz[:, a], 3) for a, c in enumerate("xyz")}}
        if self.coverage is not None:
            table["coverage"] = np.round(self.coverage, 6)
        return table

    def save_image(self, path: PathLike) -> str:
        save_nifti(nib.Nifti1Image(self.maps.astype(np.float32), self.affine), path)
        return str(path)

    @classmethod
    def from_outputs(cls, mask_file: PathLike, image_file: PathLike | None, features: dict) -> Maps:
        img = nib.load(image_file)
        keep = [int(c) for c in features["column"]]
        return cls(np.asanyarray(img.dataobj)[..., keep].astype(np.float64), img.affine,
                   [str(n) for n in features.get("name", [])] or None)

    @property
    def n_columns(self) -> int:
        return self.maps.shape[3]

    def inverse(self, values) -> nib.Nifti1Image:
        """The maps weighted by the values, summed (nilearn's ``signals_to_img_maps``)."""
        values = self.check_values(values)
        where, M = self._support()
        data = np.zeros(self.maps.shape[:3] + values.shape[:-1], dtype=np.result_type(values.dtype, np.float32))
        data[where] = M @ values.T
        return nib.Nifti1Image(data, self.affine)

    def inverse_rows(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        where, M = self._support()
        vol = np.zeros(self.maps.shape[:3], dtype=np.float32)
        for block in blocks:
            for row in np.asarray(block):
                vol[where] = M @ self.check_values(row)
                yield vol

    @classmethod
    def memory_terms(cls, n_volumes: int, n_columns: int, support_voxels: int) -> dict[str, int]:
        """The maps, their pseudo-inverse and its SVD (float64 each) in masking; the maps in the sink."""
        maps = 8 * max(1, n_columns) * support_voxels
        return {"masking": 5 * maps, "derivatives": 2 * maps}

    @staticmethod
    def feature_descriptions() -> dict[str, dict]:
        return {
            "column": {"Description": "Column of _timeseries.npy (0-based)."},
            "name": {"Description": "Name of the map (--atlas-labels or the TSV beside the atlas; map-<k> otherwise)."},
            **{f"peak_{c}": {"Description": f"World {c} coordinate of the map's largest weight on the run's grid.",
                             "Units": "mm"} for c in "xyz"},
            **{f"centroid_{c}": {"Description": f"World {c} coordinate of the map's centre of mass (weights inside "
                                                "the mask).", "Units": "mm"} for c in "xyz"},
            **coverage_descriptions("map's total weight on the run's grid"),
        }
