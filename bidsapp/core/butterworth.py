"""Butterworth filters as second-order sections, and the section cascade's recursion, in numpy.

``scipy.signal.butter(..., output="sos")``, ``sosfilt`` and ``sosfilt_zi`` are what nilearn's Butterworth
filter is made of, but importing ``scipy.signal`` costs about 0.9 s of CPU (scipy 1.17: it imports
``scipy.stats`` and builds its array-API wrappers), more than the whole cleaning of a 300-volume run. The design
is a few lines of complex arithmetic, ported here from scipy's (``buttap``, ``lp2lp_zpk``, ``lp2hp_zpk``,
``lp2bp_zpk``, ``bilinear_zpk``, ``zpk2sos`` with "nearest" pairing; scipy is BSD-3-Clause licensed), so the
sections are scipy's to round-off (``tests/test_butterworth_design.py`` sweeps orders, bands and sampling
rates against scipy). The recursion (:func:`sosfilt`) runs over a few samples only: the block filter
(:mod:`bidsapp.core.sos_blocks`) needs it for its small matrices, and advances the data with BLAS products.
"""

from __future__ import annotations

import numpy as np

BTYPES = ("lowpass", "highpass", "bandpass")


def butter_sos(order: int, cutoff, btype: str, fs: float) -> np.ndarray:
    """``scipy.signal.butter(order, cutoff, btype, output="sos", fs=fs)`` for a digital filter.

    Parameters
    ----------
    order : int
        Filter order (a band-pass has twice as many poles).
    cutoff : float or (float, float)
        Cut-off frequency, or (low, high) for a band-pass, in the units of ``fs``.
    btype : {"lowpass", "highpass", "bandpass"}
    fs : float
        Sampling frequency.

    Returns
    -------
    numpy.ndarray, shape (n_sections, 6)
        ``[b0, b1, b2, 1, a1, a2]`` of each section.
    """
    if btype not in BTYPES:
        raise ValueError(f"btype {btype!r}: expected one of {BTYPES}.")
    wn = np.asarray(cutoff, dtype=np.float64) / (fs / 2)
    if np.any(wn <= 0) or np.any(wn >= 1):
        raise ValueError(f"Digital filter critical frequencies must be 0 < Wn < fs/2 (fs={fs} -> fs/2={fs / 2})")
    if (btype == "bandpass") != (wn.size == 2) or wn.size > 2:
        raise ValueError("a band-pass needs (low, high) cut-offs; a low- or high-pass one.")
    if wn.size == 2 and not wn[0] < wn[1]:
        raise ValueError("Wn[0] must be less than Wn[1]")
    z = np.zeros(0)
    p = -np.exp(1j * np.pi * np.arange(-order + 1, order, 2, dtype=np.float64) / (2 * order))  # buttap
    k = 1.0
    warped = 2 * 2.0 * np.tan(np.pi * wn / 2.0)  # pre-warped for the bilinear transform at fs = 2
    if btype == "lowpass":
        z, p, k = wn_scaled(z, p, k, float(warped))
    elif btype == "highpass":
        z, p, k = inverted(z, p, k, float(warped))
    else:
        z, p, k = band(z, p, k, float(np.sqrt(warped[0] * warped[1])), float(warped[1] - warped[0]))
    return zpk2sos(*bilinear(z, p, k, 2.0))


def wn_scaled(z: np.ndarray, p: np.ndarray, k: float, wo: float):
    """``lp2lp_zpk``: a low-pass prototype moved to cut-off ``wo``."""
    return wo * z, wo * p, k * wo ** (p.size - z.size)


def inverted(z: np.ndarray, p: np.ndarray, k: float, wo: float):
    """``lp2hp_zpk``: a low-pass prototype turned into a high-pass at ``wo``."""
    degree = p.size - z.size
    return (np.concatenate((wo / z, np.zeros(degree))), wo / p, k * np.real(np.prod(-z) / np.prod(-p)))


