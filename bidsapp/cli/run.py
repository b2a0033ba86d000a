"""``bidsapp`` entry point: parse, collect, build the workflow, run it."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import gc
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from bidsapp.bids.collect import Run, collect_runs
from bidsapp.cli.errors import DISK_ERRNOS, crash_reason, os_error_line
from bidsapp.cli.joined import (
    check_same_columns,
    mates,
    model_locks,
    trial_model_groups,
)
from bidsapp.cli.parser import parse_args
from bidsapp.cli.plan import plan_run, run_settings, warn_inapplicable
from bidsapp.cli.reuse import PULLED_IN, left_out_mates, replace_outputs, runs_to_compute
from bidsapp.errors import InputError, Interrupted, UsageError, WorkFolderBusy
from bidsapp.execution import interrupts
from bidsapp.execution.workdir import drop_other_code_cache, work_folder
from bidsapp.messages import cli_words
from bidsapp.settings import Settings

if TYPE_CHECKING:
    from bidsapp.workflows.base import RunPlan


class _Progress:
    """nipype status callback: one line per run when it starts and when it ends."""

    def __init__(self, labels: dict[str, str]):
        self.labels = labels
        self.started: dict[str, float] = {}
        self.failed: set[str] = set()  # nipype's Linear plugin also reports the skipped dependents as ended

    def __call__(self, node, status):
        from bidsapp.workflows.base import SINK_WF_SUFFIX

        interrupts.check()  # a safe point: never report a run finished after a signal
        wf = node._hierarchy.split(".")[1] if "." in node._hierarchy else node._hierarchy
        wf = wf.removesuffix(SINK_WF_SUFFIX)  # the sink's own sub-workflow (runs joined by a trial model)
        label = self.labels.get(wf)
        if label is None:
            return
        if status == "start" and wf not in self.started:
            self.started[wf] = time.monotonic()
            print(f"[bidsapp] started  {label}", flush=True)
        elif status == "end" and node.name == "derivatives" and wf not in self.failed:
            took = time.monotonic() - self.started.get(wf, time.monotonic())
            print(f"[bidsapp] finished {label} in {took:.1f} s", flush=True)
        elif status == "exception":
            self.failed.add(wf)
            print(f"[bidsapp] FAILED   {label} at node {node.name}", flush=True)


def _invocation_id() -> str:
    """Unique name of this invocation: UTC time, process id and a random part."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"


