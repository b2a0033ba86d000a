"""Trials: events.tsv -> labelled rows, per-trial segments and LSS trial-wise betas.

Times follow BIDS: event onsets count from the first stored volume; the
acquisition time of volume ``i`` is ``StartTime + i * RepetitionTime``
(fMRIPrep writes StartTime, the slice-timing reference, when it corrected
slice timing; 0 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bidsapp.core.io import read_tsv, to_float

#: canonical SPM HRF: double gamma, peak 6 s, undershoot 16 s, ratio 0.167, 32 s long
HRF_NAME = "SPM canonical HRF (double gamma: delay 6 s, undershoot 16 s, ratio 0.167; as nilearn 'spm')"


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

    Missing ``trial_type`` gives one type, ``trial``; ``n/a`` durations are 0.
    Non-numeric onsets, missing onsets and negative durations raise
    ``ValueError`` naming the file, row and column.
    """
    path = Path(path)
    header, rows = read_tsv(path)
    for col in ("onset", "duration"):
        if col not in header:
            raise ValueError(f"{path}: required column '{col}' is missing (BIDS events need onset and duration).")
    cols = {h: [r[i] for r in rows] for i, h in enumerate(header)}
    onset = to_float(cols["onset"], path=path, column="onset")
    bad = np.flatnonzero(~np.isfinite(onset))
    if bad.size:
        raise ValueError(f"{path}: row {bad[0] + 1}, column 'onset': onset is n/a; every event needs an onset.")
    duration = to_float(cols["duration"], path=path, column="duration")
    duration = np.where(np.isnan(duration), 0.0, duration)
    neg = np.flatnonzero(duration < 0)
    if neg.size:
        raise ValueError(f"{path}: row {neg[0] + 1}, column 'duration': negative duration {duration[neg[0]]}.")
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
    trials are all listed, comma-separated.

    Returns
    -------
    trial, trial_type : lists of str or None (one per volume)
    """
    check_trial_types(events)
    start = events.onset + hrf_lag
    stop = start + np.maximum(events.duration, t_r)
    inside = (times[:, None] >= start[None, :]) & (times[:, None] < stop[None, :])
    trial, ttype = [], []
    for row in inside:
        idx = np.flatnonzero(row)
        trial.append(SEPARATOR.join(str(i) for i in idx) if idx.size else None)
        ttype.append(SEPARATOR.join(events.trial_type[i] for i in idx) if idx.size else None)
    return trial, ttype


def window_offsets(window: tuple[float, float], t_r: float) -> np.ndarray:
    """TR-spaced offsets (s) from ``window[0]`` up to ``window[1]`` included."""
    start, end = window
    if end <= start:
        raise ValueError(f"Trial window end ({end}) must be after its start ({start}).")
    n = int(np.floor((end - start) / t_r + 1e-9)) + 1
    return start + np.arange(n) * t_r


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
    it. Samples needing a censored volume or a time outside the run are NaN
    (``edge="nan"``), or the whole trial is left out (``edge="drop"``); either
    way the trial is marked not ``valid``.

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
    pos = (onsets[:, None] + offsets[None, :] - start_time) / t_r  # fractional volume index
    i0 = np.floor(pos + 1e-9).astype(int)
    w = np.clip(pos - i0, 0.0, 1.0)
    w[w < 1e-9] = 0.0
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


def spm_hrf(t_r: float, oversampling: int = 50, time_length: float = 32.0) -> np.ndarray:
    """SPM canonical HRF sampled every ``t_r / oversampling`` s (as nilearn's ``spm_hrf``)."""
    from scipy.stats import gamma  # imported here: scipy.stats costs ~0.4 s of CPU at start-up

    dt = t_r / oversampling
    t = np.linspace(0, time_length, np.rint(float(time_length) / dt).astype(int))
    hrf = gamma.pdf(t, 6.0, loc=dt, scale=1.0) - 0.167 * gamma.pdf(t, 16.0, loc=dt, scale=1.0)
    return hrf / hrf.sum()


def hrf_regressors(
    frame_times: np.ndarray, onsets: np.ndarray, durations: np.ndarray, groups: list[np.ndarray],
    *, oversampling: int = 50, min_onset: float = -24.0,
) -> np.ndarray:
    """HRF-convolved boxcar regressors, one per group of events.

    Same sampling as nilearn's ``compute_regressor`` with ``hrf_model="spm"``.

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
    n = frame_times.size
    t_r = float(np.min(np.diff(frame_times)))
    lo, hi = frame_times.min(), frame_times.max()
    n_hr = (n - 1) / (hi - lo) * (hi * (1 + 1.0 / (n - 1)) - lo - min_onset) * oversampling + 1
    hr_times = np.linspace(lo + min_onset, hi * (1 + 1.0 / (n - 1)), np.rint(n_hr).astype(int))
    tmax = hr_times.size
    t_on = np.minimum(np.searchsorted(hr_times, onsets), tmax - 1)
    t_off = np.minimum(np.searchsorted(hr_times, onsets + durations), tmax - 1)
    t_off = np.where((t_off < tmax - 1) & (t_off == t_on), t_off + 1, t_off)
    from scipy.interpolate import interp1d  # imported here: scipy.interpolate costs ~0.2 s of CPU at start-up

    hrf = spm_hrf(t_r, oversampling)
    out = np.empty((n, len(groups)))
    for g, idx in enumerate(groups):
        reg = np.zeros(tmax)
        np.add.at(reg, t_on[idx], 1.0)
        np.add.at(reg, t_off[idx], -1.0)
        reg = np.cumsum(reg)
        conv = np.convolve(reg, hrf)[:tmax]
        out[:, g] = interp1d(hr_times, conv)(frame_times)
    return out


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


#: a trial's LSS beta is not estimable when its per-trial model leaves fewer residual degrees of freedom
MIN_TRIAL_DOF = 1
#: ... or when its variance is inflated more than this, relative to the trial regressor alone in the raw run
MAX_VARIANCE_INFLATION = 100.0
#: ... or when less than this share of its own (cleaned) regressor is independent of the other regressors
OWN_REGRESSOR_TOLERANCE = 1e-8


def _span(columns: np.ndarray, basis: bool = False):
    """Rank of ``columns`` (each scaled to unit norm; singular values above 1e-10 of the largest), or an
    orthonormal basis of their span (shape (n, rank)) with ``basis=True``."""
    if columns.shape[1] == 0:
        return np.zeros((columns.shape[0], 0)) if basis else 0
    norms = np.linalg.norm(columns, axis=0)
    u, s, _ = np.linalg.svd(columns / np.where(norms > 0, norms, 1), full_matrices=False)
    rank = int((s > s[0] * 1e-10).sum()) if s.size and s[0] > 0 else 0
    return u[:, :rank] if basis else rank


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
    """
    n_kept, n_vol = operator.shape
    n_trials = len(events)
    types = sorted(set(events.trial_type))
    tindex = np.array([types.index(t) for t in events.trial_type], dtype=int)
    frame_times = volume_times(n_vol, t_r, start_time)
    raw = hrf_regressors(frame_times, events.onset, events.duration, [np.array([k]) for k in range(n_trials)])
    d_trials = operator @ raw
    d_types = np.column_stack([d_trials[:, tindex == k].sum(axis=1) for k in range(len(types))])
    if dof is None:
        from bidsapp.core.signal import operator_dof

        dof = operator_dof(operator)
    kept = np.asarray(kept_volumes)
    energy = (raw**2).sum(axis=0)
    retained = np.where(energy > 0, (raw[kept] ** 2).sum(axis=0) / np.where(energy > 0, energy, 1), 0.0)
    raw_kept = raw[kept] - raw[kept].mean(axis=0)
    raw_norm2 = (raw_kept**2).sum(axis=0)
    W = np.zeros((n_trials, n_kept))
    inflation = np.full(n_trials, np.inf)
    resid_dof = np.zeros(n_trials, dtype=int)
    reason = [""] * n_trials
    run_end = start_time + n_vol * t_r
    for i in range(n_trials):
        if events.onset[i] > run_end:
            reason[i] = f"starts after the end of the run ({run_end:g} s)"
            continue
        others = d_types.copy()
        others[:, tindex[i]] -= d_trials[:, i]
        others = others[:, np.abs(others).max(axis=0) > 1e-12]
        # nuisance regressors (other trials by type, intercept) reduced to their span: collinear ones
        # (two trial types with identical regressors) cost nothing as long as this trial's own is estimable
        rank_others, basis = _span(others), _span(np.column_stack([others, np.ones(n_kept)]), basis=True)
        x = d_trials[:, i]
        residual = x - basis @ (basis.T @ x)
        norm, left = float(np.linalg.norm(x)), float(np.linalg.norm(residual))
        own = norm > 0 and left > norm * OWN_REGRESSOR_TOLERANCE
        rank = rank_others + int(own)
        resid_dof[i] = dof - rank
        if own:
            W[i] = residual / (left * left)  # Frisch-Waugh-Lovell: the trial's beta given the nuisance span
            inflation[i] = (W[i] @ W[i]) * raw_norm2[i] if raw_norm2[i] > 0 else np.inf
        if norm == 0:
            reason[i] = "rank-deficient: the trial's own regressor is not estimable (removed by cleaning)"
        elif not own:
            reason[i] = ("rank-deficient: the trial's own regressor is not estimable (collinear with the regressors "
                         f"of other trials and the intercept: {left / norm:.1e} of it is independent of them)")
        elif resid_dof[i] < MIN_TRIAL_DOF:
            reason[i] = (f"rank-deficient per-trial model: {rank} regressors for {dof} degrees of freedom "
                         "left by cleaning")
        elif not inflation[i] <= MAX_VARIANCE_INFLATION:
            reason[i] = (f"ill-conditioned per-trial model: beta variance inflated {inflation[i]:.3g}x "
                         "(cleaning removed most of the trial regressor, or it is nearly collinear with the others)")
    estimable = np.array([r == "" for r in reason])
    betas = np.empty((n_trials, cleaned.shape[1]), dtype=np.float32)
    for start in range(0, cleaned.shape[1], chunk_size):
        cols = slice(start, start + chunk_size)
        betas[:, cols] = W @ np.asarray(cleaned[:, cols], dtype=np.float64)
    betas[~estimable] = np.nan
    for i in np.flatnonzero(estimable & (retained < 0.5)):
        reason[i] = f"only {retained[i]:.0%} of the response falls in kept volumes"
    valid = estimable & (retained >= 0.5)
    return TrialEstimates(betas=betas, valid=valid, reason=reason, response_retained=retained,
                          variance_inflation=inflation, residual_dof=resid_dof)
