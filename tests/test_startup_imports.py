"""--help and --version answer without loading the numerical or workflow stack.

Their wall time is measured by benchmarks/bench_startup.py (a timed assertion fails on a loaded machine).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "nibabel", "nipype", "bids", "scipy", "pandas")


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_help_and_version_load_no_heavy_module(flag):
    code = (f"import sys\nfrom bidsapp.cli.run import main\ncode = main([{flag!r}])\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"  # no heavy module imported


def test_a_participant_run_s_modules_import_no_smoothing_or_plotting_stack():
    """scipy.ndimage (smoothing, resampling, computed masks: ~0.1 s) and matplotlib (the page) are imported where
    they are used, not by importing the workflow and its interfaces, which every run does."""
    code = ("import sys\nimport bidsapp.cli.run, bidsapp.workflows.base\n"
            "from bidsapp.interfaces import clean, extract, mask, provenance, report, segment, sink\n"
            "print(sorted(m for m in ('scipy.ndimage', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
