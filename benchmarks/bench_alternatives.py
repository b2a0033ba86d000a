"""Two ways past what bounds a run (issue 19), measured against what bidsapp uses: a parallel gzip decoder
and a compiled filter kernel.

Neither is a dependency of bidsapp. Install them in a benchmark environment (``pip install rapidgzip numba``);
a missing one is reported as missing.

* ``decode``: a ``.nii.gz`` read whole from the page cache, in 8 MB reads. ISA-L ``igzip`` is bidsapp's
  reader: one thread, because the gzip format is one stream. ``rapidgzip`` runs with 1 thread and with every
  core: it finds block boundaries speculatively and decodes chunks in parallel. Wall and CPU seconds, best of
  ``--repeat``.
* ``filter``: one causal pass of the benchmarks' Butterworth band-pass (0.01-0.08 Hz, TR 0.72 s, 5 sections)
  over ``(T, 1000)`` float64 columns, one thread. bidsapp's block products (``sos_blocks._causal_pass``) run
  against a numba kernel of the cascade's recursion, section by section, vectorised across columns. CPU ns
  per value, best of ``--repeat``, and the largest difference from bidsapp's ``sosfilt``, relative to the
  output's largest value.
* ``numba``: what the kernel costs each process. A fresh interpreter imports numpy, then numba and the
  kernel, and calls the kernel compiled by an earlier process (loaded from numba's on-disk cache), and the
  installed size of numba and llvmlite.

Usage: python benchmarks/bench_alternatives.py [--gz FILE] [--volumes 1200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_floor import best, drain  # noqa: E402

KERNEL = '''
import numpy as np
from numba import njit


@njit(cache=True, fastmath=True, boundscheck=False)
def sosfilt_columns(sos, x, zi):
    """scipy's sosfilt (direct form II transposed) of each column of x (n, c), in place, section by section."""
    n, c = x.shape
    z0, z1 = np.empty(c), np.empty(c)
    for s in range(sos.shape[0]):
        b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
        z0[:] = zi[s, 0]
        z1[:] = zi[s, 1]
        for t in range(n):
            row = x[t]
            for j in range(c):
                xn = row[j]
                yn = b0 * xn + z0[j]
                z0[j] = b1 * xn - a1 * yn + z1[j]
                z1[j] = b2 * xn - a2 * yn
                row[j] = yn
        zi[s, 0] = z0
        zi[s, 1] = z1
'''

FRESH = """
import sys, time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import numba
from kernel import sosfilt_columns
t2 = time.perf_counter()
sosfilt_columns(np.array([[1.0, 2, 1, 1, -0.5, 0.1]]), np.ones((8, 4)), np.zeros((1, 2, 4)))
t3 = time.perf_counter()
print(t2 - t1, t3 - t2)
"""


def decode(path: Path, repeat: int) -> None:
    """The ``decode`` table."""
    import os

    from isal import igzip_threaded

    drain(open(path, "rb"))  # into the page cache
    print(f"\n{path.name}: {path.stat().st_size / 1e6:.0f} MB compressed\n")
    print("| decoder | threads | wall s | CPU s |")
    print("|---|---|---|---|")
    cpu, wall = best(lambda: drain(igzip_threaded.open(str(path), "rb", threads=1)), repeat)
    print(f"| ISA-L igzip (bidsapp) | 1 | {wall:.2f} | {cpu:.2f} |")
    if importlib.util.find_spec("rapidgzip") is None:
        print("| rapidgzip | not installed | | |")
        return
    import rapidgzip

    for threads in sorted({1, os.cpu_count() or 1}):
        cpu, wall = best(lambda n=threads: drain(rapidgzip.open(str(path), parallelization=n)), repeat)
        print(f"| rapidgzip {rapidgzip.__version__} | {threads} | {wall:.2f} | {cpu:.2f} |")


def filter_pass(n_volumes: int, repeat: int, folder: Path) -> None:
    """The ``filter`` table (one thread)."""
    from threadpoolctl import threadpool_limits

    from bidsapp.core import sos_blocks
    from bidsapp.core.butterworth import sosfilt
    from bidsapp.core.signal import butterworth_sos

    sos = butterworth_sos(0.72, 0.08, 0.01)
    x = np.random.default_rng(0).standard_normal((n_volumes, 1000))
    mats = sos_blocks.block_matrices(sos)
    reference, _ = sosfilt(sos, x, zi=np.zeros((sos.shape[0], 2, x.shape[1])))
    print(f"\none causal pass, {sos.shape[0]} sections, {n_volumes} x 1,000 float64, one thread\n")
    print("| filter | CPU ns per value | max difference / max value |")
    print("|---|---|---|")
    with threadpool_limits(limits=1, user_api="blas"):
        copy = best(lambda: x.copy(), repeat)[0]
        blocks = best(lambda: sos_blocks._causal_pass(x.copy(), np.zeros((2 * sos.shape[0], x.shape[1])), mats),
                      repeat)[0]
        y = x.copy()
        sos_blocks._causal_pass(y, np.zeros((2 * sos.shape[0], x.shape[1])), mats)
        print(f"| bidsapp block products | {(blocks - copy) / x.size * 1e9:.2f} | "
              f"{np.abs(y - reference).max() / np.abs(reference).max():.1e} |")
        if importlib.util.find_spec("numba") is None:
            print("| numba kernel | not installed | |")
            return
        sys.path.insert(0, str(folder))
        from kernel import sosfilt_columns

        y = x.copy()
        sosfilt_columns(sos, y, np.zeros((sos.shape[0], 2, x.shape[1])))  # compiled (and cached) here
        kernel = best(lambda: sosfilt_columns(sos, x.copy(), np.zeros((sos.shape[0], 2, x.shape[1]))), repeat)[0]
        print(f"| numba kernel | {(kernel - copy) / x.size * 1e9:.2f} | "
              f"{np.abs(y - reference).max() / np.abs(reference).max():.1e} |")


def numba_cost(folder: Path, repeat: int) -> None:
    """The ``numba`` lines: a fresh interpreter's import and cached first call; the installed size."""
    if importlib.util.find_spec("numba") is None:
        return
    import llvmlite
    import numba

    runs = [subprocess.run([sys.executable, "-c", FRESH, str(folder)], check=True, capture_output=True,
                           text=True).stdout.split() for _ in range(repeat)]
    imports, calls = min(float(r[0]) for r in runs), min(float(r[1]) for r in runs)
    size = sum(f.stat().st_size for m in (numba, llvmlite) for f in Path(m.__file__).parent.rglob("*")
               if f.is_file())
    print(f"\nnumba {numba.__version__}: import (numba + the kernel's module) {imports:.2f} s, first call from its "
          f"cache {calls:.2f} s, numba + llvmlite installed {size / 1e6:.0f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gz", type=Path, default=Path("/tmp/bidsapp-bench-scale/T1200-65x77x65/bold.nii.gz"))
    p.add_argument("--volumes", type=int, default=1200)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    if args.gz.exists():
        decode(args.gz, args.repeat)
    else:
        print(f"{args.gz} not found (make it with bench_scale.py): no decode table")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernel.py").write_text(KERNEL)
        filter_pass(args.volumes, args.repeat, Path(tmp))
        numba_cost(Path(tmp), args.repeat)


if __name__ == "__main__":
    main()
