"""bidsapp.load and bidsapp.dataset on the demo outputs: values, and every error case."""

from __future__ import annotations

import json
import re
import shutil
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import bidsapp
from bidsapp.core.files import save_npy

SPACE = "MNI152NLin2009cAsym"


@pytest.fixture(scope="module")
def out(demo_outputs):
    return demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp"


def _stem(sub, run, ses=None, desc="simple"):
    ses_part = f"_ses-{ses}" if ses else ""
    return f"sub-{sub}{ses_part}_task-faces_run-{run}_space-{SPACE}_desc-{desc}"


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, bidsapp; print('pandas' in sys.modules, 'nipype' in sys.modules, callable(bidsapp.load))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == \
        ["False", "False", "True"]


def test_load_one_run(out):
    run = bidsapp.load(out, subject="sub-02", session="1", run=2)  # "sub-02" and "02", run=2 and "2"
    folder = out / "sub-02" / "ses-1" / "func"
    stem = _stem("02", "2", "1")
    X = np.load(folder / f"{stem}_timeseries.npy")
    assert isinstance(run.X, np.memmap) and np.array_equal(run.X, X)
    assert run.meta == json.loads((folder / f"{stem}_timeseries.json").read_text())
    assert run.entities == {"subject": "02", "session": "1", "task": "faces", "run": "2", "space": SPACE,
                            "desc": "simple"}
    s = run.samples
    assert s["kept"].dtype == bool and s["row"].dtype == "Int64" and len(s) == 100
    assert s.loc[s["kept"], "row"].tolist() == list(range(X.shape[0]))
    assert s["trial"].dropna().str.match(r"^\d+(,\d+)*$").all()
    assert list(run.features.columns) == ["column", "i", "j", "k", "x", "y", "z"]
    assert run.betas.shape == (12, X.shape[1]) and len(run.betas_table) == 12
    assert run.trials.shape[0] == run.trials_table["segment"].notna().sum()
    img = run.to_image(run.X[:3])
    mask = np.asanyarray(nib.load(run.mask_file).dataobj) > 0
    assert img.shape == mask.shape + (3,)
    f = run.features.loc[5]
    assert img.get_fdata()[int(f["i"]), int(f["j"]), int(f["k"]), 1] == pytest.approx(X[1, 5])


def test_load_errors(out, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        bidsapp.load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="run the participant level|participant"):
        bidsapp.load(tmp_path)
    with pytest.raises(LookupError, match=r"no run matches subject='07' .*subject is one of \['01', '02', '03'\]"):
        bidsapp.load(out, subject="07")
    with pytest.raises(LookupError, match=r"no run matches .*run is one of \['1', '2'\]"):
        bidsapp.load(out, subject="01", run=7)
    with pytest.raises(LookupError, match=r"2 runs match subject='01': .*run-1.*run-2.*; add run=\.\.\. "
                                          r"\(one of \['1', '2'\]\)"):
        bidsapp.load(out, subject="01")
    with pytest.raises(LookupError, match=r"6 runs match .*add subject="):
        bidsapp.load(out)
    with pytest.raises(ValueError, match=r"unknown entity \['sub'\]; use any of"):
        bidsapp.load(out, sub="01")
    run = bidsapp.load(out, subject="01", run=1)
    with pytest.raises(ValueError, match=r"do not match the 1640 columns"):
        run.to_image(np.zeros(5))
    with pytest.raises(ValueError, match=r"do not match"):
        run.to_image(np.zeros((2, 2, 1640)))


