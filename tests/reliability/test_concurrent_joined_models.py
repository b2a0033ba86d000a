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
release, workflow = pathlib.Path(sys.argv[1]), run._run_workflow
def held(*args, **kwargs):
    print("[test] planned", flush=True)
    while not release.exists():
        time.sleep(0.05)
    return workflow(*args, **kwargs)
run._run_workflow = held
sys.exit(run.main(sys.argv[2:]))
"""


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
    first = subprocess.Popen([sys.executable, "-c", HELD, str(release), str(bids), str(out), *options, "--run", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "[test] planned" in _lines_until(first, "[test] planned")
        second = _popen(bids, out, *options, "--run", "2")
        said = _lines_until(second, "waiting")
    finally:
        release.touch()
    outputs = [(p.wait(timeout=300), *p.communicate()) for p in (first, second)]
    assert [code for code, _, _ in outputs] == [0, 0], [err[-800:] for _, _, err in outputs]
    said += outputs[1][1]
    assert "waiting  sub-01 task-faces: another bidsapp invocation is fitting its joined trial model" in said, said
    assert "with     sub-01_task-faces_run-1" in said, said  # planned after the first wrote run 1
    for sidecar in sorted(out.glob("sub-01/func/*_timeseries.json")):
        runs = json.loads(sidecar.read_text())["Trials"]["TrialModelRuns"]
        assert sorted(runs) == ["sub-01_task-faces_run-1", "sub-01_task-faces_run-2"], (sidecar.name, runs)
    both = _cli(bids, tmp_path / "both", *options, timeout=300)  # the two runs in one invocation: the same model
    assert both.returncode == 0, both.stderr[-800:]
    np.testing.assert_allclose(bidsapp.dataset(out, kind="betas", subject="01").X,  # refused: two run sets
                               bidsapp.dataset(tmp_path / "both", kind="betas", subject="01").X, rtol=1e-5, atol=1e-6)
