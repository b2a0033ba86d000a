"""Trial-wise models of one run: the design for an HRF choice, LSA and LSS estimates, R² and beta variance.

Every model is fitted on the cleaned signal with the design cleaned by the
same linear operator (Frisch-Waugh-Lovell: equal to a first-level model on the
raw run with the confounds, trends and filter in the design, nilearn's
``FirstLevelModel`` with ``noise_model="ols"``).

- **LSA** (least squares all): one model per run, one regressor (or one block
  of basis regressors) per trial, plus an intercept.
- **LSS** (least squares separate): for each trial, a model with the trial's
  own block, one block per trial type made of the other trials of that type,
  and an intercept (Mumford et al. 2012). LSS uses the ``trial_type`` values
  to group the other trials; LSA does not use them.

Both return a :class:`TrialFit`: the coefficients of each trial's basis
(``betas`` is the trial's beta: the canonical regressor's coefficient with a
derivative basis, nilearn's convention; every FIR bin with ``fir``), the
variance factor of each beta (its variance per unit noise variance of a
column), per-column R² of the LSA model, and the validity bookkeeping of
:class:`bidsapp.core.events.TrialEstimates`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bidsapp.core import timing
from bidsapp.core.hrf import HRFBasis, make_basis

#: a trial's estimate is not valid when its model leaves fewer residual degrees of freedom
MIN_TRIAL_DOF = 1
#: ... or when its variance is inflated more than this, relative to the trial regressor alone in the raw run
MAX_VARIANCE_INFLATION = 100.0
#: ... or when less than this share of its own (cleaned) regressor is independent of the other regressors
OWN_REGRESSOR_TOLERANCE = 1e-8
#: a response with less than this share of its energy in kept volumes keeps its beta but is not valid
MIN_RESPONSE_RETAINED = 0.5


@dataclass
class TrialFit:
    """Trial-wise estimates of one run under one trial model and HRF basis.

    Attributes
    ----------
    coefficients : numpy.ndarray, float32, shape (n_trials, n_basis, n_features)
        Coefficient of each basis regressor of each trial (NaN when not estimable).
    valid : numpy.ndarray of bool, shape (n_trials,)
    reason : list of str
        Why a trial is not valid ("" when valid).
    response_retained : numpy.ndarray, shape (n_trials,)
        Share of the trial's modelled response energy that falls in kept volumes.
    variance_inflation : numpy.ndarray, shape (n_trials,)
        Variance of the trial's beta relative to that of its regressor alone on the raw kept volumes.
    variance_factor : numpy.ndarray, shape (n_trials,)
        Variance of the trial's beta per unit noise variance of a column (``||w||²`` of its weights);
        multiply by a column's residual variance for the beta's variance.
    residual_dof : numpy.ndarray of int, shape (n_trials,)
    r2 : numpy.ndarray, shape (n_features,)
        R² of the LSA model (all trials, intercept) on each cleaned column.
    basis : HRFBasis
        The basis (with library shapes: the first shape used).
    shapes : numpy.ndarray of int or None, shape (n_features,)
        Library HRF shape of each column.
    """

    coefficients: np.ndarray
    valid: np.ndarray
    reason: list[str]
    response_retained: np.ndarray
    variance_inflation: np.ndarray
    variance_factor: np.ndarray
    residual_dof: np.ndarray
    r2: np.ndarray
    basis: HRFBasis
    shapes: np.ndarray | None = None

    @property
    def betas(self) -> np.ndarray:
        """The trial's beta (first basis coefficient), shape (n_trials, n_features); with FIR every bin,
        trial-major, shape (n_trials * n_bins, n_features)."""
        if self.basis.model == "fir":
            return self.coefficients.reshape(-1, self.coefficients.shape[2])
        return self.coefficients[:, 0]


def trial_regressors(n_volumes: int, onsets: np.ndarray, durations: np.ndarray, basis: HRFBasis, *,
                     t_r: float, start_time: float = 0.0, orthogonalize: bool = True) -> np.ndarray:
    """Raw (uncleaned) regressors of each trial on the run's volume times (a trial's derivative regressors
    orthogonalized on its canonical one unless ``orthogonalize`` is False).

    Returns
    -------
    numpy.ndarray, shape (n_volumes, n_trials, n_basis)
    """
    frame_times = start_time + np.arange(n_volumes) * t_r
    return basis.regressors(frame_times, np.asarray(onsets, float), np.asarray(durations, float),
                            [np.array([k]) for k in range(len(onsets))], t_r, orthogonalize)


def _span(columns: np.ndarray, basis: bool = False):
    """Rank of ``columns`` (each scaled to unit norm; singular values above 1e-10 of the largest), or an
    orthonormal basis of their span (shape (n, rank)) with ``basis=True``."""
    if columns.shape[1] == 0:
        return np.zeros((columns.shape[0], 0)) if basis else 0
    norms = np.linalg.norm(columns, axis=0)
    u, s, _ = np.linalg.svd(columns / np.where(norms > 0, norms, 1), full_matrices=False)
    rank = int((s > s[0] * 1e-10).sum()) if s.size and s[0] > 0 else 0
    return u[:, :rank] if basis else rank


def _energy(raw: np.ndarray, basis: HRFBasis) -> np.ndarray:
    """The response of each trial whose energy counts (the canonical regressor; FIR: all its bins)."""
    return raw.sum(axis=2) if basis.model == "fir" else raw[:, :, 0]


@dataclass
class _Weights:
    """Per-trial weight rows and bookkeeping, before they meet the data."""

    W: np.ndarray  # (n_trials, n_basis, n_kept)
    estimable: np.ndarray  # (n_trials, n_basis) bool
    reason: list[str]
    inflation: np.ndarray
    factor: np.ndarray
    resid_dof: np.ndarray


def _own_block(x: np.ndarray, span: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Weights of a trial's own columns given the nuisance ``span`` (orthonormal) and each other (FWL).

    Returns
    -------
    W : (k, n) weights (zero rows for columns not estimable), estimable : (k,) bool,
    independent : share of the least independent own column left after the nuisance span.
    """
    k = x.shape[1]
    W, ok = np.zeros((k, x.shape[0])), np.zeros(k, bool)
    norms = np.linalg.norm(x, axis=0)
    cols = np.flatnonzero(norms > 1e-10 * norms.max(initial=0.0))
    if cols.size == 0:
        return W, ok, 0.0
    resid = x[:, cols] - span @ (span.T @ x[:, cols])
    sv = np.linalg.svd(resid / norms[cols], compute_uv=False)
    independent = float(sv.min())
    if independent > OWN_REGRESSOR_TOLERANCE:
        W[cols] = np.linalg.pinv(resid)
        ok[cols] = True
    return W, ok, independent


