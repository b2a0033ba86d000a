"""What the report's carpet plot needs from a run: a subsample of columns before and after cleaning and
standardized DVARS over every column.

The cleaning node builds it (:func:`zscored_columns` before it cleans the array in place, :func:`kept_rows`
after, and the DVARS traces of its QC, :class:`bidsapp.core.qc.RunQC`), so the trace drawn and the sidecar's
``StandardizedDVARSMean*`` are one computation. :func:`carpet_data` composes the same pieces from the two
arrays, computing DVARS with :func:`bidsapp.core.qc.standardized_dvars` on the same volumes as the QC (the
volumes after the non-steady-state ones before cleaning, the kept volumes after). The arrays handed in may be
memory maps of the whole run (``n_volumes x n_features``, e.g. 250,000 voxels): only the subsample's columns
are read whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bidsapp.core.qc import DVARS_CHUNK_BYTES, standardized_dvars

#: most columns of the carpet plot
CARPET_COLUMNS = 2000
#: the carpet is stored as uint8 over z in [-Z_RANGE, Z_RANGE] (the plot shows -2 to 2); 255 is NaN (censored)
Z_RANGE = 3.0


def quantize(z: np.ndarray) -> np.ndarray:
    """z-scores -> uint8 (0..254 over [-3, 3], clipped; NaN -> 255): what the carpet plot can show, in a
    quarter of float32's bytes."""
    q = np.rint((np.clip(z, -Z_RANGE, Z_RANGE) + Z_RANGE) / (2 * Z_RANGE) * 254)
    return np.where(np.isfinite(z), q, 255).astype(np.uint8)


def dequantize(q: np.ndarray) -> np.ndarray:
    """uint8 carpet -> float32 z-scores (NaN where 255)."""
    z = q.astype(np.float32) / 254 * (2 * Z_RANGE) - Z_RANGE
    z[q == 255] = np.nan
    return z


@dataclass
class CarpetData:
    """A run's carpet: the same columns before and after cleaning, one row per acquired volume.

    Attributes
    ----------
    before : numpy.ndarray, shape (n_volumes, n_columns), float32
        The masked signal before cleaning, each column z-scored over the volumes (mean 0, SD 1; a constant
        column is 0).
    after : numpy.ndarray, shape (n_volumes, n_columns), float32
        The cleaned signal of the same columns on the kept volumes, each column z-scored over them; NaN on
        censored volumes.
    columns : numpy.ndarray, shape (n_columns,), int
        Which columns of the run (indices into the features table), in increasing order.
    dvars_before, dvars_after : numpy.ndarray, shape (n_volumes,)
        Standardized DVARS over every column (not only the subsample), :func:`bidsapp.core.qc.standardized_dvars`:
        before cleaning over the volumes after the non-steady-state ones (NaN on those and on the first after
        them), after cleaning over the kept volumes (NaN on censored volumes and the first kept volume after a
        censored one). Their means are the sidecar's ``StandardizedDVARSMeanBefore`` / ``After``.
    """

    before: np.ndarray
    after: np.ndarray
    columns: np.ndarray
    dvars_before: np.ndarray
    dvars_after: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """What ``report.npz`` stores of the carpet: ``before`` and ``after`` as uint8 (:func:`quantize`),
        ``columns``, ``dvars_before`` and ``dvars_after``."""
        return {"before": quantize(self.before), "after": quantize(self.after), "columns": self.columns,
                "dvars_before": self.dvars_before, "dvars_after": self.dvars_after}


def carpet_columns(n_features: int, max_columns: int = CARPET_COLUMNS) -> np.ndarray:
    """Up to ``max_columns`` column indices spread evenly over ``range(n_features)``, in order.

    Columns come in the features table's order, which groups them spatially (voxels in C order of the grid,
    grayordinates by structure, regions by label), so an even spread keeps that grouping.

    Parameters
    ----------
    n_features : int
        Number of columns of the run (>= 1).
    max_columns : int
        Most columns to keep (>= 1).

    Returns
    -------
    numpy.ndarray, shape (min(n_features, max_columns),), int
    """
    if n_features < 1 or max_columns < 1:
        raise ValueError(f"carpet_columns: n_features={n_features} and max_columns={max_columns} must be >= 1")
    if n_features <= max_columns:
        return np.arange(n_features)
    return np.unique(np.linspace(0, n_features - 1, max_columns).round().astype(int))


