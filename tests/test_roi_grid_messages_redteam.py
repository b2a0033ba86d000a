"""--roi-masks bad input, red team of issue 17: a ROI of the run's shape on another affine (flipped or shifted)
is refused with a message saying what differs (it used to print two equal shapes), and a ROI holding NaN is
refused naming the NaN (it used to report only the finite values, e.g. "found [1.0]")."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core.columns.rois import read_roi

SEED = 1717


def _grid(rng):
    shape = tuple(int(n) for n in rng.integers(8, 16, 3))
    affine = np.diag([*rng.choice([2.0, 3.0, 4.0], 3), 1.0])
    affine[:3, 3] = rng.uniform(-60, -20, 3)
    roi = np.zeros(shape, np.uint8)
    lo = [int(rng.integers(0, n // 2)) for n in shape]
    roi[lo[0]:lo[0] + 3, lo[1]:lo[1] + 4, lo[2]:lo[2] + 2] = 1
    return shape, affine, roi


@pytest.mark.parametrize("case", range(6))
def test_same_shape_other_affine_refused_saying_the_affine_differs(tmp_path, case):
    """Seeded sweep: flipped x axis (same world voxels, other order) or an origin shifted by less than a voxel;
    the ROI has the run's shape, so the message must name the affine, not two equal shapes."""
    rng = np.random.default_rng(SEED + case)
    shape, affine, roi = _grid(rng)
    other = affine.copy()
    if case % 2:
        other[0, 0] = -affine[0, 0]
        other[0, 3] = affine[0, 3] + (shape[0] - 1) * affine[0, 0]
        roi_data = roi[::-1].copy()
    else:
        other[:3, 3] += rng.uniform(0.3, 0.9) * np.diag(affine)[:3]
        roi_data = roi
    path = tmp_path / "roi_label-X_mask.nii.gz"
    nib.save(nib.Nifti1Image(roi_data, other), path)
    with pytest.raises(ValueError) as err:
        read_roi(path, affine, shape)
    message = str(err.value)
    assert str(path) in message and "not on the run's grid" in message
    assert "affine differs" in message and f"{shape} vs {shape}" not in message
    assert "--resample-mask does not apply to ROI masks" in message
    assert ("axes LAS" in message) == bool(case % 2)
    # the run's own grid reads back the same voxels
    nib.save(nib.Nifti1Image(roi, affine), path)
    assert np.array_equal(read_roi(path, affine, shape), roi > 0)


def test_other_shape_names_both_shapes(tmp_path):
    shape, affine, roi = _grid(np.random.default_rng(SEED))
    path = tmp_path / "roi.nii.gz"
    nib.save(nib.Nifti1Image(roi[:-1], affine), path)
    with pytest.raises(ValueError, match=r"shape \(\d+, \d+, \d+\) vs the run's"):
        read_roi(path, affine, shape)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_roi_refused_naming_the_non_finite_values(tmp_path, bad):
    """A float ROI with NaN background (a common export) is refused saying NaN/inf, not "found [1.0]"."""
    shape, affine, roi = _grid(np.random.default_rng(SEED))
    data = roi.astype(np.float32)
    data[data == 0] = bad
    path = tmp_path / "roi_label-N_mask.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    with pytest.raises(ValueError) as err:
        read_roi(path, affine, shape)
    message = str(err.value)
    assert str(path) in message and f"{int((roi == 0).sum())} NaN or infinite" in message
    assert "found [1.0]" not in message


def test_several_rois_in_one_4d_file_refused_saying_so(tmp_path):
    """A 4D file of 3 ROIs on the run's grid is not a grid problem: the message must not suggest resampling."""
    shape, affine, roi = _grid(np.random.default_rng(SEED))
    path = tmp_path / "rois.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([roi, roi, roi], axis=3), affine), path)
    with pytest.raises(ValueError) as err:
        read_roi(path, affine, shape)
    message = str(err.value)
    assert str(path) in message and "3 volumes" in message and "one file per ROI" in message
    assert "resample" not in message
