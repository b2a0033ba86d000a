"""Trial-based segmentation node: events.tsv -> labelled rows, per-trial segments, trial-wise betas (LSS / LSA)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.core import events as ev
from bidsapp.core import timing, trial_fit
from bidsapp.core.files import save_npy, write_text
from bidsapp.core.tsv import read_tsv, write_tsv


class _SegmentInput(BaseInterfaceInputSpec):
    cleaned = File(exists=True, mandatory=True)
    samples = File(exists=True, mandatory=True)
    operator = File(exists=True, mandatory=True, desc="cleaning operator (n_kept, n_volumes) .npy")
    events_file = traits.Either(None, File(exists=True), default=None, usedefault=True)
    t_r = traits.Float(mandatory=True)
    start_time = traits.Float(0.0, usedefault=True)
    hrf_lag = traits.Float(0.0, usedefault=True)
    trial_window = traits.Tuple(traits.Float, traits.Float, default=(-2.0, 16.0), usedefault=True)
    trial_edge = traits.Enum("nan", "drop", usedefault=True)
    trial_estimates = traits.Either(None, traits.Enum("lss", "lsa", "optimized"), default=None, usedefault=True)
    hrf = traits.Enum("spm", "glover", "spm+derivative", "spm+derivative+dispersion", "fir", "library",
                      usedefault=True, desc="HRF of the trial-wise estimates (bidsapp.core.hrf)")
    trial_denoise = traits.Either(None, traits.Enum("pca"), default=None, usedefault=True)
    trial_ridge = traits.Bool(False, usedefault=True)
    trial_repeats = traits.Either(None, traits.Str, default=None, usedefault=True,
                                  desc="events.tsv column of stimulus repeats (passed on to the joined trial model)")
    dof = traits.Int(-1, usedefault=True, desc="degrees of freedom left by cleaning (-1: from the operator)")
    run_label = traits.Str("", usedefault=True, desc="the run's label (sub-01_task-x_run-1): how the joined trial "
                                                     "model's sidecar names its runs")


class _SegmentOutput(TraitedSpec):
    samples = File(exists=True)
    trial_files = traits.Dict(desc="suffix -> file written by segmentation")
    info = File(exists=True)
    model_inputs = traits.Dict(desc="what the participant's joined trial model reads of this run ({} if none)")


def _trial_table(events: ev.Events) -> dict:
    """Our columns first, then every other events.tsv column, renamed ``events_<name>`` when it has the name
    of one of ours (``valid``, ``index`` ...), so that neither overwrites the other."""
    table = {"index": np.arange(len(events)), "onset": events.onset, "duration": events.duration,
             "trial_type": events.trial_type}
    table.update({ev.events_column_name(k): v for k, v in events.extra.items()})
    return table


class SegmentTrials(SimpleInterface):
    """Label rows with trials, cut per-trial segments and (optionally) estimate trial-wise betas."""

    input_spec = _SegmentInput
    output_spec = _SegmentOutput

    def _run_interface(self, runtime):
        cwd = Path(runtime.cwd)
        i = self.inputs
        info: dict = {"EventsFile": i.events_file, "HRFLag": i.hrf_lag}
        if not i.events_file:
            write_text(cwd / "segment.json", json.dumps(info))
            self._results.update(samples=i.samples, trial_files={}, info=str(cwd / "segment.json"), model_inputs={})
            return runtime
        events = ev.read_events(i.events_file)
        header, rows = read_tsv(i.samples)
        samples = {h: [r[j] for r in rows] for j, h in enumerate(header)}
        n_vol = len(rows)
        times = ev.volume_times(n_vol, i.t_r, i.start_time)
        samples["trial"], samples["trial_type"] = ev.label_rows(times, events, i.t_r, i.hrf_lag)
        write_tsv(cwd / "samples.tsv", samples)
        cleaned = np.load(i.cleaned, mmap_mode="r")
        kept = np.array([int(v) for v, k in zip(samples["volume"], samples["kept"]) if k == "True"])
        run_end = i.start_time + n_vol * i.t_r
        late = timing.after(events.onset, run_end, i.t_r) | timing.before(events.onset, 0.0, i.t_r)  # outside the run
        if late.any():
            warnings.warn(f"{i.events_file}: {int(late.sum())} trial(s) start outside the run (before 0 s or after "
                          f"its end, {run_end:g} s); they are marked invalid.", stacklevel=2)
        seg = ev.segment_trials(cleaned, kept, n_vol, events.onset, t_r=i.t_r, start_time=i.start_time,
                                window=tuple(i.trial_window), edge=i.trial_edge)
        save_npy(seg.data, cwd / "trials.npy")
        table = _trial_table(events)
        segment_row = np.full(len(events), None, dtype=object)
        segment_row[seg.index] = np.arange(seg.index.size)
        table.update({"n_censored": seg.n_censored, "outside_run": seg.outside,
                      "valid": seg.valid & ~late, "segment": segment_row})
        write_tsv(cwd / "trials.tsv", table)
        files = {"trials": str(cwd / "trials.npy"), "trials_tsv": str(cwd / "trials.tsv")}
        info.update({"TrialWindow": list(i.trial_window), "TrialOffsets": seg.offsets.tolist(),
                     "TrialOffsetsRelativeTo": "event onset (HRFLag only shifts the trial labels of _samples.tsv)",
                     "TrialEdge": i.trial_edge, "NTrials": len(events), "NValidTrials": int((seg.valid & ~late).sum())})
        steps = trial_fit.model_steps(i.trial_estimates, i.trial_denoise, i.trial_ridge, i.hrf)
        model_inputs = {}
        if steps is not None:  # the betas come from the participant's joined model (bidsapp.interfaces.trial_model)
            model_inputs = {"cleaned": i.cleaned, "operator": i.operator, "events_file": i.events_file,
                            "kept": kept.tolist(), "t_r": i.t_r, "start_time": i.start_time,
                            "dof": i.dof, "repeats": i.trial_repeats, "trial_model": i.trial_estimates,
                            "run": i.run_label, **steps}
        elif i.trial_estimates in ("lss", "lsa"):
            files.update(_estimates(i, cleaned, kept, events, late, cwd, info))
        write_text(cwd / "segment.json", json.dumps(info, indent=2))
        self._results.update(samples=str(cwd / "samples.tsv"), trial_files=files, info=str(cwd / "segment.json"),
                             model_inputs=model_inputs)
        return runtime


_MODEL_NAMES = {"lss": "LSS (least squares separate)", "lsa": "LSA (least squares all)"}


def _estimates(i, cleaned: np.ndarray, kept: np.ndarray, events: ev.Events, late: np.ndarray, cwd: Path,
               info: dict) -> dict:
    """Fit the trial model, write betas.npy / betas.tsv / hrf.tsv, add the sidecar fields to ``info``."""
    from bidsapp.core import hrf as hrf_models
    from bidsapp.core import trial_models as tm

    basis = hrf_models.make_basis("spm" if i.hrf == "library" else i.hrf, i.t_r, window=tuple(i.trial_window))
    lines = tm.check_trial_design(i.trial_estimates, events.onset, events.duration, basis, t_r=i.t_r)
    operator = np.load(i.operator)
    choice = _library_choice(cleaned, operator, events, i) if i.hrf == "library" else None
    if choice is not None and (choice.note or choice.fallback.any()):
        lines.append(choice.note or _fallback_line(choice.fallback))
    for line in lines:
        warnings.warn(f"{i.events_file}: {line}", stacklevel=2)
    fit = tm.fit_trials(i.trial_estimates, cleaned, operator, kept, events.onset, events.duration,
                        events.trial_type, t_r=i.t_r, start_time=i.start_time, basis=basis,
                        shapes=None if choice is None else choice.shapes, dof=i.dof if i.dof >= 0 else None)
    save_npy(fit.betas, cwd / "betas.npy")
    write_tsv(cwd / "betas.tsv", _betas_table(events, fit))
    write_tsv(cwd / "hrf.tsv", _hrf_table(fit, choice))
    bad = int((~fit.valid & ~late).sum())
    if bad:
        warnings.warn(f"{i.events_file}: {bad} {i.trial_estimates.upper()} trial estimate(s) are not valid "
                      "(see the reason column of _betas.tsv).", stacklevel=2)
    info.update({"TrialEstimates": _MODEL_NAMES[i.trial_estimates], "TrialModel": i.trial_estimates,
                 "HRFModel": i.hrf, "HRF": hrf_models.DESCRIPTIONS[i.hrf], "BetasAre": _betas_are(basis),
                 "NValidEstimates": int(fit.valid.sum()), "DesignWarnings": lines})
    if basis.model == "fir":
        info["FIROffsets"] = basis.offsets.tolist()
    if choice is not None:
        info["HRFLibrary"] = {"Shapes": [{"index": k, "peak_s": p, "undershoot_ratio": r}
                                         for k, p, r in hrf_models.library_table()],
                              "Selection": "held-out R2 of an all-trials design (no trial_type values)",
                              "Split": _split_words(choice.split), "Fallback": choice.note
                                         or (_fallback_line(choice.fallback) if choice.fallback.any() else None)}
    return {"betas": str(cwd / "betas.npy"), "betas_tsv": str(cwd / "betas.tsv"), "hrf_tsv": str(cwd / "hrf.tsv")}


def _fallback_line(fallback: np.ndarray) -> str:
    """One line counting the columns whose library choice fell back to the canonical shape."""
    return (f"--hrf library: {int(fallback.sum())} of {fallback.size} columns fell back to the canonical shape (no "
            "library shape predicted held-out data, cross-validated R2 <= 0; hrf_fallback column of _hrf.tsv)")


def _split_words(split: str) -> str:
    """The sidecar's words for a cross-validation split of the library selection."""
    from bidsapp.core.hrf_library import SPLITS

    return SPLITS.get(split, "none: no cross-validation was possible")


