"""Group-level denoising benchmark: how much motion is left in the connectivity of each denoising strategy.

The metrics follow the fMRIPrep denoising benchmark (Wang et al. 2024, PLOS Comput Biol; code in
SIMEXP/fmriprep-denoise-benchmark), which follows Power et al. 2015 and Parkes et al. 2018:

- **QC-FC** (:func:`qcfc`): for each edge (pair of regions), the Pearson correlation across participants
  between the edge's connectivity and the participant's mean framewise displacement (FD); with covariates
  (age, sex), the partial correlation: both are residualized on an intercept and the covariates by least
  squares, then correlated. The p-value is the two-sided t-test of ``r`` with ``n - 2 - k`` degrees of
  freedom (``k`` covariates; the benchmark's code used ``n - 2`` whatever ``k``, as ``pearsonr`` on the
  residuals does); without covariates it equals ``scipy.stats.pearsonr``'s.
- **Share of significant edges** (:func:`summarize`): percent of edges with ``p < 0.05``, uncorrected and
  after the Benjamini-Hochberg false discovery rate correction (:func:`fdr_bh`) over the edges of one
  strategy and atlas; and the **median absolute QC-FC**.
- **Distance dependence** (:func:`distance_dependence`): the Spearman correlation between each edge's QC-FC
  and the Euclidean distance between the centroids of its two regions (motion inflates short-range
  connectivity most: a negative value is the classic residual artefact).
- **Loss of temporal degrees of freedom** (:func:`dof_loss`): the volumes of a run minus the degrees of
  freedom left after cleaning (censored volumes, confound regressors, filter, detrending, mean).
- **Exclusion** (:func:`exclusion_reason`): a run is left out when its mean FD exceeds a threshold (the
  benchmark's "stringent" rule: 0.25 mm; its "minimal" rule: 0.55 mm) or when more than a share of its
  volumes (0.8) would be censored by scrubbing at an FD threshold (0.2 mm). The rule reads FD only, so the
  same runs are excluded from every strategy, as in the benchmark.

Edges are the upper triangle of a connectivity matrix, row by row (``numpy.triu_indices(n, k=1)``):
``(0, 1), (0, 2), ..., (1, 2), ...``. Everything here takes arrays and returns new ones (pure numpy / scipy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: significance level of the share of significant edges (uncorrected and FDR), as in the benchmark
ALPHA = 0.05
#: the benchmark's "stringent" exclusion rule (mean FD in mm, share of volumes, FD threshold in mm)
EXCLUDE_FD_MEAN = 0.25
EXCLUDE_CENSORED_FRACTION = 0.8
EXCLUDE_FD_THRESHOLD = 0.2


def n_edges(n_regions: int) -> int:
    """Number of edges (region pairs) of ``n_regions`` regions."""
    return n_regions * (n_regions - 1) // 2


def edge_index(n_regions: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each edge in a connectivity matrix: the upper triangle, row by row."""
    return np.triu_indices(n_regions, k=1)


