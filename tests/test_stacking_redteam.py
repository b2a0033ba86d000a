"""Red-team cases of issue 23 (stacking checks, one meaning per name) found after it was merged.

- A sidecar that records only its ``ConfigurationHash`` (no ``Parameters``: an older bidsapp, a hand edit)
  was compared on no key at all, so runs of unknown settings were stacked with others without a word.
- The atlas entity was bound to the atlas file only within one ``desc``: following the refusal's hint
  (``--desc LABEL``) put a second atlas file under the same ``--atlas-name``, and the shared
  ``atlas-<name>_dseg`` of a run then invalidated the first atlas's outputs of that run.

Answers are checked against the raw files (json, numpy), not against the API itself.
"""

from __future__ import annotations

import json
import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest

import bidsapp
from bidsapp.cli.run import main

SPACE = "MNI152NLin2009cAsym"


def _stem(sub: str, run: int, desc: str = "simple", ses: str | None = None, atlas: str | None = None) -> str:
    return (f"sub-{sub}{f'_ses-{ses}' if ses else ''}_task-faces_run-{run}_space-{SPACE}"
            f"{f'_atlas-{atlas}' if atlas else ''}_desc-{desc}")


def _participant(bids, out, *args) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main([str(bids), str(out), "participant", "--nprocs", "1", "--trial-estimates", "lss", *args])


def _copy_sub01(demo_outputs, dst):
    src = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp"
    shutil.copytree(src / "sub-01", dst / "sub-01")
    shutil.copy(src / "dataset_description.json", dst)
    return dst


def _drop_parameters(sidecar, hash_value=None) -> None:
    meta = json.loads(sidecar.read_text())
    meta.pop("Parameters", None)
    if hash_value is None:
        meta.pop("ConfigurationHash", None)
    else:
        meta["ConfigurationHash"] = hash_value
    sidecar.write_text(json.dumps(meta))


@pytest.mark.parametrize("hash_value", ["0123456789abcdef", None])
def test_sidecar_without_parameters_is_not_stacked_silently(demo_outputs, tmp_path, hash_value):
    out = _copy_sub01(demo_outputs, tmp_path / "out")
    folder = out / "sub-01" / "func"
    run1 = json.loads((folder / f"{_stem('01', 1)}_timeseries.json").read_text())
    assert run1["Parameters"]["standardize"] == "zscore_sample"  # the raw sidecar records its settings
    _drop_parameters(folder / f"{_stem('01', 2)}_timeseries.json", hash_value)
    with pytest.raises(ValueError, match=r"run-2\S+ was made with other settings than \S+run-1\S+: Parameters "
                                         r"\('recorded' in the first, 'not recorded' in the second\)"):
        bidsapp.dataset(out, kind="betas", subject="01")
    # each run alone is still readable, and equals its raw array
    ds = bidsapp.dataset(out, kind="betas", subject="01", run=2)
    raw = np.load(folder / f"{_stem('01', 2)}_betas.npy")
    np.testing.assert_array_equal(ds.X, raw)


def test_two_sidecars_with_only_their_hashes_compare_the_hashes(demo_outputs, tmp_path):
    out = _copy_sub01(demo_outputs, tmp_path / "out")
    folder = out / "sub-01" / "func"
    _drop_parameters(folder / f"{_stem('01', 1)}_timeseries.json", "aaaaaaaaaaaaaaaa")
    _drop_parameters(folder / f"{_stem('01', 2)}_timeseries.json", "bbbbbbbbbbbbbbbb")
    with pytest.raises(ValueError, match=r"ConfigurationHash \('aaaaaaaaaaaaaaaa' in the first"):
        bidsapp.dataset(out, kind="betas", subject="01")
    _drop_parameters(folder / f"{_stem('01', 2)}_timeseries.json", "aaaaaaaaaaaaaaaa")
    ds = bidsapp.dataset(out, kind="betas", subject="01")
    raw = np.concatenate([np.load(folder / f"{_stem('01', r)}_betas.npy") for r in (1, 2)])
    np.testing.assert_array_equal(ds.X, raw)


