"""Derivatives sink: BIDS names, provenance sidecar, optional formats."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.bids.naming import RunNaming
from bidsapp.core import columns as column_spaces
from bidsapp.core.io import iter_npy_rows, read_tsv, remove_temporaries, write_nifti_series, write_tsv_rows
from bidsapp.outputs import descriptions, provenance
from bidsapp.outputs.checksums import ChecksumCache
from bidsapp.outputs.provenance import generated_by, software_versions
from bidsapp.outputs.transaction import RunWriter, reuse_status, run_lock

#: rows of the array read at a time for the tsv.gz and nii.gz outputs (bounded memory)
ROW_BLOCK_BYTES = 64 * 2**20


class _SinkInput(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True)
    entities = traits.Dict(mandatory=True, desc="source entities (subject, session, task, run, space, ...)")
    desc = traits.Str(mandatory=True, desc="desc label of the outputs")
    atlas_name = traits.Either(None, traits.Str, default=None, usedefault=True)
    output_format = traits.List(traits.Str, value=["npy"], usedefault=True)
    mask_file = File(exists=True, mandatory=True)
    mask_source = traits.Str(mandatory=True)
    mask_desc = traits.Str("brain", usedefault=True, desc="desc label of the mask file (from the mask strategy)")
    template_file = traits.Either(None, traits.Str, default=None, usedefault=True)
    column_space = traits.Str(mandatory=True, desc="kind of columns (bidsapp.core.columns.KINDS)")
    atlas_on_grid = traits.Either(None, File(exists=True), default=None, usedefault=True,
                                  desc="the columns image (atlas, maps, spheres on the run), when the kind has one")
    cleaned = File(exists=True, mandatory=True)
    features = File(exists=True, mandatory=True)
    samples = File(exists=True, mandatory=True)
    clean_info = File(exists=True, mandatory=True)
    trial_files = traits.Dict(value={}, usedefault=True)
    segment_info = traits.Either(None, File(exists=True), default=None, usedefault=True)
    report_data = traits.Either(None, File(exists=True), default=None, usedefault=True,
                                desc="what the report draws (carpet, DVARS, mean image), .npz")
    settings = traits.Dict(mandatory=True)
    configuration_hash = traits.Str(mandatory=True)
    sources = traits.List(traits.Dict, mandatory=True)
    cache_dir = traits.Either(None, traits.Str, default=None, usedefault=True, desc="checksum cache folder")
    t_r = traits.Float(mandatory=True)
    start_time = traits.Float(0.0, usedefault=True)
    start_time_source = traits.Str("", usedefault=True, desc="where StartTime comes from")
    started = traits.Str(mandatory=True, desc="ISO time when the run started")
    grayordinates = traits.Dict(value={}, usedefault=True, desc="grayordinate runs: format, hemispheres")


class _SinkOutput(TraitedSpec):
    sidecar = File(exists=True)
    out_files = traits.List(traits.Str)


class WriteDerivatives(SimpleInterface):
    """Write one generation of the run's BIDS-Derivatives files, under the run's lock.

    Outputs that are already current (another invocation wrote them meanwhile) are kept.
    Otherwise the old sidecar goes first, files are staged and renamed, and the sidecar,
    listing every output with its size and SHA-256, comes last (see :mod:`bidsapp.outputs.transaction`).
    """

    input_spec = _SinkInput
    output_spec = _SinkOutput
    always_run = True  # nipype's cache must never stand in for writing the outputs

    def _run_interface(self, runtime):
        i = self.inputs
        naming = RunNaming(dict(i.entities), desc=i.desc, atlas=i.atlas_name)
        cache = ChecksumCache(i.cache_dir)
        sidecar_path = naming.sidecar(Path(i.output_dir))
        with run_lock(Path(i.output_dir), naming.identity):
            remove_temporaries(sidecar_path.parent, naming.owns)
            reason = reuse_status(sidecar_path, configuration_hash=i.configuration_hash,
                                  current_sources=lambda: i.sources, cache=cache)
            if reason is None:
                meta = json.loads(sidecar_path.read_text())
                self._results.update(sidecar=str(sidecar_path),
                                     out_files=[str(sidecar_path.parent / f["Path"]) for f in meta["OutputFiles"]])
                return runtime
            writer = RunWriter(sidecar_path, cache)
            writer.begin()
            self._write(naming, writer)
        self._results.update(sidecar=str(sidecar_path),
                             out_files=[str(sidecar_path.parent / f["Path"]) for f in writer.entries])
        return runtime

    def _write(self, naming: RunNaming, writer: RunWriter) -> None:
        i = self.inputs
        out = Path(i.output_dir)

        X = np.load(i.cleaned, mmap_mode="r")
        if "npy" in i.output_format or not i.output_format:
            writer.install(i.cleaned, naming.path(out, "timeseries", ".npy"))
        writer.install(i.features, naming.path(out, "features", ".tsv"))
        space_cls = column_spaces.get(i.column_space)
        features = {}
        if space_cls.image:  # region names and labels (small table) for headers and the inverse transform
            header, rows = read_tsv(i.features)
            features = {h: [r[j] for r in rows] for j, h in enumerate(header)}
        space = space_cls.from_outputs(i.mask_file, i.atlas_on_grid, features)
        writer.install(i.samples, naming.path(out, "samples", ".tsv"))
        writer.install(i.mask_file, naming.path(out, "mask", space_cls.mask_extension, desc=i.mask_desc, atlas=None))
        block = max(1, ROW_BLOCK_BYTES // (4 * max(1, X.shape[1])))
        if space_cls.image or "tsv.gz" in i.output_format:  # named regions: a small table, always written
            cols = features["name"] if "name" in features else [f"{space_cls.column_prefix}-{c}"
                                                               for c in range(X.shape[1])]
            with writer.put(naming.path(out, "timeseries", ".tsv.gz")) as tmp:
                write_tsv_rows(tmp, cols, (b for _, b in iter_npy_rows(i.cleaned, block)), atomic=False)
        series = [f for f in ("nii.gz", "dtseries.nii", "func.gii") if f in i.output_format]
        if series:
            _warn_uneven_rows(json.loads(Path(i.clean_info).read_text()), series, i.t_r)
        if "nii.gz" in i.output_format:
            mask_img = nib.load(i.mask_file)
            volumes = space.inverse_rows(b for _, b in iter_npy_rows(i.cleaned, block))
            with writer.put(naming.path(out, "bold", ".nii.gz")) as tmp:
                write_nifti_series(tmp, volumes, shape=mask_img.shape[:3], n_volumes=X.shape[0],
                                   affine=mask_img.affine, t_r=i.t_r, atomic=False)
        if space_cls.on_grayordinates:
            self._write_grayordinates(naming, writer, X, space)
        image = None
        if i.atlas_on_grid:
            suffix, ext, desc = space_cls.image
            image = naming.path(out, suffix, ext, desc=desc)
            writer.install(i.atlas_on_grid, image)
        if i.report_data:
            writer.install(i.report_data, naming.path(out, "reportdata", ".npz"))
        for key, src in sorted(i.trial_files.items()):
            ext = "".join(Path(src).suffixes)
            writer.install(src, naming.path(out, key.split("_")[0], ext))
        for entry in [e for e in writer.entries if descriptions.kind_of(e["Path"])]:  # BIDS column descriptions
            with writer.put(naming.path(out, descriptions.kind_of(entry["Path"]), ".json")) as tmp:
                descriptions.write_sidecar(writer.folder / entry["Path"], i.settings, dst=tmp, space=i.column_space)
        writer.finish(provenance.with_uris(self._sidecar(X, space, image), i.sources))  # paths as BIDS URIs

    def _sidecar(self, X, space, image: Path | None) -> dict:
        """The run's ``_timeseries.json``: what the columns are, provenance, cleaning, trials, parameters."""
        i = self.inputs
        info = json.loads(Path(i.clean_info).read_text())
        now = dt.datetime.now(dt.timezone.utc)
        started = dt.datetime.fromisoformat(i.started)
        return {
            "Description": "Cleaned BOLD signal: rows are kept volumes (see _samples.tsv), columns are "
                           + space.what + " (see _features.tsv).",
            **space.sidecar_fields(),
            "ColumnImage": image.name if image else None,
            **({"Grayordinates": dict(i.grayordinates)} if i.grayordinates else {}),
            "Sources": i.sources,
            "RepetitionTime": i.t_r,
            "StartTime": i.start_time,
            "StartTimeSource": i.start_time_source,
            "Shape": list(X.shape),
            "DataType": str(X.dtype),
            "MaskVoxelCount": _mask_count(i.mask_file, space.on_grayordinates),
            "MaskSource": i.mask_source,
            "TemplateFile": i.template_file,
            "ConfoundColumns": info["ConfoundColumns"],
            "DenoiseParameters": info["DenoiseParameters"],
            "CensoredVolumes": info["CensoredVolumes"],
            "ConfoundRankRemoved": info["ConfoundRankRemoved"],
            **{k: info[k] for k in ("DegreesOfFreedom", "NonSteadyState", "NonFiniteValuesZeroed") if k in info},
            "Trials": json.loads(Path(i.segment_info).read_text()) if i.segment_info else None,
            "Parameters": i.settings,
            "ConfigurationHash": i.configuration_hash,
            "SoftwareVersions": software_versions(),
            "GeneratedBy": [generated_by()],
            "StartedAt": i.started,
            "FinishedAt": now.isoformat(),
            "DurationSeconds": round((now - started).total_seconds(), 3),
        }

    def _write_grayordinates(self, naming: RunNaming, writer: RunWriter, X, space) -> None:
        """``--output-format dtseries.nii`` / ``func.gii``: the cleaned rows back on the grayordinates."""
        from bidsapp.core import cifti
        from bidsapp.core import grayordinates as go

        i, out = self.inputs, Path(self.inputs.output_dir)
        if not {"dtseries.nii", "func.gii"} & set(i.output_format):
            return
        bm = space.bm
        values = space.on_grayordinates_of(X)  # atlas columns: each region's values painted on its grayordinates
        if "dtseries.nii" in i.output_format:  # rows are the kept volumes (times: _samples.tsv); start at the first
            header, rows = read_tsv(i.samples)
            first = [float(r[header.index("onset")]) for r in rows if r[header.index("row")] == "0"]
            with writer.put(naming.path(out, "bold", ".dtseries.nii")) as tmp:
                cifti.write_dense(tmp, values, bm, series=(first[0] if first else i.start_time, i.t_r))
        if "func.gii" in i.output_format:
            for hemi, img in go.to_gifti(values, bm, intent="NIFTI_INTENT_TIME_SERIES").items():
                with writer.put(naming.path(out, "bold", ".func.gii", hemi=hemi)) as tmp:
                    nib.save(img, str(tmp))


def _mask_count(path: str, grayordinates: bool) -> int:
    """Voxels (or grayordinates) of a mask file: a NIfTI mask or a grayordinate run's ``dscalar.nii``."""
    if grayordinates:
        from bidsapp.core import cifti

        return int((cifti.read_header(path).memmap() > 0).sum())
    return int((np.asanyarray(nib.load(path).dataobj) > 0).sum())


def _warn_uneven_rows(info: dict, formats: list[str], t_r: float) -> None:
    """One warning when volumes censored inside the run make the rows of an image output (whose time axis has
    one step, the TR) unevenly spaced in time."""
    censored = set(info.get("CensoredVolumes", []))
    kept = sorted(set(range(info.get("KeptVolumes", 0) + len(censored))) - censored)
    inside = [v for v in censored if kept and kept[0] < v < kept[-1]]  # leading / trailing ones keep the step
    if inside:
        import warnings

        warnings.warn(f"{len(inside)} volume(s) censored inside the run: the rows of the {' / '.join(formats)} "
                      f"output(s) are the kept volumes, so their time axis (one step of {t_r:g} s) is not their "
                      "acquisition times; those are in _samples.tsv (onset of each kept row).", stacklevel=2)
