"""Voxels: one column per voxel of the run's mask (nilearn's ``NiftiMasker`` order)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import nibabel as nib
import numpy as np

from bidsapp.core import masking
from bidsapp.core.columns.base import ColumnSpace, PathLike, streamed_mean
from bidsapp.core.io import ReadDigest


def load_mask(mask_file: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI mask as (bool array, affine)."""
    img = nib.load(mask_file)
    return np.asanyarray(img.dataobj) > 0, img.affine


class Voxels(ColumnSpace):
    """Columns are the mask's voxels, in C order of their (i, j, k) indices."""

    kind = "voxels"
    what = "mask voxels"

    def __init__(self, mask: np.ndarray, affine: np.ndarray):
        self.mask, self.affine = np.asarray(mask, dtype=bool), np.asarray(affine)

    @classmethod
    def build(cls, bold: PathLike, mask_file: PathLike, **args) -> Voxels:
        return cls(*load_mask(mask_file))

    def transform(self, bold: PathLike, out: PathLike, *, smoothing_fwhm: float | None = None,
                  mean_out: PathLike | None = None, digest: ReadDigest | None = None, **args) -> int:
        with streamed_mean(bold, mean_out) as mean:
            return masking.mask_to_npy(bold, self.mask, out, smoothing_fwhm=smoothing_fwhm, mean=mean,
                                       digest=digest)

    def features(self) -> dict[str, np.ndarray]:
        return masking.voxel_features(self.mask, self.affine)

    @classmethod
    def from_outputs(cls, mask_file: PathLike, image_file: PathLike | None, features: dict) -> Voxels:
        return cls(*load_mask(mask_file))

    @property
    def n_columns(self) -> int:
        return int(self.mask.sum())

    def inverse(self, values) -> nib.Nifti1Image:
        return masking.unmask(self.check_values(values), self.mask, self.affine)

    def inverse_rows(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        return masking.unmask_rows(blocks, self.mask)

    @staticmethod
    def feature_descriptions() -> dict[str, dict]:
        return {
            "column": {"Description": "Column of _timeseries.npy (0-based)."},
            **{c: {"Description": f"Voxel index along axis {n} of the run's mask image (_mask.nii.gz)."}
               for n, c in enumerate("ijk")},
            **{c: {"Description": f"World (scanner/template) {c} coordinate of the voxel centre, from the mask "
                                  "affine.", "Units": "mm"} for c in "xyz"},
        }
