import itertools
import warnings

import numpy as np
import pytest

from bidsapp.core import signal
from tests.nilearn_ref import patched_interpolation

T_R = 2.0
N = 150


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    t = np.arange(N)
    conf = np.column_stack([np.cumsum(rng.normal(0, 0.1, N)), np.sin(t / 7.0), rng.normal(0, 1, (N, 4))])
    X = (1000 + 50 * rng.random(400) + np.outer(t, rng.normal(0, 0.05, 400))
         + conf @ rng.normal(0, 3, (6, 400)) + rng.normal(0, 5, (N, 400))).astype(np.float32)
    keep = np.ones(N, bool)
    keep[[0, 1, 2, 40, 41, 77, 78, 79, 120, 149]] = False
    return X, conf, keep


GRID = list(itertools.product(
    [True, False],                                     # detrend
    ["zscore_sample", "psc", None],                    # standardize
    [None, "butterworth_band", "butterworth_high", "butterworth_low", "cosine"],
    [False, True],                                     # confounds
    [False, True],                                     # censoring
))


def _ids(p):
    return "-".join(str(x) for x in p)


@pytest.mark.parametrize("detrend,standardize,filt,with_conf,censor", GRID, ids=[_ids(p) for p in GRID])
def test_clean_equals_nilearn(data, detrend, standardize, filt, with_conf, censor):
    from nilearn.signal import clean as nl_clean

    X, conf, keep = data
    filters = {None: (None, None, None), "butterworth_band": ("butterworth", 0.08, 0.01),
               "butterworth_high": ("butterworth", None, 0.01), "butterworth_low": ("butterworth", 0.1, None),
               "cosine": ("cosine", None, 0.01)}
    ftype, low, high = filters[filt]
    kw = dict(detrend=detrend, standardize=standardize, low_pass=low, high_pass=high,
              confounds=conf if with_conf else None)
    with warnings.catch_warnings(), patched_interpolation():
        warnings.simplefilter("ignore")
        # nilearn on float64 input: the exact arithmetic (see test_float32_precision_vs_nilearn)
        ref = nl_clean(X.astype(np.float64), t_r=T_R, filter=ftype or False,
                       sample_mask=np.flatnonzero(keep) if censor else None, **kw)
    ours = signal.clean(X, t_r=T_R, filter=ftype, sample_mask=keep if censor else None, chunk_size=128, **kw)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    if standardize == "zscore_sample":
        assert np.abs(ours - ref).max() <= 1e-4
    else:
        assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()


