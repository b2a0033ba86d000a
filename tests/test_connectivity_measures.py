"""Connectivity matrices equal nilearn's ConnectivityMeasure (Ledoit-Wolf) and direct numpy formulas."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.core import connectivity as cn

KINDS = {"correlation": "correlation", "partial-correlation": "partial correlation", "covariance": "covariance"}


def _series(rng: np.random.Generator, n: int, p: int) -> np.ndarray:
    """Correlated series with columns on different scales and offsets (as regions' cleaned or raw signals)."""
    mix = rng.normal(size=(p, p)) * rng.uniform(0.1, 1.0)
    x = rng.normal(size=(n, p)) @ mix + rng.normal(size=p) * 50
    return x * rng.uniform(0.01, 100, size=p)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("measure", list(KINDS))
def test_equals_nilearn_connectivity_measure(seed, measure):
    from nilearn.connectome import ConnectivityMeasure

    rng = np.random.default_rng(seed)
    n, p = int(rng.integers(20, 300)), int(rng.integers(2, 40))
    x = _series(rng, n, p)
    ours = cn.connectivity(x, measure)
    ref = ConnectivityMeasure(kind=KINDS[measure], standardize=True).fit_transform([x])[0]
    scale = np.sqrt(np.outer(np.abs(np.diag(ref)), np.abs(np.diag(ref))))  # each entry's scale
    np.testing.assert_allclose(ours / scale, ref / scale, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(ours, ours.T)


@pytest.mark.parametrize("seed", range(6))
def test_shrunk_covariance_equals_direct_formula(seed):
    """Ledoit & Wolf's shrinkage written out with loops over samples (independent of the vectorised code)."""
    rng = np.random.default_rng(100 + seed)
    n, p = int(rng.integers(5, 40)), int(rng.integers(2, 8))
    x = _series(rng, n, p)
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / n
    mu = np.trace(s) / p
    d2 = np.sum((s - mu * np.eye(p)) ** 2) / p
    b2 = sum(np.sum((np.outer(r, r) - s) ** 2) for r in xc) / n**2 / p
    shrink = min(b2, d2) / d2
    direct = shrink * mu * np.eye(p) + (1 - shrink) * s
    np.testing.assert_allclose(cn.shrunk_covariance(x), direct, rtol=1e-10, atol=1e-12 * np.abs(direct).max())
    from sklearn.covariance import LedoitWolf

    np.testing.assert_allclose(cn.shrunk_covariance(x), LedoitWolf().fit(x).covariance_, rtol=1e-10,
                               atol=1e-12 * np.abs(direct).max())


def test_partial_correlation_recovers_a_chain():
    """a -> b -> c: a and c correlate, but not given b (partial correlation near 0)."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=5000)
    b = a + rng.normal(size=5000)
    c = b + rng.normal(size=5000)
    x = np.c_[a, b, c]
    full, partial = cn.connectivity(x, "correlation"), cn.connectivity(x, "partial-correlation")
    assert full[0, 2] > 0.5
    assert abs(partial[0, 2]) < 0.05
    assert partial[0, 1] > 0.5 and partial[1, 2] > 0.5


def test_nan_columns_are_left_out_and_stay_nan():
    from nilearn.connectome import ConnectivityMeasure

    rng = np.random.default_rng(3)
    x = _series(rng, 80, 6)
    x[:, [1, 4]] = np.nan
    keep = [0, 2, 3, 5]
    for measure, kind in KINDS.items():
        m = cn.connectivity(x, measure)
        assert np.isnan(m[[1, 4]]).all() and np.isnan(m[:, [1, 4]]).all()
        ref = ConnectivityMeasure(kind=kind).fit_transform([x[:, keep]])[0]
        np.testing.assert_allclose(m[np.ix_(keep, keep)], ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())


def test_fisher_z_and_upper_triangle():
    from nilearn.connectome import sym_matrix_to_vec

    rng = np.random.default_rng(5)
    x = _series(rng, 60, 5)
    r = cn.connectivity(x, "correlation")
    z = cn.fisher_z(r)
    assert np.isnan(np.diag(z)).all()
    off = ~np.eye(5, dtype=bool)
    np.testing.assert_allclose(np.tanh(z[off]), r[off], rtol=1e-12)
    vec = cn.upper_triangle(r)
    assert vec.shape == (10,)
    i, j = np.triu_indices(5, k=1)
    np.testing.assert_array_equal(vec, [r[a, b] for a, b in zip(i, j)])
    # the same edges as nilearn's lower-triangle vector (another order: the transpose's)
    np.testing.assert_allclose(np.sort(vec), np.sort(sym_matrix_to_vec(r, discard_diagonal=True)))
    assert cn.edge_names(list("abcde"))[:2] == ["a--b", "a--c"]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="unknown connectivity measure"):
        cn.connectivity(np.ones((5, 2)), "tangent")
    with pytest.raises(ValueError, match="n_samples >= 2"):
        cn.connectivity(np.ones((1, 3)), "covariance")
    x = np.random.default_rng(0).normal(size=(10, 3))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cn.connectivity(x, "correlation")
    with pytest.raises(ValueError, match="in \\[-1, 1\\]"):
        cn.fisher_z(np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_relmat_table_and_sidecar():
    m = np.array([[1.0, 0.5], [0.5, 1.0]])
    t = cn.relmat_table(m, ["a", "b"])
    assert list(t) == ["node", "a", "b"] and t["node"] == ["a", "b"]
    with pytest.raises(ValueError, match="unique"):
        cn.relmat_table(m, ["a", "a"])
    side = cn.relmat_sidecar("correlation", fisher=True, n_samples=100, excluded=["c"])
    assert side["Measure"] == "PearsonCorrelationFisherZ" and side["ValidDiagonal"] is False
    side = cn.relmat_sidecar("covariance", fisher=True, n_samples=100, excluded=[])
    assert side["Measure"] == "Covariance" and side["FisherZ"] is False  # never z-transformed