def _verdict(i: int, w: _Weights, dof: int, rank: int, norm: float, independent: float | None, fir: bool) -> str:
    """The reason a trial's estimate is not valid ("" when it is)."""
    if norm == 0:
        return "rank-deficient: the trial's own regressor is not estimable (removed by cleaning)"
    if not (w.estimable[i].any() if fir else w.estimable[i, 0]):
        share = "" if independent is None else f": {independent:.1e} of it is independent of them"
        return ("rank-deficient: the trial's own regressor is not estimable (collinear with the regressors "
                f"of other trials and the intercept{share})")
    if w.resid_dof[i] < MIN_TRIAL_DOF:
        return f"rank-deficient per-trial model: {rank} regressors for {dof} degrees of freedom left by cleaning"
    if not w.inflation[i] <= MAX_VARIANCE_INFLATION:
        return (f"ill-conditioned per-trial model: beta variance inflated {w.inflation[i]:.3g}x "
                "(cleaning removed most of the trial regressor, or it is nearly collinear with the others)")
    return ""


def _missing_bins(basis: HRFBasis, ok: np.ndarray, own: np.ndarray) -> str:
    """FIR trials with bins that are not estimable: which, and why (a trial's shape needs every bin)."""
    if basis.model != "fir" or ok.all():
        return ""
    empty = ~ok & (np.abs(own).max(axis=0) == 0)
    parts = []
    if empty.any():
        parts.append(f"FIR bins at offsets {', '.join(f'{o:g}' for o in basis.offsets[empty])} s have no kept "
                     "volume (outside the run or censored)")
    if (~ok & ~empty).any():
        parts.append(f"FIR bins at offsets {', '.join(f'{o:g}' for o in basis.offsets[~ok & ~empty])} s are "
                     "collinear with other trials' bins (trials closer than the FIR window at a regular spacing)")
    return "; ".join(parts)


