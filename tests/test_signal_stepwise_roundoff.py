"""Both cleaning paths against an exact (long double) application of the same operator, where the output is
round-off-sized relative to the input: confounds that remove every direction but the mean."""

import numpy as np
import pytest

from bidsapp.core import signal


@pytest.mark.parametrize("seed", range(6))
def test_both_paths_leave_only_the_mean_to_round_off(seed):
    """38 kept volumes of 94, 24 confounds + 25 cosine drifts: the (mean-centred) confounds span 37
    directions, so each cleaned column is its mean over the kept volumes. Both paths equal the long double
    product of the same factors to a few eps * ||x||, and the constant the mean."""
    rng = np.random.default_rng(seed)
    n, t_r = 94, 3.0
    keep = np.zeros(n, bool)
    keep[rng.choice(np.arange(10, n), 38, replace=False)] = True
    conf = rng.normal(size=(n, 24))
    x = rng.uniform(-50, 1000, 40) + rng.uniform(0.5, 50, 40) * rng.normal(size=(n, 40))
    op = signal.cleaning_operator(n, t_r=t_r, detrend=False, confounds=conf, filter="cosine", high_pass=0.0445,
                                  sample_mask=keep)
    assert op.n_confounds_used == 37 and op.dof == 1
    q = op.steps.q.astype(np.longdouble)
    xk = x[keep].astype(np.longdouble)
    exact = xk - q @ (q.T @ xk)
    bound = 4 * np.finfo(np.float64).eps * np.linalg.norm(x[keep], axis=0)
    for method in ("dense", "steps"):
        got = signal.apply_operator(x, op, standardize=None, method=method, threads=2)
        assert (np.abs(got - exact).max(axis=0).astype(np.float64) <= bound).all(), method
        np.testing.assert_allclose(got, np.broadcast_to(x[keep].mean(axis=0), got.shape), rtol=1e-13)
