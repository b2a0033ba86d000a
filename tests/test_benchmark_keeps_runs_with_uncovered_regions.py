"""The group denoising benchmark used to leave out every run with one region left out by ``--min-coverage``
(an all-NaN column): "time series have non-finite values", then "no run has region columns ... nothing was
written" — with a real atlas and the default --min-coverage 0.5 that is nearly every run. Such a region now
gives NaN edges (like a constant region) and the other edges are compared as before."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.core import denoising_benchmark as db


@pytest.mark.parametrize("seed", range(4))
def test_an_all_nan_region_gives_nan_edges_and_leaves_the_others_exact(seed):
    rng = np.random.default_rng(seed)
    n_regions = int(rng.integers(4, 9))
    X = rng.standard_normal((60, n_regions)) @ rng.standard_normal((n_regions, n_regions)) + rng.uniform(-5, 5)
    gone = int(rng.integers(n_regions))
    X_nan = X.copy()
    X_nan[:, gone] = np.nan
    edges = db.connectivity_vector(X_nan)
    i, j = db.edge_index(n_regions)
    touches = (i == gone) | (j == gone)
    assert np.isnan(edges[touches]).all()
    kept = np.delete(np.arange(n_regions), gone)  # the others: as if the region had never been a column
    ref = db.connectivity_vector(X[:, kept])
    np.testing.assert_allclose(edges[~touches], ref, atol=1e-12)
    assert np.isnan(X_nan[:, gone]).all()  # the input is not modified


def test_a_partly_nan_region_is_still_refused():
    X = np.random.default_rng(0).standard_normal((30, 4))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        db.connectivity_vector(X)


def test_qcfc_over_participants_with_an_uncovered_region():
    rng = np.random.default_rng(7)
    n_part, n_regions, gone = 12, 5, 2
    motion = rng.uniform(0.05, 0.5, n_part)
    vectors = []
    for m in motion:
        X = rng.standard_normal((80, n_regions))
        X[:, 0] += 3 * m * X[:, 1]  # edge (0, 1) grows with motion
        X[:, gone] = np.nan
        vectors.append(db.connectivity_vector(X))
    result = db.qcfc(np.array(vectors), motion)
    i, j = db.edge_index(n_regions)
    touches = (i == gone) | (j == gone)
    assert np.isnan(result.r[touches]).all() and np.isfinite(result.r[~touches]).all()
    C = np.array(vectors)
    for e in np.flatnonzero(~touches):
        assert result.r[e] == pytest.approx(np.corrcoef(C[:, e], motion)[0, 1], abs=1e-10)
