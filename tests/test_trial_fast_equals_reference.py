"""The vectorised trial-model numerics give the answers of straightforward implementations (kept here).

Each fast function (penalty search for all columns at once, held-out ridge error in the rotated basis,
least-squares residuals by projection on the design's column space, noise components by QR then SVD,
noise-count cross-validation from cross-products) is compared with the implementation it replaced, over
seeded random cases, to 1e-6 of each column's scale; the whole optimized fit is compared with the same fit
run on the reference implementations.
"""

import numpy as np
import pytest

from bidsapp.core import fracridge as fr
from bidsapp.core import hrf, trial_cv, trial_noise
from bidsapp.core import trial_fit as tf
from tests.synthetic_trials import make_runs

TOL = 1e-6


# --- reference implementations (the loops the fast code replaced) --------------------------------------------

def ref_alphas_for_fractions(basis, rotated_ols, fractions):
    f = np.atleast_1d(np.asarray(fractions, dtype=np.float64))
    grid = basis.alpha_grid()
    s2 = basis.s**2
    shrink = s2[None, :] / (s2[None, :] + grid[:, None])
    b2 = rotated_ols**2
    total = b2.sum(axis=0)
    ratio = np.sqrt((shrink**2) @ b2 / np.where(total > 0, total, 1.0))
    log_grid = np.log(grid[1:])
    alpha = np.zeros((f.size, rotated_ols.shape[1]))
    for j in range(rotated_ols.shape[1]):
        if total[j] == 0:
            continue
        r = ratio[1:, j]
        la = np.interp(f, r[::-1], log_grid[::-1], left=log_grid[-1], right=log_grid[0])
        alpha[:, j] = np.where(f >= 1.0, 0.0, np.exp(la))
    return alpha


def ref_heldout_error(x_train, y_train, x_test, y_test, fractions):
    coefs, _ = fr.fracridge(x_train, y_train, fractions)
    return ((y_test[None] - np.einsum("np,fpc->fnc", x_test, coefs)) ** 2).sum(axis=1)


def ref_single_trial_r2(trial_designs, data):
    rss = tss = 0.0
    n_res = n_all = 0
    for x, y in zip(trial_designs, data):
        b, *_ = np.linalg.lstsq(x, y, rcond=None)
        rss = rss + ((y - x @ b) ** 2).sum(axis=0)
        tss = tss + (y**2).sum(axis=0)
        n_res += y.shape[0] - np.linalg.matrix_rank(x)
        n_all += y.shape[0]
    return 1.0 - (rss / max(n_res, 1)) / np.where(tss > 0, tss / n_all, 1.0)


def ref_all_trials_r2(designs, data):
    b = trial_cv.pooled_fit(designs, data, range(len(data)))
    rss = sum(((y - x @ b) ** 2).sum(axis=0) for x, y in zip(designs, data))
    tss = sum((y**2).sum(axis=0) for y in data)
    return 1.0 - rss / np.where(tss > 0, tss, 1.0)


def ref_run_components(design, data, pool, beta, n_max):
    resid = data[:, pool] - design @ beta[:, pool]
    norm = np.linalg.norm(resid, axis=0)
    resid = resid / np.where(norm > 0, norm, 1.0)
    u, s, _ = np.linalg.svd(resid, full_matrices=False)
    rank = int((s > (s[0] * 1e-10 if s.size else 0)).sum())
    return u[:, : min(n_max, rank)]


def ref_heldout_r2_per_k(components, designs, data, n_max):
    out = []
    for k in range(n_max + 1):
        xs = [trial_noise.project_out(c[:, :k], x) for c, x in zip(components, designs)]
        ys = [trial_noise.project_out(c[:, :k], y) for c, y in zip(components, data)]
        out.append(trial_cv.heldout_r2(xs, ys, removed=k))
    return np.array(out)


def ref_noise_variance(x, y, dof):
    b, *_ = np.linalg.lstsq(x, y, rcond=None)
    rank = np.linalg.matrix_rank(x) if x.shape[1] else 0
    return ((y - x @ b) ** 2).sum(axis=0) / max(dof - rank, 1)


# --- random cases ---------------------------------------------------------------------------------------------

def _design(rng, n, p, rank_deficient=False):
    x = rng.standard_normal((n, p)) * rng.uniform(0.1, 10.0, p)
    if rank_deficient and p >= 3:
        x[:, -1] = x[:, 0] - 2.0 * x[:, 1]
    return x


def _targets(rng, x, c):
    y = x @ rng.standard_normal((x.shape[1], c)) * rng.uniform(0.0, 3.0, c) + rng.standard_normal((x.shape[0], c))
    y *= 10.0 ** rng.uniform(-3, 3, c)  # columns of very different scales
    y[:, 0] = 0.0  # a column with nothing to fit
    return y


