"""Joined trial model: the runs of one participant and task fitted together (noise regressors, ridge).

One node per participant and task (:func:`bidsapp.workflows.base.init_bidsapp_wf`) reads what each run's
segmentation node passed on (``model_inputs``), fits :func:`bidsapp.core.trial_fit.fit_trials` and writes,
per run, ``betas.npy``, ``betas.tsv`` (one row per trial) and ``betaquality.tsv`` (one row per column),
which the run's sink installs. ``trial_type`` is copied into ``betas.tsv`` and read nowhere else.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, SimpleInterface, TraitedSpec, traits

from bidsapp.core import events as ev
from bidsapp.core import trial_fit
from bidsapp.core.files import save_npy
from bidsapp.core.hrf import DESCRIPTIONS
from bidsapp.core.tsv import write_tsv

#: the ridge fractions and the noise step, as the sidecar names them
MODEL_NAME = {(True, True): "LSA per run + data-driven noise regressors + fractional ridge",
              (True, False): "LSS (one regressor for all other trials) + data-driven noise regressors",
              (False, True): "LSA per run + fractional ridge"}
#: the HRF step, as the sidecar names it (prefixed to MODEL_NAME)
HRF_STEP = {"library": "library HRF per column + ", "spm": ""}


class _EstimateInput(BaseInterfaceInputSpec):
    runs = traits.List(traits.Dict, mandatory=True, desc="each run's model_inputs (segmentation node)")
    run_names = traits.List(traits.Str, mandatory=True)


class _EstimateOutput(TraitedSpec):
    run_files = traits.List(traits.Dict, desc="per run: suffix -> file (betas, betas_tsv, betaquality_tsv)")
    run_info = traits.List(traits.Dict, desc="per run: what the sidecar records of the trial model")


def pick(items: list, index: int):
    """Item ``index`` of a node's list output (one run's share of the joined model)."""
    return items[index]


def _load(inputs: list[dict]) -> tuple[list, list, list]:
    """Cleaned data (memory-mapped), operators and events of the runs."""
    data = [np.load(r["cleaned"], mmap_mode="r") for r in inputs]
    operators = [np.load(r["operator"]) for r in inputs]
    events = [ev.read_events(r["events_file"]) for r in inputs]
    return data, operators, events


def _dof(inputs: list[dict], operators: list) -> list[int]:
    from bidsapp.core.signal import operator_dof

    return [int(r["dof"]) if r["dof"] >= 0 else operator_dof(op) for r, op in zip(inputs, operators)]


class EstimateTrials(SimpleInterface):
    """Fit the joined trial model of a participant's runs and write each run's betas and quality tables."""

    input_spec = _EstimateInput
    output_spec = _EstimateOutput

    def _run_interface(self, runtime):
        cwd = Path(runtime.cwd)
        inputs, names = self.inputs.runs, self.inputs.run_names
        with_events = [k for k, r in enumerate(inputs) if r]
        files: list[dict] = [{} for _ in inputs]
        infos: list[dict] = [{} for _ in inputs]
        if with_events:
            used = [inputs[k] for k in with_events]
            fit, events, info = fit_runs(used, [names[k] for k in with_events])
            for j, k in enumerate(with_events):
                files[k] = write_run(cwd / names[k], fit, j, events[j], _retained(used[j], events[j]), used[j]["t_r"])
                infos[k] = info
        self._results.update(run_files=files, run_info=infos)
        return runtime


def fit_runs(inputs: list[dict], names: list[str]) -> tuple[trial_fit.TrialFit, list, dict]:
    """Fit the joined model; warn once per step that fell back; return the fit, the events and the sidecar info."""
    data, operators, events = _load(inputs)
    first = inputs[0]
    runs = trial_fit.trial_runs(data, operators, events, t_r=min(r["t_r"] for r in inputs),
                                start_times=[r["start_time"] for r in inputs], hrf=first["hrf"],
                                repeat_column=first["repeats"])
    fit = trial_fit.fit_trials(runs, denoise=first["denoise"], ridge=first["ridge"], repeat_name=first["repeats"],
                               dof=_dof(inputs, operators), library=first["hrf"] == "library")
    files = [Path(r["events_file"]).name for r in inputs]  # what the warnings name
    members = [r.get("run") or name for r, name in zip(inputs, files)]  # the runs, by label (an events file may
    # be inherited by several runs)
    for line in fit.fallbacks:
        warnings.warn(f"{', '.join(files)}: {line}.", stacklevel=2)
    design = design_warnings(inputs, events, ridge=first["ridge"])
    for line in design:
        warnings.warn(line, stacklevel=2)
    info = {"TrialEstimates": HRF_STEP[first["hrf"]] + MODEL_NAME[(first["denoise"], first["ridge"])],
            "HRF": ev.HRF_NAME if first["hrf"] == "spm" else DESCRIPTIONS["library"],
            "TrialModel": first.get("trial_model") or "optimized", "HRFModel": first["hrf"],
            "BetasAre": "one row per trial: the coefficient of its HRF regressor"
                        + (", shrunk by the column's ridge fraction" if first["ridge"] else ""),
            "TrialModelRuns": members, "TrialRepeats": first["repeats"],
            **_targets(first["repeats"], fit.reliability is not None), "TrialModelFallbacks": fit.fallbacks,
            "DesignWarnings": design}
    if fit.hrf is not None:
        info["HRFLibrary"] = _library_info(fit.hrf)
    if fit.noise is not None:
        info.update({"NoiseRegressors": fit.noise.n_components, "NoisePoolColumns": int(fit.noise.pool.sum()),
                     "NoiseRegressorsTarget": fit.noise.target,
                     "NoiseRegressorsHeldOutR2": [None if np.isnan(v) else round(float(v), 5)
                                                  for v in fit.noise.cv_r2]})
    if first["ridge"]:
        info.update({"RidgeFractionsTried": [round(float(f), 3) for f in trial_fit.FRACTIONS],
                     "RidgeTarget": fit.ridge_target})
    return fit, events, info


def design_warnings(inputs: list[dict], events: list, *, ridge: bool) -> list[str]:
    """What each run's trials do not allow (:func:`bidsapp.core.trial_models.check_trial_design` with one SPM
    regressor per trial: trials shorter than a TR; with ridge, a model of all trials per run, trials starting less
    than a TR apart), one line each naming the events file."""
    from bidsapp.core.hrf import make_basis
    from bidsapp.core.trial_models import check_trial_design

    lines = []
    for r, e in zip(inputs, events):
        basis = make_basis("spm", r["t_r"])
        lines += [f"{r['events_file']}: {line}" for line in
                  check_trial_design("lsa" if ridge else "lss", e.onset, e.duration, basis, t_r=r["t_r"])]
    return lines


def _library_info(choice) -> dict:
    """What the sidecar records of the library step: the shapes, how one was chosen, how many columns took each."""
    from bidsapp.core import hrf as hrf_models
    from bidsapp.interfaces.segment import _split_words

    counts = np.bincount(choice.shapes, minlength=len(hrf_models.library_table()))
    return {"Shapes": [{"index": k, "peak_s": p, "undershoot_ratio": r, "columns": int(counts[k])}
                       for k, p, r in hrf_models.library_table()],
            "Selection": "held-out R2 of an all-trials design (no trial_type values), one shape per column for all "
                         "the runs, chosen before the noise regressors and ridge",
            "Split": _split_words(choice.split), "FallbackColumns": int(choice.fallback.sum()),
            "Fallback": choice.note or None}


def _targets(repeats: str | None, used: bool) -> dict:
    """The sidecar's cross-validation targets: what the fit used (label-free when --trial-repeats fell back)."""
    label_free = "label-free (held-out runs under an all-trials design; held-out blocks of volumes)"
    if not repeats:
        return {"CrossValidationTargets": label_free}
    if not used:
        return {"CrossValidationTargets": f"{label_free}: --trial-repeats {repeats} could not be used (see "
                                          "TrialModelFallbacks)"}
    return {"CrossValidationTargets": f"--trial-repeats {repeats}",
            "TrialRepeatsLeak": f"the {repeats} values of every run, held-out runs included, tuned the model: if "
                                f"{repeats} determines the label you decode, held-out labels shaped these betas"}


