"""Exact order statistics of each column without sorting every column: the QC's interquartile range.

:func:`lower_iqr` returns, bit for bit, ``np.percentile(x, 75, axis=0, method="lower") - np.percentile(x, 25,
axis=0, method="lower")`` computed in float64 from the data values (NaN for a column holding a NaN; a zero
interquartile range is always ``+0.0``: which of ``-0.0`` and ``0.0`` a selection returns is an implementation
detail of the sort, and ``-0.0 - 0.0`` is the only difference that gives ``-0.0``).

How, on long columns (:data:`SELECT_MIN_ROWS` rows or more): each chunk of columns is transposed once by tiles
of rows (a plain transposed copy of a chunk of a wide array misses the TLB on every value and cost 5 ns per
value at 4,000 x 262 of a 75k-column array; by tiles of 64 rows, 0.5 ns); every m-th value of each column (a
fixed, deterministic subsample of at most :data:`SAMPLE_SIZE` values) is sorted, and the values a few ranks
either side of each target rank bracket the wanted order statistic. Two vectorised passes count the values
below and inside each bracket; when the count proves that the target rank falls inside the bracket, the few
values inside it are pulled out into a small padded array and the exact value is selected there. A column
whose target rank is not inside its bracket (ties, an order that defeats the subsample, inf, NaN), or whose
bracket holds too many values, is sorted whole: the result is exact and deterministic for every input, only
the time depends on the data.
"""

from __future__ import annotations

import numpy as np

#: rows from which selection by brackets replaces the full sort (measured: see benchmarks/README.md)
SELECT_MIN_ROWS = 600
#: most values of each column's sorted subsample (numpy's vectorised sort is 4-7x cheaper per value on rows of
#: up to ~500 values than on rows of 1,000)
SAMPLE_SIZE = 500
#: half-width of the brackets of each attempt, in standard deviations of the target's rank in the subsample
#: (binomial, as if the subsample were drawn at random; autocorrelated series are estimated ~2.7x better): a
#: narrow first bracket holds few values; the columns it misses get a wide one, then a full sort
BRACKET_SDS = (2.0, 6.0)
#: a bracket holding more than this many times the values it is expected to hold is not selected in: its
#: column goes to the next attempt (heavy ties)
BRACKET_CAP = 2.0
#: bytes of the columns processed together (their transposed copy and masks stay in a core's L2 cache)
GROUP_BYTES = 1 << 19
#: rows per tile of the transposed copy
TRANSPOSE_TILE = 64


