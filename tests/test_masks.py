import time

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import masks
from bidsapp.core.io import mean_volume
from tests.conftest import write_bold


def test_background_and_epi_masks_equal_nilearn(demo, small_bold):
    from nilearn.masking import compute_background_mask, compute_epi_mask

    _, runs = demo
    for path in (runs[0].bold, small_bold[0]):
        mean = mean_volume(path)
        ref_bg = np.asanyarray(compute_background_mask(str(path)).dataobj).astype(bool)
        ref_epi = np.asanyarray(compute_epi_mask(str(path)).dataobj).astype(bool)
        np.testing.assert_array_equal(masks.compute_background_mask(mean), ref_bg)
        np.testing.assert_array_equal(masks.compute_epi_mask(mean), ref_epi)
        assert ref_epi.sum() > 100


def test_epi_mask_on_noisy_background(tmp_path):
    from nilearn.masking import compute_epi_mask

    rng = np.random.default_rng(3)
    shape = (24, 26, 20)
    grid = np.indices(shape).astype(float)
    brain = sum(((g - (s - 1) / 2) / (0.3 * s)) ** 2 for g, s in zip(grid, shape)) <= 1
    data = rng.gamma(2, 20, shape + (30,)).astype(np.float32)
    data[brain] += 700
    path = write_bold(tmp_path / "noisy.nii.gz", data)
    ref = np.asanyarray(compute_epi_mask(str(path)).dataobj).astype(bool)
    ours = masks.compute_epi_mask(mean_volume(path))
    np.testing.assert_array_equal(ours, ref)
    assert abs(int(ours.sum()) - int(brain.sum())) < 0.5 * brain.sum()


def _save(tmp_path, data, affine=None, name="m.nii.gz"):
    p = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), p)
    return p


def test_load_mask_checks(tmp_path):
    aff = np.diag([2.0, 2, 2, 1])
    good = np.zeros((5, 5, 5), np.uint8)
    good[1:4, 1:4, 1:4] = 1
    m = masks.load_mask(_save(tmp_path, good, aff), (5, 5, 5, 10), aff)
    assert m.dtype == bool and m.sum() == 27
    with pytest.raises(ValueError, match="differs from the BOLD grid.*resample=True"):
        masks.load_mask(_save(tmp_path, good, aff), (6, 5, 5), aff)
    shifted = aff.copy()
    shifted[0, 3] = 0.01
    with pytest.raises(ValueError, match="differs from the BOLD grid"):
        masks.load_mask(_save(tmp_path, good, shifted), (5, 5, 5), aff)
    within_tol = aff.copy()
    within_tol[0, 3] = 1e-4
    assert masks.load_mask(_save(tmp_path, good, within_tol), (5, 5, 5), aff).sum() == 27
    with pytest.raises(ValueError, match="not binary"):
        masks.load_mask(_save(tmp_path, np.arange(125.0).reshape(5, 5, 5), aff), (5, 5, 5), aff)
    with pytest.raises(ValueError, match="empty"):
        masks.load_mask(_save(tmp_path, np.zeros((5, 5, 5), np.uint8), aff), (5, 5, 5), aff)
    with pytest.raises(ValueError, match="expected a 3D image"):
        masks.load_mask(_save(tmp_path, np.zeros((5, 5, 5, 2), np.uint8), aff), (5, 5, 5), aff)
    nan = good.astype(float)
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        masks.load_mask(_save(tmp_path, nan, aff), (5, 5, 5), aff)


def test_load_mask_nearest_resampling(tmp_path):
    fine = np.zeros((10, 10, 10), np.uint8)
    fine[2:8, 2:8, 2:8] = 1
    p = _save(tmp_path, fine, np.eye(4))
    coarse_aff = np.diag([2.0, 2, 2, 1])
    m = masks.load_mask(p, (5, 5, 5), coarse_aff, resample=True)
    expected = np.zeros((5, 5, 5), bool)
    expected[1:4, 1:4, 1:4] = True
    np.testing.assert_array_equal(m, expected)


@pytest.mark.parametrize("mask_type", ["gm", "wm", "whole-brain"])
def test_template_masks(tf_home, mask_type):
    from nilearn.masking import compute_brain_mask

    # a 1.5 mm run grid in MNI space (res-01 templates are used below 2 mm)
    aff = np.array([[1.5, 0, 0, -70], [0, 1.5, 0, -100], [0, 0, 1.5, -60], [0, 0, 0, 1]])
    shape = (94, 116, 94)
    ours, path = masks.compute_template_mask(shape, aff, mask_type=mask_type, home=tf_home)
    assert path.name == f"tpl-MNI152NLin2009cAsym_res-01_{masks.TEMPLATE_FILES[mask_type]}.nii.gz"
    assert ours.sum() > 10000
    if mask_type != "whole-brain":  # same probability maps as nilearn's own templates
        target = nib.Nifti1Image(np.zeros(shape + (2,), np.float32), aff)
        ref = np.asanyarray(compute_brain_mask(target, mask_type=mask_type).dataobj).astype(bool)
        assert (ours != ref).sum() <= 1e-4 * ref.sum(), (ours != ref).sum()


def test_template_mask_resolution_choice(tf_home):
    aff = np.diag([2.0, 2, 2, 1])
    aff[:3, 3] = [-96, -132, -78]
    m, path = masks.compute_template_mask((97, 115, 97), aff, mask_type="gm", home=tf_home)
    assert "res-02" in path.name and m.shape == (97, 115, 97)


def test_template_wrong_space_and_missing(tmp_path, tf_home):
    aff = np.diag([2.0, 2, 2, 1])
    with pytest.raises(ValueError, match="space 'T1w'.*not be aligned"):
        masks.compute_template_mask((10, 10, 10), aff, space="T1w", home=tf_home)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="missing from the local cache.*bidsapp-fetch-templates --resolution 2"):
        masks.compute_template_mask((10, 10, 10), aff, mask_type="gm", home=tmp_path / "empty")
    assert time.monotonic() - t0 < 2
