"""``bidsapp`` entry point: parse, collect, build the workflow, run it."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import traceback
import warnings
from pathlib import Path

from bidsapp.cli.parser import UsageError, parse_args
from bidsapp.collect import InputError, Run, collect_runs
from bidsapp.settings import Settings


def _strategy_params(s: Settings) -> dict:
    from bidsapp.core.confounds import inapplicable_parameters

    keys = ("motion", "wm_csf", "global_signal", "scrub", "fd_threshold", "std_dvars_threshold",
            "compcor", "n_compcor")
    given = {k: getattr(s, k) for k in keys if getattr(s, k) is not None}
    unused = inapplicable_parameters(s.denoise, given, s.confounds)
    out = {k: v for k, v in given.items() if k not in unused}
    out["demean"] = s.demean
    return out


def warn_inapplicable(s: Settings) -> None:
    """One warning line per strategy option that the denoising strategy does not use."""
    from bidsapp.core.confounds import inapplicable_parameters

    keys = ("motion", "wm_csf", "global_signal", "scrub", "fd_threshold", "std_dvars_threshold",
            "compcor", "n_compcor")
    given = {k: getattr(s, k) for k in keys if getattr(s, k) is not None}
    for k in inapplicable_parameters(s.denoise, given, s.confounds):
        why = "explicit --confounds replace the preset regressors" if s.confounds and k in (
            "motion", "wm_csf", "global_signal", "compcor", "n_compcor") else f"--denoise {s.denoise} does not use it"
        warnings.warn(f"--{k.replace('_', '-')} {given[k]} is ignored: {why}; it is not recorded or hashed.",
                      stacklevel=2)


def _showwarning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print warnings as one line, ``bidsapp: warning: <message>``."""
    text = " ".join(str(message).split())
    prefix = "" if issubclass(category, UserWarning) else f"{category.__name__}: "
    print(f"bidsapp: warning: {prefix}{text}", file=file or sys.stderr, flush=True)


def run_kwargs(run: Run, s: Settings, started: str) -> dict:
    """Keyword arguments of :func:`init_run_wf` for one run (all checks done here)."""
    from bidsapp import derivatives as drv

    t_r = s.t_r if s.t_r is not None else run.metadata.get("RepetitionTime")
    if t_r is None:
        raise InputError(f"{run.bold}: RepetitionTime is missing from the BOLD JSON sidecars; "
                         "add it to the JSON or pass --t-r SECONDS.")
    from bidsapp.core.signal import check_filter

    try:
        check_filter(float(t_r), s.low_pass, s.high_pass, s.filter)
    except ValueError as exc:
        raise InputError(f"{run.bold.name}: {exc}", code=2) from exc
    from bidsapp.core.io import check_repetition_time

    if s.t_r is None:
        check_repetition_time(run.bold, float(t_r))
    needs_confounds = s.denoise != "none" or bool(s.confounds)
    # the confounds file is also read with --denoise none, for non-steady-state censoring (--dummy-scans auto)
    use_confounds = run.confounds is not None and (needs_confounds or s.dummy_scans == "auto")
    if needs_confounds and run.confounds is None:
        raise InputError(f"{run.bold}: denoising strategy '{s.denoise}' needs the run's "
                         "desc-confounds_timeseries.tsv, which is missing. Use --denoise none or rerun fMRIPrep.")
    if s.mask_strategy == "fmriprep" and run.mask is None:
        raise InputError(f"{run.bold}: the fMRIPrep brain mask (desc-brain_mask) is missing; "
                         "use --mask-strategy epi or background.")
    if s.mask_strategy.endswith("-template"):  # fail before the workflow starts, naming the file
        from bidsapp.core.io import load_header
        from bidsapp.core.masks import TEMPLATE, require_template

        if s.space != TEMPLATE:
            raise InputError(f"--mask-strategy {s.mask_strategy} needs runs in {TEMPLATE} (got --space {s.space}); "
                             "use --mask-strategy fmriprep, epi or background for other spaces.", code=2)
        try:
            require_template(TEMPLATE_TYPES[s.mask_strategy], load_header(run.bold, ndim=4).affine)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    start_time, start_source = start_time_of(run.metadata)
    roots = {"fmriprep": s.fmriprep_dir, "raw": s.bids_dir}
    files = {"bold": run.bold, "mask": run.mask if s.mask_strategy == "fmriprep" else None,
             "confounds": run.confounds if use_confounds else None,
             "confounds_json": run.confounds_json if use_confounds else None,
             "events": run.events, "atlas": s.atlas, "atlas_labels": s.atlas_labels}
    return dict(
        bold_file=str(run.bold), mask_file=str(run.mask) if run.mask else None,
        confounds_file=str(run.confounds) if use_confounds else None,
        confounds_json=str(run.confounds_json) if use_confounds and run.confounds_json else None,
        events_file=str(run.events) if run.events else None,
        entities=run.entities, space=s.space, t_r=float(t_r),
        start_time=start_time, start_time_source=start_source,
        mask_strategy=s.mask_strategy, resample_mask=s.resample_mask, smoothing_fwhm=s.smoothing_fwhm,
        atlas_file=str(s.atlas) if s.atlas else None,
        atlas_labels=str(s.atlas_labels) if s.atlas_labels else None, atlas_name=s.atlas_name,
        denoise=s.denoise, confound_columns=list(s.confounds), strategy_params=_strategy_params(s),
        dummy_scans=s.dummy_scans,
        detrend=s.detrend, standardize=s.standardize, standardize_confounds=s.standardize_confounds,
        filter=s.filter, low_pass=s.low_pass, high_pass=s.high_pass,
        segment_params=segment_params(s, run),
        output_dir=str(s.output_dir), output_format=list(s.output_format),
        settings=s.result_settings(), configuration_hash=s.configuration_hash(),
        sources=drv.sources(files, roots), started=started,
        name=run.label.replace("-", "").replace(".", "_") + "_wf",
    )


