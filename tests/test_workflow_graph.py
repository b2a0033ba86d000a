"""The participant workflow graph is built (never run) for every column kind x output format x trial option.

As fMRIPrep's ``test_base.py`` does: the command line is parsed, the runs of a generated fMRIPrep folder are
collected and planned, and each run's graph is built and expanded; every mandatory node input must be set or
connected. Unsupported combinations must be refused by the planning, with one line naming the option.
"""

from __future__ import annotations

import dataclasses
import itertools

import nibabel as nib
import numpy as np
import pytest
from nipype.interfaces.base import isdefined

from bidsapp.bids.collect import InputError, collect_runs
from bidsapp.cli.parser import parse_args
from bidsapp.cli.plan import plan_run
from bidsapp.demo import make_dataset
from bidsapp.options import OUTPUT_FORMATS, step_specs
from bidsapp.workflows.base import init_run_wf

#: column kind -> (subject, command-line options, atlas file made by the fixture, output formats it supports;
#: a GIFTI pair may also be written as one surface-only dtseries.nii)
KINDS = {
    "voxels": ("01", [], None, ("npy", "tsv.gz", "nii.gz")),
    "atlas labels": ("01", [], "atlas-test_dseg.nii.gz", ("npy", "tsv.gz", "nii.gz")),
    "grayordinates dtseries": ("03", ["--space", "fsLR", "--den", "91k"], None, ("npy", "tsv.gz", "dtseries.nii")),
    "grayordinates func.gii": ("03", ["--space", "fsaverage5"], None, ("npy", "tsv.gz", "func.gii", "dtseries.nii")),
    "grayordinate atlas dlabel": ("03", ["--space", "fsLR", "--den", "91k"], "atlas-test_dseg.dlabel.nii",
                                  ("npy", "tsv.gz", "dtseries.nii")),
    "grayordinate atlas label.gii": ("03", ["--space", "fsaverage5"], "hemi-L_atlas-test_dseg.label.gii",
                                     ("npy", "tsv.gz", "func.gii", "dtseries.nii")),
}
TRIALS = {"none": None, "trials": [], "lss": ["--trial-estimates", "lss"]}  # none: the run has no events.tsv
EDGES = {("inputnode", "mask"), ("inputnode", "masking"), ("mask", "masking"), ("masking", "cleaning"),
         ("inputnode", "cleaning"), ("cleaning", "segmentation"), ("inputnode", "segmentation"),
         ("mask", "derivatives"), ("masking", "derivatives"), ("cleaning", "derivatives"),
         ("segmentation", "derivatives"), ("provenance", "derivatives"), ("derivatives", "outputnode"),
         ("inputnode", "report"), ("masking", "report"), ("cleaning", "report"), ("report", "derivatives"),
         ("mask", "provenance"), ("masking", "provenance")}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A generated fMRIPrep folder with volume runs (sub-01) and CIFTI-2 / GIFTI runs (sub-03), and atlases.

    The volume atlas is a real integer labels image on the runs' grid; the grayordinate atlases are only
    named (the graph is built, not run: their content is not read).
    """
    base = tmp_path_factory.mktemp("graph")
    bids = base / "bids"
    make_dataset(bids, grayordinates=True, n_volumes=40)
    mask = next((bids / "derivatives" / "fmriprep" / "sub-01").rglob("*run-1*desc-brain_mask.nii.gz"))
    img = nib.load(mask)
    labels = np.where(np.asanyarray(img.dataobj) > 0, 1 + np.indices(img.shape)[0] % 4, 0).astype(np.int16)
    nib.save(nib.Nifti1Image(labels, img.affine), base / "atlas-test_dseg.nii.gz")
    for name in ("atlas-test_dseg.dlabel.nii", "hemi-L_atlas-test_dseg.label.gii", "hemi-R_atlas-test_dseg.label.gii"):
        (base / name).touch()
    runs = {}
    for kind, (subject, options, _, _) in KINDS.items():
        s = parse_args([str(bids), str(base / "out"), "participant", "--participant-label", subject, *options])
        runs[kind] = collect_runs(**step_specs(s)["collection"])[0]
    return bids, base, runs


def _mandatory_inputs_are_given(wf) -> None:
    """Every mandatory input of every node is set or the end of an edge."""
    graph = wf._create_flat_graph()
    for node in graph.nodes():
        connected = {dest for _, _, data in graph.in_edges(node, data=True) for _, dest in data["connect"]}
        for name in node.inputs.traits(mandatory=True):
            given = isdefined(getattr(node.inputs, name))
            assert given or name in connected, f"{node.name}.{name} is neither set nor connected"


CASES = list(itertools.product(KINDS, OUTPUT_FORMATS, TRIALS))


@pytest.mark.parametrize(("kind", "fmt", "trials"), CASES, ids=["-".join(c) for c in CASES])
def test_graph_builds_or_is_refused(dataset, kind, fmt, trials):
    bids, base, runs = dataset
    subject, options, atlas, supported = KINDS[kind]
    argv = [str(bids), str(base / "out"), "participant", *options, "--output-format", fmt, "--mem-gb", "64",
            *(TRIALS[trials] or [])]
    if atlas:
        argv += ["--atlas", str(base / atlas)]
    s = parse_args(argv)
    run = runs[kind] if TRIALS[trials] is not None else dataclasses.replace(runs[kind], events=None)
    if fmt not in supported:
        with pytest.raises(InputError, match=f"--output-format {fmt}"):
            plan_run(run, s, None)
        return
    wf = init_run_wf(plan_run(run, s, None))
    assert {(u.name, v.name) for u, v in wf._graph.edges()} == EDGES
    _mandatory_inputs_are_given(wf)
    node = wf.get_node
    assert node("derivatives").inputs.output_format == [fmt]
    assert node("segmentation").inputs.trial_estimates == ("lss" if trials == "lss" else None)
    assert (node("inputnode").inputs.events_file is None) == (trials == "none")
    assert (node("masking").inputs.atlas_file == (str(base / atlas) if atlas else None))
    assert (node("masking").inputs.bold_right is not None) == ("--space" in options and "fsaverage5" in options)
    expanded = wf._create_flat_graph()
    assert len(expanded.nodes()) == 9


def test_matrix_covers_every_format_and_kind():
    assert {f for *_, formats in KINDS.values() for f in formats} == set(OUTPUT_FORMATS)
    assert {k for k, *_ in CASES} == set(KINDS) and {t for *_, t in CASES} == set(TRIALS)