def test_float32_precision_vs_nilearn(data):
    """nilearn's float32 path rounds more than we do: we are closer to the exact result."""
    from nilearn.signal import clean as nl_clean

    X, conf, _ = data
    kw = dict(detrend=False, standardize="zscore_sample", low_pass=0.1, confounds=conf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = nl_clean(X.astype(np.float64), t_r=T_R, **kw)
        nl32 = nl_clean(X.copy(), t_r=T_R, **kw)
    ours = signal.clean(X, t_r=T_R, **kw)
    assert np.abs(ours - exact).max() < 1e-5
    assert np.abs(ours - exact).max() < np.abs(nl32 - exact).max()
    assert np.abs(ours - nl32).max() < 1e-3


def test_clean_does_not_mutate_and_copy_false_reuses(data):
    X, conf, keep = data
    before = X.copy()
    out = signal.clean(X, t_r=T_R, confounds=conf, sample_mask=keep)
    np.testing.assert_array_equal(X, before)
    Y = X.copy()
    out2 = signal.clean(Y, t_r=T_R, confounds=conf, sample_mask=keep, copy=False)
    assert np.shares_memory(out2, Y)
    np.testing.assert_allclose(out, out2, atol=1e-6)


def test_clean_removes_confound_and_known_signal_survives():
    rng = np.random.default_rng(0)
    t = np.arange(200) * T_R
    sig = np.sin(2 * np.pi * 0.04 * t)
    nuisance = rng.normal(0, 1, 200)
    X = (sig + 3 * nuisance + 0.01 * t)[:, None].astype(np.float32)
    out = signal.clean(X, t_r=T_R, confounds=nuisance[:, None], standardize=None)
    assert np.corrcoef(out[:, 0], sig)[0, 1] > 0.995


@pytest.mark.parametrize("kwargs,match", [
    (dict(t_r=0), "Repetition time must be > 0"),
    (dict(t_r=-2), "Repetition time must be > 0"),
    (dict(t_r=2.0, low_pass=0.3), "at or above the Nyquist frequency 0.25"),
    (dict(t_r=2.0, high_pass=0.1, low_pass=0.05), "must be lower than low_pass"),
    (dict(t_r=2.0, filter="fir"), "Unknown filter 'fir'"),
    (dict(t_r=2.0, standardize="zscore"), "Unknown standardize 'zscore'"),
    (dict(t_r=2.0, confounds=np.zeros((10, 2))), "Confounds have 10 rows but the run has 150"),
    (dict(t_r=2.0, sample_mask=np.zeros(150, bool)), "removes every volume"),
    (dict(t_r=2.0, filter="cosine"), "needs high_pass"),
])
def test_bad_inputs(data, kwargs, match):
    X, _, _ = data
    with pytest.raises(ValueError, match=match):
        signal.clean(X, **kwargs)


def test_nan_confounds_and_signals(data):
    X, conf, _ = data
    bad = conf.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"Confound columns \[1\] contain NaN"):
        signal.clean(X, t_r=T_R, confounds=bad)
    Xb = X.copy()
    Xb[3, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        signal.clean(Xb, t_r=T_R)


def test_short_series_for_filter():
    with pytest.raises(ValueError, match="needs more than"):
        signal.clean(np.ones((15, 3), np.float32), t_r=2.0, low_pass=0.1)


def test_nilearn_interpolation_bug_is_documented():
    """nilearn 0.14 interpolates the mirror rows of the kept volumes; we do not."""
    from nilearn.signal import _interpolate_volumes

    X = (np.arange(10.0) ** 2)[:, None]
    X[4] = -100  # censored
    keep = np.array([2, 3, 5, 6, 7, 8])
    X[[0, 1, 9]] = -50
    nilearn_out = _interpolate_volumes(X.copy(), keep, 1.0, False)
    assert nilearn_out[0, 0] == -50 and np.isnan(nilearn_out[1, 0])  # kept raw / NaN-ed the wrong rows
    op, rows = signal._interpolation_operator(10, keep, 1.0)
    np.testing.assert_array_equal(rows, np.arange(2, 9))
    np.testing.assert_allclose((op @ X)[:, 0], np.arange(2, 9) ** 2, atol=1e-9)


@pytest.mark.parametrize("standardize", ["zscore_sample", "psc"])
@pytest.mark.parametrize("detrend", [True, False])
def test_constant_and_zero_columns_are_zero(data, standardize, detrend):
    """A constant column is 0 after standardization (decided on its scale, not on round-off)."""
    X, conf, keep = data
    Xc = X.astype(np.float64)
    Xc[:, 0] = 1234.5678
    Xc[:, 1] = 0.0
    Xc[:, 2] = -7.1e-3
    out = signal.clean(Xc, t_r=T_R, detrend=detrend, standardize=standardize, confounds=conf,
                       sample_mask=keep, filter="butterworth", high_pass=0.01)
    assert (out[:, :3] == 0).all()
    assert np.isfinite(out).all() and (out[:, 3:].std(axis=0) > 0.1).all()


@pytest.mark.parametrize("detrend, high_pass, removes", [(True, None, True), (False, 0.01, True),
                                                       (False, None, False)])
def test_constant_columns_without_standardization(data, detrend, high_pass, removes):
    """Without standardization, a constant column is 0 when the cleaning removes the mean (detrending, a high-pass),
    not the round-off of its detrending and confound regression (a constant region's correlations would be those
    of that round-off); kept as nilearn gives it otherwise (a low-pass alone keeps a constant)."""
    from nilearn.signal import clean as nilearn_clean

    X, conf, keep = data
    Xc = X.astype(np.float64)
    Xc[:, 0] = 1234.5678
    Xc[:, 1] = -7.1e-3
    kwargs = dict(t_r=T_R, detrend=detrend, standardize=None, confounds=conf, filter="butterworth",
                  high_pass=high_pass, low_pass=0.1)
    out = signal.clean(Xc, sample_mask=keep, **kwargs)
    assert (out[:, :2] == 0).all() == removes and (out[:, 2:].std(axis=0) > 0.1).all()
    ref = nilearn_clean(Xc[:, :2], sample_mask=keep, **{**kwargs, "standardize": False})
    assert (np.abs(out[:, :2] - ref) <= 1e-6 * np.abs(Xc[0, :2])).all()  # nilearn's round-off, or its constant


def test_unknown_standardize_in_apply_operator(data):
    X, _, _ = data
    op = signal.cleaning_operator(X.shape[0], t_r=T_R)
    with pytest.raises(ValueError, match="Unknown standardize 'zscore'"):
        signal.apply_operator(X, op, standardize="zscore")


def test_cosine_with_low_pass_is_refused(data):
    X, _, _ = data
    with pytest.raises(ValueError, match="filter='cosine' is a high-pass .* cannot apply low_pass=0.1"):
        signal.clean(X, t_r=T_R, filter="cosine", high_pass=0.01, low_pass=0.1)


def test_degrees_of_freedom_counts_everything_removed():
    rng = np.random.default_rng(1)
    n = 120
    conf = rng.normal(size=(n, 7))
    keep = np.ones(n, bool)
    keep[[0, 1, 50, 51]] = False
    op = signal.cleaning_operator(n, t_r=2.0, confounds=conf, sample_mask=keep, filter=None)
    assert op.dof == 116 - 2 - 7 and op.removes_mean
    assert signal.degrees_of_freedom(op, "zscore_sample") == 107
    op = signal.cleaning_operator(n, t_r=2.0, detrend=False, filter="cosine", high_pass=0.01)
    n_cos = int(np.floor(2 * n * 0.01 * 2.0))
    assert op.dof == n - n_cos and not op.removes_mean
    assert signal.degrees_of_freedom(op, "zscore_sample") == n - n_cos - 1
    # band-pass 0.01-0.1 Hz at TR 2 s keeps the frequencies k / (2 n TR) inside the band, about 2 n TR * 0.09,
    # at a gain that is not flat: the effective (Satterthwaite) count is below that
    op = signal.cleaning_operator(n, t_r=2.0, detrend=False, low_pass=0.1, high_pass=0.01)
    lam = np.linalg.svd(op.matrix, compute_uv=False) ** 2
    assert op.dof == int(lam.sum() ** 2 / (lam**2).sum())
    assert 0.5 * 2 * n * 2.0 * 0.09 <= op.dof <= 2 * n * 2.0 * 0.09


@pytest.mark.parametrize("n,kwargs", [
    (1, {}),
    (3, {"confounds": np.random.default_rng(0).normal(size=(3, 2))}),
    (10, {"confounds": np.random.default_rng(0).normal(size=(10, 8))}),
    (30, {"confounds": np.random.default_rng(0).normal(size=(30, 28))}),
])
def test_too_short_runs_are_refused(n, kwargs):
    """Runs too short for the model raise instead of writing rounding noise."""
    X = np.random.default_rng(2).normal(size=(n, 5)).astype(np.float32) + 100
    with pytest.raises(ValueError, match=r"cleaning leaves -?\d+ degrees of freedom \(.*kept volume"):
        signal.clean(X, t_r=2.0, filter=None, **kwargs)


def test_few_degrees_of_freedom_warn_one_line():
    X = np.random.default_rng(2).normal(size=(20, 5)).astype(np.float32) + 100
    conf = np.random.default_rng(3).normal(size=(20, 12))
    with pytest.warns(UserWarning, match=r"only 6 degrees of freedom .* fewer than 10") as rec:
        signal.clean(X, t_r=2.0, filter=None, confounds=conf)
    assert "\n" not in str(rec[0].message)


def test_float64_input_is_cleaned_in_float64():
    rng = np.random.default_rng(4)
    X = 1000 + rng.normal(size=(80, 6)) * 1e-5  # variations below float32 resolution at 1000
    out = signal.clean(X, t_r=2.0, filter=None)
    ref = (X - X.mean(0))
    t = np.arange(80) - 39.5
    ref = ref - np.outer(t, t @ ref) / (t @ t)
    ref /= ref.std(axis=0, ddof=1)
    assert out.dtype == np.float64 and np.abs(out - ref).max() < 1e-6


def test_stepwise_path_equals_dense():
    """Long runs apply the operator's factors one after the other: same numbers as the dense product."""
    rng = np.random.default_rng(11)
    for case in range(40):
        n = int(rng.integers(40, 400))
        sm = None
        if case % 3:
            sm = np.ones(n, bool)
            sm[rng.choice(n, int(rng.integers(1, n // 8)), replace=False)] = False
            sm[:2] = case % 2 == 0  # censored at the start in half of the cases
        kind = ["butterworth", "cosine", None][case % 3]
        low, high = (0.12, 0.01) if kind == "butterworth" else (None, 0.01 if kind == "cosine" else None)
        conf = rng.normal(0, 1, (n, int(rng.integers(0, 20)))) if case % 4 else None
        try:
            op = signal.cleaning_operator(n, t_r=1.5, detrend=bool(case % 5), confounds=conf, filter=kind,
                                          low_pass=low, high_pass=high, sample_mask=sm)
        except ValueError:
            continue
        X = rng.normal(0, 1, (n, 64)) * rng.uniform(1, 100, 64) + rng.uniform(-500, 500, 64)
        for standardize in ("zscore_sample", "psc", None):
            dense = signal.apply_operator(X, op, standardize=standardize, method="dense")
            steps = signal.apply_operator(X, op, standardize=standardize, method="steps")
            scale = np.maximum(dense.std(axis=0), 1e-12)
            assert (np.abs(dense - steps).max(axis=0) / scale).max() < 1e-9, (case, standardize)


def test_the_cost_model_takes_steps_for_long_unfiltered_runs():
    conf = np.random.default_rng(0).normal(0, 1, (2000, 36))
    long = signal.cleaning_operator(2000, t_r=0.5, confounds=conf, filter=None)
    short = signal.cleaning_operator(300, t_r=2.0, confounds=conf[:300], filter=None)
    band = signal.cleaning_operator(300, t_r=2.0, confounds=conf[:300], low_pass=0.08, high_pass=0.01)
    assert signal.stepwise_is_cheaper(long)
    assert not signal.stepwise_is_cheaper(short) and not signal.stepwise_is_cheaper(band)


@pytest.mark.parametrize("method", ["dense", "steps"])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apply_operator_leaves_its_input_alone(method, order, dtype):
    """copy=True never writes into the caller's array (the step-wise path once detrended a float64
    Fortran-ordered input in place), and ``out=`` receives the same numbers as a new array."""
    rng = np.random.default_rng(0)
    X = np.asarray(rng.normal(size=(120, 70)) + 100, dtype=dtype, order=order)
    X0 = X.copy()
    op = signal.cleaning_operator(120, t_r=2.0, detrend=True, filter="butterworth", high_pass=0.01,
                                  confounds=rng.normal(size=(120, 3)))
    ref = signal.apply_operator(X, op, method=method, chunk_size=16)
    np.testing.assert_array_equal(X, X0)
    out = np.empty_like(ref)
    assert signal.apply_operator(X, op, method=method, chunk_size=32, out=out) is out
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12 if dtype == np.float64 else 1e-6)
    with pytest.raises(ValueError, match="out has shape"):
        signal.apply_operator(X, op, out=np.empty((3, 3), ref.dtype))
