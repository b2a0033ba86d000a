"""Joined trial model: what falls back and says so, LSS-1 against brute force, and the workflow's join node."""

import numpy as np

from bidsapp.core import trial_fit as tf
from tests.synthetic_trials import make_runs


def test_one_run_falls_back_and_says_which_step():
    s = make_runs(seed=1, n_runs=1, n_voxels=80, n_volumes=120, n_stimuli=20)
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, repeat_column="stimulus")
    fit = tf.fit_trials(runs, denoise=True, ridge=True, repeat_name="stimulus")
    text = " | ".join(fit.fallbacks)
    assert "--trial-repeats stimulus: one run" in text and "noise regressors: one run" in text
    assert fit.noise.n_components == 0 and fit.ridge_target == "held-out blocks of volumes"
    assert np.isfinite(fit.betas[0]).all()


def test_values_that_never_repeat_are_said():
    s = make_runs(seed=1, n_runs=2, n_voxels=60, n_volumes=120, n_stimuli=20)
    for r, e in enumerate(s.events):
        e.extra["once"] = [f"{r}-{k}" for k in range(len(e))]
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, repeat_column="once")
    fit = tf.fit_trials(runs, denoise=True, ridge=False, repeat_name="once")
    assert any("no value repeats across runs" in f for f in fit.fallbacks)
    assert fit.reliability is None and fit.noise.target == "all-trials"


def test_missing_repeat_column_names_the_file():
    s = make_runs(seed=1, n_runs=2, n_voxels=20, n_volumes=100, n_stimuli=10)
    try:
        tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, repeat_column="stimulus_id")
    except ValueError as exc:
        assert "synthetic_events.tsv: --trial-repeats stimulus_id: no such column" in str(exc)
    else:
        raise AssertionError("a missing repeat column must be refused")


def test_lss1_is_the_per_trial_least_squares():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    y = rng.normal(size=(50, 3))
    w = tf.lss1_weights(X)
    for i in range(6):
        D = np.column_stack([X[:, i], X.sum(axis=1) - X[:, i], np.ones(50)])
        np.testing.assert_allclose(w[i] @ y, np.linalg.lstsq(D, y, rcond=None)[0][0], rtol=1e-9, atol=1e-12)


def test_trial_after_run_end_is_nan_not_an_error():
    s = make_runs(seed=2, n_runs=2, n_voxels=40, n_volumes=100, n_stimuli=10)
    s.events[0].onset[-1] = 1000.0
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r)
    fit = tf.fit_trials(runs, denoise=True, ridge=True)
    assert np.isnan(fit.betas[0][-1]).all() and np.isfinite(fit.betas[0][:-1]).all()
    assert np.isnan(fit.beta_variance[0][-1])


def test_model_steps():
    assert tf.model_steps("lss", None, False) is None and tf.model_steps(None, None, False) is None
    assert tf.model_steps("optimized", None, False) == {"denoise": True, "ridge": True, "hrf": "library"}
    assert tf.model_steps("lss", "pca", False, "library") == {"denoise": True, "ridge": False, "hrf": "library"}
    assert tf.model_steps("lss", None, False, "library") is None  # per-run library, no join
    assert tf.model_steps("lss", "pca", False) == {"denoise": True, "ridge": False, "hrf": "spm"}
    assert tf.model_steps(None, None, True) == {"denoise": False, "ridge": True, "hrf": "spm"}


def test_workflow_joins_runs_per_participant_and_task():
    from bidsapp.workflows.base import RunPlan, init_bidsapp_wf

    def plan(sub, task, run, estimates):
        specs = {"mask": {}, "masking": {}, "cleaning": {}, "provenance": {},
                 "segmentation": {"trial_estimates": estimates, "t_r": 2.0},
                 "outputs": {"entities": {"subject": sub, "task": task}}}
        mem = {"mask": 1, "masking": 1, "cleaning": 1, "segmentation": 1, "provenance": 1, "derivatives": 1,
               "report": 1, "trialmodel": 0.35 + 2.0}
        return RunPlan(name=f"sub{sub}_task{task}_run{run}_wf", inputs={}, specs=specs, mem_gb=mem)

    plans = [plan("01", "a", 1, "optimized"), plan("01", "a", 2, "optimized"), plan("02", "a", 1, "optimized"),
             plan("01", "b", 1, "lss")]
    wf = init_bidsapp_wf(plans=plans, work_dir="/tmp/unused")
    names = set(wf.list_node_names())
    assert "trialmodel_sub01_taska" in names and "trialmodel_sub02_taska" in names
    assert not any(n.startswith("trialmodel_sub01_taskb") for n in names)
    assert wf.get_node("trialmodel_sub01_taska").mem_gb == 0.35 + 2 * 2.0  # one base, each run's data
    assert "sub01_taska_run1_wf_out.derivatives" in names and "sub01_taskb_run1_wf.derivatives" in names
    wf._generate_flatgraph()  # a DAG (a run's sink is its own sub-workflow, after the joined model)
