"""nilearn as the reference, with one documented correction.

nilearn 0.14's ``signal._interpolate_volumes`` receives ``sample_mask`` as an
*index* array and selects the censored rows with ``volumes[~sample_mask]``:
on integers ``~`` is bitwise NOT (``-i - 1``), so it overwrites the rows
``n - 1 - i`` of the *kept* volumes instead of the censored ones. The result
only equals the intended interpolation for censoring patterns that are
symmetric in time. :func:`patched_interpolation` restores the intended
behaviour (interpolate exactly the censored volumes) so that everything else
in ``nilearn.signal.clean`` can serve as the reference.
"""

from __future__ import annotations

import contextlib

import numpy as np


def _fixed_interpolate_volumes(volumes, sample_mask, t_r, extrapolate):
    from scipy.interpolate import CubicSpline

    keep = np.zeros(volumes.shape[0], dtype=bool)
    keep[np.asarray(sample_mask)] = True
    frame_times = np.arange(volumes.shape[0]) * t_r
    spline = CubicSpline(frame_times[keep], volumes[keep, :], extrapolate=extrapolate)
    volumes[~keep, :] = spline(frame_times)[~keep, :]
    return volumes


@contextlib.contextmanager
def patched_interpolation():
    """Run nilearn with the censored-volume interpolation it documents."""
    import nilearn.signal as ns

    original = ns._interpolate_volumes
    ns._interpolate_volumes = _fixed_interpolate_volumes
    try:
        yield
    finally:
        ns._interpolate_volumes = original