TEMPLATE_TYPES = {"whole-brain-template": "whole-brain", "gm-template": "gm", "wm-template": "wm"}


def start_time_of(metadata: dict) -> tuple[float, str]:
    """Time (s) of volume 0 relative to the events' zero, and where it comes from.

    ``StartTime`` (fMRIPrep writes it when it corrected slice timing) wins; without it, when the
    run was not slice-timing corrected but ``SliceTiming`` is known, the middle of the slice
    acquisition range (fMRIPrep's reference, ``(min + max) / 2``); otherwise 0.
    """
    if metadata.get("StartTime") is not None:
        return float(metadata["StartTime"]), "StartTime"
    timing = metadata.get("SliceTiming")
    if timing and not metadata.get("SliceTimingCorrected", False):
        return round((min(timing) + max(timing)) / 2, 6), "middle of SliceTiming"
    return 0.0, "default 0 (no StartTime or SliceTiming)"


def segment_params(s: Settings, run: Run) -> dict:
    """Options of the segmentation node."""
    return {"hrf_lag": s.hrf_lag, "trial_window": tuple(s.trial_window), "trial_edge": s.trial_edge,
            "trial_estimates": s.trial_estimates}


def sidecar_path(run: Run, s: Settings) -> Path:
    from bidsapp import derivatives as drv

    ents = dict(run.entities, space=None if s.space in ("func", "native", "boldref") else s.space,
                atlas=s.atlas_name, desc=s.denoise)
    return drv.run_folder(s.output_dir, run.entities) / drv.bids_name(ents, "timeseries", ".json")


class _Progress:
    """nipype status callback: one line per run when it starts and when it ends."""

    def __init__(self, labels: dict[str, str], n_nodes: dict[str, int]):
        self.labels, self.n_nodes = labels, n_nodes
        self.started: dict[str, float] = {}
        self.done: dict[str, int] = {}

    def __call__(self, node, status):
        wf = node._hierarchy.split(".")[1] if "." in node._hierarchy else node._hierarchy
        label = self.labels.get(wf)
        if label is None:
            return
        if status == "start" and wf not in self.started:
            self.started[wf] = time.monotonic()
            print(f"[bidsapp] started  {label}", flush=True)
        elif status == "end":
            self.done[wf] = self.done.get(wf, 0) + 1
            if node.name == "derivatives":
                took = time.monotonic() - self.started.get(wf, time.monotonic())
                print(f"[bidsapp] finished {label} in {took:.1f} s", flush=True)
        elif status == "exception":
            print(f"[bidsapp] FAILED   {label} at node {node.name}", flush=True)