def _close(got, want, axis=0):
    scale = np.maximum(np.abs(want).max(axis=axis, keepdims=True), 1e-300)
    np.testing.assert_array_less(np.abs(got - want) / scale, TOL)


@pytest.mark.parametrize("seed", range(8))
def test_penalty_search_equals_per_column_interpolation(seed):
    rng = np.random.default_rng(seed)
    n, p = int(rng.integers(20, 80)), int(rng.integers(2, 15))
    x = _design(rng, n, p, rank_deficient=seed % 2 == 1)
    y = _targets(rng, x, 60)
    basis = fr.FracRidgeBasis.of(x)
    rotated = (basis.u.T @ y) / basis.s[:, None]
    fractions = np.concatenate([tf.FRACTIONS, rng.uniform(1e-4, 1.0, 5), [1e-9]])
    got = fr.alphas_for_fractions(basis, rotated, fractions)
    want = ref_alphas_for_fractions(basis, rotated, fractions)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)
    _close(fr.ridge_coefs(basis, rotated, got), fr.ridge_coefs(basis, rotated, want), axis=(0, 1))


@pytest.mark.parametrize("seed", range(8))
def test_heldout_ridge_error_equals_coefficient_prediction(seed):
    rng = np.random.default_rng(100 + seed)
    n, p = int(rng.integers(40, 120)), int(rng.integers(2, 30))
    x = _design(rng, n, p, rank_deficient=seed % 3 == 0)
    y = _targets(rng, x, 50)
    fold = trial_cv.time_block_folds(n, tf.TIME_FOLDS, int(rng.integers(1, 5)))
    train, test = fold != 0, fold == 0
    got = fr.heldout_error(x[train], y[train], x[test], y[test], tf.FRACTIONS)
    want = ref_heldout_error(x[train], y[train], x[test], y[test], tf.FRACTIONS)
    _close(got, want)
    assert np.array_equal(np.argmin(got[:, 1:], axis=0), np.argmin(want[:, 1:], axis=0))


@pytest.mark.parametrize("seed", range(6))
def test_least_squares_residuals_equal_lstsq(seed):
    rng = np.random.default_rng(200 + seed)
    xs = [_design(rng, int(rng.integers(30, 90)), int(rng.integers(1, 25)), rank_deficient=r == 1)
          for r in range(3)]
    xs[2][:, 0] = 0.0  # a trial with an empty regressor
    ys = [_targets(rng, x, 40) for x in xs]
    np.testing.assert_allclose(trial_noise.single_trial_r2(xs, ys), ref_single_trial_r2(xs, ys), rtol=0, atol=TOL)
    for x, y in zip(xs, ys):
        _close(tf._noise_variance(x, y, x.shape[0] - 2), ref_noise_variance(x, y, x.shape[0] - 2))
    empty = np.zeros((xs[0].shape[0], 0))
    _close(tf._noise_variance(empty, ys[0], 30), ref_noise_variance(empty, ys[0], 30))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_pool", [5, 30, 400])
@pytest.mark.parametrize("noise", [0.3, 0.0])  # 0: rank 6 < 10 components, the exact route finds the rank
def test_noise_components_span_the_svd_ones(seed, n_pool, noise):
    rng = np.random.default_rng(300 + seed)
    n = 60
    x = rng.standard_normal((n, 1))
    shared = rng.standard_normal((n, 6)) * np.array([8.0, 6.0, 4.5, 3.0, 2.0, 1.5])
    y = shared @ rng.standard_normal((6, n_pool)) + rng.standard_normal((n, n_pool)) * noise
    pool = np.ones(n_pool, dtype=bool)
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    got = trial_noise.run_components(x, y, pool, beta, 10)
    want = ref_run_components(x, y, pool, beta, 10)
    assert got.shape == want.shape
    for k in range(1, min(6, got.shape[1]) + 1):  # the leading k-dimensional subspaces (well separated)
        _close(got[:, :k] @ got[:, :k].T, want[:, :k] @ want[:, :k].T, axis=(0, 1))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("repeat_design", [False, True])
def test_noise_count_cv_from_products_equals_projected_fits(seed, repeat_design):
    rng = np.random.default_rng(400 + seed)
    n_runs, p = int(rng.integers(2, 5)), (int(rng.integers(2, 8)) if repeat_design else 1)
    designs, data, comps = [], [], []
    for r in range(n_runs):
        n = int(rng.integers(40, 90))
        x = np.abs(rng.standard_normal((n, p)))
        if repeat_design and r == 0:
            x[:, -1] = 0.0  # a repeat value absent from one run
        designs.append(x)
        data.append(_targets(rng, x, 30))
        comps.append(np.linalg.qr(rng.standard_normal((n, 6)))[0])
    np.testing.assert_allclose(trial_noise.all_trials_r2(designs, data), ref_all_trials_r2(designs, data),
                               rtol=0, atol=TOL)
    got = trial_noise.heldout_r2_per_k(comps, designs, data, 6)
    want = ref_heldout_r2_per_k(comps, designs, data, 6)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


