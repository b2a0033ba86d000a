"""The step-wise cleaning path's Butterworth filter: block products equal to scipy's sosfiltfilt to round-off."""

import numpy as np
import pytest
from scipy import signal as sps

from bidsapp.core import signal, sos_blocks


def _random_sos(rng, kind: int):
    t_r = float(rng.choice([0.5, 0.72, 1.0, 2.0, 3.0]))
    nyq = 0.5 / t_r
    high = float(rng.uniform(0.005, 0.3 * nyq))
    low = float(rng.uniform(1.2 * high, 0.95 * nyq))
    return signal.butterworth_sos(t_r, *[(low, high), (None, high), (low, None)][kind % 3])


@pytest.mark.parametrize("seed", range(24))
def test_sosfiltfilt_columns_equals_scipys(seed):
    """Lengths from just above the padding to 3,000 (multiples of the block and not), 1-40 columns, BOLD-like
    offsets (1e4) with small fluctuations, a constant column: within 1e-9 of each column's std plus 1e-13 of
    its magnitude (scipy runs
    the recursion sample by sample; the products sum the same terms in another order)."""
    rng = np.random.default_rng(seed)
    sos = _random_sos(rng, seed)
    p = sos_blocks.padlen_of(sos)
    n = int([p + 1, p + 2, 4 * sos_blocks.BLOCK, rng.integers(p + 1, 3000)][seed % 4])
    n = max(n, p + 1)
    w = int(rng.integers(1, 40))
    y = rng.normal(size=(n, w)) * rng.uniform(0.1, 50, w) + np.cumsum(rng.normal(size=n))[:, None] + 1e4
    y[:, 0] = 1e4  # constant: filtered to (nearly) the constant's share of the band
    y0 = y.copy()
    ours = sos_blocks.sosfiltfilt_columns(sos, y)
    ref = sps.sosfiltfilt(sos, y, axis=0)
    tolerance = 1e-9 * ref.std(axis=0) + 1e-13 * np.abs(y).max(axis=0)  # the latter: the constant's round-off
    assert np.all(np.abs(ours - ref) <= tolerance)
    assert np.array_equal(y, y0)


@pytest.mark.parametrize("block", [1, 2, 7, 16, 64])
def test_block_size_changes_only_round_off(block):
    rng = np.random.default_rng(block)
    sos = signal.butterworth_sos(0.72, 0.1, 0.01)
    y = np.cumsum(rng.normal(size=(1200, 5)), axis=0)
    ref = sps.sosfiltfilt(sos, y, axis=0)
    np.testing.assert_allclose(sos_blocks.sosfiltfilt_columns(sos, y, block=block), ref, rtol=0,
                               atol=1e-10 * ref.std())


@pytest.mark.parametrize("width", [1, 511, 512, 1300])
def test_filtering_in_place_gives_the_same_bits(width):
    """``out=y`` (the operator is filtered in its own memory): each group of columns is read before it is
    written, so the result is the out-of-place one, bit for bit, across several groups of columns."""
    rng = np.random.default_rng(width)
    y = np.cumsum(rng.normal(size=(300, width)), axis=0)
    sos = signal.butterworth_sos(2.0, 0.08, 0.01)
    expected = sos_blocks.sosfiltfilt_columns(sos, y)
    assert sos_blocks.sosfiltfilt_columns(sos, y, out=y) is y
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("n", [1, 255, 256, 700])
def test_removes_mean_by_row_blocks_decides_as_the_whole_matrix(n):
    """The absolute row sums taken a few rows at a time: the same decision as over the whole matrix, for
    operators that map constants to 0 (up to round-off) and ones that do not."""
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, n + 5))
    centred = a - a.mean(axis=1, keepdims=True)
    for op, removes in ((centred, True), (a, False), (np.zeros((n, 4)), True)):
        whole = np.abs(op.sum(axis=1)).max() <= 1e-8 * max(1.0, np.abs(op).sum(axis=1).max())
        assert signal._removes_mean(op, rows=7) == signal._removes_mean(op) == whole == removes


def test_sosfiltfilt_columns_refuses_a_series_shorter_than_its_padding():
    sos = signal.butterworth_sos(2.0, 0.08, 0.01)
    with pytest.raises(ValueError, match="Butterworth filter needs more than"):
        sos_blocks.sosfiltfilt_columns(sos, np.ones((sos_blocks.padlen_of(sos), 3)))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_blocks_and_threads_give_the_same_bits(threads):
    """The step-wise path's threads change numbers only at round-off (BLAS, called from several threads,
    may sum the projection in another order); steps built without ``n_out`` give the same result."""
    import dataclasses

    rng = np.random.default_rng(4)
    n = 700
    op = signal.cleaning_operator(n, t_r=0.8, confounds=rng.normal(size=(n, 12)), low_pass=0.1, high_pass=0.01)
    X = rng.normal(size=(n, 2 * sos_blocks.COLUMNS + 77)) + 500
    ref = signal.apply_operator(X, op, method="steps", threads=1, chunk_size=X.shape[1])
    got = signal.apply_operator(X, op, method="steps", threads=threads, chunk_size=X.shape[1])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    bare = dataclasses.replace(op, steps=dataclasses.replace(op.steps, n_out=0))
    np.testing.assert_allclose(
        signal.apply_operator(X, bare, method="steps", threads=threads, chunk_size=X.shape[1]), ref, rtol=0, atol=1e-12)
