"""The step-wise cleaning path: its Butterworth filter is scipy's sosfiltfilt, bit for bit."""

import numpy as np
import pytest
from scipy import signal as sps

from bidsapp.core import signal


@pytest.mark.parametrize("seed", range(10))
def test_sosfiltfilt_rows_is_scipys_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    t_r = float(rng.choice([0.5, 0.72, 1.0, 2.0]))
    nyq = 0.5 / t_r
    high = float(rng.uniform(0.005, 0.3 * nyq))
    low = float(rng.uniform(1.2 * high, 0.95 * nyq))
    sos = signal.butterworth_sos(t_r, *[(low, high), (None, high), (low, None)][seed % 3])
    n = int(rng.integers(signal.padlen_of(sos) + 1, 900))
    y = rng.normal(size=(int(rng.integers(1, 40)), n)) * 100 + np.cumsum(rng.normal(size=n))
    y0 = y.copy()
    ours = signal.sosfiltfilt_rows(sos, y)
    assert np.array_equal(ours, sps.sosfiltfilt(sos, y, axis=1))
    assert np.array_equal(y, y0)


def test_sosfiltfilt_rows_refuses_a_series_shorter_than_its_padding():
    sos = signal.butterworth_sos(2.0, 0.08, 0.01)
    with pytest.raises(ValueError, match="Butterworth filter needs more than"):
        signal.sosfiltfilt_rows(sos, np.ones((3, signal.padlen_of(sos))))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_blocks_and_threads_give_the_same_bits(threads):
    """The step-wise path's threads change numbers only at round-off (BLAS, called from several threads,
    may sum the projection in another order); steps built without ``n_out`` give the same result."""
    import dataclasses

    rng = np.random.default_rng(4)
    n = 700
    op = signal.cleaning_operator(n, t_r=0.8, confounds=rng.normal(size=(n, 12)), low_pass=0.1, high_pass=0.01)
    X = rng.normal(size=(n, 2 * signal.STEP_BLOCK + 77)) + 500
    ref = signal.apply_operator(X, op, method="steps", threads=1, chunk_size=X.shape[1])
    got = signal.apply_operator(X, op, method="steps", threads=threads, chunk_size=X.shape[1])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    bare = dataclasses.replace(op, steps=dataclasses.replace(op.steps, n_out=0))
    np.testing.assert_allclose(
        signal.apply_operator(X, bare, method="steps", threads=threads, chunk_size=X.shape[1]), ref, rtol=0, atol=1e-12)
