"""Fractional ridge regression (Rokem & Kay 2020, GigaScience 9: giaa133), in numpy.

Ridge regression is parametrised by the *fraction* ``f`` of the ordinary least-squares coefficients'
L2 norm it keeps (``f = 1``: OLS; ``f -> 0``: all coefficients 0) instead of by the penalty ``alpha``,
whose useful range depends on the data's scale. With the SVD ``X = U S V^T``, ridge coefficients are
``V diag(s / (s^2 + alpha)) U^T y``; in the rotated basis they are the OLS ones scaled by
``s^2 / (s^2 + alpha)``, so the norm ratio of every ``alpha`` on a grid is cheap, and the ``alpha`` giving
each requested fraction is interpolated (in ``log alpha``) per target column. :func:`heldout_error` scores
every fraction on held-out rows (the cross-validation of the fraction) without forming the coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: penalties tried per decade of ``alpha / s_max^2`` (the grid spans ``1e-6 .. 1e6`` times ``s_max^2``)
GRID_PER_DECADE = 20
#: singular values below this share of the largest are treated as 0 (their directions get no weight)
RANK_TOLERANCE = 1e-10


@dataclass
class FracRidgeBasis:
    """SVD of a design, reused for every target and fraction.

    Attributes
    ----------
    u : numpy.ndarray, shape (n, r)
    s : numpy.ndarray, shape (r,)
        Non-zero singular values.
    vt : numpy.ndarray, shape (r, p)
    """

    u: np.ndarray
    s: np.ndarray
    vt: np.ndarray

    @classmethod
    def of(cls, design: np.ndarray) -> FracRidgeBasis:
        """SVD of ``design`` (n, p), keeping directions with singular values above the tolerance."""
        design = np.asarray(design, dtype=np.float64)
        if design.ndim != 2 or design.shape[1] == 0:
            raise ValueError(f"fracridge: the design must be a 2D array with columns, got shape {design.shape}.")
        u, s, vt = np.linalg.svd(design, full_matrices=False)
        keep = s > (s[0] * RANK_TOLERANCE if s.size and s[0] > 0 else np.inf)
        return cls(u=u[:, keep], s=s[keep], vt=vt[keep])

    def alpha_grid(self) -> np.ndarray:
        """Penalties from ``1e-6`` to ``1e6`` times the largest squared singular value, plus 0 (OLS)."""
        top = float(self.s[0] ** 2) if self.s.size else 1.0
        grid = top * np.logspace(-6, 6, 12 * GRID_PER_DECADE + 1)
        return np.concatenate([[0.0], grid])


def _check_fractions(fractions) -> np.ndarray:
    f = np.atleast_1d(np.asarray(fractions, dtype=np.float64))
    if f.ndim != 1 or f.size == 0 or not np.all((f > 0) & (f <= 1)):
        raise ValueError(f"fracridge: fractions must be in (0, 1], got {f.tolist()}.")
    return f


def alphas_for_fractions(basis: FracRidgeBasis, rotated_ols: np.ndarray, fractions) -> np.ndarray:
    """The penalty giving each fraction of the OLS norm, per target column.

    The norm ratio of every column is computed on the ``alpha`` grid (one matrix product), and the grid
    interval holding each fraction is found by a bisection run on all columns at once; the ``log alpha``
    is then interpolated linearly in that interval (what ``np.interp`` gives column by column).

    Parameters
    ----------
    basis : FracRidgeBasis
    rotated_ols : numpy.ndarray, shape (r, n_targets)
        OLS coefficients in the rotated basis, ``(U^T y) / s``.
    fractions : array-like, shape (n_fractions,), in (0, 1]

    Returns
    -------
    alpha : numpy.ndarray, shape (n_fractions, n_targets)
        0 for a fraction of 1 (and for columns whose OLS coefficients are all 0).
    """
    f = _check_fractions(fractions)
    grid = basis.alpha_grid()[1:]
    s2 = basis.s**2
    b2 = rotated_ols**2
    total = b2.sum(axis=0)
    b2 /= np.where(total > 0, total, 1.0)
    # squared norm ratio, one row per column (its grid values contiguous), decreasing along the grid
    ratio2 = b2.T @ ((s2[:, None] / (s2[:, None] + grid[None, :])) ** 2)
    first = _first_at_most(ratio2, f)
    log_grid = np.log(grid)
    m, n_t = ratio2.shape[1], ratio2.shape[0]
    lo_i, hi_i = np.minimum(first, m - 1), np.maximum(first - 1, 0)
    rows = np.arange(n_t) * m
    r_lo, r_hi = np.sqrt(np.take(ratio2, rows + lo_i)), np.sqrt(np.take(ratio2, rows + hi_i))
    step = np.where(r_hi > r_lo, (log_grid[hi_i] - log_grid[lo_i]) / np.where(r_hi > r_lo, r_hi - r_lo, 1.0), 0.0)
    la = log_grid[lo_i] + (f[:, None] - r_lo) * step
    la = np.where(first == 0, log_grid[0], np.where(first == m, log_grid[-1], la))
    return np.where((f[:, None] >= 1.0) | (total[None, :] == 0), 0.0, np.exp(la))


def _first_at_most(ratio2: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Per fraction and column, the first grid point whose norm ratio ``sqrt(ratio2)`` is at most the fraction.

    ``ratio2`` (n_targets, n_alpha) decreases along each row; the answer is in ``0 .. n_alpha``
    (``n_alpha``: every ratio is above the fraction), found by a branch-free binary search (steps of
    decreasing powers of two) run on every fraction and column at once, comparing squares (a ratio equal to
    a fraction up to round-off may land in the next interval, where the interpolation gives the same value).
    Shape (n_fractions, n_targets).
    """
    n_t, m = ratio2.shape
    flat = ratio2.ravel()
    rows = np.arange(n_t) * m - 1
    f2 = (fractions**2)[:, None]
    above = np.zeros((fractions.size, n_t), dtype=np.intp)  # grid points known to be above the fraction
    step = 1 << int(m).bit_length()
    while step:
        cand = np.minimum(above + step, m)
        above = np.where(np.take(flat, cand + rows) > f2, cand, above)
        step >>= 1
    return above


