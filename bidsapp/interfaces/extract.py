"""Masking node: 4D BOLD -> samples x features, the columns being what the run's column space says.

It reads the BOLD file whole, so it also computes the file's SHA-256 from the bytes it reads and records it in
the run's checksum cache: the provenance node, which runs after it, finds it there instead of reading the file
again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.core import columns, coverage
from bidsapp.core.io import ReadDigest
from bidsapp.core.tsv import write_tsv
from bidsapp.outputs.checksums import ChecksumCache


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
    cache_dir = traits.Either(None, traits.Str, default=None, usedefault=True, nohash=True,
                              desc="checksum cache folder (the provenance node's): the BOLD's SHA-256, computed "
                                   "while streaming it, is recorded there; None: not computed")


class _ExtractOutput(TraitedSpec):
    timeseries = File(desc="float32 (float64 for float64 BOLD) (n_volumes, n_features) .npy; not checked to "
                           "exist when read back: the cleaning node may have taken it (take_timeseries)")
    features = File(exists=True, desc="features table (TSV)")
    column_space = traits.Str(desc="kind of columns")
    atlas_on_grid = traits.Either(None, File(exists=True), desc="the columns image (atlas, maps, spheres) on the run")
    n_nonfinite = traits.Int(desc="non-finite values set to 0 (NiftiMasker policy)")
    nan_columns = traits.List(traits.Int, desc="columns set to NaN by --min-coverage")
    mean_image = traits.Either(None, File(exists=True),
                               desc="volume runs: the run's temporal mean, float32 (nx, ny, nz) .npy, summed while "
                                    "the volumes were streamed (before smoothing); None for grayordinate runs")
    hashed = traits.List(traits.Str, desc="input files whose SHA-256 this node recorded in the checksum cache "
                                          "from the bytes it read (connected to the provenance node)")
    started = traits.Str(desc="ISO time (UTC) when this node started")


class ExtractSignals(SimpleInterface):
    """Stream the BOLD run into a float32 array, one column per column of the run's column space, and (volume
    runs) its temporal mean image from the same stream (``mean.npy``, the report's background)."""

    input_spec = _ExtractInput
    output_spec = _ExtractOutput

    def _run_interface(self, runtime):
        started = dt.datetime.now(dt.timezone.utc).isoformat()
        cwd, i = Path(runtime.cwd), self.inputs
        kind = i.column_space or columns.choose_kind(i.bold_file, atlas=i.atlas_file)
        space_cls = columns.get(kind)
        args = dict(i.column_args, atlas_file=i.atlas_file, atlas_labels=i.atlas_labels, atlas_right=i.atlas_right,
                    resample=i.resample_mask, surfaces=dict(i.surfaces))
        space = space_cls.build(i.bold_file, i.mask_file, **args)
        mean_image = None if space_cls.on_grayordinates else cwd / "mean.npy"
        with _checksum_while_reading(i.bold_file, i.cache_dir) as (digest, hashed):
            n_bad = space.transform(i.bold_file, cwd / "timeseries.npy", smoothing_fwhm=i.smoothing_fwhm,
                                    bold_right=i.bold_right, mean_out=mean_image, digest=digest)
        table = space.features()
        _warn_outside_mask(space, i.bold_file)
        nan_columns = _apply_min_coverage(table, cwd / "timeseries.npy", i.min_coverage, i.bold_file)
        write_tsv(cwd / "features.tsv", table)
        image = space.save_image(cwd / ("columns" + space_cls.image[1])) if space_cls.image else None
        self._results.update(timeseries=str(cwd / "timeseries.npy"), features=str(cwd / "features.tsv"),
                             column_space=kind, atlas_on_grid=image, n_nonfinite=n_bad, nan_columns=nan_columns,
                             mean_image=str(mean_image) if mean_image else None, hashed=hashed, started=started)
        return runtime


@contextlib.contextmanager
def _checksum_while_reading(bold_file: str, cache_dir: str | None) -> Iterator[tuple[ReadDigest | None, list]]:
    """The :class:`ReadDigest` to hand the column space's stream, and the list of files whose checksum was
    recorded (filled when the block ends without error).

    The BOLD's identity (size, times, inode) is taken before the stream opens it; the digest is recorded in the
    checksum cache only if the stream hashed the whole file and the identity is the same after the read, so a
    file changed while being read never gets a cached checksum (the provenance node then hashes it itself). No
    digest when there is no cache folder, or when the cache already holds the file's checksum.
    """
    hashed: list[str] = []
    cache = ChecksumCache(cache_dir)
    before = os.stat(bold_file)
    if cache_dir is None or cache.cached(bold_file, before) is not None:
        yield None, hashed
        return
    digest = ReadDigest()
    yield digest, hashed
    if cache.record_read(bold_file, digest.hexdigest, before):
        hashed.append(str(bold_file))


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
