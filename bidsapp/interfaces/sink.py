"""Derivatives sink: BIDS names, provenance sidecar, optional formats."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.bids.naming import RunNaming, variant_of
from bidsapp.core import columns as column_spaces
from bidsapp.core.files import remove_temporaries
from bidsapp.core.tsv import read_tsv
from bidsapp.outputs import provenance, writers
from bidsapp.outputs.checksums import ChecksumCache, check_unchanged
from bidsapp.outputs.provenance import code_fingerprint, generated_by, software_versions
from bidsapp.outputs.reader import listed_outputs, read_sidecar, stem_of
from bidsapp.outputs.transaction import RunWriter, configuration_of, name_claim, reuse_status, run_lock


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
    cleaned_digest = traits.Dict(value={}, usedefault=True, desc="SHA-256 of cleaned.npy computed while the "
                                 "cleaning node wrote it, with the file's identity then (checksums.written_digest)")
    features = File(exists=True, mandatory=True)
    samples = File(exists=True, mandatory=True)
    clean_info = File(exists=True, mandatory=True)
    trial_files = traits.Dict(value={}, usedefault=True)
    segment_info = traits.Either(None, File(exists=True), default=None, usedefault=True)
    estimate_files = traits.Dict(value={}, usedefault=True, desc="the run's files of the joined trial model")
    estimate_info = traits.Dict(value={}, usedefault=True, desc="what the sidecar records of the joined model")
    report_data = traits.Either(None, File(exists=True), default=None, usedefault=True,
                                desc="what the report draws (carpet, DVARS, mean image), .npz")
    settings = traits.Dict(mandatory=True)
    configuration_hash = traits.Str(mandatory=True)
    sources = traits.List(traits.Dict, mandatory=True)
    source_identities = traits.Dict(value={}, usedefault=True,
                                    desc="path -> identity of every input when the run was planned (checked "
                                         "before the sidecar is written)")
    replace_outputs = traits.Bool(False, usedefault=True, desc="--replace-outputs: take over a name that holds "
                                  "other settings (else such a run is refused)")
    cache_dir = traits.Either(None, traits.Str, default=None, usedefault=True, desc="checksum cache folder")
    move_work_files = traits.Bool(False, usedefault=True, desc="the work folder is this invocation's private one "
                                  "(no --work-dir): node files only the sink reads are moved into the outputs, "
                                  "not copied (set by bidsapp.options.step_specs)")
    t_r = traits.Float(mandatory=True)
    start_time = traits.Float(0.0, usedefault=True)
    start_time_source = traits.Str("", usedefault=True, desc="where StartTime comes from")
    started = traits.Str(mandatory=True, desc="ISO time when the run started")
    grayordinates = traits.Dict(value={}, usedefault=True, desc="grayordinate runs: format, hemispheres")
    connectivity = traits.List(traits.Str, value=[], usedefault=True, desc="--connectivity measures")
    fisher_z = traits.Bool(False, usedefault=True, desc="--fisher-z")


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
        configuration = configuration_of({"Parameters": i.settings, "Sources": i.sources})
        variant = variant_of(stem_of(sidecar_path))
        with (name_claim(Path(i.output_dir), variant, configuration, replace=i.replace_outputs),
              run_lock(Path(i.output_dir), naming.identity)):
            remove_temporaries(sidecar_path.parent, naming.owns)
            reason = reuse_status(sidecar_path, configuration_hash=i.configuration_hash,
                                  current_sources=lambda: i.sources, cache=cache)
            if reason is None:
                self._results.update(sidecar=str(sidecar_path), out_files=[
                    str(sidecar_path.parent / name) for name in listed_outputs(read_sidecar(sidecar_path))])
                return runtime
            writer = RunWriter(sidecar_path, cache)
            writer.begin()
            try:
                self._write(naming, writer)
            except BaseException:
                writer.give_back()  # the kept work folder holds every node's files again
                raise
        self._results.update(sidecar=str(sidecar_path),
                             out_files=[str(sidecar_path.parent / f["Path"]) for f in writer.entries])
        return runtime

    def _write(self, naming: RunNaming, writer: RunWriter) -> None:
        """Every file of the run through the writers registry (:mod:`bidsapp.outputs.writers`), then the
        sidecar listing them."""
        i = self.inputs
        X = np.load(i.cleaned, mmap_mode="r")
        space_cls = column_spaces.get(i.column_space)
        features = {}
        if space_cls.image:  # region names and labels (small table) for headers and the inverse transform
            header, rows = read_tsv(i.features)
            features = {h: [r[j] for r in rows] for j, h in enumerate(header)}
        space = space_cls.from_outputs(i.mask_file, i.atlas_on_grid, features)
        ctx = writers.SinkContext(writer=writer, naming=naming, output_dir=Path(i.output_dir), cleaned=i.cleaned,
                                  shape=X.shape, space_cls=space_cls, space=space, features=features, inputs=i,
                                  move=i.move_work_files)
        chosen = writers.selected(i.output_format, space_cls)
        writers.warn_uneven_rows(ctx, chosen)
        for w in chosen:
            w.write(ctx)
        check_unchanged(i.source_identities, "before the sidecar")  # every read of this run saw the hashed bytes
        writer.finish(provenance.with_uris(self._sidecar(X, space, ctx.image), i.sources))  # paths as BIDS URIs

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
            **{k: info[k] for k in ("DegreesOfFreedom", "CosineDrifts", "NonSteadyState", "NonFiniteValuesZeroed")
               if k in info},
            "Trials": {**json.loads(Path(i.segment_info).read_text()), **i.estimate_info} if i.segment_info else None,
            "QC": qc_with_units(info.get("QC"), json.loads(Path(i.segment_info).read_text()) if i.segment_info
                                else None, estimated_trials({**i.trial_files, **(i.estimate_files or {})})),
            "Parameters": i.settings,
            "ConfigurationHash": i.configuration_hash,
            "SoftwareVersions": software_versions(),
            "CodeFingerprint": code_fingerprint(),
            "GeneratedBy": [generated_by()],
            "StartedAt": i.started,
            "FinishedAt": now.isoformat(),
            "DurationSeconds": round((now - started).total_seconds(), 3),
        }


def estimated_trials(files: dict) -> int | None:
    """Trials with a valid estimate: the ``valid`` column of the run's ``betas.tsv`` (None without one)."""
    from bidsapp.core.tsv import read_tsv

    tables = [src for key, src in files.items() if key.split("_")[0] == "betas" and str(src).endswith(".tsv")]
    if not tables:
        return None
    header, rows = read_tsv(tables[0])
    return sum(r[header.index("valid")] == "True" for r in rows) if "valid" in header else None


def qc_with_units(values: dict | None, trials: dict | None, estimated: int | None = None) -> dict | None:
    """The sidecar's ``QC`` object: each metric of the cleaning node, the trial counts (valid segments, and
    ``estimated`` trials: valid rows of ``betas.tsv``) with their units."""
    from bidsapp.core.qc import QC_FIELDS

    if values is None:
        return None
    values = dict(values)
    if trials and "NTrials" in trials:
        values.update(TrialsValidSegments=trials["NValidTrials"],
                      TrialsInvalidSegments=trials["NTrials"] - trials["NValidTrials"])
    if estimated is not None:
        values["TrialsEstimated"] = estimated
    return {k: {"Value": values[k], "Units": QC_FIELDS[k][0]} for k in QC_FIELDS if k in values}


def _mask_count(path: str, grayordinates: bool) -> int:
    """Voxels (or grayordinates) of a mask file: a NIfTI mask or a grayordinate run's ``dscalar.nii``."""
    if grayordinates:
        from bidsapp.core import cifti

        return int((cifti.read_header(path).memmap() > 0).sum())
    return int((np.asanyarray(nib.load(path).dataobj) > 0).sum())
