"""bidsapp.dataset / bidsapp.load never stack what should not be stacked (issue 23).

Every case runs on a copy of the demo whose inputs (events.tsv, outputs) are edited the way users' files are,
and every answer is checked against the raw files (csv, numpy), not against the API itself.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest

import bidsapp
from bidsapp.cli.run import main
from bidsapp.core.files import sha256sum

SPACE = "MNI152NLin2009cAsym"
#: edits of sub-01's events: stimulus ids that look numeric in run 1 only, columns named like ours
#: (valid, index, run), an n/a trial type, and two overlaps in run 1 (house+house, house+face)
STIM = {1: ["001", "002", "003", "004"], 2: ["001", "002", "003", "01a"]}


def _stem(sub, run, desc="simple", ses=None):
    return f"sub-{sub}{f'_ses-{ses}' if ses else ''}_task-faces_run-{run}_space-{SPACE}_desc-{desc}"


def _raw_rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _edit_events(path, run: int) -> None:
    rows = _raw_rows(path)
    if run == 1:  # overlaps: a second house trial inside the first one, a face trial inside a house trial
        rows.append(dict(rows[1], onset=str(float(rows[1]["onset"]) + 0.5), duration="3"))
        rows.append(dict(rows[3], onset=str(float(rows[3]["onset"]) + 0.5), trial_type="face"))
        rows.sort(key=lambda r: float(r["onset"]))
    rows[-2]["trial_type"] = "n/a"
    for k, row in enumerate(rows):
        row.update(stim=STIM[run][k % 4], valid=["yes", "no"][k % 2], index=str(100 + k), run=f"r{run}")
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _participant(bids, out, *args) -> int:
    """The participant level with the demo's settings (its warnings, e.g. about LSS estimates, ignored)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main([str(bids), str(out), "participant", "--nprocs", "1", "--trial-estimates", "lss", *args])


@pytest.fixture(scope="module")
def edited(demo_outputs, tmp_path_factory):
    """sub-01 of the demo with edited events, processed (both runs) with the demo's settings."""
    base = tmp_path_factory.mktemp("stacking")
    bids = base / "bids"
    shutil.copytree(demo_outputs / "bidsapp-demo-output" / "bids", bids)
    for run in (1, 2):
        _edit_events(bids / "sub-01" / "func" / f"sub-01_task-faces_run-{run}_events.tsv", run)
    out = base / "out"
    assert _participant(bids, out, "--participant-label", "01", "--work-dir", str(base / "work")) == 0
    return bids, out


def _events_of(bids, run):
    return _raw_rows(bids / "sub-01" / "func" / f"sub-01_task-faces_run-{run}_events.tsv")


def _betas_raw(out, run):
    folder = out / "sub-01" / "func"
    return np.load(folder / f"{_stem('01', run)}_betas.npy"), _raw_rows(folder / f"{_stem('01', run)}_betas.tsv")


def test_events_columns_are_text_as_written(edited):
    """Case 4: stimulus ids 001..004 stay text in every run (they were integers in one run, text in another)."""
    bids, out = edited
    ds = bidsapp.dataset(out, kind="betas", subject="01", y="stim", drop_invalid=False)
    expected = [row["stim"] for run in (1, 2) for row in _events_of(bids, run)]
    assert ds.y.tolist() == expected  # every trial, in events.tsv order, exactly as written
    assert sorted(set(ds.y)) == ["001", "002", "003", "004", "01a"]
    assert (ds.y == "001").sum() == expected.count("001")
    ints = bidsapp.dataset(out, kind="betas", subject="01", y="events_index", y_dtype=int, drop_invalid=False)
    assert ints.y.dtype.kind == "i" and ints.y.tolist() == [100 + k for run in (1, 2)
                                                            for k in range(len(_events_of(bids, run)))]


