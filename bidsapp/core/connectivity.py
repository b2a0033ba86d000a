"""Connectivity matrices of region, map or sphere time series, as nilearn's ``ConnectivityMeasure``.

The covariance is the Ledoit-Wolf shrunk estimate (nilearn's default estimator, scikit-learn's
``LedoitWolf(store_precision=False)``: the empirical covariance of the centred series, divided by the number
of samples, pulled towards ``mu * I`` with the shrinkage of Ledoit & Wolf 2004). ``correlation`` is that
estimate on the series standardized with ``ddof=1`` (nilearn's ``zscore_sample``), scaled to a unit
diagonal; ``partial correlation`` is minus the precision matrix (inverse of the shrunk covariance) scaled to
a unit diagonal, with a diagonal of 1; ``covariance`` is the shrunk covariance itself.

Columns that are all NaN (regions left out by ``--min-coverage``) and columns without variance over the samples
(:func:`no_variance`: a constant signal, whose correlation with anything is undefined) are left out of the
estimate (:func:`left_out_columns`, the one rule of the ``_relmat`` files and of the denoising benchmark) and get
NaN rows and columns in the matrix; a partial correlation is conditional on the regions that are kept.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

#: measure name (``--connectivity``) -> BIDS ``meas-`` label of the ``_relmat`` derivative
MEASURES = {
    "correlation": "PearsonCorrelation",
    "partial-correlation": "PartialCorrelation",
    "covariance": "Covariance",
}
#: measures whose values are correlations (Fisher's z applies to them)
CORRELATIONS = ("correlation", "partial-correlation")
#: a column whose standard deviation over the samples is at most this fraction of its largest magnitude has no
#: variance (the cleaning's ``CONSTANT_RTOL``): the cleaning sets a constant column to exactly 0 when it
#: standardizes, and a float32 column holds no variation that small (its rounding step is at least 6e-8 of its
#: magnitude), so on cleaned series this is "all values equal"; float64 round-off around an offset counts too
NO_VARIANCE_RTOL = 1e-10
#: why a column without variance is left out (the ``_relmat.json``'s ``ExcludedNodesReasons``)
NO_VARIANCE_REASON = "no variance over the run's kept volumes (a constant signal: its correlations are undefined)"
#: why an all-NaN column is left out, when the features table does not say
ALL_NAN_REASON = "all NaN (coverage below --min-coverage)"


def no_variance(x: np.ndarray) -> np.ndarray:
    """Columns without variance over the samples: standard deviation at most ``NO_VARIANCE_RTOL`` times the
    column's largest magnitude (an all-zero column included).

    Parameters
    ----------
    x : numpy.ndarray, shape (n_samples, n_features)

    Returns
    -------
    numpy.ndarray of bool, shape (n_features,)
        False for columns that hold a NaN (an all-NaN column is left out for that reason, see
        :func:`left_out_columns`).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"no_variance needs a 2D array (n_samples, n_features), got shape {x.shape}.")
    std = x.std(axis=0) if x.shape[0] else np.zeros(x.shape[1])
    scale = np.abs(x).max(axis=0, initial=0.0)
    with np.errstate(invalid="ignore"):
        return std <= NO_VARIANCE_RTOL * scale  # NaN (a column holding NaN): False


def left_out_columns(x: np.ndarray) -> np.ndarray:
    """Columns left out of every connectivity estimate: all NaN (``--min-coverage``) or :func:`no_variance`.

    Their rows and columns of :func:`connectivity` are NaN, in every measure; the ``_relmat.json`` lists them
    in ``ExcludedNodes`` and the denoising benchmark's edges with them are NaN.

    Parameters
    ----------
    x : numpy.ndarray, shape (n_samples, n_features)

    Returns
    -------
    numpy.ndarray of bool, shape (n_features,)
    """
    x = np.asarray(x, dtype=np.float64)
    return np.isnan(x).all(axis=0) | no_variance(x)


def exclusion_reasons(x: np.ndarray, names: list[str], nan_reasons=None) -> dict[str, str]:
    """Each column :func:`left_out_columns` leaves out, by name, and why.

    Parameters
    ----------
    x : numpy.ndarray, shape (n_samples, n_features)
    names : list of str, length n_features
    nan_reasons : sequence, optional
        Per column, why it is all NaN (the features table's ``excluded`` cells; None or "" when not known):
        the text for an all-NaN column, else ``ALL_NAN_REASON``.

    Returns
    -------
    dict
        Name -> reason, in column order.
    """
    x = np.asarray(x, dtype=np.float64)
    all_nan = np.isnan(x).all(axis=0)
    flat = no_variance(x)
    out = {}
    for k, name in enumerate(names):
        if all_nan[k]:
            given = None if nan_reasons is None else nan_reasons[k]
            known = isinstance(given, str) and given not in ("", "n/a")
            out[name] = given if known else ALL_NAN_REASON
        elif flat[k]:
            out[name] = NO_VARIANCE_REASON
    return out


