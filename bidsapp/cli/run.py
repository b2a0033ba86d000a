"""``bidsapp`` entry point: parse, collect, build the workflow, run it."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import gc
import json
import math
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from bidsapp.bids.collect import Run, collect_runs
from bidsapp.cli.errors import DISK_ERRNOS, crash_reason, os_error_line
from bidsapp.cli.joined import (
    check_same_columns,
    joined_model,
    joined_sources,
    mates,
    model_locks,
    trial_model_groups,
    with_joined_runs,
)
from bidsapp.cli.parser import parse_args
from bidsapp.errors import InputError, Interrupted, UsageError, WorkFolderBusy
from bidsapp.execution import interrupts
from bidsapp.execution.workdir import drop_other_code_cache, work_folder
from bidsapp.messages import cli_words
from bidsapp.settings import Settings

if TYPE_CHECKING:
    from bidsapp.core.cleanable import ModelCount
    from bidsapp.core.confounds import RunDesign
    from bidsapp.workflows.base import RunPlan


def warn_inapplicable(s: Settings) -> None:
    """One warning line per strategy option that the denoising strategy does not use."""
    from bidsapp.core.confounds import inapplicable_parameters
    from bidsapp.options import STRATEGY_PARAMETERS

    given = {k: getattr(s, k) for k in STRATEGY_PARAMETERS if getattr(s, k) is not None}
    for k in inapplicable_parameters(s.denoise, given, s.confounds):
        why = "explicit --confounds replace the preset regressors" if s.confounds and k in (
            "motion", "wm_csf", "global_signal", "compcor", "n_compcor") else f"--denoise {s.denoise} does not use it"
        warnings.warn(f"--{k.replace('_', '-')} {given[k]} is ignored: {why}; it is not recorded or hashed.",
                      stacklevel=2)


def _checked_t_r(run: Run, s: Settings, kind: str) -> float:
    """The run's repetition time (``--t-r`` or the BOLD JSON), checked against the file and the filters."""
    t_r = s.t_r if s.t_r is not None else run.metadata.get("RepetitionTime")
    if t_r is None:
        raise InputError(f"{run.bold}: RepetitionTime is missing from the BOLD JSON sidecars; "
                         "add it to the JSON or pass --t-r SECONDS.")
    if s.t_r is None:
        try:
            t_r = seconds(t_r, "RepetitionTime", positive=True)
        except ValueError as exc:
            raise InputError(f"{run.metadata_source('RepetitionTime')}: {exc} (the RepetitionTime of "
                             f"{run.bold.name}); write it as a number of seconds (e.g. 2.0), or pass --t-r SECONDS.",
                             code=1) from None
    from bidsapp.core.signal import check_filter

    try:
        check_filter(float(t_r), s.low_pass, s.high_pass, s.filter)
    except ValueError as exc:
        raise InputError(f"{run.bold.name}: {exc}", code=2) from exc
    from bidsapp.core import columns, grayordinates
    from bidsapp.core.io import check_repetition_time

    if s.t_r is None and not columns.get(kind).on_grayordinates:
        check_repetition_time(run.bold, float(t_r))
    elif s.t_r is None and grayordinates.is_cifti(run.bold):  # GIFTI files carry no repetition time
        grayordinates.check_series_step(run.bold, float(t_r))
    return float(t_r)


def _check_mask(run: Run, s: Settings, grayordinate: bool) -> None:
    """Fail before the workflow starts when the run lacks what the mask strategy needs (naming the file)."""
    if s.mask_strategy == "fmriprep" and run.mask is None and not grayordinate:
        from bidsapp.core.masks import TEMPLATE

        joined = joined_model(s)
        template = " or use a template mask (--mask-strategy whole-brain-template)" if s.space == TEMPLATE else ""
        raise InputError(f"{run.bold}: the fMRIPrep brain mask (desc-brain_mask) is missing; " + (
            f"copy it from fMRIPrep's outputs{template}, or leave the run out (--run, --session-label): a joined "
            "trial model needs one mask for all its runs (not computed per run)." if joined else
            "use --mask-strategy epi or background."))
    if s.mask_strategy.endswith("-template"):
        from bidsapp.core.io import load_header
        from bidsapp.core.masks import TEMPLATE, require_template

        if s.space != TEMPLATE:
            raise InputError(f"--mask-strategy {s.mask_strategy} needs runs in {TEMPLATE} (got --space {s.space}); "
                             "use --mask-strategy fmriprep, epi or background for other spaces.", code=2)
        try:
            require_template(TEMPLATE_TYPES[s.mask_strategy], load_header(run.bold, ndim=4).affine)
        except ValueError as exc:
            raise InputError(str(exc)) from exc


