"""Reading a cold input once: its page-cache pages kept (as before) or released behind the read (issue 19).

Each repetition evicts the file from the page cache (``posix_fadvise(DONTNEED)``, no privileges), waits
``--pause`` seconds (so that the machine's free memory is in the state a new run meets), then reads it in a
fresh interpreter as the masking node does: ``bidsapp.core.io.iter_volumes`` with the file's SHA-256 (a
``.nii.gz`` or ``.nii``), or any other file (a dtseries) through ``HashingReader`` alone. ``keep`` is the same
read with the release turned off (as where the page cache cannot be seen). The two modes run in turn; prints
wall, user and system seconds.

Usage: python benchmarks/bench_cold_read.py FILE [--repeat 3] [--pause 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from page_cache import evict  # noqa: E402

CHILD = """
import os, sys, time
from bidsapp.core import io, page_cache
path, mode = sys.argv[1], sys.argv[2]
if mode == "keep":
    page_cache._CALLS = None
t0, c0 = time.perf_counter(), os.times()
if path.endswith((".nii", ".nii.gz")) and not path.endswith(".dtseries.nii"):
    digest = io.ReadDigest()
    for _ in io.iter_volumes(path, digest=digest):
        pass
else:
    with io.HashingReader(path, background="copy") as fh:
        fh.finish()
c1 = os.times()
print(time.perf_counter() - t0, c1.user - c0.user, c1.system - c0.system)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--pause", type=float, default=10.0)
    args = p.parse_args()
    print(f"{args.file}: {os.path.getsize(args.file) / 2**30:.2f} GiB, pause {args.pause:g} s")
    print("| mode | wall s | user s | sys s |\n|---|---|---|---|")
    for _ in range(args.repeat):
        for mode in ("keep", "release"):
            evict([args.file])
            time.sleep(args.pause)
            out = subprocess.run([sys.executable, "-c", CHILD, args.file, mode], check=True, capture_output=True,
                                 text=True).stdout.split()
            print(f"| {mode} | " + " | ".join(f"{float(v):.2f}" for v in out) + " |", flush=True)


if __name__ == "__main__":
    main()
