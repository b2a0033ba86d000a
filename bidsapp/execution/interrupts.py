"""Signals that stop an invocation (SIGINT, SIGTERM, SIGHUP): recorded at once, never lost.

Python runs a signal handler between two bytecodes of the main thread, wherever it happens to be. An exception
raised there is *ignored* (printed as "Exception ignored in ...") when that place is an at-fork callback (logging
runs one each time a MultiProc worker is forked), a ``__del__`` method or a weakref callback; a handler that only
raised would then lose the interrupt and the run would go on, maybe to exit 0. So the handler first records the
signal, and:

- raises :class:`~bidsapp.errors.Interrupted` at once, unless the main thread is inside :func:`deferred` (worker
  forks, creating or removing the work folder); there it is raised when the zone ends;
- an ``Interrupted`` that Python ignored is seen by :data:`sys.unraisablehook` (no traceback is printed) and
  raised again by the next signal or at the next safe point: :func:`check`, called by the workflow loop, the
  progress callback, after the workflow and before the command returns.

The first signal decides the exit code; later ones are recorded only, so they cannot cut the clean-up short
(killing the workers, the work folder's ``KEPT`` note, the one line).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator

from bidsapp.errors import Interrupted

#: the signals that stop an invocation (exit code 128 + signal number)
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _State:
    """This process's interrupt: the first signal received, whether it was raised, the deferral depth."""

    signum: int | None = None
    raised = False
    deferring = 0


_state = _State()


def on_signal(signum: int, frame: object) -> None:
    """The handler of :data:`HANDLED`: record the signal; raise it unless deferred or already raised."""
    if _state.signum is None:
        _state.signum = signum
    if _state.deferring or _state.raised:
        return
    _state.raised = True
    raise Interrupted(_state.signum)


def pending() -> int | None:
    """The signal received since :func:`install` (None when none)."""
    return _state.signum


def check() -> None:
    """A safe point of the main thread: raise the received signal as ``Interrupted`` (nothing when none or
    inside :func:`deferred`)."""
    if _state.signum is not None and not _state.deferring:
        _state.raised = True
        raise Interrupted(_state.signum)


def finish() -> None:
    """The last safe point of an invocation: raise the received signal, then only record signals."""
    check()
    _state.deferring += 1


@contextlib.contextmanager
def deferred(block: bool = False) -> Iterator[None]:
    """Signals received inside are recorded and raised when the block ends normally.

    ``block=True`` also blocks :data:`HANDLED` at the OS level in this thread while inside: processes forked
    there (and threads started there) start with them blocked, so a signal to the process group cannot run the
    parent's handler in a worker before the worker installs its own (:func:`unblock` does it then).
    """
    _state.deferring += 1
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED) if block else None
    try:
        yield
    finally:
        if old_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        _state.deferring -= 1
    check()


@contextlib.contextmanager
def allowed() -> Iterator[None]:
    """Inside a :func:`deferred` block: signals raise at once again (the long work in the middle)."""
    saved = _state.deferring
    _state.deferring = 0
    try:
        yield
        check()
    finally:
        _state.deferring = saved


def unblock() -> None:
    """Undo the OS-level blocking inherited from :func:`deferred` (in a worker, after its own handlers)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)


def _quiet_hook(previous: Callable) -> Callable:
    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, Interrupted):  # ignored by Python: raised again at the next safe point
            _state.raised = False
            return
        previous(unraisable)

    return hook


def interrupted_line(signum: int, work: object = None) -> str:
    """The one line of an interrupted invocation (``work``: the work folder kept, if any)."""
    return (f"bidsapp: interrupted by {signal.Signals(signum).name}; runs that did not finish have no sidecar and "
            "will be recomputed by the next invocation" + (f"; work folder kept: {work}" if work else "") + ".")


def quiet_exit() -> None:
    """The process exits next, after its interrupt's one line: drop what Python reports as ignored from now on.

    A signal that cut a module's import short leaves that module's ``atexit`` callbacks registered (nipype's
    ``free_display`` re-imports nipype, which fails on the half-imported ``asyncio``); their "Exception ignored in
    atexit callback" tracebacks would follow, and bury, the one line. Only for a process that is ending.
    """
    sys.unraisablehook = lambda unraisable: None


def install() -> Callable[[bool], int | None]:
    """Install :func:`on_signal` for :data:`HANDLED` (main thread only) and forget any earlier signal, unless
    :func:`on_signal` is already installed (the ``bidsapp`` command installs it before its heavy imports,
    :mod:`bidsapp.cli.launch`): then a signal it recorded stays pending, for the caller's :func:`check`.

    Returns ``restore(handlers)``: it puts back ``sys.unraisablehook`` and, when ``handlers`` is true, the previous
    signal handlers; otherwise (a process about to exit with its code decided) it ignores :data:`HANDLED`, so a
    late signal changes neither the code nor the one line (Python's own finalization would put back the default
    handlers, which kill the process). It returns the signal received since :func:`install` (None when none)
    and forgets it, so that no later :func:`check` in this process raises it again.
    """
    if signal.getsignal(signal.SIGINT) is not on_signal:
        _state.signum, _state.raised = None, False
    _state.deferring = 0
    previous = {signum: signal.signal(signum, on_signal) for signum in HANDLED}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_hook(previous_hook)

    def restore(handlers: bool = True) -> int | None:
        _state.deferring += 1
        for signum, handler in previous.items():
            signal.signal(signum, handler if handlers else signal.SIG_IGN)
        sys.unraisablehook = previous_hook
        received, _state.signum, _state.raised = _state.signum, None, False
        return received

    return restore
