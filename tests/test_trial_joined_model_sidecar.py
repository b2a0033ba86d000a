"""The joined trial model (optimized, lsa --trial-ridge): edge trials, an unshrunk beta variance, and a sidecar
that says which model, HRF, runs and cross-validation targets were used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bidsapp.interfaces.trial_model import EstimateTrials
from tests.synthetic_trials import make_runs


def _inputs(tmp_path, n_runs: int, seed: int = 0, edge_trials: bool = True) -> tuple[list[dict], list[str]]:
    s = make_runs(seed=seed, n_runs=n_runs, n_voxels=60, n_volumes=120, n_stimuli=20)
    runs, names = [], []
    for r, (y, op, e) in enumerate(zip(s.data, s.operators, s.events)):
        table = pd.DataFrame({"onset": e.onset, "duration": e.duration, "trial_type": e.trial_type,
                              "stimulus": e.extra["stimulus"]})
        if edge_trials and r == 0:  # one trial 5 s before the run's end, one long before its start
            table = pd.concat([table, pd.DataFrame({"onset": [120 * s.t_r - 5.0, -30.0], "duration": [1.0, 1.0],
                                                    "trial_type": ["cat0", "cat1"],
                                                    "stimulus": ["stim_end", "stim_early"]})], ignore_index=True)
        events = tmp_path / f"sub-01_task-x_run-{r + 1}_events.tsv"
        table.to_csv(events, sep="\t", index=False)
        np.save(tmp_path / f"cleaned{r}.npy", y.astype(np.float32))
        np.save(tmp_path / f"op{r}.npy", op)
        runs.append({"cleaned": str(tmp_path / f"cleaned{r}.npy"), "operator": str(tmp_path / f"op{r}.npy"),
                     "events_file": str(events), "kept": list(range(120)), "t_r": s.t_r, "start_time": 0.0,
                     "dof": -1, "repeats": "stimulus", "trial_model": "optimized", "denoise": True, "ridge": True,
                     "hrf": "spm"})
        names.append(f"sub01_taskx_run{r + 1}_wf")
    return runs, names


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("joined")
    runs, names = _inputs(tmp, 3)
    return EstimateTrials(runs=runs, run_names=names).run(cwd=str(tmp)).outputs


def test_edge_trials_are_not_valid_and_not_called_precise(joined):
    table = pd.read_csv(joined.run_files[0]["betas_tsv"], sep="\t")
    end, early = table["stimulus"] == "stim_end", table["stimulus"] == "stim_early"
    assert table.loc[end, "response_retained"].iloc[0] < 0.2 and table.loc[early, "response_retained"].iloc[0] < 0.01
    assert not table.loc[end | early, "valid"].any() and table.loc[end | early, "reason"].notna().all()
    assert table.loc[~(end | early), "valid"].all()
    others = table.loc[table["valid"], "beta_variance"]
    # the ridge's own variance called this trial the most precise (shrunk the most); the unshrunk one does not
    assert table.loc[end, "beta_variance"].iloc[0] > others.max()


def test_sidecar_names_model_hrf_runs_and_targets(joined):
    info = joined.run_info[0]
    assert info["TrialModel"] == "optimized" and info["HRFModel"] == "spm" and "one row per trial" in info["BetasAre"]
    assert info["TrialModelRuns"] == [f"sub-01_task-x_run-{r}_events.tsv" for r in (1, 2, 3)]
    assert info["CrossValidationTargets"] == "--trial-repeats stimulus"
    assert "held-out runs included" in info["TrialRepeatsLeak"]


def test_targets_say_label_free_when_the_repeats_fell_back(tmp_path):
    runs, names = _inputs(tmp_path, 1, edge_trials=False)
    with pytest.warns(UserWarning, match="sub-01_task-x_run-1_events.tsv: --trial-repeats stimulus: one run"):
        info = EstimateTrials(runs=runs, run_names=names).run(cwd=str(tmp_path)).outputs.run_info[0]
    assert info["CrossValidationTargets"].startswith("label-free")
    assert "--trial-repeats stimulus could not be used" in info["CrossValidationTargets"]
    assert "TrialRepeatsLeak" not in info and info["RidgeTarget"] == "held-out blocks of volumes"


def test_beta_variance_is_the_unshrunk_least_squares_variance():
    from bidsapp.core import trial_fit as tf

    s = make_runs(seed=4, n_runs=2, n_voxels=40, n_volumes=100, n_stimuli=12)
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r)
    fit = tf.fit_trials(runs, denoise=False, ridge=True)
    assert (fit.fraction < 1).any()  # some columns are shrunk: their ridge variance would be smaller
    for r, y in enumerate(runs.data):
        x = runs.designs[r][0]
        b, *_ = np.linalg.lstsq(x, y, rcond=None)
        sigma2 = ((y - x @ b) ** 2).sum(axis=0) / (y.shape[0] - np.linalg.matrix_rank(x))
        expected = np.median(np.diag(np.linalg.inv(x.T @ x))[:, None] * sigma2[None, :], axis=1)
        np.testing.assert_allclose(fit.beta_variance[r], expected, rtol=1e-6)
