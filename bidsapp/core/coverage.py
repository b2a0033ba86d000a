"""Region coverage: the fraction of each region (label, map, sphere, grayordinate label) that the run's mask
holds, and the ``--min-coverage`` rule that turns a poorly covered region into a column of NaN.

A region the mask barely covers is otherwise the mean of a few voxels at the edge of the brain (XCP-D's
``--min-coverage``, default 0.5, does the same).
"""

from __future__ import annotations

import numpy as np

#: default of ``--min-coverage``: XCP-D's
MIN_COVERAGE = 0.5


def label_coverage(atlas: np.ndarray, masked: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Fraction of each label's voxels (or grayordinates) that remain after masking.

    Parameters
    ----------
    atlas : numpy.ndarray of int
        The labels on the run's grid before masking (0 = background).
    masked : numpy.ndarray of int, same shape
        The labels inside the mask (0 elsewhere).
    values : numpy.ndarray of int, shape (n_regions,)

    Returns
    -------
    numpy.ndarray, shape (n_regions,), in [0, 1] (NaN for a label absent from ``atlas``)
    """
    values = np.asarray(values, dtype=np.int64)
    total = count_labels(atlas, values)
    inside = count_labels(masked, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.maximum(total, 1), np.nan)


def count_labels(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Number of elements of ``labels`` equal to each of ``values``."""
    flat = np.asarray(labels).ravel()
    flat = flat[flat != 0]
    uniq, counts = np.unique(flat, return_counts=True)
    lookup = dict(zip(uniq.tolist(), counts.tolist()))
    return np.array([lookup.get(int(v), 0) for v in np.asarray(values)], dtype=np.int64)


def map_coverage(maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fraction of each map's total weight inside the mask.

    Parameters
    ----------
    maps : numpy.ndarray, shape (nx, ny, nz, n_maps)
        Non-negative weights on the run's grid, before masking.
    mask : numpy.ndarray of bool, shape (nx, ny, nz)

    Returns
    -------
    numpy.ndarray, shape (n_maps,) (NaN for a map without weight)
    """
    total = maps.reshape(-1, maps.shape[3]).sum(axis=0)
    inside = maps[np.asarray(mask, bool)].sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)


def below(coverage: np.ndarray, min_coverage: float) -> np.ndarray:
    """Columns whose coverage is below ``min_coverage`` (NaN coverage: never below).

    Raises ``ValueError`` when ``min_coverage`` is outside [0, 1].
    """
    if not 0.0 <= float(min_coverage) <= 1.0:
        raise ValueError(f"--min-coverage {min_coverage}: give a fraction in [0, 1] (0 keeps every region).")
    cov = np.asarray(coverage, dtype=np.float64)
    return np.isfinite(cov) & (cov < float(min_coverage))


def reason(coverage: float, min_coverage: float) -> str:
    """The ``excluded`` cell of a region left out by :func:`below`."""
    return f"coverage {coverage:.3f} < --min-coverage {min_coverage:g}"


def exclude_poorly_covered(table: dict, X: np.ndarray, min_coverage: float) -> list[int]:
    """Apply ``--min-coverage``: columns of ``X`` whose ``coverage`` is below it become NaN, and the features
    table gets an ``excluded`` column saying why (``None``: kept).

    Parameters
    ----------
    table : dict
        The features table (column name -> values, one per column of ``X``); modified in place when it has a
        ``coverage`` column (the kinds without one, voxels and grayordinates, are returned untouched).
    X : numpy.ndarray, shape (n_rows, n_columns), writeable (a memory map opened ``r+`` is fine)
        Modified in place.
    min_coverage : float
        In [0, 1].

    Returns
    -------
    list of int
        The columns set to NaN.
    """
    if "coverage" not in table:
        return []
    cov = np.asarray(table["coverage"], dtype=np.float64)
    if cov.shape != (X.shape[1],):
        raise ValueError(f"the features table has {cov.size} coverage values for {X.shape[1]} columns.")
    out = below(cov, min_coverage)
    table["excluded"] = np.array([reason(c, min_coverage) if o else None for c, o in zip(cov, out)], dtype=object)
    columns = np.flatnonzero(out).tolist()
    if columns:
        X[:, columns] = np.nan
    return columns


def warning_line(table: dict, columns: list[int], min_coverage: float, what: str = "region") -> str:
    """One line naming the columns left out by ``--min-coverage``, their coverage and the fix."""
    names = table.get("name", [f"{what}-{c}" for c in range(len(table["coverage"]))])
    listed = ", ".join(f"{names[c]} ({float(table['coverage'][c]):.2f})" for c in columns[:5])
    more = f" and {len(columns) - 5} more" if len(columns) > 5 else ""
    return (f"{len(columns)} {what}(s) covered by less than {min_coverage:g} of their extent by the mask are "
            f"columns of NaN: {listed}{more}; lower --min-coverage to keep them, or use a mask that covers them.")
