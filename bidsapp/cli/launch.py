"""The ``bidsapp`` command (its console script): bidsapp's signal handling starts before the heavy imports.

Python's own SIGINT handler raises ``KeyboardInterrupt`` wherever the interpreter is, so a Ctrl-C while
:mod:`bidsapp.cli.run` imported its modules (the first ~0.2 s: the options table, pybids, numpy) printed a
traceback. Here the handlers of :mod:`bidsapp.execution.interrupts` come first, after a few light imports, and a
signal at any later moment (imports, parsing, collection, workflow, report) ends the invocation with the one line
and exit code of every interrupt (128 + the signal number: 130 for SIGINT). Before this module runs, the signal is
the interpreter's: killed at once by its default action (no output, shell status 130) while Python starts, or
Python's own ``KeyboardInterrupt`` message while it reads its start-up files (``site``) or the module bodies
before :func:`main` (the console script's imports, this module's definitions: microseconds); no bidsapp code has
run then and nothing is written. This module therefore imports nothing at its top.
"""


def main() -> int:
    """Install the interrupt handlers, then import and run :func:`bidsapp.cli.run.main`; returns the exit code."""
    try:
        from bidsapp.execution import interrupts  # light: signal, contextlib and bidsapp.errors

        interrupts.install()
        from bidsapp.cli.run import main as run  # the heavy imports, under bidsapp's handlers

        return run()  # handles every signal from its first safe point on
    except KeyboardInterrupt:  # Python's handler, in the few light imports above
        return _stopped(2)  # SIGINT
    except BaseException as exc:
        if type(exc).__name__ != "Interrupted":  # bidsapp.errors.Interrupted, raised before run() handles it
            raise
        return _stopped(exc.signum)


def console() -> None:
    """The ``bidsapp`` console script: :func:`main`, then :func:`end_process` with its exit code."""
    end_process(main())


def end_process(code: int | None) -> None:
    """Exit with ``code`` after what Python's own exit does that anyone can see, without its teardown.

    Non-daemon threads are joined and the ``atexit`` callbacks run (logging's handlers flushed and closed,
    multiprocessing's and nipype's workers joined, ``weakref.finalize`` callbacks), then the standard streams
    are flushed and the process ends (``os._exit``). What is skipped is the interpreter's finalization: every
    module's objects freed one by one, 0.3-0.7 s after a run with nipype, pybids and SQLAlchemy loaded, which
    writes nothing. Every file bidsapp writes is closed (and renamed into place) before :func:`main` returns.
    A failed flush of ``stdout`` ends with 120, as Python does.

    Only in a process started as the command itself (:func:`started_as_command`); under a wrapper that runs
    the command and expects control back (``python -m cProfile``, ``pdb``, ``trace``, ``python -i``, a
    ``runpy`` caller), ``SystemExit(code)`` as usual.
    """
    import atexit
    import os
    import sys
    import threading

    code = 0 if code is None else int(code)
    if not started_as_command():
        sys.exit(code)
    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter calls first at exit
    if shutdown is not None:
        shutdown()
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is None:  # pragma: no cover - every CPython has it; else the plain exit
        sys.exit(code)
    run_exitfuncs()
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError):
        code = code or 120
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


#: interpreter options followed by a separate argument (``-X importtime``, ``-W ignore``)
_OPTIONS_WITH_ARGUMENT = ("-X", "-W", "--check-hash-based-pycs")


def started_as_command(orig_argv: list[str] | None = None) -> bool:
    """Whether the interpreter's own command line (``sys.orig_argv``) runs bidsapp directly: the ``bidsapp``
    console script (``python .../bin/bidsapp``, its path being ``sys.argv[0]``) or ``python -m
    bidsapp.cli.run``, after any interpreter options, without ``-i``. Anything else (another ``-m`` module, a
    ``-c`` string, an unknown form) is a caller that may expect control back: False."""
    import sys

    argv = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)[1:]
    if sys.flags.inspect:
        return False
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] not in ("-m", "-c", "-"):
        i += 2 if argv[i] in _OPTIONS_WITH_ARGUMENT else 1
    rest = argv[i:]
    return rest[:2] == ["-m", "bidsapp.cli.run"] or (bool(rest) and rest[0] == sys.argv[0]
                                                       and not rest[0].startswith("-"))


def _stopped(signum: int) -> int:
    """Ignore further signals (the process is ending), print the one line, return 128 + ``signum``."""
    import signal
    import sys

    for other in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    from bidsapp.execution.interrupts import interrupted_line, quiet_exit

    print(interrupted_line(signum), file=sys.stderr)
    quiet_exit()  # the at-exit callbacks of a module whose import the signal cut short may fail: no traceback
    return 128 + int(signum)