def lss_weights(d_trials: np.ndarray, tindex: np.ndarray, raw_norm2: np.ndarray, dof: int, basis: HRFBasis,
                late: np.ndarray, d_plain: np.ndarray | None = None) -> _Weights:
    """LSS weights: for each trial, its own block given the other trials grouped by type and an intercept.

    Parameters
    ----------
    d_trials : numpy.ndarray, shape (n_kept, n_trials, n_basis)
        Cleaned regressors of each trial.
    tindex : numpy.ndarray of int, shape (n_trials,)
        Trial type of each trial (an index).
    raw_norm2 : numpy.ndarray, shape (n_trials, n_basis)
        Squared norm of each raw (centred, kept) regressor, for the variance inflation.
    late : numpy.ndarray of bool
        Trials starting after the end of the run (not estimated).
    d_plain : numpy.ndarray, optional
        The cleaned regressors without orthogonalization, summed into the other trials' blocks (nilearn
        orthogonalizes the block of a group, not each of its trials); default ``d_trials``.
    """
    n_kept, n_trials, k = d_trials.shape
    d_plain = d_trials if d_plain is None else d_plain
    n_types = int(tindex.max()) + 1 if n_trials else 0
    d_types = np.stack([d_plain[:, tindex == t].sum(axis=1) for t in range(n_types)], axis=1)
    w = _Weights(np.zeros((n_trials, k, n_kept)), np.zeros((n_trials, k), bool), [""] * n_trials,
                 np.full(n_trials, np.inf), np.full(n_trials, np.inf), np.zeros(n_trials, int))
    ones = np.ones((n_kept, 1))
    for i in range(n_trials):
        if late[i]:
            continue
        others = d_types.copy()
        others[:, tindex[i]] -= d_plain[:, i]
        others = others.reshape(n_kept, -1)
        others = others[:, np.abs(others).max(axis=0) > 1e-12]
        # nuisance regressors (other trials by type, intercept) reduced to their span: collinear ones
        # (two trial types with identical regressors) cost nothing as long as this trial's own is estimable
        rank_others, span = _span(others), _span(np.column_stack([others, ones]), basis=True)
        x = d_trials[:, i]
        w.W[i], w.estimable[i], independent = _own_block(x, span)
        rank = rank_others + int(w.estimable[i].sum())
        w.resid_dof[i] = dof - rank
        _inflation(w, i, raw_norm2[i], basis)
        norm = float(np.linalg.norm(x[:, 0] if basis.model != "fir" else x))
        w.reason[i] = _verdict(i, w, dof, rank, norm, independent, basis.model == "fir")
    return w


def _inflation(w: _Weights, i: int, raw_norm2: np.ndarray, basis: HRFBasis) -> None:
    """Variance factor and inflation of trial ``i``'s beta (FIR: the worst bin)."""
    cols = range(w.W.shape[1]) if basis.model == "fir" else [0]
    factors = [float(w.W[i, c] @ w.W[i, c]) for c in cols if w.estimable[i, c]]
    if not factors:
        return
    w.factor[i] = max(factors)
    infl = [float(w.W[i, c] @ w.W[i, c]) * raw_norm2[c] if raw_norm2[c] > 0 else np.inf
            for c in cols if w.estimable[i, c]]
    w.inflation[i] = max(infl)