def fracridge(design: np.ndarray, targets: np.ndarray, fractions) -> tuple[np.ndarray, np.ndarray]:
    """Ridge coefficients keeping each fraction of the OLS coefficients' norm, per target column.

    Parameters
    ----------
    design : numpy.ndarray, shape (n, p)
    targets : numpy.ndarray, shape (n, n_targets)
    fractions : array-like, shape (n_fractions,), in (0, 1]

    Returns
    -------
    coefs : numpy.ndarray, shape (n_fractions, p, n_targets)
    alpha : numpy.ndarray, shape (n_fractions, n_targets)
        The penalty of each fraction and target (0: OLS).

    Raises
    ------
    ValueError
        When the fractions are outside (0, 1] or the shapes do not match.
    """
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or targets.shape[0] != np.shape(design)[0]:
        raise ValueError(f"fracridge: targets of shape {targets.shape} for a design of shape {np.shape(design)}; "
                         "both need the same number of rows.")
    basis = FracRidgeBasis.of(design)
    rotated = (basis.u.T @ targets) / basis.s[:, None]
    alpha = alphas_for_fractions(basis, rotated, fractions)
    return ridge_coefs(basis, rotated, alpha), alpha


def ridge_coefs(basis: FracRidgeBasis, rotated_ols: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Coefficients for penalties ``alpha`` (n_fractions, n_targets): shape (n_fractions, p, n_targets)."""
    s2 = basis.s**2
    out = np.empty((alpha.shape[0], basis.vt.shape[1], rotated_ols.shape[1]))
    for k in range(alpha.shape[0]):
        shrink = s2[:, None] / (s2[:, None] + alpha[k][None, :])
        out[k] = basis.vt.T @ (shrink * rotated_ols)
    return out


def coef_variance_factor(basis: FracRidgeBasis, alpha: np.ndarray) -> np.ndarray:
    """Diagonal of ``(X'X + aI)^-1 X'X (X'X + aI)^-1`` per target: the coefficients' variance over the noise's.

    Parameters
    ----------
    basis : FracRidgeBasis
    alpha : numpy.ndarray, shape (n_targets,)

    Returns
    -------
    numpy.ndarray, shape (p, n_targets)
    """
    s2 = basis.s**2
    gain = s2[:, None] / (s2[:, None] + alpha[None, :]) ** 2  # s^2 / (s^2 + a)^2, shape (r, n_targets)
    return (basis.vt.T**2) @ gain


def heldout_error(design: np.ndarray, targets: np.ndarray, test_design: np.ndarray, test_targets: np.ndarray,
                  fractions) -> np.ndarray:
    """Squared error of predicting held-out rows with the ridge fit of each fraction, per target column.

    Equal to ``((test_targets - test_design @ fracridge(design, targets, fractions)[0]) ** 2).sum(rows)``;
    the prediction is formed in the rotated basis, ``(test_design V) (shrink * rotated)``, one matrix
    product per fraction.

    Parameters
    ----------
    design : numpy.ndarray, shape (n, p)
    targets : numpy.ndarray, shape (n, n_targets)
    test_design : numpy.ndarray, shape (n_test, p)
    test_targets : numpy.ndarray, shape (n_test, n_targets)
    fractions : array-like, shape (n_fractions,), in (0, 1]

    Returns
    -------
    numpy.ndarray, shape (n_fractions, n_targets)
    """
    basis = FracRidgeBasis.of(design)
    rotated = (basis.u.T @ np.asarray(targets, dtype=np.float64)) / basis.s[:, None]
    alpha = alphas_for_fractions(basis, rotated, fractions)
    s2 = basis.s[:, None] ** 2
    scaled = s2 * rotated  # weights of fraction k: s^2 rotated / (s^2 + alpha_k)
    rotated_test = np.asarray(test_design, dtype=np.float64) @ basis.vt.T
    test_targets = np.asarray(test_targets, dtype=np.float64)
    err = np.empty(alpha.shape)
    weights, pred = np.empty_like(rotated), np.empty_like(test_targets)
    for k in range(alpha.shape[0]):  # one fraction at a time, in reused buffers: fewer passes over memory
        np.add(s2, alpha[k], out=weights)
        np.divide(scaled, weights, out=weights)
        np.matmul(rotated_test, weights, out=pred)
        pred -= test_targets
        err[k] = np.einsum("tc,tc->c", pred, pred)
    return err
