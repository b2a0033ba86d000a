"""Signal cleaning with the order of operations and results of ``nilearn.signal.clean``.

Every step before standardization is linear in the signal and identical for
all columns: censored-volume interpolation (cubic spline), censoring, linear
detrending, zero-phase Butterworth filtering (``sosfiltfilt`` with odd
padding) and confound regression (projection on the orthogonal of the
detrended, filtered, standardized confounds). :func:`cleaning_operator`
therefore builds, once per run, the matrix ``A`` (n_kept x n_volumes) that
composes them, computed in float64 exactly as nilearn does on each column.
:func:`clean` applies ``A`` to chunks of columns (one BLAS matrix product per
chunk, so memory stays bounded) and standardizes. Building ``A`` costs
O(T**2) per step (each step is applied to its columns) plus the Gram
product for the degrees of freedom (O(T**3) by BLAS; O(T**2) through the steps
on long runs); applying it costs O(T**2) per column. On long runs the factors are applied one after the other instead
(O(T) per column, :class:`OperatorSteps`: the zero-phase Butterworth filter as
block products over groups of columns, :mod:`bidsapp.core.sos_blocks`;
detrending and projections as low-rank updates), chosen by a deterministic cost
model, with the same numbers to round-off. Either way the column chunks run in
threads, BLAS held to one thread.
"""

from __future__ import annotations

import os
import queue
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from bidsapp.core import sos_blocks
from bidsapp.core.butterworth import butter_sos
from bidsapp.core.npy import release_columns
from bidsapp.core.sos_blocks import sosfiltfilt_columns

STANDARDIZE = ("zscore_sample", "psc", None)
FILTERS = ("butterworth", "cosine", None)
EPS64 = np.finfo(np.float64).eps
#: a column whose cleaned standard deviation is below this fraction of its input RMS is constant (set to 0)
CONSTANT_RTOL = 1e-10
#: bytes of each float64 column-chunk buffer of :func:`apply_operator`: BLAS is efficient from a few hundred
#: columns, so 8 MB costs the CPU of 32 MB (T = 300, 4,000) or less (T = 1,200: 12 % less) and holds 96 MB
#: less memory with two threads (``benchmarks/README.md``)
BUFFER_BYTES = 8 << 20
#: fewest columns of a chunk whatever its bytes (long runs: T = 4,000 gives 262 columns by BUFFER_BYTES): 256 for
#: the dense product, 512 for the step-wise path, whose filter's loop over blocks costs less per value on wider
#: chunks (its chunk buffers then hold up to 30 % more from T ~ 2,000: 12 MB more at T = 4,000)
MIN_CHUNK_COLUMNS, MIN_STEPWISE_COLUMNS = 256, 512
#: with ``psc``, a mean at most this times n_volumes times the column's largest input magnitude is 0 (the
#: round-off of summing n values: nilearn's absolute ``eps`` alone depends on how the mean was rounded)
PSC_MEAN_RTOL = EPS64
#: fewer degrees of freedom than this left after cleaning gives a warning (below 1: an error)
MIN_DOF = 10
#: a cleaning operator whose largest singular value is at most this leaves no signal: float64 arithmetic on
#: T ~ 1e3 volumes has a relative round-off of about T * eps = 2e-13, so its output would be at least 2e-5
#: round-off relative to what it keeps; any larger gain keeps a signal that standardization can scale
ZERO_GAIN = 1e-8
#: confounds whose (pivoted-QR) condition number exceeds this give a warning: round-off decides the result
MAX_CONFOUND_CONDITION = 1e10


def _sample_indices(sample_mask, n: int) -> np.ndarray | None:
    """Accept a boolean keep-mask or an index array; return sorted indices."""
    if sample_mask is None:
        return None
    sm = np.asarray(sample_mask)
    if sm.dtype == bool:
        if sm.shape != (n,):
            raise ValueError(f"Boolean sample_mask has length {sm.size} but the run has {n} volumes.")
        idx = np.flatnonzero(sm)
    else:
        idx = sm.astype(np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"sample_mask indices must be in [0, {n - 1}], got {idx.min()}..{idx.max()}.")
        if np.any(np.diff(idx) <= 0):
            raise ValueError("sample_mask indices must be strictly increasing.")
    if idx.size == 0:
        raise ValueError("sample_mask removes every volume: nothing is left to clean. Relax the censoring thresholds.")
    return idx