def test_events_columns_named_like_ours_are_kept(edited):
    """Case 6 and the `run` crash: events columns valid / index / run are kept as events_<name>."""
    bids, out = edited
    ds = bidsapp.dataset(out, kind="betas", subject="01", y="stim", drop_invalid=False)
    raw = [row for run in (1, 2) for row in _events_of(bids, run)]
    assert ds.table["events_valid"].tolist() == [r["valid"] for r in raw]
    assert ds.table["events_index"].tolist() == [r["index"] for r in raw]
    assert ds.table["events_run"].tolist() == [r["run"] for r in raw]
    assert ds.table["run"].tolist() == [str(run) for run in (1, 2) for _ in _events_of(bids, run)]
    for run in (1, 2):  # our valid is the LSS validity, not the events column
        _, table = _betas_raw(out, run)
        part = ds.table[ds.table["run"] == str(run)]
        assert part["valid"].tolist() == [r["valid"] == "True" for r in table]


def test_na_trial_type_left_out_with_a_count(edited):
    """An n/a trial type stays missing: left out of y with a warning; README's selection works."""
    bids, out = edited
    with pytest.warns(UserWarning, match=r"2 row\(s\) whose 'trial_type' is n/a are left out"):
        ds = bidsapp.dataset(out, kind="betas", subject="01", drop_invalid=False)
    face = ds.X[ds.y == "face"]
    expected = []
    for run in (1, 2):
        betas, table = _betas_raw(out, run)
        expected += [betas[k] for k, r in enumerate(_events_of(bids, run)) if r["trial_type"] == "face"]
        assert [r["trial_type"] for r in table].count("n/a") == 1
    np.testing.assert_array_equal(face, np.array(expected))
    assert set(ds.y) == {"face", "house"} and len(ds.y) == len(ds.X) == len(ds.table)


def _volume_trials(out, bids, run):
    """For each kept row: the raw events (onset order) whose time span contains the volume's time."""
    folder = out / "sub-01" / "func"
    meta = json.loads((folder / f"{_stem('01', run)}_timeseries.json").read_text())
    t_r, start = meta["RepetitionTime"], meta["StartTime"]
    samples = _raw_rows(folder / f"{_stem('01', run)}_samples.tsv")
    events = _events_of(bids, run)
    rows = []
    for s in sorted((s for s in samples if s["kept"] == "True"), key=lambda s: int(s["row"])):
        t = start + int(s["volume"]) * t_r
        inside = [e for e in events if float(e["onset"]) <= t < float(e["onset"]) + max(float(e["duration"]), t_r)]
        rows.append(sorted(inside, key=lambda e: float(e["onset"])))
    return rows


def test_overlapping_trials_follow_an_explicit_rule(edited):
    """Case 5: volumes inside trials with different trial types are an error unless a rule is chosen."""
    bids, out = edited
    with pytest.raises(ValueError, match=r"kept volume\(s\) lie inside trials with different 'trial_type'.*"
                                         r"overlap='first'"):
        bidsapp.dataset(out, kind="timeseries", subject="01", run=1)
    inside = _volume_trials(out, bids, 1)
    types = [[e["trial_type"] for e in trials if e["trial_type"] != "n/a"] for trials in inside]
    first = bidsapp.dataset(out, kind="timeseries", subject="01", run=1, overlap="first")
    na = [bool(trials) and not t for trials, t in zip(inside, types)]
    assert first.y.tolist() == [t[0] if t else None for t, n in zip(types, na) if not n]
    both = [k for k, t in enumerate(types) if len(set(t)) > 1]
    same = [k for k, t in enumerate(types) if len(t) > 1 and len(set(t)) == 1]
    assert both and same  # the edit made both kinds of overlap
    X = np.load(out / "sub-01" / "func" / f"{_stem('01', 1)}_timeseries.npy")
    with pytest.warns(UserWarning, match=rf"{len(both)} volume\(s\) inside trials with different"):
        dropped = bidsapp.dataset(out, kind="timeseries", subject="01", run=1, overlap="drop")
    keep = [k for k in range(len(types)) if k not in both and not na[k]]
    np.testing.assert_array_equal(dropped.X, X[keep])
    assert dropped.y.tolist() == [types[k][0] if types[k] else None for k in keep]
    every = bidsapp.dataset(out, kind="timeseries", subject="01", run=1, overlap="all")
    assert every.y.tolist() == [tuple(t) for t, n in zip(types, na) if not n]  # tuples, never joined strings
    assert all(isinstance(v, tuple) for v in every.y)


