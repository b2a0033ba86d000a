"""--trial-estimates optimized from the command line: a joined model per participant and task, its outputs,
the sidecar, the loader's reliability helper, and no label leakage (permuting trial_type changes nothing)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bidsapp.cli.run import main


def _run(bids: Path, out: Path, work: Path, *extra: str) -> None:
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--nprocs", "2", "--mem-gb", "4",
                 "--work-dir", str(work), "--trial-estimates", "optimized", *extra]) == 0


def _permute_trial_types(bids: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for path in sorted(bids.glob("sub-01/**/*_events.tsv")):
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        df["trial_type"] = rng.permutation(df["trial_type"].to_numpy())
        df.to_csv(path, sep="\t", index=False)


@pytest.fixture(scope="module")
def optimized(demo, tmp_path_factory):
    """Outputs of the demo's participant 01 (2 runs) with --trial-estimates optimized, and with its
    events' trial_type values permuted across trials."""
    root, _ = demo
    base = tmp_path_factory.mktemp("optimized")
    bids = base / "bids"
    shutil.copytree(root, bids)
    _run(bids, base / "out", base / "work", "--trial-repeats", "response_time")
    _permute_trial_types(bids)
    _run(bids, base / "out-permuted", base / "work-permuted", "--trial-repeats", "response_time")
    return base


def _outputs(out: Path, suffix: str) -> list[Path]:
    return sorted(out.glob(f"sub-01/func/*_{suffix}"))


def test_joined_model_outputs_and_sidecar(optimized):
    betas = _outputs(optimized / "out", "betas.npy")
    assert len(betas) == 2
    for path in betas:
        b = np.load(path)
        table = pd.read_csv(str(path).replace(".npy", ".tsv"), sep="\t")
        assert b.shape[0] == len(table) and np.isfinite(b[table["valid"]]).all()
        assert (table["beta_variance"][table["valid"]] > 0).all()
        quality = pd.read_csv(str(path).replace("_betas.npy", "_betaquality.tsv"), sep="\t")
        assert len(quality) == b.shape[1] and quality["ridge_fraction"].between(0.05, 1).all()
        assert quality["r2"].between(-1e-9, 1).all() and "split_half_reliability" not in quality  # no repeats
        assert quality["hrf_shape"].between(0, 19).all() and {"hrf_peak", "hrf_cv_r2", "hrf_fallback"} <= set(quality)
        assert Path(str(path).replace("_betas.npy", "_betaquality.json")).exists()
    meta = json.loads(_outputs(optimized / "out", "timeseries.json")[0].read_text())
    trials = meta["Trials"]
    assert trials["TrialEstimates"] == ("library HRF per column + LSA per run + data-driven noise regressors + "
                                        "fractional ridge")
    assert trials["HRFModel"] == "library" and sum(s["columns"] for s in trials["HRFLibrary"]["Shapes"]) == b.shape[1]
    assert trials["TrialRepeats"] == "response_time" and len(trials["TrialModelRuns"]) == 2
    assert trials["NoiseRegressors"] >= 0 and trials["NoisePoolColumns"] > 0
    # response_time never repeats across runs: the fallback is said and recorded
    assert any("no value repeats across runs" in f for f in trials["TrialModelFallbacks"])
    assert meta["Parameters"]["trial_estimates"] == "optimized"


def test_permuting_trial_type_changes_no_estimate(optimized):
    """Nothing in the optimized model reads trial_type: every beta is bit-identical after permuting it."""
    for a, b in zip(_outputs(optimized / "out", "betas.npy"), _outputs(optimized / "out-permuted", "betas.npy"),
                    strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(np.load(a), np.load(b))
        ta, tb = (pd.read_csv(p.with_name(p.name.replace(".npy", ".tsv")), sep="\t") for p in (a, b))
        assert (ta["trial_type"] != tb["trial_type"]).any()  # the labels did change
        qa, qb = (p.with_name(p.name.replace("_betas.npy", "_betaquality.tsv")).read_text() for p in (a, b))
        assert qa == qb


def test_dataset_loads_optimized_betas_and_selects_reliable_columns_in_fold(optimized):
    import bidsapp

    ds = bidsapp.dataset(optimized / "out", kind="betas", subject="01")
    assert ds.X.shape[0] == len(ds.table) and ds.table["beta_variance"].dtype == float
    # a repeat column with repeats inside the training run: rows of the other run never matter
    ds.table["stim"] = [str(i % 3) for i in range(len(ds.table))]
    train = ds.groups == ds.groups[0]
    cols = ds.reliable_columns(train, repeats="stim", n_columns=50)
    X = ds.X.copy()
    ds.X[~train] = np.random.default_rng(0).normal(size=ds.X[~train].shape)
    np.testing.assert_array_equal(ds.reliable_columns([ds.groups[0]], repeats="stim", n_columns=50), cols)
    ds.X = X
    with pytest.raises(ValueError, match="circular"):
        ds.reliable_columns(train, repeats="trial_type")
