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
        (mean, std), other = qc.column_moments(x, rows, chunk=700, also_mean_of=rows[::2])
        results.append((dvars, mean, std, other))
    for got in results[1:]:
        for a, b in zip(results[0], got):
            np.testing.assert_array_equal(a, b)
    whole = qc.standardized_dvars(x, rows, rows=rows, chunk_bytes=8 * n * p)  # one chunk
    np.testing.assert_allclose(results[0][0], whole, rtol=1e-12)
