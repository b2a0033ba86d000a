"""Cross-validation targets for trial-wise estimates that never read the labels a user decodes.

Every hyperparameter of the trial models (number of noise regressors, ridge fraction) is chosen by one of:

- the held-out runs' time series under an **all-trials design** (every trial the same response; it knows
  when trials happen, not what they are): :func:`all_trials_design`, :func:`heldout_r2`;
- held-out blocks of volumes of the same run (:func:`time_block_folds`), for models with one regressor
  per trial;
- a **repeat column** the user names explicitly (``--trial-repeats stimulus_id``): trials sharing a value
  are repeats of one stimulus (:func:`repeat_design`, :func:`repeat_prediction_error`,
  :func:`split_half_reliability`).

``trial_type`` is never an argument of any function here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def all_trials_design(trial_regressors: np.ndarray) -> np.ndarray:
    """One regressor, the sum of every trial's: shape (n, 1)."""
    return np.asarray(trial_regressors).sum(axis=1, keepdims=True)


def repeat_levels(values_per_run: list[list[str]]) -> list[str]:
    """Sorted distinct repeat values over runs ("n/a" and empty values are not repeats)."""
    return sorted({v for values in values_per_run for v in values if v not in ("", "n/a", None)})


def repeat_design(trial_regressors: np.ndarray, values: list[str], levels: list[str]) -> np.ndarray:
    """One regressor per repeat value (sum of its trials' regressors): shape (n, len(levels))."""
    values = np.asarray(values, dtype=object)
    return np.column_stack([np.asarray(trial_regressors)[:, values == level].sum(axis=1) for level in levels])


def pooled_fit(designs: list[np.ndarray], data: list[np.ndarray], runs) -> np.ndarray:
    """Coefficients shared by ``runs``: ``pinv(sum X'X) sum X'Y``.

    Parameters
    ----------
    designs : list of numpy.ndarray, each (n_r, p)
    data : list of numpy.ndarray, each (n_r, n_columns)
    runs : iterable of int

    Returns
    -------
    numpy.ndarray, shape (p, n_columns)
    """
    runs = list(runs)
    xtx = sum(designs[r].T @ designs[r] for r in runs)
    xty = sum(designs[r].T @ data[r] for r in runs)
    return np.linalg.pinv(xtx) @ xty


def heldout_r2(designs: list[np.ndarray], data: list[np.ndarray], *, total: list[np.ndarray] | None = None,
               removed: int = 0) -> np.ndarray:
    """Leave-one-run-out R² per column: fit on the other runs, predict the held-out run's time series.

    ``1 - sum_r |y_r - X_r b_(-r)|^2 n_r / (n_r - removed) / sum_r |t_r|^2`` (the data are cleaned, hence
    centred). With ``removed`` dimensions projected out of each run's data and design (noise regressors),
    the residual is scaled by ``n_r / (n_r - removed)`` and the total is that of the data before projection
    (``total``): projecting out dimensions that hold nothing but noise then gains nothing on average, and
    only those that remove more than their share of the residual raise the R².

    Parameters
    ----------
    designs : list of numpy.ndarray, each (n_r, p)
    data : list of numpy.ndarray, each (n_r, n_columns)
    total : list of numpy.ndarray or None
        Data before projection, for the total sum of squares (default: ``data``).
    removed : int

    Returns
    -------
    numpy.ndarray, shape (n_columns,)

    Raises
    ------
    ValueError
        With fewer than 2 runs (nothing to hold out).
    """
    if len(designs) < 2:
        raise ValueError("heldout_r2: cross-validation across runs needs at least 2 runs.")
    rss = np.zeros(data[0].shape[1])
    tss = np.zeros(data[0].shape[1])
    for r in range(len(designs)):
        b = pooled_fit(designs, data, [q for q in range(len(designs)) if q != r])
        n = data[r].shape[0]
        rss += ((data[r] - designs[r] @ b) ** 2).sum(axis=0) * n / max(n - removed, 1)
        tss += ((data if total is None else total)[r] ** 2).sum(axis=0)
    return 1.0 - rss / np.where(tss > 0, tss, 1.0)


@dataclass
class RunProducts:
    """Cross-products of one run's design ``x`` (n, p) and data ``y`` (n, n_columns): enough for
    :func:`heldout_r2_from_products`.

    Attributes
    ----------
    xtx : numpy.ndarray, shape (p, p)
    xty : numpy.ndarray, shape (p, n_columns)
    yy : numpy.ndarray, shape (n_columns,)
        Sum of squares of each column.
    n : int
        Rows of the run.
    """

    xtx: np.ndarray
    xty: np.ndarray
    yy: np.ndarray
    n: int

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> RunProducts:
        return cls(xtx=x.T @ x, xty=x.T @ y, yy=np.einsum("ij,ij->j", y, y), n=y.shape[0])

    def remove(self, a: np.ndarray, g: np.ndarray) -> None:
        """Project a unit time course ``v`` out of design and data, given ``a = v'x`` (p,) and ``g = v'y``."""
        self.xtx = self.xtx - np.outer(a, a)
        self.xty = self.xty - np.outer(a, g)
        self.yy = self.yy - g**2


