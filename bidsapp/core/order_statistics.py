"""Exact order statistics of each column without sorting every column: the QC's interquartile range.

:func:`lower_iqr` returns, bit for bit, ``np.percentile(x, 75, axis=0, method="lower") - np.percentile(x, 25,
axis=0, method="lower")`` computed in float64 from the data values (NaN for a column holding a NaN; a zero
interquartile range is always ``+0.0``: which of ``-0.0`` and ``0.0`` a selection returns is an implementation
detail of the sort, and ``-0.0 - 0.0`` is the only difference that gives ``-0.0``).

How: each chunk of columns is transposed once, by tiles of rows (a plain transposed copy of a chunk of a wide
array misses the TLB on every value: 5 ns per value at 4,000 x 262 columns of a 75k-column array, 0.5 ns by
tiles of 64 rows). Short columns (fewer than :data:`SELECT_MIN_ROWS` rows; every column where numpy sorts with
its AVX-512 kernels) are then sorted. On long ones,
every m-th value of each column (a fixed, deterministic subsample of at most :data:`SAMPLE_SIZE` values) is
sorted, and its values a few ranks either side of each quartile's rank bracket that quartile. Vectorised
passes count the values below and inside each bracket; where the counts prove that the rank falls inside it,
the values inside both brackets (~10-20% of the column) are pulled out in one pass and the exact values are
selected among them in a small padded array. A column whose rank is not inside its bracket (an order that
defeats the subsample, ties, infinities) or whose bracket holds too many values gets a wider bracket, then
the full sort; a column with a NaN has a NaN range. The result is exact and deterministic for every input
(whatever the chunking or threads); only the time depends on the data.
"""

from __future__ import annotations

import sys

import numpy as np


def sort_is_avx512() -> bool:
    """Whether this CPU runs numpy's AVX-512 sorting kernels (x86-simd-sort, dispatched on ``AVX512_SKX``): there
    the full sort of rows of 300-4,000 float32 values costs less than selection at every length
    (``benchmarks/README.md``). False when numpy does not say (its CPU table is not public API)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1.x
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return False
    return bool(__cpu_features__.get("AVX512_SKX", False))


#: rows from which selection by brackets replaces the full sort: 800 where numpy's sort is not AVX-512 (2-core
#: AMD EPYC, AVX2: sort / select 5.7 / 5.1 ns per value at 800 rows, 7.3 / 4.6 at 1,200, 12.0 / 4.7 at 4,000),
#: never where it is (2-core Xeon with AVX-512: sort 2.1-3.2, select 4.6-6.4 ns per value at 300-4,000 rows).
#: Both paths give the same bits, so the choice changes only the time (``benchmarks/bench_qc_iqr.py
#: --threshold``, the tiled transposed copy included)
SELECT_MIN_ROWS = sys.maxsize if sort_is_avx512() else 800
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
    columns = transposed(block)
    if n < SELECT_MIN_ROWS or block.dtype not in (np.float32, np.float64):
        return sorted_iqr(columns)
    return _selected_iqr(columns)


def _selected_iqr(columns: np.ndarray) -> np.ndarray:
    """:func:`lower_iqr` of each row of ``columns`` (c, n): by brackets, with the rows they miss sorted."""
    iqr = np.full(columns.shape[0], np.nan)
    todo = ~np.isnan(columns.max(axis=1))  # max propagates NaN: a column with a NaN has a NaN range
    for sds in BRACKET_SDS:
        if not todo.any():
            return iqr
        part = columns if todo.all() else columns[todo]
        low, high, ok = _select_quartiles(part, sds)
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


def _counted(columns: np.ndarray, k: int, lo: np.ndarray, hi: np.ndarray, cap: float) -> tuple[np.ndarray, ...]:
    """One bracket [lo, hi] per row of ``columns`` (rows without a NaN) around rank ``k``: (mask of the values
    inside it, count below it, count inside it, whether the counts prove that it holds rank ``k`` and it holds
    at most ``cap`` values, whether it is one value that holds rank ``k``)."""
    inside = columns >= lo[:, None]
    below = columns.shape[1] - _count(inside)
    inside &= columns <= hi[:, None]
    size = _count(inside)
    ok = (below <= k) & (k < below + size)
    known = ok & (lo == hi)  # a bracket of one value proven to hold the rank: that value
    return inside, below, size, ok & (known | (size <= cap)), known


def _select_quartiles(columns: np.ndarray, sds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values of ranks :func:`lower_ranks` of each row of ``columns`` (c, n) without a NaN, and where they
    were found (brackets of ``sds`` standard deviations: see :func:`_bracket`). The values inside both
    brackets are pulled out in one pass (the compaction is the costliest pass) and sorted together per row:
    the brackets do not overlap, so bracket a's values come first."""
    n = columns.shape[1]
    ranks = lower_ranks(n)
    sample = np.sort(columns[:, ::-(-n // SAMPLE_SIZE)], axis=1)
    (lo_a, hi_a, cap_a), (lo_b, hi_b, cap_b) = (_bracket(sample, n, k, sds) for k in ranks)
    in_a, below_a, size_a, ok, known_a = _counted(columns, ranks[0], lo_a, hi_a, BRACKET_CAP * cap_a)
    in_b, below_b, size_b, ok_b, known_b = _counted(columns, ranks[1], lo_b, hi_b, BRACKET_CAP * cap_b)
    ok &= ok_b & ~((hi_a >= lo_b) & ~known_a & ~known_b)  # two brackets pulled out must not overlap
    take_a, take_b = ok & ~known_a, ok & ~known_b
    in_a[~take_a] = False
    in_b[~take_b] = False
    in_a |= in_b
    values = np.compress(in_a.ravel(), columns.ravel())  # each row's values in order
    # sorted, a row's values are those of bracket a (if pulled out), then those of bracket b
    from_a = np.where(take_a, size_a, 0)
    taken = take_a | take_b
    low_at, high_at = _kth_of_runs(values, (from_a + np.where(take_b, size_b, 0))[taken],
                                   [(ranks[0] - below_a)[taken], (from_a + ranks[1] - below_b)[taken]])
    low, high = lo_a.copy(), lo_b.copy()
    low[take_a], high[take_b] = low_at[take_a[taken]], high_at[take_b[taken]]
    return low, high, ok


def _kth_of_runs(values: np.ndarray, sizes: np.ndarray, positions: list[np.ndarray]) -> list[np.ndarray]:
    """For each array of ``positions``, the ``positions[i]``-th smallest value of the i-th run of ``values``
    (consecutive runs of ``sizes`` values), by sorting the runs in a padded array (+inf after each run)."""
    width = max(1, int(sizes.max())) if sizes.size else 1
    padded = np.full((sizes.size, width), np.inf, dtype=values.dtype)
    starts = np.cumsum(sizes) - sizes
    padded.ravel()[np.arange(values.size) + np.repeat(np.arange(sizes.size) * width - starts, sizes)] = values
    padded.sort(axis=1)
    rows = np.arange(sizes.size)
    return [padded[rows, np.clip(p, 0, width - 1)] for p in positions]
