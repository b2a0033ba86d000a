"""Two versions of bidsapp, whole invocations in turn on the same dataset: wall, user and system seconds.

Each version is a Python interpreter with its own bidsapp installed (a venv per checkout). The two run the
``bench_scale.py`` command (detrend, band-pass 0.01-0.08 Hz, 36 confounds, zscore_sample, ``--nprocs 1``)
alternately, A B A B ..., each into its own output folder (removed before each run) with its own ``$TMPDIR``
(the private work folder), so the machine's drift hits both alike. Times come from ``os.wait4`` (the process
and its children). System time is where a page allocated for the first time shows up on a virtual machine
whose free memory goes back to its host (``bench_fresh_memory.py``).

Usage: python benchmarks/bench_versions.py BIDS_ROOT --a PYTHON_A --b PYTHON_B [--pairs 6] [--pause S]
       [--workdir DIR]

BIDS_ROOT: a dataset made by ``bench_scale.py`` (e.g. ``/tmp/bidsapp-bench-scale/T300/bids1``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import bidsapp_cmd  # noqa: E402


def run_once(python: str, root: Path, folder: Path, pause: float = 0.0) -> dict[str, float]:
    """One whole invocation of ``python -m bidsapp.cli.run`` into ``folder``/out (removed first, then ``pause``
    seconds idle)."""
    out, tmp = folder / "out", folder / "tmp"
    shutil.rmtree(out, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    time.sleep(pause)
    cmd = [python, *bidsapp_cmd(root, out, 1)[1:]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, TMPDIR=str(tmp)))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{python} failed: {proc.stderr.read().decode()[-2000:]}")
    proc.stderr.close()
    return {"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path)
    p.add_argument("--a", required=True, help="Python of version A (with its bidsapp installed)")
    p.add_argument("--b", required=True, help="Python of version B")
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bidsapp-bench-versions"))
    p.add_argument("--pause", type=float, default=0.0,
                   help="seconds idle before each run (after its output folder is removed): long enough, freed "
                        "memory goes back to the host and each run starts on fresh pages, as a first run does")
    args = p.parse_args()
    seen: dict[str, list[dict]] = {"A": [], "B": []}
    for _ in range(args.pairs):
        for name, python in (("A", args.a), ("B", args.b)):
            seen[name].append(run_once(python, args.root.resolve(), args.workdir / name, args.pause))
            print(name, {k: round(v, 2) for k, v in seen[name][-1].items()}, flush=True)
    print("\n| version | wall s mean (median) | user s mean | sys s mean |\n|---|---|---|---|")
    for name, rows in seen.items():
        col = {k: [r[k] for r in rows] for k in ("wall", "user", "sys")}
        print(f"| {name} | {statistics.mean(col['wall']):.2f} ({statistics.median(col['wall']):.2f}) | "
              f"{statistics.mean(col['user']):.2f} | {statistics.mean(col['sys']):.2f} |")


if __name__ == "__main__":
    main()
