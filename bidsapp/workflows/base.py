"""Workflow factories: one sub-workflow per run, runs side by side."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp import derivatives as drv
from bidsapp.interfaces.clean import CleanSignals
from bidsapp.interfaces.extract import ExtractSignals
from bidsapp.interfaces.mask import ComputeMask
from bidsapp.interfaces.provenance import HashInputs
from bidsapp.interfaces.segment import SegmentTrials
from bidsapp.interfaces.sink import WriteDerivatives


def init_run_wf(
    *,
    bold_file: str,
    mask_file: str | None,
    confounds_file: str | None,
    confounds_json: str | None,
    events_file: str | None,
    entities: dict,
    space: str,
    t_r: float,
    start_time: float,
    start_time_source: str,
    mask_strategy: str,
    resample_mask: bool,
    smoothing_fwhm: float | None,
    atlas_file: str | None,
    atlas_labels: str | None,
    atlas_name: str | None,
    denoise: str,
    confound_columns: list[str],
    strategy_params: dict,
    dummy_scans: str | int,
    detrend: bool,
    standardize: str | None,
    standardize_confounds: bool,
    filter: str | None,
    low_pass: float | None,
    high_pass: float | None,
    segment_params: dict,
    output_dir: str,
    output_format: list[str],
    settings: dict,
    configuration_hash: str,
    source_files: dict,
    source_roots: dict,
    cache_dir: str | None,
    desc: str,
    mem_gb: dict,
    input_stamp: str,
    name: str,
    bold_right: str | None = None,
    atlas_right: str | None = None,
    grayordinates: dict | None = None,
    surfaces: dict | None = None,
    column_space: str | None = None,
    column_args: dict | None = None,
) -> pe.Workflow:
    """Mask -> masking -> cleaning -> segmentation -> derivatives for one run.

    Grayordinate runs (CIFTI-2 dtseries, or a GIFTI pair: ``bold_file`` hemi-L, ``bold_right`` hemi-R) take the
    same path; ``grayordinates`` (format, hemispheres) goes to the sidecar; ``surfaces`` ({"L", "R"} ->
    surf.gii) give the vertices' x, y, z. ``column_space`` is the kind of columns
    (:func:`bidsapp.core.columns.choose_kind`), ``column_args`` the kind's own arguments.
    """
    from bidsapp.core import columns

    column_space = column_space or columns.choose_kind(bold_file, atlas=atlas_file)
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["bold_file", "mask_file", "confounds_file",
                                                  "confounds_json", "events_file"]), name="inputnode")
    inputnode.inputs.bold_file = bold_file
    inputnode.inputs.mask_file = mask_file
    inputnode.inputs.confounds_file = confounds_file
    inputnode.inputs.confounds_json = confounds_json
    inputnode.inputs.events_file = events_file
    mask = pe.Node(ComputeMask(strategy=mask_strategy, space=space, resample_mask=resample_mask,
                               input_stamp=input_stamp, bold_right=bold_right,
                               on_grayordinates=columns.get(column_space).on_grayordinates),
                   name="mask", mem_gb=mem_gb["mask"])
    extract = pe.Node(ExtractSignals(smoothing_fwhm=smoothing_fwhm, atlas_file=atlas_file,
                                     atlas_labels=atlas_labels, resample_mask=resample_mask,
                                     bold_right=bold_right, atlas_right=atlas_right, surfaces=surfaces or {},
                                     column_space=column_space, column_args=column_args or {}),
                      name="masking", mem_gb=mem_gb["masking"])
    clean = pe.Node(CleanSignals(bold_file=bold_file, dummy_scans=dummy_scans,
                                 denoise=denoise, confound_columns=confound_columns,
                                 strategy_params=strategy_params, t_r=t_r, start_time=start_time,
                                 detrend=detrend, standardize=standardize,
                                 standardize_confounds=standardize_confounds, filter=filter,
                                 low_pass=low_pass, high_pass=high_pass),
                    name="cleaning", mem_gb=mem_gb["cleaning"])
    segment = pe.Node(SegmentTrials(t_r=t_r, start_time=start_time, **segment_params), name="segmentation",
                      mem_gb=mem_gb["segmentation"])
    provenance = pe.Node(HashInputs(files=source_files, roots=source_roots, cache_dir=cache_dir),
                         name="provenance", mem_gb=mem_gb["provenance"])
    sink = pe.Node(WriteDerivatives(output_dir=output_dir, entities=dict(entities, space=space), desc=desc,
                                    mask_desc=drv.mask_desc(mask_strategy),
                                    atlas_name=atlas_name, output_format=output_format, settings=settings,
                                    configuration_hash=configuration_hash, cache_dir=cache_dir,
                                    t_r=t_r, start_time=start_time, start_time_source=start_time_source,
                                    grayordinates=grayordinates or {}),
                   name="derivatives", mem_gb=mem_gb["derivatives"])
    outputnode = pe.Node(IdentityInterface(fields=["sidecar", "out_files"]), name="outputnode")
    wf.connect([
        (inputnode, mask, [("bold_file", "bold_file"), ("mask_file", "mask_file")]),
        (inputnode, extract, [("bold_file", "bold_file")]),
        (mask, extract, [("mask_file", "mask_file")]),
        (extract, clean, [("timeseries", "timeseries"), ("n_nonfinite", "n_nonfinite")]),
        (inputnode, clean, [("confounds_file", "confounds_file"), ("confounds_json", "confounds_json")]),
        (clean, segment, [("cleaned", "cleaned"), ("samples", "samples"), ("operator", "operator"),
                          ("dof", "dof")]),
        (inputnode, segment, [("events_file", "events_file")]),
        (mask, sink, [("mask_file", "mask_file"), ("mask_source", "mask_source"),
                      ("template_file", "template_file")]),
        (extract, sink, [("features", "features"), ("atlas_on_grid", "atlas_on_grid"),
                         ("column_space", "column_space")]),
        (clean, sink, [("cleaned", "cleaned"), ("info", "clean_info")]),
        (segment, sink, [("samples", "samples"), ("trial_files", "trial_files"), ("info", "segment_info")]),
        (provenance, sink, [("sources", "sources"), ("started", "started")]),
        (sink, outputnode, [("sidecar", "sidecar"), ("out_files", "out_files")]),
    ])
    return wf


def init_bidsapp_wf(*, run_kwargs: list[dict], work_dir: str, name: str = "bidsapp_wf") -> pe.Workflow:
    """Top-level workflow: one independent sub-workflow per run (``run_kwargs`` for :func:`init_run_wf`)."""
    wf = pe.Workflow(name=name, base_dir=work_dir)
    wf.add_nodes([init_run_wf(**kw) for kw in run_kwargs])
    return wf