def participant(s: Settings) -> int:
    from bidsapp import derivatives as drv
    from bidsapp.workflows.base import init_bidsapp_wf

    t0 = time.monotonic()
    runs = collect_runs(s.bids_dir, s.fmriprep_dir, participants=s.participant_label,
                        sessions=s.session_label, tasks=s.task, runs=s.run, space=s.space,
                        need_confounds=False,
                        bold_desc="smoothAROMAnonaggr" if s.denoise == "ica_aroma" else "preproc")
    print(f"[bidsapp] indexed {len(runs)} run(s) in {time.monotonic() - t0:.1f} s", flush=True)
    started = dt.datetime.now(dt.timezone.utc).isoformat()
    todo, skipped = [], []
    for run in runs:
        if drv.outputs_current(sidecar_path(run, s), s.configuration_hash()):
            skipped.append(run)
        else:
            todo.append(run)
    for run in skipped:
        print(f"[bidsapp] skipped  {run.label}: outputs exist with the same ConfigurationHash", flush=True)
    warn_inapplicable(s)
    kwargs = [run_kwargs(r, s, started) for r in todo]
    s.output_dir.mkdir(parents=True, exist_ok=True)
    drv.write_dataset_description(s.output_dir, fmriprep_dir=s.fmriprep_dir, bids_dir=s.bids_dir)
    _write_invocation(s, started)
    if not kwargs:
        return 0
    work = s.work_dir or (s.output_dir / "logs" / "work")
    wf = init_bidsapp_wf(run_kwargs=kwargs, work_dir=str(work))
    labels = {kw["name"]: r.label for kw, r in zip(kwargs, todo)}
    plugin_args = json.loads(s.plugin_args) if s.plugin_args else {}
    if s.plugin == "MultiProc":
        plugin_args.setdefault("n_procs", s.nprocs)
        plugin_args["status_callback"] = _Progress(labels, {})
    elif s.plugin == "Linear":
        plugin_args["status_callback"] = _Progress(labels, {})
    wf.config["execution"].update({"crashdump_dir": str(s.output_dir / "logs" / "crash"),
                                   "crashfile_format": "txt", "stop_on_first_crash": False,
                                   "remove_unnecessary_outputs": False,
                                   "poll_sleep_duration": 0.2 if s.plugin in ("MultiProc", "Linear") else 2})
    try:
        wf.run(plugin=s.plugin, plugin_args=plugin_args)
    except RuntimeError as exc:
        crash = sorted((s.output_dir / "logs" / "crash").glob("*.txt"))
        reason = _crash_reason(crash[-1]) if crash else str(exc)
        raise InputError(f"{reason} (details: {crash[-1] if crash else 'nipype log'})", code=1) from exc
    from bidsapp.reports.html import participant_report

    for subject in sorted({r.entities["subject"] for r in todo}):
        participant_report(s.output_dir, subject)
    print(f"[bidsapp] done: {len(kwargs)} run(s) in {time.monotonic() - t0:.1f} s -> {s.output_dir}", flush=True)
    return 0


def _crash_reason(path: Path) -> str:
    """Last 'ValueError: ...' line of a nipype crash file: the user-facing message."""
    lines = path.read_text(errors="replace").splitlines()
    for line in reversed(lines):
        for prefix in ("ValueError: ", "InputError: ", "OSError: "):
            if line.strip().startswith(prefix):
                return line.strip()[len(prefix):]
    return lines[-1] if lines else "a node failed"


def _write_invocation(s: Settings, started: str) -> None:
    from bidsapp.core.io import write_text

    logs = s.output_dir / "logs"
    stamp = started.replace(":", "").replace("-", "").split(".")[0]
    write_text(logs / f"settings-{stamp}.json", json.dumps(
        {"CommandLine": " ".join(sys.argv), "Settings": s.to_dict(),
         "ConfigurationHash": s.configuration_hash()}, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    """Run bidsapp; returns the exit code (0 success, 1 failure, 2 usage, 16-18/66 BIDS Apps codes)."""
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    warnings.showwarning = _showwarning
    if not verbose:
        from nipype import config as nipype_config
        from nipype import logging as nipype_logging

        for key in ("workflow_level", "interface_level", "utils_level"):
            nipype_config.set("logging", key, "CRITICAL")
        nipype_logging.update_logging(nipype_config)
    try:
        s = parse_args(argv)
        if s.analysis_level == "group":
            from bidsapp.group import group_level
            return group_level(s)
        return participant(s)
    except SystemExit as exc:  # argparse
        return int(exc.code or 0)
    except (UsageError, InputError, ValueError) as exc:
        if verbose:
            traceback.print_exc()
        print(f"bidsapp: error: {exc}", file=sys.stderr)
        return getattr(exc, "code", 1)
    except Exception as exc:  # noqa: BLE001 - last resort: one line unless --verbose
        if verbose:
            traceback.print_exc()
        print(f"bidsapp: unexpected error: {type(exc).__name__}: {exc} (rerun with --verbose)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
