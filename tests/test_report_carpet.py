"""The report's carpet data: standardized DVARS equal to nipype's (fMRIPrep's std_dvars), column subsamples,
censored volumes, bounded reads."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core.carpet import carpet_columns, carpet_data
from bidsapp.core.qc import standardized_dvars


def _yule_walker_ar1(x: np.ndarray, order: int, rxx=None) -> np.ndarray:
    """nitime's ``AR_est_YW`` for order 1 (biased autocovariance): r(1) / r(0)."""
    assert order == 1
    x = x - x.mean()
    return np.array([np.dot(x[1:], x[:-1]) / np.dot(x, x)])


@pytest.mark.parametrize("seed", range(6))
def test_standardized_dvars_equals_nipype(tmp_path, monkeypatch, seed):
    """Random runs (AR(1) noise of random strength, a few spikes, some constant voxels): our block-wise
    standardized DVARS equals nipype's ``compute_dvars`` (what fMRIPrep reports as ``std_dvars``)."""
    from nipype.algorithms import confounds

    monkeypatch.setattr(confounds, "_AR_est_YW", _yule_walker_ar1)  # nitime is not installed
    rng = np.random.default_rng(seed)
    shape, n = (7, 6, 5), int(rng.integers(20, 80))
    phi = rng.uniform(0, 0.8)
    noise = rng.normal(0, 1, shape + (n,))
    for t in range(1, n):
        noise[..., t] += phi * noise[..., t - 1]
    data = 1000 + rng.uniform(1, 30) * noise
    spikes = np.array([n // 3, 2 * n // 3])  # apart: the step into each is large
    data[..., spikes] += 60
    mask = np.ones(shape, bool)
    mask[0, 0, :] = True
    data[0, 0, :, :] = 500.0  # constant voxels: left out by both (nipype: remove_zerovariance)
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4)), tmp_path / "mask.nii.gz")
    ref = confounds.compute_dvars(str(tmp_path / "bold.nii.gz"), str(tmp_path / "mask.nii.gz"),
                                  remove_zerovariance=True)[0]
    X = data.astype(np.float32)[mask].T  # volumes x voxels
    ours = standardized_dvars(X, chunk_bytes=8 * n * int(rng.integers(3, 50)))
    assert np.isnan(ours[0])
    np.testing.assert_allclose(ours[1:], ref, rtol=2e-4)
    assert np.all(ours[spikes] > np.nanmedian(ours) * 1.5)  # the spikes stand out


def test_standardized_dvars_is_near_one_on_stationary_noise():
    rng = np.random.default_rng(3)
    d = standardized_dvars(rng.normal(0, 5, (400, 300)))
    assert abs(np.nanmedian(d) - 1) < 0.05


def test_dvars_is_independent_of_the_block_size():
    rng = np.random.default_rng(4)
    X = rng.normal(0, 1, (50, 1001)).cumsum(axis=0)
    np.testing.assert_allclose(standardized_dvars(X, chunk_bytes=8 * 50 * 7),
                               standardized_dvars(X, chunk_bytes=8 * 50 * 5000), rtol=1e-12)


@pytest.mark.parametrize("n,m", [(1, 2000), (2000, 2000), (2001, 2000), (250_000, 2000), (10, 3)])
def test_carpet_columns_spread_evenly(n, m):
    cols = carpet_columns(n, m)
    assert cols.size == min(n, m) and np.all(np.diff(cols) > 0)
    assert cols[0] == 0 and cols[-1] == n - 1
    if n > m:
        gaps = np.diff(cols)
        assert gaps.max() - gaps.min() <= 1


def test_carpet_data_places_cleaned_rows_on_their_volumes():
    rng = np.random.default_rng(5)
    n, p = 60, 5000
    before = rng.normal(100, 3, (n, p)).astype(np.float32)
    kept = np.setdiff1d(np.arange(n), [0, 1, 20, 21, 40])
    after = rng.normal(0, 1, (kept.size, p)).astype(np.float32)
    c = carpet_data(before, after, kept, max_columns=500, chunk_bytes=8 * n * 700)
    assert c.before.shape == c.after.shape == (n, 500) and c.columns.size == 500
    assert np.isnan(c.after[[0, 1, 20, 21, 40]]).all() and np.isfinite(c.after[kept]).all()
    np.testing.assert_allclose(c.before.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(c.after[kept].std(axis=0), 1, rtol=1e-5)
    # the kept row right after a gap has no DVARS (its difference would span the gap); the others do
    assert np.isnan(c.dvars_after[[0, 1, 2, 20, 21, 22, 40, 41]]).all()
    assert np.isfinite(c.dvars_after[[3, 19, 23, 39, 42, 59]]).all()
    assert np.isfinite(c.dvars_before[1:]).all()


def test_carpet_data_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="expected \\(3, 4\\)"):
        carpet_data(np.zeros((5, 4)), np.zeros((3, 5)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="increasing"):
        carpet_data(np.zeros((5, 4)), np.zeros((2, 4)), np.array([3, 1]))


def test_quantized_carpet_keeps_what_the_plot_shows():
    from bidsapp.core.carpet import dequantize, quantize

    rng = np.random.default_rng(6)
    z = rng.normal(0, 1.5, (200, 300))
    z[rng.random(z.shape) < 0.05] = np.nan
    back = dequantize(quantize(z))
    assert np.array_equal(np.isnan(back), np.isnan(z))
    ok = np.isfinite(z)
    np.testing.assert_allclose(back[ok], np.clip(z[ok], -3, 3), atol=3 / 254 + 1e-6)  # half a grey step


def test_memory_model_uses_the_carpet_sizes():
    from bidsapp.core import carpet, qc
    from bidsapp.execution import memory

    assert memory.DVARS_CHUNK_BYTES == qc.DVARS_CHUNK_BYTES and memory.CARPET_COLUMNS == carpet.CARPET_COLUMNS
    assert memory.QC_THREADS == qc.QC_THREADS
