"""The library HRF inside the joined trial model (``--trial-estimates optimized``): one shape per column chosen
across all the runs without labels, then noise regressors and ridge; each step improves on the previous one on
synthetic data whose voxels each have their own HRF."""

import numpy as np
import pytest

from bidsapp.core import events as ev
from bidsapp.core import hrf_library
from bidsapp.core import trial_fit as tf
from tests.synthetic_trials import make_runs, recovery


@pytest.mark.parametrize("seed", [0, 1])
def test_each_step_improves_recovery_library_first(seed):
    s = make_runs(seed=seed, n_voxels=300, n_volumes=150)
    lss = [ev.lss_estimates(y, op, np.arange(y.shape[0]), e, t_r=s.t_r).betas
           for y, op, e in zip(s.data, s.operators, s.events)]
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, hrf="library")
    steps = [tf.fit_trials(runs, denoise=False, ridge=False, library=True),
             tf.fit_trials(runs, denoise=True, ridge=False, library=True),
             tf.fit_trials(runs, denoise=True, ridge=True, library=True)]
    rec = [recovery(b, s.true_betas, s.signal_voxels) for b in [lss] + [f.betas for f in steps]]
    assert rec[1] > rec[0] + 0.005, rec  # library HRF (measured: +0.008 to +0.013)
    assert rec[2] > rec[1] + 0.05, rec  # + noise regressors
    assert rec[3] > rec[2] + 0.01, rec  # + ridge
    spm = tf.fit_trials(tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r), denoise=True, ridge=True)
    assert rec[3] > recovery(spm.betas, s.true_betas, s.signal_voxels) + 0.005  # the library helps the whole model
    choice = steps[-1].hrf
    assert choice.split == "runs" and choice.shapes.shape == (300,) and not steps[-1].fallbacks
    # responding voxels are predicted by their chosen shape at least as well as by the canonical-like one
    sig = s.signal_voxels
    assert (choice.cv_r2[sig] >= choice.canonical_cv_r2[sig] - 1e-12).all()
    assert np.median(choice.cv_r2[sig]) > np.median(choice.cv_r2[~sig]) + 0.05
    assert np.unique(choice.shapes[sig]).size >= 5  # the synthetic HRFs vary: so do the choices


def test_choice_is_the_selection_across_runs_and_betas_use_it():
    """The joined model's shapes are hrf_library.choose_shapes over the runs (leave-one-run-out), and each
    column's betas are those of the model with its shape alone."""
    s = make_runs(seed=3, n_voxels=60, n_volumes=120, n_stimuli=16)
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, hrf="library")
    fit = tf.fit_trials(runs, denoise=False, ridge=False, library=True)
    direct = hrf_library.choose_shapes([hrf_library.RunForSelection(y, op, e.onset, e.duration, s.t_r)
                                        for y, op, e in zip(s.data, s.operators, s.events)])
    np.testing.assert_array_equal(fit.hrf.shapes, direct.shapes)
    np.testing.assert_allclose(fit.hrf.cv_r2, direct.cv_r2, rtol=1e-9, atol=1e-12)
    assert (runs.hrf_index == 0).all()  # the input is not changed
    for h in np.unique(fit.hrf.shapes)[:3]:
        cols = np.flatnonzero(fit.hrf.shapes == h)
        one = tf.TrialRuns(data=[y[:, cols] for y in s.data], designs=[d[h:h + 1] for d in runs.designs],
                           hrf_index=np.zeros(cols.size, int), t_r=s.t_r)
        alone = tf.fit_trials(one, denoise=False, ridge=False)
        for a, b in zip(fit.betas, alone.betas):
            np.testing.assert_allclose(a[:, cols], b, rtol=1e-5, atol=1e-6)


def test_library_ignores_trial_type():
    s = make_runs(seed=4, n_voxels=80, n_volumes=120, n_stimuli=16)
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, hrf="library")
    before = tf.fit_trials(runs, denoise=True, ridge=True, library=True)
    rng = np.random.default_rng(0)
    for e in s.events:
        e.trial_type = list(rng.permutation(e.trial_type))
    after = tf.fit_trials(tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, hrf="library"),
                          denoise=True, ridge=True, library=True)
    np.testing.assert_array_equal(before.hrf.shapes, after.hrf.shapes)
    for a, b in zip(before.betas, after.betas):
        np.testing.assert_array_equal(a, b)


def test_one_run_chooses_on_halves_and_says_so():
    s = make_runs(seed=5, n_runs=1, n_voxels=60, n_volumes=150, n_stimuli=20)
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, hrf="library")
    fit = tf.fit_trials(runs, denoise=True, ridge=True, library=True)
    assert fit.hrf.split == "halves"
    assert any("--hrf library: one run, no held-out run" in f for f in fit.fallbacks)
    assert np.isfinite(fit.betas[0]).all()


def test_no_trial_response_to_predict_falls_back_to_the_canonical_shape():
    s = make_runs(seed=6, n_runs=2, n_voxels=40, n_volumes=120, n_stimuli=10)
    s.events[1].onset[:] = 1000.0  # every trial of run 2 after its end: nothing to predict in that fold
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, hrf="library")
    fit = tf.fit_trials(runs, denoise=False, ridge=True, library=True)
    assert fit.hrf.split == "none" and (fit.hrf.shapes == hrf_library.CANONICAL_SHAPE).all()
    assert any("canonical-like library shape" in f for f in fit.fallbacks)
    assert np.isnan(fit.betas[1]).all() and np.isfinite(fit.betas[0]).all()


def test_library_needs_library_designs():
    s = make_runs(seed=1, n_runs=2, n_voxels=20, n_volumes=100, n_stimuli=10)
    with pytest.raises(ValueError, match="hrf='library'"):
        tf.fit_trials(tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r), denoise=False, ridge=False,
                      library=True)
    with pytest.raises(ValueError, match="spm or library"):
        tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, hrf="fir")
