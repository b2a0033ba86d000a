"""Numerical edge cases of cleaning, each checked against nilearn on the same arrays."""

import warnings

import numpy as np
import pytest

from bidsapp.core import signal

PSC_WARNING = "psc standardization strategy is meaningless"


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("detrend", [True, False])
def test_psc_of_a_zero_mean_column_is_zero_with_a_warning_as_nilearn(seed, detrend):
    """Columns centred to a mean of ~1e-16 (round-off): nilearn sets them to 0 and warns; so do we.

    Before, a mean rounded to a few eps passed nilearn's absolute ``eps`` test and gave values ~1e17.
    """
    from nilearn.signal import clean as nilearn_clean

    rng = np.random.default_rng(seed)
    n, v = int(rng.integers(60, 600)), 9
    t = np.arange(n)[:, None]
    x = rng.normal(0, 1, (n, v)) + t * rng.normal(0, 0.01, v) + rng.normal(0, 3, v)
    zero = rng.choice(v, 4, replace=False)
    x[:, zero] -= x[:, zero].mean(axis=0)  # mean of exactly 0 up to round-off (nilearn's own test case)
    with warnings.catch_warnings(record=True) as theirs_w:
        warnings.simplefilter("always")
        theirs = nilearn_clean(x.copy(), standardize="psc", detrend=detrend, t_r=2.0)
    with warnings.catch_warnings(record=True) as ours_w:
        warnings.simplefilter("always")
        ours = signal.clean(x, standardize="psc", detrend=detrend, t_r=2.0, filter=None)
    assert sum(PSC_WARNING in str(w.message) for w in ours_w) == 1
    # nilearn zeroes each such column whose mean rounds below eps; where its rounding lands a few eps
    # away it returns ~1e15 %, which is no signal (the bug this test guards against, on our side)
    peak = np.abs(theirs[:, zero]).max(axis=0)
    assert np.all((peak == 0) | (peak > 1e10))
    if np.any(peak == 0):
        assert any(PSC_WARNING in str(w.message) for w in theirs_w)
    assert np.all(ours[:, zero] == 0)
    keep = np.setdiff1d(np.arange(v), zero)
    np.testing.assert_allclose(ours[:, keep], theirs[:, keep], rtol=1e-9, atol=1e-9 * np.abs(theirs[:, keep]).max())


def test_psc_without_a_zero_mean_column_does_not_warn():
    rng = np.random.default_rng(3)
    x = rng.normal(100, 1, (80, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        signal.clean(x, standardize="psc", t_r=2.0, filter=None)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4])
def test_psc_zero_mean_rule_is_relative_to_the_column_scale(scale):
    """A centred column is 0 whatever its scale (nilearn's absolute eps is missed at a large scale)."""
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, (300, 6)) * scale
    x[:, :3] += rng.uniform(1, 2, 3) * 50 * scale
    x[:, 3:] -= x[:, 3:].mean(axis=0)
    with pytest.warns(UserWarning, match=PSC_WARNING):
        ours = signal.clean(x, standardize="psc", t_r=2.0, filter=None)
    assert np.all(ours[:, 3:] == 0) and np.all(np.abs(ours[:, :3]).max(axis=0) > 0.1)
