"""Float columns of the TSV outputs are written as Python's ``repr`` of each value (the shortest text that
reads back to the same float64), by numpy's vectorised conversion; non-finite values are ``n/a``."""

from __future__ import annotations

import numpy as np
import pytest

from bidsapp.core.tsv import _format_column


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


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int16, np.uint8])
def test_long_columns_of_few_values_have_the_same_text(seed, dtype):
    """Voxel indices and grid coordinates (a features table's long columns of few distinct values) are
    formatted once per distinct value: the text equals the value-by-value text, -0.0 and 0.0 apart."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5_000, 60_000))
    if np.dtype(dtype).kind == "f":
        values = (rng.integers(-90, 91, n) * rng.choice([0.5, 2.0, 1 / 3]) + rng.choice([0.0, 0.25])).astype(dtype)
        values[rng.random(n) < 0.01] = rng.choice([np.nan, np.inf, -0.0, 0.0])
        expected = ["n/a" if not np.isfinite(v) else repr(float(v)) for v in values]
    else:
        values = rng.integers(0, int(rng.choice([2, 100, 200])), n).astype(dtype)
        expected = [str(int(v)) for v in values]
    assert _format_column(values) == expected
    assert _format_column(values[:100]) == expected[:100]  # short columns: the plain path


@pytest.mark.parametrize("values", [
    ["CIFTI_STRUCTURE_CORTEX_LEFT"] * 5000 + ["thalamus_left"],
    np.array(["a", "", "n/a"]),
    np.array(["x", None, 1.5, float("nan"), True, np.int64(3), ""], dtype=object),
    ["a", None],
])
def test_text_columns_equal_their_cells_formatted_one_by_one(values):
    from bidsapp.core.tsv import _format_cell

    assert _format_column(values) == [_format_cell(v) for v in values]
