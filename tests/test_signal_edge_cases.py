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


def test_a_narrow_band_on_a_short_run_is_cleaned_as_nilearn_with_a_warning():
    """34 volumes, TR 0.94 s, 0.023-0.040 Hz: the filter's largest gain is 0.33 (no singular value above 1/2),
    nilearn keeps 6% of the input. It used to be refused as '0 degrees of freedom ... rounding noise';
    it leaves one effective degree of freedom: cleaned as nilearn, with the few-degrees-of-freedom warning."""
    from nilearn.signal import clean as nilearn_clean

    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (34, 7)) + rng.uniform(50, 500, 7)
    kw = dict(t_r=0.94, low_pass=0.040, high_pass=0.023)
    op = signal.cleaning_operator(34, **kw)
    assert np.linalg.svd(op.matrix, compute_uv=False).max() < 0.5 and op.dof == 1
    said = r"only 1 degrees of freedom \(an effective count: 34 kept volume\(s\) through detrending, a Butterworth"
    with pytest.warns(UserWarning, match=said):
        ours = signal.clean(x, **kw)
    theirs = nilearn_clean(x.copy(), standardize="zscore_sample", **kw)
    np.testing.assert_allclose(ours, theirs, atol=1e-8 * theirs.std(axis=0).max())


@pytest.mark.parametrize("seed", range(8))
def test_effective_degrees_of_freedom_of_a_filter(seed):
    """Butterworth operators: dof is the Satterthwaite count of the singular values; projections: their rank."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(40, 300))
    t_r = float(rng.choice([0.5, 1.0, 2.0]))
    nyq = 0.5 / t_r
    high = float(rng.uniform(0.005, 0.3 * nyq))
    low = float(rng.uniform(1.2 * high, 0.95 * nyq))
    conf = rng.normal(size=(n, int(rng.integers(0, 8))))
    op = signal.cleaning_operator(n, t_r=t_r, low_pass=low, high_pass=high, confounds=conf)
    lam = np.linalg.svd(op.matrix, compute_uv=False) ** 2
    assert op.dof == int(np.floor(lam.sum() ** 2 / (lam**2).sum() + 1e-9))
    # no more than the singular values that are not 0, no fewer than those near 1 (the pass band)
    assert (lam > 0.9).sum() <= op.dof <= (lam > 1e-6).sum()


def test_an_operator_that_keeps_nothing_is_refused_as_rounding_noise():
    """Confounds spanning every kept volume but the constant (they are centred), after a low-pass, and a
    z-score removing that constant: nothing but round-off is left."""
    rng = np.random.default_rng(2)
    n = 60
    conf = rng.normal(size=(n, n))
    op = signal.cleaning_operator(n, t_r=2.0, low_pass=0.2, confounds=conf, detrend=False)
    assert op.dof == 1 and signal.degrees_of_freedom(op, "zscore_sample") == 0
    with pytest.raises(ValueError, match=r"cleaning leaves 0 degrees of freedom .*rounding noise"):
        signal.clean(rng.normal(size=(n, 4)) + 10, t_r=2.0, low_pass=0.2, confounds=conf, detrend=False)


@pytest.mark.parametrize("confounds,shown", [(1, "a scalar"), (np.float64(2.5), "a scalar"),
                                             (np.ones((30, 2, 2)), r"shape \(30, 2, 2\)")])
def test_confounds_of_the_wrong_dimension_are_one_clear_error(confounds, shown):
    """``confounds=1`` raised ``IndexError: tuple index out of range`` from the message itself (nilearn
    refuses a scalar too, with a ``TypeError`` naming the accepted types)."""
    from nilearn.signal import clean as nilearn_clean

    x = np.random.default_rng(0).normal(size=(30, 3)) + 5
    if np.ndim(confounds) == 0:
        with pytest.raises(TypeError, match="'confounds' must be of type"):
            nilearn_clean(x.copy(), t_r=2.0, confounds=confounds)
    with pytest.raises(ValueError, match=rf"confounds must be an array of shape \(n_volumes, n_confounds\) = "
                                         rf"\(30, k\) or \(30,\), got {shown}"):
        signal.clean(x, t_r=2.0, filter=None, confounds=confounds)


def test_confounds_of_the_wrong_length_are_still_named():
    x = np.random.default_rng(0).normal(size=(30, 3)) + 5
    with pytest.raises(ValueError, match="Confounds have 29 rows but the run has 30 volumes"):
        signal.clean(x, t_r=2.0, filter=None, confounds=np.ones((29, 2)))


@pytest.mark.parametrize("constant", [1.0, 100.0, 12345.0])
def test_a_constant_confound_changes_nothing_with_censoring_and_a_filter(constant):
    """Censoring's interpolation and the filter leave a constant confound constant up to round-off: that round-off,
    scaled to unit variance, was regressed out as a direction of its own (0.6 of a column's std off, no warning).
    Now it is 0, as nilearn's exact constant once centred: the run equals the run without it, and nilearn's."""
    from nilearn.signal import clean as nilearn_clean

    from tests.nilearn_ref import patched_interpolation

    rng = np.random.default_rng(0)
    n = 200
    x, r = 1000 + 10 * rng.normal(size=(n, 3)), rng.normal(size=n)
    keep = np.ones(n, bool)
    keep[rng.choice(n, 30, replace=False)] = False
    conf = np.column_stack([np.full(n, constant), r])
    kw = dict(t_r=2.0, low_pass=0.1, sample_mask=keep)
    ours, without = signal.clean(x, confounds=conf, **kw), signal.clean(x, confounds=conf[:, 1:], **kw)
    np.testing.assert_allclose(ours, without, atol=1e-9)
    with patched_interpolation():
        theirs = nilearn_clean(x.copy(), confounds=conf.copy(), **dict(kw, sample_mask=np.flatnonzero(keep)))
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_a_trend_confound_that_detrending_removed_is_not_regressed_as_round_off():
    """A linear-trend confound is round-off once detrended: it regresses out nothing (with censoring and a filter
    it used to regress out a round-off direction, 0.4-0.6 of a column's std)."""
    rng = np.random.default_rng(1)
    n = 200
    x, r = 1000 + 10 * rng.normal(size=(n, 3)), rng.normal(size=n)
    keep = np.ones(n, bool)
    keep[rng.choice(n, 30, replace=False)] = False
    kw = dict(t_r=2.0, low_pass=0.1, high_pass=0.01, sample_mask=keep)
    for standardize_confounds in (True, False):
        conf = np.column_stack([np.arange(n, dtype=float), r])
        ours = signal.clean(x, confounds=conf, standardize_confounds=standardize_confounds, **kw)
        without = signal.clean(x, confounds=conf[:, 1:], standardize_confounds=standardize_confounds, **kw)
        np.testing.assert_allclose(ours, without, atol=1e-9)


def test_cosine_drift_count_is_nilearns_where_the_product_is_an_integer():
    """2 n high_pass t_r = 6 exactly for 375 volumes, TR 0.8 s, 0.01 Hz: nilearn's step from the frame times rounds
    it down to 5 drifts; the count (and the cleaned run) is nilearn's."""
    import warnings

    from nilearn.glm.first_level.design_matrix import create_cosine_drift
    from nilearn.signal import clean as nilearn_clean

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t_r, high_pass, n in [(0.8, 0.01, 375), (1.2, 0.01, 1750), (1.4, 0.0125, 400), (2.0, 0.01, 5)]:
            theirs = create_cosine_drift(high_pass, np.arange(n) * t_r).shape[1] - 1
            assert signal.cosine_drift(high_pass, n, t_r).shape[1] == theirs, (t_r, high_pass, n)
        rng = np.random.default_rng(0)
        x = 1000 + 10 * rng.normal(size=(375, 4)) + np.cumsum(rng.normal(size=(375, 4)), axis=0)
        kw = dict(t_r=0.8, filter="cosine", high_pass=0.01)
        ours, theirs = signal.clean(x, **kw), nilearn_clean(x.copy(), standardize="zscore_sample", **kw)
    np.testing.assert_allclose(ours, theirs, atol=1e-8)


def test_the_refusal_names_only_the_steps_used():
    rng = np.random.default_rng(0)
    x, conf = rng.normal(size=(30, 3)), rng.normal(size=(30, 29))
    with pytest.raises(ValueError, match="degrees of freedom") as info:
        signal.clean(x, t_r=2.0, confounds=conf, detrend=False, high_pass=0.05)
    text = str(info.value)
    assert "detrend" not in text and "an effective count: 30 kept volume(s) through a Butterworth filter" in text