def test_trial_type_with_the_separator_refused(edited, tmp_path, capsys):
    bids, _ = edited
    events = bids / "sub-02" / "ses-1" / "func" / "sub-02_ses-1_task-faces_run-1_events.tsv"
    original = events.read_text()
    try:
        events.write_text(original.replace("\tface\t", "\tface,inverted\t", 1))
        code = _participant(bids, tmp_path / "out", "--participant-label", "02")
    finally:
        events.write_text(original)
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert str(events) in err and "'face,inverted' contains ','" in err and "'face_inverted'" in err


def _copy_outputs(out, dst, subjects=("01",)):
    for sub in subjects:
        shutil.copytree(out / f"sub-{sub}", dst / f"sub-{sub}")
    shutil.copy(out / "dataset_description.json", dst)
    return dst


def test_labels_compared_as_written(edited, tmp_path):
    """Case 3: subject='01' does not match sub-1 (they are two participants), and sub-1 can be chosen."""
    _, out = edited
    copy = _copy_outputs(out, tmp_path / "out")
    src = copy / "sub-01" / "func"
    dst = copy / "sub-1" / "func"
    dst.mkdir(parents=True)
    for f in src.glob("*run-1_*"):
        target = dst / f.name.replace("sub-01_", "sub-1_")
        if f.name.endswith("_timeseries.json"):
            target.write_text(f.read_text().replace("sub-01_", "sub-1_"))
        else:
            shutil.copy(f, target)
    ds = bidsapp.dataset(copy, kind="betas", subject="01", y="stim")
    assert set(ds.groups) == {"sub-01_task-faces_run-1", "sub-01_task-faces_run-2"}
    one = bidsapp.load(copy, subject="1", run="01")  # run is an index: run-1 and run-01 are the same run
    np.testing.assert_array_equal(one.X, np.load(dst / f"{_stem('1', 1)}_timeseries.npy"))
    with pytest.raises(LookupError, match=r"subject is one of \['01', '1'\]"):
        bidsapp.load(copy, subject="001")


def test_incomplete_runs_reported_in_one_warning(edited, tmp_path):
    """Case 2 and the dead ends: no sidecar, a deleted betas file or mask: the run is named, never silently
    dropped; the rows returned are exactly those of the complete run."""
    bids, out = edited
    copy = _copy_outputs(out, tmp_path / "out")
    folder = copy / "sub-01" / "func"
    (folder / f"{_stem('01', 2)}_timeseries.json").unlink()
    with pytest.warns(UserWarning, match=r"1 matching run\(s\) left out, their outputs are incomplete: "
                                         r"sub-01_task-faces_run-2_\S+ \(no sidecar"):
        ds = bidsapp.dataset(copy, kind="betas", subject="01", y="stim", drop_invalid=False)
    betas, _ = _betas_raw(out, 1)
    np.testing.assert_array_equal(ds.X, betas)
    assert ds.y.tolist() == [r["stim"] for r in _events_of(bids, 1)]
    with pytest.raises(FileNotFoundError, match=r"run-2\S+: outputs incomplete \(no sidecar.*\); rerun"):
        bidsapp.load(copy, subject="01", run=2)
    shutil.copy(out / "sub-01" / "func" / f"{_stem('01', 2)}_timeseries.json", folder)
    (folder / f"{_stem('01', 1)}_betas.npy").unlink()
    mask = next(folder.glob("*run-2*_desc-brain_mask.nii.gz"))
    mask.unlink()
    with pytest.raises(FileNotFoundError, match=r"every matching run is incomplete: .*run-1\S+ \(\S+_betas.npy is "
                                                r"missing\); .*run-2\S+ \(\S+_mask.nii.gz is missing\)"):
        bidsapp.dataset(copy, kind="betas", subject="01")


