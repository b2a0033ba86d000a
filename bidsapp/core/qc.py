"""Quality-control metrics of one run: motion, censoring, DVARS, tSNR, degrees of freedom.

Every function takes arrays (rows: volumes, columns: the run's columns) and explicit arguments. DVARS and
tSNR are computed over the run's columns: voxels of the mask in voxel mode, regions (maps, spheres) in atlas
mode; the sidecar records which.

Standardized DVARS follows Nichols' definition as fMRIPrep computes it (nipype's ``compute_dvars``): the
root mean square over columns of the temporal difference, divided by its expected value under the null,
the mean over columns of ``sqrt(2 (1 - ar1)) * robust_sd`` (robust standard deviation: interquartile range
/ 1.349 with the "lower" percentiles of FSL; ``ar1``: the Yule-Walker lag-1 autocorrelation of the centred
column; columns with a robust standard deviation of 0 are left out, as fMRIPrep). A global intensity scale
cancels. Only differences between consecutive volumes are taken: after censoring, a volume whose previous
volume was removed has no DVARS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bidsapp.core.npy import release_columns
from bidsapp.core.order_statistics import lower_iqr

#: robust standard deviation: interquartile range of a normal variable / 1.349
IQR_TO_SD = 1.349
#: size of the float64 copy of one chunk of columns in :func:`standardized_dvars`: within a core's L2 cache
#: (2 MB here; 8 MB chunks cost 1.7-1.9x the CPU at T = 300 and 1,200 on 1 MB-L2 cores,
#: ``benchmarks/README.md``)
DVARS_CHUNK_BYTES = 2 << 20
#: most threads the QC's column chunks run in (each holds its own chunk buffers)
QC_THREADS = 4


def _rows_index(rows: np.ndarray | None):
    """``rows`` as a slice when it is a run of consecutive rows (the volumes after the non-steady-state ones,
    usually): indexing with it is a view, not a copy of every chunk; the same values either way."""
    if rows is None:
        return slice(None)
    rows = np.asarray(rows)
    if rows.dtype != bool and rows.size and np.array_equal(rows, np.arange(rows[0], rows[0] + rows.size)):
        return slice(int(rows[0]), int(rows[0]) + rows.size)
    return rows


def _map_chunks(fn, n_columns: int, width: int, threads: int | None = None) -> list:
    """``[fn(start, stop) for each chunk of columns]``, in order, the chunks computed in up to ``threads``
    threads (default: the CPUs this process may use, capped at :data:`QC_THREADS`). numpy's sorts, casts and
    reductions release the GIL; the chunks are fixed by ``width`` alone and their results come back in order,
    so the values do not depend on the number of threads."""
    from bidsapp.core.signal import default_threads

    starts = range(0, n_columns, max(1, width))
    threads = min(QC_THREADS, default_threads() if threads is None else max(1, int(threads)), len(starts))
    call = (lambda s: fn(s, min(s + width, n_columns)))  # noqa: E731
    if threads <= 1:
        return [call(s) for s in starts]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(call, starts))


def motion_summary(fd: np.ndarray | None, volumes: np.ndarray | None = None) -> dict[str, float]:
    """Mean and maximum framewise displacement (mm) over ``volumes`` (default: all; n/a values skipped).

    Parameters
    ----------
    fd : numpy.ndarray, shape (n_volumes,), or None
        fMRIPrep's ``framewise_displacement`` (the first value is n/a).
    volumes : numpy.ndarray of int or bool, optional
        The volumes to summarize (e.g. those after the non-steady-state volumes).

    Returns
    -------
    dict
        ``FramewiseDisplacementMean`` and ``FramewiseDisplacementMax`` (NaN without FD).
    """
    if fd is None:
        return {"FramewiseDisplacementMean": np.nan, "FramewiseDisplacementMax": np.nan}
    values = np.asarray(fd, dtype=np.float64)
    if volumes is not None:
        values = values[np.asarray(volumes)]
    values = values[np.isfinite(values)]
    if not values.size:
        return {"FramewiseDisplacementMean": np.nan, "FramewiseDisplacementMax": np.nan}
    return {"FramewiseDisplacementMean": float(values.mean()), "FramewiseDisplacementMax": float(values.max())}


def censoring_summary(n_volumes: int, kept: np.ndarray, non_steady_state: np.ndarray | None = None) -> dict:
    """How many volumes cleaning removed.

    Parameters
    ----------
    n_volumes : int
    kept : numpy.ndarray of int
        Indices of the kept volumes.
    non_steady_state : numpy.ndarray of bool, shape (n_volumes,), optional
        Volumes removed as non-steady state (dummy scans); they are not counted as censored.

    Returns
    -------
    dict
        ``NonSteadyStateVolumes``, ``CensoredVolumeCount`` (removed volumes that are not non-steady state)
        and ``CensoredFraction`` (of the volumes after the non-steady-state ones).
    """
    nss = np.zeros(n_volumes, dtype=bool) if non_steady_state is None else np.asarray(non_steady_state, bool)
    if nss.shape != (n_volumes,):
        raise ValueError(f"non_steady_state has shape {nss.shape}, expected ({n_volumes},).")
    removed = np.ones(n_volumes, dtype=bool)
    removed[np.asarray(kept, dtype=np.int64)] = False
    censored = int((removed & ~nss).sum())
    eligible = int((~nss).sum())
    return {"NonSteadyStateVolumes": int(nss.sum()), "CensoredVolumeCount": censored,
            "CensoredFraction": censored / eligible if eligible else np.nan}


@dataclass
class _Moments:
    """Each column's temporal mean and standard deviation (``ddof=1``) over the rows DVARS uses, and its mean
    over other rows (``rows``: their :func:`_rows_index`); filled chunk by chunk."""

    mean: np.ndarray
    std: np.ndarray
    other_mean: np.ndarray
    rows: slice | np.ndarray


def _dvars_terms(x: np.ndarray, start: int, stop: int, rows: slice | np.ndarray, moments: _Moments | None = None):
    """One chunk of columns' share of standardized DVARS: (sum over columns of the squared temporal
    differences per row, sum of the expected differences' SDs, columns that vary), or None if none varies.
    ``rows``: :func:`_rows_index` of the rows used. With ``moments``, also its columns' moments, from the same
    float64 copy (one pass over the array for both)."""
    native = np.asarray(x[:, start:stop])
    robust_sd = lower_iqr(native[rows]) / IQR_TO_SD
    if moments is None:
        block = np.array(native[rows], dtype=np.float64)  # this chunk's own copy: centred in place below
    else:
        full = np.array(native, dtype=np.float64)
        moments.other_mean[start:stop] = full[moments.rows].mean(axis=0)
        block = full[rows]
    release_columns(x, start, stop)  # a mapped dtseries: its pages leave this process's memory once copied
    mean = block.mean(axis=0)
    block -= mean
    sum_squares = np.einsum("ij,ij->j", block, block)
    if moments is not None:
        moments.mean[start:stop] = mean
        moments.std[start:stop] = np.sqrt(sum_squares / (block.shape[0] - 1)) if block.shape[0] > 1 else np.nan
    vary = robust_sd > 0  # fMRIPrep's remove_zerovariance
    if not vary.any() or block.shape[0] < 2:
        return None
    xv, r0 = (block, sum_squares) if vary.all() else (block[:, vary], sum_squares[vary])
    ar1 = np.zeros(r0.size)  # Yule-Walker lag-1 autocorrelation of each centred column; 0 for a zero column
    ok = r0 > 0
    ar1[ok] = np.einsum("ij,ij->j", xv[:-1], xv[1:])[ok] / r0[ok]
    expected = float(np.sum(np.sqrt(np.clip(2.0 * (1.0 - ar1), 0.0, None)) * robust_sd[vary]))
    step = np.diff(xv, axis=0)
    return np.einsum("ij,ij->i", step, step), expected, int(vary.sum())


def standardized_dvars(x: np.ndarray, volumes: np.ndarray | None = None, *, rows: np.ndarray | None = None,
                       chunk_bytes: int = DVARS_CHUNK_BYTES) -> np.ndarray:
    """Standardized DVARS of each volume (NaN where it has none), by column chunks (bounded memory).

    Parameters
    ----------
    x : numpy.ndarray, shape (n_rows, n_columns)
        The run's rows (all volumes, or the kept ones after cleaning); may be memory-mapped.
    volumes : numpy.ndarray of int, optional
        The volume index of each row used (default ``0..n-1``): a row whose previous row is not the previous
        volume (censored in between) gets no DVARS.
    rows : numpy.ndarray of int, optional
        The rows of ``x`` to use (default: all), e.g. the volumes after the non-steady-state ones.
    chunk_bytes : int
        Size of the float64 copy of one chunk of columns.

    Returns
    -------
    numpy.ndarray, shape (n,)
        One value per row used. Its first value (and rows after a gap) are NaN, as fMRIPrep's first
        ``std_dvars`` value is n/a. All NaN when fewer than 3 rows or no column varies.
    """
    return _dvars_pass(x, volumes, rows, chunk_bytes, None)


def dvars_and_moments(x: np.ndarray, volumes: np.ndarray | None = None, *, rows: np.ndarray | None = None,
                      also_mean_of: np.ndarray | None = None, chunk_bytes: int = DVARS_CHUNK_BYTES):
    """:func:`standardized_dvars` and each column's temporal moments, in one pass over ``x``.

    Parameters
    ----------
    x, volumes, rows, chunk_bytes
        As :func:`standardized_dvars`.
    also_mean_of : numpy.ndarray of int, optional
        Other rows of ``x`` whose mean is also computed (default: all rows).

    Returns
    -------
    dvars : numpy.ndarray, shape (n,)
    mean, std : numpy.ndarray, shape (n_columns,)
        Each column's mean and standard deviation (``ddof=1``; NaN with one row) over ``rows``.
    other_mean : numpy.ndarray, shape (n_columns,)
        Each column's mean over ``also_mean_of``.
    """
    p = x.shape[1]
    moments = _Moments(np.empty(p), np.empty(p), np.empty(p), _rows_index(also_mean_of))
    dvars = _dvars_pass(x, volumes, rows, chunk_bytes, moments)
    return dvars, moments.mean, moments.std, moments.other_mean


def _dvars_pass(x: np.ndarray, volumes, rows, chunk_bytes: int, moments: _Moments | None) -> np.ndarray:
    """:func:`standardized_dvars` (and ``moments`` filled), by column chunks in threads."""
    if x.ndim != 2:
        raise ValueError(f"standardized_dvars needs a 2D array (n_rows, n_columns), got shape {x.shape}.")
    n = x.shape[0] if rows is None else len(rows)
    out = np.full(n, np.nan)
    vol = np.arange(n) if volumes is None else np.asarray(volumes, dtype=np.int64)
    if vol.shape != (n,):
        raise ValueError(f"volumes has shape {vol.shape}, expected ({n},).")
    if n < 3 and moments is None:
        return out
    squares, expected_sum, n_vary = np.zeros(max(n - 1, 0)), 0.0, 0
    index = _rows_index(rows)
    width = max(1, chunk_bytes // (8 * max(n, 1)))  # the same chunks with or without the moments
    for part in _map_chunks(lambda s, e: _dvars_terms(x, s, e, index, moments), x.shape[1], width):
        if part is not None:  # summed in chunk order: the same bits whatever the threads
            squares += part[0]
            expected_sum += part[1]
            n_vary += part[2]
    if n < 3 or not n_vary or not expected_sum > 0:
        return out
    dvars = np.sqrt(squares / n_vary) / (expected_sum / n_vary)
    consecutive = np.diff(vol) == 1
    out[1:][consecutive] = dvars[consecutive]
    return out


def median_tsnr(mean: np.ndarray, std: np.ndarray) -> float:
    """Median over columns of ``mean / std`` (temporal signal-to-noise ratio), columns with ``std > 0`` only.

    Parameters
    ----------
    mean, std : numpy.ndarray, shape (n_columns,)
        Each column's temporal mean (of the raw signal) and standard deviation (raw, or what cleaning left).

    Returns
    -------
    float
        NaN when no column varies.
    """
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    ok = np.isfinite(mean) & np.isfinite(std) & (std > 0)
    return float(np.median(mean[ok] / std[ok])) if ok.any() else np.nan


def fd_dvars_correlation(fd: np.ndarray | None, dvars: np.ndarray, volumes: np.ndarray | None = None) -> float:
    """Pearson correlation of framewise displacement and DVARS over the volumes where both are defined.

    Parameters
    ----------
    fd : numpy.ndarray, shape (n_volumes,), or None
    dvars : numpy.ndarray, shape (n_rows,)
        DVARS of each row (:func:`standardized_dvars`).
    volumes : numpy.ndarray of int, shape (n_rows,), optional
        Volume index of each row (default: rows are the volumes).

    Returns
    -------
    float
        NaN without FD, with fewer than 3 volumes or when either series is constant.
    """
    if fd is None:
        return np.nan
    dvars = np.asarray(dvars, dtype=np.float64)
    vol = np.arange(dvars.size) if volumes is None else np.asarray(volumes, dtype=np.int64)
    f = np.asarray(fd, dtype=np.float64)[vol]
    ok = np.isfinite(f) & np.isfinite(dvars)
    if ok.sum() < 3:
        return np.nan
    a, b = f[ok] - f[ok].mean(), dvars[ok] - dvars[ok].mean()
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den > 0 else np.nan


def qc_before(raw: np.ndarray, *, fd: np.ndarray | None, non_steady_state: np.ndarray | None,
              kept: np.ndarray) -> dict:
    """The QC metrics of the extracted series, before cleaning (which may overwrite them in place).

    Parameters
    ----------
    raw : numpy.ndarray, shape (n_volumes, n_columns)
        The extracted series (may be memory-mapped; read by column chunks). Columns that are all NaN
        (``--min-coverage``) are left out.
    fd : numpy.ndarray, shape (n_volumes,), or None
    non_steady_state : numpy.ndarray of bool, shape (n_volumes,), or None
    kept : numpy.ndarray of int
        The volumes cleaning keeps.

    Returns
    -------
    dict
        Motion, censoring, DVARS, tSNR and FD-DVARS values before cleaning, ``_mean_kept`` (each column's
        mean over the kept volumes, for :func:`qc_after`) and ``_dvars`` (standardized DVARS of each volume,
        shape (n_volumes,): NaN on the non-steady-state volumes and the first volume after them).
    """
    n = raw.shape[0]
    steady = np.flatnonzero(~np.asarray(non_steady_state, bool)) if non_steady_state is not None else np.arange(n)
    dvars, mean_steady, std_steady, mean_kept = dvars_and_moments(raw, steady, rows=steady,
                                                                  also_mean_of=np.asarray(kept, np.int64))
    trace = np.full(n, np.nan)
    trace[steady] = dvars
    return {
        **motion_summary(fd, steady),
        **censoring_summary(n, kept, non_steady_state),
        "StandardizedDVARSMeanBefore": _nanmean(dvars),
        "TemporalSNRMedianBefore": median_tsnr(mean_steady, std_steady),
        "FramewiseDisplacementDVARSCorrelationBefore": fd_dvars_correlation(fd, dvars, steady),
        "_mean_kept": mean_kept,
        "_dvars": trace,
    }


@dataclass
class RunQC:
    """The QC of one run: its metrics and the standardized DVARS traces they summarize.

    Attributes
    ----------
    metrics : dict
        The keys of :data:`QC_FIELDS` but the trial counts (the sidecar's ``QC``).
    dvars_before : numpy.ndarray, shape (n_volumes,)
        Standardized DVARS before cleaning, over the volumes after the non-steady-state ones (NaN on those
        and on the first volume after them).
    dvars_after : numpy.ndarray, shape (n_volumes,)
        Standardized DVARS of the cleaned series, over the kept volumes (NaN on removed volumes and on a kept
        volume whose previous volume was removed).

    The means of the two traces are ``StandardizedDVARSMeanBefore`` / ``After``: the report draws the traces
    these metrics come from, never a second computation.
    """

    metrics: dict
    dvars_before: np.ndarray
    dvars_after: np.ndarray


def qc_after(before: dict, cleaned: np.ndarray, *, kept: np.ndarray, fd: np.ndarray | None,
             cleaned_std: np.ndarray, dof: int, n_volumes: int) -> RunQC:
    """Every QC metric of one run: :func:`qc_before`'s and those of the cleaned series, with both DVARS traces.

    Parameters
    ----------
    before : dict
        :func:`qc_before` of the run.
    cleaned : numpy.ndarray, shape (n_kept, n_columns)
    kept : numpy.ndarray of int, shape (n_kept,)
    fd : numpy.ndarray, shape (n_volumes,), or None
    cleaned_std : numpy.ndarray, shape (n_columns,)
        Each column's standard deviation after the linear cleaning, before standardization.
    dof : int
        Degrees of freedom cleaning leaves.
    n_volumes : int

    Returns
    -------
    RunQC
    """
    kept = np.asarray(kept, dtype=np.int64)
    dvars = standardized_dvars(cleaned, kept)
    trace = np.full(n_volumes, np.nan)
    trace[kept] = dvars
    out = {k: v for k, v in before.items() if not k.startswith("_")}
    out.update({
        "DegreesOfFreedom": int(dof),
        "DegreesOfFreedomLost": int(n_volumes - dof),
        "StandardizedDVARSMeanAfter": _nanmean(dvars),
        "TemporalSNRMedianAfter": median_tsnr(before["_mean_kept"], cleaned_std),
        "FramewiseDisplacementDVARSCorrelationAfter": fd_dvars_correlation(fd, dvars, kept),
    })
    return RunQC(metrics={k: out[k] for k in QC_FIELDS if k in out}, dvars_before=before["_dvars"],
                 dvars_after=trace)


def run_qc(raw: np.ndarray, cleaned: np.ndarray, *, kept: np.ndarray, fd: np.ndarray | None,
           non_steady_state: np.ndarray | None, cleaned_std: np.ndarray, dof: int) -> dict:
    """:func:`qc_before` then :func:`qc_after` (when ``raw`` is still intact after cleaning)."""
    before = qc_before(raw, fd=fd, non_steady_state=non_steady_state, kept=kept)
    return qc_after(before, cleaned, kept=kept, fd=fd, cleaned_std=cleaned_std, dof=dof,
                    n_volumes=raw.shape[0]).metrics


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else np.nan


#: units and descriptions of :func:`run_qc`'s values (sidecar ``QC`` and the group table's columns)
QC_FIELDS = {
    "FramewiseDisplacementMean": ("mm", "Mean framewise displacement over the volumes after the non-steady-state "
                                        "ones (fMRIPrep's framewise_displacement)."),
    "FramewiseDisplacementMax": ("mm", "Largest framewise displacement over the same volumes."),
    "NonSteadyStateVolumes": ("volumes", "Volumes removed as non-steady state (dummy scans)."),
    "CensoredVolumeCount": ("volumes", "Volumes removed by censoring (motion outliers, scrubbing), non-steady-state "
                                       "volumes not counted."),
    "CensoredFraction": ("fraction", "CensoredVolumeCount / volumes after the non-steady-state ones (not / all "
                                     "volumes: non-steady-state volumes count in neither)."),
    "DegreesOfFreedom": ("degrees of freedom", "Temporal degrees of freedom each cleaned column keeps."),
    "DegreesOfFreedomLost": ("degrees of freedom", "Volumes of the run minus DegreesOfFreedom (lost to "
                                                   "non-steady state, censoring, detrending, filtering, confounds "
                                                   "and standardization)."),
    "StandardizedDVARSMeanBefore": ("ratio", "Mean standardized DVARS (Nichols; 1 = expected under the null) of "
                                             "the extracted columns before cleaning (volumes after the "
                                             "non-steady-state ones)."),
    "StandardizedDVARSMeanAfter": ("ratio", "Mean standardized DVARS of the cleaned columns (consecutive kept "
                                            "volumes only)."),
    "TemporalSNRMedianBefore": ("ratio", "Median over columns of temporal mean / standard deviation before "
                                         "cleaning."),
    "TemporalSNRMedianAfter": ("ratio", "Median over columns of temporal mean (kept volumes, before cleaning) / "
                                        "standard deviation of what the linear cleaning left (before "
                                        "standardization)."),
    "FramewiseDisplacementDVARSCorrelationBefore": ("Pearson r", "Correlation of framewise displacement and "
                                                                 "standardized DVARS before cleaning."),
    "FramewiseDisplacementDVARSCorrelationAfter": ("Pearson r", "Correlation of framewise displacement and "
                                                                "standardized DVARS after cleaning."),
    "TrialsValidSegments": ("trials", "Trials whose segment of the cleaned signal is valid: no censored volume in "
                                      "its window, inside the run (the valid column of _trials.tsv)."),
    "TrialsInvalidSegments": ("trials", "Trials whose segment is invalid (a censored volume in the window, or "
                                        "outside the run): NTrials - TrialsValidSegments."),
    "TrialsEstimated": ("trials", "Trials with a valid estimate in _betas.tsv (--trial-estimates; its valid "
                                  "column). LSS and LSA estimate a trial from the kept volumes of its window, so a "
                                  "trial with a censored volume there can still be estimated: this can exceed "
                                  "TrialsValidSegments."),
}

#: names of QC metrics in sidecars written before they were renamed (read as the new name)
QC_RENAMED = {"TrialsValidSegments": "TrialsValid", "TrialsInvalidSegments": "TrialsInvalid"}

#: column of each QC metric in ``group_runs.tsv``, the loader's per-run QC table and the connectivity dataset's
#: table: one name per quantity everywhere (``group_denoising_runs.tsv`` uses the same names for the same values)
QC_COLUMNS = {
    "FramewiseDisplacementMean": "fd_mean", "FramewiseDisplacementMax": "fd_max",
    "NonSteadyStateVolumes": "non_steady_state_volumes", "CensoredVolumeCount": "censored_volumes",
    "CensoredFraction": "censored_fraction", "DegreesOfFreedom": "dof", "DegreesOfFreedomLost": "dof_lost",
    "StandardizedDVARSMeanBefore": "std_dvars_before", "StandardizedDVARSMeanAfter": "std_dvars_after",
    "TemporalSNRMedianBefore": "tsnr_before", "TemporalSNRMedianAfter": "tsnr_after",
    "FramewiseDisplacementDVARSCorrelationBefore": "fd_dvars_correlation_before",
    "FramewiseDisplacementDVARSCorrelationAfter": "fd_dvars_correlation_after",
    "TrialsValidSegments": "trials_valid_segments", "TrialsInvalidSegments": "trials_invalid_segments",
    "TrialsEstimated": "trials_estimated",
}


def qc_values(meta: dict) -> dict[str, float]:
    """A run sidecar's ``QC`` object as ``{column: value}`` (:data:`QC_COLUMNS`; NaN for what it lacks, e.g.
    outputs written before QC metrics, or trial counts of a run without events)."""
    qc = meta.get("QC") or {}
    out = {}
    for key, column in QC_COLUMNS.items():
        value = (qc.get(key) or qc.get(QC_RENAMED.get(key, "")) or {}).get("Value")
        out[column] = np.nan if value is None else value
    return out
