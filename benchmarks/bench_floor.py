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
  bidsapp's workflow and the figures' matplotlib), wall seconds.

Prints one row per run: each floor (wall s), and ``floor`` = decompress + write array (the masked array) +
write array (the cleaned array, once) + start-up. Give ``--bidsapp`` and ``--nilearn`` times (from
``bench_scale.py`` / ``bench_grayordinates.py``, same machine) to print the goals next to it.

Usage: python benchmarks/bench_floor.py [--scale-dir DIR] [--gray-dir DIR] [--repeat 3]
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
           "bidsapp.interfaces.clean, bidsapp.interfaces.extract, matplotlib.figure, "
           "matplotlib.backends.backend_agg")


def best(fn, repeat: int) -> tuple[float, float]:
    """Lowest (CPU s, wall s) of ``repeat`` calls."""
    cpu, wall = [], []
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return min(cpu), min(wall)


def read_all(path: Path) -> None:
    """The whole file through bidsapp's reader backend (decompressed when gzip), in 8 MB reads."""
    buf = bytearray(8 << 20)
    if path.suffix == ".gz":
        from isal import igzip_threaded

        fh = igzip_threaded.open(str(path), "rb", threads=1)
    else:
        fh = open(path, "rb", buffering=0)
    with fh:
        while fh.readinto(buf):
            pass


def masked_shape(path: Path, n_columns: int) -> tuple[int, int]:
    import nibabel as nib

    img = nib.load(str(path))
    return (int(img.shape[3]) if img.ndim == 4 else int(img.shape[0])), n_columns


def floors(path: Path, n_columns: int, repeat: int) -> dict[str, float]:
    """Wall seconds of each floor for the run in ``path`` with ``n_columns`` columns (decompress: also CPU)."""
    read_all(path)  # into the page cache
    out: dict[str, float] = {}
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
    out["gb"] = array.nbytes / 1e9
    return out


def _startup() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", STARTUP], check=True)
    return time.perf_counter() - t


def runs(scale_dir: Path, gray_dir: Path) -> list[tuple[str, Path, int]]:
    """(case, BOLD file, columns) of every benchmark run found."""
    import nibabel as nib

    found = []
    for name, folder in (("single", "T300"), ("long1200", "T1200-65x77x65"), ("long2000", "T2000-65x77x65"),
                         ("long4000", "T4000-65x77x65")):
        bold, mask = scale_dir / folder / "bold.nii.gz", scale_dir / folder / "mask.nii.gz"
        if bold.exists() and mask.exists():
            found.append((name, bold, int(np.count_nonzero(nib.load(str(mask)).get_fdata()))))
    for dtseries in sorted(gray_dir.glob("bids-*/derivatives/fmriprep/sub-01/func/*.dtseries.nii")):
        found.append((f"fsLR {dtseries.parts[-6]}", dtseries, 91282))
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale-dir", type=Path, default=Path("/tmp/bidsapp-bench-scale"))
    p.add_argument("--gray-dir", type=Path, default=Path("/tmp/bidsapp-bench-grayordinates"))
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print("| case | array GB | decompress s (CPU s) | write array s | read array s | one pass s | start-up s | "
          "floor s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, path, n_columns in runs(args.scale_dir, args.gray_dir):
        f = floors(path, n_columns, args.repeat)
        print(f"| {name} | {f['gb']:.2f} | {f['decompress']:.2f} ({f['decompress_cpu']:.2f}) | {f['write']:.2f} | "
              f"{f['read']:.2f} | {f['pass']:.2f} | {f['startup']:.2f} | {f['floor']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
