"""End-to-end: the CLI on the generated dataset, checked file by file and against nilearn."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.demo import make_dataset

SPACE = "MNI152NLin2009cAsym"


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    bids = base / "bids"
    truth = make_dataset(bids)
    out = base / "out"
    code = main([str(bids), str(out), "participant", "--nprocs", "2", "--work-dir", str(base / "work"),
                 "--output-format", "npy", "nii.gz"])
    assert code == 0
    return bids, out, truth, base


def _stem(sub, ses, run, desc="simple"):
    ses_part = f"_ses-{ses}" if ses else ""
    return f"sub-{sub}{ses_part}_task-faces_run-{run}_space-{SPACE}_desc-{desc}"


def test_all_files_written(e2e):
    _, out, truth, _ = e2e
    for t in truth:
        e = t.entities
        folder = out / f"sub-{e['subject']}" / (f"ses-{e['session']}" if e["session"] else "") / "func"
        stem = _stem(e["subject"], e["session"], e["run"])
        for suffix in ("_timeseries.npy", "_timeseries.json", "_features.tsv", "_samples.tsv", "_bold.nii.gz"):
            assert (folder / (stem + suffix)).is_file(), stem + suffix
        mask_name = stem.replace("_desc-simple", "_desc-brain") + "_mask.nii.gz"
        mask = nib.load(folder / mask_name)
        assert mask.get_data_dtype() == np.uint8
        X = np.load(folder / (stem + "_timeseries.npy"), mmap_mode="r")
        meta = json.loads((folder / (stem + "_timeseries.json")).read_text())
        assert X.dtype == np.float32 and list(X.shape) == meta["Shape"]
        assert meta["MaskVoxelCount"] == int(np.asanyarray(mask.dataobj).sum()) == X.shape[1]
        assert meta["RepetitionTime"] == 2.0 and meta["ConfigurationHash"]
        assert {s["Role"] for s in meta["Sources"]} >= {"bold", "mask", "confounds", "events"}
        assert all(len(s["SHA256"]) == 64 and s["URI"].startswith("bids:") for s in meta["Sources"])
        assert meta["Parameters"]["denoise"] == "simple" and meta["Parameters"]["standardize"] == "zscore_sample"
        assert {"numpy", "scipy", "nibabel", "nipype", "pybids"} <= set(meta["SoftwareVersions"])
        assert meta["DurationSeconds"] >= 0 and "trans_x" in meta["ConfoundColumns"]
        feats = (folder / (stem + "_features.tsv")).read_text().splitlines()
        assert feats[0].split("\t") == ["column", "i", "j", "k", "x", "y", "z"]
        assert len(feats) - 1 == X.shape[1]
        samples = [r.split("\t") for r in (folder / (stem + "_samples.tsv")).read_text().splitlines()]
        head = samples[0]
        assert head[:5] == ["volume", "onset", "kept", "row", "framewise_displacement"]
        assert len(samples) - 1 == t.n_volumes
        kept = [r for r in samples[1:] if r[2] == "True"]
        assert len(kept) == X.shape[0] and samples[1][2] == "False"  # non-steady-state volume
        assert float(samples[2][1]) == pytest.approx(1.0 + 2.0)  # StartTime + 1 * TR
        img = nib.load(folder / (stem + "_bold.nii.gz"))
        assert img.shape[3] == X.shape[0]
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert [g["Name"] for g in desc["GeneratedBy"]] == ["bidsapp", "fMRIPrep"]
    assert "*_timeseries.npy" in (out / ".bidsignore").read_text()
    assert list((out / "logs").glob("settings-*.json"))


def test_pybids_indexes_outputs(e2e):
    from bids import BIDSLayout

    _, out, _, _ = e2e
    layout = BIDSLayout(str(out), validate=False, config=["bids", "derivatives"])
    found = layout.get(subject="02", session="1", run=2, space=SPACE, desc="simple",
                       suffix="timeseries", extension=".npy")
    assert len(found) == 1
    assert len(layout.get(suffix="timeseries", extension=".npy")) == 4
    assert layout.get_metadata(found[0].path)["RepetitionTime"] == 2.0


def test_array_equals_nilearn(e2e):
    from nilearn.interfaces.fmriprep import load_confounds_strategy
    from nilearn.maskers import NiftiMasker

    _, out, truth, _ = e2e
    t = truth[3]
    stem = _stem("02", "1", "2")
    ours = np.load(out / "sub-02" / "ses-1" / "func" / f"{stem}_timeseries.npy")
    mask = str(t.bold).replace("desc-preproc_bold", "desc-brain_mask")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conf, sm = load_confounds_strategy(str(t.bold), "simple")
        ref = NiftiMasker(mask, t_r=2.0, detrend=True, standardize="zscore_sample").fit_transform(
            str(t.bold), confounds=conf, sample_mask=sm)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-4


def test_rerun_skips_and_group_level(e2e, capsys):
    bids, out, _, base = e2e
    npy = next(out.rglob("*_timeseries.npy"))
    mtime = npy.stat().st_mtime_ns
    assert main([str(bids), str(out), "participant", "--work-dir", str(base / "work"),
                 "--output-format", "npy", "nii.gz"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert npy.stat().st_mtime_ns == mtime
    assert main([str(bids), str(out), "group"]) == 0
    rows = (out / "group_runs.tsv").read_text().splitlines()
    assert len(rows) == 5 and "mean_framewise_displacement" in rows[0]
    inter = nib.load(out / f"space-{SPACE}_desc-intersection_mask.nii.gz")
    assert np.asanyarray(inter.dataobj).sum() > 100


def _copy_dataset(e2e, tmp_path) -> Path:
    bids = tmp_path / "bids"
    shutil.copytree(e2e[0], bids)
    return bids


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


def test_cli_errors(e2e, tmp_path, capsys):
    bids = _copy_dataset(e2e, tmp_path)
    out = tmp_path / "out"
    assert main([str(bids), str(out), "participant", "--fmriprep-dir", str(tmp_path / "nope")]) == 66
    assert "fMRIPrep folder not found" in _err(capsys)
    assert main([str(bids), str(out), "participant", "--participant-label", "07"]) == 66
    assert "participant '07' not found (available: 01, 02)" in _err(capsys)
    assert main([str(bids), str(out), "participant", "--task", "rest"]) == 18
    assert "no desc-preproc BOLD matches" in _err(capsys)
    assert main([str(bids), str(out), "wrong"]) == 17
    assert main([str(bids), str(bids), "participant"]) == 2
    assert "must not be the BIDS folder" in _err(capsys)
    assert main([str(bids), str(bids / "sub-01"), "participant"]) == 2


def test_cli_missing_tr_and_confounds(e2e, tmp_path, capsys):
    bids = _copy_dataset(e2e, tmp_path)
    for js in bids.rglob("sub-01_task-faces_run-1*bold.json"):
        meta = json.loads(js.read_text())
        meta.pop("RepetitionTime")
        js.write_text(json.dumps(meta))
    code = main([str(bids), str(tmp_path / "o1"), "participant", "--participant-label", "01", "--run", "1"])
    assert code == 66 and "RepetitionTime is missing" in _err(capsys)
    conf = next(bids.rglob("sub-01_task-faces_run-2_desc-confounds_timeseries.tsv"))
    conf.unlink()
    code = main([str(bids), str(tmp_path / "o2"), "participant", "--participant-label", "01", "--run", "2"])
    assert code == 66 and "needs the run's desc-confounds_timeseries.tsv" in _err(capsys)


def test_cli_truncated_bold(e2e, tmp_path, capsys):
    bids = _copy_dataset(e2e, tmp_path)
    bold = next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-preproc_bold.nii.gz"))
    bold.write_bytes(bold.read_bytes()[:20000])
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "1",
                 "--nprocs", "1", "--work-dir", str(tmp_path / "w")])
    err = _err(capsys)
    assert code != 0 and "truncated" in err and bold.name in err
    assert not list(out.rglob("*_timeseries.npy")) and not list(out.rglob("*_timeseries.json"))