@pytest.mark.parametrize("seed", range(6))
def test_zscored_repeat_error_equals_error_of_zscored_betas(seed):
    rng = np.random.default_rng(500 + seed)
    n_runs, n_values = int(rng.integers(2, 5)), int(rng.integers(3, 12))
    values = np.concatenate([rng.choice(n_values, int(rng.integers(5, 15))) for _ in range(n_runs)]).astype(str)
    runs = np.concatenate([np.full(int((values.size + r) // n_runs), r) for r in range(n_runs)])[: values.size]
    runs = np.pad(runs, (0, values.size - runs.size), constant_values=n_runs - 1)
    betas = rng.standard_normal((4, values.size, 30)) * rng.uniform(0.01, 100, 30) + rng.uniform(-50, 50, 30)
    betas[:, :, 0] = 3.0  # constant over trials: variance 0
    got = trial_cv.zscored_prediction_error(betas, values, runs)
    want = trial_cv.repeat_prediction_error(trial_cv.zscore_trials(betas), values, runs)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_hrf_kernel_is_computed_once_and_returned_as_a_copy():
    a = hrf.spm_hrf(1.5)
    a[:] = 0.0
    b = hrf.spm_hrf(1.5)
    assert b.sum() == pytest.approx(1.0) and b.flags.writeable
    assert hrf._gamma_difference.cache_info().hits >= 1


@pytest.mark.parametrize("t_r", [0.5, 0.72, 1.5, 2.0, 3.0])
def test_hrf_gamma_density_equals_scipy(t_r):
    from scipy.stats import gamma

    dt = t_r / 50
    t = np.linspace(0, 32.0, int(np.rint(32.0 / dt))) - 0.1
    for shape, scale in [(6.0, 1.0), (16.0, 1.0), (6 / 0.9, 0.9), (12 / 0.9, 0.9), (6 / 1.01, 1.01), (5.0, 1.0),
                         (1.0, 2.0), (0.5, 1.0)]:
        want = gamma.pdf(t, shape, loc=dt, scale=scale)
        got = hrf._gamma_pdf(t, shape, loc=dt, scale=scale)
        finite = np.isfinite(want)
        np.testing.assert_array_equal(np.isfinite(got), finite)
        np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=1e-13 * want[finite].max())


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("repeats", [False, True])
def test_optimized_fit_equals_fit_on_reference_numerics(seed, repeats, monkeypatch):
    s = make_runs(seed=seed, n_voxels=300, n_volumes=150)
    name = "stimulus" if repeats else None
    runs = tf.trial_runs(s.data, s.operators, s.events, t_r=s.t_r, repeat_column=name)
    fast = tf.fit_trials(runs, denoise=True, ridge=True, repeat_name=name)
    monkeypatch.setattr(fr, "alphas_for_fractions", ref_alphas_for_fractions)
    monkeypatch.setattr(fr, "heldout_error", ref_heldout_error)
    monkeypatch.setattr(trial_noise, "single_trial_r2", ref_single_trial_r2)
    monkeypatch.setattr(trial_noise, "all_trials_r2", ref_all_trials_r2)
    monkeypatch.setattr(trial_noise, "run_components", ref_run_components)
    monkeypatch.setattr(trial_noise, "heldout_r2_per_k", ref_heldout_r2_per_k)
    monkeypatch.setattr(tf, "_noise_variance", ref_noise_variance)
    monkeypatch.setattr(trial_cv, "zscored_prediction_error",
                        lambda b, v, r: trial_cv.repeat_prediction_error(trial_cv.zscore_trials(b), v, r))
    slow = tf.fit_trials(runs, denoise=True, ridge=True, repeat_name=name)
    assert fast.noise.n_components == slow.noise.n_components >= 1
    np.testing.assert_array_equal(fast.noise.pool, slow.noise.pool)
    np.testing.assert_array_equal(fast.fraction, slow.fraction)
    assert (fast.fraction < 1).any()
    for a, b in zip(fast.betas, slow.betas):
        _close(a.astype(np.float64), b.astype(np.float64))
    for a, b in zip(fast.beta_variance, slow.beta_variance):
        np.testing.assert_allclose(a, b, rtol=TOL)
    np.testing.assert_allclose(fast.r2, slow.r2, rtol=0, atol=TOL)
