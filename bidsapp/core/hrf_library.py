"""Choose one library HRF shape per column by cross-validated prediction, without trial labels.

For each shape of :func:`bidsapp.core.hrf.library_shapes`, an *all-trials*
design (one regressor: every trial's onset and duration convolved with the
shape, cleaned like the data; no ``trial_type`` value is used) is fitted on
the training folds and predicts the held-out fold's time series (one
amplitude per column shared by the training folds; an intercept per fold).
The shape with the smallest held-out squared error (largest held-out R²)
is the column's. Folds: each run held out in turn when there are several
runs; within a single run, its first and second halves of kept volumes
(2-fold; the cleaning was applied to the whole run, so the halves are not
fully independent). A column that no shape predicts (held-out R² <= 0: no
task response) gets the shape closest to SPM's canonical HRF.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bidsapp.core.hrf import LIBRARY_PEAKS, LIBRARY_UNDERSHOOTS, convolved_regressors, library_shapes

#: the library shape closest to SPM's canonical HRF (peak 5 s, shallow undershoot)
CANONICAL_SHAPE = 6
N_SHAPES = LIBRARY_PEAKS.size * len(LIBRARY_UNDERSHOOTS)
#: a fold whose all-trials regressor has less than this share of the largest fold's energy has nothing to predict
MIN_FOLD_ENERGY = 0.05
#: how folds are made, written in the sidecar
SPLITS = {"runs": "leave-one-run-out across the runs given",
          "halves": "2-fold within the run: first and second half of its kept volumes"}


@dataclass
class RunForSelection:
    """What selection needs from a run: the cleaned signal, its operator and the trials' timing only.

    Attributes
    ----------
    cleaned : numpy.ndarray, shape (n_kept, n_features)
    operator : numpy.ndarray, shape (n_kept, n_volumes)
    onsets, durations : numpy.ndarray, shape (n_trials,)
    t_r, start_time : float
    """

    cleaned: np.ndarray
    operator: np.ndarray
    onsets: np.ndarray
    durations: np.ndarray
    t_r: float
    start_time: float = 0.0


@dataclass
class ShapeChoice:
    """The chosen shape of each column and how well it predicts held-out data.

    Attributes
    ----------
    shapes : numpy.ndarray of int, shape (n_features,)
    cv_r2 : numpy.ndarray, shape (n_features,)
        Held-out R² of the chosen shape's all-trials model.
    canonical_cv_r2 : numpy.ndarray, shape (n_features,)
        Held-out R² of :data:`CANONICAL_SHAPE`, for comparison.
    fallback : numpy.ndarray of bool, shape (n_features,)
        No shape predicted the held-out data (R² <= 0): the canonical-like shape was used.
    split : str
        ``runs`` or ``halves`` (:data:`SPLITS`), or ``none`` when a fold has no trial response to predict
        (e.g. a run with one trial): every column then gets the canonical-like shape.
    note : str
        One line saying what fell back to what ("" when nothing did).
    """

    shapes: np.ndarray
    cv_r2: np.ndarray
    canonical_cv_r2: np.ndarray
    fallback: np.ndarray
    split: str
    note: str = ""


def _all_trials(run: RunForSelection) -> np.ndarray:
    """Cleaned all-trials regressor of each library shape (every trial, no label): shape (n_kept, n_shapes)."""
    n_vol = run.operator.shape[1]
    frame_times = run.start_time + np.arange(n_vol) * run.t_r
    raw = convolved_regressors(frame_times, np.asarray(run.onsets, float), np.asarray(run.durations, float),
                               [np.arange(len(run.onsets))], library_shapes(run.t_r), orthogonalize=False)[:, 0]
    return run.operator @ raw


def _folds(regressors: list[np.ndarray], data: list) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """(regressors (n, n_shapes), data rows (n, p) as a lazy slice) per fold."""
    if len(regressors) > 1:
        return list(zip(regressors, data)), "runs"
    A, Y = regressors[0], data[0]
    half = Y.shape[0] // 2
    return [(A[:half], Y[:half]), (A[half:], Y[half:])], "halves"


def _held_out_sse(folds, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """Held-out squared error of each shape (n_shapes, n_cols) and held-out total sum of squares (n_cols,)."""
    stats = []
    for A, Y in folds:
        Ac = A - A.mean(axis=0)
        Yc = np.asarray(Y[:, cols], dtype=np.float64)
        Yc = Yc - Yc.mean(axis=0)
        stats.append((Ac.T @ Yc, (Ac**2).sum(axis=0)[:, None], (Yc**2).sum(axis=0)))
    ay_all = sum(s[0] for s in stats)
    aa_all = sum(s[1] for s in stats)
    sse = np.zeros_like(ay_all)
    for ay, aa, yy in stats:
        train_aa = aa_all - aa
        b = np.where(train_aa > 0, (ay_all - ay) / np.where(train_aa > 0, train_aa, 1), 0.0)
        sse += yy - 2 * b * ay + b * b * aa
    return sse, sum(s[2] for s in stats)


def choose_shapes(runs: list[RunForSelection], *, chunk_size: int = 32768) -> ShapeChoice:
    """The library shape of each column (see the module docstring).

    Parameters
    ----------
    runs : list of RunForSelection
        One participant's runs of one task (or a single run), with the same columns.

    Raises
    ------
    ValueError
        When no run has trials, when runs differ in their number of columns, or when a single run is too short
        to split (fewer than 8 kept volumes).
    """
    if not runs or not any(len(r.onsets) for r in runs):
        raise ValueError("HRF library selection needs trials: no run has any event.")
    return select_shapes([_all_trials(r) for r in runs], [r.cleaned for r in runs],
                         n_trials=sum(len(r.onsets) for r in runs), chunk_size=chunk_size)


def select_shapes(regressors: list[np.ndarray], data: list, *, n_trials: int, chunk_size: int = 32768) -> ShapeChoice:
    """The library shape of each column from each run's cleaned all-trials regressors (no trial label).

    Parameters
    ----------
    regressors : list of numpy.ndarray, each (n_r, n_shapes)
        The all-trials regressor of each library shape in each run, cleaned like the data.
    data : list of numpy.ndarray, each (n_r, n_columns)
        Cleaned data of each run (may be memory-mapped; read ``chunk_size`` columns at a time).
    n_trials : int
        Trials in all runs (for the message when nothing can be predicted).

    Raises
    ------
    ValueError
        When runs differ in their number of columns, or when a single run is too short to split (fewer than 8
        kept volumes).
    """
    widths = {y.shape[1] for y in data}
    if len(widths) > 1:
        raise ValueError(f"HRF library selection needs runs with the same columns; got widths {sorted(widths)}.")
    if len(data) == 1 and data[0].shape[0] < 8:
        raise ValueError(f"HRF library selection: the run has {data[0].shape[0]} kept volumes, too few to "
                         "split in two halves for cross-validation (at least 8).")
    folds, split = _folds(regressors, data)
    p = widths.pop()
    energy = np.array([((A[:, CANONICAL_SHAPE] - A[:, CANONICAL_SHAPE].mean()) ** 2).sum() for A, _ in folds])
    empty = np.flatnonzero(energy <= MIN_FOLD_ENERGY * energy.max())
    if empty.size:
        where = "half" if split == "halves" else "run"
        note = (f"--hrf library: {len(empty)} {where}(s) of the cross-validation have no trial response to predict "
                f"({n_trials} trial(s) in all); every column uses the canonical-like library "
                f"shape {CANONICAL_SHAPE} instead of a cross-validated choice.")
        zeros = np.zeros(p)
        return ShapeChoice(np.full(p, CANONICAL_SHAPE), zeros, zeros.copy(), np.ones(p, bool), "none", note)
    shapes, best, canon = np.full(p, CANONICAL_SHAPE), np.zeros(p), np.zeros(p)
    for start in range(0, p, chunk_size):
        cols = slice(start, min(start + chunk_size, p))
        sse, tss = _held_out_sse(folds, cols)
        r2 = 1 - sse / np.where(tss > 0, tss, 1)[None, :]
        r2[:, tss <= 0] = 0.0
        shapes[cols], best[cols], canon[cols] = r2.argmax(axis=0), r2.max(axis=0), r2[CANONICAL_SHAPE]
    fallback = best <= 0
    shapes[fallback] = CANONICAL_SHAPE
    best[fallback] = canon[fallback]
    return ShapeChoice(shapes=shapes.astype(int), cv_r2=best, canonical_cv_r2=canon, fallback=fallback, split=split)