def _check_writable(folder: Path, *, create: bool = True) -> None:
    """Create ``folder`` and write a probe file in it, or fail naming it. Without ``create``, a folder that does
    not exist yet is not made: the probe goes in the nearest folder of its path that exists (where it would be
    made)."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file, not a folder; give a folder (new or bidsapp's) as output_dir "
                         "(or --work-dir).", code=2)
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        where = next(p for p in (folder, *folder.parents) if p.exists())
        with tempfile.NamedTemporaryFile(dir=where, prefix=".bidsapp-probe-"):
            pass
    except OSError as exc:
        raise InputError(f"{folder}: cannot write here ({exc.strerror}); choose a writable output_dir "
                         "(or --work-dir).", code=73) from exc


LOCAL_PLUGINS = ("MultiProc", "Linear")


def _plan(run: Run, s: Settings, cache_dir: Path, joined_with: list[Run], pulled: bool):
    """:func:`plan_run`; a refusal of a run that only its joined model brought in says so."""
    try:
        return plan_run(run, run_settings(run, s), cache_dir, joined_with)
    except InputError as exc:
        if not pulled:
            raise
        raise InputError(f"{exc} ({PULLED_IN.format(label=run.label, out=s.output_dir)})", code=exc.code) from None


@contextlib.contextmanager
def _removed_when_refused(folder: Path, cache_dir: Path, held: contextlib.ExitStack):
    """Make ``folder`` (:func:`_check_writable`) and undo what the block wrote when it raises (a run refused before
    it starts, e.g. ``--connectivity`` on voxels): the folders this invocation created for ``folder`` (the outermost
    one of its path that did not exist), or, in an existing folder, the checksum-cache entries, lock files and
    their folders written while planning. What another invocation may use is left: a folder or lock files this one
    created are removed only when no other invocation came into the folder meanwhile (each holds
    ``logs/locks/invocations.lock`` shared while it runs, in ``held``)."""
    folder = Path(folder).absolute()
    created = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        created = path
    locks = folder / "logs" / "locks"
    made = [cache_dir, locks, cache_dir.parent]  # innermost first
    existed = {d: d.is_dir() for d in made}
    before = {d: set(os.listdir(d)) if existed[d] else set() for d in (cache_dir, locks)}
    presence = None

    def present() -> None:  # once the folder is known to be bidsapp's (nothing of it in another dataset)
        nonlocal presence
        presence = held.enter_context(_present_in(folder))

    try:
        _check_writable(folder)
        yield present
    except BaseException:
        alone = _alone(presence)
        if created is not None and alone:
            shutil.rmtree(created, ignore_errors=True)
            raise
        for d in (cache_dir, locks) if alone else (cache_dir,):
            for name in (set(os.listdir(d)) if d.is_dir() else set()) - before[d]:
                (d / name).unlink(missing_ok=True)
        for d in made:
            if not existed[d] and d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        raise


@contextlib.contextmanager
def _present_in(folder: Path):
    """This invocation's presence in an output folder: ``logs/locks/invocations.lock`` locked shared."""
    import fcntl

    from bidsapp.outputs.transaction import open_locked

    with open_locked(folder / "logs" / "locks" / "invocations.lock", fcntl.LOCK_SH) as fh:
        yield fh


