"""Report data node: the small file the participant report draws from (carpet, DVARS, mean image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.core import grayordinates
from bidsapp.core.io import load_header, mean_volume


class _ReportDataInput(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="the run's BOLD file (volume runs: the mean image's affine)")
    mean_image = traits.Either(None, File(exists=True), default=None, usedefault=True,
                               desc="the masking node's mean image (.npy); None: the mean is read from the BOLD")
    carpet = File(exists=True, mandatory=True, desc="the cleaning node's carpet.npz (carpet, DVARS traces)")
    on_grayordinates = traits.Either(None, traits.Bool, default=None, usedefault=True,
                                     desc="grayordinate run (no mean image); default: from the BOLD file")


class _ReportDataOutput(TraitedSpec):
    report_data = File(exists=True, desc="report.npz: carpet before / after, DVARS, mean image")


class ReportData(SimpleInterface):
    """Gather what the report draws and the outputs do not hold into one compressed file.

    ``report.npz`` holds the cleaning node's carpet (:meth:`bidsapp.core.carpet.CarpetData.arrays`: ``before``
    and ``after``, n_volumes x up to 2,000 columns as uint8, ``columns``, and the QC's ``dvars_before`` and
    ``dvars_after`` traces, computed once by the cleaning node) and, for volume runs, ``mean`` (the run's
    temporal mean, float32) and ``affine``.
    """

    input_spec = _ReportDataInput
    output_spec = _ReportDataOutput

    def _run_interface(self, runtime):
        i = self.inputs
        with np.load(i.carpet) as carpet:
            arrays = dict(carpet)
        gray = i.on_grayordinates
        if gray is None:
            gray = grayordinates.is_grayordinate_file(i.bold_file)
        if not gray:
            mean = np.load(i.mean_image) if i.mean_image else mean_volume(i.bold_file)  # no second read of the BOLD
            arrays["mean"] = mean.astype(np.float32)  # float16 overflowed above 65504 (+45 kB compressed)
            arrays["affine"] = load_header(i.bold_file).affine
        out = Path(runtime.cwd) / "report.npz"
        np.savez_compressed(out, **arrays)
        self._results["report_data"] = str(out)
        return runtime
