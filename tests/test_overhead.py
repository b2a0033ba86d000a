"""Start-up overhead: --help and --version answer without loading the numerical or workflow stack."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

HEAVY = ("numpy", "nibabel", "nipype", "bids", "scipy", "pandas")


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_help_and_version_are_light_and_fast(flag):
    code = (f"import sys\nfrom bidsapp.cli.run import main\ncode = main([{flag!r}])\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\nsys.exit(code)")
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        best = min(best, time.perf_counter() - t0)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"  # no heavy module imported
    assert best < 1.0, f"bidsapp {flag} took {best:.2f} s"