def connectivity_vector(timeseries: np.ndarray) -> np.ndarray:
    """Correlation of each pair of columns of one run, as an edge vector: the correlation matrix of the
    Ledoit-Wolf covariance of the standardized columns, ``nilearn.connectome.ConnectivityMeasure(kind=
    "correlation")`` with its default estimator, as the benchmark's code computed connectomes, and the values of
    a run's ``meas-PearsonCorrelation_relmat.tsv`` (:func:`bidsapp.core.connectivity.connectivity`, the one
    implementation).

    Parameters
    ----------
    timeseries : ndarray, shape (n_samples, n_regions)
        The run's region time series (kept volumes only). A column that is all NaN (a region left out by
        ``--min-coverage``) or without variance (a constant signal) gives NaN edges and is left out of the
        covariance, as in the ``_relmat`` files (:func:`bidsapp.core.connectivity.left_out_columns`, one rule).

    Returns
    -------
    ndarray, shape (n_regions * (n_regions - 1) / 2,)
        Correlations in :func:`edge_index` order; NaN for an edge with a constant or all-NaN region.

    Raises
    ------
    ValueError
        For fewer than 2 regions or 3 samples, or non-finite values in a column that is not all NaN.
    """
    from bidsapp.core.connectivity import connectivity

    X = np.array(timeseries, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 2 or X.shape[0] < 3:
        raise ValueError(f"connectivity needs (n_samples >= 3, n_regions >= 2) time series, got shape {X.shape}.")
    left_out = np.isnan(X).all(axis=0)
    if not np.isfinite(X[:, ~left_out]).all():
        raise ValueError("time series have non-finite values; connectivity would be NaN.")
    corr = connectivity(X, "correlation")  # NaN rows and columns for the columns it leaves out
    i, j = edge_index(X.shape[1])
    return np.clip(corr[i, j], -1.0, 1.0)


def edge_distances(centroids: np.ndarray) -> np.ndarray:
    """Euclidean distance between the centroids of the two regions of each edge.

    Parameters
    ----------
    centroids : ndarray, shape (n_regions, 3)
        Region centroids in mm (world coordinates).

    Returns
    -------
    ndarray, shape (n_edges,)
        In :func:`edge_index` order; NaN where a centroid is unknown.
    """
    c = np.asarray(centroids, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"centroids must have shape (n_regions, 3), got {c.shape}.")
    i, j = edge_index(c.shape[0])
    return np.sqrt(((c[i] - c[j]) ** 2).sum(axis=1))


@dataclass(frozen=True)
class QCFC:
    """QC-FC of every edge: the (partial) correlation across participants with mean FD.

    Attributes
    ----------
    r, p : ndarray, shape (n_edges,)
        Correlation and two-sided p-value (NaN for an edge not finite in every participant).
    n_participants : int
        Participants the correlations were computed over.
    n_covariates : int
        Covariates partialled out (besides the intercept).
    """

    r: np.ndarray
    p: np.ndarray
    n_participants: int
    n_covariates: int

    @property
    def dof(self) -> int:
        """Degrees of freedom of the t-test of ``r``: ``n - 2 - k``."""
        return self.n_participants - 2 - self.n_covariates


def min_participants(n_covariates: int = 0) -> int:
    """Fewest participants QC-FC needs: one degree of freedom left for its t-test (``n - 2 - k >= 1``)."""
    return 3 + n_covariates


def qcfc(connectivity: np.ndarray, motion: np.ndarray, covariates: np.ndarray | None = None) -> QCFC:
    """QC-FC: for each edge, the correlation across participants between connectivity and motion.

    Parameters
    ----------
    connectivity : ndarray, shape (n_participants, n_edges)
        One edge vector per participant (e.g. :func:`connectivity_vector`).
    motion : ndarray, shape (n_participants,)
        Each participant's mean framewise displacement.
    covariates : ndarray, shape (n_participants, n_covariates), optional
        Partialled out of both (with an intercept), e.g. age and sex; ``k`` in the degrees of freedom is
        their rank (a constant or collinear covariate is not counted).

    Returns
    -------
    QCFC

    Raises
    ------
    ValueError
        For mismatched shapes, non-finite motion or covariates, constant motion, covariates that explain
        the motion entirely, or fewer participants than :func:`min_participants`.
    """
    C = np.asarray(connectivity, dtype=np.float64)
    m = np.asarray(motion, dtype=np.float64)
    if C.ndim != 2 or m.ndim != 1 or C.shape[0] != m.shape[0]:
        raise ValueError(f"connectivity {C.shape} and motion {m.shape} must have one row per participant.")
    Z = np.ones((m.shape[0], 1))
    if covariates is not None:
        cov = np.asarray(covariates, dtype=np.float64)
        cov = cov[:, None] if cov.ndim == 1 else cov
        if cov.ndim != 2 or cov.shape[0] != m.shape[0]:
            raise ValueError(f"covariates {cov.shape} must have one row per participant ({m.shape[0]}).")
        Z = np.column_stack([Z, cov])
    k = int(np.linalg.matrix_rank(Z)) - 1  # a covariate constant or collinear with others costs no dof
    if not (np.isfinite(m).all() and np.isfinite(Z).all()):
        raise ValueError("motion and covariates must be finite for every participant.")
    if m.shape[0] < min_participants(k):
        raise ValueError(f"QC-FC needs at least {min_participants(k)} participants with {k} covariate(s), "
                         f"got {m.shape[0]}.")
    m_res = _residualize(m[:, None], Z)[:, 0]
    if np.sqrt((m_res**2).sum()) <= 1e-12 * max(np.abs(m).max(), 1e-300) * np.sqrt(m.size):
        raise ValueError("mean framewise displacement is constant (or explained by the covariates) across "
                         "participants; QC-FC is undefined.")
    finite = np.isfinite(C).all(axis=0)
    r = np.full(C.shape[1], np.nan)
    if finite.any():
        C_res = _residualize(C[:, finite], Z)
        with np.errstate(invalid="ignore", divide="ignore"):
            r[finite] = (C_res.T @ m_res) / (np.sqrt((C_res**2).sum(axis=0)) * np.sqrt((m_res**2).sum()))
    r = np.clip(r, -1.0, 1.0)
    return QCFC(r=r, p=_pvalue(r, m.shape[0] - 2 - k), n_participants=int(m.shape[0]), n_covariates=k)


def qcfc_by_edge(connectivity: np.ndarray, motion: np.ndarray, covariates: np.ndarray | None = None
                 ) -> tuple[QCFC, np.ndarray, list[str]]:
    """QC-FC of each edge over the participants whose connectivity of that edge is finite.

    A participant without an edge (a region not in its runs, or left out by ``--min-coverage``) is left out of
    that edge's correlation only; every other edge keeps it. Edges with the same participants are computed
    together by :func:`qcfc` (each with its own degrees of freedom, ``n_e - 2 - k``).

    Parameters
    ----------
    connectivity : ndarray, shape (n_participants, n_edges)
        NaN where a participant has no value for an edge.
    motion : ndarray, shape (n_participants,)
    covariates : ndarray, shape (n_participants, n_covariates), optional

    Returns
    -------
    result : QCFC
        ``r`` and ``p`` per edge (NaN for an edge with too few participants); ``n_participants`` is the
        number of participants given.
    n : ndarray of int, shape (n_edges,)
        Participants each edge's QC-FC is computed over (0 when it is not computed).
    problems : list of str
        Why a set of edges has no QC-FC (too few participants, constant motion), one line per set.
    """
    C = np.asarray(connectivity, dtype=np.float64)
    m = np.asarray(motion, dtype=np.float64)
    if C.ndim != 2 or m.ndim != 1 or C.shape[0] != m.shape[0]:
        raise ValueError(f"connectivity {C.shape} and motion {m.shape} must have one row per participant.")
    cov = None if covariates is None or np.size(covariates) == 0 else \
        np.asarray(covariates, dtype=np.float64).reshape(m.shape[0], -1)
    r, p, n = np.full(C.shape[1], np.nan), np.full(C.shape[1], np.nan), np.zeros(C.shape[1], dtype=int)
    present = np.isfinite(C)
    patterns, which = np.unique(present.T, axis=0, return_inverse=True)
    problems = []
    for k, rows in enumerate(patterns):
        cols = np.flatnonzero(np.ravel(which) == k)
        if not rows.any():
            continue
        try:
            sub = qcfc(C[np.ix_(rows, cols)], m[rows], None if cov is None else cov[rows])
        except ValueError as exc:
            problems.append(f"{cols.size} edge(s) over {int(rows.sum())} participant(s): {exc}")
            continue
        r[cols], p[cols], n[cols] = sub.r, sub.p, int(rows.sum())
    k_cov = 0 if cov is None else int(np.linalg.matrix_rank(np.column_stack([np.ones(m.shape[0]), cov]))) - 1
    return QCFC(r=r, p=p, n_participants=int(m.shape[0]), n_covariates=k_cov), n, problems


def _residualize(Y: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """``Y`` minus its least-squares fit on the columns of ``Z``."""
    beta, *_ = np.linalg.lstsq(Z, Y, rcond=None)
    return Y - Z @ beta


def _pvalue(r: np.ndarray, dof: int) -> np.ndarray:
    """Two-sided p-value of correlations ``r`` under the t distribution with ``dof`` degrees of freedom."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = r * np.sqrt(dof / ((1.0 - r) * (1.0 + r)))
    return np.where(np.isnan(r), np.nan, np.minimum(1.0, 2.0 * stats.t.sf(np.abs(t), dof)))


def fdr_bh(pvalues: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Benjamini-Hochberg: which tests are significant at false discovery rate ``alpha``.

    NaN p-values are not tests (never significant, not counted in ``m``).

    Returns
    -------
    ndarray of bool, shape of ``pvalues``
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.zeros(p.shape, dtype=bool)
    tested = np.flatnonzero(~np.isnan(p))
    if tested.size == 0:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    below = p[order] <= alpha * np.arange(1, order.size + 1) / order.size
    if below.any():
        out[order[: np.flatnonzero(below)[-1] + 1]] = True
    return out


def distance_dependence(r: np.ndarray, distances: np.ndarray) -> tuple[float, float]:
    """Spearman correlation (and its p-value) between the QC-FC of each edge and its distance.

    Edges where either is NaN are left out; NaN when fewer than 3 edges remain or either is constant.
    """
    r, d = np.asarray(r, dtype=np.float64), np.asarray(distances, dtype=np.float64)
    if r.shape != d.shape:
        raise ValueError(f"QC-FC {r.shape} and distances {d.shape} must have one value per edge.")
    keep = np.isfinite(r) & np.isfinite(d)
    if keep.sum() < 3 or np.ptp(r[keep]) == 0 or np.ptp(d[keep]) == 0:
        return float("nan"), float("nan")
    res = stats.spearmanr(r[keep], d[keep])
    return float(res.statistic), float(res.pvalue)


def summarize(result: QCFC, distances: np.ndarray | None = None, alpha: float = ALPHA) -> dict[str, float]:
    """The benchmark's summary of one strategy and atlas.

    Returns
    -------
    dict
        ``qcfc_edges`` (edges with a QC-FC), ``qcfc_significant_percent`` (p < alpha),
        ``qcfc_fdr_significant_percent`` (Benjamini-Hochberg at alpha), ``qcfc_median_abs``,
        ``distance_dependence`` and ``distance_dependence_p`` (NaN without distances).
    """
    tested = ~np.isnan(result.p)
    n = int(tested.sum())
    out = {"qcfc_edges": n,
           "qcfc_significant_percent": 100.0 * float((result.p[tested] < alpha).sum()) / n if n else np.nan,
           "qcfc_fdr_significant_percent": 100.0 * float(fdr_bh(result.p, alpha).sum()) / n if n else np.nan,
           "qcfc_median_abs": float(np.median(np.abs(result.r[tested]))) if n else np.nan}
    rho, p = distance_dependence(result.r, distances) if distances is not None else (np.nan, np.nan)
    out.update(distance_dependence=rho, distance_dependence_p=p)
    return out


def dof_loss(n_volumes: np.ndarray, dof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Temporal degrees of freedom lost by each run: ``n_volumes - dof``, and that as a share of ``n_volumes``."""
    n, d = np.asarray(n_volumes, dtype=np.float64), np.asarray(dof, dtype=np.float64)
    if n.shape != d.shape or (n <= 0).any() or (d > n).any():
        raise ValueError("each run needs n_volumes > 0 and degrees of freedom <= n_volumes.")
    lost = n - d
    return lost, lost / n


def mean_fd(fd: np.ndarray) -> float:
    """Mean framewise displacement of a run over the volumes where it is defined (not the first)."""
    fd = np.asarray(fd, dtype=np.float64)
    return float(np.nanmean(fd)) if np.isfinite(fd).any() else float("nan")


def high_motion_fraction(fd: np.ndarray, threshold: float = EXCLUDE_FD_THRESHOLD) -> float:
    """Share of a run's volumes whose framewise displacement exceeds ``threshold`` (mm), over the volumes where
    it is defined (not the first, whose FD is n/a), as :func:`mean_fd`; NaN when no volume has one.

    This is the share scrubbing at that threshold censors before it also drops short segments and high-DVARS
    volumes (which the benchmark's nilearn scrubbing did), so a lower bound of the benchmark's share.
    """
    fd = np.asarray(fd, dtype=np.float64)
    defined = np.isfinite(fd)
    return float((fd[defined] > threshold).sum()) / int(defined.sum()) if defined.any() else float("nan")


def exclusion_reason(fd_mean: float, high_motion: float, *,
                     fd_mean_max: float | None = EXCLUDE_FD_MEAN,
                     censored_fraction_max: float | None = EXCLUDE_CENSORED_FRACTION,
                     fd_threshold: float = EXCLUDE_FD_THRESHOLD) -> str | None:
    """Why a run is excluded from the benchmark (None: kept): every rule that fired, joined by ``"; "``.

    Parameters
    ----------
    fd_mean : float
        The run's mean FD (mm); NaN (no FD) excludes the run.
    high_motion : float
        :func:`high_motion_fraction` at ``fd_threshold`` (not the share of volumes a strategy censored).
    fd_mean_max, censored_fraction_max : float or None
        Thresholds (None: that criterion is off).
    fd_threshold : float
        Only named in the reason.
    """
    if not np.isfinite(fd_mean):
        return "no framewise displacement (confounds without framewise_displacement)"
    reasons = []
    if fd_mean_max is not None and fd_mean > fd_mean_max:
        reasons.append(f"mean framewise displacement {fd_mean:.3f} mm > {fd_mean_max:g} mm")
    if censored_fraction_max is not None and high_motion > censored_fraction_max:
        reasons.append(f"{100 * high_motion:.1f}% of volumes with framewise displacement > {fd_threshold:g} mm, "
                       f"more than {100 * censored_fraction_max:g}%")
    return "; ".join(reasons) or None


def encode_covariates(columns: Mapping[str, Sequence]) -> tuple[np.ndarray, list[str]]:
    """Numeric covariate matrix from participant columns (e.g. ``age`` and ``sex`` of participants.tsv).

    A column whose every value is a number is used as is; any other column is categorical: one 0/1 column
    per level but the first (sorted), named ``<column>=<level>``.

    Parameters
    ----------
    columns : mapping of str to sequence
        One value per participant for each covariate (numbers or strings; no missing value).

    Returns
    -------
    matrix : ndarray, shape (n_participants, n_encoded)
    names : list of str
    """
    blocks, names = [], []
    for name, values in columns.items():
        values = list(values)
        try:
            blocks.append(np.array([float(v) for v in values])[:, None])
            names.append(name)
            continue
        except (TypeError, ValueError):
            pass
        levels = sorted({str(v) for v in values})
        for level in levels[1:]:
            blocks.append(np.array([str(v) == level for v in values], dtype=np.float64)[:, None])
            names.append(f"{name}={level}")
    n = len(next(iter(columns.values()))) if columns else 0
    return (np.hstack(blocks) if blocks else np.empty((n, 0))), names
