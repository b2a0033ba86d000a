"""Running the workflow: a MultiProc whose workers die with the main process, one-line warnings."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

from nipype.pipeline.plugins.multiproc import MultiProcPlugin, process_initializer

_PR_SET_PDEATHSIG = 1


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """One line per warning, said by bidsapp (not Python's two lines pointing into nipype)."""
    return f"bidsapp: warning: {message}\n"


def install_warning_format() -> None:
    """Print every warning as one ``bidsapp: warning: ...`` line (main process and workers)."""
    warnings.formatwarning = _format_warning


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
    parent = os.getppid()
    if main is not None and parent != main:  # the main process died before prctl
        os._exit(1)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    install_warning_format()


class OrphanSafeMultiProc(MultiProcPlugin):
    """nipype's MultiProc plugin whose worker processes exit when the main process dies.

    nipype's own workers block on their task queue forever after a ``kill -9`` of the main
    process. Ours ask the kernel for SIGKILL on parent death (``PR_SET_PDEATHSIG``) and also
    watch their parent, so no signal leaves orphans.
    """

    def __init__(self, plugin_args=None):
        super().__init__(plugin_args=plugin_args)
        self.pool.shutdown(wait=False)  # nipype's pool has started no process yet
        context = mp.get_context(self.plugin_args.get("mp_context"))
        main = os.getpid() if context.get_start_method() == "fork" else None
        self.pool = ProcessPoolExecutor(max_workers=self.processors, initializer=worker_initializer,
                                        initargs=(self._cwd, main), mp_context=context)