def test_load_incomplete_outputs(out, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(out / "sub-01", copy / "sub-01")
    (copy / "sub-01" / "func" / f"{_stem('01', '1')}_timeseries.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"outputs incomplete \(.*_timeseries.npy is missing\); rerun"):
        bidsapp.load(copy, subject="01", run=1)


def test_dataset_betas_trials_timeseries(out):
    ds = bidsapp.dataset(out, kind="betas", subject="01")
    runs = [bidsapp.load(out, subject="01", run=r) for r in (1, 2)]
    valid = [r.betas_table["valid"].to_numpy(bool) for r in runs]
    assert np.array_equal(ds.X, np.concatenate([np.asarray(r.betas)[v] for r, v in zip(runs, valid)]))
    assert list(ds.y) == sum((r.betas_table["trial_type"][v].tolist() for r, v in zip(runs, valid)), [])
    assert sorted(set(ds.groups)) == ["sub-01_task-faces_run-1", "sub-01_task-faces_run-2"]
    assert list(ds.table.columns[:4]) == ["source", "subject", "task", "run"]
    assert ds.to_image(ds.X[0]).shape == (18, 22, 18)
    onset = bidsapp.dataset(out, kind="betas", subject="01", y="onset")
    assert onset.y.dtype.kind == "f"
    every = bidsapp.dataset(out, kind="trials", subject="02")  # sessions are stacked too
    assert every.X.ndim == 3 and every.X.shape[0] == len(every.table) == len(every.y)
    assert set(every.table["session"]) == {"1"}
    ts = bidsapp.dataset(out, kind="timeseries", subject="01", run=1)
    assert np.array_equal(ts.X, runs[0].X) and ts.table["row"].tolist() == list(range(runs[0].X.shape[0]))


def test_dataset_errors(out, tmp_path):
    with pytest.raises(ValueError, match=r"kind='bold': use one of \['betas', 'trials', 'timeseries', 'connectivity']"):
        bidsapp.dataset(out, kind="bold")
    with pytest.raises(ValueError, match=r"y='condition' is not a column of the betas table; columns: "):
        bidsapp.dataset(out, subject="01", y="condition")
    with pytest.raises(LookupError, match="no run matches"):
        bidsapp.dataset(out, subject="09")
    copy = tmp_path / "out"
    shutil.copytree(out / "sub-01", copy / "sub-01")
    folder = copy / "sub-01" / "func"
    for f in folder.glob(f"{_stem('01', '2')}_*"):  # the same run, denoised another way
        if f.name.endswith("_timeseries.json"):  # its sidecar lists its own files
            (folder / f.name.replace("desc-simple", "desc-other")).write_text(
                f.read_text().replace("desc-simple", "desc-other"))
        else:
            shutil.copy(f, folder / f.name.replace("desc-simple", "desc-other"))
    with pytest.raises(LookupError, match=r"mix desc values \['other', 'simple'\].*add desc=\.\.\."):
        bidsapp.dataset(copy, subject="01")
    for f in folder.glob(f"{_stem('01', '2', desc='other')}_betas.*"):
        f.unlink()
    sidecar = folder / f"{_stem('01', '2', desc='other')}_timeseries.json"
    meta = json.loads(sidecar.read_text())
    meta["OutputFiles"] = [e for e in meta["OutputFiles"] if "_betas." not in e["Path"]]
    meta["Parameters"]["trial_estimates"] = None  # a run made without LSS
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(FileNotFoundError,
                       match=r"desc-other_betas.npy: not written .*without --trial-estimates "
                             r"\(lss, lsa or optimized\)"):
        bidsapp.dataset(copy, subject="01", desc="other")


def _drop_columns(folder, stem, drop: np.ndarray) -> None:
    """Rewrite a run's outputs as if its mask lacked the voxels of columns ``drop``."""
    feats = pd.read_csv(folder / f"{stem}_features.tsv", sep="\t")
    meta = json.loads((folder / f"{stem}_timeseries.json").read_text())
    listed = [f["Path"] if isinstance(f, dict) else f for f in meta["OutputFiles"]]
    mask_name = next(f for f in listed if f.endswith("_desc-brain_mask.nii.gz"))
    mask = nib.load(folder / mask_name)
    data = np.asanyarray(mask.dataobj).copy()
    data[tuple(feats.loc[drop, ["i", "j", "k"]].to_numpy().T)] = 0
    nib.save(nib.Nifti1Image(data, mask.affine), folder / mask_name)
    keep = np.setdiff1d(np.arange(len(feats)), drop)
    feats = feats.iloc[keep].assign(column=np.arange(keep.size))
    feats.to_csv(folder / f"{stem}_features.tsv", sep="\t", index=False)
    for kind in ("timeseries", "betas", "trials"):
        arr = np.load(folder / f"{stem}_{kind}.npy")
        save_npy(np.ascontiguousarray(arr[..., keep]), folder / f"{stem}_{kind}.npy")
    relist(folder / f"{stem}_timeseries.json")


def relist(sidecar) -> None:
    """Rewrite a sidecar's sizes and checksums after its files were edited (as a run made that way would list)."""
    from bidsapp.core.files import sha256sum

    meta = json.loads(sidecar.read_text())
    for entry in meta["OutputFiles"]:
        path = sidecar.parent / entry["Path"]
        entry.update(Size=path.stat().st_size, SHA256=sha256sum(path))
    sidecar.write_text(json.dumps(meta))


def test_dataset_masks_intersection_and_grids(out, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(out / "sub-01", copy / "sub-01")
    folder = copy / "sub-01" / "func"
    _drop_columns(folder, _stem("01", "2"), np.arange(0, 40, 2))  # run 2's mask lacks 20 voxels
    with pytest.warns(UserWarning, match=r"intersection \(1620 voxels\); 20 column\(s\) dropped"):
        ds = bidsapp.dataset(copy, kind="betas", subject="01")
    run1 = bidsapp.load(out, subject="01", run=1)
    keep = np.setdiff1d(np.arange(1640), np.arange(0, 40, 2))
    valid = run1.betas_table["valid"].to_numpy(bool)
    np.testing.assert_array_equal(ds.X[: valid.sum()], np.asarray(run1.betas)[valid][:, keep])
    assert ds.features["i"].tolist() == run1.features["i"][keep].tolist()
    img = ds.to_image(np.ones(1620))
    assert img.get_fdata().sum() == 1620 and img.get_fdata()[tuple(run1.features.loc[0, ["i", "j", "k"]])] == 0
    # a mask on another grid cannot be intersected
    mask_file = next(folder.glob(f"{_stem('01', '2').replace('desc-simple', 'desc-brain')}_mask.nii.gz"))
    m = nib.load(mask_file)
    nib.save(nib.Nifti1Image(np.asanyarray(m.dataobj), m.affine * np.diag([2, 2, 2, 1])), mask_file)
    relist(folder / f"{_stem('01', '2')}_timeseries.json")
    with pytest.raises(ValueError, match=r"differs from .*cannot be stacked"):
        bidsapp.dataset(copy, kind="betas", subject="01")


@pytest.fixture(scope="module")
def atlas_out(demo_outputs, tmp_path_factory):
    from bidsapp.cli.run import main

    base = tmp_path_factory.mktemp("atlas")
    bids = demo_outputs / "bidsapp-demo-output" / "bids"
    mask = nib.load(next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-brain_mask.nii.gz")))
    brain = np.asanyarray(mask.dataobj) > 0
    labels = np.where(brain, 1 + (np.indices(brain.shape)[0] >= 9), 0).astype(np.int16)
    nib.save(nib.Nifti1Image(labels, mask.affine), base / "atlas-halves_dseg.nii.gz")
    (base / "atlas-halves_dseg.tsv").write_text("index\tname\n1\tleft\n2\tright\n")
    out = base / "out"
    voxels = base / "voxels"
    voxels.mkdir()
    for f in (demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp" / "sub-01" / "func").glob("*run-1*"):
        shutil.copy(f, voxels)
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--nprocs", "1",
                 "--atlas", str(base / "atlas-halves_dseg.nii.gz"), "--atlas-labels",
                 str(base / "atlas-halves_dseg.tsv"), "--work-dir", str(base / "work")]) == 0
    return out, labels


def test_atlas_mode_to_image_and_provenance(atlas_out):
    out, labels = atlas_out
    run = bidsapp.load(out, subject="01", run=1, atlas="halves")
    voxels = out / "sub-01" / "func"  # voxel-mode outputs next to the atlas ones: the atlas tells them apart
    for f in (out.parent / "voxels").glob("*"):
        shutil.copy(f, voxels)
    with pytest.raises(LookupError, match=r"2 runs match .*add atlas=\.\.\. \(one of \['halves', None\]\)"):
        bidsapp.load(out, subject="01", run=1)
    voxel_run = bidsapp.load(out, subject="01", run=1, atlas=None)  # the hint, followed literally
    assert "atlas" not in voxel_run.entities and voxel_run.X.shape[1] == len(voxel_run.features) > 2
    assert run.features["name"].tolist() == ["left", "right"] and run.X.shape[1] == 2
    img = run.to_image(np.array([10.0, 20.0]))
    assert np.array_equal(img.get_fdata(), np.select([labels == 1, labels == 2], [10.0, 20.0], 0.0))
    assert run.to_image(run.X).shape == labels.shape + (run.X.shape[0],)
    # paths in the sidecar are BIDS URIs, as in Sources
    uris = {s["Role"]: s["URI"] for s in run.meta["Sources"]}
    assert run.meta["Parameters"]["atlas"] == uris["atlas"] and uris["atlas"].startswith("file:")
    assert run.meta["Trials"]["EventsFile"] == "bids:raw:sub-01/func/sub-01_task-faces_run-1_events.tsv"
    with pytest.raises(LookupError, match=r"mix atlas values \['halves', None\].*add atlas=\.\.\."):
        bidsapp.dataset(out, kind="timeseries", subject="01")
    assert bidsapp.dataset(out, kind="timeseries", subject="01", run=1, atlas=None).X.shape[1] > 2
    ds = bidsapp.dataset(out, kind="timeseries", subject="01", atlas="halves")
    assert ds.X.shape[1] == 2 and ds.to_image(np.array([1.0, 2.0])).get_fdata().max() == 2.0


def _copy_outputs(out, dst, *participants: str):
    """A copy of the demo outputs of the given participant folders (named as in ``out``)."""
    for name in participants:
        shutil.copytree(out / name, dst / name)
    return dst


def test_stray_participant_folders_are_not_more_runs(out, tmp_path):
    copy = _copy_outputs(out, tmp_path / "out", "sub-01")
    shutil.copytree(copy / "sub-01", copy / "sub-01_old")  # a backup next to the outputs
    shutil.copytree(copy / "sub-01", copy / "sub-03")  # files named sub-01 in another participant's folder
    shutil.copytree(copy / "sub-01" / "func", copy / "sub-01" / "ses-1" / "func")  # no ses-1 in their names
    ds = bidsapp.dataset(copy, kind="betas", subject="01")
    clean = bidsapp.dataset(out, kind="betas", subject="01")
    np.testing.assert_array_equal(ds.X, clean.X)
    assert ds.groups.tolist() == clean.groups.tolist()  # every trial once
    run = bidsapp.load(copy, subject="01", run=1)
    assert run.folder == copy.absolute() / "sub-01" / "func"
    with pytest.raises(LookupError, match=r"no run matches subject='03'"):
        bidsapp.load(copy, subject="03")


def test_two_outputs_with_the_same_entities_are_refused(out, tmp_path):
    copy = _copy_outputs(out, tmp_path / "out", "sub-01")
    folder = copy / "sub-01" / "func"
    for f in folder.glob(f"{_stem('01', '1')}_*"):  # run-01 is run-1 (indices compare as integers)
        text = f.name.replace("_run-1_", "_run-01_")
        if f.name.endswith("_timeseries.json"):
            (folder / text).write_text(f.read_text().replace("_run-1_", "_run-01_"))
        else:
            shutil.copy(f, folder / text)
    first, second = (f"{folder / _stem('01', r)}_timeseries.json" for r in ("01", "1"))
    both = rf"{re.escape(first)} and {re.escape(second)} have the same entities \(subject='01', .*move or delete"
    with pytest.raises(LookupError, match=both):
        bidsapp.load(copy, subject="01", run=1)
    with pytest.raises(LookupError, match=both):
        bidsapp.dataset(copy, kind="betas", subject="01")
    assert bidsapp.load(copy, subject="01", run=2).entities["run"] == "2"  # the other run is still readable


def _set_trial_offsets(sidecar, offsets: list[float], tr: float) -> None:
    meta = json.loads(sidecar.read_text())
    meta["RepetitionTime"] = tr
    meta["Trials"]["TrialOffsets"] = offsets
    sidecar.write_text(json.dumps(meta))


def test_trials_with_other_offsets_are_not_stacked(out, tmp_path):
    copy = _copy_outputs(out, tmp_path / "out", "sub-01")
    folder = copy / "sub-01" / "func"
    sidecar = folder / f"{_stem('01', '2')}_timeseries.json"
    meta = json.loads(sidecar.read_text())
    assert meta["Trials"]["TrialOffsets"] == [-2.0 + 2.0 * k for k in range(10)] and meta["RepetitionTime"] == 2.0
    _set_trial_offsets(sidecar, [round(-2.0 + 1.9 * k, 6) for k in range(10)], 1.9)  # run 2 made with TR 1.9 s
    why = (r"run-2\S+ has its trial segments at \[-2\.0, -0\.1, 1\.8, .*\] s after onset \(RepetitionTime 1\.9 s\), "
           r"\S+run-1\S+ at \[-2\.0, 0\.0, 2\.0, .*\] s \(RepetitionTime 2\.0 s\): .*select runs with one "
           r"RepetitionTime .* or load them separately")
    with pytest.raises(ValueError, match=why):
        bidsapp.dataset(copy, kind="trials", subject="01")
    # fewer offsets (a shorter window in TRs): the same refusal, not numpy's concatenate error
    trials = np.load(folder / f"{_stem('01', '2')}_trials.npy")
    save_npy(np.ascontiguousarray(trials[:, :9]), folder / f"{_stem('01', '2')}_trials.npy")
    relist(sidecar)
    _set_trial_offsets(sidecar, [round(-2.0 + 2.25 * k, 6) for k in range(9)], 2.25)
    with pytest.raises(ValueError, match=r"RepetitionTime 2\.25 s\), .*RepetitionTime 2\.0 s\)"):
        bidsapp.dataset(copy, kind="trials", subject="01")
    alone = bidsapp.dataset(copy, kind="trials", subject="01", run=2)  # the hint, followed
    assert alone.X.shape[1] == 9
    betas = bidsapp.dataset(copy, kind="betas", subject="01")  # betas do not depend on the offsets
    assert set(betas.groups) == {"sub-01_task-faces_run-1", "sub-01_task-faces_run-2"}


def test_outputs_of_other_code_are_stacked_with_one_warning(out, tmp_path):
    copy = _copy_outputs(out, tmp_path / "out", "sub-01")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one code: no warning
        clean = bidsapp.dataset(copy, kind="betas", subject="01")
    sidecar = copy / "sub-01" / "func" / f"{_stem('01', '2')}_timeseries.json"
    meta = json.loads(sidecar.read_text())
    version, code = meta["SoftwareVersions"]["bidsapp"], meta["CodeFingerprint"]
    meta["SoftwareVersions"]["bidsapp"] = meta["GeneratedBy"][0]["Version"] = "0.0.9"
    meta["CodeFingerprint"] = "0123456789ab" + "0" * 52
    sidecar.write_text(json.dumps(meta))
    with pytest.warns(UserWarning) as caught:
        ds = bidsapp.dataset(copy, kind="betas", subject="01")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"bidsapp {version} (CodeFingerprint {code[:12]}): 1 run(s), e.g. sub-01_task-faces_run-1" in message
    assert "bidsapp 0.0.9 (CodeFingerprint 0123456789ab): 1 run(s), e.g. sub-01_task-faces_run-2" in message
    assert "rerun" in message and caught[0].filename == __file__
    np.testing.assert_array_equal(ds.X, clean.X)  # still stacked


def test_reliable_columns_refuses_row_indices_outside_the_rows(out):
    ds = bidsapp.dataset(out, kind="betas", subject="01")
    n = len(ds.groups)
    with pytest.raises(ValueError, match=rf"train: row indices \[{n}, {n + 1}, [^]]*\] \.\.\. are outside the "
                                         rf"dataset's {n} rows \(0 to {n - 1}; negative"):
        ds.reliable_columns(np.arange(n + 76), repeats="onset")
    with pytest.raises(ValueError, match=r"train: row indices \[-2, -1\] are outside"):
        ds.reliable_columns(np.array([-1, -2, 0, 1]), repeats="onset")
    assert ds.reliable_columns(np.arange(n), repeats="onset").size == ds.X.shape[1]


def test_y_can_be_an_entity_column(out):
    ds = bidsapp.dataset(out, kind="betas", subject="01", y="subject")
    assert set(ds.y) == {"01"} and len(ds.y) == len(ds.X)
    runs = bidsapp.dataset(out, kind="betas", subject="01", y="run", y_dtype=int)
    assert runs.y.tolist() == runs.table["run"].astype(int).tolist() and set(runs.y) == {1, 2}
    ts = bidsapp.dataset(out, kind="timeseries", subject="01", run=1, y="source")
    assert set(ts.y) == {"sub-01_task-faces_run-1"}
    every = bidsapp.dataset(out, kind="betas", space="MNI152NLin2009cAsym")
    assert "session" in every.table and every.table["session"].isna().any()  # some runs have no session
    with pytest.warns(UserWarning, match="n/a"):  # those runs' rows have no y: left out, counted in a warning
        sessions = bidsapp.dataset(out, kind="betas", space="MNI152NLin2009cAsym", y="session")
    assert len(sessions.y) == every.table["session"].notna().sum() and set(sessions.y) <= set(every.table["session"])
    with pytest.warns(UserWarning, match="n/a"):  # time series too: a volume's y is its run's session
        volumes = bidsapp.dataset(out, kind="timeseries", space="MNI152NLin2009cAsym", y="session")
    assert None not in set(volumes.y) and len(set(volumes.y)) >= 1
    with pytest.raises(ValueError, match="y='acquisition': no run's name has this entity"):
        bidsapp.dataset(out, kind="betas", space="MNI152NLin2009cAsym", y="acquisition")
    with pytest.raises(ValueError, match=r"y='condition' is not a column of the betas table; columns: \['source', "
                                         r"'subject', 'task', 'run', 'index', "):
        bidsapp.dataset(out, subject="01", y="condition")
    with pytest.raises(ValueError, match=r"y='condition' is not a column of the timeseries table; columns: .*'trial'"
                                         r".*, or a column of the trials each volume lies in: \[.*'duration'"):
        bidsapp.dataset(out, kind="timeseries", subject="01", run=1, y="condition")
