"""Report data node: the small file the participant report draws from (carpet, DVARS, mean image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.core import grayordinates
from bidsapp.core.carpet import carpet_data, quantize
from bidsapp.core.io import load_header, mean_volume, read_tsv

#: most columns of the carpet plot
CARPET_COLUMNS = 2000


class _ReportDataInput(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="the run's BOLD file (volume runs: the mean image's affine)")
    mean_image = traits.Either(None, File(exists=True), default=None, usedefault=True,
                               desc="the masking node's mean image (.npy); None: the mean is read from the BOLD")
    timeseries = File(exists=True, mandatory=True, desc="the masked array before cleaning (n_volumes, n_features)")
    cleaned = File(exists=True, mandatory=True, desc="the cleaned array (n_kept, n_features)")
    samples = File(exists=True, mandatory=True, desc="one row per volume (kept: True / False)")
    on_grayordinates = traits.Either(None, traits.Bool, default=None, usedefault=True,
                                     desc="grayordinate run (no mean image); default: from the BOLD file")


class _ReportDataOutput(TraitedSpec):
    report_data = File(exists=True, desc="report.npz: carpet before / after, DVARS, mean image")


def kept_volumes(samples: str | Path) -> np.ndarray:
    """Volumes of the run that are rows of the cleaned array, from ``_samples.tsv``."""
    header, rows = read_tsv(samples)
    volume, kept = header.index("volume"), header.index("kept")
    return np.array([int(r[volume]) for r in rows if r[kept] == "True"], dtype=int)


def non_steady_state_volumes(samples: str | Path) -> np.ndarray | None:
    """Which volumes are non-steady state (bool, one per row of ``_samples.tsv``; None without the column)."""
    header, rows = read_tsv(samples)
    if "non_steady_state" not in header:
        return None
    column = header.index("non_steady_state")
    return np.array([r[column] == "True" for r in rows], dtype=bool)


class ReportData(SimpleInterface):
    """Compute what the report draws and the outputs do not hold, with bounded memory.

    ``report.npz`` holds ``before`` and ``after`` (n_volumes x up to 2,000 columns, z-scored, as uint8 by
    :func:`quantize`),
    ``columns`` (their indices in the features table), ``dvars_before`` and ``dvars_after`` (standardized
    DVARS over every column) and, for volume runs, ``mean`` (the run's temporal mean, float16) and ``affine``.
    """

    input_spec = _ReportDataInput
    output_spec = _ReportDataOutput

    def _run_interface(self, runtime):
        i = self.inputs
        before = np.load(i.timeseries, mmap_mode="r")
        after = np.load(i.cleaned, mmap_mode="r")
        carpet = carpet_data(before, after, kept_volumes(i.samples), max_columns=CARPET_COLUMNS,
                             non_steady_state=non_steady_state_volumes(i.samples))
        del before, after
        arrays = {"before": quantize(carpet.before), "after": quantize(carpet.after),
                  "columns": carpet.columns, "dvars_before": carpet.dvars_before, "dvars_after": carpet.dvars_after}
        gray = i.on_grayordinates
        if gray is None:
            gray = grayordinates.is_grayordinate_file(i.bold_file)
        if not gray:
            mean = np.load(i.mean_image) if i.mean_image else mean_volume(i.bold_file)  # no second read of the BOLD
            arrays["mean"] = mean.astype(np.float16)  # drawn in grey levels only
            arrays["affine"] = load_header(i.bold_file).affine
        out = Path(runtime.cwd) / "report.npz"
        np.savez_compressed(out, **arrays)
        self._results["report_data"] = str(out)
        return runtime
