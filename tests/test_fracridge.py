"""Fractional ridge: the fraction of the OLS norm kept, equal to ridge with the penalty it reports."""

import numpy as np
import pytest

from bidsapp.core import fracridge as fr


@pytest.mark.parametrize("seed", range(8))
def test_fraction_of_ols_norm_and_equal_to_ridge(seed):
    rng = np.random.default_rng(seed)
    n, p, m = rng.integers(20, 80), rng.integers(2, 15), rng.integers(1, 6)
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 10, p)  # columns on different scales
    Y = rng.normal(size=(n, m)) * rng.uniform(0.01, 100, m)
    fractions = np.sort(rng.uniform(0.02, 1.0, 6))
    coefs, alpha = fr.fracridge(X, Y, fractions)
    ols = np.linalg.lstsq(X, Y, rcond=None)[0]
    ratio = np.linalg.norm(coefs, axis=1) / np.linalg.norm(ols, axis=0)
    np.testing.assert_allclose(ratio, np.repeat(fractions[:, None], m, axis=1), atol=1e-3)
    for k in range(fractions.size):
        for j in range(m):
            ref = np.linalg.solve(X.T @ X + alpha[k, j] * np.eye(p), X.T @ Y[:, j])
            np.testing.assert_allclose(coefs[k, :, j], ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())


def test_fraction_one_is_ols_even_rank_deficient():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 5))
    X = np.column_stack([X, X[:, 0] + X[:, 1]])  # rank 5 of 6
    Y = rng.normal(size=(40, 3))
    coefs, alpha = fr.fracridge(X, Y, [1.0])
    np.testing.assert_allclose(coefs[0], np.linalg.pinv(X) @ Y, atol=1e-10)
    assert (alpha == 0).all()


def test_against_sklearn_ridge():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(50, 8)), rng.normal(size=(50, 2))
    coefs, alpha = fr.fracridge(X, Y, [0.3])
    for j in range(2):
        ref = sklearn.Ridge(alpha=alpha[0, j], fit_intercept=False, solver="svd").fit(X, Y[:, j]).coef_
        np.testing.assert_allclose(coefs[0, :, j], ref, rtol=1e-6)


def test_variance_factor_matches_closed_form():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(30, 6))
    basis = fr.FracRidgeBasis.of(X)
    alpha = np.array([0.0, 0.5, 20.0])
    got = fr.coef_variance_factor(basis, alpha)
    for j, a in enumerate(alpha):
        inv = np.linalg.inv(X.T @ X + a * np.eye(6))
        np.testing.assert_allclose(got[:, j], np.diag(inv @ X.T @ X @ inv), rtol=1e-8)


@pytest.mark.parametrize("bad", [[0.0], [1.5], [-0.2], []])
def test_fractions_outside_0_1_refused(bad):
    with pytest.raises(ValueError, match="fractions must be in"):
        fr.fracridge(np.eye(3), np.ones((3, 1)), bad)


def test_shape_mismatch_refused():
    with pytest.raises(ValueError, match="same number of rows"):
        fr.fracridge(np.eye(3), np.ones((4, 1)), [0.5])
