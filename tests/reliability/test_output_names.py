"""Output names: labels that cannot escape the output folder, runs found once, every entity carried."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.run import main
from tests.reliability.helpers import SUB1


@pytest.mark.parametrize("name", ["../../../../../X", "a/b", "a_b", "a-b", ""])
def test_atlas_name_must_be_a_bids_label(data, tmp_path, capsys, name):
    """--atlas-name must be letters and digits (exit 2), so no path escapes the output folder."""
    bids, _ = data
    atlas = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.int16), np.eye(4)), atlas)
    code = main([str(bids), str(tmp_path / "o"), "participant", "--atlas", str(atlas), "--atlas-name", name])
    assert code == 2 and "not a BIDS label" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not list(tmp_path.parent.glob("X*"))


def test_writer_refuses_paths_outside_the_output_folder(tmp_path):
    """The naming place refuses any entity that is not a label and any path that would escape."""
    from bidsapp.bids import naming

    with pytest.raises(ValueError, match="not a BIDS label"):
        naming.output_path(tmp_path, {"subject": "../..", "task": "x"}, "timeseries", ".npy")
    naming = naming.RunNaming({"subject": "01", "task": "x", "space": "MNI"}, desc="simple", atlas="a/b")
    with pytest.raises(ValueError, match="not a BIDS label"):
        naming.sidecar(tmp_path)


def test_desc_labels_are_alphanumeric_and_pybids_reads_them(tmp_path):
    """--denoise ica_aroma writes desc-icaaroma (pybids read desc-ica_aroma as desc-ica)."""
    from bids.layout import parse_file_entities

    from bidsapp.bids import naming

    naming = naming.RunNaming({"subject": "01", "task": "rest", "run": "1", "space": "MNI152NLin6Asym", "res": "2"},
                           desc=naming.desc_label("ica_aroma"))
    path = naming.sidecar(tmp_path)
    assert path.name == "sub-01_task-rest_run-1_space-MNI152NLin6Asym_res-2_desc-icaaroma_timeseries.json"
    ents = parse_file_entities(str(path), config=["bids", "derivatives"])
    assert ents["desc"] == "icaaroma" and ents["res"] == "2" and ents["space"] == "MNI152NLin6Asym"


def test_same_run_twice_is_exit_2_naming_both(data, tmp_path, capsys):
    """A .nii copy next to the .nii.gz is the same run found twice."""
    bids, _ = data
    fmriprep = tmp_path / "fmriprep"
    shutil.copytree(bids / "derivatives" / "fmriprep", fmriprep)
    gz = next(fmriprep.rglob("sub-01_task-faces_run-1_*_desc-preproc_bold.nii.gz"))
    plain = gz.with_name(gz.name[: -len(".gz")])
    nib.save(nib.load(gz), plain)
    code = main([str(bids), str(tmp_path / "o"), "participant", "--participant-label", "01",
                 "--fmriprep-dir", str(fmriprep)])
    err = capsys.readouterr().err
    assert code == 2 and "found twice" in err and gz.name in err and plain.name in err


def _sub01_fmriprep(bids: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the fMRIPrep folder with sub-01 only, and its func folder (tests that add or rename files)."""
    fmriprep = tmp_path / "fmriprep"
    shutil.copytree(bids / "derivatives" / "fmriprep", fmriprep, ignore=shutil.ignore_patterns("sub-02"))
    return fmriprep, fmriprep / "sub-01" / "func"


