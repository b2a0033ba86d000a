"""A participant run imports ``scipy.signal`` only when a Butterworth filter is asked for.

Its import costs ~0.9 s of CPU (scipy 1.17), about a tenth of a whole 300-volume run; the default cleaning
(no temporal filter) never calls it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("extra, expected", [([], False), (["--high-pass", "0.01"], True)])
def test_scipy_signal_is_imported_only_to_filter(demo, tmp_path, extra, expected):
    root, _ = demo
    argv = [str(root), str(tmp_path / "out"), "participant", "--participant-label", "01", "--plugin", "Linear",
            "--work-dir", str(tmp_path / "w"), *extra]
    code = (f"import sys\nfrom bidsapp.cli.run import main\ncode = main({argv!r})\n"
            "print('scipy.signal' in sys.modules)\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(expected)
