"""The QC's interquartile range by selection (``order_statistics.lower_iqr``) is the same bits as numpy's
"lower" percentiles, for every input: a seeded sweep of run lengths, dtypes and adversarial columns, with the
selection forced onto short columns and its fallbacks (wider bracket, full sort) forced too."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bidsapp.core import order_statistics as order
from bidsapp.core import qc


def reference(x: np.ndarray) -> np.ndarray:
    """``np.percentile(x, 75, "lower") - np.percentile(x, 25, "lower")`` in float64, a zero range as +0.0."""
    with np.errstate(invalid="ignore"):
        high = np.percentile(x, 75, axis=0, method="lower").astype(np.float64)
        low = np.percentile(x, 25, axis=0, method="lower").astype(np.float64)
        return high - low + 0.0


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float64 and got.shape == want.shape
    differ = np.flatnonzero(got.view(np.int64) != want.view(np.int64))
    assert not differ.size, f"columns {differ[:5]}: got {got[differ[:5]]}, want {want[differ[:5]]}"


def columns_of(kind: str, n: int, c: int, rng: np.random.Generator) -> np.ndarray:
    """``c`` float64 columns of ``n`` values of one kind."""
    walk = rng.uniform(100, 1000, c) + rng.normal(0, 1, (n, c)).cumsum(axis=0) + rng.normal(0, 3, (n, c))
    step = -(-n // order.SAMPLE_SIZE)
    out = {
        "walk": walk,
        "white": rng.normal(size=(n, c)),
        "integers": rng.integers(-3, 4, (n, c)).astype(float),  # heavy ties: 7 distinct values
        "two_values": rng.choice([5.0, 6.0], (n, c), p=[0.7, 0.3]),
        "constant": np.full((n, c), 7.25),
        "ascending": np.sort(walk, axis=0),
        "descending": np.sort(walk, axis=0)[::-1],
        # every m-th value (the subsample) far from all the others: the bracket misses, the column is sorted
        "periodic": np.where((np.arange(n) % step == 0)[:, None], 1e6, rng.normal(size=(n, c))),
        "zeros": rng.choice([-0.0, 0.0, 1.0, -1.0], (n, c), p=[0.3, 0.3, 0.2, 0.2]),
        "magnitudes": rng.normal(size=(n, c)) * 10.0 ** rng.integers(-40, 36, (1, c)),
        "tiny": rng.choice([0.0, 1e-45, -1e-45, 3e-45, 1e-40], (n, c)),
    }[kind]
    return np.ascontiguousarray(out)


def with_special_values(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A NaN, infinities, or both in a few columns."""
    n, c = x.shape
    x = x.copy()
    for j in rng.choice(c, min(c, 4), replace=False):
        what = rng.integers(4)
        rows = rng.choice(n, int(rng.integers(1, max(2, n // 2))), replace=False)
        if what == 0:
            x[rows[0], j] = np.nan
        elif what == 1:
            x[rows, j] = np.inf
        elif what == 2:
            x[rows, j] = -np.inf
        else:
            x[rows[: len(rows) // 2 + 1], j] = np.inf
            x[rows[len(rows) // 2 + 1:], j] = -np.inf
    return x


KINDS = ["walk", "white", "integers", "two_values", "constant", "ascending", "descending", "periodic",
         "zeros", "magnitudes", "tiny"]


@pytest.fixture(params=["default", "select_short", "narrow_brackets"])
def config(request, monkeypatch):
    """The shipped settings (selection from 800 rows, or the sort for every length where numpy sorts on
    AVX-512), and settings that send every path through selection (short runs too) and through its misses
    (brackets of ~0 width: the second attempt and the full sort)."""
    if request.param in ("select_short", "narrow_brackets"):
        monkeypatch.setattr(order, "SELECT_MIN_ROWS", 3)
    if request.param == "narrow_brackets":
        monkeypatch.setattr(order, "BRACKET_SDS", (0.0, 0.3))
    return request.param


@pytest.mark.parametrize("seed", range(6))
def test_random_sweep_same_bits_as_numpy(config, seed):
    rng = np.random.default_rng(seed)
    lengths = [3, 4, 5, 8, 9, 13, 64, 301, 599, 600, 601, 1201, 2000, 4001, 5000]
    for n in rng.choice(lengths, 5, replace=False).tolist() + [int(rng.integers(3, 5001))]:
        for kind in rng.choice(KINDS, 4, replace=False):
            dtype = rng.choice([np.float32, np.float64])
            c = int(rng.integers(1, 40))
            x = columns_of(str(kind), n, c, rng)
            if rng.random() < 0.4:
                x = with_special_values(x, rng)
            x = x.astype(dtype)
            assert_same_bits(order.lower_iqr(x), reference(x))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kind_at_long_run_lengths(config, kind, dtype):
    """Each kind of column at run lengths where floor(0.25 (T - 1)) is and is not a whole quarter, odd/even."""
    rng = np.random.default_rng(KINDS.index(kind) * 16 + np.dtype(dtype).itemsize)
    for n in (1200, 1201, 1202, 1203, 3001):
        x = columns_of(kind, n, 9, rng).astype(dtype)
        assert_same_bits(order.lower_iqr(x), reference(x))


def test_memory_mapped_strided_and_fortran_inputs(tmp_path, config):
    rng = np.random.default_rng(7)
    wide = with_special_values(columns_of("walk", 1500, 300, rng), rng).astype(np.float32)
    path = tmp_path / "run.dat"
    mapped = np.memmap(path, dtype=np.float32, mode="w+", shape=wide.shape)
    mapped[:] = wide
    mapped.flush()
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=wide.shape)
    for block in (mapped, mapped[:, 37:211], mapped[5:, ::3], np.asfortranarray(wide)):
        assert_same_bits(order.lower_iqr(block), reference(np.asarray(block)))
    assert not mapped.flags.writeable  # read, never written


def test_other_dtypes_and_empty_blocks():
    rng = np.random.default_rng(3)
    x = rng.integers(-1000, 1000, (700, 5)).astype(np.int16)
    assert_same_bits(order.lower_iqr(x), reference(x))
    assert order.lower_iqr(np.zeros((0, 4), np.float32)).shape == (4,)
    assert order.lower_iqr(np.zeros((10, 0), np.float32)).shape == (0,)


def test_selection_resolves_realistic_columns_without_sorting_them(monkeypatch):
    """On a random walk with noise (the run model) and on white noise, few columns fall back to the full sort:
    the speed-up exists, not only the exactness (selection from 800 rows, as where numpy's sort is not
    AVX-512)."""
    monkeypatch.setattr(order, "SELECT_MIN_ROWS", 800)
    sorted_rows = []
    real = order.sorted_iqr
    monkeypatch.setattr(order, "sorted_iqr", lambda cols: sorted_rows.append(cols.shape[0]) or real(cols))
    rng = np.random.default_rng(11)
    for kind in ("walk", "white"):
        sorted_rows.clear()
        x = columns_of(kind, 4000, 400, rng).astype(np.float32)
        assert_same_bits(order.lower_iqr(x), reference(x))
        assert sum(sorted_rows) <= 8, (kind, sorted_rows)


def test_standardized_dvars_unchanged_by_selection(monkeypatch):
    """DVARS of a long run: the same bits with selection and with the full sort of every column."""
    rng = np.random.default_rng(5)
    x = columns_of("walk", 1300, 500, rng).astype(np.float32)
    x[:, :7] = 3.0  # constant columns are left out
    monkeypatch.setattr(order, "SELECT_MIN_ROWS", 800)
    fast = qc.standardized_dvars(x)
    monkeypatch.setattr(order, "SELECT_MIN_ROWS", 1 << 30)
    np.testing.assert_array_equal(fast, qc.standardized_dvars(x))


def test_long_run_dvars_same_bits_whatever_the_threads(monkeypatch):
    """Selection in the QC's column chunks, run in 1 and 3 threads: the same bits."""
    import bidsapp.core.signal as signal

    rng = np.random.default_rng(8)
    x = columns_of("walk", 900, 700, rng).astype(np.float32)
    monkeypatch.setattr(order, "SELECT_MIN_ROWS", 800)
    results = []
    for threads in (1, 3):
        monkeypatch.setattr(signal, "default_threads", lambda t=threads: t)
        results.append(qc.standardized_dvars(x, chunk_bytes=8 * 900 * 97))
    np.testing.assert_array_equal(results[0], results[1])


def test_sort_everywhere_where_numpy_sorts_on_avx512():
    """The threshold follows the CPU: never selection where numpy's sort runs on AVX-512 (it is 3-5x cheaper
    there), 800 rows elsewhere; either way the same bits (the sweeps above run both paths)."""
    assert order.SELECT_MIN_ROWS == (sys.maxsize if order.sort_is_avx512() else 800)
