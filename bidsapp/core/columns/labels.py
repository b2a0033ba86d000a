"""Labels: one column per region of an integer atlas (nilearn's ``NiftiLabelsMasker``, mean)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import nibabel as nib
import numpy as np

from bidsapp.core import masking
from bidsapp.core.columns.base import ColumnSpace, PathLike, coverage_descriptions, streamed_mean
from bidsapp.core.columns.voxels import load_mask
from bidsapp.core.coverage import label_coverage
from bidsapp.core.files import save_nifti, save_npy
from bidsapp.core.io import ReadDigest, load_header

REGION = "centroid of the region"


class Labels(ColumnSpace):
    """Columns are the atlas regions inside the mask, sorted by label value."""

    kind = "labels"
    what = "atlas regions"
    image = ("dseg", ".nii.gz", None)
    column_prefix = "region"
    regions = True

    def __init__(self, labels: np.ndarray, affine: np.ndarray, values: np.ndarray | None = None,
                 names: dict[int, str] | None = None, coverage: dict[int, float] | None = None):
        self.labels, self.affine = np.asarray(labels), np.asarray(affine)
        self.values = np.unique(self.labels[self.labels != 0]) if values is None else np.asarray(values, np.int64)
        self.names = names or {}
        self.coverage = coverage  # label -> fraction of its voxels inside the mask (None: not known)
        self.outside_mask = np.zeros(0, np.int64)  # atlas labels with no voxel in the mask: not columns

    @classmethod
    def check_inputs(cls, bold: PathLike, *, atlas: PathLike | None = None, resample: bool = False,
                     mask: PathLike | None = None, **options) -> int:
        """An atlas on another grid is refused before the run unless resampling is allowed, and so are values
        that are not integer labels and a label table without ``index`` and ``name``."""
        from bidsapp.core.masks import describe_grid, same_grid

        img, atlas_img = load_header(bold, ndim=4), load_header(atlas)
        data = None
        if str(atlas).endswith((".nii", ".nii.gz")) and len(atlas_img.shape) == 3:
            data = np.asanyarray(atlas_img.dataobj)
            if not (np.isfinite(data).all() and np.array_equal(data, np.round(data))):
                raise ValueError(f"{atlas}: a 3D atlas must hold integer labels (0 = background); for one "
                                 "probabilistic map give a 4D image with one volume.")
        if options.get("atlas_labels"):
            names = masking.read_label_table(options["atlas_labels"])
            if data is not None:
                masking.warn_unnamed_labels(data, names, options["atlas_labels"])
        if not resample and not same_grid(atlas_img.shape, atlas_img.affine, img.shape, img.affine):
            raise ValueError(f"{atlas}: atlas grid ({describe_grid(atlas_img.shape, atlas_img.affine)}) differs from "
                             f"the BOLD grid ({describe_grid(img.shape, img.affine)}); pass an atlas in the run's "
                             "space and resolution, or --resample-mask to resample it (nearest neighbour).")
        return 0

    @classmethod
    def build(cls, bold: PathLike, mask_file: PathLike, *, atlas_file: PathLike, atlas_labels: PathLike | None = None,
              resample: bool = False, **args) -> Labels:
        img = load_header(bold, ndim=4)
        mask, _ = load_mask(mask_file)
        labels = masking.load_labels(atlas_file, img.shape[:3], img.affine, resample=resample)
        names = masking.read_label_table(atlas_labels) if atlas_labels else None
        masked = np.where(mask, labels, 0)
        values = np.unique(masked[masked != 0])
        fraction = label_coverage(labels, masked, values)
        space = cls(masked, img.affine, names=names, coverage=dict(zip(values.tolist(), fraction.tolist())))
        space.outside_mask = np.setdiff1d(np.unique(labels[labels != 0]), values).astype(np.int64)
        return space

    def transform(self, bold: PathLike, out: PathLike, *, smoothing_fwhm: float | None = None,
                  mean_out: PathLike | None = None, digest: ReadDigest | None = None, **args) -> int:
        with streamed_mean(bold, mean_out) as mean:
            X, values, n_bad = masking.apply_labels(bold, self.labels, smoothing_fwhm=smoothing_fwhm,
                                                    return_nonfinite=True, mean=mean, digest=digest)
        self.values = values
        save_npy(X, out)
        return n_bad

    def features(self) -> dict[str, np.ndarray]:
        table = masking.label_features(self.labels, self.affine, self.values, self.names)
        if self.coverage is not None:
            table["coverage"] = np.array([round(self.coverage.get(int(v), np.nan), 6) for v in self.values])
        return table

    def save_image(self, path: PathLike) -> str:
        info = np.iinfo(np.int32)
        small = not self.labels.size or (self.labels.min() >= info.min and self.labels.max() <= info.max)
        dtype = np.int32 if small else np.int64  # a uint32 atlas's labels beyond 2**31 keep their values
        save_nifti(nib.Nifti1Image(self.labels.astype(dtype), self.affine, dtype=dtype), path)
        return str(path)

    @classmethod
    def from_outputs(cls, mask_file: PathLike, image_file: PathLike | None, features: dict) -> Labels:
        img = nib.load(image_file)
        return cls(np.asanyarray(img.dataobj).astype(np.int64), img.affine,
                   np.array([int(v) for v in features["label"]], dtype=np.int64))

    @property
    def n_columns(self) -> int:
        return int(self.values.size)

    def inverse(self, values) -> nib.Nifti1Image:
        return masking.unmask_labels(self.check_values(values), self.labels, self.values, self.affine)

    def inverse_rows(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        return masking.unmask_label_rows(blocks, self.labels, self.values)

    @staticmethod
    def feature_descriptions() -> dict[str, dict]:
        return {
            "column": {"Description": "Column of _timeseries.npy (0-based)."},
            "label": {"Description": "Integer value of the region in the atlas (the _dseg.nii.gz image)."},
            "name": {"Description": "Name of the region (atlas label table; region-<label> when not listed)."},
            **{c: {"Description": f"Voxel index along axis {n} of the {REGION} (fractional)."}
               for n, c in enumerate("ijk")},
            **{c: {"Description": f"World (scanner/template) {c} coordinate of the {REGION}, from the "
                                  "image affine.", "Units": "mm"} for c in "xyz"},
            **coverage_descriptions("voxels of the region on the run's grid"),
        }
