"""Trial models on known data: beta variance, R², FIR shapes, trials at the edges of the run."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.core import hrf, signal
from bidsapp.core.trial_models import fit_trials, trial_regressors


def _run(seed: int, n: int = 140, t_r: float = 2.0):
    rng = np.random.default_rng(seed)
    onsets = np.cumsum(rng.uniform(5, 11, 30))
    onsets = onsets[onsets < n * t_r - 24]
    return rng, onsets, np.full(onsets.size, 1.0), list(rng.choice(["a", "b", "c"], onsets.size))


@pytest.mark.parametrize("model", ["lss", "lsa"])
@pytest.mark.parametrize("basis_name", ["spm", "spm+derivative"])
def test_variance_factor_predicts_the_spread_of_the_betas(model, basis_name):
    """Over 400 noise draws, var(beta) = variance_factor * noise variance (within Monte Carlo error)."""
    rng, onsets, dur, types = _run(1)
    n, t_r, sigma = 140, 2.0, 3.0
    conf = rng.normal(size=(n, 2))
    op = signal.cleaning_operator(n, t_r=t_r, confounds=conf, filter=None)
    basis = hrf.make_basis(basis_name, t_r)
    signal_part = trial_regressors(n, onsets, dur, basis, t_r=t_r)[:, :, 0] @ rng.normal(2, 1, (onsets.size, 1))
    X = signal_part + rng.normal(0, sigma, (n, 400)) + conf @ rng.normal(size=(2, 400))
    fit = fit_trials(model, signal.apply_operator(X, op, standardize=None), op.matrix, op.kept, onsets, dur, types,
                     t_r=t_r, basis=basis)
    ok = fit.valid
    empirical = np.var(fit.betas[ok], axis=1, ddof=1)
    predicted = fit.variance_factor[ok] * sigma**2
    rel = np.abs(empirical / predicted - 1)
    assert np.median(rel) < 0.1 and rel.max() < 0.3, rel  # chi2 with 399 dof: sd ~ 7%


def test_r2_is_the_lsa_fit_on_each_column():
    rng, onsets, dur, types = _run(2)
    n, t_r = 140, 2.0
    op = signal.cleaning_operator(n, t_r=t_r, filter=None)
    reg = trial_regressors(n, onsets, dur, hrf.make_basis("glover", t_r), t_r=t_r)[:, :, 0]
    X = reg @ rng.normal(1, 1, (onsets.size, 6)) * np.array([0, 0.1, 0.5, 1, 3, 10]) + rng.normal(size=(n, 6))
    Y = signal.apply_operator(X, op, standardize="zscore_sample")
    for model in ("lss", "lsa"):
        fit = fit_trials(model, Y, op.matrix, op.kept, onsets, dur, types, t_r=t_r, basis=hrf.make_basis("glover", t_r))
        D = np.column_stack([op.matrix @ reg, np.ones(n)])
        resid = Y - D @ np.linalg.lstsq(D, Y, rcond=None)[0]
        ref = 1 - (resid**2).sum(0) / ((Y - Y.mean(0)) ** 2).sum(0)
        np.testing.assert_allclose(fit.r2, ref, atol=1e-10)
    assert fit.r2[-1] > 0.8 and fit.r2[-1] > fit.r2[0] + 0.5  # the strongest response is mostly explained


def test_fir_lss_recovers_the_response_shape_of_overlapping_trials():
    """Jittered trials 4-18 s apart (their responses overlap): FIR LSS deconvolves each trial's response (the
    other trials share one FIR shape); FIR LSA cannot (each trial's bins overlap another's: not estimable)."""
    rng = np.random.default_rng(4)
    n, t_r = 400, 1.0
    onsets = np.cumsum(rng.uniform(4, 18, 40)) + 0.3  # some volumes outside every window: the baseline
    onsets = onsets[onsets < n * t_r - 15]
    shape = hrf.glover_hrf(t_r, 1)[:13] * 10  # response at 0..12 s
    basis = hrf.make_basis("fir", t_r, window=(0.0, 12.0))
    fir = trial_regressors(n, onsets, np.zeros(onsets.size), basis, t_r=t_r)
    amps = rng.normal(1, 0.3, onsets.size)
    X = np.einsum("vtb,b,t->v", fir, shape, amps)[:, None] + rng.normal(0, 0.05, (n, 1))
    op = signal.cleaning_operator(n, t_r=t_r, detrend=False, filter=None)
    args = (X, op.matrix, op.kept, onsets, np.zeros(onsets.size), ["t"] * onsets.size)
    fit = fit_trials("lss", *args, t_r=t_r, basis=basis)
    assert fit.valid.all() and fit.coefficients.shape == (onsets.size, 13, 1)
    assert fit.betas.shape == (onsets.size * 13, 1)  # trial-major rows: trial 0's bins, then trial 1's ...
    mean_shape = fit.coefficients[:, :, 0].mean(axis=0) / amps.mean()
    np.testing.assert_allclose(mean_shape, shape, atol=0.05 * shape.max())
    per_trial = np.array([np.corrcoef(fit.coefficients[i, :, 0], shape)[0, 1] for i in range(onsets.size)])
    assert np.median(per_trial) > 0.9
    lsa = fit_trials("lsa", *args, t_r=t_r, basis=basis)
    covered = (fir.sum(axis=2) > 0).astype(int)  # (volumes, trials)
    overlapping = ((covered.T @ covered) > 0).sum(axis=1) > 1  # a volume in the windows of two trials
    assert overlapping.sum() >= 10
    assert not lsa.valid[overlapping].any() and all("collinear" in lsa.reason[i] for i in np.flatnonzero(overlapping))
    assert lsa.valid[~overlapping].all()


def test_fir_bins_outside_the_run_and_trials_after_it():
    rng, onsets, dur, types = _run(5, n=100)
    n, t_r = 100, 2.0
    onsets = np.cumsum(rng.uniform(10, 14, 12))  # gaps longer than the 8 s window: every bin estimable
    onsets, dur, types = onsets[onsets < n * t_r - 20], np.full(12, 1.0), ["a"] * 12
    dur = dur[:onsets.size]
    types = types[:onsets.size]
    onsets = np.append(onsets, [n * t_r - 3.0, n * t_r + 5.0])
    dur = np.append(dur, [1.0, 1.0])
    types = types + ["a", "a"]
    op = signal.cleaning_operator(n, t_r=t_r, filter=None)
    Y = signal.apply_operator(rng.normal(size=(n, 4)), op, standardize=None)
    fit = fit_trials("lsa", Y, op.matrix, op.kept, onsets, dur, types, t_r=t_r,
                     basis=hrf.make_basis("fir", t_r, window=(0.0, 8.0)))
    assert "no kept volume" in fit.reason[-2] and not fit.valid[-2]
    assert np.isfinite(fit.coefficients[-2, 0]).all() and np.isnan(fit.coefficients[-2, -1]).all()
    assert fit.reason[-1].startswith("starts after the end of the run") and np.isnan(fit.coefficients[-1]).all()
    assert fit.valid[:-2].all()


def test_design_checks_say_what_falls_back():
    from bidsapp.core.trial_models import check_trial_design

    t_r = 2.0
    fir = hrf.make_basis("fir", t_r, window=(0.0, 10.0))
    spaced = np.array([10.0, 40.0, 70.0])
    assert check_trial_design("lsa", spaced, np.full(3, 3.0), fir, t_r=t_r) == []
    lines = check_trial_design("lsa", np.array([10.0, 40.0, 45.0]), np.zeros(3), fir, t_r=t_r)
    assert len(lines) == 2 and "last less than a TR" in lines[0]
    assert "FIR window (12 s) is longer than the gap before or after 2 trial(s) (shortest 5 s)" in lines[1]
    assert "not estimable" in lines[1]
    lss = check_trial_design("lss", np.array([10.0, 40.0, 45.0]), np.full(3, 3.0), fir, t_r=t_r)
    assert len(lss) == 1 and "per-type FIR shapes (LSS)" in lss[0]
    with pytest.raises(ValueError, match="no trial's bins are estimable; use --trial-estimates lss"):
        check_trial_design("lsa", np.array([10.0, 15.0, 20.0]), np.full(3, 3.0), fir, t_r=t_r)
    close = check_trial_design("lsa", np.array([10.0, 11.0, 40.0]), np.full(3, 3.0), hrf.make_basis("spm", t_r),
                               t_r=t_r)
    assert len(close) == 1 and "1 pair(s) of trials start less than a TR" in close[0]
