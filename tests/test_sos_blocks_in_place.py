"""The block-product zero-phase filter (``sos_blocks.sosfiltfilt_columns``) equals ``scipy.signal.sosfiltfilt``
for every length of the padded series modulo the block (the first and last blocks are shorter), both passes
computed in one padded buffer in place (the backward pass reads the blocks last to first with reversed
matrices), any number of column groups, and output in the input's own memory."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import sosfiltfilt

from bidsapp.core import signal, sos_blocks


@pytest.mark.parametrize("t_r, low, high", [(0.72, 0.08, 0.01), (2.0, None, 0.01), (0.5, 0.1, None),
                                            (0.94, 0.04, 0.023)])
def test_every_block_residue(t_r, low, high):
    sos = signal.butterworth_sos(t_r, low, high)
    p = sos_blocks.padlen_of(sos)
    rng = np.random.default_rng(int(1000 * t_r))
    for n in range(p + 1, p + 1 + 2 * sos_blocks.BLOCK + 1):
        y = rng.standard_normal((n, 5)).cumsum(axis=0) + 300.0
        expected = sosfiltfilt(sos, y, axis=0)
        got = sos_blocks.sosfiltfilt_columns(sos, y)
        scale = np.maximum(expected.std(axis=0), 1e-300)
        assert (np.abs(got - expected).max(axis=0) / scale).max() < 1e-9, n


def test_column_groups_strided_input_and_output_in_place():
    sos = signal.butterworth_sos(0.72, 0.08, 0.01)
    rng = np.random.default_rng(7)
    wide = rng.standard_normal((421, 2 * sos_blocks.COLUMNS + 3 * 2 + 1)).cumsum(axis=0)
    y = wide[:, ::2]  # a strided view: read, not modified
    before = y.copy()
    expected = sosfiltfilt(sos, y, axis=0)
    got = sos_blocks.sosfiltfilt_columns(sos, y)
    np.testing.assert_array_equal(y, before)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * np.abs(expected).max())
    inplace = np.ascontiguousarray(y)
    assert sos_blocks.sosfiltfilt_columns(sos, inplace, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, got)