def test_res_entities_are_carried_to_masks_and_names(data, tmp_path, capsys):
    """A res-2 BOLD beside a res-1 one gets its own mask and its own output names."""
    bids, _ = data
    fmriprep, func = _sub01_fmriprep(bids, tmp_path)
    for f in list(func.glob("sub-01_task-faces_run-1_space-*")):
        new = f.with_name(f.name.replace("_space-MNI152NLin2009cAsym_", "_space-MNI152NLin2009cAsym_res-1_"))
        f.rename(new)
    bold1 = next(func.glob("*run-1*res-1_desc-preproc_bold.nii.gz"))
    img, mask = nib.load(bold1), nib.load(next(func.glob("*run-1*res-1_desc-brain_mask.nii.gz")))
    down = np.asanyarray(img.dataobj)[::2, ::2, ::2]
    aff2 = img.affine @ np.diag([2, 2, 2, 1])
    nib.save(nib.Nifti1Image(down, aff2, img.header), str(bold1).replace("res-1", "res-2"))
    nib.save(nib.Nifti1Image(np.asanyarray(mask.dataobj)[::2, ::2, ::2], aff2), str(bold1).replace(
        "res-1_desc-preproc_bold", "res-2_desc-brain_mask"))
    shutil.copy(bold1.with_name(bold1.name.replace(".nii.gz", ".json")),
                str(bold1).replace("res-1", "res-2").replace(".nii.gz", ".json"))
    out = tmp_path / "o"
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--task", "faces", "--run", "1",
                 "--fmriprep-dir", str(fmriprep), "--plugin", "Linear"])
    assert code == 0, capsys.readouterr().err
    folder = out / SUB1
    for res, shape in (("1", img.shape[:3]), ("2", down.shape[:3])):
        stem = f"sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_res-{res}"
        m = nib.load(folder / f"{stem}_desc-brain_mask.nii.gz")
        assert m.shape == shape
        meta = json.loads((folder / f"{stem}_desc-simple_timeseries.json").read_text())
        assert meta["MaskVoxelCount"] == int(np.asanyarray(m.dataobj).sum()) == meta["Shape"][1]


def test_non_ascii_atlas_names(data, tmp_path, capsys):
    bids, _ = data
    atlas = tmp_path / "äöü.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.int16), np.eye(4)), atlas)
    from bidsapp.cli.parser import parse_args

    s = parse_args([str(bids), str(tmp_path / "o"), "participant", "--atlas", str(atlas)])
    assert s.atlas_name == "atlas"  # nothing ASCII left of the file name
    assert main([str(bids), str(tmp_path / "o"), "participant", "--atlas", str(atlas), "--atlas-name", "ä"]) == 2
    assert "e.g. 'schaefer100'" in capsys.readouterr().err


def test_echo_and_part_runs_find_the_runs_confounds_and_mask(data, tmp_path):
    """fMRIPrep writes one confounds file and brain mask per run, not per echo or part."""
    from bidsapp.bids.collect import collect_runs

    bids, _ = data
    fmriprep, func = _sub01_fmriprep(bids, tmp_path)
    bold = next(func.glob("sub-01_task-faces_run-2_*_desc-preproc_bold.nii.gz"))
    for echo in (1, 2):
        shutil.copy(bold, str(bold).replace("_run-2_", f"_run-2_echo-{echo}_part-mag_"))
    bold.unlink()
    runs = collect_runs(bids, fmriprep, participants=["01"], runs=["2"])
    assert len(runs) == 2 and all(r.confounds is not None and r.mask is not None for r in runs)
    assert {r.entities["echo"] for r in runs} == {"1", "2"}


def test_symlinked_inputs_are_named_where_they_are_found(tmp_path):
    """DataLad / git-annex datasets: URIs name the file in the dataset, not its annex object."""
    from bidsapp.outputs.provenance import source_uri

    raw = tmp_path / "bids"
    annex = raw / ".git" / "annex" / "objects" / "ab"
    annex.mkdir(parents=True)
    (annex / "obj").write_text("x")
    func = raw / "derivatives" / "fmriprep" / "sub-01" / "func"
    func.mkdir(parents=True)
    link = func / "sub-01_task-a_desc-preproc_bold.nii.gz"
    link.symlink_to(os.path.relpath(annex / "obj", func))
    roots = {"fmriprep": raw / "derivatives" / "fmriprep", "raw": raw}
    assert source_uri(link, roots) == "bids:fmriprep:sub-01/func/sub-01_task-a_desc-preproc_bold.nii.gz"


def test_zero_padded_and_plain_run_labels_are_one_run(data, tmp_path, capsys):
    bids, _ = data
    fmriprep, func = _sub01_fmriprep(bids, tmp_path)
    for f in list(func.glob("sub-01_task-faces_run-1_*")):
        shutil.copy(f, f.with_name(f.name.replace("_run-1_", "_run-01_")))
    assert main([str(bids), str(tmp_path / "o"), "participant", "--participant-label", "01",
                 "--fmriprep-dir", str(fmriprep)]) == 2
    err = capsys.readouterr().err
    assert "found twice" in err and "run-01_" in err and "run-1_" in err
