"""A participant's optimized estimates depend on all its runs: when one run changes, a run is added or one run's
outputs must be redone, every run of the joined model is recomputed (never reused with estimates of another run
set), also when nipype's cache in a kept --work-dir holds the old fit; the sidecars' Sources list the run set."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.run import main

FUNC = "derivatives/fmriprep/sub-01/func"
ROLE = "trial_model_sub-01_task-faces_run-{}_bold"


def _run(bids: Path, out: Path, work: Path) -> None:
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--nprocs", "1", "--mem-gb", "4",
                 "--work-dir", str(work), "--trial-estimates", "optimized"]) == 0


def _betas(out: Path) -> dict[str, np.ndarray]:
    return {p.name: np.load(p) for p in sorted(out.glob("sub-01/func/*_betas.npy"))}


def _sidecar(out: Path, run: int) -> dict:
    return json.loads(next(out.glob(f"sub-01/func/*run-{run}_*timeseries.json")).read_text())


def _perturb_bold(path: Path, seed: int) -> None:
    img = nib.load(path)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    data += np.random.default_rng(seed).normal(0, data[data > 0].std(), data.shape).astype(np.float32) * (data > 0)
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)


def _add_run_3(bids: Path) -> None:
    for src in [p for p in bids.rglob("*run-2_*") if "sub-01" in str(p)]:
        shutil.copy(src, src.with_name(src.name.replace("run-2_", "run-3_")))
    _perturb_bold(bids / FUNC / "sub-01_task-faces_run-3_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz", 3)


def test_changed_added_or_redone_runs_recompute_every_joined_run(demo, tmp_path, capsys):
    root, _ = demo
    bids, out, work = tmp_path / "bids", tmp_path / "out", tmp_path / "work"
    shutil.copytree(root, bids)
    _run(bids, out, work)
    before = _betas(out)
    assert len(before) == 2
    assert ROLE.format(2) in {s["Role"] for s in _sidecar(out, 1)["Sources"]}

    # one run's bold changes: both runs are recomputed, through the kept work folder, as a fresh run computes them
    bold2 = bids / FUNC / "sub-01_task-faces_run-2_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    _perturb_bold(bold2, 2)
    capsys.readouterr()
    _run(bids, out, work)
    text = capsys.readouterr().out
    assert "compute  sub-01_task-faces_run-1" in text and "compute  sub-01_task-faces_run-2" in text
    after = _betas(out)
    _run(bids, tmp_path / "fresh", tmp_path / "fresh-work")
    for name, b in _betas(tmp_path / "fresh").items():
        assert not np.allclose(after[name], before[name], equal_nan=True), name  # run 1 too: not reused
        np.testing.assert_allclose(after[name], b, rtol=1e-5, atol=1e-6, err_msg=name)
    digest = hashlib.sha256(bold2.read_bytes()).hexdigest()
    assert {s["Role"]: s["SHA256"] for s in _sidecar(out, 1)["Sources"]}[ROLE.format(2)] == digest

    # nothing changed: both reused
    capsys.readouterr()
    _run(bids, out, work)
    assert capsys.readouterr().out.count("skipped  sub-01_task-faces") == 2

    # a run is added: the two others are recomputed with it, and their sidecars name the three runs
    _add_run_3(bids)
    capsys.readouterr()
    _run(bids, out, work)
    text = capsys.readouterr().out
    assert all(f"compute  sub-01_task-faces_run-{k}" in text for k in (1, 2, 3)), text
    meta = _sidecar(out, 1)
    assert len(meta["Trials"]["TrialModelRuns"]) == 3 and ROLE.format(3) in {s["Role"] for s in meta["Sources"]}
    assert len(_betas(out)) == 3

    # one run's output is gone: that run is computed, and so are the two others of its joined model
    next(out.glob("sub-01/func/*run-1_*betaquality.tsv")).unlink()
    capsys.readouterr()
    _run(bids, out, work)
    text = capsys.readouterr().out
    assert "compute  sub-01_task-faces_run-1" in text and "betaquality.tsv is missing" in text
    for k in (2, 3):
        assert (f"compute  sub-01_task-faces_run-{k}: its trial estimates are fitted with the other runs" in text), text


def test_a_run_filter_does_not_split_a_joined_model(demo, tmp_path, capsys):
    """--run 2 selects one run of a two-run joined model: the model is still fitted on both (run-1 is computed with
    it, and says why), never on run-2 alone, which would leave run-1's outputs from another model."""
    root, _ = demo
    bids, out, work = tmp_path / "bids", tmp_path / "out", tmp_path / "work"
    shutil.copytree(root, bids)
    _run(bids, out, work)
    _perturb_bold(bids / FUNC / "sub-01_task-faces_run-2_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz", 5)
    capsys.readouterr()
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "2", "--nprocs", "1",
                 "--mem-gb", "4", "--work-dir", str(work), "--trial-estimates", "optimized"]) == 0
    text = capsys.readouterr().out
    assert "with     sub-01_task-faces_run-1: --run / --session-label leave it out, but it belongs to" in text, text
    assert "compute  sub-01_task-faces_run-1: input 'trial_model_sub-01_task-faces_run-2_bold'" in text, text
    for run in (1, 2):
        meta = _sidecar(out, run)
        assert len(meta["Trials"]["TrialModelRuns"]) == 2, run
    fresh = tmp_path / "fresh"
    _run(bids, fresh, tmp_path / "fresh-work")
    for name, b in _betas(fresh).items():
        np.testing.assert_allclose(_betas(out)[name], b, rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_run_left_out_that_has_no_outputs_stays_out(demo, tmp_path, capsys):
    """Nothing of run-1 in the folder: --run 2 fits run-2 alone, as asked (run-1 may be a run the user excludes)."""
    root, _ = demo
    assert main([str(root), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "2",
                 "--nprocs", "1", "--mem-gb", "4", "--work-dir", str(tmp_path / "work"),
                 "--trial-estimates", "optimized"]) == 0
    assert "run-1" not in capsys.readouterr().out
    assert len(_betas(tmp_path / "out")) == 1 and len(_sidecar(tmp_path / "out", 2)["Trials"]["TrialModelRuns"]) == 1


def test_a_left_out_run_that_lost_its_events_is_redone_not_left_stale(demo, tmp_path, capsys):
    """run-1's events file is gone and run-2 changed, then --run 2: run-1 is not in the joined model any more, and
    its old betas (fitted with run-2) must not stay behind as if current: it is recomputed, as without --run."""
    root, _ = demo
    bids, out, work = tmp_path / "bids", tmp_path / "out", tmp_path / "work"
    shutil.copytree(root, bids)
    _run(bids, out, work)
    next(bids.glob("sub-01/**/*run-1_events.tsv")).unlink()
    _perturb_bold(bids / FUNC / "sub-01_task-faces_run-2_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz", 6)
    capsys.readouterr()
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "2", "--nprocs", "1",
                 "--mem-gb", "4", "--work-dir", str(work), "--trial-estimates", "optimized"]) == 0
    assert "compute  sub-01_task-faces_run-1" in capsys.readouterr().out
    assert list(_betas(out)) == [p.name for p in out.glob("sub-01/func/*run-2_*betas.npy")]  # run-1: no betas


