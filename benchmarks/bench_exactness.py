"""Both cleaning paths and nilearn against an exact (long double) application of the same operator.

The ``bench_masker.py`` model of a run (float32 voxels = 1000-1100 + 36 random-walk confounds x weights +
white noise) on ``--columns`` columns, cleaned with detrend, Butterworth band-pass 0.01-0.08 Hz, the 36
confounds and ``zscore_sample``. Reference: every factor in ``numpy.longdouble`` (detrending; scipy's
``sosfiltfilt`` on long-double data; the confound projection by modified Gram-Schmidt, twice; z-scoring).
Printed: max |difference| / column std of each result against the reference.

Usage: python benchmarks/bench_exactness.py --volumes 300 4000 --t-r 2 0.5 --columns 256
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from scipy import signal as sps

from bidsapp.core import signal

L = np.longdouble


def run_like(n: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 signals (n, n_cols) and float64 confounds (n, 36), as ``bench_masker.generate`` builds them."""
    rng = np.random.default_rng(0)
    conf = np.cumsum(rng.normal(0, 1, (n, 36)), axis=0)
    w = rng.normal(0, 0.5, (36, n_cols)).astype(np.float32)
    base = (1000 + 100 * rng.random(n_cols)).astype(np.float32)
    noise = rng.normal(0, 10, (n, n_cols)).astype(np.float32)
    return (base + conf.astype(np.float32) @ w + noise).astype(np.float32), conf


def exact(x: np.ndarray, conf: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """The cleaning of ``x`` computed in long double."""
    def detrend(a):
        a = a - a.mean(axis=0)
        t = np.arange(a.shape[0], dtype=L)
        t -= t.mean()
        t /= np.sqrt((t * t).sum())
        return a - np.outer(t, t @ a)

    def filt(a):  # float64 coefficients, long-double data: scipy's recursion runs in long double
        return sps.sosfiltfilt(sos, a, axis=0)

    y, c = filt(detrend(x.astype(L))), filt(detrend(conf.astype(L)))
    q = (c - c.mean(axis=0)) / c.std(axis=0, ddof=1)
    for _ in range(2):
        for k in range(q.shape[1]):
            for j in range(k):
                q[:, k] -= q[:, j] * (q[:, j] @ q[:, k])
            q[:, k] /= np.sqrt(q[:, k] @ q[:, k])
    y = y - q @ (q.T @ y)
    return ((y - y.mean(axis=0)) / y.std(axis=0, ddof=1)).astype(np.float64)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--volumes", type=int, nargs="+", default=[300, 4000])
    p.add_argument("--t-r", type=float, nargs="+", default=[2.0, 0.5])
    p.add_argument("--columns", type=int, default=256)
    args = p.parse_args()
    from nilearn import signal as nls

    warnings.simplefilter("ignore")
    print("| T | TR | result | dtype | max abs diff / column std vs long double |")
    print("|---|---|---|---|---|")
    for n, t_r in zip(args.volumes, args.t_r):
        x, conf = run_like(n, args.columns)
        sos = signal.butterworth_sos(t_r, 0.08, 0.01)
        ref = exact(x, conf, sos)
        op = signal.cleaning_operator(n, t_r=t_r, confounds=conf, low_pass=0.08, high_pass=0.01)
        kw = dict(detrend=True, standardize="zscore_sample", confounds=conf, low_pass=0.08, high_pass=0.01, t_r=t_r)
        results = {
            "bidsapp dense, float64 output": signal.apply_operator(x.astype(np.float64), op, method="dense"),
            "bidsapp steps, float64 output": signal.apply_operator(x.astype(np.float64), op, method="steps"),
            "bidsapp dense (float32 input, as saved)": signal.apply_operator(x, op, method="dense"),
            "bidsapp steps (float32 input, as saved)": signal.apply_operator(x, op, method="steps"),
            "nilearn signal.clean, float32 input (as NiftiMasker)": nls.clean(x.copy(), **kw),
            "nilearn signal.clean, float64 input": nls.clean(x.astype(np.float64), **kw),
        }
        for name, v in results.items():
            print(f"| {n} | {t_r} | {name} | {v.dtype} | {np.abs(v - ref).max():.1e} |", flush=True)


if __name__ == "__main__":
    main()
