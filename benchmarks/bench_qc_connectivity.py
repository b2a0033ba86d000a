"""Cost of the QC metrics next to cleaning, and connectivity matrices vs nilearn's ConnectivityMeasure.

1. QC: a voxel run (n_volumes x n_voxels float32, 36 confounds, band-pass, zscore_sample): wall time of
   cleaning (``apply_operator``) alone, and of the QC metrics computed before and after it
   (``qc_before`` + ``qc_after``), in the same process.
2. Connectivity: ``n_regions`` series of ``n_volumes``; wall time of bidsapp's
   ``connectivity(x, measure)`` and of ``ConnectivityMeasure(kind=...).fit_transform([x])``, and the
   largest difference relative to the largest entry.

Usage: python benchmarks/bench_qc_connectivity.py [--volumes 600] [--voxels 100000] [--regions 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def bench_qc(n_volumes: int, n_voxels: int) -> dict:
    from bidsapp.core import qc, signal

    rng = np.random.default_rng(0)
    x = (1000 + rng.normal(size=(n_volumes, n_voxels)) * 20).astype(np.float32)
    conf = rng.normal(size=(n_volumes, 36))
    fd = np.abs(rng.normal(size=n_volumes)) * 0.2
    op = signal.cleaning_operator(n_volumes, t_r=2.0, confounds=conf, low_pass=0.08, high_pass=0.01)
    t0 = time.perf_counter()
    before = qc.qc_before(x, fd=fd, non_steady_state=None, kept=op.kept)
    t1 = time.perf_counter()
    std = np.empty(n_voxels)
    cleaned = signal.apply_operator(x, op, standardize="zscore_sample", copy=False, column_std=std)
    t2 = time.perf_counter()
    qc.qc_after(before, cleaned, kept=op.kept, fd=fd, cleaned_std=std, dof=op.dof, n_volumes=n_volumes)
    t3 = time.perf_counter()
    return {"clean_s": t2 - t1, "qc_s": (t1 - t0) + (t3 - t2)}


def bench_connectivity(n_volumes: int, n_regions: int) -> list[dict]:
    from nilearn.connectome import ConnectivityMeasure

    from bidsapp.core import connectivity as cn

    rng = np.random.default_rng(1)
    x = rng.normal(size=(n_volumes, n_regions)) @ rng.normal(size=(n_regions, n_regions)) * 0.1
    rows = []
    for measure, kind in (("correlation", "correlation"), ("partial-correlation", "partial correlation"),
                          ("covariance", "covariance")):
        t0 = time.perf_counter()
        ours = cn.connectivity(x, measure)
        t1 = time.perf_counter()
        ref = ConnectivityMeasure(kind=kind).fit_transform([x])[0]
        t2 = time.perf_counter()
        rows.append({"measure": measure, "bidsapp_s": t1 - t0, "nilearn_s": t2 - t1,
                     "rel_diff": float(np.abs(ours - ref).max() / np.abs(ref).max())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=600)
    parser.add_argument("--voxels", type=int, default=100_000)
    parser.add_argument("--regions", type=int, default=400)
    args = parser.parse_args()
    q = bench_qc(args.volumes, args.voxels)
    print(f"QC, {args.volumes} volumes x {args.voxels} voxels: cleaning {q['clean_s']:.2f} s, "
          f"QC metrics {q['qc_s']:.2f} s ({q['qc_s'] / q['clean_s']:.0%} of cleaning)")
    print(f"\nconnectivity, {args.volumes} volumes x {args.regions} regions")
    print("| measure | bidsapp s | nilearn s | max diff / max |")
    print("|---|---|---|---|")
    for r in bench_connectivity(args.volumes, args.regions):
        print(f"| {r['measure']} | {r['bidsapp_s']:.3f} | {r['nilearn_s']:.3f} | {r['rel_diff']:.1e} |")


if __name__ == "__main__":
    main()