def band(z: np.ndarray, p: np.ndarray, k: float, wo: float, bw: float):
    """``lp2bp_zpk``: a low-pass prototype turned into a band-pass centred on ``wo``, ``bw`` wide."""
    degree = p.size - z.size
    z_lp, p_lp = (z * bw / 2).astype(np.complex128), (p * bw / 2).astype(np.complex128)
    z_bp = np.concatenate((z_lp + np.sqrt(z_lp ** 2 - wo ** 2), z_lp - np.sqrt(z_lp ** 2 - wo ** 2)))
    p_bp = np.concatenate((p_lp + np.sqrt(p_lp ** 2 - wo ** 2), p_lp - np.sqrt(p_lp ** 2 - wo ** 2)))
    return np.concatenate((z_bp, np.zeros(degree))), p_bp, k * bw ** degree


def bilinear(z: np.ndarray, p: np.ndarray, k: float, fs: float):
    """``bilinear_zpk``: the analog filter's digital counterpart (zeros, poles, gain)."""
    degree = p.size - z.size
    fs2 = 2.0 * fs
    z_z = np.concatenate(((fs2 + z) / (fs2 - z), -np.ones(degree)))
    return z_z, (fs2 + p) / (fs2 - p), k * np.real(np.prod(fs2 - z) / np.prod(fs2 - p))


def _poly(roots) -> np.ndarray:
    """Coefficients of the monic polynomial with ``roots`` (real when they come in conjugate pairs)."""
    roots = np.atleast_1d(np.asarray(roots))
    if roots.size == 0:
        return np.asarray(1.0)
    a = np.ones(1, dtype=roots.dtype)
    for r in roots:
        a = np.convolve(a, np.array([1, -r], dtype=roots.dtype), mode="full")
    if np.iscomplexobj(a):
        imag = np.imag(roots.astype(np.complex128))
        if np.all(np.sort(imag) == np.sort(-imag)):
            a = np.real(a).copy()
    return a


def _section(z: list, p: list, k: float = 1.0) -> np.ndarray:
    """One second-order section from up to two zeros and two poles (``_single_zpksos``)."""
    sos = np.zeros(6)
    b, a = k * _poly(np.asarray(z)), _poly(np.asarray(p))
    b, a = np.atleast_1d(b), np.atleast_1d(a)
    sos[3 - b.size:3] = b
    sos[6 - a.size:6] = a
    return sos


def _cplxreal(z: np.ndarray, tol: float = 100 * np.finfo(np.float64).eps) -> tuple[np.ndarray, np.ndarray]:
    """(one of each conjugate pair, with positive imaginary part; the real values), scipy's ``_cplxreal``."""
    z = np.atleast_1d(z)
    if z.size == 0:
        return z, z
    z = z[np.lexsort((abs(z.imag), z.real))]
    real = abs(z.imag) <= tol * abs(z)
    zr = z[real].real
    if zr.size == z.size:
        return np.array([]), zr
    z = z[~real]
    zp, zn = z[z.imag > 0], z[z.imag < 0]
    if zp.size != zn.size:
        raise ValueError("Array contains complex value with no matching conjugate.")
    same_real = np.diff(zp.real) <= tol * abs(zp[:-1])
    diffs = np.diff(np.concatenate(([0], same_real, [0])))
    for start, stop in zip(np.nonzero(diffs > 0)[0], np.nonzero(diffs < 0)[0] + 1):
        for chunk in (zp[start:stop], zn[start:stop]):
            chunk[...] = chunk[np.lexsort([abs(chunk.imag)])]
    if any(abs(zp - zn.conj()) > tol * abs(zn)):
        raise ValueError("Array contains complex value with no matching conjugate.")
    return (zp + zn.conj()) / 2, zr


def _nearest(fro: np.ndarray, to: complex, which: str) -> int:
    """Index in ``fro`` of the element nearest ``to`` among the real, complex or any ones."""
    order = np.argsort(np.abs(fro - to))
    if which == "any":
        return int(order[0])
    mask = np.isreal(fro[order])
    return int(order[np.nonzero(mask if which == "real" else ~mask)[0][0]])


def _worst(p: np.ndarray) -> int:
    """The pole nearest the unit circle."""
    return int(np.argmin(np.abs(1 - np.abs(p))))


def _take(values: np.ndarray, i: int) -> tuple[complex, np.ndarray]:
    return values[i], np.delete(values, i)