def lsa_weights(d_trials: np.ndarray, raw_norm2: np.ndarray, dof: int, basis: HRFBasis, late: np.ndarray) -> _Weights:
    """LSA weights: all trials' blocks and an intercept in one model; each coefficient is estimable when it is
    identified (its unit vector lies in the row space of the design) and is the pseudo-inverse's row.

    Parameters are those of :func:`lss_weights` (without the trial types).
    """
    n_kept, n_trials, k = d_trials.shape
    X = d_trials.reshape(n_kept, n_trials * k).copy()
    X[:, np.repeat(late, k)] = 0.0
    norms = np.linalg.norm(X, axis=0)
    used = np.flatnonzero(norms > 1e-12 * max(norms.max(initial=0.0), 1e-300))
    design = np.column_stack([X[:, used] / norms[used], np.ones(n_kept) / np.sqrt(n_kept)])
    u, s, vt = np.linalg.svd(design, full_matrices=False)
    r = int((s > s[0] * 1e-10).sum()) if s.size and s[0] > 0 else 0
    v = vt[:r].T  # (p, r)
    rank = _span(X[:, used])  # the intercept is already in the cleaning's degrees of freedom
    identified = (v[:-1] ** 2).sum(axis=1) > 1 - 1e-6
    pinv = (v[:-1] / s[:r]) @ u[:, :r].T / norms[used][:, None]  # rows: coefficients of the used columns
    W = np.zeros((n_trials * k, n_kept))
    W[used[identified]] = pinv[identified]
    ok = np.zeros(n_trials * k, bool)
    ok[used[identified]] = True
    w = _Weights(W.reshape(n_trials, k, n_kept), ok.reshape(n_trials, k), [""] * n_trials,
                 np.full(n_trials, np.inf), np.full(n_trials, np.inf), np.full(n_trials, dof - rank))
    for i in range(n_trials):
        if late[i]:
            continue
        _inflation(w, i, raw_norm2[i], basis)
        own = d_trials[:, i, 0] if basis.model != "fir" else d_trials[:, i]
        w.reason[i] = _verdict(i, w, dof, rank, float(np.linalg.norm(own)), None, basis.model == "fir")
    return w


