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
    """Two ``main([...])`` calls in threads, the second started while the first's workflow runs, with relative
    paths: both succeed, the workflows never overlap, the second's outputs are where its relative path says
    from the caller's folder, and the caller's folder and collector are as they were. (nipype's engine changes
    the process's working folder for each node: interleaved, one call once left the process inside the other's
    removed work folder, and a relative path resolved from the other's node folder.)"""
    import nipype.pipeline.engine as pe

    monkeypatch.chdir(bids)
    running, overlap, real_run = [0], [0], pe.Workflow.run

    def wf_run(self, *args, **kwargs):
        running[0] += 1
        overlap[0] = max(overlap[0], running[0])
        try:
            return real_run(self, *args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(pe.Workflow, "run", wf_run)
    codes = {}
    relative = ["bids", "out-relative", "participant", "--participant-label", "02", "--run", "1", "--plugin",
                "Linear", "--denoise", "none"]
    first = threading.Thread(target=lambda: codes.__setitem__("01", run.main(_args(bids, "01"))))
    second = threading.Thread(target=lambda: codes.__setitem__("02", run.main(relative)))
    first.start()
    while first.is_alive() and os.getcwd() == str(bids):  # until the first call's engine is in a node's folder
        time.sleep(0.0005)
    second.start()
    for t in (first, second):
        t.join()
    assert codes == {"01": 0, "02": 0}
    assert overlap[0] == 1
    assert os.getcwd() == str(bids)
    assert list((bids / "out-relative").glob("sub-02/**/*_timeseries.npy")), \
        sorted(p.name for p in (bids / "out-relative").rglob("*"))[:20]
    assert gc.isenabled()


@pytest.fixture
def in_a_removed_folder(tmp_path, monkeypatch):
    """The process's working folder is a folder that was removed (put back to ``tmp_path`` after the test;
    monkeypatch then restores the original one)."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    yield
    os.chdir(tmp_path)


def test_a_removed_working_folder_is_one_line(tmp_path, in_a_removed_folder, capsys):
    code = run.main([str(tmp_path / "bids"), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "the current working folder no longer exists" in err, err


def test_help_and_version_need_no_working_folder(in_a_removed_folder, capsys):
    codes = [run.main(["--version"]), run.main(["--help"])]
    assert codes == [0, 0]
    assert "bidsapp" in capsys.readouterr().out


def test_a_call_inside_a_call_of_the_same_thread_does_not_wait_forever():
    """(a red team's finding: with a plain lock, a call made from inside another, e.g. by code a node runs, hung)"""
    codes = []

    def nested():
        with run._one_call_at_a_time():
            codes.append(run.main(["--version"]))

    t = threading.Thread(target=nested, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive() and codes == [0]


def test_an_exit_called_during_the_run_is_not_a_success(bids, monkeypatch, capsys):
    """A ``SystemExit`` raised once the options are read (here where the run is planned; a library a node calls
    under the in-process plugin raises it the same way) was taken for argparse's and returned its code:
    ``sys.exit(0)`` inside a run gave 0, the run unfinished (a red team's finding)."""
    def exits(*args, **kwargs):
        raise SystemExit(0)

    monkeypatch.setattr(run, "participant", exits)
    assert run.main(_args(bids)) == 1
    assert "stopped by a call to exit" in capsys.readouterr().err
    assert run.main(["--version"]) == 0
    assert run.main([str(bids), str(bids / "o"), "participant", "--no-such-option"]) == 2
