"""One run's plan: its settings, the checks before any work (repetition time, mask, events, enough volumes
to clean, a trial design), its memory estimate and its source files."""

from __future__ import annotations

import datetime as dt
import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from bidsapp.bids.collect import Run
from bidsapp.cli.joined import joined_model, joined_sources
from bidsapp.errors import InputError
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
    from bidsapp.options import OPTIONS, TRIALS, changed

    return [o.flags[0] for o in changed(s, [o for o in OPTIONS if o.group == TRIALS])]


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
    if s.trial_estimates and not len(events.onset):
        raise InputError(f"{run.events}: no events (the file has only its header), so --trial-estimates "
                         f"{s.trial_estimates} has no trial to estimate; add the run's events, or leave the run out "
                         "(--task, --run, --session-label).", code=2)
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


def naming(run: Run, s: Settings):
    """The :class:`~bidsapp.bids.naming.RunNaming` of a run's outputs under these settings."""
    from bidsapp.bids.naming import RunNaming

    return RunNaming(dict(run.entities, space=run.space or s.space), desc=s.desc_label, atlas=s.atlas_name)


def recorded_settings(run: Run, s: Settings) -> dict:
    """The settings a run's sidecar records (``Parameters``): the result settings, with ``surface`` "none" for a
    grayordinate run that no surface gives x, y, z (the surface actually used)."""
    from bidsapp.core import grayordinates

    settings = s.result_settings()
    if grayordinates.is_grayordinate_file(run.bold) and not run.surfaces:
        settings["surface"] = "none"
    return settings