def _zscore(block: np.ndarray) -> np.ndarray:
    """Each column to mean 0, SD 1 (float64); constant columns become 0, columns with a NaN (a region
    ``--min-coverage`` excluded) stay NaN: drawn as no data, not as a flat signal at the mean."""
    block = np.asarray(block, dtype=np.float64)
    centred = block - block.mean(axis=0)
    sd = centred.std(axis=0)
    z = np.divide(centred, sd, out=np.zeros_like(centred), where=sd > 1e-12 * (1 + np.abs(block).max(axis=0)))
    z[:, ~np.isfinite(sd)] = np.nan
    return z


def zscored_columns(x: np.ndarray, columns: np.ndarray, chunk_bytes: int = DVARS_CHUNK_BYTES) -> np.ndarray:
    """``x[:, columns]``, each column z-scored over its rows (constant columns 0, NaN columns NaN), float32.

    By chunks of columns whose float64 copy is at most ``chunk_bytes``: each column's numbers are those of the
    whole block, and the float64 temporaries stay a chunk's (all of them were ~0.3 GB at T = 4,000, the
    cleaning node's peak)."""
    columns = np.asarray(columns)
    out = np.empty((x.shape[0], columns.size), dtype=np.float32)
    width = max(1, chunk_bytes // (8 * max(x.shape[0], 1)))
    for start in range(0, columns.size, width):
        out[:, start:start + width] = _zscore(np.asarray(x[:, columns[start:start + width]]))
    return out


def kept_rows(rows: np.ndarray, kept: np.ndarray, n_volumes: int) -> np.ndarray:
    """One row per acquired volume: ``rows[k]`` on volume ``kept[k]``, NaN on the volumes not kept."""
    out = np.full((n_volumes, rows.shape[1]), np.nan, dtype=np.float32)
    out[np.asarray(kept, dtype=int)] = rows
    return out


def carpet_data(before: np.ndarray, after: np.ndarray, kept: np.ndarray, *,
                non_steady_state: np.ndarray | None = None, max_columns: int = CARPET_COLUMNS,
                chunk_bytes: int = DVARS_CHUNK_BYTES) -> CarpetData:
    """The carpet of a run: a subsample of columns before and after cleaning, and DVARS of both.

    Parameters
    ----------
    before : numpy.ndarray, shape (n_volumes, n_features)
        The masked signal before cleaning, every acquired volume (a memory map is fine).
    after : numpy.ndarray, shape (n_kept, n_features)
        The cleaned signal: one row per kept volume, in order.
    kept : numpy.ndarray, shape (n_kept,), int
        The volume (row of ``before``) of each row of ``after``, increasing.
    non_steady_state : numpy.ndarray of bool, shape (n_volumes,), optional
        Volumes removed as non-steady state: left out of DVARS before cleaning, as in the QC metrics.
    max_columns : int
        Most columns in the carpet.
    chunk_bytes : int
        Memory of one chunk of columns for DVARS (float64).

    Returns
    -------
    CarpetData
    """
    n, p = before.shape
    kept = np.asarray(kept, dtype=int)
    if after.shape != (kept.size, p):
        raise ValueError(f"carpet_data: the cleaned array has shape {after.shape}, expected ({kept.size}, {p}) "
                         "(one row per kept volume, the columns of the array before cleaning)")
    if kept.size and (kept.min() < 0 or kept.max() >= n or np.any(np.diff(kept) <= 0)):
        raise ValueError(f"carpet_data: kept volumes must be increasing indices in [0, {n}), got {kept.tolist()}")
    nss = np.zeros(n, bool) if non_steady_state is None else np.asarray(non_steady_state, bool)
    if nss.shape != (n,):
        raise ValueError(f"carpet_data: non_steady_state has shape {nss.shape}, expected ({n},)")
    cols = carpet_columns(p, max_columns)
    dvars_before, dvars_after = np.full(n, np.nan), np.full(n, np.nan)
    steady = np.flatnonzero(~nss)
    dvars_before[steady] = standardized_dvars(before, steady, rows=steady, chunk_bytes=chunk_bytes)
    after_rows = np.empty((0, cols.size), np.float32)
    if kept.size:
        after_rows = zscored_columns(after, cols)
        dvars_after[kept] = standardized_dvars(after, kept, chunk_bytes=chunk_bytes)
    return CarpetData(before=zscored_columns(before, cols), after=kept_rows(after_rows, kept, n), columns=cols,
                      dvars_before=dvars_before, dvars_after=dvars_after)