def test_a_broken_left_out_run_is_named_with_why_it_is_in(demo, tmp_path, capsys):
    root, _ = demo
    bids, out, work = tmp_path / "bids", tmp_path / "out", tmp_path / "work"
    shutil.copytree(root, bids)
    _run(bids, out, work)
    next(bids.glob(f"{FUNC}/*run-1_desc-confounds_timeseries.tsv")).unlink()
    capsys.readouterr()
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "2", "--nprocs", "1",
                 "--mem-gb", "4", "--work-dir", str(work), "--trial-estimates", "optimized"]) != 0
    err = capsys.readouterr().err
    assert "sub-01_task-faces_run-1 is computed although --run / --session-label leave it out" in err, err
    assert "remove its outputs to leave it out" in err


def test_files_of_a_left_out_run_without_outputs_are_not_read(demo, tmp_path):
    """An unfetched (dangling) file of run-1, --run 2 into an empty folder: run-1 is not read at all."""
    root, _ = demo
    bids = tmp_path / "bids"
    shutil.copytree(root, bids)
    sidecar = next(bids.glob(f"{FUNC}/*run-1_*desc-preproc_bold.json"))
    sidecar.unlink()
    sidecar.symlink_to("../../../../.git/annex/objects/Xx/Yy/missing.json")
    assert main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "2",
                 "--nprocs", "1", "--mem-gb", "4", "--work-dir", str(tmp_path / "work"),
                 "--trial-estimates", "optimized"]) == 0


