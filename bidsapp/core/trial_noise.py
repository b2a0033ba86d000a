"""Data-driven noise regressors for trial-wise estimates (the GLMdenoise step of GLMsingle, label-free).

1. Noise pool: the columns the task does not explain: R² of the all-trials model (one regressor, every
   trial the same response) below :data:`POOL_R2` (or the ``2 * MIN_POOL`` lowest), and of those, the half
   least explained by a single-trial model (one regressor per trial, adjusted R²).
2. In each run, the principal components (over time) of the pool's residuals under that model.
3. Their number ``K`` (0 .. ``max_components``, the same in every run): the smallest whose median
   leave-one-run-out R² of the all-trials model (or of the ``--trial-repeats`` design), over the columns
   the task explains, reaches :data:`GAIN_SHARE` of the best gain over ``K = 0`` (GLMsingle's rule). The
   residual of a run with ``K`` dimensions projected out is scaled by ``n / (n - K)``: components that remove
   no more than their share of the residual lower the score (with AR(1) noise and no shared noise, the
   unscaled score chose 7-10 components and lost 0.02-0.03 of recovery; the scaled one chooses 0).

The first ``K`` components of each run are then regressors of no interest of that run's trial model.
No function here reads trial labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bidsapp.core import trial_cv

#: columns whose all-trials R² is below this are the noise pool
POOL_R2 = 0.05
#: ... unless fewer than twice this many qualify: then the lowest-R² columns
MIN_POOL = 20
#: largest number of noise regressors tried
MAX_COMPONENTS = 10
#: the chosen number reaches this share of the best cross-validated gain
GAIN_SHARE = 0.95


@dataclass
class NoiseModel:
    """What the noise step chose.

    Attributes
    ----------
    pool : numpy.ndarray of bool, shape (n_columns,)
    r2 : numpy.ndarray, shape (n_columns,)
        In-sample R² of the all-trials model (what the pool is chosen from).
    components : list of numpy.ndarray, each (n_r, max_components)
        Orthonormal time courses of each run, strongest first.
    n_components : int
        How many of them the trial model uses.
    cv_r2 : numpy.ndarray, shape (max_components + 1,)
        Median held-out R² of the selection columns for each number of components (NaN: not computed).
    target : str
        The cross-validation target (``"all-trials"`` or ``"repeats:<column>"``), or why none was possible.
    """

    pool: np.ndarray
    r2: np.ndarray
    components: list
    n_components: int
    cv_r2: np.ndarray
    target: str

    def regressors(self, run: int) -> np.ndarray:
        """The chosen noise regressors of ``run``: shape (n_r, n_components)."""
        return self.components[run][:, : self.n_components]


def all_trials_r2(designs: list[np.ndarray], data: list[np.ndarray]) -> np.ndarray:
    """In-sample R² per column of the all-trials model fitted jointly to every run."""
    stats = [trial_cv.RunProducts.of(x, y) for x, y in zip(designs, data)]
    b = np.linalg.pinv(sum(st.xtx for st in stats)) @ sum(st.xty for st in stats)
    # |y - x b|^2 = y'y - 2 b'x'y + b'x'x b: the residuals are never formed
    rss = sum(np.maximum(st.yy - 2.0 * (b * st.xty).sum(axis=0) + (b * (st.xtx @ b)).sum(axis=0), 0.0)
              for st in stats)
    tss = sum(st.yy for st in stats)
    return 1.0 - rss / np.where(tss > 0, tss, 1.0)


def single_trial_r2(trial_designs: list[np.ndarray], data: list[np.ndarray]) -> np.ndarray:
    """Adjusted R² per column of one regressor per trial (each run its own model), over all runs.

    ``1 - (RSS / (n - p)) / (TSS / n)`` summed over runs: about 0 where trials explain nothing, whatever
    the number of trials per run; it catches columns that respond to some trials and not on average, which
    the all-trials model misses. The residual sum of squares is the data's minus that of its projection on
    the design's column space (one SVD of the design per run, reused by every column).
    """
    rss = tss = 0.0
    n_res = n_all = 0
    for x, y in zip(trial_designs, data):
        u = column_space(x)
        yy = np.einsum("ij,ij->j", y, y)
        rss = rss + np.maximum(yy - ((u.T @ y) ** 2).sum(axis=0), 0.0)  # |y|^2 minus that of its projection
        tss = tss + yy
        n_res += y.shape[0] - u.shape[1]
        n_all += y.shape[0]
    return 1.0 - (rss / max(n_res, 1)) / np.where(tss > 0, tss / n_all, 1.0)


def column_space(design: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the columns of ``design`` (n, p): shape (n, rank).

    The rank is ``np.linalg.lstsq``'s and ``np.linalg.matrix_rank``'s (singular values above
    ``s_max * max(n, p) * eps``), so ``y - u @ (u.T @ y)`` is the least-squares residual of ``y``.
    """
    design = np.asarray(design, dtype=np.float64)
    if design.shape[1] == 0:
        return np.zeros((design.shape[0], 0))
    u, s, _ = np.linalg.svd(design, full_matrices=False)
    tol = s[0] * max(design.shape) * np.finfo(np.float64).eps
    return u[:, s > tol]


