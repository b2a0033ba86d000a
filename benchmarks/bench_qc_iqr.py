"""CPU time of the QC's robust SD (``qc.lower_iqr``) and of ``qc_before`` / ``qc_after``: the full sort of every
column ("sort", the implementation before issue 19) against selection by brackets ("select",
``order_statistics.lower_iqr``), on the same arrays, with the results checked to be the same bits.

The run model: float32 columns, a random walk plus white noise around a per-column baseline (100-1000); the
cleaned array is the real cleaning of it (36 random-walk confounds, band-pass 0.01-0.08 Hz, ``zscore_sample``).
``_lower_iqr`` is timed over the column chunks ``standardized_dvars`` gives it, on the raw array's rows.
CPU time (``time.process_time``: every thread of the process) is the minimum of ``--repeat`` runs; the load
average is printed before and after each case, as the machine may be shared.

``--threshold T1 T2 ...`` instead times the two paths of ``order_statistics.lower_iqr`` (the full sort of the
tiled transposed copy, and selection) at each run length, one thread, on 8 chunks of a 30,000-column run (raw
and white noise), in CPU ns per value: where selection starts to win sets ``SELECT_MIN_ROWS`` (where numpy's
sort runs on AVX-512 it wins at no length: ``order_statistics.sort_is_avx512``).

Usage: python benchmarks/bench_qc_iqr.py [--cases 300x250000 1200x75000 4000x75000] [--repeat 3]
       python benchmarks/bench_qc_iqr.py --threshold 600 800 1000 1200 1600 2000 [--repeat 9]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _old_lower_iqr(block: np.ndarray) -> np.ndarray:
    """The implementation before issue 19: a transposed copy of the chunk, a full sort of every column."""
    n = block.shape[0]
    k25, k75 = int(np.floor(0.25 * (n - 1))), int(np.floor(0.75 * (n - 1)))
    ordered = np.sort(np.ascontiguousarray(block.T), axis=1)
    iqr = ordered[:, k75].astype(np.float64) - ordered[:, k25] + 0.0
    iqr[np.isnan(ordered[:, -1])] = np.nan
    return iqr


def run_model(n_volumes: int, n_columns: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(the run's float32 array, its 36 confounds), built 4,096 columns at a time."""
    rng = np.random.default_rng(seed)
    x = np.empty((n_volumes, n_columns), dtype=np.float32)
    for s in range(0, n_columns, 4096):
        e = min(s + 4096, n_columns)
        walk = rng.normal(0, 1, (n_volumes, e - s)).astype(np.float32).cumsum(axis=0)
        x[:, s:e] = rng.uniform(100, 1000, e - s).astype(np.float32) + walk
        x[:, s:e] += rng.normal(0, 3, (n_volumes, e - s)).astype(np.float32)
    return x, rng.normal(size=(n_volumes, 36)).cumsum(axis=0)


