"""Running the workflow: a MultiProc whose workers die with the main process, one-line warnings."""

from __future__ import annotations

import ctypes
import gc
import multiprocessing as mp
import os
import pwd
import signal
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from nipype.pipeline.plugins.multiproc import MultiProcPlugin, process_initializer, run_node

from bidsapp.execution import interrupts
from bidsapp.messages import install_warning_format

_PR_SET_PDEATHSIG = 1


def ensure_logname() -> None:
    """Set ``$LOGNAME`` when it is unset or empty, from the user database (else the numeric uid).

    nipype's batch plugins (SLURM, SGE, PBS, LSF, Condor) name every job after ``os.environ["LOGNAME"]``
    and die with ``KeyError: 'LOGNAME'`` where no login shell set it: containers, CI, cron.
    """
    if os.environ.get("LOGNAME"):
        return
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid without a passwd entry (e.g. a container run with -u)
        name = str(os.getuid())
    os.environ["LOGNAME"] = name


def _exit_with(parent: int) -> None:
    """Watch the parent process; exit at once when it is gone (whatever killed it)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def worker_initializer(cwd: str, main: int | None) -> None:
    """Set up a MultiProc worker: nipype's set-up, die with the parent, one-line warnings.

    ``main`` is the main process id when workers are forked from it (then a different parent
    means it already died); with other start methods the parent is a fork server that exits
    with the main process.
    """
    process_initializer(cwd)
    try:  # Linux: the kernel kills us when the parent dies
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - non-Linux: the watcher thread does it
        pass
    # a signal to the whole process group (Ctrl-C, scancel) is answered by the main process alone: workers
    # ignore SIGINT and die silently on SIGTERM / SIGHUP instead of running the main process's handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    interrupts.unblock()  # forked inside interrupts.deferred(block=True): blocked until the lines above
    parent = os.getppid()
    if main is not None and parent != main:  # the main process died before prctl
        os._exit(1)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    install_warning_format()


class OrphanSafeMultiProc(MultiProcPlugin):
    """nipype's MultiProc plugin whose workers exit with the main process and whose failures are seen.

    - nipype's own workers block on their task queue forever after a ``kill -9`` of the main
      process. Ours ask the kernel for SIGKILL on parent death (``PR_SET_PDEATHSIG``) and also
      watch their parent, so no signal leaves orphans.
    - When a node cannot even write its result file (a full work disk), nipype's worker raises
      out of its error handler, the task is never marked done and the run hangs forever. Here
      such a task is reported as failed with its traceback.
    - Workers are forked with the interrupt signals deferred (:mod:`bidsapp.execution.interrupts`): a signal during a
      fork is raised after it, not lost in an at-fork callback; each loop of the scheduler is a safe point.
    - nipype's scheduler sleeps its whole poll interval (``poll_sleep_duration``) every loop, so each node's end
      was seen up to that late (0.2 s per node of a run's chain, more than the small nodes take). Here the loop
      waits for at most that interval and wakes as soon as a node ends (in a worker, in this process, or from
      the cache): the next node starts at once, and an idle loop still costs nothing.
    - nipype runs ``gc.collect()`` before each submission, which scanned every object of the loaded libraries
      (~0.07 s of CPU each time). The objects that exist when the workflow starts are frozen (``gc.freeze``),
      so each collection only scans what the run created; forked workers share those pages untouched.
    """

    def __init__(self, plugin_args=None):
        super().__init__(plugin_args=plugin_args)
        self.pool.shutdown(wait=False)  # nipype's pool has started no process yet
        context = mp.get_context(self.plugin_args.get("mp_context"))
        main = os.getpid() if context.get_start_method() == "fork" else None
        self.pool = ProcessPoolExecutor(max_workers=self.processors, initializer=worker_initializer,
                                        initargs=(self._cwd, main), mp_context=context)
        self._progress = threading.Event()  # set when a node ends: the scheduler's loop goes on at once
        self._poll = 0.0  # seconds the loop waits for a node to end (the workflow's poll_sleep_duration)

    def run(self, graph, config, updatehash=False):
        """nipype's scheduler loop, which waits in :meth:`_send_procs_to_workers` for the next node to end
        instead of sleeping the poll interval (kept when ``max_jobs`` is set: that loop may skip the wait)."""
        if np.isinf(self.max_jobs):
            execution = dict(config["execution"])
            self._poll = float(execution.get("poll_sleep_duration", 2))
            config = {**config, "execution": {**execution, "poll_sleep_duration": 0}}
        gc.collect()
        gc.freeze()
        try:
            return super().run(graph, config, updatehash=updatehash)
        finally:
            gc.unfreeze()

    def kill_workers(self) -> None:
        """Stop every worker now (the invocation was interrupted): nothing waits for running nodes.

        The pool's manager thread is joined (it ends as soon as it sees the killed workers): left running, it
        closes its wake-up pipe while Python's exit hook writes to it (``OSError: [Errno 9]`` after the one
        line). The pool may already be shut down (a signal raised after the workflow ended).
        """
        for process in list((getattr(self.pool, "_processes", None) or {}).values()):
            process.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _submit_job(self, node, updatehash=False):
        self._taskid += 1
        if getattr(node.interface, "terminal_output", "") == "stream":
            node.interface.terminal_output = "allatonce"
        with interrupts.deferred(block=True):  # the pool may fork workers here
            future = self.pool.submit(run_node, node, updatehash, self._taskid)
        future.bidsapp_taskid = self._taskid
        self._task_obj[self._taskid] = future
        future.add_done_callback(self._async_callback)
        return self._taskid

    def _send_procs_to_workers(self, updatehash=False, graph=None):
        interrupts.check()  # once per scheduler loop: a signal whose exception Python ignored is raised here
        super()._send_procs_to_workers(updatehash=updatehash, graph=graph)
        if self._poll > 0:
            # a node that ended before this point has its result stored already: the next loop collects it; one
            # that ends during the wait sets the event. Cleared after: a set between the wait and the clear
            # belongs to a result that is stored, so the loop that follows sees it.
            self._progress.wait(self._poll)
            self._progress.clear()

    def _task_finished_cb(self, jobid, cached=False):
        super()._task_finished_cb(jobid, cached=cached)
        self._progress.set()  # a node ended (result collected, run in this process, or cached): loop again

    def _async_callback(self, args):
        try:
            result = args.result()
        except BaseException as exc:  # the worker failed outside the node: report, do not hang
            result = {"result": None, "taskid": args.bidsapp_taskid,
                      "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__)}
        self._taskresult[result["taskid"]] = result
        self._progress.set()
