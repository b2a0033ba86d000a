"""The floors of a whole run on this machine: what no implementation of the same outputs avoids.

For each run of the scale and grayordinate benchmarks (their data folders, made by ``bench_scale.py`` and
``bench_grayordinates.py``), with the file in the page cache:

* ``decompress``: reading the BOLD as bidsapp reads it (ISA-L ``igzip`` with its one decompression thread for a
  ``.nii.gz``; a plain read for a ``.dtseries.nii``), CPU and wall seconds: the format allows one thread;
* ``write array``: ``numpy.save`` of a float32 array of the run's masked size (``n_volumes x n_columns``) into
  a new file of the temporary folder, then ``os.fsync``-free close: the page cache's cost of holding one
  output array (the kernel allocates and fills its pages);
* ``read array``: ``numpy.load`` of it back into memory (a fresh array's page faults and the copy);
* ``one pass``: one float32 -> float64 conversion of the array, i.e. a read and a write of memory at this
  machine's bandwidth (the cleaning makes several such passes per column chunk);
* ``start-up``: a fresh interpreter importing what a participant run needs (numpy, nipype's engine, pybids,
  bidsapp's workflow; a participant run draws its figures as SVG text and never imports matplotlib), wall
  seconds;
* ``cold read``: the same read with the file evicted from the page cache first (as the scale and grayordinate
  benchmarks start: from disk).

Prints one row per run: each floor (wall s), and ``floor`` = decompress + write array (the masked array) +
write array (the cleaned array, once) + start-up; ``cold floor`` uses the cold read instead.

With ``--work`` (the default), a second table: what the run computes on top of the floors, each part alone on
an in-memory float32 array of the run's masked size (1000 + Gaussian noise, so the QC's selection meets
noise-like columns as in the benchmarks), with the benchmark's cleaning (detrend, Butterworth band-pass
0.01-0.08 Hz, the case's 36 confounds, ``zscore_sample``; the grayordinate run: ``--denoise simple``'s
columns of its confounds file), on every core as bidsapp runs it: building the operator and its degrees of
freedom, applying it (into a preallocated output), the QC before and after. ``at BLAS rate`` is the step-wise
path's flops per value (filter blocks and projection, the count of ``signal.filter_flops`` and the cost model) over this
machine's float64 matrix-product rate on all cores (a 2,000 x 2,000 ``dgemm``): what the same arithmetic
would cost at the rate of one large product.

Usage: python benchmarks/bench_floor.py [--scale-dir DIR] [--gray-dir DIR] [--repeat 3] [--no-work] [--cases NAME ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STARTUP = ("import numpy, scipy.linalg, nipype.pipeline.engine, bids, bidsapp.cli.run, bidsapp.workflows.base, "
           "bidsapp.interfaces.clean, bidsapp.interfaces.extract")


def best(fn, repeat: int) -> tuple[float, float]:
    """Lowest (CPU s, wall s) of ``repeat`` calls."""
    cpu, wall = [], []
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return min(cpu), min(wall)


def drain(fh) -> None:
    """Read the open file ``fh`` to its end in 8 MB reads, then close it."""
    buf = bytearray(8 << 20)
    with fh:
        while fh.readinto(buf):
            pass


def read_all(path: Path) -> None:
    """The whole file through bidsapp's reader backend (decompressed when gzip), in 8 MB reads."""
    if path.suffix == ".gz":
        from isal import igzip_threaded

        drain(igzip_threaded.open(str(path), "rb", threads=1))
    else:
        drain(open(path, "rb", buffering=0))


def masked_shape(path: Path, n_columns: int) -> tuple[int, int]:
    import nibabel as nib

    img = nib.load(str(path))
    return (int(img.shape[3]) if img.ndim == 4 else int(img.shape[0])), n_columns


def cold_read(path: Path, repeat: int) -> float:
    """Lowest wall seconds of :func:`read_all` with ``path`` evicted from the page cache before each read."""
    from page_cache import evict

    walls = []
    for _ in range(repeat):
        evict([path])
        time.sleep(2)
        walls.append(best(lambda: read_all(path), 1)[1])
    return min(walls)