def _cpu(fn, repeat: int) -> tuple[float, object]:
    """(min CPU seconds over ``repeat`` calls, the last result)."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def _chunked(fn, x: np.ndarray):
    """``fn`` over the column chunks ``standardized_dvars`` cuts ``x`` into."""
    from bidsapp.core import qc

    width = qc.DVARS_CHUNK_BYTES // (8 * x.shape[0])
    return lambda: np.concatenate([fn(x[:, s:s + width]) for s in range(0, x.shape[1], width)])


def _same(a, b) -> bool:
    """Same bits (NaN where NaN)."""
    if isinstance(a, dict):
        return all(_same(a[k], b[k]) for k in a if not k.startswith("_mean"))
    if hasattr(a, "metrics"):
        return _same(a.metrics, b.metrics) and _same(a.dvars_before, b.dvars_before) and \
            _same(a.dvars_after, b.dvars_after)
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


def bench_case(n_volumes: int, n_columns: int, repeat: int) -> list[dict]:
    """Rows of (what, sort CPU s, select CPU s) for one run size."""
    from bidsapp.core import order_statistics, qc, signal

    x, confounds = run_model(n_volumes, n_columns)
    fd = np.abs(np.random.default_rng(1).normal(size=n_volumes)) * 0.2
    op = signal.cleaning_operator(n_volumes, t_r=0.72, confounds=confounds, low_pass=0.08, high_pass=0.01)
    rows, impl = [], {"sort": _old_lower_iqr, "select": order_statistics.lower_iqr}

    def both(what, make):
        times, results = {}, {}
        for name, fn in impl.items():
            qc.lower_iqr = fn
            times[name], results[name] = _cpu(make(fn), repeat)
        qc.lower_iqr = order_statistics.lower_iqr
        assert _same(results["sort"], results["select"]), f"{what}: the two implementations differ"
        rows.append({"what": what, **times})
        return results["select"]

    both("_lower_iqr (raw)", lambda fn: _chunked(fn, x))
    before = both("qc_before", lambda fn: lambda: qc.qc_before(x, fd=fd, non_steady_state=None, kept=op.kept))
    std = np.empty(n_columns)
    cleaned = signal.apply_operator(x, op, standardize="zscore_sample", copy=False, column_std=std)
    both("_lower_iqr (cleaned)", lambda fn: _chunked(fn, cleaned))
    both("qc_after", lambda fn: lambda: qc.qc_after(before, cleaned, kept=op.kept, fd=fd, cleaned_std=std,
                                                    dof=op.dof, n_volumes=n_volumes))
    return rows


def threshold(lengths: list[int], repeat: int) -> None:
    """Print the CPU ns per value of the sort and the selection path of ``lower_iqr`` at each run length."""
    from bidsapp.core import order_statistics, qc

    rng = np.random.default_rng(2)
    print("| T | data | sort ns/value | select ns/value |")
    print("|---|---|---|---|")
    for n in lengths:
        width = qc.DVARS_CHUNK_BYTES // (8 * n)
        walk, _ = run_model(n, 30000)
        for name, x in (("raw", walk), ("white", rng.normal(size=(n, 30000)).astype(np.float32))):
            blocks = [x[:, s:s + width] for s in range(0, min(x.shape[1], 8 * width), width)]
            per = sum(b.size for b in blocks) * 1e-9
            best = {"sort": np.inf, "select": np.inf}
            for _ in range(repeat):  # interleaved: a change of load hits both
                for path, rows in (("sort", 1 << 30), ("select", 3)):
                    order_statistics.SELECT_MIN_ROWS = rows
                    t0 = time.process_time()
                    for b in blocks:
                        order_statistics.lower_iqr(b)
                    best[path] = min(best[path], time.process_time() - t0)
            print(f"| {n} | {name} | {best['sort'] / per:.2f} | {best['select'] / per:.2f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["300x250000", "1200x75000", "4000x75000"],
                        help="run sizes, volumes x columns")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threshold", nargs="+", type=int, help="run lengths: time the two paths instead")
    args = parser.parse_args(argv)
    from bidsapp.core import order_statistics

    print(f"load average: {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs; numpy {np.__version__}, its sort on "
          f"AVX-512: {order_statistics.sort_is_avx512()}, SELECT_MIN_ROWS {order_statistics.SELECT_MIN_ROWS}")
    if args.threshold:
        threshold(args.threshold, args.repeat)
        return 0
    print("| T x columns | what | sort CPU s | select CPU s | ratio | load before / after |")
    print("|---|---|---|---|---|---|")
    for case in args.cases:
        n_volumes, n_columns = (int(v) for v in case.split("x"))
        load = os.getloadavg()[0]
        rows = bench_case(n_volumes, n_columns, args.repeat)
        after = os.getloadavg()[0]
        for r in rows:
            print(f"| {case} | {r['what']} | {r['sort']:.2f} | {r['select']:.2f} | "
                  f"{r['sort'] / r['select']:.2f}x | {load:.1f} / {after:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
