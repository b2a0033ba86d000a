"""One rule for comparing times (s): volume times, event onsets, trial windows and FIR bins.

A volume's time ``StartTime + v * RepetitionTime``, an onset read from text, ``onset + lag + duration`` or
``onset + offset`` are float64 values that miss their real-number value by a few units in the last place, so
two times equal in real arithmetic can compare either way: at TR 0.72 s volume 5 is at
``5 * 0.72 = 3.5999999999999996``, before an onset written ``3.6``. Every decision whether a time is inside an
interval, before or after a boundary, or on a point of the TR grid goes through this module: two times closer
than :func:`tolerance` are the same time, and half-open intervals ``[start, stop)`` then keep their rule (a
time at ``start`` is in, a time at ``stop`` is out).

The tolerance is :data:`TIME_TOLERANCE` of the repetition time: 1e-6 TR (0.72 microseconds at TR 0.72 s).
It is far above round-off: float64 spacing is 1.8e-12 s at 10,000 s, and the times compared here are sums of a
handful of terms, so their errors stay below 1e-10 s even for onsets of 100,000 s (onsets written in
milliseconds by mistake), four orders of magnitude under 1e-6 TR. It is far below any timing an events.tsv
carries (onsets in milliseconds, at most tenths of one; stimulus and scanner clocks are no finer), and below the
volumes' own spacing by a factor of a million, so a time within it of a boundary is meant to be on it. Relative
to the TR, it is the same share of a volume at every TR, and in volume units (position ``(t - StartTime) / TR``)
it is :data:`TIME_TOLERANCE` itself.
"""

from __future__ import annotations

import numpy as np

#: two times closer than this share of the repetition time are the same time
TIME_TOLERANCE = 1e-6


def tolerance(t_r: float) -> float:
    """The tolerance (s) of times in a run of repetition time ``t_r`` (s): ``TIME_TOLERANCE * t_r``."""
    return TIME_TOLERANCE * float(t_r)


def before(times, boundary, t_r: float):
    """Whether ``times`` are before ``boundary`` (strictly, a tie is not before); arrays broadcast."""
    return np.asarray(times) < np.asarray(boundary) - tolerance(t_r)


def after(times, boundary, t_r: float):
    """Whether ``times`` are after ``boundary`` (strictly, a tie is not after); arrays broadcast."""
    return np.asarray(times) > np.asarray(boundary) + tolerance(t_r)


def inside(times, start, stop, t_r: float):
    """Whether ``times`` are in the half-open interval ``[start, stop)``: a time tied with ``start`` is in, one tied
    with ``stop`` is out (so of two intervals that meet, a time at their junction is in the later one only)."""
    return ~before(times, start, t_r) & before(times, stop, t_r)


def grid_steps(length: float, t_r: float) -> int:
    """Whole repetition times in ``length`` (s), a length tied with ``k * t_r`` counting ``k``:
    ``floor(length / t_r)`` with the tolerance."""
    return int(np.floor(length / t_r + TIME_TOLERANCE))


def grid_position(times: np.ndarray, t_r: float, start_time: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Where ``times`` fall on the volume grid ``start_time + v * t_r``: the volume at or before each time and the
    fraction of a TR past it, a time tied with a volume's time being on that volume (fraction 0).

    Returns
    -------
    index : numpy.ndarray of int
        ``floor((t - start_time) / t_r)`` with the tolerance (may be negative or past the run's end).
    fraction : numpy.ndarray
        In [0, 1); exactly 0 for a time tied with ``index``'s volume.
    """
    pos = (np.asarray(times, dtype=float) - start_time) / t_r
    index = np.floor(pos + TIME_TOLERANCE).astype(int)
    fraction = np.clip(pos - index, 0.0, 1.0)
    return index, np.where(fraction < TIME_TOLERANCE, 0.0, fraction)
