"""Float columns of the TSV outputs are written as Python's ``repr`` of each value (the shortest text that
reads back to the same float64), by numpy's vectorised conversion; non-finite values are ``n/a``."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.core.io import _format_column


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_text_equals_repr_over_magnitudes(seed, dtype):
    rng = np.random.default_rng(seed)
    n = 20_000
    values = np.concatenate([
        rng.normal(0, 1, n) * 10.0 ** rng.integers(-40, 40, n),  # every notation threshold (1e-4, 1e16)
        rng.integers(-300, 300, n) * 0.5,  # voxel coordinates on a grid
        [0.0, -0.0, 1e16, 9999999999999998.0, 1e-4, 9.9e-5, 1e-5, 5e-324, 1.7976931348623157e308, 0.1, 1 / 3],
        [np.nan, np.inf, -np.inf],
    ]).astype(dtype)
    text = _format_column(values)
    expected = ["n/a" if not np.isfinite(v) else repr(float(v)) for v in values]
    assert text == expected
    finite = np.isfinite(values)
    np.testing.assert_array_equal(np.array([float(t) for t, f in zip(text, finite) if f]), values[finite])
