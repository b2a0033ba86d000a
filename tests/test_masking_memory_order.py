"""Masking gathers voxels in memory order and permutes them into nilearn's order: same arrays."""

import warnings

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import masking


def _run(tmp_path, rng, dtype, big_endian=False, gz=True):
    shape = tuple(int(s) for s in rng.integers(3, 14, 3))
    n = int(rng.integers(2, 9))
    data = (rng.normal(100, 20, shape + (n,))).astype(dtype)
    if np.issubdtype(dtype, np.floating) and rng.random() < 0.5:
        data[tuple(rng.integers(0, s) for s in shape) + (0,)] = np.nan
    mask = rng.random(shape) < rng.uniform(0.05, 0.9)
    mask[tuple(s // 2 for s in shape)] = True
    affine = np.diag([*rng.uniform(1, 3, 3), 1.0])
    img = nib.Nifti1Image(data, affine)
    if big_endian:
        img.header.set_data_dtype(np.dtype(dtype).newbyteorder(">"))
    if np.issubdtype(dtype, np.integer):
        img.header.set_slope_inter(float(rng.uniform(0.01, 2)), float(rng.uniform(-5, 5)))
    path = tmp_path / ("bold.nii.gz" if gz else "bold.nii")
    nib.save(img, path)
    return path, mask


@pytest.mark.parametrize("seed", range(12))
def test_masked_arrays_equal_nilearn_apply_mask(tmp_path, seed):
    from nilearn.masking import apply_mask as nilearn_apply_mask

    rng = np.random.default_rng(seed)
    dtype = [np.float32, np.int16, np.float64, np.uint8][seed % 4]
    path, mask = _run(tmp_path, rng, dtype, big_endian=seed % 3 == 0, gz=seed % 2 == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = masking.apply_mask(path, mask)
        n_bad = masking.mask_to_npy(path, mask, tmp_path / "X.npy")
        ref = nilearn_apply_mask(str(path), nib.Nifti1Image(mask.astype(np.uint8), nib.load(path).affine))
    streamed = np.load(tmp_path / "X.npy")
    assert streamed.dtype == ours.dtype and np.array_equal(streamed, ours)
    assert n_bad == int(np.isnan(nib.load(path).get_fdata()[mask]).sum())
    ref = np.where(np.isfinite(ref), ref, 0)  # nilearn's NiftiMasker sets them to 0; apply_mask keeps them
    np.testing.assert_allclose(ours, ref, rtol=1e-6 if ours.dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_streamed_masking_with_smoothing_equals_the_in_memory_one(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    path, mask = _run(tmp_path, rng, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = masking.apply_mask(path, mask, smoothing_fwhm=4.0)
        masking.mask_to_npy(path, mask, tmp_path / "X.npy", smoothing_fwhm=4.0)
    assert np.array_equal(np.load(tmp_path / "X.npy"), ours)


def test_a_failed_stream_leaves_no_file(tmp_path):
    rng = np.random.default_rng(1)
    path, mask = _run(tmp_path, rng, np.float32)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # truncated gzip
    with pytest.raises(ValueError, match="truncated|corrupt"):
        masking.mask_to_npy(path, mask, tmp_path / "X.npy")
    assert not list(tmp_path.glob("*X.npy*"))
