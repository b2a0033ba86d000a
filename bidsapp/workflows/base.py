"""Workflow factories: one sub-workflow per run, runs side by side."""

from __future__ import annotations

from dataclasses import dataclass

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp.interfaces.clean import CleanSignals
from bidsapp.interfaces.extract import ExtractSignals
from bidsapp.interfaces.mask import ComputeMask
from bidsapp.interfaces.provenance import HashInputs
from bidsapp.interfaces.report import ReportData
from bidsapp.interfaces.segment import SegmentTrials
from bidsapp.interfaces.sink import WriteDerivatives

#: the run's files, fields of the input node
RUN_INPUTS = ("bold_file", "mask_file", "confounds_file", "confounds_json", "events_file")


@dataclass(frozen=True)
class RunPlan:
    """What the workflow of one run is built from.

    Attributes
    ----------
    name : str
        Name of the run's sub-workflow.
    inputs : dict
        The run's files: ``bold_file``, ``mask_file``, ``confounds_file``, ``confounds_json``, ``events_file``.
    specs : dict
        Node inputs by step (``mask``, ``masking``, ``cleaning``, ``segmentation``, ``provenance``,
        ``outputs``): the step's spec from the options table with the run's own values added.
    mem_gb : dict
        Each node's memory estimate, GB.
    """

    name: str
    inputs: dict
    specs: dict
    mem_gb: dict


def init_run_wf(plan: RunPlan) -> pe.Workflow:
    """Mask -> masking -> cleaning -> segmentation -> derivatives for one run.

    Each node receives its step's spec, ``plan.specs[step]``. Grayordinate runs (CIFTI-2 dtseries, or a GIFTI
    pair: ``bold_right`` in the mask and masking specs) take the same path.
    """
    wf = pe.Workflow(name=plan.name)
    inputnode = pe.Node(IdentityInterface(fields=list(RUN_INPUTS)), name="inputnode")
    for key in RUN_INPUTS:
        setattr(inputnode.inputs, key, plan.inputs.get(key))
    specs, mem_gb = plan.specs, plan.mem_gb
    mask = pe.Node(ComputeMask(**specs["mask"]), name="mask", mem_gb=mem_gb["mask"])
    extract = pe.Node(ExtractSignals(**specs["masking"]), name="masking", mem_gb=mem_gb["masking"])
    clean = pe.Node(CleanSignals(**specs["cleaning"]), name="cleaning", mem_gb=mem_gb["cleaning"])
    segment = pe.Node(SegmentTrials(**specs["segmentation"]), name="segmentation", mem_gb=mem_gb["segmentation"])
    provenance = pe.Node(HashInputs(**specs["provenance"]), name="provenance", mem_gb=mem_gb["provenance"])
    report = pe.Node(ReportData(), name="report", mem_gb=mem_gb["report"])
    sink = pe.Node(WriteDerivatives(**specs["outputs"]), name="derivatives", mem_gb=mem_gb["derivatives"])
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
        (inputnode, report, [("bold_file", "bold_file")]),
        (extract, report, [("timeseries", "timeseries")]),
        (clean, report, [("cleaned", "cleaned"), ("samples", "samples")]),
        (report, sink, [("report_data", "report_data")]),
        (sink, outputnode, [("sidecar", "sidecar"), ("out_files", "out_files")]),
    ])
    return wf


def init_bidsapp_wf(*, plans: list[RunPlan], work_dir: str, name: str = "bidsapp_wf") -> pe.Workflow:
    """Top-level workflow: one independent sub-workflow per run (one :class:`RunPlan` each)."""
    wf = pe.Workflow(name=name, base_dir=work_dir)
    wf.add_nodes([init_run_wf(plan) for plan in plans])
    return wf
