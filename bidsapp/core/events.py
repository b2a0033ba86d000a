"""Trials: events.tsv -> labelled rows, per-trial segments and LSS trial-wise betas.

Times follow BIDS: event onsets count from the first stored volume; the
acquisition time of volume ``i`` is ``StartTime + i * RepetitionTime``
(fMRIPrep writes StartTime, the slice-timing reference, when it corrected
slice timing; without it, the middle of the raw SliceTiming range when slice
timing was not corrected; 0 otherwise: ``bidsapp.cli.plan.start_time_of``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bidsapp.core import hrf, timing, trial_models
from bidsapp.core.trial_models import (  # noqa: F401  (their old home)
    MAX_VARIANCE_INFLATION,
    MIN_TRIAL_DOF,
    OWN_REGRESSOR_TOLERANCE,
)
from bidsapp.core.tsv import read_tsv, to_float

#: the default HRF (SPM canonical)
HRF_NAME = hrf.DESCRIPTIONS["spm"]


@dataclass
class Events:
    """Parsed events: numeric onset/duration, trial_type and the other columns as text."""

    path: Path
    onset: np.ndarray
    duration: np.ndarray
    trial_type: list[str]
    extra: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.onset.size


def read_events(path: str | Path) -> Events:
    """Read a BIDS ``*_events.tsv``.

    Missing ``trial_type`` gives one type, ``trial``; ``n/a`` durations are 0 (one warning
    line with their count).
    Non-numeric onsets, missing onsets and negative durations raise
    ``ValueError`` naming the file, row and column.
    """
    path = Path(path)
    header, rows = read_tsv(path)
    spaced = [h for h in header if h != h.strip()]
    if spaced:  # 'trial_type ' would be an extra column, and every trial of one type
        raise ValueError(f"{path}: column name {spaced[0]!r} has spaces around it; BIDS column names have none: "
                         f"write {spaced[0].strip()!r}.")
    for col in ("onset", "duration"):
        if col not in header:
            raise ValueError(f"{path}: required column '{col}' is missing (BIDS events need onset and duration).")
    cols = {h: [r[i] for r in rows] for i, h in enumerate(header)}
    onset = to_float(cols["onset"], path=path, column="onset")
    bad = np.flatnonzero(~np.isfinite(onset))
    if bad.size:
        what = "n/a" if np.isnan(onset[bad[0]]) else f"{onset[bad[0]]}, not a finite number of seconds"
        raise ValueError(f"{path}: row {bad[0] + 1}, column 'onset': onset is {what}; every event needs an onset "
                         "(seconds from the first stored volume).")
    duration = to_float(cols["duration"], path=path, column="duration")
    if np.isnan(duration).any():
        warnings.warn(f"{path}: {int(np.isnan(duration).sum())} event(s) have duration n/a; they are modelled as "
                      "impulses (duration 0). Give their durations to model them as blocks.", stacklevel=2)
    duration = np.where(np.isnan(duration), 0.0, duration)
    neg = np.flatnonzero((duration < 0) | np.isinf(duration))
    if neg.size:
        raise ValueError(f"{path}: row {neg[0] + 1}, column 'duration': duration {duration[neg[0]]} is not a "
                         "duration; write the event's length in seconds (0 or n/a for an impulse).")
    types = cols.get("trial_type", ["trial"] * len(rows))
    extra = {h: v for h, v in cols.items() if h not in ("onset", "duration", "trial_type")}
    return Events(path=path, onset=onset, duration=duration, trial_type=list(types), extra=extra)


#: columns bidsapp writes in ``_trials.tsv`` / ``_betas.tsv`` (and the per-row table of ``bidsapp.dataset``)
TRIAL_COLUMNS = ("index", "onset", "duration", "trial_type", "n_censored", "outside_run", "valid", "segment",
                 "response_retained", "variance_inflation", "reason", "source", "subject", "session", "task",
                 "acquisition", "ceagent", "reconstruction", "direction", "run", "echo", "part")
#: joins the trials (and trial types) of a volume inside several trials in ``_samples.tsv``
SEPARATOR = ","


def events_column_name(name: str) -> str:
    """Name of an events.tsv column in our tables: ``events_<name>`` when ours has that name, else unchanged."""
    return f"events_{name}" if name in TRIAL_COLUMNS or name.startswith("events_") else name


def check_trial_types(events: Events) -> None:
    """Refuse trial types containing :data:`SEPARATOR` (a volume in two trials could not be told apart).

    Raises
    ------
    ValueError
        Naming the file, the row and the trial type.
    """
    for row, ttype in enumerate(events.trial_type, start=1):
        if SEPARATOR in ttype:
            raise ValueError(f"{events.path}: row {row}, trial_type {ttype!r} contains {SEPARATOR!r}, which "
                             "bidsapp uses to join the trials of a volume inside several trials; rename it "
                             f"(e.g. {ttype.replace(SEPARATOR, '_')!r}).")


def volume_times(n_volumes: int, t_r: float, start_time: float = 0.0) -> np.ndarray:
    """Acquisition time (s) of each volume: ``start_time + i * t_r``."""
    return start_time + np.arange(n_volumes) * t_r


def label_rows(times: np.ndarray, events: Events, t_r: float, hrf_lag: float = 0.0) -> tuple[list, list]:
    """Trial(s) each volume belongs to.

    A volume at time ``t`` belongs to trial ``i`` when
    ``onset_i + lag <= t < onset_i + lag + max(duration_i, t_r)`` (a
    zero-duration event labels the volume that follows it). Overlapping
    trials are all listed, comma-separated. Times less than a millionth of
    a TR apart are the same time (:mod:`bidsapp.core.timing`): a volume
    acquired at a trial's onset is in it, one acquired at its end is not,
    whatever the round-off of ``StartTime + v * TR``.

    Returns
    -------
    trial, trial_type : lists of str or None (one per volume)
    """
    check_trial_types(events)
    start = events.onset + hrf_lag
    stop = start + np.maximum(events.duration, t_r)
    inside = timing.inside(times[:, None], start[None, :], stop[None, :], t_r)
    trial, ttype = [], []
    for row in inside:
        idx = np.flatnonzero(row)
        trial.append(SEPARATOR.join(str(i) for i in idx) if idx.size else None)
        ttype.append(SEPARATOR.join(events.trial_type[i] for i in idx) if idx.size else None)
    return trial, ttype


def window_offsets(window: tuple[float, float], t_r: float) -> np.ndarray:
    """TR-spaced offsets (s) from ``window[0]`` up to ``window[1]`` included (:func:`bidsapp.core.hrf.fir_offsets`)."""
    return hrf.fir_offsets(window, t_r)


@dataclass
class Segments:
    """Per-trial segments and their bookkeeping.

    Attributes
    ----------
    data : numpy.ndarray, float32, shape (n_trials_kept, n_offsets, n_features)
    offsets : numpy.ndarray, shape (n_offsets,)
        Seconds relative to onset.
    valid : numpy.ndarray of bool, shape (n_trials,)
        False when the window leaves the run or touches a censored volume.
    n_censored : numpy.ndarray of int, shape (n_trials,)
        Censored volumes the window's samples would need (kept neighbours
        of censored volumes are not counted).
    outside : numpy.ndarray of bool, shape (n_trials,)
        The window reaches before the first or after the last volume.
    index : numpy.ndarray of int, shape (n_trials_kept,)
        events.tsv row of each segment.
    """

    data: np.ndarray
    offsets: np.ndarray
    valid: np.ndarray
    n_censored: np.ndarray
    outside: np.ndarray
    index: np.ndarray


def segment_trials(
    cleaned: np.ndarray,
    kept_volumes: np.ndarray,
    n_volumes: int,
    onsets: np.ndarray,
    *,
    t_r: float,
    start_time: float = 0.0,
    window: tuple[float, float] = (-2.0, 16.0),
    edge: str = "nan",
) -> Segments:
    """Cut the cleaned signal around each onset, resampled on TR-spaced offsets.

    Offsets are relative to the event onset itself (a peri-stimulus window:
    the haemodynamic lag is inside the window, e.g. the default -2..16 s; the
    ``hrf_lag`` of :func:`label_rows` does not move segments). Each sample at
    ``onset + offset`` is the linear interpolation of the two volumes around
    it; a sample less than a millionth of a TR from a volume's time
    (:mod:`bidsapp.core.timing`) is that volume alone. Samples needing a
    censored volume or a time outside the run are NaN (``edge="nan"``), or
    the whole trial is left out (``edge="drop"``); either way the trial is
    marked not ``valid``.

    Parameters
    ----------
    cleaned : numpy.ndarray, shape (n_kept, n_features)
    kept_volumes : numpy.ndarray of int, shape (n_kept,)
        Run volume index of each row of ``cleaned``.
    n_volumes : int
        Volumes in the run.
    onsets : numpy.ndarray, shape (n_trials,)
    """
    if edge not in ("nan", "drop"):
        raise ValueError(f"Unknown trial edge policy '{edge}'; use nan or drop.")
    offsets = window_offsets(window, t_r)
    row_of = np.full(n_volumes, -1)
    row_of[np.asarray(kept_volumes)] = np.arange(len(kept_volumes))
    i0, w = timing.grid_position(onsets[:, None] + offsets[None, :], t_r, start_time)  # volume before, fraction
    i1 = np.where(w > 0, i0 + 1, i0)
    outside_s = (i0 < 0) | (i1 > n_volumes - 1)
    r0 = np.where(outside_s, -1, row_of[np.clip(i0, 0, n_volumes - 1)])
    r1 = np.where(outside_s, -1, row_of[np.clip(i1, 0, n_volumes - 1)])
    censored_s = ~outside_s & ((r0 < 0) | (r1 < 0))
    bad = outside_s | censored_s
    c0, c1 = censored_s & (r0 < 0), censored_s & (r1 < 0)
    n_cens = np.array([len(set(i0[k][c0[k]]) | set(i1[k][c1[k]])) for k in range(len(onsets))], dtype=int)
    valid = ~bad.any(axis=1)
    keep = np.flatnonzero(valid) if edge == "drop" else np.arange(len(onsets))
    out = np.empty((keep.size, offsets.size, cleaned.shape[1]), dtype=np.float32)
    for j, k in enumerate(keep):
        a = cleaned[np.maximum(r0[k], 0)].astype(np.float32)
        b = cleaned[np.maximum(r1[k], 0)].astype(np.float32)
        seg = (1 - w[k])[:, None].astype(np.float32) * a + w[k][:, None].astype(np.float32) * b
        seg[bad[k]] = np.nan
        out[j] = seg
    return Segments(data=out, offsets=offsets, valid=valid, n_censored=n_cens,
                    outside=outside_s.any(axis=1), index=keep)


def hrf_regressors(
    frame_times: np.ndarray, onsets: np.ndarray, durations: np.ndarray, groups: list[np.ndarray],
    *, oversampling: int = 50,
) -> np.ndarray:
    """SPM-HRF-convolved boxcar regressors, one per group of events (nilearn's ``compute_regressor``, ``"spm"``).

    Parameters
    ----------
    frame_times : numpy.ndarray, shape (n_volumes,)
    onsets, durations : numpy.ndarray, shape (n_events,)
    groups : list of index arrays
        Events summed into each regressor.

    Returns
    -------
    regressors : numpy.ndarray, shape (n_volumes, n_groups)
    """
    t_r = float(np.min(np.diff(frame_times)))
    kernel = [hrf.spm_hrf(t_r, oversampling)]
    return hrf.convolved_regressors(frame_times, onsets, durations, groups, kernel, oversampling=oversampling)[:, :, 0]


def lss_weights(design_trials: np.ndarray, design_types: np.ndarray, trial_type_index: np.ndarray) -> np.ndarray:
    """Least-squares-separate: for each trial, the row of ``pinv(D_i)`` giving its beta.

    ``D_i`` = [trial i, one regressor per trial type made of the other
    trials of that type, intercept], columns already cleaned like the data.

    Parameters
    ----------
    design_trials : numpy.ndarray, shape (n, n_trials)
        One (cleaned) regressor per trial.
    design_types : numpy.ndarray, shape (n, n_types)
        Sum of the (cleaned) trial regressors of each type.
    trial_type_index : numpy.ndarray of int, shape (n_trials,)

    Returns
    -------
    W : numpy.ndarray, shape (n_trials, n)
        ``betas = W @ Y`` for data ``Y`` of shape (n, n_features).
    """
    n, n_trials = design_trials.shape
    W = np.empty((n_trials, n))
    ones = np.ones((n, 1))
    for i in range(n_trials):
        others = design_types.copy()
        others[:, trial_type_index[i]] -= design_trials[:, i]
        others = others[:, np.abs(others).max(axis=0) > 1e-12]
        D = np.column_stack([design_trials[:, i], others, ones])
        W[i] = np.linalg.pinv(D)[0]
    return W


@dataclass
class TrialEstimates:
    """LSS betas and their bookkeeping.

    Attributes
    ----------
    betas : numpy.ndarray, float32, shape (n_trials, n_features)
        NaN for trials whose model is not estimable.
    valid : numpy.ndarray of bool, shape (n_trials,)
    reason : list of str
        Why a trial is not valid ("" when valid).
    response_retained : numpy.ndarray, shape (n_trials,)
        Share of the trial's HRF response energy that falls in kept volumes.
    variance_inflation : numpy.ndarray, shape (n_trials,)
        Variance of the trial's beta relative to that of the trial regressor
        alone on the raw (centred, kept) volumes: large when cleaning removes
        the regressor or other regressors are collinear with it.
    residual_dof : numpy.ndarray of int, shape (n_trials,)
        Degrees of freedom left by the cleaning minus the per-trial model's rank.
    """

    betas: np.ndarray
    valid: np.ndarray
    reason: list[str]
    response_retained: np.ndarray
    variance_inflation: np.ndarray
    residual_dof: np.ndarray


def lss_estimates(
    cleaned: np.ndarray,
    operator: np.ndarray,
    kept_volumes: np.ndarray,
    events: Events,
    *,
    t_r: float,
    start_time: float = 0.0,
    dof: int | None = None,
    chunk_size: int = 32768,
) -> TrialEstimates:
    """Least-squares-separate trial-wise betas on the cleaned signal.

    The per-trial design (trial, other trials of each type, intercept) is
    built from SPM-HRF regressors on the run's volume times, cleaned with the
    same linear ``operator`` as the data (Frisch-Waugh-Lovell: equal to a
    first-level model on the raw run with the confounds, trend and filter in
    the design). The other regressors are reduced to their span, so collinear
    ones (two trial types with identical regressors) do not make a trial's own
    beta inestimable. A trial is not valid, with NaN betas and a ``reason``, when it
    starts after the end of the run, when its own regressor is not estimable
    (removed by cleaning, or in the span of the others), when its model leaves fewer than
    ``MIN_TRIAL_DOF`` residual degrees of freedom, or when
    the variance of its beta is inflated more than ``MAX_VARIANCE_INFLATION``
    times. A trial whose response mostly falls in censored volumes
    (``response_retained`` < 0.5) keeps its beta but is not valid.

    Parameters
    ----------
    cleaned : numpy.ndarray, shape (n_kept, n_features)
    operator : numpy.ndarray, shape (n_kept, n_volumes)
        The cleaning operator that produced ``cleaned`` (before standardization).
    kept_volumes : numpy.ndarray of int, shape (n_kept,)
    events : Events
    t_r, start_time : float
    dof : int or None
        Degrees of freedom left by the cleaning (default: :func:`bidsapp.core.signal.operator_dof`).

    This is :func:`bidsapp.core.trial_models.fit_trials` with ``model="lss"`` and the SPM HRF, kept under its
    old name.
    """
    fit = trial_models.fit_trials("lss", cleaned, operator, kept_volumes, events.onset, events.duration,
                                  events.trial_type, t_r=t_r, start_time=start_time, dof=dof, chunk_size=chunk_size)
    return TrialEstimates(betas=fit.betas, valid=fit.valid, reason=fit.reason, response_retained=fit.response_retained,
                          variance_inflation=fit.variance_inflation, residual_dof=fit.residual_dof)
