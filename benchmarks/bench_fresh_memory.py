"""What touching fresh memory costs on this machine: the first write to each page of a new array.

On bare metal a page fault costs about a microsecond (zeroing a 4 KB page), ~0.1-0.2 s per GiB. On a virtual
machine whose free memory goes back to its host (virtio-balloon free page reporting, DAMON reclaim), the first
touch of a page the guest has not used recently also faults in the host: several times slower, and how much
depends on what the machine did in the last seconds to minutes. Every process of a benchmark pays it for each
new array and for each new page of the page cache (a file written), which is why whole-run times (ours and
nilearn's) move by 20-30 % between invocations on the development machine.

Each repetition is a fresh interpreter that allocates ``--gib`` GiB (``np.ones``: every page written), frees it
and allocates it again (the second time from memory the guest still holds), after ``--pause`` seconds of idle.

Usage: python benchmarks/bench_fresh_memory.py [--gib 1] [--repeat 3] [--pause 0 10 60]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

CHILD = """
import time, numpy as np
n = int(float({gib}) * 2**30) // 4
t0 = time.perf_counter(); a = np.ones(n, dtype=np.float32); t1 = time.perf_counter()
del a
b = np.ones(n, dtype=np.float32); t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gib", type=float, default=1.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--pause", type=float, nargs="+", default=[0.0, 10.0, 60.0])
    args = p.parse_args()
    print(f"| idle before (s) | first touch of {args.gib:g} GiB (s) | GiB/s | again in the same process (s) | GiB/s |")
    print("|---|---|---|---|---|")
    for pause in args.pause:
        for _ in range(args.repeat):
            time.sleep(pause)
            out = subprocess.run([sys.executable, "-c", CHILD.format(gib=args.gib)], capture_output=True,
                                 text=True, check=True).stdout.split()
            first, again = float(out[0]), float(out[1])
            print(f"| {pause:g} | {first:.3f} | {args.gib / first:.2f} | {again:.3f} | {args.gib / again:.2f} |")


if __name__ == "__main__":
    main()
