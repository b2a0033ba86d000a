"""Concurrent invocations, work folders, kills and signals: real commands in subprocesses, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bidsapp.cli.run import main
from tests.reliability.helpers import STEM, SUB1, _cli, _popen, _sha, _temporaries, assert_sidecars_true


def test_concurrent_invocations_same_participant(data, tmp_path):
    """Several invocations for the same participant at once never crash nor corrupt; their logs differ."""
    bids, ref = data
    out = tmp_path / "o"
    procs = [_popen(bids, out, "participant", "--participant-label", "01", "--nprocs", "1") for _ in range(2)]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    assert all(code == 0 for code, _ in results), [err for _, (_, err) in results]
    assert assert_sidecars_true(out) == 2
    assert len(list((out / "logs").glob("settings-*.json"))) == 2
    assert _sha(out / SUB1 / f"{STEM}_timeseries.npy") == _sha(ref / SUB1 / f"{STEM}_timeseries.npy")
    assert _temporaries(out) == []


def test_shared_work_dir_is_refused_not_corrupted(data, tmp_path):
    """A --work-dir in use by another invocation is exit 2 with the fix."""
    bids, _ = data
    work = tmp_path / "w"
    first = _popen(bids, tmp_path / "o1", "participant", "--participant-label", "01", "--work-dir", work)
    deadline = time.time() + 30
    while not (work / ".bidsapp.lock").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    second = _cli(bids, tmp_path / "o2", "participant", "--participant-label", "01", "--work-dir", work)
    first.send_signal(signal.SIGTERM)  # its own outcome is tested elsewhere
    first.communicate(timeout=60)
    if second.returncode != 0:  # the first may already be done on a fast machine
        assert second.returncode == 2 and "in use by another bidsapp invocation" in second.stderr


def test_default_work_folder_is_private_and_removed(data, tmp_path, monkeypatch):
    """Without --work-dir, work happens in a per-invocation temporary folder, removed on success;
    StartedAt/DurationSeconds are the run's own."""
    import tempfile

    bids, _ = data
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    out = tmp_path / "o"
    t0 = time.time()
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--plugin", "Linear"]) == 0
    total = time.time() - t0
    assert list(tmp.iterdir()) == [] and not (out / "logs" / "work").exists()
    metas = [json.loads(p.read_text()) for p in sorted(out.rglob("*_timeseries.json"))]
    assert metas[0]["StartedAt"] != metas[1]["StartedAt"]
    assert all(0 < m["DurationSeconds"] < total for m in metas)


def test_kill_9_of_main_process_leaves_no_worker(data, tmp_path):
    """MultiProc workers exit when the main process is killed."""
    psutil = pytest.importorskip("psutil")
    bids, _ = data
    proc = _popen(bids, tmp_path / "o", "participant", "--nprocs", "2", "--high-pass", "0.01")
    main_proc = psutil.Process(proc.pid)
    deadline, workers = time.time() + 60, []
    while time.time() < deadline and len(workers) < 2:
        workers = main_proc.children(recursive=True)
        time.sleep(0.05)
    assert workers, "no MultiProc worker started"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"orphaned workers: {alive}"


def test_work_dir_resume_after_kill(data, tmp_path):
    """README: with --work-dir an interrupted invocation resumes (the killed one's lock is released)."""
    bids, ref = data
    work, out = tmp_path / "w", tmp_path / "o"
    proc = _popen(bids, out, "participant", "--participant-label", "01", "--work-dir", work, "--nprocs", "1")
    deadline = time.time() + 60
    while not list(work.rglob("result_masking.pklz")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = _cli(bids, out, "participant", "--participant-label", "01", "--work-dir", work, "--nprocs", "1")
    assert done.returncode == 0, done.stderr
    assert assert_sidecars_true(out) == 2
    assert _sha(out / SUB1 / f"{STEM}_timeseries.npy") == _sha(ref / SUB1 / f"{STEM}_timeseries.npy")
    assert work.is_dir()  # a given --work-dir is kept


def test_cluster_plugins_need_a_shared_work_dir(data, tmp_path, capsys):
    """README: SLURM & co. run nodes elsewhere: without --work-dir it is exit 2 with the fix."""
    bids, _ = data
    assert main([str(bids), str(tmp_path / "o"), "participant", "--participant-label", "01",
                 "--plugin", "SLURM"]) == 2
    assert "--work-dir" in capsys.readouterr().err


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_is_one_line_naming_the_kept_work_folder(data, tmp_path, signum, code):
    bids, _ = data
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "bidsapp.cli.run", str(bids), str(tmp_path / "o"),
                             "participant", "--high-pass", "0.01"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while not list((tmp_path / "tmp").glob("bidsapp-work-*/bidsapp_wf")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == code, err
    assert len(lines) == 1 and lines[0].startswith("bidsapp: interrupted by") and "work folder kept: " in lines[0]
    kept = Path(lines[0].split("work folder kept: ")[1].rstrip("."))
    assert (kept / "KEPT").exists()
    assert_sidecars_true(tmp_path / "o")


def test_stale_work_folders_are_removed(tmp_path):
    from bidsapp.execution import workdir

    now = time.time()
    dead, failed, old_failed, young, busy = (tmp_path / f"bidsapp-work-{n}" for n in range(5))
    for f in (dead, failed, old_failed, young, busy):
        f.mkdir()
    (failed / "KEPT").write_text("x")
    (old_failed / "KEPT").write_text("x")
    os.utime(old_failed / "KEPT", (now - 8 * 86400, now - 8 * 86400))
    for f in (dead, failed, old_failed, busy):
        os.utime(f, (now - 3600, now - 3600))
    with workdir._hold(busy):
        removed = workdir.remove_stale(tmp_path, now=now)
    assert sorted(removed) == sorted([dead, old_failed])
    assert failed.exists() and young.exists() and busy.exists()


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_to_the_whole_process_group_is_one_line(data, tmp_path, signum, code):
    """Ctrl-C in a terminal and scancel signal every process of the group: workers must stay quiet."""
    bids, _ = data
    proc = subprocess.Popen([sys.executable, "-m", "bidsapp.cli.run", str(bids), str(tmp_path / "o"),
                             "participant", "--high-pass", "0.01", "--nprocs", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    psutil = pytest.importorskip("psutil")
    deadline = time.time() + 60
    while len(psutil.Process(proc.pid).children()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.4)  # the workers run nodes: the whole run takes about 1 s after they start
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == code and len(lines) == 1 and lines[0].startswith("bidsapp: interrupted"), err