def test_betas_of_two_joined_models_are_not_stacked(demo, tmp_path):
    """run-1 leaves the dataset after a two-run fit: the next invocation refits run-2 alone, and run-1's outputs (of
    the two-run model) stay in the folder. Their betas are estimates of another model: the loader refuses them."""
    import pytest

    import bidsapp

    root, _ = demo
    bids, out, work = tmp_path / "bids", tmp_path / "out", tmp_path / "work"
    shutil.copytree(root, bids)
    _run(bids, out, work)
    labels = sorted(_sidecar(out, 2)["Trials"]["TrialModelRuns"])
    assert labels == ["sub-01_task-faces_run-1", "sub-01_task-faces_run-2"]  # the runs, by label
    for path in [p for p in bids.rglob("*run-1_*") if "sub-01" in str(p)]:
        path.unlink()
    _run(bids, out, work)
    assert _sidecar(out, 2)["Trials"]["TrialModelRuns"] == ["sub-01_task-faces_run-2"]
    with pytest.raises(ValueError, match=r"from a joined model of the runs .*estimates of different models"):
        bidsapp.dataset(out, kind="betas", subject="01", space="MNI152NLin2009cAsym")
    assert len(bidsapp.dataset(out, kind="betas", subject="01", run=2, space="MNI152NLin2009cAsym").X)


def test_a_broken_run_outside_the_joined_model_and_without_outputs_is_not_read(demo, tmp_path):
    """Run-1 has outputs, so --run 2 brings it in; a run of another task (no outputs) with an unfetched sidecar is
    not part of the model and is not read."""
    root, _ = demo
    bids, out, work = tmp_path / "bids", tmp_path / "out", tmp_path / "work"
    shutil.copytree(root, bids)
    _run(bids, out, work)
    for src in [p for p in bids.rglob("*task-faces_run-1_*") if "sub-01" in str(p)]:
        shutil.copy(src, src.with_name(src.name.replace("task-faces", "task-other")))
    sidecar = next(bids.glob(f"{FUNC}/*task-other_run-1_*desc-preproc_bold.json"))
    sidecar.unlink()
    sidecar.symlink_to("../../../../.git/annex/objects/Xx/Yy/missing.json")
    for task in (["--task", "faces"], []):  # task-other's run-1 is left out by --run 2 and has no outputs
        assert main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "2", "--nprocs", "1",
                     "--mem-gb", "4", "--work-dir", str(work), "--trial-estimates", "optimized", *task]) == 0


def test_left_out_runs_of_participants_with_and_without_sessions_are_all_brought_in(demo, tmp_path, capsys):
    """sub-01 has no session, sub-02 has ses-1: --run 2 then --run 1 over both fits each participant's model on its
    two runs (the runs with outputs are looked up by identity, not by a product of the entities' values, which left
    out sub-01's run-2 because it has no session)."""
    root, _ = demo
    out = tmp_path / "out"
    for run in ("2", "1"):
        assert main([str(root), str(out), "participant", "--participant-label", "01", "02", "--run", run,
                     "--nprocs", "1", "--mem-gb", "4", "--trial-estimates", "optimized"]) == 0
    text = capsys.readouterr().out
    assert "with     sub-01_task-faces_run-2" in text and "with     sub-02_ses-1_task-faces_run-2" in text, text
    for sidecar in sorted(out.glob("sub-*/**/*_timeseries.json")):
        assert len(json.loads(sidecar.read_text())["Trials"]["TrialModelRuns"]) == 2, sidecar.name


@pytest.mark.parametrize("shared", [False, True], ids=["own-events", "inherited-events"])
def test_runs_of_two_fits_of_one_joined_model_are_not_stacked(demo, tmp_path, shared):
    """An invocation killed between writing the two runs of a refit (run-2's events changed, or the events file both
    runs inherit): run-1's outputs are of the new fit, run-2's of the old one, each complete, both naming the same
    two runs. The loader refuses them."""
    import bidsapp

    root, _ = demo
    bids, old, new = tmp_path / "bids", tmp_path / "old", tmp_path / "new"
    shutil.copytree(root, bids)
    events = bids / "sub-01/func/sub-01_task-faces_run-2_events.tsv"
    if shared:
        events.rename(bids / "task-faces_events.tsv")
        events = bids / "task-faces_events.tsv"
        (bids / "sub-01/func/sub-01_task-faces_run-1_events.tsv").unlink()
    _run(bids, old, tmp_path / "w1")
    lines = events.read_text().splitlines()
    events.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # one trial less
    _run(bids, new, tmp_path / "w2")
    for path in (new / "sub-01/func").glob("*run-1_*"):
        shutil.copy(path, old / "sub-01/func" / path.name)
    with pytest.raises(ValueError, match=r"run-(1|2).* and .*run-(1|2).* record .*events.tsv with other checksums: "
                                         r"the two runs' estimates come from two fits of their joined trial model"):
        bidsapp.dataset(old, kind="betas", subject="01", space="MNI152NLin2009cAsym")
    assert len(bidsapp.dataset(new, kind="betas", subject="01", space="MNI152NLin2009cAsym").X)  # one fit: stacked
    assert len(bidsapp.dataset(old, kind="betas", subject="01", run=2, space="MNI152NLin2009cAsym").X)
