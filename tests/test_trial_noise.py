"""Data-driven noise regressors: the pool leaves responding columns out, the components are the shared
noise, and their number is chosen by held-out runs."""

import numpy as np

from bidsapp.core import trial_cv, trial_noise
from bidsapp.core import trial_fit as tf
from tests.synthetic_trials import make_runs


def _inputs(s):
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r)
    reference = [d[0] for d in runs.designs]
    return [trial_cv.all_trials_design(x) for x in reference], reference


def test_pool_excludes_responding_columns_and_components_span_shared_noise():
    s = make_runs(seed=3, n_voxels=300, noise_rank=3)
    designs, reference = _inputs(s)
    model = trial_noise.fit_noise_model(designs, s.data, trial_designs=reference)
    assert model.pool.sum() >= trial_noise.MIN_POOL
    assert (model.pool & s.signal_voxels).sum() <= 0.05 * model.pool.sum()
    assert 2 <= model.n_components <= 6  # 3 shared time courses per run (smoothed, so partly collinear)
    assert model.target == "all-trials"
    cv = model.cv_r2[: model.n_components + 1]
    assert cv[-1] > cv[0]


def test_no_shared_noise_does_no_harm():
    """Without shared noise the components only whiten the AR(1) noise: recovery does not drop."""
    from tests.synthetic_trials import recovery

    s = make_runs(seed=4, n_voxels=300, noise_scale=0.0)
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r)
    without = tf.fit_trials(runs, denoise=False, ridge=False)
    with_noise = tf.fit_trials(runs, denoise=True, ridge=False)
    assert recovery(with_noise.betas, s.true_betas, s.signal_voxels) >= recovery(
        without.betas, s.true_betas, s.signal_voxels) - 0.01


def test_one_run_falls_back_to_none():
    s = make_runs(seed=5, n_runs=1, n_voxels=100)
    designs, reference = _inputs(s)
    model = trial_noise.fit_noise_model(designs, s.data, trial_designs=reference)
    assert model.n_components == 0 and model.target.startswith("none: one run")


def test_pool_threshold_and_minimum():
    r2 = np.linspace(0, 0.5, 100)
    assert trial_noise.noise_pool(r2, threshold=0.25).sum() == 50
    small = trial_noise.noise_pool(r2, threshold=0.0, min_pool=5)
    assert small.sum() == 10 and small[:10].all()
    half = trial_noise.noise_pool(r2, threshold=0.25, trial_r2=np.arange(100.0)[::-1])
    assert half.sum() == 25 and half[25:50].all()  # the candidates least explained by single trials
