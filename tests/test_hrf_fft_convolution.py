"""The trial regressors' convolution (numpy's FFT, no ``scipy.signal`` import) equals scipy's fftconvolve."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.fft import next_fast_len
from scipy.signal import fftconvolve

from bidsapp.core.hrf import _fast_length, fft_convolve_rows


def test_fast_length_is_the_smallest_5_smooth_length():
    for n in [*range(1, 2000), 4097, 12345, 65537, 100003]:
        assert _fast_length(n) == next_fast_len(n, True), n


@pytest.mark.parametrize("seed", range(3))
def test_rows_convolved_as_scipy_fftconvolve(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        rows = rng.normal(size=(int(rng.integers(1, 6)), int(rng.integers(1, 5000))))
        rows[:, rng.random(rows.shape[1]) < 0.7] = 0.0  # boxcars are mostly zeros
        kernel = rng.gamma(2.0, 1.0, int(rng.integers(1, 700)))
        ours, ref = fft_convolve_rows(rows, kernel), fftconvolve(rows, kernel[None, :], axes=1)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-13 * max(np.abs(ref).max(), 1.0))