def test_load_checks_sizes_checksums_and_rows(edited, tmp_path):
    """Case 6: a file swapped by hand is not read as is; arrays and tables must agree on their rows."""
    _, out = edited
    copy = _copy_outputs(out, tmp_path / "out")
    folder = copy / "sub-01" / "func"
    betas = folder / f"{_stem('01', 1)}_betas.npy"
    data = np.load(betas)
    np.save(betas, data[:-1])  # fewer rows: another size than listed
    with pytest.raises(FileNotFoundError, match=r"_betas.npy has another size than its sidecar lists"):
        bidsapp.load(copy, subject="01", run=1)
    np.save(betas, data[::-1])  # same size, other content: only verify=True sees it
    bidsapp.load(copy, subject="01", run=1)
    with pytest.raises(FileNotFoundError, match=r"_betas.npy has another checksum"):
        bidsapp.load(copy, subject="01", run=1, verify=True)
    with pytest.warns(UserWarning, match=r"run-1\S+ \(\S+_betas.npy has another checksum"):
        bidsapp.dataset(copy, kind="betas", subject="01", verify=True, y="stim")
    np.save(betas, data)
    samples = folder / f"{_stem('01', 1)}_samples.tsv"
    lines = samples.read_text().splitlines()
    column = lines[0].split("\t").index("kept")
    kept = next(k for k, line in enumerate(lines[1:], 1) if line.split("\t")[column] == "True")
    samples.write_text("\n".join(lines[:kept] + lines[kept + 1:]) + "\n")
    sidecar = folder / f"{_stem('01', 1)}_timeseries.json"
    meta = json.loads(sidecar.read_text())
    for entry in meta["OutputFiles"]:  # listed as if written so: only the row count gives it away
        entry.update(Size=(folder / entry["Path"]).stat().st_size, SHA256=sha256sum(folder / entry["Path"]))
    sidecar.write_text(json.dumps(meta))
    n = np.load(folder / f"{_stem('01', 1)}_timeseries.npy", mmap_mode="r").shape[0]
    with pytest.raises(ValueError, match=rf"_samples.tsv: {n - 1} kept volumes for {n} rows of the array"):
        bidsapp.load(copy, subject="01", run=1)


def _edit_sidecar(path, edit) -> None:
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_dataset_refuses_runs_made_with_other_settings(edited, tmp_path):
    """Case 1 (reader side) and the trial-window crash: differing parameters or atlas files are named."""
    _, out = edited
    copy = _copy_outputs(out, tmp_path / "out")
    folder = copy / "sub-01" / "func"
    run2 = folder / f"{_stem('01', 2)}_timeseries.json"
    original = run2.read_text()
    _edit_sidecar(run2, lambda m: m["Parameters"].update(standardize="psc"))
    with pytest.raises(ValueError, match=r"run-2\S+ was made with other settings than \S+run-1\S+: standardize "
                                         r"\('zscore_sample' in the first, 'psc' in the second\)"):
        bidsapp.dataset(copy, kind="betas", subject="01")
    run2.write_text(original)
    _edit_sidecar(run2, lambda m: m["Parameters"].update(trial_window=[-4.0, 20.0]))
    with pytest.raises(ValueError, match=r"trial_window \(\[-2.0, 16.0\] in the first, \[-4.0, 20.0\]"):
        bidsapp.dataset(copy, kind="trials", subject="01")
    run2.write_text(original)
    for run, digest in ((1, "a" * 64), (2, "b" * 64)):  # one --atlas-name, two atlas files
        _edit_sidecar(folder / f"{_stem('01', run)}_timeseries.json", lambda m, d=digest: (
            m["Parameters"].update(atlas="file:///atlases/atlas-x_dseg.nii.gz"),
            m["Sources"].append({"Role": "atlas", "URI": "file:///atlases/atlas-x_dseg.nii.gz", "SHA256": d})))
    with pytest.raises(ValueError, match=r"atlas \('sha256:aaaaaaaaaaaaaaaa' in the first, 'sha256:bbbbbbbbbbbbbbbb'"):
        bidsapp.dataset(copy, kind="betas", subject="01")


