"""Trial-based segmentation node: events.tsv -> labelled rows, per-trial segments, LSS betas."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.core import events as ev
from bidsapp.core import trial_fit
from bidsapp.core.io import read_tsv, save_npy, write_text, write_tsv


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
    trial_estimates = traits.Either(None, traits.Enum("lss", "optimized"), default=None, usedefault=True)
    trial_denoise = traits.Either(None, traits.Enum("pca"), default=None, usedefault=True)
    trial_ridge = traits.Bool(False, usedefault=True)
    trial_repeats = traits.Either(None, traits.Str, default=None, usedefault=True,
                                  desc="events.tsv column of stimulus repeats (passed on to the joined trial model)")
    dof = traits.Int(-1, usedefault=True, desc="degrees of freedom left by cleaning (-1: from the operator)")


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
    """Label rows with trials, cut per-trial segments and (optionally) estimate LSS betas."""

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
        late = events.onset > run_end
        if late.any():
            warnings.warn(f"{i.events_file}: {int(late.sum())} trial(s) start after the end of the run "
                          f"({run_end:g} s); they are marked invalid.", stacklevel=2)
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
        steps = trial_fit.model_steps(i.trial_estimates, i.trial_denoise, i.trial_ridge)
        model_inputs = {}
        if steps is not None:  # the betas come from the participant's joined model (bidsapp.interfaces.trial_model)
            model_inputs = {"cleaned": i.cleaned, "operator": i.operator, "events_file": i.events_file,
                            "kept": kept.tolist(), "t_r": i.t_r, "start_time": i.start_time,
                            "dof": i.dof, "repeats": i.trial_repeats, **steps}
        elif i.trial_estimates == "lss":
            est = ev.lss_estimates(cleaned, np.load(i.operator), kept, events, t_r=i.t_r,
                                   start_time=i.start_time, dof=i.dof if i.dof >= 0 else None)
            save_npy(est.betas, cwd / "betas.npy")
            btable = _trial_table(events)
            btable.update({"response_retained": np.round(est.response_retained, 4),
                           "variance_inflation": np.round(est.variance_inflation, 3),
                           "valid": est.valid, "reason": [r or None for r in est.reason]})
            write_tsv(cwd / "betas.tsv", btable)
            bad = int((~est.valid & ~late).sum())
            if bad:
                warnings.warn(f"{i.events_file}: {bad} LSS trial estimate(s) are not valid "
                              "(see the reason column of _betas.tsv).", stacklevel=2)
            files.update({"betas": str(cwd / "betas.npy"), "betas_tsv": str(cwd / "betas.tsv")})
            info.update({"TrialEstimates": "LSS (least squares separate)", "HRF": ev.HRF_NAME,
                         "NValidEstimates": int(est.valid.sum())})
        write_text(cwd / "segment.json", json.dumps(info, indent=2))
        self._results.update(samples=str(cwd / "samples.tsv"), trial_files=files, info=str(cwd / "segment.json"),
                             model_inputs=model_inputs)
        return runtime
