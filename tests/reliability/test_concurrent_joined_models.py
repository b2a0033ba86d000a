"""Two invocations at once with ``--run 1`` and ``--run 2`` and a joined trial model: the second waits for the
first and fits its model on both runs, as one after the other would; never two one-run models in one folder.

The first invocation is held after planning (before its workflow writes anything) until the second has either
said it waits or ended: without the model lock the second plans run 2 alone while run 1 has no outputs yet.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

import bidsapp

from .helpers import _cli, _popen

HELD = r"""
import pathlib, sys, time
import bidsapp.cli.run as run
from bidsapp.errors import InputError
release, name, refuse = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "refuse"
inner = getattr(run, name)
def held(*args, **kwargs):
    print(f"[test] at {name}", flush=True)
    while not release.exists():
        time.sleep(0.05)
    if refuse:
        raise InputError("refused by the test", code=2)
    return inner(*args, **kwargs)
setattr(run, name, held)
sys.exit(run.main(sys.argv[4:]))
"""


def _held(release, name: str, then: str, *args) -> subprocess.Popen:
    """bidsapp, stopped when it calls ``bidsapp.cli.run.<name>`` (it prints ``[test] at <name>``) until ``release``
    exists; then it goes on (``then="go"``) or is refused there (``then="refuse"``, exit 2)."""
    return subprocess.Popen([sys.executable, "-c", HELD, str(release), name, then, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lines_until(proc: subprocess.Popen, text: str) -> str:
    """What ``proc`` printed until a line containing ``text`` (or until it ended)."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            break
    return "".join(seen)


def test_a_second_invocation_waits_and_joins_the_first_ones_run(data, tmp_path):
    bids, _ = data
    out, release = tmp_path / "o", tmp_path / "release"
    options = ["participant", "--participant-label", "01", "--nprocs", "1", "--trial-estimates", "optimized"]
    first = _held(release, "_run_workflow", "go", bids, out, *options, "--run", "1")
    try:
        assert "[test] at _run_workflow" in _lines_until(first, "[test] at")
        second = _popen(bids, out, *options, "--run", "2")
        said = _lines_until(second, "waiting")
    finally:
        release.touch()
    outputs = [(p.wait(timeout=300), *p.communicate()) for p in (first, second)]
    assert [code for code, _, _ in outputs] == [0, 0], [err[-800:] for _, _, err in outputs]
    said += outputs[1][1]
    assert "waiting  sub-01 task-faces: another bidsapp invocation is fitting its joined trial model" in said, said
    assert f"(invocation {first.pid}" not in said and f", process {first.pid})" in said, said  # who holds it
    assert "with     sub-01_task-faces_run-1" in said, said  # planned after the first wrote run 1
    for sidecar in sorted(out.glob("sub-01/func/*_timeseries.json")):
        runs = json.loads(sidecar.read_text())["Trials"]["TrialModelRuns"]
        assert sorted(runs) == ["sub-01_task-faces_run-1", "sub-01_task-faces_run-2"], (sidecar.name, runs)
    both = _cli(bids, tmp_path / "both", *options, timeout=300)  # the two runs in one invocation: the same model
    assert both.returncode == 0, both.stderr[-800:]
    np.testing.assert_allclose(bidsapp.dataset(out, kind="betas", subject="01").X,  # refused: two run sets
                               bidsapp.dataset(tmp_path / "both", kind="betas", subject="01").X, rtol=1e-5, atol=1e-6)


def test_a_refused_invocation_leaves_the_folder_it_created_to_the_one_waiting_there(data, tmp_path):
    """The first invocation creates the output folder and takes the model's lock; the second waits there; the first
    is then refused (exit 2). The folder, the lock file the second waits on included, stays: a third invocation
    still waits for the second, which fits the model alone, and the folder is a complete output folder."""
    bids, _ = data
    out, release_first, release_second = tmp_path / "o", tmp_path / "r1", tmp_path / "r2"
    options = ["participant", "--participant-label", "01", "--nprocs", "1", "--trial-estimates", "optimized"]
    first = _held(release_first, "left_out_mates", "refuse", bids, out, *options, "--run", "1")
    second = third = None
    try:
        assert "[test] at left_out_mates" in _lines_until(first, "[test] at")
        second = _held(release_second, "_run_workflow", "go", bids, out, *options)
        assert "waiting" in _lines_until(second, "waiting")
        release_first.touch()
        assert first.wait(timeout=60) == 2
        assert "[test] at _run_workflow" in _lines_until(second, "[test] at")
        third = _popen(bids, out, *options, "--run", "2")
        said = _lines_until(third, "waiting")
    finally:
        release_first.touch()
        release_second.touch()
    outputs = [(p.wait(timeout=300), *p.communicate()) for p in (second, third)]
    assert [code for code, _, _ in outputs] == [0, 0], [err[-800:] for _, _, err in outputs]
    assert "waiting  sub-01 task-faces" in said, said + outputs[1][1]
    assert "skipped  sub-01_task-faces_run-2" in outputs[1][1]  # after the second: current
    assert (out / "dataset_description.json").is_file() and (out / ".bidsignore").is_file()
    assert len(list(out.glob("logs/settings-*.json"))) == 2  # the second's and the third's