def test_participant_level_refuses_a_name_whose_sidecar_records_no_parameters(demo_outputs, tmp_path, capsys):
    bids = demo_outputs / "bidsapp-demo-output" / "bids"
    out = _copy_sub01(demo_outputs, tmp_path / "out")
    sidecar = out / "sub-01" / "func" / f"{_stem('01', 2)}_timeseries.json"
    _drop_parameters(sidecar, "0123456789abcdef")
    before = {p.name: p.stat().st_mtime_ns for p in (out / "sub-01" / "func").iterdir()}
    capsys.readouterr()
    # the same settings as the demo: only run 2's sidecar, which records no Parameters, cannot be compared
    assert _participant(bids, out, "--participant-label", "01", "--run", "1", "--work-dir", str(tmp_path / "w")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "run-2" in err and "Parameters ('not recorded' there, 'recorded' now)" in err and "--desc LABEL" in err
    assert before == {p.name: p.stat().st_mtime_ns for p in (out / "sub-01" / "func").iterdir()}


def _atlas_files(bids, base):
    """Two atlas files on the demo's grid: left/right halves, labels swapped in the second."""
    mask = nib.load(next(bids.rglob(f"sub-01_task-faces_run-1_space-{SPACE}_desc-brain_mask.nii.gz")))
    brain = np.asanyarray(mask.dataobj) > 0
    left = np.indices(brain.shape)[0] < brain.shape[0] // 2
    paths = []
    for k, labels in enumerate((np.where(left, 1, 2), np.where(left, 2, 1))):
        path = base / f"a{k}" / "atlas_dseg.nii.gz"
        path.parent.mkdir(parents=True)
        nib.save(nib.Nifti1Image(np.where(brain, labels, 0).astype(np.int16), mask.affine), path)
        paths.append(path)
    return paths


def test_atlas_name_bound_to_one_file_whatever_the_desc(demo_outputs, tmp_path, capsys):
    """The refusal's hint for a second atlas file is another --atlas-name (followed literally below), not --desc:
    every desc of a run shares its atlas-<name>_dseg file, so --desc would invalidate the first atlas's outputs."""
    bids = demo_outputs / "bidsapp-demo-output" / "bids"
    first, second = _atlas_files(bids, tmp_path / "atlases")
    out = tmp_path / "out"
    common = ("--run", "1", "--work-dir", str(tmp_path / "w"))
    assert _participant(bids, out, "--participant-label", "01", *common, "--atlas", str(first),
                        "--atlas-name", "halves") == 0
    sidecar = out / "sub-01" / "func" / f"{_stem('01', 1, atlas='halves')}_timeseries.json"
    assert sidecar.exists()
    for label in ("01", "02"):
        capsys.readouterr()
        assert _participant(bids, out, "--participant-label", label, *common, "--atlas", str(second),
                            "--atlas-name", "halves", "--desc", "other") == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "atlas ('sha256:" in err
        assert "give these files another --atlas-name" in err and "--desc LABEL" not in err
        assert sidecar.exists()  # the first atlas's outputs stay complete
    assert not list(out.glob("sub-*/**/*_desc-other_*"))  # nothing half-written
    # the hint, followed literally
    assert _participant(bids, out, "--participant-label", "01", *common, "--atlas", str(second),
                        "--atlas-name", "halvesb") == 0
    assert sidecar.exists()
    raw_first = np.load(out / "sub-01" / "func" / f"{_stem('01', 1, atlas='halves')}_timeseries.npy")
    raw_second = np.load(out / "sub-01" / "func" / f"{_stem('01', 1, atlas='halvesb')}_timeseries.npy")
    np.testing.assert_array_equal(raw_first, raw_second[:, ::-1])  # same regions, labels swapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both complete: nothing left out
        run = bidsapp.load(out, subject="01", run=1, atlas="halves")
    np.testing.assert_array_equal(run.X, raw_first)


def test_one_name_two_settings_hint_can_be_followed(demo_outputs, tmp_path):
    """Two invocations at once with other settings can both write under one name (each checked the folder before
    the other wrote); dataset() refuses to stack them, and its hint, which cannot be desc=... since both runs
    have the same name, is followed literally: --replace-outputs for the runs to redo."""
    bids = demo_outputs / "bidsapp-demo-output" / "bids"
    out = _copy_sub01(demo_outputs, tmp_path / "out")
    folder = out / "sub-01" / "func"
    sidecar = folder / f"{_stem('01', 2)}_timeseries.json"
    meta = json.loads(sidecar.read_text())
    meta["Parameters"]["standardize"] = "psc"  # what the other invocation would have recorded
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"both are named space-\S+_desc-simple, so no entity tells them apart: "
                                         r"rerun the participant level .* --replace-outputs\.$"):
        bidsapp.dataset(out, kind="betas", subject="01")
    assert _participant(bids, out, "--participant-label", "01", "--run", "2", "--replace-outputs",
                        "--work-dir", str(tmp_path / "w")) == 0
    assert json.loads(sidecar.read_text())["Parameters"]["standardize"] == "zscore_sample"
    ds = bidsapp.dataset(out, kind="betas", subject="01")
    raw = np.concatenate([np.load(folder / f"{_stem('01', r)}_betas.npy") for r in (1, 2)])
    np.testing.assert_array_equal(ds.X, raw)
