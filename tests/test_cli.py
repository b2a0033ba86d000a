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
        for suffix in ("_timeseries.npy", "_timeseries.json", "_features.tsv", "_samples.tsv", "_bold.nii.gz",
                       "_trials.npy", "_trials.tsv"):
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
        assert head[-2:] == ["trial", "trial_type"]
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
    report = (out / "sub-02.html").read_text()
    assert "sub-02_ses-1_task-faces_run-2" in report and "data:image/svg+xml;base64," in report and "censored" in report


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
    assert len(rows) == 5 and "fd_mean" in rows[0]
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


def test_options_of_the_other_level_are_said_to_be_ignored(e2e):
    """An option only the other analysis level reads is one warning, not silently dropped."""
    bids, out, _, base = e2e
    with pytest.warns(UserWarning, match=r"--exclude-fd-mean: read by the group level only; this "
                                         r"participant-level invocation ignores it"):
        assert main([str(bids), str(out), "participant", "--work-dir", str(base / "work"), "--output-format", "npy",
                     "nii.gz", "--exclude-fd-mean", "0.3"]) == 0  # every run reused
    with pytest.warns(UserWarning, match=r"--low-pass, --trial-window: read by the participant level only"):
        assert main([str(bids), str(out), "group", "--low-pass", "0.1", "--trial-window", "0", "10"]) == 0


def test_cli_errors(e2e, tmp_path, capsys):
    bids = _copy_dataset(e2e, tmp_path)
    out = tmp_path / "out"
    assert main([str(bids), str(out), "participant", "--fmriprep-dir", str(tmp_path / "nope")]) == 66
    assert "fMRIPrep folder not found" in _err(capsys)
    assert main([str(bids), str(out), "participant", "--participant-label", "07"]) == 66
    assert "participant '07' not found (available: 01, 02)" in _err(capsys)
    assert main([str(bids), str(out), "participant", "--task", "rest"]) == 18
    assert "no desc-preproc BOLD matches" in _err(capsys)
    assert main([str(bids), str(out), "participant", "--space", "MNI152NLin6Asym"]) == 18
    assert "(its BOLD runs have tasks faces; spaces MNI152NLin2009cAsym)" in _err(capsys)  # what is there
    (tmp_path / "c.yaml").write_text("denoise: simple\n")
    assert main([str(bids), str(out), "participant", "--config", str(tmp_path / "c.yaml")]) == 2
    assert "cannot parse config as JSON (config files are JSON, or TOML named .toml)" in _err(capsys)
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


def test_trials_are_interpolated_cleaned_rows(e2e):
    _, out, truth, _ = e2e
    t = truth[0]
    folder = out / "sub-01" / "func"
    stem = _stem("01", None, "1")
    X = np.load(folder / f"{stem}_timeseries.npy")
    segs = np.load(folder / f"{stem}_trials.npy")
    meta = json.loads((folder / f"{stem}_timeseries.json").read_text())
    offsets = np.array(meta["Trials"]["TrialOffsets"])
    rows = [r.split("\t") for r in (folder / f"{stem}_samples.tsv").read_text().splitlines()[1:]]
    times = np.array([float(r[1]) for r in rows if r[2] == "True"])
    assert segs.shape == (len(t.onsets), offsets.size, X.shape[1])
    for i in (0, 4, 11):
        for f in (0, 100, 900):
            expected = np.interp(t.onsets[i] + offsets, times, X[:, f])
            np.testing.assert_allclose(segs[i, :, f], expected, rtol=1e-5, atol=1e-5)
    trials = (folder / f"{stem}_trials.tsv").read_text().splitlines()
    assert trials[0].split("\t")[:4] == ["index", "onset", "duration", "trial_type"]
    assert "response_time" in trials[0] and "valid" in trials[0]