def test_rest_run_betas_message(edited, tmp_path):
    _, out = edited
    copy = _copy_outputs(out, tmp_path / "out")
    sidecar = copy / "sub-01" / "func" / f"{_stem('01', 1)}_timeseries.json"

    def rest(meta):
        meta["Trials"] = {"EventsFile": None, "HRFLag": 0.0}
        meta["OutputFiles"] = [e for e in meta["OutputFiles"] if "_betas." not in e["Path"]
                               and "_trials." not in e["Path"]]
    _edit_sidecar(sidecar, rest)
    with pytest.raises(FileNotFoundError, match=r"run-1\S+_betas.npy: not written for this run \(the run has no "
                                                r"events.tsv \(a rest run\?\); select task runs with task="):
        bidsapp.dataset(copy, kind="betas", subject="01", run=1)
    ts = bidsapp.dataset(copy, kind="timeseries", subject="01", run=1)  # a rest run's volumes are in no trial
    assert set(ts.y) == {None}


def test_one_meaning_per_name_at_the_participant_level(edited, tmp_path, capsys):
    """Case 1 (writer side): other settings under the same names are refused (exit 2) naming the parameter and
    the ways out; --desc names a variant; --replace-outputs redoes or invalidates every run of the name, so a
    killed rerun never leaves old and new settings stacked."""
    bids, out = edited
    copy = _copy_outputs(out, tmp_path / "out")
    args = ("--participant-label", "01", "--run", "1", "--standardize", "psc", "--work-dir", str(tmp_path / "w"))
    before = {p.name: p.stat().st_mtime_ns for p in (copy / "sub-01" / "func").iterdir()}
    capsys.readouterr()
    assert _participant(bids, copy, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "standardize ('zscore_sample' there, 'psc' now)" in err
    assert "another output folder" in err and "--desc LABEL" in err and "--replace-outputs" in err
    assert before == {p.name: p.stat().st_mtime_ns for p in (copy / "sub-01" / "func").iterdir()}  # untouched
    assert _participant(bids, copy, *args, "--desc", "psc") == 0
    psc = np.load(copy / "sub-01" / "func" / f"{_stem('01', 1, desc='psc')}_betas.npy")
    zscored = np.load(copy / "sub-01" / "func" / f"{_stem('01', 1)}_betas.npy")
    ratio = np.nanmedian(np.abs(psc)) / np.nanmedian(np.abs(zscored))
    assert not 0.5 < ratio < 2  # really another variant (median |beta| 0.86 vs 2.79 on the demo)
    assert _participant(bids, copy, *args, "--replace-outputs") == 0
    assert "replaced sub-01_task-faces_run-2" in capsys.readouterr().out
    with pytest.warns(UserWarning, match=r"left out, their outputs are incomplete: sub-01_task-faces_run-2_\S+ "
                                         r"\(no sidecar"):
        ds = bidsapp.dataset(copy, kind="betas", subject="01", desc="simple", drop_invalid=False, y="stim")
    new = np.load(copy / "sub-01" / "func" / f"{_stem('01', 1)}_betas.npy")
    np.testing.assert_array_equal(ds.X, new)
    np.testing.assert_allclose(new, psc, rtol=1e-5, atol=1e-6 * np.nanmax(np.abs(psc)))  # redone with psc


@pytest.fixture(scope="module")
def atlases(edited, tmp_path_factory):
    """Two atlas files (left/right halves of the brain, labels swapped in the second), one region named 'label'."""
    bids, _ = edited
    base = tmp_path_factory.mktemp("atlases")
    mask = nib.load(next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-brain_mask.nii.gz")))
    brain = np.asanyarray(mask.dataobj) > 0
    left = np.indices(brain.shape)[0] < 9
    paths = []
    for k, labels in enumerate((np.where(left, 1, 2), np.where(left, 2, 1))):
        folder = base / f"a{k}"
        folder.mkdir()
        nib.save(nib.Nifti1Image(np.where(brain, labels, 0).astype(np.int16), mask.affine),
                 folder / "atlas-halves_dseg.nii.gz")
        (folder / "atlas-halves_dseg.tsv").write_text("index\tname\n1\tlabel\n2\tright\n")
        paths.append(folder)
    return base, paths


def test_atlas_bound_to_its_checksum_and_region_named_label(edited, atlases, tmp_path, capsys):
    bids, _ = edited
    base, (first, second) = atlases
    out = tmp_path / "out"
    common = ("--run", "1", "--output-format", "tsv.gz", "--work-dir", str(tmp_path / "w"))

    def atlas(folder):
        return ("--atlas", str(folder / "atlas-halves_dseg.nii.gz"), "--atlas-labels",
                str(folder / "atlas-halves_dseg.tsv"))
    assert _participant(bids, out, "--participant-label", "01", *common, *atlas(first)) == 0
    run = bidsapp.load(out, subject="01", run=1, atlas="halves")
    gz = out / "sub-01" / "func" / f"sub-01_task-faces_run-1_space-{SPACE}_atlas-halves_desc-simple_timeseries.tsv.gz"
    with gzip.open(gz, "rt") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert rows[0] == ["label", "right"]  # a region named 'label' is one column like any other
    np.testing.assert_allclose(run.X, np.array(rows[1:], dtype=np.float32))
    capsys.readouterr()
    assert _participant(bids, out, "--participant-label", "02", *common, *atlas(second)) == 2
    err = capsys.readouterr().err
    assert "atlas ('sha256:" in err and "the files that define the columns are compared by their checksum" in err
    assert not list(out.glob("sub-02/**/*_timeseries.json"))  # nothing half-written
    assert _participant(bids, out, "--participant-label", "02", *common, *atlas(second), "--replace-outputs") == 0
    with pytest.warns(UserWarning, match=r"sub-01_task-faces_run-1_\S+ \(no sidecar"):
        ds = bidsapp.dataset(out, kind="timeseries", atlas="halves")
    assert set(ds.groups) == {"sub-02_ses-1_task-faces_run-1"}


def test_replace_outputs_touches_nothing_when_an_input_is_refused(edited, tmp_path, capsys):
    """--replace-outputs invalidates the older outputs only once every input check has passed."""
    bids, out = edited
    copy = _copy_outputs(out, tmp_path / "out")
    events = bids / "sub-01" / "func" / "sub-01_task-faces_run-2_events.tsv"
    original = events.read_text()
    try:
        events.write_text(original.replace("\thouse\t", "\thouse,far\t", 1))
        code = _participant(bids, copy, "--participant-label", "01", "--standardize", "psc", "--replace-outputs",
                            "--work-dir", str(tmp_path / "w"))
    finally:
        events.write_text(original)
    assert code == 1 and "'house,far' contains ','" in capsys.readouterr().err
    assert len(list((copy / "sub-01" / "func").glob("*_timeseries.json"))) == 2  # both runs still complete
    ds = bidsapp.dataset(copy, kind="betas", subject="01", y="stim", drop_invalid=False)
    np.testing.assert_array_equal(ds.X, np.concatenate([_betas_raw(out, run)[0] for run in (1, 2)]))