def _retained(run: dict, events: ev.Events) -> np.ndarray:
    """Share of each trial's SPM response in the run's kept volumes (:func:`trial_models.response_retained`)."""
    from bidsapp.core.hrf import make_basis
    from bidsapp.core.trial_models import response_retained

    n_volumes = np.load(run["operator"], mmap_mode="r").shape[1]
    return response_retained(n_volumes, np.asarray(run["kept"], dtype=int), events.onset, events.duration,
                             make_basis("spm", run["t_r"]), t_r=run["t_r"], start_time=run["start_time"])


def _reasons(betas: np.ndarray, onsets: np.ndarray, retained: np.ndarray, t_r: float) -> list:
    """Why each trial's estimate is not valid (None when it is)."""
    from bidsapp.core.timing import before
    from bidsapp.core.trial_models import MIN_RESPONSE_RETAINED

    out: list = []
    for b, onset, share in zip(betas, onsets, retained):
        if not np.isfinite(b).all():
            out.append("not estimable: the trial's regressor is empty (after the run's end, or removed by cleaning)")
        elif before(onset, 0.0, t_r):
            out.append(f"starts before the run (onset {onset:g} s < 0)")
        elif share < MIN_RESPONSE_RETAINED:
            out.append(f"only {share:.0%} of the response falls in kept volumes of the run (censored or after its "
                       "end)")
        else:
            out.append(None)
    return out


def write_run(folder: Path, fit: trial_fit.TrialFit, j: int, events: ev.Events, retained: np.ndarray,
              t_r: float) -> dict:
    """Run ``j``'s betas.npy, betas.tsv and betaquality.tsv in ``folder`` (``retained``: each trial's share of
    its response in the run's kept volumes; ``t_r``: the run's repetition time)."""
    from bidsapp.interfaces.segment import _trial_table

    folder.mkdir(parents=True, exist_ok=True)
    betas = fit.betas[j]
    save_npy(betas, folder / "betas.npy")
    reason = _reasons(betas, events.onset, retained, t_r)
    table = _trial_table(events)
    table.update({"response_retained": np.round(retained, 4), "valid": np.array([r is None for r in reason]),
                  "beta_variance": np.round(fit.beta_variance[j], 6), "reason": reason})
    write_tsv(folder / "betas.tsv", table)
    quality = {"column": np.arange(fit.r2.size), "r2": np.round(fit.r2, 5), "ridge_fraction": np.round(fit.fraction, 3),
               "noise_pool": fit.noise.pool if fit.noise is not None else np.zeros(fit.r2.size, dtype=bool)}
    if fit.hrf is not None:
        from bidsapp.interfaces.segment import library_columns

        quality.update(library_columns(fit.hrf))
    if fit.reliability is not None:
        quality["split_half_reliability"] = np.round(fit.reliability, 5)
    write_tsv(folder / "betaquality.tsv", quality)
    return {"betas": str(folder / "betas.npy"), "betas_tsv": str(folder / "betas.tsv"),
            "betaquality_tsv": str(folder / "betaquality.tsv")}
