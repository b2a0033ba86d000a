"""Library HRF: one shape per column chosen by held-out prediction of an all-trials design (no labels)."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.core import hrf, signal
from bidsapp.core.hrf_library import CANONICAL_SHAPE, RunForSelection, choose_shapes
from bidsapp.core.trial_models import fit_trials, trial_regressors


def test_library_shapes_span_the_documented_peaks():
    t_r = 0.5
    shapes = hrf.library_shapes(t_r, oversampling=10)
    assert len(shapes) == 20 and all(abs(s.sum() - 1) < 1e-12 for s in shapes)
    t = np.arange(shapes[0].size) * t_r / 10
    peaks = np.array([t[np.argmax(s)] for s in shapes])
    np.testing.assert_allclose(peaks, np.repeat(hrf.LIBRARY_PEAKS, 2), atol=0.1)
    # deep undershoots dip lower than shallow ones of the same peak
    assert all(shapes[2 * i + 1].min() < shapes[2 * i].min() for i in range(10))
    # the canonical-like shape is the closest to SPM's
    spm = hrf.spm_hrf(t_r, 10)
    dist = [np.abs(s - spm).sum() for s in shapes]
    assert int(np.argmin(dist)) == CANONICAL_SHAPE


def _runs(seed: int, n_runs: int, true_shapes: np.ndarray, noise: float = 0.5, t_r: float = 1.5):
    """Runs whose columns respond with their own library shape; trial amplitudes vary, labels are random."""
    rng = np.random.default_rng(seed)
    runs, truth = [], []
    for _ in range(n_runs):
        n = 200
        onsets = np.cumsum(rng.uniform(4, 10, 40))
        onsets = onsets[onsets < n * t_r - 20]
        dur = np.full(onsets.size, 1.0)
        amps = rng.normal(1.0, 0.4, (onsets.size, true_shapes.size))
        X = rng.normal(0, noise, (n, true_shapes.size))
        for h in np.unique(true_shapes):
            reg = trial_regressors(n, onsets, dur, hrf.make_basis("library", t_r, shape=int(h)), t_r=t_r)[:, :, 0]
            cols = true_shapes == h
            X[:, cols] += reg @ amps[:, cols] * 20
        op = signal.cleaning_operator(n, t_r=t_r, filter=None)
        Y = signal.apply_operator(X, op, standardize=None)
        types = list(rng.choice(["a", "b"], onsets.size))
        runs.append((RunForSelection(Y, op.matrix, onsets, dur, t_r), op, types))
        truth.append(amps)
    return runs, truth


@pytest.mark.parametrize("n_runs", [1, 3])
def test_choice_recovers_the_true_shape(n_runs):
    true_shapes = np.repeat([0, 7, 12, 19], 15)
    runs, _ = _runs(0, n_runs, true_shapes)
    choice = choose_shapes([r for r, _, _ in runs])
    assert choice.split == ("halves" if n_runs == 1 else "runs")
    peak_err = np.abs(hrf.LIBRARY_PEAKS[choice.shapes // 2] - hrf.LIBRARY_PEAKS[true_shapes // 2])
    assert np.median(peak_err) <= 0.34, peak_err  # within one library step (1/3 s) of the true peak
    assert (peak_err <= 0.67).mean() >= 0.9
    assert (choice.cv_r2 >= choice.canonical_cv_r2 - 1e-12).all() and not choice.fallback.any()


def test_columns_without_response_fall_back_to_the_canonical_shape():
    rng = np.random.default_rng(3)
    n, t_r = 150, 2.0
    op = signal.cleaning_operator(n, t_r=t_r, filter=None)
    Y = signal.apply_operator(rng.normal(size=(n, 30)), op, standardize=None)
    onsets = np.arange(10.0, 280.0, 12.0)
    choice = choose_shapes([RunForSelection(Y, op.matrix, onsets, np.zeros(onsets.size), t_r)])
    # noise: some column has no shape that predicts held-out data; those get the canonical-like shape
    assert choice.fallback.any() and (choice.shapes[choice.fallback] == CANONICAL_SHAPE).all()
    assert (choice.cv_r2[~choice.fallback] > 0).all() and (choice.cv_r2 < 0.2).all()


def test_selection_refuses_runs_without_trials_or_of_different_widths():
    op = signal.cleaning_operator(40, t_r=2.0, filter=None)
    run = RunForSelection(np.zeros((40, 3)), op.matrix, np.array([]), np.array([]), 2.0)
    with pytest.raises(ValueError, match="no run has any event"):
        choose_shapes([run])
    a = RunForSelection(np.zeros((40, 3)), op.matrix, np.array([4.0]), np.array([1.0]), 2.0)
    b = RunForSelection(np.zeros((40, 4)), op.matrix, np.array([4.0]), np.array([1.0]), 2.0)
    with pytest.raises(ValueError, match="same columns"):
        choose_shapes([a, b])


def test_library_betas_recover_truth_better_than_spm_on_late_responses():
    """Columns whose response peaks at 7 s: the chosen shapes give trial betas closer to the true amplitudes."""
    true_shapes = np.repeat([18, 19], 20)
    runs, truth = _runs(5, 1, true_shapes, noise=1.0)
    (run, op, types), amps = runs[0], truth[0]
    choice = choose_shapes([run])
    lib = fit_trials("lsa", run.cleaned, op.matrix, op.kept, run.onsets, run.durations, types, t_r=run.t_r,
                     shapes=choice.shapes)
    spm = fit_trials("lsa", run.cleaned, op.matrix, op.kept, run.onsets, run.durations, types, t_r=run.t_r)

    def recovery(betas):
        ok = np.isfinite(betas).all(axis=1)
        return np.median([np.corrcoef(betas[ok, c], amps[ok, c])[0, 1] for c in range(amps.shape[1])])

    r_lib, r_spm = recovery(lib.betas), recovery(spm.betas)
    print(f"median correlation with the true amplitudes: library {r_lib:.3f}, spm {r_spm:.3f}")
    assert r_lib > r_spm + 0.02
    assert np.median(lib.r2) > np.median(spm.r2)
    np.testing.assert_array_equal(lib.shapes, choice.shapes)


def test_selection_and_lsa_do_not_use_trial_types():
    """Permuting (or replacing) the trial_type values changes neither the chosen shapes nor the LSA betas."""
    runs, _ = _runs(7, 2, np.repeat([2, 15], 5))
    choice = choose_shapes([r for r, _, _ in runs])
    run, op, types = runs[0]
    rng = np.random.default_rng(0)
    fits = [fit_trials("lsa", run.cleaned, op.matrix, op.kept, run.onsets, run.durations, t, t_r=run.t_r,
                       shapes=choice.shapes)
            for t in (types, list(rng.permutation(types)), ["x"] * len(types))]
    for other in fits[1:]:
        np.testing.assert_array_equal(other.betas, fits[0].betas)


def test_a_run_with_one_trial_falls_back_to_the_canonical_shape_with_a_note():
    rng = np.random.default_rng(2)
    n, t_r = 120, 2.0
    op = signal.cleaning_operator(n, t_r=t_r, filter=None)
    Y = signal.apply_operator(rng.normal(size=(n, 5)), op, standardize=None)
    choice = choose_shapes([RunForSelection(Y, op.matrix, np.array([30.0]), np.array([2.0]), t_r)])
    assert choice.split == "none" and choice.fallback.all() and (choice.shapes == CANONICAL_SHAPE).all()
    assert "1 half(s)" in choice.note and "canonical-like library shape 6" in choice.note
