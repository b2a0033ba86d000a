"""Mask computation node."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.core import grayordinates, masks
from bidsapp.core.files import save_nifti


class _ComputeMaskInput(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="4D BOLD run")
    mask_file = traits.Either(None, File(exists=True), default=None, usedefault=True, desc="fMRIPrep brain mask")
    strategy = traits.Enum("fmriprep", "background", "epi", "whole-brain-template", "gm-template",
                           "wm-template", usedefault=True)
    space = traits.Str("MNI152NLin2009cAsym", usedefault=True)
    resample_mask = traits.Bool(False, usedefault=True)
    joined_masks = traits.List(File(exists=True), usedefault=True,
                               desc="the fMRIPrep masks of the other runs of the run's joined trial model: the mask is "
                                    "the intersection of all (the model takes the same columns from every run)")
    bold_right = traits.Either(None, File(exists=True), default=None, usedefault=True,
                               desc="GIFTI runs: the hemi-R func.gii (bold_file is hemi-L)")
    on_grayordinates = traits.Either(None, traits.Bool, default=None, usedefault=True,
                                     desc="the run's column space is grayordinates (default: from the BOLD file)")
    input_stamp = traits.Str("", usedefault=True, desc="identity (size, times, inode) of every input file of "
                             "the run: part of nipype's cache key, so a --work-dir never reuses results "
                             "computed from other input contents (every later node consumes this one's output)")


class _ComputeMaskOutput(TraitedSpec):
    mask_file = File(exists=True, desc="uint8 mask on the BOLD grid")
    mask_source = traits.Str(desc="how the mask was obtained")
    template_file = traits.Either(None, traits.Str)
    started = traits.Str(desc="ISO time (UTC) when this node, the run's first, started")


class ComputeMask(SimpleInterface):
    """Which voxels count: fMRIPrep mask, background, EPI or template mask."""

    input_spec = _ComputeMaskInput
    output_spec = _ComputeMaskOutput

    def _run_interface(self, runtime):
        self._results["started"] = dt.datetime.now(dt.timezone.utc).isoformat()
        gray = self.inputs.on_grayordinates
        if gray is None:
            gray = grayordinates.is_grayordinate_file(self.inputs.bold_file)
        if gray:  # no mask: the brain models are the columns
            out = Path(runtime.cwd) / "mask.dscalar.nii"
            source, _ = grayordinates.write_column_mask(self.inputs.bold_file, self.inputs.bold_right, out)
            self._results.update(mask_file=str(out), mask_source=source, template_file=None)
            return runtime
        mask, affine, source, template = masks.compute_mask(
            self.inputs.bold_file, self.inputs.mask_file, self.inputs.strategy,
            self.inputs.space, self.inputs.resample_mask, self.inputs.joined_masks,
        )
        out = Path(runtime.cwd) / "mask.nii.gz"
        img = nib.Nifti1Image(mask.astype(np.uint8), affine)
        img.header.set_data_dtype(np.uint8)
        save_nifti(img, out)
        self._results.update(mask_file=str(out), mask_source=source, template_file=template)
        return runtime