def plan_run(run: Run, s: Settings, cache_dir: Path | None, joined_with: list[Run] = ()) -> RunPlan:
    """The :class:`~bidsapp.workflows.base.RunPlan` of one run: each node's inputs (all checks done here).

    Every node starts from its step's spec (:func:`bidsapp.options.step_specs`, the settings) and gets the
    run's own values (files, repetition time, start time, space, grayordinate files) added. ``joined_with``: the
    other runs of its joined trial model, whose inputs its Sources list too (:mod:`bidsapp.cli.joined`).
    """
    from bidsapp.core import columns
    from bidsapp.core.grayordinates import is_grayordinate_file
    from bidsapp.options import NODE_STEPS, step_specs
    from bidsapp.outputs.checksums import identities, identity_stamp
    from bidsapp.workflows.base import RunPlan

    kind = columns.choose_kind(run.bold, atlas=s.atlas, **columns.options_of(s))
    if not columns.get(kind).on_grayordinates and is_grayordinate_file(run.bold):  # e.g. --spheres on a CIFTI run
        raise InputError(f"{run.bold.name}: {columns.get(kind).what} need a volume (NIfTI) run and this run's "
                         "columns are grayordinates; choose a volume --space (e.g. MNI152NLin2009cAsym).", code=2)
    t_r = _checked_t_r(run, s, kind)
    use_confounds = _uses_confounds(run, s)
    _check_events(run, s, t_r)
    gray = grayordinate_inputs(run, s, kind)
    _check_mask(run, s, bool(gray))
    start_time, start_source = _start_time(run)
    files, roots = source_files(run, s)
    cols = column_kwargs(run, s, kind)
    mem_gb = estimate_memory(run, s, float(t_r), kind, cols.pop("n_columns"))
    worst = max(mem_gb, key=mem_gb.get)
    if mem_gb[worst] > s.mem_gb:
        raise InputError(f"{run.bold}: the {worst} node needs about {mem_gb[worst]:.1f} GB, more than --mem-gb "
                         f"{s.mem_gb:g}; raise --mem-gb or run on a machine with more memory.", code=2)
    specs = {step: spec for step, spec in step_specs(s).items() if step in NODE_STEPS}
    space, timing = run.space or s.space, {"t_r": t_r, "start_time": start_time}
    joined_masks = [str(r.mask) for r in joined_with if r.mask] if s.mask_strategy == "fmriprep" else []
    specs["mask"].update(space=space, input_stamp=identity_stamp([*files.values(), *joined_masks]),
                         bold_right=gray.get("bold_right"), on_grayordinates=columns.get(kind).on_grayordinates,
                         joined_masks=joined_masks)
    cache = str(cache_dir) if cache_dir else None
    specs["masking"].update({k: v for k, v in gray.items() if k in ("bold_right", "atlas_right", "surfaces")},
                            **cols, cache_dir=cache)
    specs["cleaning"].update(timing, bold_file=str(run.bold))
    _check_cleanable(run, s, specs["cleaning"], run_shape(run, kind)[0][3], use_confounds)
    specs["segmentation"].update(timing, run_label=run.label)
    specs["outputs"].update(timing, start_time_source=start_source, entities=dict(run.entities, space=space),
                            cache_dir=cache, grayordinates=gray.get("grayordinates", {}))
    specs["outputs"]["settings"] = recorded_settings(run, s)
    files = joined_sources(files, list(joined_with), s, source_files)
    planned = identities(files.values())  # checked by the provenance node and again before the sidecar
    specs["outputs"]["source_identities"] = planned
    specs["provenance"] = {"files": {k: str(v) if v else None for k, v in files.items()},
                           "roots": {k: str(v) for k, v in roots.items()}, "cache_dir": cache, "planned": planned,
                           "invoked": dt.datetime.now(dt.timezone.utc).isoformat()}
    confounds_json = run.confounds_json if use_confounds else None
    inputs = {"bold_file": str(run.bold), "mask_file": str(run.mask) if run.mask else None,
              "confounds_file": str(run.confounds) if use_confounds else None,
              "confounds_json": str(confounds_json) if confounds_json else None,
              "events_file": str(run.events) if run.events else None}
    return RunPlan(name=run.label.replace("-", "").replace(".", "_") + "_wf", inputs=inputs, specs=specs,
                   mem_gb=mem_gb)


def _check_events(run: Run, s: Settings, t_r: float) -> None:
    """The run's events, checked before any work (a trial type with the separator of overlapping trials, trial
    estimates they cannot give); a run that no events file applies to while trial outputs are asked for gets one
    warning line naming its BOLD file and where its events file was looked for."""
    if run.events is None:
        asked = trial_options_set(s)
        if asked:
            warnings.warn(f"{run.bold.name}: no events file applies to this run (looked for {run.events_search}), "
                          f"so it gets no trial outputs (_trials, _betas) despite {', '.join(asked)}; add its "
                          "events file (per run, or inherited from a parent folder), or leave the run out (--task, "
                          "--run, --session-label).", stacklevel=2)
        return
    from bidsapp.core.events import check_trial_types, read_events

    try:
        with warnings.catch_warnings():  # its warnings (n/a durations) are the segmentation node's: said once
            warnings.simplefilter("ignore")
            events = read_events(run.events)
        check_trial_types(events)
    except ValueError as exc:
        raise InputError(str(exc), code=1) from exc
    _check_trial_design(run, s, t_r, events)