def noise_pool(r2: np.ndarray, *, threshold: float = POOL_R2, min_pool: int = MIN_POOL,
               trial_r2: np.ndarray | None = None) -> np.ndarray:
    """The noise pool: columns with all-trials R² below ``threshold`` (or the ``2 * min_pool`` lowest when
    fewer qualify) and, when ``trial_r2`` is given, single-trial adjusted R² at most the median of those
    candidates (columns that answer to some trials and not on average stay out of the pool).

    Returns
    -------
    numpy.ndarray of bool, shape (n_columns,)
    """
    candidates = r2 < threshold
    if candidates.sum() < min(2 * min_pool, r2.size):
        candidates = np.zeros(r2.size, dtype=bool)
        candidates[np.argsort(r2, kind="stable")[: min(2 * min_pool, r2.size)]] = True
    if trial_r2 is None:
        return candidates
    return candidates & (trial_r2 <= np.median(trial_r2[candidates]))


def run_components(design: np.ndarray, data: np.ndarray, pool: np.ndarray, beta: np.ndarray,
                   n_max: int) -> np.ndarray:
    """Principal time courses of the pool's residuals in one run: shape (n_r, min(n_max, rank)), orthonormal.

    Each pool column is scaled to unit norm first, so that no column dominates by its variance alone.
    """
    resid = data[:, pool] - design @ beta[:, pool]
    norm = np.linalg.norm(resid, axis=0)
    resid = resid / np.where(norm > 0, norm, 1.0)
    if resid.shape[1] > resid.shape[0]:
        u = _leading_by_gram(resid, n_max)
        if u is not None:
            return u
        resid = np.linalg.qr(resid.T, mode="r").T  # the SVD of R' (resid' = QR) has the same U and s
    u, s, _ = np.linalg.svd(resid, full_matrices=False)
    rank = int((s > (s[0] * 1e-10 if s.size else 0)).sum())
    return u[:, : min(n_max, rank)]


#: the Gram route is taken when the n_max-th eigenvalue is at least this share of the largest (else QR + SVD)
GRAM_FLOOR = 1e-8


def _leading_by_gram(resid: np.ndarray, n_max: int) -> np.ndarray | None:
    """The ``n_max`` leading left singular vectors of a wide ``resid`` (n, m) from the eigenvectors of
    ``resid resid'`` (n, n), or None when they are not all well above round-off (the caller then takes the
    exact route, which also finds the rank)."""
    w, v = np.linalg.eigh(resid @ resid.T)
    if w.size < n_max or w[-1] <= 0 or w[-n_max] < GRAM_FLOOR * w[-1]:
        return None
    return v[:, ::-1][:, :n_max]


def project_out(components: np.ndarray, array: np.ndarray) -> np.ndarray:
    """``array`` minus its projection on the orthonormal ``components`` (n, k)."""
    if components.shape[1] == 0:
        return array
    return array - components @ (components.T @ array)


