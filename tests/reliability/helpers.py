"""Helpers of the tests of outputs that stay true: the command in a subprocess and sidecar checks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SUB1 = "sub-01/func"
STEM = "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-simple"


def _cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bidsapp.cli.run", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def _popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bidsapp.cli.run", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_9_at_marker(driver_text: str, tmp_path: Path, *args: str) -> Path:
    """Run ``driver_text`` (a script that writes ``sys.argv[1]`` at the moment to stop, then waits) with the marker
    path and ``args``; ``kill -9`` it once the marker exists. Returns the killed invocation's work folder (in
    ``$TMPDIR``, set beside ``tmp_path`` by the test configuration)."""
    import signal
    import time

    driver, marker = tmp_path / "driver.py", tmp_path / "marker"
    driver.write_text(driver_text)
    proc = subprocess.Popen([sys.executable, str(driver), str(marker), *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.stderr.close()
    (killed,) = Path(tmp_path.with_name(f"{tmp_path.name}-tmp")).glob("bidsapp-work-*")
    return killed


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_sidecars_true(out: Path) -> int:
    """Every sidecar describes exactly the files on disk: each listed output exists with its size and sha256."""
    n = 0
    for sidecar in out.rglob("*_timeseries.json"):
        meta = json.loads(sidecar.read_text())
        for entry in meta["OutputFiles"]:
            path = sidecar.parent / entry["Path"]
            assert path.is_file(), f"{sidecar.name} lists missing {entry['Path']}"
            assert path.stat().st_size == entry["Size"] and _sha(path) == entry["SHA256"], (
                f"{sidecar.name} does not describe {entry['Path']}")
        X = np.load(sidecar.with_name(sidecar.name.replace(".json", ".npy")), mmap_mode="r")
        assert list(X.shape) == meta["Shape"]
        n += 1
    return n


def _temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if ".tmp" in p.name]