def test_options_atlas_lss_config(e2e, tmp_path, capsys):
    bids, _, truth, _ = e2e
    t = truth[0]
    mask = nib.load(str(t.bold).replace("desc-preproc_bold", "desc-brain_mask"))
    brain = np.asanyarray(mask.dataobj) > 0
    labels = np.zeros(brain.shape, np.int16)
    labels[brain & (np.indices(brain.shape)[0] < 9)] = 1
    labels[brain & (np.indices(brain.shape)[0] >= 9)] = 2
    atlas = tmp_path / "atlas-halves_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, mask.affine), atlas)
    table = tmp_path / "atlas-halves_dseg.tsv"
    table.write_text("index\tname\n1\tleft\n2\tright\n")
    cfg = tmp_path / "settings.json"
    cfg.write_text(json.dumps({"denoise": "scrubbing", "fd_threshold": 0.8, "high_pass": 0.01,
                               "trial_estimates": "lss", "trial_window": [-2, 10], "smoothing_fwhm": 6}))
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "--participant-label", "sub-01", "--run", "1",
                 "--config", str(cfg), "--atlas", str(atlas), "--atlas-labels", str(table),
                 "--hrf-lag", "4", "--nprocs", "1", "--work-dir", str(tmp_path / "w")])
    assert code == 0, capsys.readouterr().err
    folder = out / "sub-01" / "func"
    stem = f"sub-01_task-faces_run-1_space-{SPACE}_atlas-halves_desc-scrubbing"
    X = np.load(folder / f"{stem}_timeseries.npy")
    assert X.shape[1] == 2
    head = (folder / f"{stem}_timeseries.tsv.gz")
    import gzip

    assert gzip.open(head, "rt").readline().strip().split("\t") == ["left", "right"]
    feats = (folder / f"{stem}_features.tsv").read_text().splitlines()
    assert feats[0].split("\t")[:3] == ["column", "label", "name"]
    meta = json.loads((folder / f"{stem}_timeseries.json").read_text())
    assert meta["Parameters"]["denoise"] == "scrubbing" and meta["Parameters"]["smoothing_fwhm"] == 6
    assert meta["Parameters"]["hrf_lag"] == 4 and len(meta["CensoredVolumes"]) >= 3  # 3 FD spikes + NSS
    betas = np.load(folder / f"{stem}_betas.npy")
    assert betas.shape == (len(t.onsets), 2)
    # the right half holds the task response: where censoring left the response visible, betas follow the truth
    btab = [r.split("\t") for r in (folder / f"{stem}_betas.tsv").read_text().splitlines()]
    valid = np.array([r[btab[0].index("valid")] == "True" for r in btab[1:]])
    assert 6 <= valid.sum() < len(valid)
    assert np.corrcoef(betas[valid, 1], t.amplitudes[valid])[0, 1] > 0.7  # ~26% of volumes scrubbed
    assert (folder / f"{stem}_betas.tsv").exists() and (folder / f"{stem}_trials.npy").exists()
    assert (folder / f"sub-01_task-faces_run-1_space-{SPACE}_atlas-halves_dseg.nii.gz").exists()


