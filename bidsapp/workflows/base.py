"""Workflow factories: one sub-workflow per run, runs side by side."""

from __future__ import annotations

from dataclasses import dataclass

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp.execution.workdir import WORKFLOW_FOLDER
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


#: what each node of a run passes to the run's sink: node name -> [(output, sink input)]
SINK_LINKS: dict[str, list[tuple[str, str]]] = {
    "mask": [("mask_file", "mask_file"), ("mask_source", "mask_source"), ("template_file", "template_file")],
    "masking": [("features", "features"), ("atlas_on_grid", "atlas_on_grid"), ("column_space", "column_space")],
    "cleaning": [("cleaned", "cleaned"), ("cleaned_digest", "cleaned_digest"), ("info", "clean_info")],
    "segmentation": [("samples", "samples"), ("trial_files", "trial_files"), ("info", "segment_info")],
    "provenance": [("sources", "sources"), ("started", "started")],
    "report": [("report_data", "report_data")],
}
#: name of the sink's own sub-workflow (``<run>`` + this) when the run's trial estimates come from a joined model
SINK_WF_SUFFIX = "_out"


def init_run_wf(plan: RunPlan, *, with_sink: bool = True) -> pe.Workflow:
    """Mask -> masking -> cleaning -> segmentation -> derivatives for one run.

    Each node receives its step's spec, ``plan.specs[step]``. Grayordinate runs (CIFTI-2 dtseries, or a GIFTI
    pair: ``bold_right`` in the mask and masking specs) take the same path. Without the sink (``with_sink``
    False), :func:`init_sink_wf` builds it as a sub-workflow of its own (a joined trial model feeds it).
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
    links = [
        (inputnode, mask, [("bold_file", "bold_file"), ("mask_file", "mask_file")]),
        (inputnode, extract, [("bold_file", "bold_file")]),
        (mask, extract, [("mask_file", "mask_file")]),
        (extract, clean, [("timeseries", "timeseries"), ("n_nonfinite", "n_nonfinite"),
                          ("nan_columns", "nan_columns")]),
        (inputnode, clean, [("confounds_file", "confounds_file"), ("confounds_json", "confounds_json")]),
        (clean, segment, [("cleaned", "cleaned"), ("samples", "samples"), ("operator", "operator"),
                          ("dof", "dof")]),
        (inputnode, segment, [("events_file", "events_file")]),
        (inputnode, report, [("bold_file", "bold_file")]),
        (extract, report, [("mean_image", "mean_image")]),
        # provenance after masking: it finds there the BOLD's checksum, computed while masking read the file
        (mask, provenance, [("started", "mask_started")]),
        (extract, provenance, [("started", "masking_started"), ("hashed", "hashed_while_reading")]),
        (clean, report, [("carpet", "carpet")]),
    ]
    if with_sink:
        nodes = {"mask": mask, "masking": extract, "cleaning": clean, "segmentation": segment,
                 "provenance": provenance, "report": report}
        sink, outputnode = _sink_nodes(plan)
        links += [(nodes[src], sink, pairs) for src, pairs in SINK_LINKS.items()]
        links.append((sink, outputnode, [("sidecar", "sidecar"), ("out_files", "out_files")]))
    wf.connect(links)
    return wf


def _sink_nodes(plan: RunPlan) -> tuple[pe.Node, pe.Node]:
    sink = pe.Node(WriteDerivatives(**plan.specs["outputs"]), name="derivatives", mem_gb=plan.mem_gb["derivatives"])
    return sink, pe.Node(IdentityInterface(fields=["sidecar", "out_files"]), name="outputnode")


def init_sink_wf(plan: RunPlan) -> pe.Workflow:
    """The run's sink (``derivatives``) and ``outputnode``, in a sub-workflow ``<run>_out``."""
    wf = pe.Workflow(name=plan.name + SINK_WF_SUFFIX)
    sink, outputnode = _sink_nodes(plan)
    wf.connect(sink, "sidecar", outputnode, "sidecar")
    wf.connect(sink, "out_files", outputnode, "out_files")
    return wf


def init_bidsapp_wf(*, plans: list[RunPlan], work_dir: str, name: str = WORKFLOW_FOLDER) -> pe.Workflow:
    """Top-level workflow: one sub-workflow per run (one :class:`RunPlan` each); the runs of a participant and
    task whose trial estimates need cross-validation across runs are joined by one trial-model node."""
    wf = pe.Workflow(name=name, base_dir=work_dir)
    groups = joined_groups(plans)
    joined = {k for members in groups.values() for k in members}
    run_wfs = [init_run_wf(plan, with_sink=k not in joined) for k, plan in enumerate(plans)]
    wf.add_nodes(run_wfs)
    for key, members in groups.items():
        _join_trial_model(wf, key, [(plans[k], run_wfs[k]) for k in members])
    return wf


def joined_groups(plans: list[RunPlan]) -> dict[str, list[int]]:
    """Plans whose trial estimates come from a joined model, grouped by participant and task (name -> indices)."""
    from bidsapp.core.trial_fit import join_key, model_steps

    groups: dict[str, list[int]] = {}
    for k, plan in enumerate(plans):
        seg = plan.specs["segmentation"]
        if model_steps(seg.get("trial_estimates"), seg.get("trial_denoise"), seg.get("trial_ridge", False)) is None:
            continue
        groups.setdefault(join_key(plan.specs["outputs"].get("entities", {})), []).append(k)
    return groups


def _join_trial_model(wf: pe.Workflow, name: str, members: list[tuple[RunPlan, pe.Workflow]]) -> None:
    """One trial-model node fed by the segmentation of each run, feeding each run's sink its own share."""
    from nipype.interfaces.utility import Merge

    from bidsapp.execution.memory import joined_memory_gb
    from bidsapp.interfaces.trial_model import EstimateTrials, pick

    sink_wfs = [init_sink_wf(plan) for plan, _ in members]
    for (_, run_wf), sink_wf in zip(members, sink_wfs):
        wf.connect([(run_wf, sink_wf, [(f"{src}.{out}", f"derivatives.{inp}")
                                       for src, pairs in SINK_LINKS.items() for out, inp in pairs])])
    merge = pe.Node(Merge(len(members)), name=f"{name}_runs")
    model = pe.Node(EstimateTrials(run_names=[plan.name for plan, _ in members]), name=name,
                    mem_gb=joined_memory_gb([plan.mem_gb.get("trialmodel", 0.0) for plan, _ in members]))
    wf.connect([(run_wf, merge, [("segmentation.model_inputs", f"in{i + 1}")])
                for i, (_, run_wf) in enumerate(members)])
    wf.connect(merge, "out", model, "runs")
    for i, sink_wf in enumerate(sink_wfs):
        wf.connect([(model, sink_wf, [(("run_files", pick, i), "derivatives.estimate_files"),
                                      (("run_info", pick, i), "derivatives.estimate_info")])])
