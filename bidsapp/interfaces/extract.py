"""Masking node: 4D BOLD -> samples x features (voxels or atlas regions)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.core import grayordinates, masking
from bidsapp.core.io import load_header, save_nifti, save_npy, write_tsv


class _ExtractInput(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True)
    mask_file = File(exists=True, mandatory=True)
    smoothing_fwhm = traits.Either(None, traits.Float, default=None, usedefault=True)
    atlas_file = traits.Either(None, File(exists=True), default=None, usedefault=True)
    atlas_labels = traits.Either(None, File(exists=True), default=None, usedefault=True)
    resample_mask = traits.Bool(False, usedefault=True)
    bold_right = traits.Either(None, File(exists=True), default=None, usedefault=True,
                               desc="GIFTI runs: the hemi-R func.gii (bold_file is hemi-L)")
    atlas_right = traits.Either(None, File(exists=True), default=None, usedefault=True,
                                desc="GIFTI runs: the hemi-R label.gii (atlas_file is hemi-L)")
    surfaces = traits.Dict(value={}, usedefault=True, desc="grayordinate runs: {'L', 'R'} -> surf.gii (x, y, z)")


class _ExtractOutput(TraitedSpec):
    timeseries = File(exists=True, desc="float32 (float64 for float64 BOLD) (n_volumes, n_features) .npy")
    features = File(exists=True, desc="features table (TSV)")
    atlas_on_grid = traits.Either(None, File(exists=True), desc="atlas resampled to the run (atlas mode)")
    n_nonfinite = traits.Int(desc="non-finite values set to 0 (NiftiMasker policy)")


class ExtractSignals(SimpleInterface):
    """Stream the BOLD run into a float32 array, voxel-wise or per atlas region."""

    input_spec = _ExtractInput
    output_spec = _ExtractOutput

    def _run_interface(self, runtime):
        cwd = Path(runtime.cwd)
        bold = self.inputs.bold_file
        if grayordinates.is_grayordinate_file(bold):
            return self._grayordinates(runtime, cwd)
        img = load_header(bold, ndim=4)
        mask_img = nib.load(self.inputs.mask_file)
        mask = np.asanyarray(mask_img.dataobj) > 0
        fwhm = self.inputs.smoothing_fwhm
        atlas_out = None
        if self.inputs.atlas_file:
            labels = masking.load_labels(self.inputs.atlas_file, img.shape[:3], img.affine,
                                         resample=self.inputs.resample_mask)
            labels = np.where(mask, labels, 0)
            X, values, n_bad = masking.apply_labels(bold, labels, smoothing_fwhm=fwhm, return_nonfinite=True)
            names = masking.read_label_table(self.inputs.atlas_labels) if self.inputs.atlas_labels else None
            table = masking.label_features(labels, img.affine, values, names)
            atlas_out = str(cwd / "atlas_on_grid.nii.gz")
            save_nifti(nib.Nifti1Image(labels.astype(np.int32), img.affine), atlas_out)
        else:
            n_bad = masking.mask_to_npy(bold, mask, cwd / "timeseries.npy", smoothing_fwhm=fwhm)
            table = masking.voxel_features(mask, img.affine)
        if atlas_out is not None:
            save_npy(X, cwd / "timeseries.npy")
        write_tsv(cwd / "features.tsv", table)
        self._results.update(timeseries=str(cwd / "timeseries.npy"), features=str(cwd / "features.tsv"),
                             atlas_on_grid=atlas_out, n_nonfinite=n_bad)
        return runtime

    def _grayordinates(self, runtime, cwd: Path):
        """CIFTI-2 / GIFTI run: grayordinates (or atlas labels) as columns."""
        i = self.inputs
        atlas_out = None
        if i.atlas_file:
            X, bm, n_bad = grayordinates.read_run(i.bold_file, i.bold_right)
            surfaces = grayordinates.read_surfaces(i.surfaces, bm)
            if grayordinates.is_cifti(i.bold_file):
                labels, names = grayordinates.read_dlabel(i.atlas_file, bm)
            else:
                labels, names = grayordinates.read_label_gifti_pair(i.atlas_file, i.atlas_right, bm)
            if i.atlas_labels:
                names.update(masking.read_label_table(i.atlas_labels))
            X, values = grayordinates.parcellate(X, labels)
            table = grayordinates.label_features(bm, labels, values, names, surfaces)
            atlas_out = str(cwd / "atlas_on_grid.dlabel.nii")
            grayordinates.write_dlabel(atlas_out, labels, bm, names)
            save_npy(X, cwd / "timeseries.npy")
        else:
            bm, n_bad = grayordinates.write_run_array(i.bold_file, i.bold_right, cwd / "timeseries.npy")
            table = grayordinates.features(bm, grayordinates.read_surfaces(i.surfaces, bm))
        write_tsv(cwd / "features.tsv", table)
        self._results.update(timeseries=str(cwd / "timeseries.npy"), features=str(cwd / "features.tsv"),
                             atlas_on_grid=atlas_out, n_nonfinite=n_bad)
        return runtime
