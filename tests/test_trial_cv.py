"""Label-free cross-validation targets of the trial models, checked against brute force."""

import numpy as np
import pytest

from bidsapp.core import trial_cv


@pytest.mark.parametrize("seed", range(5))
def test_heldout_r2_is_leave_one_run_out(seed):
    rng = np.random.default_rng(seed)
    n_runs, p, m = rng.integers(2, 5), rng.integers(1, 4), 6
    X = [rng.normal(size=(rng.integers(20, 40), p)) for _ in range(n_runs)]
    Y = [x @ rng.normal(size=(p, m)) + rng.normal(size=(x.shape[0], m)) for x in X]
    got = trial_cv.heldout_r2(X, Y)
    rss = tss = 0
    for r in range(n_runs):
        xs = np.vstack([X[q] for q in range(n_runs) if q != r])
        ys = np.vstack([Y[q] for q in range(n_runs) if q != r])
        b = np.linalg.lstsq(xs, ys, rcond=None)[0]
        rss = rss + ((Y[r] - X[r] @ b) ** 2).sum(0)
        tss = tss + (Y[r] ** 2).sum(0)
    np.testing.assert_allclose(got, 1 - rss / tss, rtol=1e-10)


def test_heldout_r2_needs_two_runs():
    with pytest.raises(ValueError, match="at least 2 runs"):
        trial_cv.heldout_r2([np.ones((5, 1))], [np.ones((5, 2))])


def test_repeat_prediction_error_brute_force():
    rng = np.random.default_rng(1)
    values = np.array(["a", "b", "a", "c", "b", "a"])
    runs = np.array([0, 0, 1, 1, 2, 2])
    betas = rng.normal(size=(3, 6, 4))
    got = trial_cv.repeat_prediction_error(betas, values, runs)
    want = np.zeros((3, 4))
    for i in range(6):
        others = [j for j in range(6) if values[j] == values[i] and runs[j] != runs[i]]
        if others:
            want += (betas[:, i] - betas[:, others].mean(axis=1)) ** 2
    np.testing.assert_allclose(got, want)


def test_split_half_reliability_of_repeated_pattern():
    rng = np.random.default_rng(2)
    pattern = rng.normal(size=(10, 5))
    values = np.repeat([f"s{k}" for k in range(10)], 2)
    runs = np.tile([0, 1], 10)
    betas = pattern[np.repeat(np.arange(10), 2)]
    np.testing.assert_allclose(trial_cv.split_half_reliability(betas, values, runs), 1.0)
    noisy = betas + 0.0 * betas
    noisy[runs == 1] = rng.normal(size=(10, 5))
    assert np.abs(trial_cv.split_half_reliability(noisy, values, runs)).max() < 0.95
    assert np.isnan(trial_cv.split_half_reliability(betas[:4], values[:4], runs[:4])).all()  # 2 values only


def test_time_block_folds():
    fold = trial_cv.time_block_folds(10, 3, 2)
    assert fold.tolist() == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1]
    with pytest.raises(ValueError):
        trial_cv.time_block_folds(10, 1, 2)


def test_no_function_takes_trial_type():
    import inspect

    for name, fn in inspect.getmembers(trial_cv, inspect.isfunction):
        assert "trial_type" not in inspect.signature(fn).parameters, name