def trial_options_set(s: Settings) -> list[str]:
    """The trial options (the ``--help`` group of events.tsv) set to other than their default: each asks for
    trial outputs, which need an events file."""
    from bidsapp.options import OPTIONS, TRIALS

    def plain(value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    return [o.flags[0] for o in OPTIONS if o.group == TRIALS and plain(getattr(s, o.name)) != plain(o.default)]


def _uses_confounds(run: Run, s: Settings) -> bool:
    """Whether the run's confounds file is read; refused (naming the run) when the strategy needs it and it is
    missing. It is also read with --denoise none, for non-steady-state censoring (--dummy-scans auto)."""
    needs_confounds = s.denoise != "none" or bool(s.confounds)
    if needs_confounds and run.confounds is None:
        raise InputError(f"{run.bold}: denoising strategy '{s.denoise}' needs the run's "
                         "desc-confounds_timeseries.tsv, which is missing. Use --denoise none or rerun fMRIPrep.")
    return run.confounds is not None and (needs_confounds or s.dummy_scans == "auto")


def _check_cleanable(run: Run, s: Settings, spec: dict, n_volumes: int, use_confounds: bool) -> None:
    """A run whose cleaning leaves no degree of freedom (every volume censored, or as many regressors as kept
    volumes) is refused before any work, by the cleaning node's own rule (:func:`bidsapp.core.confounds.run_design`,
    :func:`bidsapp.core.cleanable.count_model`): one line naming the run, the counts and the fix (exit 1, as when
    the cleaning node refused it); the node's own check stays. Reads the confounds file, not the BOLD data."""
    from bidsapp.core.cleanable import count_model
    from bidsapp.core.confounds import run_design

    try:
        design = run_design(n_volumes, run.confounds if use_confounds else None,
                            run.confounds_json if use_confounds else None, spec["denoise"], spec["confound_columns"],
                            spec["dummy_scans"], spec["strategy_params"])
        count = count_model(n_volumes, design, **{k: spec[k] for k in (
            "t_r", "detrend", "standardize", "standardize_confounds", "filter", "low_pass", "high_pass")})
    except ValueError as exc:
        text = str(exc) if run.bold.name in str(exc) else f"{run.bold.name}: {exc}"
        raise InputError(text, code=1) from exc
    if count.dof is not None and count.dof < 1:
        raise InputError(_no_dof_line(run, s, count, design), code=1)


def _no_dof_line(run: Run, s: Settings, count: ModelCount, design: RunDesign) -> str:
    """The line refusing a run whose cleaning leaves no degree of freedom: what removes them and the fix."""
    removed = [f"{count.n_confounds} confound column(s) ({'--confounds' if s.confounds else f'--denoise {s.denoise}'})"
               if count.n_confounds else "",
               f"{count.n_drifts} cosine drift(s) (--filter cosine)" if count.n_drifts else "",
               "detrending" if count.detrend else "", f"the {count.band} Butterworth filter" if count.band else "",
               f"--standardize {s.standardize}" if count.standardization else ""]
    nss = int(design.non_steady_state.sum())
    outliers = 0 if design.selection is None else int((design.selection.motion_outliers
                                                       & ~design.non_steady_state).sum())
    censored = [f"{outliers} motion outlier(s)" if outliers else "", f"{nss} non-steady-state" if nss else ""]
    fixes = ["fewer confounds (a lighter --denoise or fewer --confounds)" if count.n_confounds else "",
             "a higher --fd-threshold / --std-dvars-threshold" if outliers else "",
             "a wider band (--low-pass / --high-pass)" if count.band else "", "--no-detrend" if count.detrend else "",
             "or leave this run out (--task, --run, --session-label)"]
    return (f"{run.bold.name}: {' + '.join(r for r in removed if r) or 'cleaning'} leave {count.dof} degrees of "
            f"freedom for {count.n_kept} kept volume(s) of {count.n_volumes}"
            + (f" (censored: {', '.join(c for c in censored if c)})" if any(censored) else "")
            + f"; cleaning would output rounding noise. Use {', '.join(f for f in fixes if f)}.")


def _check_trial_design(run: Run, s: Settings, t_r: float, events) -> None:
    """Trial estimates the run's events cannot give at all (e.g. --hrf fir with lsa and no separable trial) are
    refused before any work (as is a --trial-repeats column the events do not have); what only degrades them is a
    warning of the segmentation node."""
    if s.trial_repeats and s.trial_repeats not in events.extra:
        columns = ["onset", "duration", "trial_type", *events.extra]
        raise InputError(f"{run.events}: --trial-repeats {s.trial_repeats}: no such column (columns: "
                         f"{', '.join(columns)}); name the column whose equal values are repeats of one stimulus.",
                         code=2)
    if s.trial_estimates not in ("lss", "lsa"):
        return
    from bidsapp.core.hrf import make_basis
    from bidsapp.core.trial_models import check_trial_design

    basis = make_basis("spm" if s.hrf == "library" else s.hrf, t_r, window=tuple(s.trial_window))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_trial_design(s.trial_estimates, events.onset, events.duration, basis, t_r=t_r)
    except ValueError as exc:
        raise InputError(f"{run.events}: {exc}", code=2) from exc


def run_settings(run: Run, s: Settings) -> Settings:
    """The settings of one run: an atlas given by name (``--atlas NAME[:desc-...]``) becomes the TemplateFlow file
    of the run's space and resolution (and its label table), read from the local cache, never downloaded."""
    if not s.atlas_template:
        return s
    import dataclasses

    from bidsapp.core.atlases import resolve
    from bidsapp.core.io import load_header
    from bidsapp.core.masks import templateflow_home

    try:
        atlas, labels = resolve(s.atlas_template, run.space or s.space, load_header(run.bold).affine,
                                templateflow_home())
    except ValueError as exc:
        raise InputError(str(exc), code=2) from None
    return dataclasses.replace(s, atlas=atlas, atlas_labels=s.atlas_labels or labels)


def run_shape(run: Run, kind: str) -> tuple[tuple[int, int, int, int], int]:
    """The run's 4D shape (x, y, z, volumes; grayordinates: 1, 1, 1, volumes) and its columns before masking
    (grid voxels, or grayordinates), from the headers only."""
    from bidsapp.core import columns, grayordinates
    from bidsapp.core.io import load_header

    if columns.get(kind).on_grayordinates:  # columns: the grayordinates (no grid, no mask)
        try:
            n_volumes, features = grayordinates.run_shape(run.bold, run.bold_right)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        return (1, 1, 1, n_volumes), features
    shape = load_header(run.bold, ndim=4).shape
    return tuple(int(d) for d in shape), int(shape[0]) * int(shape[1]) * int(shape[2])


def estimate_memory(run: Run, s: Settings, t_r: float, kind: str | None = None, n_columns: int = 0
                    ) -> dict[str, float]:
    """Each node's memory estimate (GB) for this run, from its headers, mask and events."""
    import numpy as np

    from bidsapp.core import columns
    from bidsapp.core.io import load_header
    from bidsapp.execution.memory import RunSize, node_memory_gb

    space = columns.get(kind or columns.choose_kind(run.bold, atlas=s.atlas, **columns.options_of(s)))
    shape, grid = run_shape(run, space.kind)
    features = grid
    if s.mask_strategy == "fmriprep" and run.mask is not None:
        features = int((np.asanyarray(load_header(run.mask).dataobj) > 0).sum())
    n_trials = 0
    if run.events is not None:
        with open(run.events, encoding="utf-8-sig") as rows:
            n_trials = max(0, sum(1 for line in rows if line.strip()) - 1)
    start, end = s.trial_window
    size = RunSize(n_volumes=int(shape[3]), n_features=features, grid_voxels=grid, n_trials=n_trials,
                   n_offsets=int((end - start) / t_r) + 2)
    terms = space.memory_terms(int(shape[3]), n_columns, features)
    from bidsapp.core.trial_fit import model_steps

    steps = model_steps(s.trial_estimates, s.trial_denoise, s.trial_ridge, s.hrf)
    basis = {"spm+derivative": 2, "spm+derivative+dispersion": 3, "fir": int((end - start) / t_r) + 1}
    library = s.hrf == "library" or (steps or {}).get("hrf") == "library"
    return node_memory_gb(size, smoothing=bool(s.smoothing_fwhm), lss=s.trial_estimates in ("lss", "lsa"),
                          joined=steps is not None, output_format=tuple(s.output_format), space_cls=space,
                          column_terms=terms, trial_basis=basis.get(s.hrf, 1), hrf_shapes=20 if library else 1)


def column_options(s: Settings, kind: str) -> dict:
    """Settings the run's column space consumes beyond the atlas files (its ``options``), by name, JSON-ready."""
    from bidsapp.core import columns

    return {k: str(v) if isinstance(v, Path) else v for k, v in columns.options_of(s).items()
            if k in columns.get(kind).options}


def column_kwargs(run: Run, s: Settings, kind: str) -> dict:
    """The kind of columns and its own arguments (:func:`init_run_wf` ``column_space``, ``column_args``);
    the kind's bad input (e.g. a table without x, y, z) is refused here, before anything is written."""
    from bidsapp.core import columns

    if s.connectivity and not columns.get(kind).regions:
        raise InputError(f"{run.bold.name}: --connectivity needs region columns, but this run's columns are "
                         f"{columns.get(kind).what} (a matrix of every pair, far too large to be a feature); give "
                         "an atlas with --atlas (labels or probabilistic maps) or seeds with --spheres.", code=2)
    try:
        n = columns.get(kind).check_inputs(run.bold, atlas=s.atlas, atlas_labels=s.atlas_labels,
                                           resample=s.resample_mask,
                                           mask=run.mask if s.mask_strategy == "fmriprep" else None,
                                           **column_options(s, kind))
    except ValueError as exc:
        raise InputError(f"{run.bold.name}: {exc}", code=2) from exc
    return {"column_space": kind, "column_args": column_options(s, kind), "n_columns": n}


def source_files(run: Run, s: Settings) -> tuple[dict, dict]:
    """The run's input files by role (those the settings use) and the dataset roots for BIDS URIs."""
    use_confounds = s.denoise != "none" or bool(s.confounds) or s.dummy_scans == "auto"
    files = {"bold": run.bold, "mask": run.mask if s.mask_strategy == "fmriprep" else None,
             "confounds": run.confounds if use_confounds else None,
             "confounds_json": run.confounds_json if use_confounds else None,
             "events": run.events, "atlas": s.atlas, "atlas_labels": s.atlas_labels}
    from bidsapp.core import columns

    for k, v in columns.options_of(s).items():  # the column kinds' own files, e.g. --spheres
        if isinstance(v, Path):
            files[k] = v
        elif isinstance(v, tuple) and v and all(isinstance(p, Path) for p in v):
            files.update({f"{k}_{n}": p for n, p in enumerate(v, start=1)})
    # the JSON sidecars the run's metadata (TR, StartTime, SliceTiming) came from: a change recomputes the run
    files.update({f"metadata_{k}": path for k, path in enumerate(run.metadata_files, start=1)})
    for hemi, path in sorted(run.surfaces.items()):  # grayordinate runs: vertex coordinates (x, y, z)
        files[f"surface_{hemi}"] = path
    if run.bold_right is not None:  # GIFTI pair: both hemispheres (and both atlas files)
        files = {"bold": run.bold, "bold_right": run.bold_right, **{k: v for k, v in files.items() if k != "bold"}}
        if s.atlas is not None:
            files["atlas_right"] = _right_hemisphere(Path(s.atlas))
    roots = {"fmriprep": s.fmriprep_dir, "raw": s.bids_dir}
    if s.atlas_template:  # the sidecar's Sources name the TemplateFlow file
        from bidsapp.core.masks import templateflow_home

        roots["templateflow"] = templateflow_home()
    return files, roots


def _right_hemisphere(left: Path) -> Path:
    """The hemi-R file of a hemi-L one (``..._hemi-L_...label.gii``), which must exist."""
    if not left.name.endswith(".label.gii"):
        raise InputError(f"{left}: a GIFTI run needs a label.gii atlas pair (give the hemi-L file, the hemi-R one "
                         "beside it with the same name); a dlabel.nii is for CIFTI runs.", code=2)
    stem = left.name[: -len(".label.gii")]
    parts = stem.split("_")
    if "hemi-L" not in parts:
        raise InputError(f"{left}: a GIFTI atlas is given as its hemi-L label.gii (with the hemi-R file beside "
                         "it, same name); the name has no hemi-L entity.", code=2)
    right = left.with_name("_".join("hemi-R" if p == "hemi-L" else p for p in parts) + ".label.gii")
    if not right.is_file():
        raise InputError(f"{right}: the hemi-R file of the atlas {left.name} is missing.")
    return right


def grayordinate_inputs(run: Run, s: Settings, kind: str | None = None) -> dict:
    """Checks and extra node inputs of a CIFTI-2 / GIFTI run ({} for volumes).

    Options that make no sense for grayordinates (computed or template masks, volume smoothing,
    mask resampling, a NIfTI atlas or output) are refused naming the run and the fix.
    """
    from bidsapp.core import columns
    from bidsapp.core.grayordinates import is_cifti
    from bidsapp.outputs import writers

    kind = kind or columns.choose_kind(run.bold, atlas=s.atlas, **columns.options_of(s))
    space_cls = columns.get(kind)
    atlas = str(s.atlas) if s.atlas else ""
    cifti = space_cls.on_grayordinates and is_cifti(run.bold)
    refused = writers.refusal(s.output_format, space_cls, cifti=cifti)
    if refused:
        raise InputError(f"{run.bold.name}: {refused}.", code=2)
    if not space_cls.on_grayordinates:
        if atlas.endswith((".dlabel.nii", ".label.gii")):
            raise InputError(f"{run.bold.name}: --atlas {Path(atlas).name} is for grayordinate runs (--space fsLR, "
                             "fsaverage5, ...); this run is a volume.", code=2)
        return {}
    refused = [(s.mask_strategy != "fmriprep", f"--mask-strategy {s.mask_strategy}",
                "the CIFTI/GIFTI's own brain models define the columns"),
               (s.smoothing_fwhm, "--smoothing-fwhm", "volume smoothing does not apply to surfaces"),
               (s.resample_mask, "--resample-mask", "there is no mask to resample"),
               (atlas and not atlas.endswith(".dlabel.nii" if cifti else ".label.gii"), f"--atlas {Path(atlas).name}",
                "give a dlabel.nii for CIFTI runs, a hemi-L label.gii (hemi-R beside it) for GIFTI runs")]
    for bad, option, why in refused:
        if bad:
            raise InputError(f"{run.bold.name}: {option} makes no sense for grayordinates ({why}).", code=2)
    return {"bold_right": str(run.bold_right) if run.bold_right else None,
            "surfaces": {h: str(p) for h, p in run.surfaces.items()},
            "atlas_right": str(_right_hemisphere(Path(atlas))) if atlas and not cifti else None,
            "grayordinates": {"Format": "CIFTI-2 dtseries" if cifti else "GIFTI func.gii pair",
                              **({} if cifti else {"Hemispheres": ["L", "R"]}),
                              "VertexCoordinates": vertex_coordinates(run, s)}}


def vertex_coordinates(run: Run, s: Settings) -> str:
    """Where the x, y, z of a grayordinate run's surface vertices come from (recorded in the sidecar); when
    from nowhere, one warning says for how many columns and why."""
    if run.surfaces:
        return f"{s.surface} surfaces (Sources surface_L, surface_R)"
    if s.surface == "none":
        return "none (--surface none): x, y, z are n/a for surface vertices"
    from bidsapp.core.grayordinates import surface_columns

    n_surface, n_columns = surface_columns(run.bold, run.bold_right)
    why = run.surfaces_missing or f"no {s.surface} surface found"
    if n_surface:
        warnings.warn(f"{run.bold.name}: x, y, z are n/a for {n_surface:,} of {n_columns:,} columns (the surface "
                      f"vertices): {why}; add fMRIPrep's anat surfaces of the run's mesh, or use --surface none.",
                      stacklevel=2)
    return f"none: {why}; x, y, z are n/a for {n_surface} surface vertices"


TEMPLATE_TYPES = {"whole-brain-template": "whole-brain", "gm-template": "gm", "wm-template": "wm"}


def seconds(value: object, key: str, *, positive: bool = False) -> float:
    """A metadata value in seconds as a float (a JSON number, or a string holding one).

    Raises
    ------
    ValueError
        Naming ``key`` and the value when it is not a finite number (``"n/a"``, ``"2 s"``, true, a list), or not
        above 0 with ``positive``.
    """
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or (positive and number <= 0):
        raise ValueError(f"{key} is {json.dumps(value)}, not a {'positive ' if positive else ''}number of seconds")
    return number


def start_time_of(metadata: dict) -> tuple[float, str]:
    """Time (s) of volume 0 relative to the events' zero, and where it comes from.

    ``StartTime`` (fMRIPrep writes it when it corrected slice timing) wins; without it, when the
    run was not slice-timing corrected but ``SliceTiming`` is known, the middle of the slice
    acquisition range (fMRIPrep's reference, ``(min + max) / 2``); otherwise 0.

    Raises
    ------
    ValueError
        A ``StartTime`` or ``SliceTiming`` that is not a number of seconds (a list of them), naming the key and value.
    """
    if metadata.get("StartTime") is not None:
        return seconds(metadata["StartTime"], "StartTime"), "StartTime"
    timing = metadata.get("SliceTiming")
    if timing and not metadata.get("SliceTimingCorrected", False):
        if not isinstance(timing, list):
            raise ValueError(f"SliceTiming is {json.dumps(timing)}, not a list of times in seconds")
        times = [seconds(t, "SliceTiming") for t in timing]
        return round((min(times) + max(times)) / 2, 6), "middle of SliceTiming"
    return 0.0, "default 0 (no StartTime or SliceTiming)"


def _start_time(run: Run) -> tuple[float, str]:
    """:func:`start_time_of` the run's metadata; a value that is not a number of seconds is one line naming the
    JSON file it came from, the value and the fix."""
    try:
        return start_time_of(run.metadata)
    except ValueError as exc:
        key = "StartTime" if run.metadata.get("StartTime") is not None else "SliceTiming"
        fix = ("write it as a number of seconds (e.g. 1.0), or remove the key (the start time is then the middle "
               "of SliceTiming, or 0)") if key == "StartTime" else "write it as a list of seconds (e.g. [0.0, 1.0])"
        raise InputError(f"{run.metadata_source(key)}: {exc} (the {key} of {run.bold.name}); {fix}.",
                         code=1) from None


def _variant(stem: str) -> tuple:
    """The name of an output variant: the entities of an output stem that do not name the run (space, atlas, desc)."""
    from bidsapp.api import _RUN_ENTITIES
    from bidsapp.bids.naming import entities_of

    return tuple((k, v) for k, v in entities_of(stem).items() if k not in _RUN_ENTITIES)


def recorded_settings(run: Run, s: Settings) -> dict:
    """The settings a run's sidecar records (``Parameters``): the result settings, with ``surface`` "none" for a
    grayordinate run that no surface gives x, y, z (the surface actually used)."""
    from bidsapp.core import grayordinates

    settings = s.result_settings()
    if grayordinates.is_grayordinate_file(run.bold) and not run.surfaces:
        settings["surface"] = "none"
    return settings


def _without_desc(variant: tuple) -> tuple:
    """An output variant's name without its desc (what a run's atlas-<name>_dseg file is named by)."""
    return tuple((k, v) for k, v in variant if k != "desc")


def _current_configuration(run: Run, s: Settings, cache) -> dict:
    """This invocation's configuration of a run, as
    :func:`bidsapp.outputs.transaction.configuration_of` reads a sidecar."""
    from bidsapp.outputs.transaction import configuration_of, file_parameter

    files, _ = source_files(run, s)
    sources = [{"Role": role, "SHA256": cache.sha256(path)} for role, path in files.items()
               if file_parameter(role) and path is not None]
    return configuration_of({"Parameters": recorded_settings(run, s), "Sources": sources})


def check_output_names(runs: list[Run], s: Settings, cache) -> list[tuple[Path, dict]]:
    """One output folder, one meaning per name: outputs already named like this invocation's (same space,
    atlas and desc, any participant) but made with other settings or another atlas file are refused (exit 2)
    unless ``--replace-outputs`` is given; then they are returned (sidecar, differing parameters), for
    :func:`replace_outputs` once every input check has passed."""
    from bidsapp.bids.naming import stem_of_entities
    from bidsapp.outputs.reader import output_files, read_sidecar
    from bidsapp.outputs.transaction import configuration_of, describe_differences, differing_parameters

    current: dict[tuple, dict] = {}
    for run in runs:
        sidecar = naming(run, s).sidecar(s.output_dir)
        key = _variant(sidecar.name[: -len("_timeseries.json")])
        if key not in current:
            current[key] = _current_configuration(run, run_settings(run, s), cache)
    # the atlas entity names one atlas file whatever the desc (the run's atlas-<name>_dseg is shared by them)
    atlas_current = {_without_desc(key): config for key, config in current.items() if dict(key).get("atlas")}
    from bidsapp.options import INPUT_FILES

    atlas_keys = set(INPUT_FILES)
    replaced = []
    for sidecar in output_files(s.output_dir, "_timeseries.json"):  # the runs the loader sees
        stem = sidecar.name[: -len("_timeseries.json")]
        key = _variant(stem)
        if key not in current and _without_desc(key) not in atlas_current:
            continue
        meta = read_sidecar(sidecar)
        if meta is None:
            continue  # unreadable: incomplete, recomputed or left out by the reader
        if key in current:
            diff = differing_parameters(configuration_of(meta), current[key])
        else:  # another desc of the same atlas name: only the atlas files must agree
            diff = {k: v for k, v in differing_parameters(configuration_of(meta), atlas_current[_without_desc(key)])
                    .items() if k in atlas_keys}
        if not diff:
            continue
        name = stem_of_entities(key)
        if not s.replace_outputs:
            if atlas_keys & set(diff):
                why = (" (the files that define the columns are compared by their checksum; every desc of a run "
                       "shares its atlas-<name> columns image, _dseg or _probseg)")
                variant = "give these files another --atlas-name"
            else:
                why, variant = "", "name this variant with --desc LABEL"
            raise InputError(
                f"{sidecar}: outputs named {name} in this folder were made with other settings: "
                f"{describe_differences(diff)}{why}; one output folder keeps one meaning per name: write to "
                f"another output folder, or {variant}, or pass --replace-outputs to redo "
                "or invalidate every run of that name.", code=2)
        replaced.append((sidecar, diff))
    return replaced


def replace_outputs(replaced: list[tuple[Path, dict]], output_dir: Path) -> None:
    """``--replace-outputs``: remove the sidecars of outputs of the same name made with other settings (under
    each run's lock), before any run is written: they are incomplete until recomputed, never mixed."""
    from bidsapp.bids.naming import RunNaming, entities_of
    from bidsapp.outputs.transaction import describe_differences, run_lock

    for sidecar, diff in replaced:
        stem = sidecar.name[: -len("_timeseries.json")]
        ents = entities_of(stem)
        with run_lock(output_dir, RunNaming(ents, desc=ents.get("desc", "")).identity):
            sidecar.unlink(missing_ok=True)
        print(f"[bidsapp] replaced {stem}: made with other settings ({describe_differences(diff)}); its sidecar "
              "was removed (--replace-outputs)", flush=True)


def naming(run: Run, s: Settings):
    """The :class:`~bidsapp.bids.naming.RunNaming` of a run's outputs under these settings."""
    from bidsapp.bids.naming import RunNaming

    return RunNaming(dict(run.entities, space=run.space or s.space), desc=s.desc_label, atlas=s.atlas_name)


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


def _check_writable(folder: Path) -> None:
    """Create ``folder`` and write a probe file in it, or fail naming it."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file, not a folder; give a folder (new or bidsapp's) as output_dir "
                         "(or --work-dir).", code=2)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".bidsapp-probe-"):
            pass
    except OSError as exc:
        raise InputError(f"{folder}: cannot write here ({exc.strerror}); choose a writable output_dir "
                         "(or --work-dir).", code=73) from exc


LOCAL_PLUGINS = ("MultiProc", "Linear")


#: why a run that ``--run`` / ``--session-label`` leave out is in the invocation (the end of its errors)
PULLED_IN = ("{label} is computed although --run / --session-label leave it out: it belongs to the joined trial "
             "model of the selected runs and has outputs in {out}; fix or fetch its inputs, or remove its outputs to "
             "leave it out")


def _left_out_mates(runs: list[Run], s: Settings) -> list[Run]:
    """With a joined trial model and ``--run`` or ``--session-label``: the runs of the selected participants and
    tasks that the filters leave out but that have outputs of these settings in the output folder. Their estimates
    came from the joined model with the selected runs: fitted on the selected runs alone, the model would be
    another one, so they are checked and computed with them (as without the filters). Runs left out that have no
    outputs stay out, and their files are not read (e.g. an unfetched session)."""
    from bidsapp.bids.naming import entities_of
    from bidsapp.options import step_specs
    from bidsapp.outputs.reader import output_files

    spec = step_specs(s)["collection"]
    if not joined_model(s) or not (spec.get("runs") or spec.get("sessions")):
        return []
    chosen = {naming(r, run_settings(r, s)).sidecar(s.output_dir) for r in runs}
    keys = {(r.entities.get("subject"), r.entities.get("task")) for r in runs}
    others = {p: entities_of(p.name) for p in output_files(s.output_dir, "_timeseries.json") if p not in chosen}
    others = {p: e for p, e in others.items() if (e.get("subject"), e.get("task")) in keys}
    if not others:
        return []  # nothing of a left-out run in the folder: its files are not even indexed
    try:  # only the runs with outputs: other runs' files are not read
        found = collect_runs(**dict(spec, **{arg: _values(others.values(), key) for arg, key in (
            ("participants", "subject"), ("tasks", "task"), ("sessions", "session"), ("runs", "run"))}),
            need_confounds=False)
    except InputError as exc:
        raise InputError(f"{exc} (a run of the joined trial model of the selected runs: --run / --session-label "
                         f"leave it out, but it has outputs in {s.output_dir}, which are fitted again with the "
                         "selected ones; fetch or fix it, or remove its outputs)", code=exc.code) from None
    return [r for r in found if naming(r, run_settings(r, s)).sidecar(s.output_dir) in others
            and (r.entities.get("subject"), r.entities.get("task")) in keys]


def _values(entities: Iterable[dict], key: str) -> tuple:
    """The distinct values of ``key`` among ``entities`` (a collection filter), sorted."""
    return tuple(sorted({e[key] for e in entities if key in e}))


def _plan(run: Run, s: Settings, cache_dir: Path, joined_with: list[Run], pulled: bool):
    """:func:`plan_run`; a refusal of a run that only its joined model brought in says so."""
    try:
        return plan_run(run, run_settings(run, s), cache_dir, joined_with)
    except InputError as exc:
        if not pulled:
            raise
        raise InputError(f"{exc} ({PULLED_IN.format(label=run.label, out=s.output_dir)})", code=exc.code) from None


def _runs_to_compute(runs: list[Run], s: Settings, cache_dir: Path) -> tuple[list[Run], list[tuple[Path, dict]]]:
    """The runs whose outputs are not current (one line each: skipped, or compute and why), and the outputs of
    the same name made with other settings that ``--replace-outputs`` replaces (see :func:`check_output_names`)."""
    from bidsapp.outputs import provenance
    from bidsapp.outputs.checksums import ChecksumCache
    from bidsapp.outputs.transaction import clear_temporaries, reuse_status

    cache = ChecksumCache(cache_dir)
    replaced = check_output_names(runs, s, cache)
    to_replace = {sidecar for sidecar, _ in replaced}
    groups = trial_model_groups(runs, s)
    todo = []
    for run in runs:
        rs = run_settings(run, s)
        files, roots = source_files(run, rs)
        files = joined_sources(files, mates(run, groups), rs, source_files)
        sidecar = naming(run, rs).sidecar(s.output_dir)
        if sidecar in to_replace:  # never skipped, then invalidated: --replace-outputs redoes it
            reason = "made with other settings (--replace-outputs)"
        else:
            reason = reuse_status(sidecar, configuration_hash=rs.configuration_hash(),
                                  current_sources=lambda f=files, r=roots: provenance.sources(f, r, cache, s.nprocs),
                                  cache=cache)
        if reason is None:
            clear_temporaries(s.output_dir, naming(run, rs))
            print(f"[bidsapp] skipped  {run.label}: outputs are current (settings, version, inputs, outputs)",
                  flush=True)
        else:
            print(f"[bidsapp] compute  {run.label}: {reason}", flush=True)
            todo.append(run)
    return with_joined_runs(todo, runs, groups), replaced


@contextlib.contextmanager
def _removed_when_refused(folder: Path, cache_dir: Path):
    """Undo what the block wrote when it raises (a run refused before it starts, e.g. ``--connectivity`` on
    voxels): the folders this invocation created for ``folder`` (the outermost one of its path that did not
    exist), or, in an existing folder, the checksum-cache entries and cache folders written while planning."""
    folder = Path(folder).absolute()
    created = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        created = path
    cache_dirs = [cache_dir, cache_dir.parent]
    existed = {d: d.is_dir() for d in cache_dirs}
    cached = set(os.listdir(cache_dir)) if existed[cache_dir] else set()
    try:
        yield
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        elif cache_dir.is_dir():
            for name in set(os.listdir(cache_dir)) - cached:
                (cache_dir / name).unlink(missing_ok=True)
            for d in cache_dirs:  # innermost first
                if not existed[d] and d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
        raise


def check_fisher_z(s: Settings) -> None:
    """``--fisher-z`` transforms correlation matrices: without one in ``--connectivity`` it would change nothing
    but the configuration hash, so it is refused (exit 2) rather than silently accepted."""
    if s.fisher_z and not {"correlation", "partial-correlation"} & set(s.connectivity or ()):
        given = " ".join(s.connectivity) if s.connectivity else "none"
        raise UsageError(f"--fisher-z transforms correlation matrices, but --connectivity is {given}; add "
                         "--connectivity correlation (or partial-correlation), or drop --fisher-z.")


def participant(s: Settings) -> int:
    from bidsapp.options import step_specs

    check_fisher_z(s)
    t0 = time.monotonic()
    runs = collect_runs(**step_specs(s)["collection"], need_confounds=False)
    print(f"[bidsapp] indexed {len(runs)} run(s) in {time.monotonic() - t0:.1f} s", flush=True)
    with contextlib.ExitStack() as held:  # joined models: no other invocation fits them until this one ends
        return _participant_runs(s, runs, t0, held)


def _planned(s: Settings, runs: list[Run], held: contextlib.ExitStack):
    """The runs to compute, their plans and the outputs ``--replace-outputs`` replaces; a refusal leaves nothing."""
    from bidsapp.outputs import dataset
    from bidsapp.outputs.checksums import ChecksumCache

    cache_dir = s.output_dir / "logs" / "checksums"
    with _removed_when_refused(s.output_dir, cache_dir):  # a refusal before the run leaves nothing behind
        _check_writable(s.output_dir)
        held.enter_context(model_locks(runs, s))
        pulled = _left_out_mates(runs, s)
        for run in pulled:
            print(f"[bidsapp] with     {run.label}: --run / --session-label leave it out, but it belongs to the "
                  "joined trial model of the selected runs and has outputs in the folder", flush=True)
        try:
            dataset.check_output_owner(s.output_dir)
            dataset.check_dataset_links(s.output_dir, fmriprep_dir=s.fmriprep_dir, bids_dir=s.bids_dir)
        except ValueError as exc:
            raise InputError(str(exc), code=2) from None
        ChecksumCache(cache_dir).remove_temporaries()  # what a killed invocation left there (a folder it owns)
        todo, replaced = _runs_to_compute(runs + pulled, s, cache_dir)
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
    todo, plans, replaced = _planned(s, runs, held)
    replace_outputs(replaced, s.output_dir)
    dataset.write_dataset_description(s.output_dir, fmriprep_dir=s.fmriprep_dir, bids_dir=s.bids_dir)
    _write_invocation(s, invocation)
    if not plans:  # every run reused: only pages a killed invocation left behind its runs' outputs are written
        _write_pages(s.output_dir, _pages_behind(s.output_dir, {r.entities["subject"] for r in runs}))
        return 0
    if s.work_dir is not None:
        _check_writable(s.work_dir)
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
    from bidsapp.core.io import write_text

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
    if s.analysis_level == "group":
        from bidsapp.workflows.group import group_level
        return group_level(s)
    return participant(s)


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