def subtract_product(a: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``a -= u @ v`` in place, without a temporary the size of ``a`` when ``a`` is a C-contiguous float64 matrix
    (BLAS ``dgemm`` accumulating into ``a``: a fresh temporary of a chunk's size costs more in page faults
    than the product on some machines)."""
    if a.ndim == 2 and a.dtype == np.float64 and a.flags.c_contiguous and a.flags.writeable and a.size:
        # row-major a is column-major a.T: a.T -= v.T @ u.T
        linalg.blas.dgemm(-1.0, np.asfortranarray(v.T, dtype=np.float64), np.asfortranarray(u.T, dtype=np.float64),
                          beta=1.0, c=a.T, overwrite_c=True)
    else:
        a -= u @ v
    return a


def remove_trend(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """Remove the mean and the linear trend along ``axis`` (nilearn's ``_detrend``), in place.

    O(size) per call: the same as multiplying by ``I - 1/n - t t'`` without forming that matrix.
    """
    n = a.shape[axis]
    a -= a.mean(axis=axis, keepdims=True)
    t = np.arange(n, dtype=np.float64)
    t -= t.mean()
    norm = np.sqrt((t**2).sum())
    if norm >= EPS64:
        t /= norm
        if axis == 0:
            subtract_product(a, t[:, None], (t @ a)[None, :])
        else:
            a -= np.outer(a @ t, t)
    return a


def butterworth_sos(t_r: float, low_pass: float | None, high_pass: float | None, order: int = 5) -> np.ndarray:
    """Second-order sections of nilearn's Butterworth filter (``scipy.signal.butter``'s, without importing
    ``scipy.signal``: ``bidsapp.core.butterworth``)."""
    fs = 1.0 / t_r
    if high_pass is not None and low_pass is not None:
        return butter_sos(order, [high_pass, low_pass], "bandpass", fs)
    if high_pass is not None:
        return butter_sos(order, high_pass, "highpass", fs)
    return butter_sos(order, low_pass, "lowpass", fs)


def cosine_drift(high_pass: float, n: int, t_r: float) -> np.ndarray:
    """DCT-II drift regressors up to ``high_pass`` Hz, without the constant.

    Same as ``nilearn.glm.first_level.design_matrix`` cosine drifts (minus the
    constant column), used by ``filter="cosine"``. Their number is nilearn's to the bit: the sampling step is
    taken from the frame times as nilearn does, ``(t[-1] - t[0]) / (n - 1)``, which can differ from ``t_r`` by
    round-off and so give one drift fewer where ``2 n high_pass t_r`` is an integer (e.g. 375 volumes, TR 0.8 s,
    0.01 Hz).
    """
    step = (n - 1) * float(t_r) / (n - 1) if n > 1 else float(t_r)  # the last frame time over n - 1, rounded twice
    order = max(0, min(n - 1, int(np.floor(2 * n * high_pass * step))))
    times = np.arange(n)
    k = np.arange(1, order + 1)
    return np.sqrt(2.0 / n) * np.cos(np.pi / n * (times[:, None] + 0.5) * k[None, :])


def _interpolation_operator(n: int, keep: np.ndarray, t_r: float) -> tuple[np.ndarray, np.ndarray]:
    """Cubic-spline fill of censored volumes (nilearn, ``extrapolate=False``).

    Returns the operator restricted to the rows inside the first..last kept
    volume (rows outside cannot be interpolated and are dropped) and those rows.
    """
    times = np.arange(n) * t_r
    eye = np.eye(n)
    op = eye.copy()
    if keep.size < 2:
        raise ValueError("At least two uncensored volumes are needed to interpolate censored ones.")
    from scipy.interpolate import CubicSpline  # imported here: ~0.2 s of CPU, needed only with censoring

    spline = CubicSpline(times[keep], eye[keep], extrapolate=False)
    filled = spline(times)
    censored = np.setdiff1d(np.arange(n), keep)
    op[censored] = filled[censored]
    rows = np.flatnonzero(~np.isnan(op).all(axis=1))
    return op[rows], rows


def _standardize_confounds(conf: np.ndarray, standardize_confounds: bool, scale: np.ndarray | None = None
                           ) -> np.ndarray:
    """The confounds as regressed: centred and scaled to unit variance (``standardize_confounds``, nilearn's
    default) or divided by their largest magnitude.

    A column that the steps before (censoring's interpolation, detrending, filtering) reduced to round-off of
    ``scale`` (each column's largest magnitude as given: its standard deviation, or its largest magnitude when not
    centred, at most ``CONSTANT_RTOL * scale``) is 0, as a constant is once centred: scaled to unit variance, that
    round-off would be regressed out as a direction of its own (a constant confound with censoring and a filter,
    a linear trend with detrending).
    """
    if standardize_confounds:
        conf = conf - conf.mean(axis=0)
        spread = conf.std(axis=0, ddof=1) if conf.shape[0] > 1 else np.ones(conf.shape[1])
        none = spread < EPS64
    else:
        spread = np.max(np.abs(conf), axis=0)
        none = spread == 0
    vanished = spread <= CONSTANT_RTOL * scale if scale is not None else np.zeros(conf.shape[1], dtype=bool)
    conf = conf / np.where(none | vanished, 1.0, spread)
    conf[:, vanished] = 0.0
    return conf


@dataclass(frozen=True)
class CleaningOperator:
    """The linear part of cleaning, precomputed for one run.

    Attributes
    ----------
    matrix : numpy.ndarray, shape (n_kept, n_volumes)
        Applied to each column of the signals.
    mean_weights : numpy.ndarray, shape (n_volumes,)
        Weights giving nilearn's "original mean" (used by ``psc``).
    kept : numpy.ndarray of int, shape (n_kept,)
        Index of the input volume that each output row corresponds to.
    n_confounds_used : int
        Rank of the confound space removed (cosine drifts included).
    dof : int
        Degrees of freedom the operator leaves: without a Butterworth filter,
        ``n_kept`` minus the rank of everything removed (mean and trend, cosine
        drifts, confounds, censoring); with one, the effective (Satterthwaite)
        count of :func:`operator_dof`, which equals that rank for projections.
    removes_mean : bool
        True when constant series are mapped to 0 (then standardization does
        not use a further degree of freedom).
    dof_centred : int
        With a Butterworth filter, the effective degrees of freedom once each
        output column's mean is removed (as standardization does): the count of
        the centred operator, which can be lower than ``dof`` even when
        constants are mapped to 0 (a filter's output of a trend-free input can
        have a mean); -1 without a filter (then ``removes_mean`` decides).
    confound_condition : float
        Condition number estimate (ratio of the largest to the smallest kept
        pivot of the QR decomposition) of the standardized confounds; 1 without
        confounds.
    n_drifts : int
        Cosine drift regressors ``filter="cosine"`` added to the confounds: 0 when the confounds already hold
        cosine drifts (nilearn's rule: then the filter adds none, and the high-pass is the confounds' own).
    """

    matrix: np.ndarray
    mean_weights: np.ndarray
    kept: np.ndarray
    n_confounds_used: int
    dof: int = -1
    removes_mean: bool = False
    dof_centred: int = -1
    confound_condition: float = 1.0
    steps: OperatorSteps | None = None
    n_drifts: int = 0


@dataclass(frozen=True)
class OperatorSteps:
    """The factors of :attr:`CleaningOperator.matrix`, to apply it step by step.

    ``A x`` equals: read ``rows`` of ``x`` (all when None) and fill the ``censored`` positions
    among them with ``spline @ x[keep]``; remove mean and linear trend (``detrend``); filter
    with ``sosfiltfilt(sos)``; keep ``final_keep``; project out ``q``. Each step costs
    O(n_volumes) per column instead of the dense product's O(n_volumes**2), which wins on
    long runs (:func:`stepwise_is_cheaper`).
    """

    rows: np.ndarray | None
    censored: np.ndarray | None
    spline: np.ndarray | None
    keep: np.ndarray | None
    detrend: bool
    sos: np.ndarray | None
    final_keep: np.ndarray | None
    q: np.ndarray | None

    n_out: int = 0  #: rows of the result (n_kept; 0: not given)

    def prepare(self, x: np.ndarray, overwrite: bool = False) -> np.ndarray:
        """The steps before the filter: ``x`` (n_volumes, n_columns) -> C-contiguous float64 (n_rows, n_columns),
        censored volumes filled and detrended. With ``overwrite``, a C-contiguous float64 ``x`` whose rows are
        all read is detrended in place and returned."""
        if self.rows is not None:
            y = np.take(np.asarray(x, dtype=np.float64), self.rows, axis=0)
            if self.censored is not None and self.censored.size:
                y[self.censored] = self.spline @ x[self.keep]
        elif overwrite and x.dtype == np.float64 and x.flags.c_contiguous and x.flags.writeable:
            y = x
        else:
            y = np.array(x, dtype=np.float64, order="C")
        if self.detrend:
            remove_trend(y, axis=0)
        return y

    def finish(self, y: np.ndarray) -> np.ndarray:
        """The steps after the filter, on (n_rows, n_columns): keep ``final_keep``, project out ``q``."""
        if self.final_keep is not None:
            y = y[self.final_keep]
        if self.q is not None and self.q.shape[1]:
            subtract_product(y, self.q, self.q.T @ y)
        return y

    def apply(self, x: np.ndarray, overwrite: bool = False) -> np.ndarray:
        """``A @ x`` for a block ``x`` of shape (n_volumes, n_columns), in float64. With ``overwrite``, a
        float64 C-contiguous ``x`` is worked on in place (detrended, filtered group by group, projected):
        no second chunk-sized buffer."""
        y = self.prepare(x, overwrite=overwrite)
        if self.sos is not None:
            y = sosfiltfilt_columns(self.sos, y, out=y)  # each group of columns is copied before it is written
        return self.finish(y)


def default_threads() -> int:
    """Threads for the step-wise path: the CPUs this process may use, capped like BLAS by
    ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` when set (so both paths use the same cores)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        try:
            n = min(n, int(os.environ[var]))
        except (KeyError, ValueError):
            pass
    return max(1, n)


#: costs relative to one multiply-add of the dense BLAS product, per core (BLAS and the step-wise path both
#: use every core), measured on the development machine (2 cores, OpenBLAS, one thread each side; 8,192
#: columns, 36 confounds, T = 600..4,000): a flop of the filter's block products (per sample of the padded
#: series, both passes: ``2 * BLOCK + 4 * n_state + 2 * n_state**2 / BLOCK`` each way; 330-490 measured for a
#: band-pass, about 5x a flop of the large product: small products, copies and the loop over blocks) and a
#: sample's share of the other passes over memory (copy, detrend, standardize; 150-250 measured). With a
#: band-pass the step-wise path wins from T ~ 700 (T = 2,000: 2.3x, T = 4,000: 4.6x less CPU than the dense
#: product, ``benchmarks/bench_cleaning_paths.py``); the model takes it from T ~ 850, without a filter from
#: T ~ 350.
FILTER_FLOP_COST = 2.7
PASS_COST = 200.0


def stepwise_is_cheaper(operator: CleaningOperator) -> bool:
    """Whether applying :attr:`CleaningOperator.steps` costs less than the dense product.

    Deterministic (a cost model, not a timing), so a run gives the same bits every time.
    """
    return operator.steps is not None and _steps_are_cheaper(operator.steps, *operator.matrix.shape)


def filter_flops(sos: np.ndarray) -> float:
    """Flops per sample of the padded series of the step-wise path's zero-phase filter (both passes of
    :mod:`bidsapp.core.sos_blocks`' block products: ``2 * BLOCK + 4 * n_state + 2 * n_state**2 / BLOCK`` each)."""
    state, block = 2 * sos.shape[0], sos_blocks.BLOCK
    return 2 * (2 * block + 4 * state + 2 * state**2 / block)


def _steps_are_cheaper(st: OperatorSteps, m: int, n: int) -> bool:
    """The cost model of :func:`stepwise_is_cheaper` for steps ``st`` of an (m, n) operator."""
    dense = float(m) * n
    steps = PASS_COST * n
    if st.sos is not None:
        steps += FILTER_FLOP_COST * filter_flops(st.sos) * (n + 2 * sos_blocks.padlen_of(st.sos))
    steps += 4.0 * m * (0 if st.q is None else st.q.shape[1]) + (0 if st.spline is None else st.spline.size)
    return bool(steps < dense)


def check_filter(t_r: float, low_pass: float | None, high_pass: float | None, filter: str | None) -> None:
    """Validate TR and cut-offs; raise ``ValueError`` naming the value and the fix."""
    if t_r is None or not np.isfinite(t_r) or t_r <= 0:
        raise ValueError(f"Repetition time must be > 0 seconds, got t_r={t_r}. Check RepetitionTime in the BOLD JSON.")
    if filter not in FILTERS:
        raise ValueError(f"Unknown filter '{filter}'; use one of butterworth, cosine or none.")
    nyq = 0.5 / t_r
    for name, f in (("low_pass", low_pass), ("high_pass", high_pass)):
        if f is None:
            continue
        if not np.isfinite(f) or f <= 0:
            raise ValueError(f"{name} must be a positive frequency in Hz, got {f}.")
        if f >= nyq:
            raise ValueError(
                f"{name}={f} Hz is at or above the Nyquist frequency {nyq:g} Hz for TR {t_r} s; "
                f"choose a cut-off below {nyq:g} Hz."
            )
    if low_pass is not None and high_pass is not None and high_pass >= low_pass:
        raise ValueError(f"high_pass ({high_pass} Hz) must be lower than low_pass ({low_pass} Hz).")
    if filter == "cosine" and high_pass is None:
        raise ValueError("filter='cosine' needs high_pass (Hz).")
    if filter == "cosine" and low_pass is not None:
        raise ValueError(
            f"filter='cosine' is a high-pass (DCT drift regressors) and cannot apply low_pass={low_pass} Hz "
            "(nilearn ignores it with a warning); drop low_pass or use filter='butterworth'."
        )


def cleaning_operator(
    n_volumes: int,
    *,
    t_r: float,
    detrend: bool = True,
    confounds: np.ndarray | None = None,
    standardize_confounds: bool = True,
    filter: str | None = "butterworth",
    low_pass: float | None = None,
    high_pass: float | None = None,
    sample_mask=None,
    confound_names: list[str] | None = None,
) -> CleaningOperator:
    """Build the linear cleaning operator of ``nilearn.signal.clean`` for one run.

    Parameters are those of :func:`clean`; ``confound_names`` (one per confound column) name them in warnings.
    """
    n = int(n_volumes)
    check_filter(t_r, low_pass, high_pass, filter)
    keep = _sample_indices(sample_mask, n)
    conf = _checked_confounds(confounds, n)
    ftype = filter
    if filter == "butterworth" and low_pass is None and high_pass is None:
        ftype = None
    if filter is None:
        low_pass = high_pass = None
    conf, n_drifts = _with_cosine_drift(conf, high_pass, n, t_r, confound_names) if ftype == "cosine" else (conf, 0)
    scale = None if conf is None else np.abs(conf).max(axis=0)  # each confound's magnitude as given
    op, rows, conf, censoring = _censoring_step(n, keep, conf, ftype, t_r)
    final_keep, read_rows, censored, spline = censoring
    mean_weights = op.mean(axis=0)
    m = op.shape[0]
    if detrend:  # every step is linear: applied to the operator's columns, it composes the operator
        op = remove_trend(op)
        if conf is not None:
            conf = remove_trend(conf)
    sos = None
    if ftype == "butterworth":
        sos = butterworth_sos(t_r, low_pass, high_pass)
        op = sosfiltfilt_columns(sos, op, out=op)  # in op's own memory: a fresh T x T costs more than the filter
        if conf is not None:
            conf = sosfiltfilt_columns(sos, conf)
        if final_keep is not None:
            op, rows = op[final_keep], rows[final_keep]
            if conf is not None:
                conf = conf[final_keep]
    rank, condition, q = 0, 1.0, None
    if conf is not None:
        q, condition = _confound_basis(_standardize_confounds(conf, standardize_confounds, scale))
        rank = q.shape[1]
        op = subtract_product(np.ascontiguousarray(op), q, q.T @ op)  # op is this function's own array
    steps = OperatorSteps(rows=read_rows, censored=censored, spline=spline, keep=keep, detrend=detrend, sos=sos,
                          final_keep=final_keep, q=q, n_out=op.shape[0])
    if ftype == "butterworth":  # a filter attenuates gradually: effective (Satterthwaite) degrees of freedom
        # op @ op.T is op applied to op.T's columns: O(T**2) through the steps where they are cheaper
        gram = steps.apply(op.T) if _steps_are_cheaper(steps, *op.shape) else op @ op.T
        dof = operator_dof(op, gram=gram)
        dof_centred = operator_dof(op, gram=_centred_gram(gram))  # gram is centred in place
    else:  # projections only: kept volumes minus the ranks removed
        dof, dof_centred = max(m - (min(m, 2) if detrend else 0) - rank, 0), -1
    return CleaningOperator(matrix=op, mean_weights=mean_weights, kept=rows, n_confounds_used=rank,
                            dof=dof, removes_mean=_removes_mean(op), dof_centred=dof_centred,
                            confound_condition=condition, steps=steps, n_drifts=n_drifts)


def _centred_gram(gram: np.ndarray) -> np.ndarray:
    """``P S P`` for the Gram matrix ``S = op @ op.T`` and ``P`` the centring of the output's rows: the Gram matrix
    of ``P @ op``, the operator followed by the removal of each column's mean (``S`` is symmetric). Computed in
    ``gram``'s memory (T x T: no new pages), in the order of ``gram - r[None, :] - r[:, None] + r.mean()``."""
    r = gram.mean(axis=0)
    gram -= r[None, :]
    gram -= r[:, None]
    gram += r.mean()
    return gram


def _censoring_step(n: int, keep: np.ndarray | None, conf: np.ndarray | None, ftype: str | None, t_r: float):
    """The operator's first step, censoring: the kept volumes (``keep``), or, before a Butterworth filter, the
    censored ones interpolated from the kept (nilearn's cubic spline) and dropped after filtering.

    Returns the (rows, n) operator, the volume of each row, the confounds through the same step and
    (``final_keep``, the rows read, the censored rows, the spline weights) for :class:`OperatorSteps`.
    """
    op = np.eye(n)
    if keep is None:
        return op, np.arange(n), conf, (None, None, None, None)
    if ftype == "butterworth":
        op, rows = _interpolation_operator(n, keep, t_r)
        if conf is not None:
            conf = op @ conf
        censored = np.flatnonzero(~np.isin(rows, keep))
        return op, rows, conf, (keep - keep[0], rows, censored, op[censored][:, keep])
    return op[keep], keep, None if conf is None else conf[keep], (None, keep, None, None)


def _checked_confounds(confounds, n: int) -> np.ndarray | None:
    """Confounds as a float64 (n, k) array (None when absent or without columns); one line on a bad shape or
    a non-finite value."""
    if confounds is None:
        return None
    conf = np.array(confounds, dtype=np.float64)
    if conf.ndim == 1:
        conf = conf[:, None]
    if conf.ndim != 2:
        raise ValueError(
            f"confounds must be an array of shape (n_volumes, n_confounds) = ({n}, k) or ({n},), got "
            f"{'a scalar' if conf.ndim == 0 else f'shape {conf.shape}'}; pass one column per regressor.")
    if conf.shape[0] != n:
        raise ValueError(
            f"Confounds have {conf.shape[0]} rows but the run has {n} volumes; pass the "
            "confounds file of this run."
        )
    if not np.isfinite(conf).all():
        bad = sorted(set(np.nonzero(~np.isfinite(conf))[1].tolist()))
        raise ValueError(f"Confound columns {bad} contain NaN or infinite values; fill or drop them.")
    return conf if conf.shape[1] else None


def _with_cosine_drift(conf: np.ndarray | None, high_pass: float, n: int, t_r: float,
                       names: list[str] | None = None) -> tuple[np.ndarray | None, int]:
    """The confounds with the DCT high-pass drifts, unless they already hold them (nilearn's rule: a drift
    correlated above 0.9 with a confound, e.g. fMRIPrep's ``cosine`` columns, or a slow drift of another column),
    and the number of drifts added. When none is added for that reason, one warning names the confound (by its
    name in ``names``, else its column number)."""
    drift = cosine_drift(high_pass, n, t_r)
    if not drift.shape[1]:
        return conf, 0
    if conf is None:
        return drift, drift.shape[1]
    corr = np.corrcoef(drift.T, conf.T)
    np.fill_diagonal(corr, 0)
    held = np.flatnonzero((corr[: drift.shape[1], drift.shape[1]:] > 0.9).any(axis=0))
    if held.size:
        which = repr(names[held[0]]) if names is not None and len(names) == conf.shape[1] else f"column {held[0]}"
        warnings.warn(f"filter='cosine' with high_pass={high_pass:g} Hz adds no drift: confound {which} correlates "
                      "above 0.9 with one of its cosine drifts (nilearn's rule), so no high-pass at this cut-off is "
                      "applied beyond what the confounds remove; to filter at it, leave that confound out or use "
                      "filter='butterworth'.", stacklevel=3)
        return conf, 0
    return np.hstack([conf, drift]), drift.shape[1]


def _confound_basis(conf: np.ndarray) -> tuple[np.ndarray, float]:
    """Orthonormal basis of the confounds' span (pivoted QR, columns under round-off dropped) and the
    condition number of the kept ones; one warning when they are nearly collinear."""
    q, r, _ = linalg.qr(conf, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    used = diag > EPS64 * 100.0
    q = q[:, used]
    condition = float(diag.max() / diag[used].min()) if q.shape[1] else 1.0
    if condition > MAX_CONFOUND_CONDITION:
        warnings.warn(
            f"the confounds are nearly collinear (condition number {condition:.1e}): the regression "
            "removes directions that round-off defines, so results are not reproducible; use fewer "
            "regressors (e.g. fewer cosine drifts or less censoring).", stacklevel=3)
    return q, condition


def operator_dof(op: np.ndarray, gram: np.ndarray | None = None) -> int:
    """Effective degrees of freedom a cleaning matrix leaves (Satterthwaite), rounded down.

    With ``lam`` the eigenvalues of ``S = op @ op.T`` (squared singular values), the effective degrees of
    freedom of white noise passed through ``op`` is ``sum(lam)**2 / sum(lam**2) = trace(S)**2 / ||S||_F**2``
    (Worsley & Friston 1995, the count SPM uses for filtered data): the rank for a projection (detrending,
    confound regression, censoring), and for a filter the number of independent values the
    standardization's variance is worth, whatever the filter's gain. Computed from the Gram matrix (one
    BLAS product, no eigen-decomposition: 0.4 s instead of 7 s at T = 2,000). A matrix with
    ``||S||_F <= ZERO_GAIN**2`` (its largest singular value is then at most ``ZERO_GAIN``) leaves 0: its
    output is the round-off of the float64 arithmetic (relative error about ``n * eps / gain``), not a
    signal. A narrow band-pass on a short run whose gain never reaches 1/2 (34 volumes, TR 0.94 s,
    0.023-0.040 Hz: largest singular value 0.33) still leaves about 1. ``gram``: ``op @ op.T`` when the caller
    computed it (on long runs, op applied to the columns of ``op.T`` step by step: O(T**2) instead of O(T**3)).
    """
    if op.size == 0:
        return 0
    if gram is not None:
        small = gram
    else:
        small = op @ op.T if op.shape[0] <= op.shape[1] else op.T @ op
    frob2 = float(np.einsum("ij,ij->", small, small))
    if not frob2 > ZERO_GAIN**4:
        return 0
    return int(np.floor(float(np.trace(small)) ** 2 / frob2 + 1e-9))


def _removes_mean(op: np.ndarray, rows: int = 256) -> bool:
    """Whether every row of ``op`` sums to 0 (to 1e-8 of its largest absolute row sum): constants map to 0.
    The absolute values are taken ``rows`` rows at a time (no new array the size of ``op``)."""
    abs_sum = max((np.abs(op[a:a + rows]).sum(axis=1).max(initial=0.0) for a in range(0, op.shape[0], rows)),
                  default=0.0)
    return bool(np.abs(op.sum(axis=1)).max(initial=0.0) <= 1e-8 * max(1.0, abs_sum))


def degrees_of_freedom(operator: CleaningOperator, standardize: str | None = None) -> int:
    """Degrees of freedom left in each cleaned column.

    With ``standardize``: for a filtered operator, the count of the operator followed by the removal of each
    column's mean (``operator.dof_centred``), at most ``operator.dof``; otherwise ``operator.dof`` minus one
    when the cleaning leaves the mean in place. Without: ``operator.dof``.
    """
    if standardize is not None and operator.dof_centred >= 0:  # filtered: the centred operator's count, at most
        # dof (an effective count can grow when a projection removes a large direction: the spectrum left is flatter)
        return min(operator.dof, operator.dof_centred)
    extra = 1 if standardize is not None and not operator.removes_mean else 0
    return operator.dof - extra


def check_degrees_of_freedom(operator: CleaningOperator, standardize: str | None = None,
                             min_dof: int = MIN_DOF) -> int:
    """Refuse a model that leaves no degree of freedom; warn below ``min_dof``.

    Raises
    ------
    ValueError
        When fewer than 1 degree of freedom is left, naming the count and what to relax.

    Returns
    -------
    dof : int
    """
    dof = degrees_of_freedom(operator, standardize)
    n_kept = operator.kept.size
    steps = operator.steps
    filtered = steps is not None and steps.sos is not None
    detrended = steps is None or steps.detrend
    used = (["detrending"] if detrended else []) + (["a Butterworth filter"] if filtered else []) + \
        [f"{operator.n_confounds_used} confound regressor(s)"] + (["standardization"] if dof < operator.dof else [])
    used = ", ".join(used[:-1]) + " and " + used[-1] if len(used) > 1 else used[0]
    if filtered:  # effective count (operator_dof): a filter does not remove whole dimensions
        what = f"an effective count: {n_kept} kept volume(s) through {used}"
    else:
        what = f"{n_kept} kept volume(s) minus {n_kept - dof} removed by {used}"
    relax = ("fewer confounds (a lighter denoising strategy or fewer columns), " + ("detrend=False, " if detrended
                                                                                   else "")
             + ("a wider filter band or " if filtered else "") + "less censoring")
    if dof < 1:
        raise ValueError(f"cleaning leaves {dof} degrees of freedom ({what}); the output would be rounding noise. "
                         f"Relax the model: {relax}.")
    if dof < min_dof:
        warnings.warn(f"cleaning leaves only {dof} degrees of freedom ({what}), fewer than {min_dof}; "
                      f"consider {relax}.", stacklevel=2)
    return dof


def _standardize(
    y: np.ndarray, standardize: str | None, original_mean: np.ndarray | None, psc_shift: bool,
    constant: np.ndarray | None = None, scale: np.ndarray | None = None, zero_mean: list | None = None,
    std_out: np.ndarray | None = None, dest: np.ndarray | None = None,
) -> np.ndarray:
    """Standardize columns in place; ``constant`` (input) and columns whose cleaned standard deviation is
    at most ``CONSTANT_RTOL * scale`` are 0. With ``zscore_sample``, ``std_out`` (a view) receives each
    column's standard deviation (``ddof=1``) before the division, and ``dest`` (a view of the output, maybe
    float32) the result: the division writes it directly (one pass fewer than dividing ``y`` and copying it).

    With ``psc``, a column whose mean is 0 (below ``EPS64`` as in nilearn, or within the round-off
    ``PSC_MEAN_RTOL * n * scale`` of computing it) is 0; whether a non-constant one was is appended to
    ``zero_mean``.
    """
    if standardize is None:
        return y
    if y.shape[0] == 1:
        if constant is not None:
            y[:, constant] = 0.0
        return y
    if standardize == "zscore_sample":
        y -= y.mean(axis=0)
        std = np.sqrt(np.einsum("ij,ij->j", y, y) / (y.shape[0] - 1))  # = y.std(ddof=1), without temporaries
        if scale is not None:
            constant = constant | (std <= CONSTANT_RTOL * scale)
        if std_out is not None:  # a constant column has none: what is left of it is round-off
            std_out[...] = std if constant is None else np.where(constant, 0.0, std)
        std[std < EPS64] = 1.0
        if dest is not None:
            y = np.divide(y, std, out=dest, casting="unsafe")  # the float64 quotient, rounded once
        else:
            y /= std
    else:
        if scale is not None:
            constant = constant | (y.std(axis=0) <= CONSTANT_RTOL * scale)
        if psc_shift:
            y += original_mean
        mean = y.mean(axis=0)
        invalid = np.abs(mean) < EPS64  # nilearn's rule ...
        if scale is not None:  # ... and a mean within the round-off of its computation (n eps scale) is 0
            invalid |= np.abs(mean) <= PSC_MEAN_RTOL * y.shape[0] * scale
        y = (y - mean) / np.abs(np.where(invalid, 1.0, mean)) * 100
        y[:, invalid] = 0
        if zero_mean is not None:  # constant columns are 0 anyway (below): no psc warning for them
            zero_mean.append(bool((invalid if constant is None else invalid & ~constant).any()))
    if constant is not None:
        y[:, constant] = 0.0
    return y


def clean(
    signals: np.ndarray,
    *,
    t_r: float,
    detrend: bool = True,
    standardize: str | None = "zscore_sample",
    confounds: np.ndarray | None = None,
    standardize_confounds: bool = True,
    filter: str | None = "butterworth",
    low_pass: float | None = None,
    high_pass: float | None = None,
    sample_mask=None,
    chunk_size: int = 16384,
    copy: bool = True,
) -> np.ndarray:
    """Detrend, filter, regress confounds, censor and standardize signals.

    Same order of operations and results as ``nilearn.signal.clean``:
    censored volumes are interpolated before Butterworth filtering and then
    dropped; signals and confounds are detrended and filtered alike; the
    confounds are regressed out orthogonally; then each column is
    standardized.

    Parameters
    ----------
    signals : numpy.ndarray, shape (n_volumes, n_features)
    t_r : float
        Repetition time in seconds (> 0).
    detrend : bool, default=True
    standardize : {"zscore_sample", "psc", None}, default="zscore_sample"
    confounds : numpy.ndarray, shape (n_volumes, n_confounds), or None
    standardize_confounds : bool, default=True
    filter : {"butterworth", "cosine", None}, default="butterworth"
    low_pass, high_pass : float or None
        Cut-offs in Hz, below Nyquist.
    sample_mask : numpy.ndarray or None
        Boolean (True = keep) or indices of kept volumes.
    chunk_size : int
        Number of columns processed at once (bounds memory).
    copy : bool, default=True
        If False, the result is written into ``signals`` (then a view of its
        first rows is returned) to save memory.

    Returns
    -------
    cleaned : numpy.ndarray, float32 (or float64 for float64 input), shape (n_kept, n_features)
        Constant columns are 0 when standardized (see :func:`apply_operator`).

    Raises
    ------
    ValueError
        Also when the model leaves no degree of freedom
        (:func:`check_degrees_of_freedom`; fewer than ``MIN_DOF`` warns).
    """
    if standardize not in STANDARDIZE:
        raise ValueError(f"Unknown standardize '{standardize}'; use zscore_sample, psc or none.")
    signals = np.asarray(signals)
    if signals.ndim != 2:
        raise ValueError(f"signals must be 2D (n_volumes, n_features), got shape {signals.shape}.")
    operator = cleaning_operator(
        signals.shape[0], t_r=t_r, detrend=detrend, confounds=confounds,
        standardize_confounds=standardize_confounds, filter=filter,
        low_pass=low_pass, high_pass=high_pass, sample_mask=sample_mask,
    )
    check_degrees_of_freedom(operator, standardize)
    return apply_operator(signals, operator, standardize=standardize, chunk_size=chunk_size, copy=copy)


def apply_operator(
    signals: np.ndarray,
    operator: CleaningOperator,
    *,
    standardize: str | None = "zscore_sample",
    chunk_size: int = 16384,
    copy: bool = True,
    method: str = "auto",
    out: np.ndarray | None = None,
    threads: int | None = None,
    column_std: np.ndarray | None = None,
) -> np.ndarray:
    """Apply a :class:`CleaningOperator` to signals by column chunks, then standardize.

    ``method``: ``"dense"`` (one BLAS product per chunk), ``"steps"`` (the operator's factors one
    after the other, :class:`OperatorSteps`) or ``"auto"`` (the cheaper by
    :func:`stepwise_is_cheaper`); both give the same numbers to round-off.

    The arithmetic is float64 whatever the input dtype. Constant columns
    (including all-zero ones) are 0 after standardization, decided on the
    input's scale rather than on the operator's round-off: a column is constant
    when its range over the volumes the operator reads, or its cleaned standard
    deviation, is at most ``CONSTANT_RTOL`` times its largest input magnitude.
    The output is float64 for float64 input, float32 otherwise; ``out`` (of that dtype and shape
    (n_kept, n_features), e.g. a memory-mapped ``.npy``) receives it instead of a new array.

    ``threads``: threads the column chunks run in (default :func:`default_threads`, at most
    ``CLEAN_THREADS``), BLAS held to one thread meanwhile: the numbers do not depend on it.

    ``column_std`` (float64, shape (n_features,)), when given, receives each column's standard deviation
    (``ddof=1``) after the linear cleaning and before standardization (what the QC's tSNR after cleaning
    divides by), at no extra pass over the data; 0 for a column the constant rule above sets to 0 (whatever
    ``standardize``), so that round-off is never counted as a signal.

    The chunks go through two float64 buffers allocated once (a fresh 0.4 GB costs more in page
    faults than the arithmetic on it on some machines), in the input's memory order.
    """
    if standardize not in STANDARDIZE:
        raise ValueError(f"Unknown standardize '{standardize}'; use zscore_sample, psc or none.")
    out_dtype = np.float64 if signals.dtype == np.float64 else np.float32
    m = operator.matrix.shape[0]
    if out is not None:
        if out.shape != (m, signals.shape[1]) or out.dtype != out_dtype:
            raise ValueError(f"out has shape {out.shape} and dtype {out.dtype}; expected {(m, signals.shape[1])} "
                             f"{np.dtype(out_dtype)}.")
    elif copy or signals.dtype != out_dtype or not signals.flags.writeable:
        out = np.empty((m, signals.shape[1]), dtype=out_dtype)
    else:
        out = signals[:m]
    a = operator.matrix
    stepwise = stepwise_is_cheaper(operator) if method == "auto" else method == "steps"
    if stepwise:  # the step-wise path holds a few copies of a chunk: smaller chunks, same memory bound
        chunk_size = min(chunk_size, chunk_size // 4 or 1)
    chunks = [slice(s, s + chunk_size) for s in range(0, signals.shape[1], chunk_size)]
    # contiguous blocks of the input volumes the operator reads (censored ones are not read)
    edges = np.diff(np.concatenate([[0], np.any(a != 0, axis=0).astype(np.int8), [0]]))
    blocks = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))) or [(0, a.shape[1])]
    psc_shift = False
    if standardize == "psc":
        # nilearn decides once, over all columns, whether filtering removed the mean
        weights = np.vstack([a.mean(axis=0), operator.mean_weights])
        sums = np.zeros(2)
        for cols in chunks:
            sums += np.abs(weights @ np.asarray(signals[:, cols], dtype=np.float64)).sum(axis=1)
        psc_shift = bool(sums[1] > 0 and sums[0] / sums[1] < 1e-1)
    fewest = MIN_STEPWISE_COLUMNS if stepwise else MIN_CHUNK_COLUMNS
    chunk_size = min(chunk_size, max(fewest, BUFFER_BYTES // (8 * max(signals.shape[0], 1))))
    chunks = [slice(s, s + chunk_size) for s in range(0, signals.shape[1], chunk_size)]
    width = min(chunk_size, signals.shape[1])
    fortran = signals.ndim == 2 and signals.flags.f_contiguous and not signals.flags.c_contiguous
    if column_std is not None and column_std.shape != (signals.shape[1],):
        raise ValueError(f"column_std has shape {column_std.shape}; expected ({signals.shape[1]},).")
    zero_mean: list[bool] = []
    job = _ChunkJob(signals, operator, out, width, fortran, stepwise, standardize, blocks, psc_shift, zero_mean,
                    column_std)
    n_threads = min(default_threads() if threads is None else max(1, int(threads)), CLEAN_THREADS, len(chunks))
    _run_chunks(job, chunks, n_threads)
    if any(zero_mean):
        warnings.warn("psc standardization strategy is meaningless for features that have a mean of 0. "
                      "These time series are set to 0.", stacklevel=2)
    return out


#: most threads the column chunks run in, each with its own buffers (``execution.memory`` counts them)
CLEAN_THREADS = 4


def _run_chunks(job: _ChunkJob, chunks: list[slice], n_threads: int) -> None:
    """Every chunk through ``job``, in ``n_threads`` threads, BLAS held to one thread meanwhile.

    A chunk's products are large enough for one core, and several threads each calling a multi-threaded BLAS
    would oversubscribe the cores. OpenBLAS's results depend on its own thread count (it splits the sums), so
    holding it to one thread also makes the numbers the same whatever the machine's cores and ``threads``.
    """
    from threadpoolctl import threadpool_limits

    free: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(n_threads):
        free.put(None)  # each slot's buffers, allocated by its first chunk and reused

    def run(cols: slice) -> None:
        buffers = free.get()
        try:
            buffers = job(cols, buffers)
        finally:
            free.put(buffers)

    with threadpool_limits(limits=1, user_api="blas"):
        if n_threads <= 1:
            list(map(run, chunks))
        else:
            with ThreadPoolExecutor(n_threads) as pool:
                list(pool.map(run, chunks))


@dataclass
class _ChunkJob:
    """One column chunk of :func:`apply_operator`: copy to float64, check, clean, standardize into ``out``."""

    signals: np.ndarray
    operator: CleaningOperator
    out: np.ndarray
    width: int
    fortran: bool
    stepwise: bool
    standardize: str | None
    blocks: list
    psc_shift: bool
    zero_mean: list
    column_std: np.ndarray | None

    def __call__(self, cols: slice, buffers: tuple | None) -> tuple:
        """Clean ``cols``; ``buffers``: the (x, y) float64 buffers of an earlier call, or None; returns them."""
        a, n = self.operator.matrix, self.signals.shape[0]
        m = a.shape[0]
        if buffers is None:
            buffers = (np.empty(n * self.width), None if self.stepwise else np.empty(m * self.width))
        xbuf, ybuf = buffers
        w = len(range(*cols.indices(self.signals.shape[1])))
        x = xbuf[:n * w].reshape((w, n)).T if self.fortran else xbuf[:n * w].reshape((n, w))
        np.copyto(x, self.signals[:, cols], casting="unsafe")
        release_columns(self.signals, *cols.indices(self.signals.shape[1])[:2])  # a mapped dtseries: read once
        if not np.isfinite(np.add.reduce(x, axis=None)) and not np.isfinite(x).all():  # sum: one cheap pass
            raise ValueError("signals contain NaN or infinite values; mask them out before cleaning.")
        constant = scale = None
        zeroed = self.standardize is None and self.operator.removes_mean  # a constant's series: 0 and round-off
        if self.standardize is not None or self.column_std is not None or zeroed:  # constant on the volumes read,
            # relative to the input's magnitude
            hi = np.max([x[a0:b0].max(axis=0) for a0, b0 in self.blocks], axis=0)  # x: the input, exactly
            lo = np.min([x[a0:b0].min(axis=0) for a0, b0 in self.blocks], axis=0)
            scale = np.maximum(np.abs(hi), np.abs(lo))
            constant = hi - lo <= CONSTANT_RTOL * scale
        original_mean = self.operator.mean_weights @ x if self.standardize == "psc" else None
        if self.stepwise:  # may work in x's memory: everything read from x is read above
            y = self.operator.steps.apply(x, overwrite=True)
        else:
            y = np.matmul(a, x, out=ybuf[:m * w].reshape((m, w)))
        std_out = None
        if self.column_std is not None:
            if m < 2:
                self.column_std[cols] = np.nan
            elif self.standardize == "zscore_sample":  # z-scoring computes it: no second pass, no temporary
                std_out = self.column_std[cols]
            else:  # a column the standardization would call constant has none (its round-off is no signal)
                std = y.std(axis=0, ddof=1)
                std[constant | (std <= CONSTANT_RTOL * scale)] = 0.0
                self.column_std[cols] = std
        dest = self.out[:, cols]
        done = _standardize(y, self.standardize, original_mean, self.psc_shift, constant, scale, self.zero_mean,
                            std_out, dest)
        if done is not dest:
            dest[...] = done
        if zeroed:  # standardized, a constant is 0 (_standardize); not, it is 0 all the same, not its round-off
            dest[:, constant] = 0.0
        return buffers
