"""bidsapp's Butterworth design and section recursion (numpy only, no ``scipy.signal`` import) against
scipy's: the same sections over a random sweep of orders, bands and sampling rates, the same recursion and
initial states, and a cleaning with a band-pass that never imports ``scipy.signal``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal as sp_signal

from bidsapp.core import butterworth


def _random_design(rng: np.random.Generator):
    order, fs, btype = int(rng.integers(1, 9)), float(rng.uniform(0.2, 5.0)), str(rng.choice(butterworth.BTYPES))
    if btype == "bandpass":
        return order, list(np.sort(rng.uniform(0.002, 0.498, 2)) * fs), btype, fs
    return order, float(rng.uniform(0.002, 0.498) * fs), btype, fs


@pytest.mark.parametrize("seed", range(4))
def test_sections_equal_scipy_butter(seed):
    rng = np.random.default_rng(seed)
    for _ in range(400):
        order, cutoff, btype, fs = _random_design(rng)
        ref = sp_signal.butter(order, cutoff, btype=btype, output="sos", fs=fs)
        ours = butterworth.butter_sos(order, cutoff, btype, fs)
        assert ours.shape == ref.shape, (order, cutoff, btype, fs)
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14 * np.abs(ref).max(),
                                   err_msg=str((order, cutoff, btype, fs)))


def test_nilearn_default_filters_are_scipy_bits():
    """The filters users run (order 5, 0.01-0.1 Hz bands at common TRs) are scipy's to the bit."""
    for t_r in (0.5, 0.72, 0.8, 1.0, 2.0, 2.5, 3.0):
        for cutoff, btype in (([0.01, 0.08], "bandpass"), (0.01, "highpass"), (0.1, "lowpass")):
            np.testing.assert_array_equal(butterworth.butter_sos(5, cutoff, btype, 1 / t_r),
                                          sp_signal.butter(5, cutoff, btype=btype, output="sos", fs=1 / t_r))


@pytest.mark.parametrize("seed", range(3))
def test_recursion_and_initial_state_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        order, cutoff, btype, fs = _random_design(rng)
        sos = sp_signal.butter(order, cutoff, btype=btype, output="sos", fs=fs)
        x = rng.normal(0, 10, (int(rng.integers(1, 40)), int(rng.integers(1, 9))))
        zi = rng.normal(size=(sos.shape[0], 2, x.shape[1]))
        y, zf = butterworth.sosfilt(sos, x, zi)
        y_ref, zf_ref = sp_signal.sosfilt(sos, x, axis=0, zi=zi)
        np.testing.assert_allclose(y, y_ref, rtol=1e-13, atol=1e-13 * np.abs(y_ref).max())
        np.testing.assert_allclose(zf, zf_ref, rtol=1e-13, atol=1e-13 * np.abs(zf_ref).max())
        np.testing.assert_allclose(butterworth.sosfilt_zi(sos), sp_signal.sosfilt_zi(sos), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad", [(5, 0.0, "lowpass", 1.0), (5, 0.5, "highpass", 1.0), (5, [0.2, 0.1], "bandpass", 1.0),
                                 (5, 0.1, "bandpass", 1.0), (5, 0.1, "bandstop", 1.0)])
def test_refuses_what_scipy_refuses(bad):
    with pytest.raises(ValueError):
        butterworth.butter_sos(*bad)


def test_band_pass_cleaning_does_not_import_scipy_signal():
    """Its import (~0.9 s of CPU) was the largest fixed cost of cleaning a short run."""
    code = ("import sys, numpy as np\n"
            "from bidsapp.core import signal\n"
            "rng = np.random.default_rng(0)\n"
            "for n in (300, 1200):\n"
            "    op = signal.cleaning_operator(n, t_r=0.72, confounds=rng.normal(size=(n, 6)), low_pass=0.08,\n"
            "                                  high_pass=0.01, sample_mask=np.delete(np.arange(n), [5, 6, 40]))\n"
            "    signal.apply_operator(rng.normal(100, 5, (n, 3000)).astype(np.float32), op)\n"
            "print(sorted(m for m in sys.modules if m.startswith('scipy.signal')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
