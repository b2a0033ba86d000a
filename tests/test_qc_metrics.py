"""QC metrics of a run equal independent computations: nipype's (fMRIPrep's) DVARS, numpy formulas."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import linalg

from bidsapp.core import qc


def _yule_walker(x, order, rxx=None):
    """nitime's AR_est_YW (order 1..n), written with scipy: the biased autocorrelation of the centred series."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    r = np.array([x[: x.size - k] @ x[k:] for k in range(order + 1)]) / x.size
    return linalg.solve_toeplitz(r[:order], r[1:order + 1])


def _bold(rng, n_t: int, shape=(6, 5, 4)):
    """A 4D run: voxel baselines, AR(1) noise of varying strength, spikes; a mask with a few outside voxels."""
    n_v = int(np.prod(shape))
    base = rng.uniform(200, 2000, size=n_v)
    phi = rng.uniform(-0.2, 0.8, size=n_v)
    e = rng.normal(size=(n_t, n_v)) * rng.uniform(1, 30, size=n_v)
    for t in range(1, n_t):
        e[t] += phi * e[t - 1]
    spikes = rng.choice(n_t, size=max(1, n_t // 20), replace=False)
    e[spikes] += rng.normal(size=(spikes.size, n_v)) * 40
    data = (base + e).reshape((n_t, *shape)).transpose(1, 2, 3, 0).astype(np.float32)
    mask = rng.uniform(size=shape) > 0.15
    return data, mask


@pytest.mark.parametrize("seed", range(8))
def test_standardized_dvars_equals_fmriprep_compute_dvars(seed, tmp_path, monkeypatch):
    from nipype.algorithms import confounds as nipype_confounds

    monkeypatch.setattr(nipype_confounds, "_AR_est_YW", _yule_walker)  # nitime is not installed
    rng = np.random.default_rng(seed)
    data, mask = _bold(rng, int(rng.integers(20, 150)))
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4)), tmp_path / "mask.nii.gz")
    ref = nipype_confounds.compute_dvars(str(tmp_path / "bold.nii.gz"), str(tmp_path / "mask.nii.gz"),
                                         remove_zerovariance=True)[0]
    ours = qc.standardized_dvars(data[mask].T)
    assert np.isnan(ours[0])
    np.testing.assert_allclose(ours[1:], ref, rtol=1e-4)  # nipype computes in float32


def test_dvars_has_no_value_across_a_censoring_gap():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 30))
    kept = np.r_[0:10, 12:40]
    d = qc.standardized_dvars(x[kept], kept)
    assert np.isnan(d[0]) and np.isnan(d[10])  # row 10 is volume 12: its previous volume (11) was censored
    assert np.isfinite(np.delete(d, [0, 10])).all()
    assert np.isnan(qc.standardized_dvars(np.ones((10, 4)))).all()  # nothing varies: no DVARS


@pytest.mark.parametrize("seed", range(6))
def test_fd_dvars_correlation_and_tsnr_equal_numpy(seed):
    rng = np.random.default_rng(10 + seed)
    n = int(rng.integers(30, 200))
    fd = np.abs(rng.normal(size=n)) * 0.3
    fd[0] = np.nan
    dvars = 1 + 2 * fd + rng.normal(size=n) * 0.2
    dvars[[0, 5]] = np.nan
    ok = np.isfinite(fd) & np.isfinite(dvars)
    assert qc.fd_dvars_correlation(fd, dvars) == pytest.approx(np.corrcoef(fd[ok], dvars[ok])[0, 1], abs=1e-12)
    rows = np.sort(rng.choice(n, size=n // 2, replace=False))
    sub = dvars[rows]
    ok2 = np.isfinite(fd[rows]) & np.isfinite(sub)
    assert qc.fd_dvars_correlation(fd, sub, rows) == pytest.approx(np.corrcoef(fd[rows][ok2], sub[ok2])[0, 1],
                                                                   abs=1e-12)
    x = rng.uniform(100, 1000, size=50) + rng.normal(size=(n, 50)) * rng.uniform(1, 50, size=50)
    _, mean, std, _ = qc.dvars_and_moments(x, chunk_bytes=8 * n * 7)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=0, ddof=1), rtol=1e-12)
    std[3] = 0
    expected = np.median(np.delete(x.mean(axis=0) / x.std(axis=0, ddof=1), 3))
    assert qc.median_tsnr(mean, std) == pytest.approx(expected, rel=1e-12)


def test_motion_and_censoring_summaries():
    fd = np.array([np.nan, 0.1, 0.9, 0.2, 0.3, 2.0])
    nss = np.array([True, True, False, False, False, False])
    m = qc.motion_summary(fd, np.flatnonzero(~nss))
    assert m == {"FramewiseDisplacementMean": pytest.approx(np.mean([0.9, 0.2, 0.3, 2.0])),
                 "FramewiseDisplacementMax": 2.0}
    assert np.isnan(qc.motion_summary(None)["FramewiseDisplacementMean"])
    c = qc.censoring_summary(6, np.array([2, 3, 4]), nss)
    assert c == {"NonSteadyStateVolumes": 2, "CensoredVolumeCount": 1, "CensoredFraction": 0.25}
    with pytest.raises(ValueError, match="non_steady_state has shape"):
        qc.censoring_summary(6, np.array([2]), nss[:3])


def test_cleaning_lowers_dvars_and_its_correlation_with_motion():
    """Motion that leaks into the signal: cleaning with the motion regressor removes it, and the QC shows it."""
    from bidsapp.core import signal

    rng = np.random.default_rng(4)
    n, p = 200, 300
    fd = np.abs(rng.normal(size=n)) * 0.2
    fd[rng.choice(n, 10, replace=False)] += 1.5
    fd[0] = np.nan
    motion = np.nan_to_num(fd)  # spikes at the volumes that moved (the artefact DVARS is made to see)
    x = 1000 + rng.normal(size=(n, p)) * 5 + np.outer(motion, rng.normal(size=p) * 20)
    op = signal.cleaning_operator(n, t_r=2.0, confounds=np.c_[motion], filter=None)
    std = np.empty(p)
    cleaned = signal.apply_operator(x, op, standardize="zscore_sample", column_std=std)
    np.testing.assert_allclose(std, (op.matrix @ x).std(axis=0, ddof=1), rtol=1e-10)
    dof = signal.degrees_of_freedom(op, "zscore_sample")
    out = qc.run_qc(x, cleaned, kept=op.kept, fd=fd, non_steady_state=None, cleaned_std=std, dof=dof)
    assert out["FramewiseDisplacementDVARSCorrelationBefore"] > 0.5
    assert abs(out["FramewiseDisplacementDVARSCorrelationAfter"]) < 0.2
    assert out["StandardizedDVARSMeanAfter"] < out["StandardizedDVARSMeanBefore"]
    assert out["TemporalSNRMedianAfter"] > out["TemporalSNRMedianBefore"]
    assert out["DegreesOfFreedomLost"] == n - dof == 3  # mean, trend, motion (the mean is already removed)
    assert set(out) <= set(qc.QC_FIELDS)


def test_dvars_by_chunks_and_rows_equals_one_block():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(60, 500)) * rng.uniform(1, 10, size=500) + 100
    x[:, 7] = np.nan  # a column of NaN (--min-coverage) is left out
    rows = np.arange(3, 60)
    whole = qc.standardized_dvars(np.delete(x, 7, axis=1)[rows])
    np.testing.assert_allclose(qc.standardized_dvars(x, rows=rows, chunk_bytes=8 * 57 * 13), whole, rtol=1e-12)
