import json
import shutil

import pytest

from bidsapp.bids.collect import InputError, collect_runs


def test_collect_demo(demo):
    root, _ = demo
    runs = collect_runs(root, root / "derivatives" / "fmriprep")
    assert [r.label for r in runs] == ["sub-01_task-faces_run-1", "sub-01_task-faces_run-2",
                                       "sub-02_ses-1_task-faces_run-1", "sub-02_ses-1_task-faces_run-2"]
    r = runs[2]
    assert r.mask.name.endswith("desc-brain_mask.nii.gz") and r.confounds.name.endswith("timeseries.tsv")
    assert r.confounds_json is not None and r.events.name == "sub-02_ses-1_task-faces_run-1_events.tsv"
    assert r.metadata["RepetitionTime"] == 2.0 and r.metadata["StartTime"] == 1.0
    assert "SliceTiming" in r.metadata  # inherited from the raw sidecar
    only = collect_runs(root, root / "derivatives" / "fmriprep", participants=["sub-02"], sessions=["1"], runs=["2"])
    assert [r.label for r in only] == ["sub-02_ses-1_task-faces_run-2"]


def test_bids_inheritance_of_tr(demo, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(demo[0], root)
    for js in root.rglob("*desc-preproc_bold.json"):
        js.unlink()
    for js in root.rglob("sub-*_bold.json"):
        js.unlink()
    (root / "task-faces_bold.json").write_text(json.dumps({"TaskName": "faces", "RepetitionTime": 1.5}))
    runs = collect_runs(root, root / "derivatives" / "fmriprep", participants=["01"])
    assert all(r.metadata["RepetitionTime"] == 1.5 for r in runs)


def test_derivatives_only(demo, tmp_path):
    fmriprep = tmp_path / "fmriprep"
    shutil.copytree(demo[0] / "derivatives" / "fmriprep", fmriprep)
    runs = collect_runs(fmriprep, fmriprep, participants=["01"])
    assert len(runs) == 2 and runs[0].events is None and runs[0].metadata["RepetitionTime"] == 2.0


def test_errors(demo, tmp_path):
    root, _ = demo
    with pytest.raises(InputError, match="fMRIPrep folder not found") as exc:
        collect_runs(root, tmp_path / "none")
    assert exc.value.code == 66
    with pytest.raises(InputError, match="no desc-preproc BOLD") as exc:
        collect_runs(root, root / "derivatives" / "fmriprep", space="MNI152NLin6Asym")
    assert exc.value.code == 18
