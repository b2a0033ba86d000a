"""A signal at any moment of a run ends in its exit code (130 / 143 / 129) and one line, never in exit 0.

Python runs a signal handler between two bytecodes of the main thread; when that is inside an at-fork callback
(logging runs one while MultiProc forks its workers), a gc callback or a ``__del__``, the handler's exception is
ignored. These tests put the signal exactly there (deterministic), and at random moments of the pool start-up
with forks made slow as on a loaded machine (a seeded sweep of several invocations).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bidsapp.demo import make_dataset
from tests.reliability.helpers import assert_sidecars_true

#: run before bidsapp's command line: signals raised inside the callbacks where Python ignores exceptions
WRAPPER = '''
import gc, os, signal, sys, time

SIG, PLACE, FORK_DELAY = int(sys.argv.pop(1)), sys.argv.pop(1), float(sys.argv.pop(1))
state = {"forked": False, "fired": False}


def in_pool_fork():
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_filename.endswith(os.path.join("concurrent", "futures", "process.py")):
            return True
        frame = frame.f_back
    return False


def fire():
    if not state["fired"]:
        state["fired"] = True
        signal.raise_signal(SIG)  # the handler runs in this callback, whose exceptions Python ignores


def after_fork_in_parent():
    if in_pool_fork():
        state["forked"] = True
        if PLACE == "fork":
            fire()
        time.sleep(FORK_DELAY)  # a slow fork, as on a loaded machine: a wider window for outside signals


def after_gc(phase, info):
    if PLACE == "gc" and state["forked"] and phase == "stop":
        fire()


os.register_at_fork(after_in_parent=after_fork_in_parent)
gc.callbacks.append(after_gc)
from bidsapp.cli.run import main

sys.exit(main())
'''


@pytest.fixture(scope="module")
def bids(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("signals") / "bids"
    make_dataset(path, n_volumes=60)
    return path


def _start(bids: Path, tmp_path: Path, signum: int, place: str, fork_delay: float = 0.0) -> subprocess.Popen:
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    return subprocess.Popen([sys.executable, str(wrapper), str(int(signum)), place, str(fork_delay), str(bids),
                             str(tmp_path / "o"), "participant", "--high-pass", "0.01", "--nprocs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).parents[1])


def _assert_interrupted(proc: subprocess.Popen, err: str, signum: int, tmp_path: Path, work_expected: bool) -> None:
    """Exit 128 + signal, one line on stderr, naming the kept work folder (with its KEPT note) when there is
    one; every sidecar written describes its files."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 128 + signum, err
    assert len(lines) == 1 and lines[0].startswith(f"bidsapp: interrupted by {signal.Signals(signum).name}"), err
    if work_expected:
        assert "work folder kept: " in lines[0], err
    if "work folder kept: " in lines[0]:
        kept = Path(lines[0].split("work folder kept: ")[1].rstrip("."))
        assert (kept / "KEPT").exists() and kept.parent == tmp_path / "tmp"
    if (tmp_path / "o").exists():
        assert_sidecars_true(tmp_path / "o")


@pytest.mark.parametrize("place, signum", [("fork", signal.SIGTERM), ("fork", signal.SIGINT),
                                           ("gc", signal.SIGHUP)])
def test_signal_inside_an_ignoring_callback_still_ends_the_run(bids, tmp_path, place, signum):
    """The signal's handler runs inside the at-fork callback of a MultiProc worker fork, or inside a gc callback
    once the pool runs: the run stops there with the documented exit code (before: exit 0, a traceback)."""
    proc = _start(bids, tmp_path, signum, place)
    _, err = proc.communicate(timeout=120)
    _assert_interrupted(proc, err, signum, tmp_path, work_expected=True)


def test_signals_at_random_moments_of_the_pool_start_up(bids, tmp_path_factory):
    """Seeded sweep: several invocations, each sent 1-3 signals at random moments of its first second of
    workflow (the pool starts there; each worker fork made 0.15 s slow, as under load)."""
    rng = random.Random(20261203)
    deadline = time.monotonic() + 30
    for case in range(5):
        if case >= 2 and time.monotonic() > deadline:  # a loaded machine: fewer cases (each one ~5-20 s)
            break
        tmp_path = tmp_path_factory.mktemp(f"sweep{case}")
        signum = rng.choice([signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
        proc = _start(bids, tmp_path, signum, "none", fork_delay=0.15)
        started = time.monotonic() + 60
        while not list((tmp_path / "tmp").glob("bidsapp-work-*/bidsapp_wf")) and time.monotonic() < started:
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.8))
        for _ in range(rng.randint(1, 3)):
            if proc.poll() is None:
                proc.send_signal(signum)
            time.sleep(rng.uniform(0.0, 0.05))
        _, err = proc.communicate(timeout=120)
        _assert_interrupted(proc, err, signum, tmp_path, work_expected=True)


def test_deferred_signal_is_raised_when_the_zone_ends_and_ignored_ones_at_the_next_check(capsys):
    """The mechanism in-process: a signal inside ``deferred`` is raised on leaving it; one whose exception Python
    ignores (here in a ``__del__``) is silent and raised by the next ``check``; a second signal while the first
    is handled is only recorded; ``restore`` gives back the handlers and forgets the signal."""
    from bidsapp.errors import Interrupted
    from bidsapp.execution import interrupts

    before = signal.getsignal(signal.SIGTERM)
    restore = interrupts.install()
    try:
        with pytest.raises(Interrupted) as raised, interrupts.deferred():
            signal.raise_signal(signal.SIGTERM)
            assert interrupts.pending() == signal.SIGTERM  # recorded, not raised inside
        assert raised.value.signum == signal.SIGTERM
        signal.raise_signal(signal.SIGINT)  # while the first is handled: recorded only, SIGTERM keeps its code
    finally:
        assert restore(handlers=True) == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before and interrupts.pending() is None

    restore = interrupts.install()
    try:  # blocked at the OS level inside (forks start with it blocked): delivered and raised on leaving
        with pytest.raises(Interrupted) as raised, interrupts.deferred(block=True):
            signal.raise_signal(signal.SIGTERM)
            assert interrupts.pending() is None
        assert raised.value.signum == signal.SIGTERM
    finally:
        restore(handlers=True)

    class RaisesInDel:
        def __del__(self):
            signal.raise_signal(signal.SIGHUP)

    restore = interrupts.install()
    try:
        RaisesInDel()  # the handler's Interrupted is raised in __del__, where Python ignores it
        with pytest.raises(Interrupted) as raised:
            interrupts.check()
        assert raised.value.signum == signal.SIGHUP
    finally:
        restore(handlers=True)
    assert "Exception ignored" not in capsys.readouterr().err
