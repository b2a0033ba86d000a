"""A participant run never imports ``scipy.signal`` or ``scipy.stats`` (the Butterworth filter's design and
recursion are bidsapp's own, ``bidsapp.core.butterworth``), and ``scipy.interpolate`` only when it needs it.

Their imports cost ~0.9 s of CPU together (scipy 1.17), about a fifth of a small whole run; the default
cleaning (no temporal filter, no censoring) never calls them, and a filtered run interpolates its censored
volumes (the demo's non-steady-state ones) with ``scipy.interpolate`` alone.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

LAZY = ("scipy.signal", "scipy.stats", "scipy.interpolate")


@pytest.mark.parametrize("extra, expected", [([], []), (["--high-pass", "0.01"], ["scipy.interpolate"])])
def test_scipy_modules_are_imported_only_when_used(demo, tmp_path, extra, expected):
    root, _ = demo
    argv = [str(root), str(tmp_path / "out"), "participant", "--participant-label", "01", "--plugin", "Linear",
            "--work-dir", str(tmp_path / "w"), *extra]
    code = (f"import sys\nfrom bidsapp.cli.run import main\ncode = main({argv!r})\n"
            f"print([m for m in {LAZY!r} if m in sys.modules])\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(expected)
