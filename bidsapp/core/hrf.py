"""Haemodynamic response shapes and HRF-convolved regressors.

The canonical shapes, their time and dispersion derivatives and the sampling
of regressors follow nilearn's ``hemodynamic_models`` (itself SPM's), so a
design built here equals nilearn's ``make_first_level_design_matrix`` with
the same ``hrf_model``. Added here: the FIR basis on the trial window (bins
relative to each onset, in signal units), and a library of double-gamma
shapes (see :func:`library_shapes`) from which one is chosen per column.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from bidsapp.core import timing
from bidsapp.core.names import HRF_MODELS  # noqa: F401  (every --hrf choice, re-exported)

#: how each choice is spelled in nilearn (``hrf_model`` of ``FirstLevelModel``)
NILEARN_NAMES = {"spm": "spm", "glover": "glover", "spm+derivative": "spm + derivative",
                 "spm+derivative+dispersion": "spm + derivative + dispersion", "fir": "fir"}
#: one line per choice, written in the sidecar
DESCRIPTIONS = {
    "spm": "SPM canonical HRF (double gamma: delay 6 s, undershoot 16 s, ratio 0.167; as nilearn 'spm')",
    "glover": "Glover HRF (double gamma: delay 6 s, undershoot 12 s, dispersion 0.9, ratio 0.48; as nilearn "
              "'glover')",
    "spm+derivative": "SPM canonical HRF + its time derivative (orthogonalized on it, as nilearn 'spm + derivative'); "
                      "a trial's beta is the coefficient of the canonical regressor",
    "spm+derivative+dispersion": "SPM canonical HRF + time and dispersion derivatives (each orthogonalized on the "
                                 "previous, as nilearn 'spm + derivative + dispersion'); a trial's beta is the "
                                 "coefficient of the canonical regressor",
    "fir": "finite impulse response: one regressor per TR bin of the trial window per trial (a volume belongs to "
           "bin k of a trial when its time minus the onset is within half a TR of offset k); betas are the response "
           "at each offset, in the units of the cleaned signal",
    "library": "one of 20 double-gamma shapes per column (bidsapp.core.hrf.library_shapes: peak 4 to 7 s, shallow "
               "or deep undershoot), chosen by cross-validated prediction of the time series under an all-trials "
               "design (no trial_type values used)",
}
#: minimal onset (s, relative to the first volume) of the high-resolution grid, as nilearn
MIN_ONSET = -24.0
#: length of every HRF kernel, s
KERNEL_SECONDS = 32.0
#: groups of events convolved together (one FFT per block and kernel; nilearn convolves each with np.convolve:
#: the same numbers to round-off, 1e-15 of the regressor's scale)
GROUP_BLOCK = 128
#: FFT round-off: values below this share of the kernel's mass are zero (as a direct convolution gives before any
#: event; a trial after the last volume must keep an all-zero regressor, not 1e-17 noise that looks estimable)
FFT_ZERO = 1e-12


def gamma_difference(t_r: float, oversampling: int = 50, time_length: float = KERNEL_SECONDS, onset: float = 0.0,
                     delay: float = 6.0, undershoot: float = 16.0, dispersion: float = 1.0,
                     u_dispersion: float = 1.0, ratio: float = 0.167) -> np.ndarray:
    """Difference of two gamma densities sampled every ``t_r / oversampling`` s, summing to 1.

    Same parametrization and sampling as nilearn's ``_gamma_difference_hrf`` (the peak density
    ``gamma(delay / dispersion, scale=dispersion)`` minus ``ratio`` times the undershoot's). Each kernel is
    computed once per set of arguments (every run of a dataset shares it) and returned as a fresh copy.

    Returns
    -------
    numpy.ndarray, shape (round(time_length * oversampling / t_r),)
    """
    return _gamma_difference(float(t_r), int(oversampling), float(time_length), float(onset), float(delay),
                             float(undershoot), float(dispersion), float(u_dispersion), float(ratio)).copy()


@functools.lru_cache(maxsize=256)
def _gamma_difference(t_r: float, oversampling: int, time_length: float, onset: float, delay: float,
                      undershoot: float, dispersion: float, u_dispersion: float, ratio: float) -> np.ndarray:
    """:func:`gamma_difference`, cached (the cached array is read-only)."""
    dt = t_r / oversampling
    t = np.linspace(0, time_length, np.rint(float(time_length) / dt).astype(int)) - onset
    hrf = (_gamma_pdf(t, delay / dispersion, loc=dt, scale=dispersion)
           - ratio * _gamma_pdf(t, undershoot / u_dispersion, loc=dt, scale=u_dispersion))
    hrf = hrf / hrf.sum()
    hrf.flags.writeable = False
    return hrf


def _gamma_pdf(t: np.ndarray, shape: float, *, loc: float, scale: float) -> np.ndarray:
    """Gamma density, as ``scipy.stats.gamma.pdf(t, shape, loc=loc, scale=scale)`` (same formula,
    ``exp((a - 1) log x - x - lgamma(a)) / scale``; equal to 1e-14 of its peak) without importing
    ``scipy.stats``, which costs ~0.9 s of CPU in every process that builds a design."""
    x = (np.asarray(t, dtype=np.float64) - loc) / scale
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = np.exp((shape - 1.0) * np.log(x[pos]) - x[pos] - math.lgamma(shape)) / scale
    out[x == 0] = 1.0 / scale if shape == 1.0 else (np.inf if shape < 1.0 else 0.0)
    return out


def spm_hrf(t_r: float, oversampling: int = 50, time_length: float = KERNEL_SECONDS) -> np.ndarray:
    """SPM canonical HRF (nilearn ``spm_hrf``)."""
    return gamma_difference(t_r, oversampling, time_length)


def glover_hrf(t_r: float, oversampling: int = 50, time_length: float = KERNEL_SECONDS) -> np.ndarray:
    """Glover HRF (nilearn ``glover_hrf``)."""
    return gamma_difference(t_r, oversampling, time_length, delay=6, undershoot=12.0, dispersion=0.9,
                            u_dispersion=0.9, ratio=0.48)


def spm_time_derivative(t_r: float, oversampling: int = 50, dt: float = 0.1) -> np.ndarray:
    """Finite-difference time derivative of the SPM HRF (nilearn ``spm_time_derivative``)."""
    return (spm_hrf(t_r, oversampling) - gamma_difference(t_r, oversampling, onset=dt)) / dt


def spm_dispersion_derivative(t_r: float, oversampling: int = 50, dd: float = 0.01) -> np.ndarray:
    """Finite-difference dispersion derivative of the SPM HRF (nilearn ``spm_dispersion_derivative``)."""
    return (spm_hrf(t_r, oversampling) - gamma_difference(t_r, oversampling, dispersion=1.0 + dd)) / dd


#: peak latencies (s) of the library shapes, and the undershoot ratios each is paired with
LIBRARY_PEAKS = np.linspace(4.0, 7.0, 10)
LIBRARY_UNDERSHOOTS = (0.1, 0.35)


def library_shapes(t_r: float, oversampling: int = 50) -> list[np.ndarray]:
    """The HRF library: 20 double-gamma shapes, each summing to 1.

    Shape ``k`` = peak latency ``LIBRARY_PEAKS[k // 2]`` (4 to 7 s, the range
    of the HRFs GLMsingle's library spans, Prince et al. 2022, eLife 11:e77599)
    with undershoot ratio ``LIBRARY_UNDERSHOOTS[k % 2]`` (shallow 0.1 or deep
    0.35); the undershoot peaks 10 s after the response. They are SPM's double
    gamma (:func:`gamma_difference`) with ``delay = peak + 1`` (a gamma density
    of shape a and scale 1 peaks at a - 1) and ``undershoot = delay + 10``:
    a parametric stand-in for GLMsingle's empirical library, whose shapes
    (from the Natural Scenes Dataset) we do not redistribute. Shape 6
    (peak 5 s, ratio 0.1) is the closest to SPM's (peak 5 s, ratio 0.167).
    """
    return [gamma_difference(t_r, oversampling, delay=peak + 1.0, undershoot=peak + 11.0, ratio=ratio)
            for peak in LIBRARY_PEAKS for ratio in LIBRARY_UNDERSHOOTS]


def library_table() -> list[tuple[int, float, float]]:
    """``(index, peak latency s, undershoot ratio)`` of each library shape."""
    return [(2 * i + j, float(p), float(r))
            for i, p in enumerate(LIBRARY_PEAKS) for j, r in enumerate(LIBRARY_UNDERSHOOTS)]


def basis_kernels(model: str, t_r: float, oversampling: int = 50) -> list[np.ndarray]:
    """The kernels of a convolution basis (``spm``, ``glover``, ``spm+derivative``, ``spm+derivative+dispersion``).

    Raises
    ------
    ValueError
        For ``fir`` / ``library`` (not a fixed convolution basis) or an unknown name.
    """
    if model == "spm":
        return [spm_hrf(t_r, oversampling)]
    if model == "glover":
        return [glover_hrf(t_r, oversampling)]
    if model == "spm+derivative":
        return [spm_hrf(t_r, oversampling), spm_time_derivative(t_r, oversampling)]
    if model == "spm+derivative+dispersion":
        return [spm_hrf(t_r, oversampling), spm_time_derivative(t_r, oversampling),
                spm_dispersion_derivative(t_r, oversampling)]
    raise ValueError(f"HRF model {model!r} is not a convolution basis; use one of spm, glover, spm+derivative, "
                     "spm+derivative+dispersion.")


def _high_res(frame_times: np.ndarray, oversampling: int) -> np.ndarray:
    """nilearn's high-resolution time grid (``_sample_condition``)."""
    n = frame_times.size
    lo, hi = frame_times.min(), frame_times.max()
    n_hr = (n - 1) / (hi - lo) * (hi * (1 + 1.0 / (n - 1)) - lo - MIN_ONSET) * oversampling + 1
    return np.linspace(lo + MIN_ONSET, hi * (1 + 1.0 / (n - 1)), np.rint(n_hr).astype(int))


def _orthogonalize(block: np.ndarray) -> np.ndarray:
    """Each column minus its projection on the previous ones (nilearn ``orthogonalize``), on a copy."""
    out = block.copy()
    for i in range(1, out.shape[1]):
        out[:, i] -= out[:, :i] @ np.linalg.lstsq(out[:, :i], out[:, i], rcond=None)[0]
    return out


def convolved_regressors(frame_times: np.ndarray, onsets: np.ndarray, durations: np.ndarray,
                         groups: list[np.ndarray], kernels: list[np.ndarray], *, oversampling: int = 50,
                         orthogonalize: bool = True) -> np.ndarray:
    """Boxcars of each group of events convolved with each kernel, sampled at ``frame_times``.

    Same sampling as nilearn's ``compute_regressor``; with several kernels the
    regressors of a group are orthogonalized in order (nilearn's convention:
    the first, canonical, regressor is unchanged), unless ``orthogonalize`` is
    False (the span of a group's block is the same either way, but a sum of
    orthogonalized blocks is not the orthogonalized block of the sum).

    Parameters
    ----------
    frame_times : numpy.ndarray, shape (n_volumes,)
    onsets, durations : numpy.ndarray, shape (n_events,)
    groups : list of index arrays
        Events summed into each group.
    kernels : list of numpy.ndarray
        Kernels on the grid ``t_r / oversampling`` (from :func:`basis_kernels` or :func:`library_shapes`).

    Returns
    -------
    numpy.ndarray, shape (n_volumes, n_groups, n_kernels)
    """
    from scipy.interpolate import interp1d  # imported on use: ~0.2 s of CPU

    hr_times = _high_res(frame_times, oversampling)
    tmax = hr_times.size
    t_on = np.minimum(np.searchsorted(hr_times, onsets), tmax - 1)
    t_off = np.minimum(np.searchsorted(hr_times, onsets + durations), tmax - 1)
    t_off = np.where((t_off < tmax - 1) & (t_off == t_on), t_off + 1, t_off)
    out = np.empty((frame_times.size, len(groups), len(kernels)))
    for start in range(0, len(groups), GROUP_BLOCK):  # boxcars of a block of groups, convolved by FFT at once
        block = groups[start:start + GROUP_BLOCK]
        box = np.zeros((len(block), tmax))
        for g, idx in enumerate(block):
            np.add.at(box[g], t_on[idx], 1.0)
            np.add.at(box[g], t_off[idx], -1.0)
        box = np.cumsum(box, axis=1)
        for k, kernel in enumerate(kernels):
            conv = fft_convolve_rows(box, kernel)[:, :tmax]
            conv[np.abs(conv) < FFT_ZERO * np.abs(kernel).sum() * np.abs(box).max(initial=1.0)] = 0.0
            out[:, start:start + len(block), k] = interp1d(hr_times, conv, axis=1)(frame_times).T
    if len(kernels) > 1 and orthogonalize:
        for g in range(len(groups)):
            out[:, g] = _orthogonalize(out[:, g])
    return out


def _fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (a length numpy's FFT transforms fast)."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def fft_convolve_rows(rows: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Full convolution of each row of ``rows`` (n_rows, n) with ``kernel`` (k,), shape (n_rows, n + k - 1),
    by numpy's real FFT (``scipy.signal.fftconvolve(rows, kernel[None], axes=1)`` without importing
    ``scipy.signal``, ~0.9 s of CPU)."""
    n = rows.shape[1] + kernel.size - 1
    size = _fast_length(n)
    spectrum = np.fft.rfft(rows, size, axis=1) * np.fft.rfft(kernel, size)
    return np.fft.irfft(spectrum, size, axis=1)[:, :n]


def fir_offsets(window: tuple[float, float], t_r: float) -> np.ndarray:
    """TR-spaced offsets (s) of the FIR bins: ``window[0]``, ``window[0] + t_r`` ... up to ``window[1]``."""
    start, end = window
    if end <= start:
        raise ValueError(f"Trial window end ({end}) must be after its start ({start}).")
    return start + np.arange(timing.grid_steps(end - start, t_r) + 1) * t_r


def fir_regressors(frame_times: np.ndarray, onsets: np.ndarray, groups: list[np.ndarray],
                   offsets: np.ndarray, t_r: float) -> np.ndarray:
    """FIR indicators: volume ``v`` is in bin ``k`` of event ``e`` when ``t_v - onset_e - offsets[k]`` is in the
    half-open bin ``[-t_r / 2, t_r / 2)``; a group sums its events. Times less than a millionth of a TR apart are
    the same time (:mod:`bidsapp.core.timing`), so a volume half-way between two offsets is in the later bin
    whatever the round-off, and each bin of TR-spaced offsets holds one volume.

    Returns
    -------
    numpy.ndarray, shape (n_volumes, n_groups, n_bins)
    """
    lag = frame_times[:, None] - onsets[None, :]  # (n_volumes, n_events)
    out = np.zeros((frame_times.size, len(groups), offsets.size))
    for k, off in enumerate(offsets):
        inside = timing.inside(lag - off, -t_r / 2, t_r / 2, t_r)
        for g, idx in enumerate(groups):
            out[:, g, k] = inside[:, idx].sum(axis=1)
    return out


@dataclass(frozen=True)
class HRFBasis:
    """How each trial's response is modelled: ``kernels`` (convolution) or FIR ``offsets``.

    Attributes
    ----------
    model : str
        One of :data:`HRF_MODELS` except ``library`` (a library column uses ``spm``-like single kernels).
    kernels : list of numpy.ndarray or None
    offsets : numpy.ndarray or None
        FIR bins, s from onset.
    names : tuple of str
        One per basis function (``hrf``, ``derivative``, ``dispersion``; ``fir_<offset>``).
    """

    model: str
    kernels: list | None
    offsets: np.ndarray | None
    names: tuple[str, ...]
    oversampling: int = 50

    @property
    def size(self) -> int:
        """Regressors per trial."""
        return len(self.names)

    def regressors(self, frame_times: np.ndarray, onsets: np.ndarray, durations: np.ndarray,
                   groups: list[np.ndarray], t_r: float, orthogonalize: bool = True) -> np.ndarray:
        """Regressors of each group of events: shape (n_volumes, n_groups, size) (see :func:`convolved_regressors`
        for ``orthogonalize``)."""
        if self.offsets is not None:
            return fir_regressors(frame_times, onsets, groups, self.offsets, t_r)
        return convolved_regressors(frame_times, onsets, durations, groups, self.kernels,
                                    oversampling=self.oversampling, orthogonalize=orthogonalize)


def make_basis(model: str, t_r: float, *, window: tuple[float, float] = (-2.0, 16.0), shape: int | None = None,
               oversampling: int = 50) -> HRFBasis:
    """The basis of an ``--hrf`` choice; ``library`` needs the ``shape`` index (0..19).

    Raises
    ------
    ValueError
        Naming an unknown model or library shape.
    """
    if model == "fir":
        offsets = fir_offsets(window, t_r)
        return HRFBasis("fir", None, offsets, tuple(f"fir_{o:g}" for o in offsets), oversampling)
    if model == "library":
        n = LIBRARY_PEAKS.size * len(LIBRARY_UNDERSHOOTS)
        if shape is None or not 0 <= shape < n:
            raise ValueError(f"library HRF shape {shape!r} is not one of 0..{n - 1}.")
        return HRFBasis("library", [library_shapes(t_r, oversampling)[shape]], None, ("hrf",), oversampling)
    if model not in HRF_MODELS:
        raise ValueError(f"Unknown HRF model {model!r}; use one of {', '.join(HRF_MODELS)}.")
    kernels = basis_kernels(model, t_r, oversampling)
    return HRFBasis(model, kernels, None, ("hrf", "derivative", "dispersion")[:len(kernels)], oversampling)