def floors(path: Path, n_columns: int, repeat: int) -> dict[str, float]:
    """Wall seconds of each floor for the run in ``path`` with ``n_columns`` columns (decompress: also CPU)."""
    out: dict[str, float] = {"cold": cold_read(path, repeat)}
    read_all(path)  # into the page cache
    out["decompress_cpu"], out["decompress"] = best(lambda: read_all(path), repeat)
    shape = masked_shape(path, n_columns)
    array = np.ones(shape, np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "array.npy"

        def write() -> None:
            target.unlink(missing_ok=True)
            np.save(target, array)

        out["write"] = best(write, repeat)[1]
        out["read"] = best(lambda: np.load(target), repeat)[1]
    out["pass"] = best(lambda: array.astype(np.float64), repeat)[1]
    out["startup"] = min(_startup() for _ in range(repeat))
    out["floor"] = out["decompress"] + 2 * out["write"] + out["startup"]
    out["cold_floor"] = out["cold"] + 2 * out["write"] + out["startup"]
    out["gb"] = array.nbytes / 1e9
    return out


def _startup() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", STARTUP], check=True)
    return time.perf_counter() - t


def runs(scale_dir: Path, gray_dir: Path) -> list[tuple[str, Path, int, float, np.ndarray]]:
    """(case, BOLD file, columns, TR, confounds) of every benchmark run found."""
    import nibabel as nib

    found = []
    for name, folder, t_r in (("single", "T300", 2.0), ("long1200", "T1200-65x77x65", 0.72),
                              ("long2000", "T2000-65x77x65", 0.5), ("long4000", "T4000-65x77x65", 0.5)):
        bold, mask = scale_dir / folder / "bold.nii.gz", scale_dir / folder / "mask.nii.gz"
        if bold.exists() and mask.exists():
            found.append((name, bold, int(np.count_nonzero(nib.load(str(mask)).get_fdata())), t_r,
                          np.load(scale_dir / folder / "confounds.npy")))
    for dtseries in sorted(gray_dir.glob("bids-*/derivatives/fmriprep/sub-01/func/*.dtseries.nii")):
        found.append((f"fsLR {dtseries.parts[-6]}", dtseries, 91282, 0.72, _simple_confounds(dtseries)))
    return found


def _simple_confounds(dtseries: Path) -> np.ndarray:
    """The ``--denoise simple`` confounds of the grayordinate run (its fMRIPrep confounds file)."""
    from bidsapp.core.confounds import run_design

    stem = dtseries.name.split("_space-")[0]
    tsv = dtseries.parent / f"{stem}_desc-confounds_timeseries.tsv"
    n = masked_shape(dtseries, 0)[0]
    return run_design(n, tsv, tsv.with_suffix(".json"), "simple").confounds


def blas_rate(repeat: int) -> float:
    """Float64 flops per second of a 2,000 x 2,000 matrix product on every core."""
    a = np.random.default_rng(0).random((2000, 2000))
    return 2 * 2000**3 / best(lambda: a @ a, repeat)[1]


def work(n_volumes: int, n_columns: int, t_r: float, confounds: np.ndarray, repeat: int,
         rate: float) -> dict[str, float]:
    """Wall seconds of what the run computes, each part alone on an in-memory array (see the docstring)."""
    from bidsapp.core import qc, signal, sos_blocks

    x = np.random.default_rng(1).standard_normal((n_volumes, n_columns), dtype=np.float32)
    x *= 10
    x += 1000
    build = dict(t_r=t_r, detrend=True, confounds=confounds, standardize_confounds=True, filter="butterworth",
                 low_pass=0.08, high_pass=0.01)
    out: dict[str, float] = {}
    op = signal.cleaning_operator(n_volumes, **build)
    out["operator"] = best(lambda: signal.check_degrees_of_freedom(
        signal.cleaning_operator(n_volumes, **build), "zscore_sample"), repeat)[1]
    cleaned, std = np.empty((op.kept.size, n_columns), np.float32), np.empty(n_columns)
    out["clean"] = best(lambda: signal.apply_operator(x, op, out=cleaned, column_std=std), repeat)[1]
    kept = op.kept

    def both_qc() -> None:
        before = qc.qc_before(x, fd=None, non_steady_state=None, kept=kept)
        qc.qc_after(before, cleaned, kept=kept, fd=None, cleaned_std=std, dof=op.dof, n_volumes=n_volumes)

    out["qc"] = best(both_qc, repeat)[1]
    st = op.steps
    padded = n_volumes + 2 * sos_blocks.padlen_of(st.sos)
    flops = signal.filter_flops(st.sos) * padded / n_volumes + 4.0 * (0 if st.q is None else st.q.shape[1])
    out["flops_per_value"] = flops
    out["at_rate"] = flops * x.size / rate
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale-dir", type=Path, default=Path("/tmp/bidsapp-bench-scale"))
    p.add_argument("--gray-dir", type=Path, default=Path("/tmp/bidsapp-bench-grayordinates"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-work", dest="work", action="store_false", help="the floors only")
    p.add_argument("--cases", nargs="+", help="only these cases (e.g. long1200 'fsLR bids-1200')")
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print("| case | array GB | decompress s (CPU s) | cold read s | write array s | read array s | one pass s | "
          "start-up s | floor s | cold floor s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    found = [r for r in runs(args.scale_dir, args.gray_dir) if not args.cases or r[0] in args.cases]
    cold = {}
    for name, path, n_columns, _, _ in found:
        f = floors(path, n_columns, args.repeat)
        cold[name] = f["cold_floor"]
        print(f"| {name} | {f['gb']:.2f} | {f['decompress']:.2f} ({f['decompress_cpu']:.2f}) | {f['cold']:.2f} | "
              f"{f['write']:.2f} | {f['read']:.2f} | {f['pass']:.2f} | {f['startup']:.2f} | {f['floor']:.2f} | "
              f"{f['cold_floor']:.2f} |", flush=True)
    if not args.work:
        return
    rate = blas_rate(args.repeat)
    print(f"\nfloat64 matrix product on every core: {rate / 1e9:.1f} GFLOP/s\n")
    print("| case | cold floor s | operator s | cleaning s | at BLAS rate s (flops per value) | QC s | "
          "cold floor + work s |")
    print("|---|---|---|---|---|---|---|")
    for name, path, n_columns, t_r, confounds in found:
        w = work(masked_shape(path, n_columns)[0], n_columns, t_r, confounds, args.repeat, rate)
        total = cold[name] + w["operator"] + w["clean"] + w["qc"]
        print(f"| {name} | {cold[name]:.2f} | {w['operator']:.2f} | {w['clean']:.2f} | {w['at_rate']:.2f} "
              f"({w['flops_per_value']:.0f}) | {w['qc']:.2f} | {total:.2f} |", flush=True)


if __name__ == "__main__":
    main()
