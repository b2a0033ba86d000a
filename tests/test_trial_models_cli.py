"""--trial-estimates lsa and --hrf from the command line: files, sidecar, column descriptions, the reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.demo import make_dataset

SPACE = "MNI152NLin2009cAsym"


@pytest.fixture(scope="module")
def bids(tmp_path_factory):
    root = tmp_path_factory.mktemp("trialcli") / "bids"
    return root, make_dataset(root)


def _run(bids, tmp_path, desc, *args):
    root, truth = bids
    out = tmp_path / "out"
    code = main([str(root), str(out), "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1",
                 "--desc", desc, "--work-dir", str(tmp_path / "w"), *args])
    assert code == 0
    folder = out / "sub-01" / "func"
    stem = next(p.name[:-len("_timeseries.json")] for p in folder.glob(f"*run-1_*desc-{desc}_timeseries.json"))
    t = next(t for t in truth if t.entities.get("run") in ("1", 1) and t.entities.get("subject") == "01")
    return out, folder, stem, t


def _table(path):
    rows = [r.split("\t") for r in path.read_text().splitlines()]
    return {h: [r[j] for r in rows[1:]] for j, h in enumerate(rows[0])}


def test_lsa_with_library_hrf(bids, tmp_path):
    out, folder, stem, t = _run(bids, tmp_path, "lsalib", "--trial-estimates", "lsa", "--hrf", "library")
    meta = json.loads((folder / f"{stem}_timeseries.json").read_text())
    trials = meta["Trials"]
    assert trials["TrialModel"] == "lsa" and trials["HRFModel"] == "library"
    assert trials["HRFLibrary"]["Split"].startswith("2-fold within the run")
    assert len(trials["HRFLibrary"]["Shapes"]) == 20
    betas = np.load(folder / f"{stem}_betas.npy")
    X = np.load(folder / f"{stem}_timeseries.npy")
    assert betas.shape == (len(t.onsets), X.shape[1])
    hrf = _table(folder / f"{stem}_hrf.tsv")
    assert len(hrf["column"]) == X.shape[1] and {"r2", "hrf_shape", "hrf_cv_r2", "hrf_fallback"} <= set(hrf)
    described = json.loads((folder / f"{stem}_hrf.json").read_text())
    assert set(described) == set(hrf)
    btab = _table(folder / f"{stem}_betas.tsv")
    assert "variance_factor" in btab and "variance_factor" in json.loads((folder / f"{stem}_betas.json").read_text())
    # the active columns' betas follow the true amplitudes
    import bidsapp

    ds = bidsapp.dataset(out, kind="betas", subject="01", run="1", desc="lsalib")
    assert ds.X.shape[0] == int((np.array(btab["valid"]) == "True").sum())
    active = t.active[np.asanyarray(__import__("nibabel").load(
        str(t.bold).replace("desc-preproc_bold", "desc-brain_mask")).dataobj) > 0]
    valid = np.array(btab["valid"]) == "True"
    assert np.corrcoef(betas[valid][:, active].mean(axis=1), t.amplitudes[valid])[0, 1] > 0.9
    r2 = np.array(hrf["r2"], float)
    assert np.median(r2[active]) > np.median(r2[~active])


def test_fir_rows_per_trial_and_bin(bids, tmp_path):
    _, folder, stem, t = _run(bids, tmp_path, "fir", "--trial-estimates", "lss", "--hrf", "fir",
                              "--trial-window", "0", "10")
    meta = json.loads((folder / f"{stem}_timeseries.json").read_text())["Trials"]
    offsets = meta["FIROffsets"]
    assert offsets[0] == 0 and len(offsets) >= 5 and "trial-major" in meta["BetasAre"]
    betas = np.load(folder / f"{stem}_betas.npy")
    btab = _table(folder / f"{stem}_betas.tsv")
    assert betas.shape[0] == len(t.onsets) * len(offsets) == len(btab["fir_offset"])
    assert [float(v) for v in btab["fir_offset"][:len(offsets)]] == offsets
    assert btab["index"][:len(offsets)] == ["0"] * len(offsets)


def test_derivative_basis_and_sidecar_words(bids, tmp_path):
    _, folder, stem, t = _run(bids, tmp_path, "deriv", "--trial-estimates", "lss", "--hrf", "spm+derivative")
    meta = json.loads((folder / f"{stem}_timeseries.json").read_text())["Trials"]
    assert "canonical regressor" in meta["BetasAre"] and "time derivative" in meta["HRF"]
    assert np.load(folder / f"{stem}_betas.npy").shape[0] == len(t.onsets)


def test_hrf_without_estimates_is_a_usage_error(bids, tmp_path, capsys):
    root, _ = bids
    code = main([str(root), str(tmp_path / "o"), "participant", "--hrf", "glover"])
    err = capsys.readouterr().err
    assert code == 2 and "--hrf glover shapes the trial-wise estimates, but none are made" in err


def test_fir_lsa_with_no_separable_trial_is_refused_before_the_run(bids, tmp_path, capsys):
    root, _ = bids
    out = tmp_path / "o"
    code = main([str(root), str(out), "participant", "--participant-label", "01", "--run", "1", "--nprocs", "1",
                 "--trial-estimates", "lsa", "--hrf", "fir", "--trial-window", "0", "30"])
    err = capsys.readouterr().err
    assert code == 2 and "events.tsv: --hrf fir with --trial-estimates lsa: the FIR window (32 s)" in err
    assert "use --trial-estimates lss or a shorter --trial-window" in err
    assert not list(out.rglob("*_timeseries.npy"))
