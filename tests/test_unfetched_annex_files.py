"""An input that is a dangling symbolic link (a DataLad / git-annex file whose content was not fetched) is named
with the fix, not as a bare "not found" or a path inside ``.git/annex``."""

from __future__ import annotations

import os
import shutil

import pytest

from bidsapp.cli.run import main


def _unfetch(path, relative: bool) -> None:
    """Replace ``path`` with a link to an absent annex object, as ``datalad install`` leaves a file not fetched."""
    root = next(p for p in path.parents if p.name == "bids")
    target = root / ".git" / "annex" / "objects" / "Xx" / "Yy" / f"SHA256E-s1--{path.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    path.unlink()
    path.symlink_to(os.path.relpath(target, path.parent) if relative else target)
    assert path.is_symlink() and not path.exists()


def _run(bids, tmp_path, capsys) -> tuple[int, str]:
    code = main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "1",
                 "--nprocs", "1"])
    return code, capsys.readouterr().err.strip()


def test_an_unfetched_bold_and_confounds_file_are_named_with_datalad_get(demo, tmp_path, capsys):
    bids = tmp_path / "bids"
    shutil.copytree(demo[0], bids)
    func = bids / "derivatives" / "fmriprep" / "sub-01" / "func"
    bold = sorted(func.glob("*run-1*_desc-preproc_bold.nii.gz"))[0]
    saved = tmp_path / "bold.nii.gz"
    shutil.copy(bold, saved)
    _unfetch(bold, relative=False)
    code, err = _run(bids, tmp_path, capsys)
    assert code != 0 and len(err.splitlines()) == 1 and str(bold) in err, err
    assert "symbolic link to a missing file" in err and f"datalad get {bold}" in err
    bold.unlink()
    shutil.copy(saved, bold)
    confounds = sorted(func.glob("*run-1*_desc-confounds_timeseries.tsv"))[0]
    _unfetch(confounds, relative=True)
    code, err = _run(bids, tmp_path, capsys)
    assert code != 0 and str(confounds) in err.splitlines()[-1] and "datalad get" in err, err


@pytest.mark.parametrize("which", ["fmriprep_json", "raw_json", "confounds_json"])
def test_an_unfetched_json_sidecar_is_not_taken_as_absent(demo, tmp_path, capsys, which):
    """fMRIPrep's BOLD JSON holds StartTime: a dangling link taken as no file gave another start time, exit 0."""
    bids = tmp_path / "bids"
    shutil.copytree(demo[0], bids)
    func = bids / "derivatives" / "fmriprep" / "sub-01" / "func"
    path = {"fmriprep_json": lambda: sorted(func.glob("*run-1*_desc-preproc_bold.json"))[0],
            "raw_json": lambda: sorted(bids.glob("sub-01/**/*run-1*_bold.json"))[0],
            "confounds_json": lambda: sorted(func.glob("*run-1*_desc-confounds_timeseries.json"))[0]}[which]()
    _unfetch(path, relative=True)
    code, err = _run(bids, tmp_path, capsys)
    assert code != 0 and str(path) in err and "datalad get" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("which", ["raw", "fmriprep"])
def test_an_unfetched_dataset_description_is_not_taken_as_absent(demo, tmp_path, capsys, which):
    """Without the raw dataset's description its events were not looked for (exit 0, no trial outputs); without
    fMRIPrep's, the outputs named no fMRIPrep version."""
    bids = tmp_path / "bids"
    shutil.copytree(demo[0], bids)
    path = (bids if which == "raw" else bids / "derivatives" / "fmriprep") / "dataset_description.json"
    _unfetch(path, relative=True)
    code, err = _run(bids, tmp_path, capsys)
    assert code != 0 and str(path) in err and "datalad get" in err and len(err.splitlines()) == 1, err


def test_unfetched_outputs_are_named_with_the_fetch_not_a_rerun(demo_outputs, tmp_path):
    """A derivatives dataset installed with DataLad and not fetched: its outputs are links to missing files."""
    import bidsapp

    out = tmp_path / "bids" / "out"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp", out)
    array = sorted(out.glob("sub-01/func/*run-1*_timeseries.npy"))[0]
    _unfetch(array, relative=True)
    with pytest.raises(FileNotFoundError, match=r"symbolic link to a missing file.*\(datalad get\)\); fetch them"):
        bidsapp.load(out, subject="01", run=1, space="MNI152NLin2009cAsym", atlas=None)
