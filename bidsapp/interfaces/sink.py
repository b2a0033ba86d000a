"""Derivatives sink: BIDS names, provenance sidecar, optional formats."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp import derivatives as drv
from bidsapp.core import masking
from bidsapp.core.io import atomic_path, read_tsv, save_nifti, write_text, write_tsv


class _SinkInput(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True)
    entities = traits.Dict(mandatory=True, desc="run entities (subject, session, task, run, ...)")
    space = traits.Str(mandatory=True)
    denoise = traits.Str(mandatory=True)
    atlas_name = traits.Either(None, traits.Str, default=None, usedefault=True)
    output_format = traits.List(traits.Str, value=["npy"], usedefault=True)
    mask_file = File(exists=True, mandatory=True)
    mask_source = traits.Str(mandatory=True)
    template_file = traits.Either(None, traits.Str, default=None, usedefault=True)
    atlas_on_grid = traits.Either(None, File(exists=True), default=None, usedefault=True)
    cleaned = File(exists=True, mandatory=True)
    features = File(exists=True, mandatory=True)
    samples = File(exists=True, mandatory=True)
    clean_info = File(exists=True, mandatory=True)
    trial_files = traits.Dict(value={}, usedefault=True)
    segment_info = traits.Either(None, File(exists=True), default=None, usedefault=True)
    settings = traits.Dict(mandatory=True)
    configuration_hash = traits.Str(mandatory=True)
    sources = traits.List(traits.Dict, mandatory=True)
    t_r = traits.Float(mandatory=True)
    start_time = traits.Float(0.0, usedefault=True)
    start_time_source = traits.Str("", usedefault=True, desc="where StartTime comes from")
    started = traits.Str(mandatory=True, desc="ISO time when the run started")


class _SinkOutput(TraitedSpec):
    sidecar = File(exists=True)
    out_files = traits.List(traits.Str)


def _copy(src: str, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


class WriteDerivatives(SimpleInterface):
    """Write the run's BIDS-Derivatives files; the JSON sidecar is written last."""

    input_spec = _SinkInput
    output_spec = _SinkOutput

    def _run_interface(self, runtime):
        i = self.inputs
        folder = drv.run_folder(Path(i.output_dir), i.entities)
        ents = dict(i.entities, space=None if i.space in ("func", "native", "boldref") else i.space)
        if i.space in ("func", "native", "boldref"):
            ents.pop("space")
        out_ents = dict(ents, atlas=i.atlas_name, desc=i.denoise)
        name = drv.bids_name
        files: list[str] = []

        def put(fname: str) -> Path:
            files.append(fname)
            return folder / fname

        X = np.load(i.cleaned, mmap_mode="r")
        if "npy" in i.output_format or not i.output_format:
            _copy(i.cleaned, put(name(out_ents, "timeseries", ".npy")))
        _copy(i.features, put(name(out_ents, "features", ".tsv")))
        features = {}
        if i.atlas_on_grid:  # region names and labels (small table) for headers and the inverse transform
            header, rows = read_tsv(i.features)
            features = {h: [r[j] for r in rows] for j, h in enumerate(header)}
        _copy(i.samples, put(name(out_ents, "samples", ".tsv")))
        _copy(i.mask_file, put(name(dict(ents, desc="brain"), "mask", ".nii.gz")))
        if i.atlas_name or "tsv.gz" in i.output_format:
            cols = features["name"] if "name" in features else [f"voxel-{c}" for c in range(X.shape[1])]
            write_tsv(put(name(out_ents, "timeseries", ".tsv.gz")),
                      {c: np.asarray(X[:, j]) for j, c in enumerate(cols)}, gzip_=True)
        if "nii.gz" in i.output_format:
            affine = nib.load(i.mask_file).affine
            if i.atlas_on_grid:
                labels = np.asanyarray(nib.load(i.atlas_on_grid).dataobj)
                values = np.array([int(v) for v in features["label"]])
                img = masking.unmask_labels(np.asarray(X), labels, values, affine)
            else:
                img = masking.unmask(np.asarray(X), np.asanyarray(nib.load(i.mask_file).dataobj) > 0, affine)
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = i.t_r
            save_nifti(img, put(name(out_ents, "bold", ".nii.gz")))
        if i.atlas_on_grid:
            _copy(i.atlas_on_grid, put(name(dict(ents, atlas=i.atlas_name), "dseg", ".nii.gz")))
        for key, src in sorted(i.trial_files.items()):
            ext = "".join(Path(src).suffixes)
            _copy(src, put(name(out_ents, key.split("_")[0], ext)))
        info = json.loads(Path(i.clean_info).read_text())
        now = dt.datetime.now(dt.timezone.utc)
        started = dt.datetime.fromisoformat(i.started)
        sidecar = {
            "Description": "Cleaned BOLD signal: rows are kept volumes (see _samples.tsv), columns are "
                           + ("atlas regions" if i.atlas_name else "mask voxels") + " (see _features.tsv).",
            "Sources": i.sources,
            "RepetitionTime": i.t_r,
            "StartTime": i.start_time,
            "StartTimeSource": i.start_time_source,
            "Shape": list(X.shape),
            "DataType": str(X.dtype),
            "MaskVoxelCount": int((np.asanyarray(nib.load(i.mask_file).dataobj) > 0).sum()),
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
            "SoftwareVersions": drv.software_versions(),
            "GeneratedBy": [drv.generated_by()],
            "StartedAt": i.started,
            "FinishedAt": now.isoformat(),
            "DurationSeconds": round((now - started).total_seconds(), 3),
            "OutputFiles": files,
        }
        sidecar_path = folder / name(out_ents, "timeseries", ".json")
        write_text(sidecar_path, json.dumps(sidecar, indent=2, default=str) + "\n")
        self._results.update(sidecar=str(sidecar_path), out_files=[str(folder / f) for f in files])
        return runtime