def _alone(presence) -> bool:
    """Whether no other invocation is present in the folder (``presence``: this one's, or None before it had one).
    Asked only before leaving: the shared lock may be given up in asking."""
    import fcntl

    if presence is None:
        return True
    try:
        fcntl.flock(presence, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def check_fisher_z(s: Settings) -> None:
    """``--fisher-z`` transforms correlation matrices: without one in ``--connectivity`` it would change nothing
    but the configuration hash, so it is refused (exit 2) rather than silently accepted."""
    if s.fisher_z and not {"correlation", "partial-correlation"} & set(s.connectivity or ()):
        given = " ".join(s.connectivity) if s.connectivity else "none"
        raise UsageError(f"--fisher-z transforms correlation matrices, but --connectivity is {given}; add "
                         "--connectivity correlation (or partial-correlation), or drop --fisher-z.")


def check_output_format(s: Settings) -> None:
    """The outputs must hold the rows in a format bidsapp reads back (the loader, the report, the group level):
    ``--output-format`` without one is refused (exit 2) rather than found incomplete after the run."""
    from bidsapp.outputs.writers import WRITERS

    readable = [w.option for w in WRITERS if w.read and w.option]
    if s.output_format and not set(readable) & set(s.output_format):
        raise UsageError(f"--output-format {' '.join(s.output_format)}: bidsapp.load, the report and the group "
                         f"level read a run's rows from {' or '.join(readable)}; add {readable[0]} (e.g. "
                         f"--output-format {readable[0]} {' '.join(s.output_format)}).")


def participant(s: Settings) -> int:
    from bidsapp.options import step_specs

    check_fisher_z(s)
    check_output_format(s)
    t0 = time.monotonic()
    runs = collect_runs(**step_specs(s)["collection"], need_confounds=False)
    print(f"[bidsapp] indexed {len(runs)} run(s) in {time.monotonic() - t0:.1f} s", flush=True)
    with contextlib.ExitStack() as held:  # joined models: no other invocation fits them until this one ends
        return _participant_runs(s, runs, t0, held)


def _planned(s: Settings, runs: list[Run], held: contextlib.ExitStack, invocation: str):
    """The runs to compute, their plans and the outputs ``--replace-outputs`` replaces; a refusal leaves nothing."""
    from bidsapp.outputs import dataset
    from bidsapp.outputs.checksums import ChecksumCache

    cache_dir = s.output_dir / "logs" / "checksums"
    with _removed_when_refused(s.output_dir, cache_dir, held) as present:  # a refusal leaves nothing behind
        try:
            dataset.check_output_owner(s.output_dir)
            dataset.check_dataset_links(s.output_dir, fmriprep_dir=s.fmriprep_dir, bids_dir=s.bids_dir)
        except ValueError as exc:
            raise InputError(str(exc), code=2) from None
        if s.work_dir is not None:  # made when the work starts: a refusal before leaves no folder
            _check_writable(s.work_dir, create=False)
        present()
        holder = f"invocation {invocation}, host {socket.gethostname()}, process {os.getpid()}"
        held.enter_context(model_locks(runs, s, holder))
        pulled = left_out_mates(runs, s)
        for run in pulled:
            print(f"[bidsapp] with     {run.label}: --run / --session-label leave it out, but it belongs to the "
                  "joined trial model of the selected runs and has outputs in the folder", flush=True)
        ChecksumCache(cache_dir).remove_temporaries()  # what a killed invocation left there (a folder it owns)
        todo, replaced = runs_to_compute(runs + pulled, s, cache_dir)
        warn_inapplicable(s)
        groups = trial_model_groups(todo, s)
        brought = {id(r) for r in pulled}
        plans = [_plan(r, s, cache_dir, mates(r, groups), id(r) in brought) for r in todo]
        check_same_columns(groups, s)
    return todo, plans, replaced


def _participant_runs(s: Settings, runs: list[Run], t0: float, held: contextlib.ExitStack) -> int:
    from bidsapp.outputs import dataset
    from bidsapp.workflows.base import init_bidsapp_wf

    invocation = _invocation_id()
    todo, plans, replaced = _planned(s, runs, held, invocation)
    replace_outputs(replaced, s.output_dir)
    dataset.write_dataset_description(s.output_dir, fmriprep_dir=s.fmriprep_dir, bids_dir=s.bids_dir)
    _write_invocation(s, invocation)
    if not plans:  # every run reused: only pages a killed invocation left behind its runs' outputs are written
        _write_pages(s.output_dir, _pages_behind(s.output_dir, {r.entities["subject"] for r in runs}))
        return 0
    work = s.work_dir
    try:  # signals while the work folder is made, noted KEPT or removed are raised after (never half-done)
        with interrupts.deferred(), work_folder(s.work_dir, invocation) as work, interrupts.allowed():
            drop_other_code_cache(work)  # a resumed --work-dir reuses only what this code computed
            _run_workflow(init_bidsapp_wf(plans=plans, work_dir=str(work)), s, plans, todo, invocation, work)
    except WorkFolderBusy:
        raise UsageError(f"{s.work_dir}: this --work-dir is in use by another bidsapp invocation; give each "
                         "concurrent invocation its own --work-dir.") from None
    except Interrupted as exc:
        exc.work = work if work is not None and Path(work).is_dir() else None  # not when removed after success
        raise
    except OSError as exc:
        if work is None:
            raise InputError(f"{tempfile.gettempdir()}: cannot create the work folder ({exc.strerror}); "
                             "give --work-dir on a writable disk.", code=73) from exc
        raise
    _write_pages(s.output_dir, {r.entities["subject"] for r in todo})
    print(f"[bidsapp] done: {len(plans)} run(s) in {time.monotonic() - t0:.1f} s -> {s.output_dir}", flush=True)
    return 0


def _write_pages(output_dir: Path, subjects: set[str] | list[str]) -> None:
    """The participant page of each of ``subjects``, then ``logs/CITATION.md`` and ``.bib`` (the methods text of
    every run of the folder); nothing without subjects."""
    from bidsapp.reports.html import participant_report
    from bidsapp.reports.methods import write_citation

    if not subjects:
        return
    for subject in sorted(subjects):
        try:
            participant_report(output_dir, subject)
        except OSError as exc:
            exc.filename = exc.filename or str(output_dir / f"sub-{subject}.html")
            raise
    write_citation(output_dir)


def _pages_behind(output_dir: Path, subjects: set[str]) -> list[str]:
    """The subjects whose participant page, or the folder's ``logs/CITATION.md``, is missing or older than one of
    their runs' sidecars: an invocation killed after its runs' outputs and before its pages, which a rerun that
    reuses every run would otherwise leave as they are."""
    citation = output_dir / "logs" / "CITATION.md"
    cited = citation.stat().st_mtime_ns if citation.exists() else -1
    behind = []
    for subject in sorted(subjects):
        sidecars = list((output_dir / f"sub-{subject}").rglob("*_timeseries.json"))
        if not sidecars:
            continue
        newest = max(p.stat().st_mtime_ns for p in sidecars)
        page = output_dir / f"sub-{subject}.html"
        if not page.exists() or page.stat().st_mtime_ns < newest or cited < newest:
            behind.append(subject)
    return behind


def in_process_plugin(s: Settings, n_runs: int) -> str:
    """The plugin that runs the workflow: ``--plugin``, except MultiProc with one process (``--nprocs 1``) on a
    single run, whose nodes then run one after the other in this process (nipype's Linear plugin: the same
    order and results).

    A single worker process would only add its own imports (~1 s of CPU) and memory (the 300-volume run's
    summed peak: 0.84 GB with the worker, 0.60 GB without) to the run. With several runs the worker stays:
    Linear would interleave their nodes, so that no run finished before all did and each run's ``StartedAt`` /
    ``DurationSeconds`` spanned them all.
    """
    return "Linear" if s.plugin == "MultiProc" and s.nprocs == 1 and n_runs == 1 else s.plugin


def _run_workflow(wf, s: Settings, plans: list[RunPlan], todo: list[Run], invocation: str, work: Path) -> None:
    """Run the nipype workflow; a failure becomes one line naming the run's file and the fix."""
    from bidsapp.execution.plugins import OrphanSafeMultiProc, ensure_logname

    labels = {plan.name: r.label for plan, r in zip(plans, todo)}
    plugin_args = json.loads(s.plugin_args) if s.plugin_args else {}
    plugin: object = in_process_plugin(s, len(plans))
    if s.plugin in LOCAL_PLUGINS:
        plugin_args["status_callback"] = _Progress(labels)
    else:
        ensure_logname()  # nipype's batch plugins name jobs after $LOGNAME
    if plugin == "MultiProc":
        plugin_args.setdefault("n_procs", s.nprocs)
        plugin_args.setdefault("memory_gb", s.mem_gb)
        plugin = OrphanSafeMultiProc(plugin_args=plugin_args)
    crash_dir = s.output_dir / "logs" / "crash" / invocation
    wf.config["execution"].update({"crashdump_dir": str(crash_dir), "crashfile_format": "txt",
                                   "stop_on_first_crash": False, "remove_unnecessary_outputs": False,
                                   "poll_sleep_duration": 0.2 if s.plugin in LOCAL_PLUGINS else 2})
    _collector_resumed()  # the modules and the workflow live to the end: no collection traverses them again
    try:
        wf.run(plugin=plugin, plugin_args=plugin_args)
        interrupts.check()  # a signal whose exception Python ignored during the run: the run is not a success
    except Interrupted:
        if isinstance(plugin, OrphanSafeMultiProc):
            plugin.kill_workers()
        raise
    except RuntimeError as exc:
        crash = sorted(crash_dir.glob("*.txt"))
        if not crash:
            raise InputError(f"{exc} (work folder kept: {work})", code=1) from exc
        reason, disk = crash_reason(crash[0], {plan.name: plan.inputs["bold_file"] for plan in plans})
        more = f"; {len(crash) - 1} more node(s) failed" if len(crash) > 1 else ""
        raise InputError(f"{reason} (details: {crash[0]}{more}; work folder kept: {work})",
                         code=73 if disk else 1) from exc
    except OSError as exc:
        raise InputError(os_error_line(exc, work), code=73 if exc.errno in DISK_ERRNOS else 1) from exc


def _write_invocation(s: Settings, invocation: str) -> None:
    """``logs/settings-<invocation>.json``: this invocation's command line and settings (unique name)."""
    from bidsapp.core.files import write_text

    write_text(s.output_dir / "logs" / f"settings-{invocation}.json", json.dumps(
        {"CommandLine": " ".join(sys.argv), "Settings": s.to_dict(),
         "ConfigurationHash": s.configuration_hash()}, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    """Run bidsapp; returns the exit code (0 success, 1 failure, 2 usage, 16-18/66 BIDS Apps codes, 128 + the
    signal number when interrupted: 129 SIGHUP, 130 SIGINT, 143 SIGTERM, whenever the signal arrives)."""
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    from bidsapp.messages import install_warning_format

    install_warning_format()
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        return _main(argv, verbose)
    restore = interrupts.install()
    try:
        interrupts.check()  # one received before, under the handlers the command installed first (cli.launch)
        code = _main(argv, verbose)
        interrupts.finish()  # a signal whose exception was ignored, or that came after the last safe point
    except Interrupted as exc:  # also raised while _main printed another error: the signal wins
        code = _interrupted(exc.signum, exc.work)
    except BaseException:  # pragma: no cover - _main turns every other exception into a line and a code
        restore(handlers=True)
        raise
    # the command line (argv None) exits next and ignores late signals; in-process callers get their handlers back
    late = restore(handlers=argv is not None)
    if late is not None and code != 128 + late:  # received while the handlers were being restored
        code = _interrupted(late, None)
    if argv is None and code - 128 in interrupts.HANDLED:
        interrupts.quiet_exit()
    return code


def _interrupted(signum: int, work: Path | None) -> int:
    """Print the one line of an interrupted invocation; its exit code (128 + signal number)."""
    print(interrupts.interrupted_line(signum, work), file=sys.stderr)
    return 128 + int(signum)


#: the thread whose invocation paused the cyclic garbage collector (:func:`_collector_paused`), if any
_COLLECTOR: dict[str, int | None] = {"thread": None}


@contextlib.contextmanager
def _collector_paused(active: bool):
    """Python's cyclic garbage collector paused while the modules are imported and the runs collected and
    planned: they make ~130k objects that live to the end and little garbage, and each collection of the oldest
    generation traversed them all (0.15-0.2 s of a run). :func:`_run_workflow` freezes them (``gc.freeze``)
    and resumes the collector; the planning's garbage cycles stay (about 0.5 MB, 3 MB with 80 runs).

    ``active`` only for the command itself (its process, its main thread): an in-process caller's collector
    (another thread's invocation, objects it froze) is never touched. Put back as found on exit."""
    if not active or _COLLECTOR["thread"] is not None or gc.get_freeze_count():
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    _COLLECTOR["thread"] = threading.get_ident()
    try:
        yield
    finally:
        _COLLECTOR["thread"] = None
        gc.unfreeze()
        if enabled:
            gc.enable()
        else:
            gc.disable()


def _collector_resumed() -> None:
    """The workflow starts: freeze what exists (never traversed again) and resume the collector, when this
    invocation paused it."""
    if _COLLECTOR["thread"] == threading.get_ident():
        gc.freeze()
        gc.enable()


def _level(s: Settings, verbose: bool) -> int:
    """Run the analysis level of parsed settings ``s``."""
    if not verbose:  # imported after parsing: --help and --version answer without loading nipype
        from nipype import config as nipype_config
        from nipype import logging as nipype_logging

        for key in ("workflow_level", "interface_level", "utils_level"):
            nipype_config.set("logging", key, "CRITICAL")
        nipype_logging.update_logging(nipype_config)
    warn_other_level(s)
    if s.analysis_level == "group":
        from bidsapp.workflows.group import group_level
        return group_level(s)
    return participant(s)


#: the steps of the participant level whose options the group level does not read (it reads the runs' sidecars)
_PARTICIPANT_STEPS = {"mask", "masking", "cleaning", "segmentation"}


def warn_other_level(s: Settings) -> None:
    """One warning naming the options set (to other than their default) that only the other analysis level
    reads: ``--exclude-fd-mean`` at the participant level, ``--denoise`` at the group level."""
    from bidsapp.options import OPTIONS, changed

    group = s.analysis_level == "group"
    other = changed(s, [o for o in OPTIONS if o.flags and o.steps
                        and (set(o.steps) <= _PARTICIPANT_STEPS if group else set(o.steps) == {"group"})])
    if other:
        level, reads = ("participant", "group") if group else ("group", "participant")
        warnings.warn(f"{', '.join(o.flags[0] for o in other)}: read by the {level} level only; this {reads}-level "
                      f"invocation ignores {'them' if len(other) > 1 else 'it'}.", stacklevel=2)


#: held by each call of :func:`main` in this process (see :func:`_one_call_at_a_time`); re-entrant, so that a
#: call made from inside another in the same thread runs as it did without the lock instead of waiting forever
_CALL = threading.RLock()


def _working_folder() -> str | None:
    """The process's working folder, None when it was removed (or cannot be read)."""
    try:
        return os.getcwd()
    except OSError:
        return None


@contextlib.contextmanager
def _one_call_at_a_time():
    """Run one call of :func:`main` at a time in this process, and give back the working folder it was given.

    nipype's engine enters each node's folder (``os.chdir``, process-wide) and keeps its configuration in
    globals. Two in-process calls in threads would interleave those changes: one call could leave the process
    inside the other's node folder (removed with its work folder: every later ``os.getcwd()`` fails), or resolve
    its relative paths from there. A second call waits for the first.
    """
    with _CALL:
        cwd = _working_folder()
        try:
            yield
        finally:
            if cwd is not None and _working_folder() != cwd:
                os.chdir(cwd)


def _main(argv: list[str] | None, verbose: bool) -> int:
    try:
        with _one_call_at_a_time():
            try:
                s = parse_args(argv)  # --help and --version need no working folder
            except SystemExit as exc:  # argparse: usage errors, --help, --version
                return int(exc.code or 0)
            verbose = verbose or s.verbose  # also from a config file, or an abbreviation (--verb)
            if _working_folder() is None:
                raise InputError("the current working folder no longer exists (it was removed); change to an "
                                 "existing folder and rerun", code=1)
            command = argv is None and threading.current_thread() is threading.main_thread()
            with _collector_paused(command and s.analysis_level == "participant"):
                return _level(s, verbose)
    except SystemExit as exc:  # raised after the options were read (by a library the run called): not a success
        print(f"bidsapp: error: the run was stopped by a call to exit ({exc.code!r}) before it finished; rerun with "
              "--verbose and report it", file=sys.stderr)
        return exc.code if isinstance(exc.code, int) and exc.code not in (0, None) else 1
    except KeyboardInterrupt:  # SIGINT when main() runs outside the main thread (no handlers of ours)
        return _interrupted(signal.SIGINT, None)
    except (UsageError, InputError, ValueError) as exc:
        if verbose:
            traceback.print_exc()
        print(f"bidsapp: error: {cli_words(str(exc))}", file=sys.stderr)
        return getattr(exc, "code", 1)
    except OSError as exc:
        if verbose:
            traceback.print_exc()
        print(f"bidsapp: error: {os_error_line(exc, Path(_working_folder() or 'the removed working folder'))}",
              file=sys.stderr)
        return 73 if exc.errno in DISK_ERRNOS + (errno.EACCES,) else 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line unless --verbose
        if verbose:
            traceback.print_exc()
        print(f"bidsapp: unexpected error: {type(exc).__name__}: {exc} (rerun with --verbose)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from bidsapp.cli.launch import end_process

    end_process(main())
