"""CPU time of the cleaning step alone: the dense operator product vs the step-wise path.

One run's cleaning (detrend, Butterworth band-pass 0.01-0.08 Hz, 36 confounds, ``zscore_sample``) applied
to ``--columns`` random-walk columns by :func:`bidsapp.core.signal.apply_operator` with ``method="dense"``
and ``method="steps"``, and what the cost model (``method="auto"``) picks. Times are process CPU time
(``time.process_time``: user + system of every thread), which depends little on other load on the machine;
the wall time is printed too. BLAS threads are set by ``--blas-threads`` (before numpy is imported), the
step-wise path's threads by ``--threads``.

Usage: python benchmarks/bench_cleaning_paths.py --volumes 1200 --t-r 0.72 --columns 8192 [--blas-threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--volumes", type=int, nargs="+", default=[1200])
    p.add_argument("--t-r", type=float, nargs="+", default=[0.72], help="one TR per --volumes, or one for all")
    p.add_argument("--columns", type=int, default=8192)
    p.add_argument("--confounds", type=int, default=36)
    p.add_argument("--blas-threads", type=int, default=None, help="OPENBLAS/OMP_NUM_THREADS (default: unset)")
    p.add_argument("--threads", type=int, default=None, help="threads of the step-wise path (default: as BLAS)")
    p.add_argument("--repeat", type=int, default=3, help="best of this many applications per path")
    args = p.parse_args()
    if args.blas_threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    import numpy as np

    from bidsapp.core import signal

    trs = args.t_r * len(args.volumes) if len(args.t_r) == 1 else args.t_r
    print(f"columns {args.columns}, blas threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
          f"step threads {args.threads or signal.default_threads()}; CPU s = time.process_time, best of "
          f"{args.repeat}")
    print("| T | TR | dense CPU s | steps CPU s | dense wall s | steps wall s | steps/dense CPU | model picks |")
    print("|---|---|---|---|---|---|---|---|")
    for n, t_r in zip(args.volumes, trs):
        rng = np.random.default_rng(n)
        x = np.cumsum(rng.standard_normal((n, args.columns)), axis=0).astype(np.float32)
        conf = rng.standard_normal((n, args.confounds))
        op = signal.cleaning_operator(n, t_r=t_r, confounds=conf, low_pass=0.08, high_pass=0.01)
        best = {}
        for method in ("dense", "steps"):
            cpu = wall = float("inf")
            for _ in range(args.repeat):
                c0, w0 = time.process_time(), time.perf_counter()
                signal.apply_operator(x, op, method=method, threads=args.threads)
                cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
            best[method] = (cpu, wall)
        pick = "steps" if signal.stepwise_is_cheaper(op) else "dense"
        (dc, dw), (sc, sw) = best["dense"], best["steps"]
        print(f"| {n} | {t_r} | {dc:.2f} | {sc:.2f} | {dw:.2f} | {sw:.2f} | {sc / dc:.2f} | {pick} |", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
