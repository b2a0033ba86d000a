"""ROI masks: one column per binary mask file (a localizer's FFA, PPA, ...), the mean of its voxels in the run's
mask. ROIs may overlap (each column is its own ROI's mean), unlike the regions of one label atlas."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.core.columns.base import PathLike
from bidsapp.core.columns.spheres import Spheres
from bidsapp.core.columns.voxels import load_mask
from bidsapp.core.io import load_header


def roi_name(path: PathLike) -> str:
    """A ROI's column name from its file name: the ``label-`` or ``desc-`` entity, else the stem
    (``sub-01_space-MNI_label-FFA_mask.nii.gz`` -> ``FFA``, ``lh_ppa.nii.gz`` -> ``lh_ppa``)."""
    stem = re.sub(r"\.nii(\.gz)?$", "", Path(path).name)
    for entity in ("label", "desc"):
        found = re.search(rf"(?:^|_){entity}-([A-Za-z0-9]+)", stem)
        if found:
            return found.group(1)
    return stem


def _check_grid(path: PathLike, found: tuple[int, ...], found_affine: np.ndarray, affine: np.ndarray,
                shape: tuple[int, ...]) -> None:
    """One line naming the file when a ROI's shape or affine is not the run's (a same-shaped ROI with another
    affine, e.g. flipped or shifted, would otherwise be read as the wrong voxels)."""
    if len(found) == 4 and tuple(found[:3]) == tuple(shape):
        raise ValueError(f"{path}: a ROI mask is one 3D volume, this file has {found[3]} volumes; give one file per "
                         "ROI (e.g. split it with nilearn.image.index_img), or use --atlas for probabilistic maps.")
    if tuple(found) != tuple(shape):
        what = f"shape {tuple(found)} vs the run's {tuple(shape)}"
    elif not np.allclose(found_affine, affine, atol=1e-3):
        what = (f"same shape {tuple(shape)}, but its affine differs from the run's: "
                f"{_grid(found_affine)} vs {_grid(affine)}")
    else:
        return
    raise ValueError(f"{path}: the ROI is not on the run's grid ({what}); resample it to the run's space and "
                     "resolution (e.g. with nilearn.image.resample_to_img, interpolation='nearest'): "
                     "--resample-mask does not apply to ROI masks.")


def _grid(affine: np.ndarray) -> str:
    """Voxel size, origin and axis codes of an affine, for messages."""
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return (f"voxel size {np.round(zooms, 3).tolist()} mm, origin {np.round(affine[:3, 3], 3).tolist()} mm, "
            f"axes {''.join(nib.aff2axcodes(affine))}")


def read_roi(path: PathLike, affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A ROI file as a boolean volume on the run's grid; one line naming the file when it is not binary or
    not on that grid."""
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    _check_grid(path, data.shape, img.affine, affine, shape)
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise ValueError(f"{path}: the ROI holds {int((~np.isfinite(data)).sum())} NaN or infinite value(s); a ROI "
                         "mask holds 0 and 1 only: set them to 0 (outside the ROI) or 1.")
    values = np.unique(data)
    if not set(values.tolist()) <= {0, 1}:
        raise ValueError(f"{path}: a ROI mask holds 0 and 1 only (found {values[:5].tolist()}...); give a binary "
                         "mask, or use --atlas for a label or probabilistic atlas.")
    return data > 0


class ROIs(Spheres):
    """Columns are ROI mask files: the mean of the run-mask voxels each ROI holds (overlaps allowed)."""

    kind = "rois"
    what = "ROI masks (mean of their mask voxels)"
    column_prefix = "roi"
    options = ("roi_masks", "spheres")  # spheres: read only to refuse both

    @classmethod
    def claims(cls, bold: PathLike, atlas: PathLike | None, *, roi_masks=None, **options) -> bool:
        return bool(roi_masks)

    @classmethod
    def check_inputs(cls, bold: PathLike, *, atlas: PathLike | None = None, mask: PathLike | None = None,
                     roi_masks=None, spheres: PathLike | None = None, **options) -> int:
        if atlas is not None or spheres is not None:
            raise ValueError("--roi-masks and --atlas / --spheres both define the columns; give one of them.")
        roi_masks = [str(p) for p in roi_masks]
        names = [roi_name(p) for p in roi_masks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"--roi-masks: two files are named {twice[0]!r}; ROI names come from the label- / desc- "
                             "entity or the file name, and each column needs its own.")
        if mask is not None:
            img = load_header(bold, ndim=4)
            brain, _ = load_mask(mask)
            cls._members(roi_masks, brain, img.affine)
        return len(names)

    @staticmethod
    def _members(files, brain: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nx, ny, nz, n_rois) ROI ∩ mask, and each ROI's voxel count before the mask."""
        rois = [read_roi(p, affine, brain.shape) for p in files]
        members = np.stack([r & brain for r in rois], axis=3)
        for path, roi, inside in zip(files, rois, members.sum(axis=(0, 1, 2))):
            if inside == 0:
                raise ValueError(f"{path}: the ROI has no voxel inside the run's mask ({int(roi.sum())} voxels "
                                 "outside it); check its space, or use a wider mask (--mask-strategy).")
        return members, np.array([int(r.sum()) for r in rois])

    @classmethod
    def build(cls, bold: PathLike, mask_file: PathLike, *, roi_masks, **args) -> ROIs:
        roi_masks = [str(p) for p in roi_masks]
        brain, affine = load_mask(mask_file)
        members, total = cls._members(roi_masks, brain, affine)
        n = members.sum(axis=(0, 1, 2))
        centroids = np.array([nib.affines.apply_affine(affine, np.argwhere(members[..., k]).mean(axis=0))
                              for k in range(members.shape[3])])
        table = {"column": np.arange(len(roi_masks)), "name": np.array([roi_name(p) for p in roi_masks], dtype=object),
                 "file": np.array([Path(p).name for p in roi_masks], dtype=object),
                 "x": centroids[:, 0], "y": centroids[:, 1], "z": centroids[:, 2], "n_voxels": n,
                 "fraction_in_mask": n / total}
        return cls(members, affine, table, None, True)

    @staticmethod
    def feature_descriptions() -> dict[str, dict]:
        return {
            "column": {"Description": "Column of _timeseries.npy (0-based)."},
            "name": {"Description": "Name of the ROI (its file's label- or desc- entity, else the file name)."},
            "file": {"Description": "The ROI mask file (--roi-masks)."},
            **{c: {"Description": f"World {c} coordinate of the centroid of the ROI's voxels in the run's mask.",
                   "Units": "mm"} for c in "xyz"},
            "n_voxels": {"Description": "Voxels of the run's mask in the ROI (mean of their signals)."},
            "fraction_in_mask": {"Description": "Share of the ROI's voxels inside the run's mask (the rest are "
                                                "left out of its mean)."},
        }
