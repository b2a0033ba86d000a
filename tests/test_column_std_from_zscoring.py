"""``apply_operator(column_std=...)``: the standard deviation z-scoring divides by, whichever path and mode; 0 for a
constant column, whose cleaned values are round-off (the QC's tSNR after cleaning leaves it out, as before)."""

import numpy as np
import pytest

from bidsapp.core import signal


@pytest.mark.parametrize("method", ["dense", "steps"])
@pytest.mark.parametrize("standardize", ["zscore_sample", "psc", None])
def test_column_std_is_the_std_of_the_linear_cleaning(method, standardize):
    rng = np.random.default_rng(7)
    n = 240
    X = (rng.normal(size=(n, 300)) * rng.uniform(0.5, 20, 300) + rng.uniform(100, 1000, 300)).astype(np.float32)
    X[:, 5] = 500.0  # constant
    op = signal.cleaning_operator(n, t_r=2.0, confounds=rng.normal(size=(n, 6)), low_pass=0.1, high_pass=0.01,
                                  sample_mask=np.setdiff1d(np.arange(n), [40, 41, 100]))
    raw = signal.apply_operator(X.astype(np.float64), op, standardize=None, method=method)
    std = np.full(X.shape[1], -1.0)
    signal.apply_operator(X, op, standardize=standardize, method=method, column_std=std, chunk_size=128)
    expected = raw.std(axis=0, ddof=1)
    assert std[5] == 0.0 and expected[5] == 0.0  # a constant is 0, not the linear cleaning's round-off (~1e-12)
    np.testing.assert_allclose(std, expected, rtol=1e-9, atol=0)
