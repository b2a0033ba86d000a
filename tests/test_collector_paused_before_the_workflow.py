"""The ``bidsapp`` command pauses Python's cyclic garbage collector while it imports its modules and plans its
runs, freezes the long-lived objects when the workflow starts and collects during it. An in-process caller of
``main([...])`` (any thread, objects it froze itself) finds its collector untouched (a red team's findings: the
freeze count dropped to 0, and two concurrent calls could leave the collector off)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from bidsapp import demo
from bidsapp.cli import run

COMMAND = """
import gc, json, sys
import nipype.pipeline.engine as pe
from bidsapp.cli import run
seen = {}
real_participant, real_run = run.participant, pe.Workflow.run
def participant(s):
    seen["planning"] = gc.isenabled()
    return real_participant(s)
def wf_run(self, *args, **kwargs):
    seen["workflow"], seen["frozen"] = gc.isenabled(), gc.get_freeze_count()
    return real_run(self, *args, **kwargs)
run.participant, pe.Workflow.run = participant, wf_run
sys.argv = ["bidsapp", *sys.argv[1:]]
seen["code"] = run.main()
seen["after"], seen["frozen_after"] = gc.isenabled(), gc.get_freeze_count()
print(json.dumps(seen))
"""


def _args(tmp_path, label: str = "01") -> list[str]:
    return [str(tmp_path / "bids"), str(tmp_path / f"out{label}"), "participant", "--participant-label", label,
            "--run", "1", "--plugin", "Linear", "--denoise", "none"]


@pytest.fixture
def bids(tmp_path):
    demo.make_dataset(tmp_path / "bids", n_volumes=40)
    return tmp_path


def test_the_command_pauses_then_freezes_and_collects(bids):
    proc = subprocess.run([sys.executable, "-c", COMMAND, *_args(bids)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["code"] == 0
    assert seen["planning"] is False
    assert seen["workflow"] is True and seen["frozen"] > 10_000  # the modules, settings and workflow
    assert seen["after"] is True and seen["frozen_after"] == 0


@pytest.mark.parametrize("enabled", [True, False])
def test_an_in_process_caller_keeps_its_collector(bids, monkeypatch, enabled):
    seen = []
    real = run.participant
    monkeypatch.setattr(run, "participant", lambda s: (seen.append(gc.isenabled()), real(s))[1])
    gc.collect()
    gc.freeze()  # the caller's own frozen objects
    frozen = gc.get_freeze_count()
    (gc.enable if enabled else gc.disable)()
    try:
        assert run.main(_args(bids)) == 0
        after, frozen_after = gc.isenabled(), gc.get_freeze_count()
    finally:
        gc.unfreeze()
        gc.enable()
    assert seen == [enabled] and after is enabled
    assert frozen_after > 0.9 * frozen  # still frozen (some of those objects were freed meanwhile)


def test_concurrent_in_process_calls_leave_the_collector_on(bids, monkeypatch):
    """Two ``main([...])`` calls in threads: the collector is on after both, their workflows ran one at a time
    (nipype's engine changes the process's working folder for each node: interleaved, one call once left the
    process inside the other's removed work folder), and the working folder is the one they were given."""
    import nipype.pipeline.engine as pe

    running, overlap, real_run = [0], [0], pe.Workflow.run

    def wf_run(self, *args, **kwargs):
        running[0] += 1
        overlap[0] = max(overlap[0], running[0])
        try:
            time.sleep(0.2)  # the other call reaches its workflow meanwhile
            return real_run(self, *args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(pe.Workflow, "run", wf_run)
    cwd, codes = os.getcwd(), {}
    labels = ("01", "02")
    threads = [threading.Thread(target=lambda k=k: codes.__setitem__(k, run.main(_args(bids, k)))) for k in labels]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == {"01": 0, "02": 0}
    assert overlap[0] == 1
    assert os.getcwd() == cwd
    assert gc.isenabled()