def zpk2sos(z: np.ndarray, p: np.ndarray, k: float) -> np.ndarray:
    """``scipy.signal.zpk2sos(z, p, k)`` of a digital filter ("nearest" pairing: the poles nearest the unit
    circle go last, each with its nearest zeros)."""
    if z.size == p.size == 0:
        return np.array([[k, 0.0, 0.0, 1.0, 0.0, 0.0]])
    p = np.concatenate((p, np.zeros(max(z.size - p.size, 0))))
    z = np.concatenate((z, np.zeros(max(p.size - z.size, 0))))
    n_sections = (max(p.size, z.size) + 1) // 2
    if p.size % 2 == 1:
        p, z = np.concatenate((p, [0.0])), np.concatenate((z, [0.0]))
    z, p = np.concatenate(_cplxreal(z)), np.concatenate(_cplxreal(p))
    sos = np.zeros((n_sections, 6))
    for si in range(n_sections - 1, -1, -1):
        p1, p = _take(p, _worst(p))
        if np.isreal(p1) and np.isreal(p).sum() == 0:  # the last real pole: with the nearest real zero
            z1, z = _take(z, _nearest(z, p1, "real"))
            sos[si] = _section([z1, 0], [p1, 0])
            continue
        if p.size + 1 == z.size and not np.isreal(p1) and np.isreal(p).sum() == 1 and np.isreal(z).sum() == 1:
            z1, z = _take(z, _nearest(z, p1, "complex"))  # keep the real pole and zero for the last section
            sos[si] = _section([z1, z1.conj()], [p1, p1.conj()])
            continue
        if np.isreal(p1):
            real = np.flatnonzero(np.isreal(p))
            p2, p = _take(p, int(real[_worst(p[real])]))
        else:
            p2 = p1.conj()
        sos[si], z = _pair_zeros(z, p1, p2)
    sos[0][:3] *= np.real(k)
    return sos


def _pair_zeros(z: np.ndarray, p1: complex, p2: complex) -> tuple[np.ndarray, np.ndarray]:
    """The section of poles ``p1``, ``p2`` with the zeros nearest ``p1``; the zeros left."""
    if z.size == 0:
        return _section([], [p1, p2]), z
    z1, z = _take(z, _nearest(z, p1, "any"))
    if not np.isreal(z1):
        return _section([z1, z1.conj()], [p1, p2]), z
    if z.size == 0:
        return _section([z1], [p1, p2]), z
    z2, z = _take(z, _nearest(z, p1, "real"))
    return _section([z1, z2], [p1, p2]), z


def sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.sosfilt(sos, x, axis=0, zi=zi)``: the cascade's recursion (direct form II transposed),
    one sample at a time, every column at once; for the few samples of a block, not for data.

    Parameters
    ----------
    sos : numpy.ndarray, shape (n_sections, 6)
        Sections with ``a0 = 1``.
    x : numpy.ndarray, shape (n_samples, n_columns)
    zi : numpy.ndarray, shape (n_sections, 2, n_columns)
        Initial state of each section.

    Returns
    -------
    y : numpy.ndarray, shape (n_samples, n_columns)
    zf : numpy.ndarray, shape (n_sections, 2, n_columns)
        Final state.
    """
    y = np.array(x, dtype=np.float64)
    state = np.array(zi, dtype=np.float64)
    for n in range(y.shape[0]):
        cur = y[n].copy()
        for s, (b0, b1, b2, _, a1, a2) in enumerate(sos):
            new = b0 * cur + state[s, 0]
            state[s, 0] = b1 * cur - a1 * new + state[s, 1]
            state[s, 1] = b2 * cur - a2 * new
            cur = new
        y[n] = cur
    return y, state


def sosfilt_zi(sos: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt_zi(sos)``: each section's state in the steady response to a unit step,
    shape (n_sections, 2)."""
    zi = np.empty((sos.shape[0], 2))
    scale = 1.0
    for s, section in enumerate(np.asarray(sos, dtype=np.float64)):
        b, a = section[:3] / section[3], section[3:] / section[3]
        i_minus_a = np.eye(2) - np.array([[-a[1], -a[2]], [1.0, 0.0]]).T  # I - companion(a).T
        zi[s] = scale * np.linalg.solve(i_minus_a, b[1:] - a[1:] * b[0])
        scale *= b.sum() / a.sum()
    return zi
