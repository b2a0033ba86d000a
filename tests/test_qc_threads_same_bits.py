"""The QC's column chunks run in threads: standardized DVARS and the temporal moments are the same bits
whatever the number of threads (the chunks are fixed by their width and summed in order)."""

from __future__ import annotations

import numpy as np
import pytest

import bidsapp.core.signal as signal
from bidsapp.core import qc


@pytest.mark.parametrize("seed", range(3))
def test_dvars_and_moments_do_not_depend_on_threads(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    n, p = int(rng.integers(30, 200)), int(rng.integers(3000, 9000))
    x = (rng.uniform(100, 1000, p) + rng.normal(0, 1, (n, p)).cumsum(axis=0)).astype(np.float32)
    x[:, rng.choice(p, 20, replace=False)] = 7.0  # constant columns are left out of DVARS
    rows = np.arange(int(rng.integers(0, 4)), n)
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(signal, "default_threads", lambda t=threads: t)
        dvars = qc.standardized_dvars(x, rows, rows=rows, chunk_bytes=8 * n * 257)  # many chunks
        _, mean, std, other = qc.dvars_and_moments(x, rows, rows=rows, also_mean_of=rows[::2], chunk_bytes=8 * n * 700)
        results.append((dvars, mean, std, other))
    for got in results[1:]:
        for a, b in zip(results[0], got):
            np.testing.assert_array_equal(a, b)
    whole = qc.standardized_dvars(x, rows, rows=rows, chunk_bytes=8 * n * p)  # one chunk
    np.testing.assert_allclose(results[0][0], whole, rtol=1e-12)
    np.testing.assert_array_equal(results[0][0], qc.standardized_dvars(x, rows, rows=rows, chunk_bytes=8 * n * 257))
    x64 = x.astype(np.float64)  # the moments from DVARS's pass are numpy's
    np.testing.assert_allclose(results[0][1], x64[rows].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(results[0][2], x64[rows].std(axis=0, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(results[0][3], x64[rows[::2]].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(results[0][0], whole, rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_consecutive_rows_are_read_as_a_view_with_the_same_values(seed):
    """The volumes after the non-steady-state ones are a slice of each chunk (no copy): DVARS and the moments
    equal those of the array cut first, and a non-consecutive row set still takes its own rows."""
    rng = np.random.default_rng(seed)
    n, p = int(rng.integers(20, 120)), int(rng.integers(100, 3000))
    x = (rng.uniform(100, 1000, p) + rng.normal(0, 1, (n, p)).cumsum(axis=0)).astype(np.float32)
    k = int(rng.integers(1, 5))
    rows = np.arange(k, n)
    np.testing.assert_array_equal(qc.standardized_dvars(x, rows, rows=rows), qc.standardized_dvars(x[k:]))
    _, mean, std, other = qc.dvars_and_moments(x, rows, rows=rows, also_mean_of=rows)
    np.testing.assert_array_equal(mean, x[k:].astype(np.float64).mean(axis=0))
    np.testing.assert_array_equal(other, mean)
    gaps = np.setdiff1d(rows, rng.choice(rows, 3, replace=False))
    _, mean_gaps, _, _ = qc.dvars_and_moments(x, gaps, rows=gaps, also_mean_of=rows)
    np.testing.assert_array_equal(mean_gaps, x[gaps].astype(np.float64).mean(axis=0))