def transposed(block: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``block.T``, copied by tiles of :data:`TRANSPOSE_TILE` rows (each tile's source
    rows stay in the cache and TLB while its values are scattered)."""
    n, c = block.shape
    out = np.empty((c, n), dtype=block.dtype)
    for r in range(0, n, TRANSPOSE_TILE):
        out[:, r:r + TRANSPOSE_TILE] = block[r:r + TRANSPOSE_TILE].T
    return out


def lower_ranks(n: int) -> tuple[int, int]:
    """The 0-based ranks of the 25th and 75th percentiles of ``n`` values with numpy's "lower" method."""
    return int(np.floor(0.25 * (n - 1))), int(np.floor(0.75 * (n - 1)))


def _difference(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """``high - low`` in float64, ``+0.0`` for a zero difference (see the module's docstring)."""
    return high.astype(np.float64) - low.astype(np.float64) + 0.0


def sorted_iqr(columns: np.ndarray) -> np.ndarray:
    """The interquartile range of each row of ``columns`` (c, n), by sorting it in place (the reference path)."""
    n = columns.shape[1]
    k25, k75 = lower_ranks(n)
    columns.sort(axis=1)
    iqr = _difference(columns[:, k75], columns[:, k25])
    iqr[np.isnan(columns[:, -1])] = np.nan  # NaN sorts last
    return iqr


def lower_iqr(block: np.ndarray) -> np.ndarray:
    """Interquartile range of each column of ``block`` with the "lower" percentiles (FSL's, fMRIPrep's).

    Parameters
    ----------
    block : numpy.ndarray, shape (n_rows, n_columns)
        Any layout; may be memory-mapped. Not modified.

    Returns
    -------
    numpy.ndarray, shape (n_columns,), float64
        The same bits as ``np.percentile(block, 75, axis=0, method="lower").astype(np.float64) -
        np.percentile(block, 25, axis=0, method="lower")``, NaN where a column holds a NaN, ``+0.0`` for a
        zero range.
    """
    n, c = block.shape
    if n == 0 or c == 0:
        return np.full(c, np.nan)
    if n < SELECT_MIN_ROWS or block.dtype not in (np.float32, np.float64):
        return sorted_iqr(transposed(block))
    width = max(8, GROUP_BYTES // (n * block.dtype.itemsize))
    return np.concatenate([_selected_iqr(transposed(block[:, s:s + width])) for s in range(0, c, width)])


def _selected_iqr(columns: np.ndarray) -> np.ndarray:
    """:func:`lower_iqr` of each row of ``columns`` (c, n): by brackets, with the rows they miss sorted."""
    n = columns.shape[1]
    iqr = np.full(columns.shape[0], np.nan)
    todo = ~np.isnan(columns.max(axis=1))  # max propagates NaN: a column with a NaN has a NaN range
    for sds in BRACKET_SDS:
        if not todo.any():
            return iqr
        part = columns if todo.all() else columns[todo]
        sample = np.sort(part[:, ::-(-n // SAMPLE_SIZE)], axis=1)
        low, ok_low = _select_rank(part, sample, lower_ranks(n)[0], sds)
        high, ok_high = _select_rank(part, sample, lower_ranks(n)[1], sds)
        ok = ok_low & ok_high
        where = np.flatnonzero(todo)[ok]
        iqr[where] = _difference(high[ok], low[ok])
        todo[where] = False
    if todo.any():
        iqr[todo] = sorted_iqr(columns[todo])
    return iqr


def _bracket(sample: np.ndarray, n: int, k: int, sds: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Bounds (lo, hi) per row around rank ``k`` of ``n`` values, ``sds`` binomial standard deviations either
    side of its estimate in ``sample`` (each row's every m-th value, sorted); and how many values the bracket
    is expected to hold."""
    s = sample.shape[1]
    q = k / (n - 1)
    half = int(np.ceil(sds * np.sqrt(s * q * (1 - q)))) + 1
    lo = max(0, int(np.floor(q * (s - 1))) - half)
    hi = min(s - 1, int(np.ceil(q * (s - 1))) + half)
    return sample[:, lo], sample[:, hi], (hi - lo + 1) * n / s


def _count(mask: np.ndarray) -> np.ndarray:
    """Number of True values in each row of a 2D boolean array (int64; summed as uint16 bytes when a row is
    shorter than 65,536: 3.7x faster than an int64 sum)."""
    small = mask.shape[1] < 1 << 16
    return mask.view(np.uint8).sum(axis=1, dtype=np.uint16 if small else np.int64).astype(np.int64)


def _select_rank(columns: np.ndarray, sample: np.ndarray, k: int, sds: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``k``-th smallest value (0-based) of each row of ``columns`` (c, n) without a NaN, and whether it
    was found: the count of values below and inside the row's bracket must prove that it holds rank ``k``
    (and the bracket must not hold more than :data:`BRACKET_CAP` times the values expected)."""
    n = columns.shape[1]
    lo, hi, expected = _bracket(sample, n, k, sds)
    inside = columns >= lo[:, None]
    below = n - _count(inside)
    inside &= columns <= hi[:, None]
    size = _count(inside)
    ok = (below <= k) & (k < below + size)
    known = ok & (lo == hi)  # a bracket of one value proven to hold the rank: that value
    ok &= known | (size <= max(BRACKET_CAP * expected, 64.0))
    take = ok & ~known
    inside[~take] = False
    values = np.compress(inside.ravel(), columns.ravel())  # the rows' runs, in order (branch-free: 3x boolean
    out = lo.copy()                                        # indexing's speed on such masks)
    out[take] = _kth_of_runs(values, size[take], (k - below)[take])
    return out, ok


def _kth_of_runs(values: np.ndarray, sizes: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The ``positions[i]``-th smallest value of the i-th run of ``values`` (consecutive runs of ``sizes``
    values), by sorting the runs in a padded array (+inf after each run)."""
    if not sizes.size:
        return values[:0]
    width = int(sizes.max())
    padded = np.full((sizes.size, width), np.inf, dtype=values.dtype)
    starts = np.cumsum(sizes) - sizes
    flat = np.arange(values.size) + np.repeat(np.arange(sizes.size) * width - starts, sizes)
    padded.ravel()[flat] = values
    padded.sort(axis=1)
    return padded[np.arange(sizes.size), positions]