def _library_choice(cleaned: np.ndarray, operator: np.ndarray, events: ev.Events, i):
    """The library shape of each column, cross-validated within this run (the node sees one run)."""
    from bidsapp.core.hrf_library import RunForSelection, choose_shapes

    return choose_shapes([RunForSelection(cleaned, operator, events.onset, events.duration, i.t_r, i.start_time)])


def _betas_are(basis) -> str:
    """What a row of _betas.npy is, for the sidecar."""
    if basis.model == "fir":
        return ("one row per trial and FIR bin, trial-major (trial 0's bins, then trial 1's ...): the response at "
                "the offset in the fir_offset column of _betas.tsv")
    if basis.size > 1:
        return "one row per trial: the coefficient of the canonical regressor (derivatives are nuisance; nilearn's)"
    return "one row per trial: the coefficient of its HRF regressor"


def _betas_table(events: ev.Events, fit) -> dict:
    """One row per trial (FIR: per trial and bin): the events' columns and the fit's bookkeeping."""
    table = _trial_table(events)
    table.update({"response_retained": np.round(fit.response_retained, 4),
                  "variance_inflation": np.round(fit.variance_inflation, 3),
                  "variance_factor": np.array([float(f"{v:.4g}") for v in fit.variance_factor]),
                  "valid": fit.valid, "reason": [r or None for r in fit.reason]})
    if fit.basis.model != "fir":
        return table
    k = fit.basis.size
    out = {name: np.repeat(np.asarray(col, dtype=object), k) for name, col in table.items()}
    out["fir_offset"] = np.tile(fit.basis.offsets, len(events))
    return out


def _hrf_table(fit, choice) -> dict:
    """One row per column: R² of the trial model, and the library shape chosen for it."""
    table = {"column": np.arange(fit.r2.size), "r2": np.round(fit.r2, 5)}
    if choice is not None:
        table.update(library_columns(choice))
    return table


def library_columns(choice) -> dict:
    """The per-column columns of a library choice (``_hrf.tsv``, and ``_betaquality.tsv`` of the joined model)."""
    from bidsapp.core.hrf import LIBRARY_PEAKS, LIBRARY_UNDERSHOOTS

    return {"hrf_shape": choice.shapes, "hrf_peak": np.round(LIBRARY_PEAKS[choice.shapes // 2], 3),
            "hrf_undershoot_ratio": np.array(LIBRARY_UNDERSHOOTS)[choice.shapes % 2],
            "hrf_cv_r2": np.round(choice.cv_r2, 5), "canonical_cv_r2": np.round(choice.canonical_cv_r2, 5),
            "hrf_fallback": choice.fallback}