def fit_noise_model(
    designs: list[np.ndarray], data: list[np.ndarray], *, cv_designs: list[np.ndarray] | None = None,
    target: str = "all-trials", max_components: int = MAX_COMPONENTS, trial_designs: list | None = None,
) -> NoiseModel:
    """Noise pool, per-run components and their cross-validated number.

    Parameters
    ----------
    designs : list of numpy.ndarray, each (n_r, 1)
        All-trials regressor of each run (cleaned like the data), for the pool and the residuals.
    data : list of numpy.ndarray, each (n_r, n_columns)
        Cleaned data of each run.
    cv_designs : list of numpy.ndarray or None
        Design whose held-out prediction chooses the number (default: ``designs``), e.g. the repeat design.
    target : str
        Name of that target, recorded.
    max_components : int
    trial_designs : list of numpy.ndarray or None, each (n_r, n_trials_r)
        One regressor per trial: columns explained by single trials are kept out of the pool.

    Returns
    -------
    NoiseModel
        With one run, no cross-validation is possible: ``n_components`` is 0 and ``target`` says so.
    """
    beta = trial_cv.pooled_fit(designs, data, range(len(data)))
    r2 = all_trials_r2(designs, data)
    trial_r2 = None if trial_designs is None else single_trial_r2(trial_designs, data)
    pool = noise_pool(r2, trial_r2=trial_r2)
    components = [run_components(x, y, pool, beta, max_components) for x, y in zip(designs, data)]
    n_avail = min(c.shape[1] for c in components)
    cv = np.full(max_components + 1, np.nan)
    if len(data) < 2:
        return NoiseModel(pool, r2, components, 0, cv, "none: one run, no held-out run to choose the number")
    cv_designs = designs if cv_designs is None else cv_designs
    per_k = heldout_r2_per_k(components, cv_designs, data, n_avail)
    select = ~pool & (per_k.max(axis=0) > 0)
    if not select.any():
        return NoiseModel(pool, r2, components, 0, cv, f"{target}: no column predicts held-out runs")
    cv[: n_avail + 1] = np.median(per_k[:, select], axis=1)
    gain = cv[: n_avail + 1] - cv[0]
    best = float(np.nanmax(gain))
    n = int(np.flatnonzero(gain >= GAIN_SHARE * best)[0]) if best > 0 else 0
    return NoiseModel(pool, r2, components, n, cv, target)


def heldout_r2_per_k(components: list[np.ndarray], designs: list[np.ndarray], data: list[np.ndarray],
                     n_max: int) -> np.ndarray:
    """Leave-one-run-out R² with the first ``k`` components projected out, for ``k = 0 .. n_max``.

    Equal to ``trial_cv.heldout_r2([project_out(c[:, :k], x) ...], [project_out(c[:, :k], y) ...],
    removed=k)`` for each ``k``, from each run's cross-products: with orthonormal components ``C``,
    ``(Px)'(Py) = x'y - (C'x)'(C'y)``, so the projected data are never formed and each added component
    updates the cross-products by one outer product.

    Parameters
    ----------
    components : list of numpy.ndarray, each (n_r, >= n_max), orthonormal columns
    designs : list of numpy.ndarray, each (n_r, p)
    data : list of numpy.ndarray, each (n_r, n_columns)
    n_max : int

    Returns
    -------
    numpy.ndarray, shape (n_max + 1, n_columns)
    """
    stats, loads = [], []
    for c, x, y in zip(components, designs, data):
        stats.append(trial_cv.RunProducts.of(x, y))
        loads.append((c[:, :n_max].T @ x, c[:, :n_max].T @ y))
    out = [trial_cv.heldout_r2_from_products(stats, removed=0)]
    for k in range(1, n_max + 1):
        for st, (a, g) in zip(stats, loads):
            st.remove(a[k - 1], g[k - 1])
        out.append(trial_cv.heldout_r2_from_products(stats, removed=k))
    return np.array(out)
