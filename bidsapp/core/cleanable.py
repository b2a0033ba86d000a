"""Whether a run's cleaning model leaves any degree of freedom, decided before the run's signals are read.

Everything the count needs is known from the BOLD header (the number of volumes), the confounds file and the
settings: the censoring and the regressors (:func:`bidsapp.core.confounds.run_design`, the rule the cleaning node
applies), detrending, the filter and standardization. :func:`count_model` first counts what the model removes
(the regressors, two for the linear trend, the cosine drifts, and, for a Butterworth band, the share of the
frequencies it stops); only when that count leaves fewer than ``EXACT_BELOW`` does it build the cleaning
operator (:func:`bidsapp.core.signal.cleaning_operator`, the cleaning node's own function) and take its exact
degrees of freedom, so a run is refused by the same rule as the node, and a run that the count clearly allows
costs no operator (0.4-7 s of CPU for T = 300-4,000 with a band-pass).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from bidsapp.core import signal
from bidsapp.core.confounds import RunDesign

#: the operator is built (and its exact degrees of freedom taken) when the count leaves fewer than this
EXACT_BELOW = 2 * signal.MIN_DOF


@dataclass(frozen=True)
class ModelCount:
    """What a run's cleaning model removes from its kept volumes.

    Attributes
    ----------
    n_volumes, n_kept : int
        Volumes of the run, and those censoring keeps.
    n_confounds : int
        Confound regressors (columns of the confounds file).
    n_drifts : int
        Cosine drift regressors of ``filter="cosine"``.
    detrend : bool
    band : str or None
        The Butterworth filter's band ("0.01-0.1 Hz", "above 0.01 Hz", ...), None without one.
    dof : int or None
        The cleaning operator's degrees of freedom (as the cleaning node counts them, standardization included),
        or None when the count leaves at least ``EXACT_BELOW`` and the operator was not built.
    standardization : bool
        Whether standardization takes one of them (it removes a mean that nothing else removed).
    """

    n_volumes: int
    n_kept: int
    n_confounds: int
    n_drifts: int
    detrend: bool
    band: str | None
    dof: int | None
    standardization: bool = False


def _band(filter: str | None, low_pass: float | None, high_pass: float | None, t_r: float) -> tuple[str | None, float]:
    """The Butterworth band's name and the share of the frequencies (0 to Nyquist) it passes (1 without one)."""
    if filter != "butterworth" or (low_pass is None and high_pass is None):
        return None, 1.0
    nyquist = 0.5 / t_r
    top, bottom = low_pass if low_pass is not None else nyquist, high_pass or 0.0
    name = (f"{high_pass:g}-{low_pass:g} Hz" if low_pass is not None and high_pass is not None
            else f"below {low_pass:g} Hz" if low_pass is not None else f"above {high_pass:g} Hz")
    return name, max(top - bottom, 0.0) / nyquist


def count_model(n_volumes: int, design: RunDesign, *, t_r: float, detrend: bool = True,
                standardize: str | None = "zscore_sample", standardize_confounds: bool = True,
                filter: str | None = "butterworth", low_pass: float | None = None,
                high_pass: float | None = None) -> ModelCount:
    """Count what the cleaning of a run removes, exactly (the cleaning operator's degrees of freedom) when it may
    leave fewer than ``EXACT_BELOW``.

    Parameters
    ----------
    n_volumes : int
        Volumes of the run.
    design : RunDesign
        The run's confounds and censoring (:func:`bidsapp.core.confounds.run_design`).
    t_r, detrend, standardize, standardize_confounds, filter, low_pass, high_pass
        As :func:`bidsapp.core.signal.clean`.

    Returns
    -------
    ModelCount
    """
    n, m = int(n_volumes), design.n_kept
    k = 0 if design.confounds is None else int(design.confounds.shape[1])
    drifts = signal.cosine_drift(high_pass, n, t_r).shape[1] if filter == "cosine" and high_pass else 0
    band, passed = _band(filter, low_pass, high_pass, t_r)
    removed = k + drifts + (min(m, 2) if detrend else 0) + (1 if standardize is not None and not detrend else 0)
    dof, standardization = None, False
    if m * passed - removed < EXACT_BELOW:  # possibly (nearly) none left: the cleaning node's own count
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the cleaning node says them (few degrees of freedom, collinearity)
            op = signal.cleaning_operator(
                n, t_r=t_r, detrend=detrend, confounds=design.confounds, standardize_confounds=standardize_confounds,
                filter=filter, low_pass=low_pass, high_pass=high_pass, sample_mask=design.sample_mask)
        dof = signal.degrees_of_freedom(op, standardize)
        standardization = dof < op.dof
    return ModelCount(n_volumes=n, n_kept=m, n_confounds=k, n_drifts=drifts, detrend=detrend, band=band, dof=dof,
                      standardization=standardization)