def test_no_network_and_read_only_input(e2e, tmp_path, monkeypatch, capsys):
    """The app opens no socket, and reads its inputs from a read-only folder."""
    import os
    import socket
    import stat

    bids = _copy_dataset(e2e, tmp_path)
    for p in [bids, *bids.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    opened = []

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            opened.append(args)
            raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: opened.append(a) or NoSocket())
    try:
        code = main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "1",
                     "--plugin", "Linear", "--work-dir", str(tmp_path / "w")])
    finally:
        for p in [bids, *bids.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert code == 0, capsys.readouterr().err
    assert opened == []
    assert os.environ.get("NIPYPE_NO_ET") == "1"
    assert list((tmp_path / "out").rglob("*_timeseries.npy"))


def test_template_mask_offline_fails_fast(e2e, tmp_path, monkeypatch, capsys):
    """A template missing from the local cache fails before the workflow, without touching the network."""
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("bidsapp tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "empty-templateflow"))
    code = main([str(e2e[0]), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "1",
                 "--mask-strategy", "gm-template", "--plugin", "Linear", "--work-dir", str(tmp_path / "w")])
    err = _err(capsys)
    assert code == 66
    assert not list((tmp_path / "out").glob("sub-*")) and not (tmp_path / "w" / "bidsapp_wf").exists()
    assert "tpl-MNI152NLin2009cAsym_res-02_label-GM_probseg.nii.gz" in err
    assert "bidsapp-fetch-templates --resolution 2" in err


def test_template_mask_strategy_end_to_end(e2e, tf_home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tf_home))
    out = tmp_path / "out"
    code = main([str(e2e[0]), str(out), "participant", "--participant-label", "01", "--run", "1",
                 "--mask-strategy", "whole-brain-template", "--plugin", "Linear", "--work-dir", str(tmp_path / "w")])
    assert code == 0, capsys.readouterr().err
    meta = json.loads(next(out.rglob("*_timeseries.json")).read_text())
    assert "TemplateFlow tpl-MNI152NLin2009cAsym_res-02_desc-brain_mask" in meta["MaskSource"]
    assert meta["MaskVoxelCount"] > 500


def test_start_time_sources():
    from bidsapp.cli.plan import start_time_of

    assert start_time_of({"StartTime": 0.75, "SliceTiming": [0, 1]}) == (0.75, "StartTime")
    assert start_time_of({"SliceTiming": [0.0, 0.5, 1.0, 1.5]}) == (0.75, "middle of SliceTiming")
    assert start_time_of({"SliceTiming": [0, 1], "SliceTimingCorrected": True})[0] == 0.0
    assert start_time_of({}) == (0.0, "default 0 (no StartTime or SliceTiming)")


def test_cutoff_above_nyquist_is_refused_before_running(e2e, tmp_path, capsys):
    code = main([str(e2e[0]), str(tmp_path / "out"), "participant", "--participant-label", "01",
                 "--low-pass", "0.3", "--work-dir", str(tmp_path / "w")])
    assert code == 2 and "at or above the Nyquist frequency 0.25 Hz" in _err(capsys)
    assert not (tmp_path / "w").exists()


def test_denoise_none_dummy_scans_inapplicable_options_and_tr(e2e, tmp_path, capsys):
    """--denoise none still censors non-steady-state volumes; options that do not apply
    warn in one line and are neither recorded nor hashed; a JSON/header TR mismatch warns (JSON wins)."""
    from bidsapp.cli.parser import parse_args

    bids = _copy_dataset(e2e, tmp_path)
    js = next(bids.rglob("sub-01_task-faces_run-1*bold.json"))
    meta = json.loads(js.read_text())
    meta["RepetitionTime"] = 2.5
    js.write_text(json.dumps(meta))
    out = tmp_path / "out"
    argv = [str(bids), str(out), "participant", "--participant-label", "01", "--run", "1", "--denoise", "none",
            "--plugin", "Linear", "--work-dir", str(tmp_path / "w")]
    with pytest.warns(UserWarning) as rec:
        assert main(argv + ["--fd-threshold", "0.3"]) == 0
    lines = [str(w.message) for w in rec]
    assert "--fd-threshold 0.3 is ignored: --denoise none does not use it; it is not recorded or hashed." in lines
    assert any("RepetitionTime 2.5 s in the JSON sidecar differs from the NIfTI header (pixdim[4] = 2 s)" in ln
               for ln in lines), lines
    assert all("\n" not in ln for ln in lines)
    folder = out / "sub-01" / "func"
    stem = _stem("01", None, "1", desc="none")
    side = json.loads((folder / f"{stem}_timeseries.json").read_text())
    assert side["RepetitionTime"] == 2.5
    assert side["CensoredVolumes"] == [0, 1] and side["NonSteadyState"]["DummyScans"] == "auto"
    assert "non_steady_state_outlier" in side["NonSteadyState"]["Source"]
    assert side["DegreesOfFreedom"] == 98 - 2 and side["NonFiniteValuesZeroed"] == 0
    assert "fd_threshold" not in side["Parameters"]
    assert side["ConfigurationHash"] == parse_args(argv).configuration_hash()
    rows = [r.split("\t") for r in (folder / f"{stem}_samples.tsv").read_text().splitlines()]
    fd = [r[rows[0].index("framewise_displacement")] for r in rows[3:]]
    assert rows[1][2] == rows[2][2] == "False" and "n/a" not in fd
    with pytest.warns(UserWarning, match="RepetitionTime 2.5 s"):
        assert main(argv + ["--dummy-scans", "3", "--output-format", "npy",
                            "--replace-outputs"]) == 0
    side = json.loads((folder / f"{stem}_timeseries.json").read_text())
    assert side["CensoredVolumes"] == [0, 1, 2] and side["NonSteadyState"]["DummyScans"] == 3


def test_too_short_run_is_refused_naming_the_run(tmp_path, capsys):
    """A 24-volume run with the default model exits non-zero before any work, naming the file and the count."""
    bids = tmp_path / "bids"
    make_dataset(bids, n_volumes=24)
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "1",
                 "--plugin", "Linear", "--work-dir", str(tmp_path / "w")])
    err = _err(capsys)
    assert code == 1 and "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz: " in err
    assert "detrending leave 0 degrees of freedom for 22 kept volume(s) of 24" in err and "Use fewer confounds" in err
    assert not list(out.rglob("*_timeseries.npy")) and not list(out.rglob("*_timeseries.json"))


@pytest.mark.parametrize("how", ["config", "abbreviation"])
def test_verbose_from_a_config_file_or_an_abbreviation_shows_the_traceback(tmp_path, capsys, how):
    """``verbose`` in a config file (or argparse's ``--verb``) is the option itself, not only ``-v``/``--verbose``
    spelled out on the command line."""
    cfg = tmp_path / "settings.json"
    cfg.write_text(json.dumps({"verbose": True}))
    extra = ["--config", str(cfg)] if how == "config" else ["--verb"]
    code = main([str(tmp_path / "missing"), str(tmp_path / "out"), "participant", *extra])
    err = capsys.readouterr().err
    assert code == 66 and "Traceback (most recent call last)" in err and "bids_dir not found" in err
