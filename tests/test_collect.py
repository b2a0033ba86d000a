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


def _events_only_at(root, where: dict) -> None:
    """Remove every events file of the raw dataset, then write ``where`` (path relative to root -> onset)."""
    for tsv in root.glob("sub-*/**/*_events.tsv"):
        tsv.unlink()
    for rel, onset in where.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"onset\tduration\ttrial_type\n{onset}\t1\tface\n")


def _events_of_runs(root) -> dict:
    return {r.label: r.events.relative_to(root).as_posix() if r.events else None
            for r in collect_runs(root, root / "derivatives" / "fmriprep")}


def test_events_found_by_the_inheritance_principle(demo, tmp_path):
    """An events file applies to every run whose entities include its own, in its folder or below; the deepest wins,
    and files in other folders (another participant's, a sibling session's) or with other entities do not apply."""
    root = tmp_path / "bids"
    shutil.copytree(demo[0], root)
    _events_only_at(root, {"task-faces_events.tsv": 1, "sub-01/func/sub-01_task-faces_events.tsv": 2,
                           "sub-02/sub-02_task-faces_run-2_events.tsv": 3,
                           "sub-02/func/sub-02_task-faces_events.tsv": 4,
                           "sub-01/func/sub-01_task-other_events.tsv": 5})
    assert _events_of_runs(root) == {
        "sub-01_task-faces_run-1": "sub-01/func/sub-01_task-faces_events.tsv",
        "sub-01_task-faces_run-2": "sub-01/func/sub-01_task-faces_events.tsv",
        "sub-02_ses-1_task-faces_run-1": "task-faces_events.tsv",  # sub-02/func is not a folder of ses-1's runs
        "sub-02_ses-1_task-faces_run-2": "sub-02/sub-02_task-faces_run-2_events.tsv"}
    runs = collect_runs(root, root / "derivatives" / "fmriprep", participants=["02"])
    assert runs[0].events_search == (f"*_events.tsv in sub-02/ses-1/func/, sub-02/ses-1/, sub-02/ and the top folder "
                                     f"of {root} and of {root / 'derivatives' / 'fmriprep'}")


def test_raw_events_win_over_derivatives_at_one_level_and_deeper_ones_win(demo, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(demo[0], root)
    _events_only_at(root, {"sub-01/func/sub-01_task-faces_events.tsv": 1,
                           "derivatives/fmriprep/sub-01/func/sub-01_task-faces_events.tsv": 2,
                           "derivatives/fmriprep/sub-02/ses-1/func/sub-02_ses-1_task-faces_run-1_events.tsv": 3,
                           "task-faces_events.tsv": 4})
    found = _events_of_runs(root)
    assert found["sub-01_task-faces_run-1"] == "sub-01/func/sub-01_task-faces_events.tsv"
    assert found["sub-02_ses-1_task-faces_run-1"] == (
        "derivatives/fmriprep/sub-02/ses-1/func/sub-02_ses-1_task-faces_run-1_events.tsv")
    assert found["sub-02_ses-1_task-faces_run-2"] == "task-faces_events.tsv"


def test_events_match_a_run_index_written_with_or_without_zeros(demo, tmp_path):
    """BIDS run indices are numbers: ``run-01`` events belong to a ``run-1`` BOLD (and ``run-1`` events to a
    ``run-01`` BOLD), as pybids reads them; ``run-10`` stays run 10."""
    root = tmp_path / "bids"
    shutil.copytree(demo[0], root)
    _events_only_at(root, {"sub-01/func/sub-01_task-faces_run-01_events.tsv": 1,
                           "sub-01/func/sub-01_task-faces_run-20_events.tsv": 2,
                           "sub-02/ses-1/func/sub-02_ses-1_task-faces_run-2_events.tsv": 3})
    for path in (root / "derivatives/fmriprep/sub-02/ses-1/func").glob("*run-2_*"):
        path.rename(path.with_name(path.name.replace("run-2_", "run-002_")))
    found = _events_of_runs(root)
    assert found["sub-01_task-faces_run-1"] == "sub-01/func/sub-01_task-faces_run-01_events.tsv"
    assert found["sub-01_task-faces_run-2"] is None  # run-20 is another run
    assert found["sub-02_ses-1_task-faces_run-002"] == "sub-02/ses-1/func/sub-02_ses-1_task-faces_run-2_events.tsv"


def test_two_events_files_at_one_level_are_refused_naming_both(demo, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(demo[0], root)
    _events_only_at(root, {"sub-01/func/sub-01_task-faces_events.tsv": 1,
                           "sub-01/func/sub-01_task-faces_run-1_events.tsv": 2})
    with pytest.raises(InputError, match="two events files apply to this run at the same level") as exc:
        collect_runs(root, root / "derivatives" / "fmriprep", participants=["01"])
    assert exc.value.code == 2
    assert str(root / "sub-01/func/sub-01_task-faces_events.tsv") in str(exc.value)
    assert str(root / "sub-01/func/sub-01_task-faces_run-1_events.tsv") in str(exc.value)
    assert "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz" in str(exc.value)
