"""Start-up time of ``bidsapp --help`` and ``bidsapp --version`` (best of N fresh interpreters).

``python benchmarks/bench_startup.py [--repeat N]`` prints, per flag, the best and median wall time of a
fresh ``python -c`` that calls the entry point, and the heavy modules it imported (there should be none).
It measures and prints; it asserts nothing (a timed check fails on a loaded machine). The test suite
checks only that no heavy module is imported (tests/test_startup_imports.py).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("numpy", "nibabel", "nipype", "bids", "scipy", "pandas")


def measure(flag: str, repeat: int) -> tuple[list[float], str]:
    """Wall times of ``repeat`` fresh interpreters running ``bidsapp <flag>``, and the heavy modules loaded."""
    code = (f"import sys\nfrom bidsapp.cli.run import main\ncode = main([{flag!r}])\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\nsys.exit(code)")
    times, loaded = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(f"bidsapp {flag} failed: {done.stderr.strip()}")
        loaded = done.stdout.strip().splitlines()[-1]
    return times, loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh interpreters per flag (default: 5)")
    args = parser.parse_args(argv)
    print("| flag | best s | median s | heavy modules imported |\n|---|---|---|---|")
    for flag in ("--version", "--help"):
        times, loaded = measure(flag, args.repeat)
        print(f"| {flag} | {min(times):.2f} | {statistics.median(times):.2f} | {loaded} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
