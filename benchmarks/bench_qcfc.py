"""QC-FC at atlas scale: bidsapp's vectorized partial correlation vs a per-edge scipy loop (the benchmark's way).

``python benchmarks/bench_qcfc.py [--regions 400] [--participants 150] [--loop-edges 2000]`` builds seeded
connectivity (participants x edges, with a motion effect on half the edges), age and sex, then times
:func:`bidsapp.core.denoising_benchmark.qcfc` + :func:`summarize` on every edge and, on ``--loop-edges`` edges,
the loop the fMRIPrep denoising benchmark runs (``scipy.linalg.lstsq`` residuals + ``scipy.stats.pearsonr``
per edge), extrapolated linearly to every edge. Prints the times and the largest differences of r and p
(the loop's p uses n - 2 - k degrees of freedom, as bidsapp does). It measures and prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy import linalg, stats

from bidsapp.core import denoising_benchmark as db


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=400)
    parser.add_argument("--participants", type=int, default=150)
    parser.add_argument("--loop-edges", type=int, default=2000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n, e = args.participants, db.n_edges(args.regions)
    fd = rng.gamma(2, 0.08, n)
    cov = np.column_stack([rng.uniform(8, 60, n), rng.integers(0, 2, n)])
    conn = rng.normal(0.2, 0.15, (n, e)) + np.outer(fd - fd.mean(), rng.normal(0, 0.5, e) * (rng.random(e) < 0.5))
    dist = db.edge_distances(rng.uniform(-70, 70, (args.regions, 3)))

    t0 = time.perf_counter()
    res = db.qcfc(conn, fd, cov)
    summary = db.summarize(res, dist)
    t_vec = time.perf_counter() - t0

    k = min(args.loop_edges, e)
    Z = stats.zscore(cov, axis=0)  # the benchmark z-scores the covariates and fits no intercept
    t0 = time.perf_counter()
    r_loop, p_loop = np.empty(k), np.empty(k)
    m_res = fd - Z @ linalg.lstsq(Z, fd)[0]
    for j in range(k):
        c_res = conn[:, j] - Z @ linalg.lstsq(Z, conn[:, j])[0]
        r_loop[j] = stats.pearsonr(c_res, m_res).statistic
    t_loop = (time.perf_counter() - t0) * e / k
    dof = n - 2 - cov.shape[1]
    p_loop = 2 * stats.t.sf(np.abs(r_loop) * np.sqrt(dof / (1 - r_loop**2)), dof)
    print(f"{args.regions} regions ({e} edges) x {n} participants, age + sex partialled out")
    print("| implementation | time s | max abs diff r | max abs diff p |\n|---|---|---|---|")
    print(f"| bidsapp qcfc + summarize (all edges) | {t_vec:.2f} | | |")
    print(f"| per-edge lstsq + pearsonr (extrapolated from {k} edges) | {t_loop:.1f} | "
          f"{np.abs(res.r[:k] - r_loop).max():.1e} | {np.abs(res.p[:k] - p_loop).max():.1e} |")
    print({key: round(v, 4) for key, v in summary.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
