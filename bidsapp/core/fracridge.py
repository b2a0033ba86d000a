"""Fractional ridge regression (Rokem & Kay 2020, GigaScience 9: giaa133), in numpy.

Ridge regression is parametrised by the *fraction* ``f`` of the ordinary least-squares coefficients'
L2 norm it keeps (``f = 1``: OLS; ``f -> 0``: all coefficients 0) instead of by the penalty ``alpha``,
whose useful range depends on the data's scale. With the SVD ``X = U S V^T``, ridge coefficients are
``V diag(s / (s^2 + alpha)) U^T y``; in the rotated basis they are the OLS ones scaled by
``s^2 / (s^2 + alpha)``, so the norm ratio of every ``alpha`` on a grid is cheap, and the ``alpha`` giving
each requested fraction is interpolated (in ``log alpha``) per target column.
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
    grid = basis.alpha_grid()
    s2 = basis.s**2
    shrink = s2[None, :] / (s2[None, :] + grid[:, None])  # (n_alpha, r)
    b2 = rotated_ols**2
    total = b2.sum(axis=0)
    ratio = np.sqrt((shrink**2) @ b2 / np.where(total > 0, total, 1.0))  # (n_alpha, n_targets), decreasing
    log_grid = np.log(grid[1:])
    alpha = np.zeros((f.size, rotated_ols.shape[1]))
    for j in range(rotated_ols.shape[1]):
        if total[j] == 0:
            continue
        r = ratio[1:, j]  # decreasing with alpha: interpolate on the reversed (increasing) arrays
        la = np.interp(f, r[::-1], log_grid[::-1], left=log_grid[-1], right=log_grid[0])
        alpha[:, j] = np.where(f >= 1.0, 0.0, np.exp(la))
    return alpha


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