def lsa_span(d_trials: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the centred LSA design (every trial's cleaned regressors), shape (n_kept, rank)."""
    X = d_trials.reshape(d_trials.shape[0], -1)
    X = X[:, np.linalg.norm(X, axis=0) > 0]
    return _span(X - X.mean(axis=0), basis=True)


def lsa_r2(cleaned: np.ndarray, d_trials: np.ndarray | None = None, *, span: np.ndarray | None = None,
           chunk_size: int = 32768) -> np.ndarray:
    """R² of the LSA model (every trial's block and an intercept) on each cleaned column.

    Parameters
    ----------
    cleaned : numpy.ndarray, shape (n_kept, n_features)
    d_trials : numpy.ndarray, shape (n_kept, n_trials, n_basis), optional
        Cleaned regressors; or give their ``span`` (:func:`lsa_span`).

    Returns
    -------
    numpy.ndarray, shape (n_features,)
        ``1 - RSS / TSS`` (TSS about the column's mean); 0 for constant columns.
    """
    span = lsa_span(d_trials) if span is None else span
    out = np.zeros(cleaned.shape[1])
    for start in range(0, cleaned.shape[1], chunk_size):
        Y = np.asarray(cleaned[:, start:start + chunk_size], dtype=np.float64)
        Y = Y - Y.mean(axis=0)
        tss = (Y**2).sum(axis=0)
        explained = ((span.T @ Y) ** 2).sum(axis=0)
        out[start:start + chunk_size] = np.where(tss > 0, explained / np.where(tss > 0, tss, 1), 0.0)
    return out


@dataclass
class RunDesign:
    """The per-run design of every trial under one basis, raw and cleaned.

    Attributes
    ----------
    raw : numpy.ndarray, shape (n_volumes, n_trials, n_basis)
    cleaned : numpy.ndarray, shape (n_kept, n_trials, n_basis)
    retained : numpy.ndarray, shape (n_trials,)
    raw_norm2 : numpy.ndarray, shape (n_trials, n_basis)
    late : numpy.ndarray of bool, shape (n_trials,)
    plain : numpy.ndarray or None, shape (n_kept, n_trials, n_basis)
        Cleaned regressors without orthogonalization (None when the basis has one regressor or is FIR).
    """

    raw: np.ndarray
    cleaned: np.ndarray
    retained: np.ndarray
    raw_norm2: np.ndarray
    late: np.ndarray
    plain: np.ndarray | None = None


def run_design(operator: np.ndarray, kept_volumes: np.ndarray, onsets: np.ndarray, durations: np.ndarray,
               basis: HRFBasis, *, t_r: float, start_time: float = 0.0) -> RunDesign:
    """Build the trials' regressors on the run and clean them with the data's operator (n_kept, n_volumes)."""
    n_kept, n_vol = operator.shape
    raw = trial_regressors(n_vol, onsets, durations, basis, t_r=t_r, start_time=start_time)
    cleaned = np.einsum("kv,vtb->ktb", operator, raw)
    kept = np.asarray(kept_volumes)
    retained = response_retained(n_vol, kept, onsets, durations, basis, t_r=t_r, start_time=start_time)
    raw_kept = raw[kept] - raw[kept].mean(axis=0)
    late = timing.after(onsets, start_time + n_vol * t_r, t_r)
    plain = None
    if basis.size > 1 and basis.kernels is not None:
        plain = np.einsum("kv,vtb->ktb", operator, trial_regressors(n_vol, onsets, durations, basis, t_r=t_r,
                                                                    start_time=start_time, orthogonalize=False))
    return RunDesign(raw, cleaned, retained, (raw_kept**2).sum(axis=0), late, plain)


def response_retained(n_volumes: int, kept_volumes: np.ndarray, onsets: np.ndarray, durations: np.ndarray,
                      basis: HRFBasis, *, t_r: float, start_time: float = 0.0) -> np.ndarray:
    """Share of each trial's modelled response (its energy: canonical regressor; FIR: its bins) that falls in the
    run's kept volumes, out of its whole response, sampled on the run's volume grid extended before the run's
    start and past its end (a trial 2 s before the end keeps a small share, one before the run none).

    A trial more than the run's length after its end, or whose response (HRF tail included) ends more than the
    run's length before its start, cannot reach the run: it keeps 0 without being sampled. The grid spans the
    run and the other trials, as it would without those, so onsets far outside the run (e.g. written in
    milliseconds) cost no memory and do not change the others' shares.

    Returns
    -------
    numpy.ndarray, shape (n_trials,)
    """
    onsets, durations = np.asarray(onsets, float), np.asarray(durations, float)
    out = np.zeros(onsets.size)
    offsets = getattr(basis, "offsets", None)
    offsets = np.zeros(1) if offsets is None or np.size(offsets) == 0 else np.asarray(offsets, float)
    tail = 48.0 + max(float(offsets.max()), 0.0)  # the HRF's 32 s (FIR: the window's end) and a margin
    lead = min(float(offsets.min()), 0.0)  # FIR: a window starting before the onset
    span = n_volumes * t_r
    run_end = start_time + span  # a TR after the last volume
    near = np.flatnonzero(~timing.after(onsets + lead, run_end + span, t_r)
                          & ~timing.before(onsets + durations + tail, start_time - span, t_r))
    if near.size == 0:
        return out
    onsets, durations = onsets[near], durations[near]
    before = int(np.ceil(max(start_time - onsets.min() - lead, 0.0) / t_r)) + 1
    after = int(np.ceil(max((onsets + durations).max() + tail - run_end, 0.0) / t_r))
    raw = trial_regressors(before + n_volumes + after, onsets, durations, basis, t_r=t_r,
                           start_time=start_time - before * t_r)
    resp = _energy(raw, basis)
    energy = (resp**2).sum(axis=0)
    inside = (resp[before + np.asarray(kept_volumes, dtype=int)] ** 2).sum(axis=0)
    out[near] = np.where(energy > 0, inside / np.where(energy > 0, energy, 1.0), 0.0)
    return out


def trial_weights(model: str, design: RunDesign, trial_types: list[str], dof: int, basis: HRFBasis) -> _Weights:
    """The weights of ``model`` (``lss`` or ``lsa``) on a run's design."""
    if model == "lsa":
        return lsa_weights(design.cleaned, design.raw_norm2, dof, basis, design.late)
    if model == "lss":
        types = sorted(set(trial_types))
        tindex = np.array([types.index(t) for t in trial_types], dtype=int)
        return lss_weights(design.cleaned, tindex, design.raw_norm2, dof, basis, design.late, design.plain)
    raise ValueError(f"Unknown trial model {model!r}; use lss or lsa.")


def _fit_basis(model: str, operator: np.ndarray, kept_volumes: np.ndarray, onsets: np.ndarray,
               durations: np.ndarray, trial_types: list[str], basis: HRFBasis, *, t_r: float, start_time: float,
               dof: int) -> tuple[RunDesign, _Weights, list[str]]:
    """Design, weights and the final reason of each trial (validity rules of :func:`fit_trials`) for one basis."""
    design = run_design(operator, kept_volumes, onsets, durations, basis, t_r=t_r, start_time=start_time)
    w = trial_weights(model, design, trial_types, dof, basis)
    run_end = start_time + operator.shape[1] * t_r
    for i in np.flatnonzero(design.late):
        w.reason[i] = f"starts after the end of the run ({run_end:g} s)"
    reason = list(w.reason)
    for i in np.flatnonzero([r == "" for r in w.reason]):
        if timing.before(onsets[i], 0.0, t_r):
            reason[i] = f"starts before the run (onset {onsets[i]:g} s < 0)"
        else:
            reason[i] = _missing_bins(basis, w.estimable[i], design.cleaned[:, i])
        if not reason[i] and design.retained[i] < MIN_RESPONSE_RETAINED:
            reason[i] = (f"only {design.retained[i]:.0%} of the response falls in kept volumes of the run (censored "
                         "or after its end)")
    return design, w, reason


def _apply(w: _Weights, hard: np.ndarray, cleaned: np.ndarray, cols: np.ndarray, out: np.ndarray, r2: np.ndarray,
           design: RunDesign, chunk_size: int) -> None:
    """Coefficients (``W @ cleaned``, NaN where not estimable) and LSA R² of the columns ``cols``, in chunks."""
    n_trials, k, n_kept = w.W.shape
    flat = w.W.reshape(n_trials * k, n_kept)
    nan = (~w.estimable | hard[:, None]).reshape(-1)
    span = lsa_span(design.cleaned)
    for start in range(0, cols.size, chunk_size):
        idx = cols[start:start + chunk_size]
        block = cleaned[:, start:start + chunk_size] if idx.size == cleaned.shape[1] else cleaned[:, idx]
        Y = np.asarray(block, dtype=np.float64)
        part = flat @ Y
        part[nan] = np.nan
        out[:, :, idx] = part.reshape(n_trials, k, -1)
        r2[idx] = lsa_r2(Y, span=span, chunk_size=chunk_size)


def fit_trials(
    model: str,
    cleaned: np.ndarray,
    operator: np.ndarray,
    kept_volumes: np.ndarray,
    onsets: np.ndarray,
    durations: np.ndarray,
    trial_types: list[str],
    *,
    t_r: float,
    start_time: float = 0.0,
    basis: HRFBasis | None = None,
    shapes: np.ndarray | None = None,
    dof: int | None = None,
    chunk_size: int = 32768,
) -> TrialFit:
    """Trial-wise estimates of one run (``model`` = ``lss`` or ``lsa``) on the cleaned signal.

    A trial is not valid, with NaN betas and a ``reason``, when it starts after
    the end of the run, when its own regressor is not estimable (removed by
    cleaning, or in the span of the others), when its model leaves fewer than
    ``MIN_TRIAL_DOF`` residual degrees of freedom, or when the variance of its
    beta is inflated more than ``MAX_VARIANCE_INFLATION`` times. It keeps its
    betas but is not valid when its response mostly falls in censored volumes
    (``response_retained`` < 0.5) or (FIR) when a bin is not estimable.

    Parameters
    ----------
    cleaned : numpy.ndarray, shape (n_kept, n_features)
    operator : numpy.ndarray, shape (n_kept, n_volumes)
        The cleaning operator that produced ``cleaned`` (before standardization).
    kept_volumes : numpy.ndarray of int, shape (n_kept,)
    onsets, durations : numpy.ndarray, shape (n_trials,)
    trial_types : list of str
        Used by LSS only (the other trials are grouped by type).
    basis : HRFBasis, optional
        Default: SPM canonical HRF.
    shapes : numpy.ndarray of int, shape (n_features,), optional
        Library HRF shape of each column (:func:`bidsapp.core.hrf_library.choose_shapes`); overrides ``basis``.
        Per-trial fields then combine the shapes used: valid under every shape, the first reason, the largest
        variance inflation and factor, the smallest response_retained and residual dof.
    dof : int, optional
        Degrees of freedom left by the cleaning (default: :func:`bidsapp.core.signal.operator_dof`).
    """
    if dof is None:
        from bidsapp.core.signal import operator_dof

        dof = operator_dof(operator)
    n_features = cleaned.shape[1]
    if shapes is None:
        groups = [(basis or make_basis("spm", t_r), np.arange(n_features))]
    else:
        groups = [(make_basis("library", t_r, shape=int(h)), np.flatnonzero(shapes == h)) for h in np.unique(shapes)]
    n_trials, k = len(onsets), groups[0][0].size
    coefs = np.empty((n_trials, k, n_features), dtype=np.float32)
    r2 = np.zeros(n_features)
    fields = []
    for b, cols in groups:
        design, w, reason = _fit_basis(model, operator, kept_volumes, onsets, durations, trial_types, b, t_r=t_r,
                                       start_time=start_time, dof=dof)
        _apply(w, np.array([bool(r) for r in w.reason], dtype=bool), cleaned, cols, coefs,
               r2, design, chunk_size)
        fields.append((reason, design.retained, w.inflation, w.factor, w.resid_dof))
    reason = [next((f[0][i] for f in fields if f[0][i]), "") for i in range(n_trials)]
    return TrialFit(coefficients=coefs, valid=np.array([r == "" for r in reason]), reason=reason,
                    response_retained=np.min([f[1] for f in fields], axis=0),
                    variance_inflation=np.max([f[2] for f in fields], axis=0),
                    variance_factor=np.max([f[3] for f in fields], axis=0),
                    residual_dof=np.min([f[4] for f in fields], axis=0), r2=r2, basis=groups[0][0],
                    shapes=None if shapes is None else np.asarray(shapes))


def _overlapping_windows(onsets: np.ndarray, offsets: np.ndarray, t_r: float) -> np.ndarray:
    """Trials whose FIR window (bins ``offsets`` +- t_r / 2, half-open) overlaps another trial's in time (windows
    that only meet do not)."""
    order = np.argsort(onsets)
    start, stop = onsets[order] + offsets[0] - t_r / 2, onsets[order] + offsets[-1] + t_r / 2
    out = np.zeros(onsets.size, bool)
    later = np.r_[timing.before(start[1:], stop[:-1], t_r), False]  # a window overlaps the next one
    out[order] = later | np.r_[False, later[:-1]]
    return out


def check_trial_design(model: str, onsets: np.ndarray, durations: np.ndarray, basis: HRFBasis, *,
                       t_r: float) -> list[str]:
    """What the trials of a run do not allow, as one warning line each (item by item), or an error.

    - trials shorter than a TR: their regressors use their own duration (on a TR / oversampling grid, as
      nilearn) and each labels the one volume after its onset in ``_samples.tsv``;
    - FIR windows longer than the gap between trials: with LSA the bins of overlapping trials are not
      estimable (those trials get NaN and a reason); with LSS each trial is separated from the others through
      their per-type FIR shapes;
    - trials starting less than a TR apart: LSA cannot tell their responses apart (ill-conditioned, not valid).

    Raises
    ------
    ValueError
        With FIR and LSA when every trial's window overlaps another's (no estimate would remain).
    """
    onsets, durations = np.asarray(onsets, float), np.asarray(durations, float)
    out = []
    short = timing.before(durations, t_r, t_r)
    if short.any():
        out.append(f"{int(short.sum())} of {onsets.size} trial(s) last less than a TR ({t_r:g} s; shortest "
                   f"{durations.min():g} s): their regressors use their own duration and each labels the one volume "
                   "after its onset in _samples.tsv.")
    if basis.model == "fir" and onsets.size > 1:
        overlap = _overlapping_windows(onsets, basis.offsets, t_r)
        span = basis.offsets[-1] - basis.offsets[0] + t_r
        gap = float(np.diff(np.sort(onsets)).min())
        if overlap.all() and model == "lsa":
            raise ValueError(f"--hrf fir with --trial-estimates lsa: the FIR window ({span:g} s) is longer than the "
                             f"gap between every pair of consecutive trials (shortest {gap:g} s), so no trial's "
                             "bins are estimable; use --trial-estimates lss or a shorter --trial-window.")
        if overlap.any():
            what = ("their bins are not estimable (NaN, not valid); use --trial-estimates lss or a shorter "
                    "--trial-window" if model == "lsa" else
                    "each is separated from them through the other trials' per-type FIR shapes (LSS)")
            out.append(f"--hrf fir: the FIR window ({span:g} s) is longer than the gap before or after "
                       f"{int(overlap.sum())} trial(s) (shortest {gap:g} s): {what}.")
    if model == "lsa" and onsets.size > 1:
        close = int(timing.before(np.diff(np.sort(onsets)), t_r, t_r).sum())
        if close:
            out.append(f"{close} pair(s) of trials start less than a TR ({t_r:g} s) apart: LSA can hardly tell "
                       "their responses apart (see variance_inflation and reason in _betas.tsv).")
    return out