def heldout_r2_from_products(stats: list[RunProducts], *, removed: int = 0) -> np.ndarray:
    """:func:`heldout_r2` (data as their own total) from each run's cross-products.

    The held-out residual ``|y - x b|^2`` is ``y'y - 2 b'x'y + b'x'x b`` per column.

    Parameters
    ----------
    stats : list of RunProducts
    removed : int

    Returns
    -------
    numpy.ndarray, shape (n_columns,)
    """
    if len(stats) < 2:
        raise ValueError("heldout_r2: cross-validation across runs needs at least 2 runs.")
    rss = np.zeros(stats[0].yy.shape)
    for r, st in enumerate(stats):
        others = [q for q in range(len(stats)) if q != r]
        b = np.linalg.pinv(sum(stats[q].xtx for q in others)) @ sum(stats[q].xty for q in others)
        resid = st.yy - 2.0 * (b * st.xty).sum(axis=0) + (b * (st.xtx @ b)).sum(axis=0)
        rss += resid * st.n / max(st.n - removed, 1)
    tss = sum(st.yy for st in stats)
    return 1.0 - rss / np.where(tss > 0, tss, 1.0)


def time_block_folds(n: int, n_folds: int, block: int) -> np.ndarray:
    """Fold of each row: consecutive blocks of ``block`` rows dealt to ``n_folds`` folds in turn.

    Returns
    -------
    numpy.ndarray of int, shape (n,)
    """
    if n_folds < 2 or block < 1:
        raise ValueError(f"time_block_folds: need n_folds >= 2 and block >= 1, got {n_folds}, {block}.")
    return (np.arange(n) // block) % n_folds


def repeat_prediction_error(betas: np.ndarray, values: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Squared error of predicting each trial's betas by the mean of its repeats in the other runs.

    Parameters
    ----------
    betas : numpy.ndarray, shape (..., n_trials, n_columns)
        Leading axes (e.g. one per ridge fraction) are kept.
    values : numpy.ndarray of str, shape (n_trials,)
        Repeat value of each trial (the ``--trial-repeats`` column).
    runs : numpy.ndarray of int, shape (n_trials,)

    Returns
    -------
    numpy.ndarray, shape (..., n_columns)
        Summed over the trials that have a repeat in another run (0 when none has).
    """
    err = np.zeros(betas.shape[:-2] + betas.shape[-1:])
    for level in np.unique(values):
        idx = np.flatnonzero(values == level)
        for r in np.unique(runs[idx]):
            inside, outside = idx[runs[idx] == r], idx[runs[idx] != r]
            if outside.size == 0:
                continue
            mean = betas[..., outside, :].mean(axis=-2, keepdims=True)
            err += ((betas[..., inside, :] - mean) ** 2).sum(axis=-2)
    return err


def zscore_trials(betas: np.ndarray) -> np.ndarray:
    """Betas z-scored per column over trials (axis -2), so that an error is not lowered by shrinking alone."""
    mean = betas.mean(axis=-2, keepdims=True)
    std = betas.std(axis=-2, keepdims=True)
    return (betas - mean) / np.where(std > 0, std, 1.0)


def zscored_prediction_error(betas: np.ndarray, values: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """:func:`repeat_prediction_error` of the :func:`zscore_trials` betas, without forming them.

    The mean cancels in each trial's difference from the mean of its repeats, so the error of the z-scored
    betas is that of the betas over their variance across trials (1 where it is 0); the variance is computed
    one leading index (e.g. ridge fraction) at a time, so no temporary holds every fraction's betas.

    Parameters
    ----------
    betas : numpy.ndarray, shape (..., n_trials, n_columns)
    values : numpy.ndarray of str, shape (n_trials,)
    runs : numpy.ndarray of int, shape (n_trials,)

    Returns
    -------
    numpy.ndarray, shape (..., n_columns)
    """
    var = np.empty(betas.shape[:-2] + betas.shape[-1:])
    for idx in np.ndindex(betas.shape[:-2]):
        d = betas[idx] - betas[idx].mean(axis=0)
        var[idx] = np.einsum("tc,tc->c", d, d) / max(betas.shape[-2], 1)
    return repeat_prediction_error(betas, values, runs) / np.where(var > 0, var, 1.0)


def repeated_values(values: np.ndarray, runs: np.ndarray) -> list[str]:
    """Repeat values with trials in at least two runs (or, in one run, at least two trials)."""
    out = []
    for level in np.unique(values):
        idx = values == level
        if np.unique(runs[idx]).size >= 2 or (np.unique(runs).size == 1 and idx.sum() >= 2):
            out.append(str(level))
    return out


def split_half_reliability(betas: np.ndarray, values: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Per column, the correlation across repeat values of their mean betas in two halves of the trials.

    The trials of each value, ordered by run then position, are dealt alternately to the two halves.
    Values with fewer than 2 trials are left out.

    Parameters
    ----------
    betas : numpy.ndarray, shape (n_trials, n_columns)
    values : numpy.ndarray of str, shape (n_trials,)
    runs : numpy.ndarray of int, shape (n_trials,)

    Returns
    -------
    numpy.ndarray, shape (n_columns,)
        NaN when fewer than 3 values repeat (a correlation needs 3 points to mean anything).
    """
    halves: list[list[np.ndarray]] = [[], []]
    for level in np.unique(values):
        idx = np.flatnonzero(values == level)
        idx = idx[np.lexsort((idx, runs[idx]))]
        finite = idx[np.isfinite(betas[idx]).all(axis=1)]
        if finite.size < 2:
            continue
        halves[0].append(betas[finite[0::2]].mean(axis=0))
        halves[1].append(betas[finite[1::2]].mean(axis=0))
    if len(halves[0]) < 3:
        return np.full(betas.shape[1], np.nan)
    a, b = np.array(halves[0]), np.array(halves[1])
    return column_correlation(a, b)


def column_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``a`` with the same column of ``b`` (NaN for a constant column)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    den = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=0) / np.where(den > 0, den, 1.0), np.nan)