def ledoit_wolf_shrinkage(x: np.ndarray) -> float:
    """Ledoit-Wolf shrinkage coefficient of centred samples ``x`` (n_samples, n_features), in [0, 1].

    The formula of scikit-learn's ``ledoit_wolf_shrinkage`` (``assume_centered=True`` on centred data).
    """
    n, p = x.shape
    if p == 1:
        return 0.0
    x2 = x**2
    trace = x2.sum(axis=0) / n
    mu = trace.sum() / p
    beta_ = float(np.sum(x2.T @ x2))
    delta_ = float(np.sum((x.T @ x) ** 2)) / n**2
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * trace.sum() + p * mu**2) / p
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def shrunk_covariance(x: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf covariance of ``x`` (n_samples, n_features): scikit-learn's ``LedoitWolf().covariance_``.

    Parameters
    ----------
    x : numpy.ndarray, shape (n_samples, n_features)
        Finite values; at least two samples.

    Returns
    -------
    numpy.ndarray, shape (n_features, n_features), float64
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"connectivity needs an array of shape (n_samples >= 2, n_features >= 1), got {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError("connectivity input holds NaN or infinite values outside whole NaN columns.")
    xc = x - x.mean(axis=0)
    n, p = xc.shape
    emp = xc.T @ xc / n
    if p == 1:
        return emp
    shrinkage = ledoit_wolf_shrinkage(xc)
    mu = np.trace(emp) / p
    cov = (1.0 - shrinkage) * emp
    cov.flat[:: p + 1] += shrinkage * mu
    return cov


def _cov_to_corr(cov: np.ndarray) -> np.ndarray:
    """nilearn's ``cov_to_corr``: scale to a unit diagonal (exactly 1)."""
    d = 1.0 / np.sqrt(np.diag(cov))
    corr = cov * d[:, None] * d[None, :]
    np.fill_diagonal(corr, 1.0)
    return corr


def _zscore_sample(x: np.ndarray) -> np.ndarray:
    """Centre and divide by the ``ddof=1`` standard deviation (constant columns: divided by 1), as nilearn."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    std = x.std(axis=0, ddof=1)
    std[std < np.finfo(np.float64).eps] = 1.0
    return x / std


def connectivity(x: np.ndarray, measure: str = "correlation") -> np.ndarray:
    """One connectivity matrix of a run's series.

    Parameters
    ----------
    x : numpy.ndarray, shape (n_samples, n_features)
        Region, map or sphere series (rows: kept volumes). Columns that are entirely NaN or without variance
        (:func:`left_out_columns`) are left out of the estimate and get NaN rows and columns.
    measure : {"correlation", "partial-correlation", "covariance"}

    Returns
    -------
    numpy.ndarray, shape (n_features, n_features), float64
        Symmetric; equal to ``nilearn.connectome.ConnectivityMeasure(kind=...)`` on the columns that are not
        left out.

    Raises
    ------
    ValueError
        Unknown measure, fewer than two samples, or NaN outside whole NaN columns.
    """
    if measure not in MEASURES:
        raise ValueError(f"unknown connectivity measure {measure!r}; use one of {list(MEASURES)}.")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"connectivity needs a 2D array of shape (n_samples >= 2, n_features), got {x.shape}.")
    keep = ~left_out_columns(x)
    out = np.full((x.shape[1], x.shape[1]), np.nan)
    if not keep.any():
        return out
    xk = x[:, keep]
    if measure == "correlation":
        m = _cov_to_corr(shrunk_covariance(_zscore_sample(xk)))
    elif measure == "covariance":
        m = shrunk_covariance(xk)
    else:
        m = -_cov_to_corr(linalg.inv(shrunk_covariance(xk)))
        np.fill_diagonal(m, 1.0)
    m = (m + m.T) / 2  # exactly symmetric (round-off of the inverse)
    out[np.ix_(keep, keep)] = m
    return out


def fisher_z(matrix: np.ndarray) -> np.ndarray:
    """Fisher's z (``arctanh``) of a correlation matrix; the diagonal (correlation 1, z infinite) is NaN.

    Raises ``ValueError`` when an off-diagonal value is outside [-1, 1].
    """
    m = np.array(matrix, dtype=np.float64)
    off = ~np.eye(m.shape[0], dtype=bool)
    values = m[off]
    if np.any(np.abs(values[np.isfinite(values)]) > 1):
        raise ValueError("Fisher's z needs correlations in [-1, 1]; this matrix has larger values.")
    with np.errstate(divide="ignore"):
        z = np.arctanh(m)
    np.fill_diagonal(z, np.nan)
    return z


def upper_triangle(matrix: np.ndarray) -> np.ndarray:
    """The values above the diagonal, row by row: ``matrix[np.triu_indices(n, k=1)]``.

    Parameters
    ----------
    matrix : numpy.ndarray, shape (..., n, n)

    Returns
    -------
    numpy.ndarray, shape (..., n * (n - 1) / 2)
    """
    m = np.asarray(matrix)
    if m.ndim < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"upper_triangle needs square matrices (..., n, n), got shape {m.shape}.")
    i, j = np.triu_indices(m.shape[-1], k=1)
    return m[..., i, j]


def edge_names(names: list[str]) -> list[str]:
    """Names of the upper-triangle edges (order of :func:`upper_triangle`): ``"<a>--<b>"``."""
    i, j = np.triu_indices(len(names), k=1)
    return [f"{names[a]}--{names[b]}" for a, b in zip(i, j)]


#: what each measure's values are (the ``_relmat.json``'s ``MeasureDescription``)
DESCRIPTIONS = {
    "correlation": "Pearson correlation of the cleaned series, from the Ledoit-Wolf shrunk covariance of the "
                   "standardized series (nilearn ConnectivityMeasure(kind='correlation')).",
    "partial-correlation": "Partial correlation (each pair given every other kept column): minus the Ledoit-Wolf "
                           "precision matrix scaled to a unit diagonal (nilearn ConnectivityMeasure(kind='partial "
                           "correlation')).",
    "covariance": "Ledoit-Wolf shrunk covariance of the cleaned series, in the units of the cleaned series squared "
                  "(nilearn ConnectivityMeasure(kind='covariance')).",
}


def relmat_table(matrix: np.ndarray, names: list[str]) -> dict[str, list]:
    """A ``_relmat.tsv`` as columns: ``node`` (the row's name), then one column per node (NaN: n/a).

    Parameters
    ----------
    matrix : numpy.ndarray, shape (n, n)
    names : list of str, length n
    """
    m = np.asarray(matrix)
    if m.shape != (len(names), len(names)):
        raise ValueError(f"a matrix of shape {m.shape} for {len(names)} node names.")
    if len(set(names)) != len(names):
        raise ValueError("node names must be unique (they are the columns of the _relmat.tsv).")
    return {"node": list(names), **{name: m[:, k] for k, name in enumerate(names)}}


def relmat_sidecar(measure: str, *, fisher: bool, n_samples: int, excluded: list[str] | dict[str, str]) -> dict:
    """The ``_relmat.json`` fields (BIDS connectivity derivatives, BEP017) of one matrix.

    Parameters
    ----------
    measure : str
        A ``--connectivity`` measure.
    fisher : bool
        ``--fisher-z``.
    n_samples : int
        The kept volumes.
    excluded : dict or list of str
        The nodes left out (:func:`exclusion_reasons`: name -> why; a list: names, reason all NaN).
    """
    reasons = dict(excluded) if isinstance(excluded, dict) else dict.fromkeys(excluded, ALL_NAN_REASON)
    z = fisher and measure in CORRELATIONS
    return {
        "Measure": MEASURES[measure] + ("FisherZ" if z else ""),
        "MeasureDescription": DESCRIPTIONS[measure] + (" Fisher z-transformed (arctanh); the diagonal is n/a."
                                                       if z else ""),
        "Weighted": True,
        "Directed": False,
        "ValidDiagonal": not z,
        "StorageFormat": "Full",
        "CovarianceEstimator": "Ledoit-Wolf shrinkage (scikit-learn LedoitWolf, nilearn's default)",
        "FisherZ": z,
        "NumberOfSamples": int(n_samples),
        "ExcludedNodes": list(reasons),
        "ExcludedNodesReasons": reasons,
        "ExcludedNodesDescription": "Nodes left out of the estimate, with n/a rows and columns in every measure: "
                                    "series all NaN (coverage below --min-coverage) or without variance over the "
                                    "run's kept volumes (a constant signal, whose correlations are undefined); "
                                    "ExcludedNodesReasons gives each node's reason.",
    }
