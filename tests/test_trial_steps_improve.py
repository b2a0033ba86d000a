"""On synthetic data with known betas, each step of the optimized estimates improves their recovery."""

import numpy as np
import pytest

from bidsapp.core import events as ev
from bidsapp.core import trial_fit as tf
from tests.synthetic_trials import make_runs, recovery, retest_reliability


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("repeats", [False, True])
def test_noise_regressors_then_ridge_improve_on_lss(seed, repeats):
    s = make_runs(seed=seed, n_voxels=300, n_volumes=150)
    lss = [ev.lss_estimates(y, op, np.arange(y.shape[0]), e, t_r=s.t_r).betas
           for y, op, e in zip(s.data, s.operators, s.events)]
    name = "stimulus" if repeats else None
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, repeat_column=name)
    noise = tf.fit_trials(runs, denoise=True, ridge=False, repeat_name=name)
    ridge = tf.fit_trials(runs, denoise=True, ridge=True, repeat_name=name)
    rec = [recovery(b, s.true_betas, s.signal_voxels) for b in (lss, noise.betas, ridge.betas)]
    retest = [retest_reliability(b, s.events, s.signal_voxels) for b in (lss, noise.betas, ridge.betas)]
    assert rec[1] > rec[0] + 0.02, rec
    assert rec[2] >= rec[1] - 0.002, rec  # ridge at worst keeps the recovery of the unshrunk model
    assert retest[1] > retest[0] + 0.02, retest
    assert noise.noise.n_components >= 1
    if repeats:
        assert ridge.reliability is not None and np.nanmedian(ridge.reliability[s.signal_voxels]) > 0.5
    else:
        assert ridge.reliability is None and ridge.ridge_target == "held-out blocks of volumes"


def test_ridge_improves_label_free():
    s = make_runs(seed=2, n_voxels=300, n_volumes=150)
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r)
    noise = tf.fit_trials(runs, denoise=True, ridge=False)
    ridge = tf.fit_trials(runs, denoise=True, ridge=True)
    assert recovery(ridge.betas, s.true_betas, s.signal_voxels) > recovery(noise.betas, s.true_betas,
                                                                          s.signal_voxels) + 0.005
    assert np.median(ridge.fraction[~s.signal_voxels]) < np.median(ridge.fraction[s.signal_voxels])
