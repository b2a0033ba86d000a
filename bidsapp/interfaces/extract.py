"""Masking node: 4D BOLD -> samples x features, the columns being what the run's column space says."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.core import columns, coverage
from bidsapp.core.io import write_tsv


class _ExtractInput(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True)
    mask_file = File(exists=True, mandatory=True)
    column_space = traits.Either(None, traits.Str, default=None, usedefault=True,
                                 desc="kind of columns (bidsapp.core.columns.KINDS); default: from the inputs")
    column_args = traits.Dict(value={}, usedefault=True, desc="the kind's own arguments (e.g. spheres, radius)")
    smoothing_fwhm = traits.Either(None, traits.Float, default=None, usedefault=True)
    atlas_file = traits.Either(None, File(exists=True), default=None, usedefault=True)
    atlas_labels = traits.Either(None, File(exists=True), default=None, usedefault=True)
    resample_mask = traits.Bool(False, usedefault=True)
    bold_right = traits.Either(None, File(exists=True), default=None, usedefault=True,
                               desc="GIFTI runs: the hemi-R func.gii (bold_file is hemi-L)")
    atlas_right = traits.Either(None, File(exists=True), default=None, usedefault=True,
                                desc="GIFTI runs: the hemi-R label.gii (atlas_file is hemi-L)")
    surfaces = traits.Dict(value={}, usedefault=True, desc="grayordinate runs: {'L', 'R'} -> surf.gii (x, y, z)")
    min_coverage = traits.Float(0.5, usedefault=True, desc="regions less covered by the mask become NaN columns")


class _ExtractOutput(TraitedSpec):
    timeseries = File(exists=True, desc="float32 (float64 for float64 BOLD) (n_volumes, n_features) .npy")
    features = File(exists=True, desc="features table (TSV)")
    column_space = traits.Str(desc="kind of columns")
    atlas_on_grid = traits.Either(None, File(exists=True), desc="the columns image (atlas, maps, spheres) on the run")
    n_nonfinite = traits.Int(desc="non-finite values set to 0 (NiftiMasker policy)")
    nan_columns = traits.List(traits.Int, desc="columns set to NaN by --min-coverage")
    mean_image = traits.Either(None, File(exists=True),
                               desc="volume runs: the run's temporal mean, float32 (nx, ny, nz) .npy, summed while "
                                    "the volumes were streamed (before smoothing); None for grayordinate runs")


class ExtractSignals(SimpleInterface):
    """Stream the BOLD run into a float32 array, one column per column of the run's column space, and (volume
    runs) its temporal mean image from the same stream (``mean.npy``, the report's background)."""

    input_spec = _ExtractInput
    output_spec = _ExtractOutput

    def _run_interface(self, runtime):
        cwd, i = Path(runtime.cwd), self.inputs
        kind = i.column_space or columns.choose_kind(i.bold_file, atlas=i.atlas_file)
        space_cls = columns.get(kind)
        args = dict(i.column_args, atlas_file=i.atlas_file, atlas_labels=i.atlas_labels, atlas_right=i.atlas_right,
                    resample=i.resample_mask, surfaces=dict(i.surfaces))
        space = space_cls.build(i.bold_file, i.mask_file, **args)
        mean_image = None if space_cls.on_grayordinates else cwd / "mean.npy"
        n_bad = space.transform(i.bold_file, cwd / "timeseries.npy", smoothing_fwhm=i.smoothing_fwhm,
                                bold_right=i.bold_right, mean_out=mean_image)
        table = space.features()
        _warn_outside_mask(space, i.bold_file)
        nan_columns = _apply_min_coverage(table, cwd / "timeseries.npy", i.min_coverage, i.bold_file)
        write_tsv(cwd / "features.tsv", table)
        image = space.save_image(cwd / ("columns" + space_cls.image[1])) if space_cls.image else None
        self._results.update(timeseries=str(cwd / "timeseries.npy"), features=str(cwd / "features.tsv"),
                             column_space=kind, atlas_on_grid=image, n_nonfinite=n_bad, nan_columns=nan_columns,
                             mean_image=str(mean_image) if mean_image else None)
        return runtime


def _warn_outside_mask(space, bold_file: str) -> None:
    """One warning naming the atlas regions that have no voxel inside the run's mask (so are not columns)."""
    import warnings

    outside = getattr(space, "outside_mask", None)
    if outside is not None and len(outside):
        warnings.warn(f"{Path(bold_file).name}: {coverage.outside_mask_line(outside, getattr(space, 'names', None))}",
                      stacklevel=2)


def _apply_min_coverage(table: dict, timeseries: Path, min_coverage: float, bold_file: str) -> list[int]:
    """``--min-coverage``: poorly covered regions become NaN columns of the array (written in place), with the
    reason in the features table and one warning naming the run."""
    import warnings

    import numpy as np

    if "coverage" not in table:
        return []
    X = np.load(timeseries, mmap_mode="r+")
    nan_columns = coverage.exclude_poorly_covered(table, X, min_coverage)
    X.flush()
    del X
    if nan_columns:
        warnings.warn(f"{Path(bold_file).name}: {coverage.warning_line(table, nan_columns, min_coverage)}",
                      stacklevel=2)
    return nan_columns
