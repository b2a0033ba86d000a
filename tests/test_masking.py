import warnings

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import masking
from tests.conftest import write_bold


def _nilearn_masker(path, mask, fwhm=None):
    from nilearn.maskers import NiftiMasker

    img = nib.load(path)
    masker = NiftiMasker(nib.Nifti1Image(mask.astype(np.uint8), img.affine), smoothing_fwhm=fwhm,
                         standardize=None, detrend=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return masker.fit_transform(str(path))


def test_apply_mask_equals_nilearn_order_and_values(small_bold):
    from nilearn.masking import apply_mask

    path, brain, _ = small_bold
    ours = masking.apply_mask(path, brain)
    ref = apply_mask(str(path), nib.Nifti1Image(brain.astype(np.uint8), nib.load(path).affine))
    assert ours.dtype == np.float32 and ours.shape == (60, brain.sum())
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("fwhm", [4.0, 8.0])
def test_smoothing_equals_nilearn_anisotropic(small_bold, fwhm):
    path, brain, _ = small_bold  # voxels are 3 x 3 x 3.5 mm
    ours = masking.apply_mask(path, brain, smoothing_fwhm=fwhm)
    ref = _nilearn_masker(path, brain, fwhm)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-3)


def test_smoothing_of_mask_touching_the_border(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.normal(100, 5, (8, 9, 10, 5)).astype(np.float32)
    path = write_bold(tmp_path / "edge.nii.gz", data)
    mask = np.zeros((8, 9, 10), bool)
    mask[0:3, 4:9, 7:10] = True
    np.testing.assert_allclose(masking.apply_mask(path, mask, smoothing_fwhm=6),
                               _nilearn_masker(path, mask, 6), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("fwhm", [None, 6.0])
def test_nan_inside_mask_is_zero_as_nilearn(tmp_path, small_bold, fwhm):
    """One policy (NiftiMasker's: non-finite -> 0), counted in one warning line."""
    _, brain, data = small_bold
    data = data.copy()
    idx = tuple(np.argwhere(brain)[10]) + (3,)
    data[idx] = np.nan
    data[tuple(np.argwhere(brain)[50]) + (7,)] = np.inf
    path = write_bold(tmp_path / "nan.nii.gz", data)
    with pytest.warns(UserWarning, match=r"nan.nii.gz: 2 non-finite value\(s\) .* set to 0") as rec:
        ours, n_bad = masking.apply_mask(path, brain, smoothing_fwhm=fwhm, return_nonfinite=True)
    assert n_bad == 2 and len(rec) == 1 and "\n" not in str(rec[0].message)
    from nilearn.maskers import NiftiMasker
    from nilearn.masking import apply_mask as nl_apply_mask

    mask_img = nib.Nifti1Image(brain.astype(np.uint8), nib.load(path).affine)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-finite|.*NaN|.*inf", category=UserWarning)
        if fwhm is None:
            ref = nl_apply_mask(str(path), mask_img)
        else:
            ref = NiftiMasker(mask_img, smoothing_fwhm=fwhm, standardize=None, detrend=False).fit_transform(str(path))
    assert np.isfinite(ours).all() and ours[3, 10] == (0 if fwhm is None else ours[3, 10])
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-3)
    lab = np.where(brain, 1 + (np.indices(brain.shape)[0] > 10), 0)
    with pytest.warns(UserWarning, match="2 non-finite"):
        _, _, n_lab = masking.apply_labels(path, lab, smoothing_fwhm=fwhm, return_nonfinite=True)
    assert n_lab == 2


def test_float64_bold_stays_float64(tmp_path, small_bold):
    """Float64 BOLD is not cast to float32 before cleaning."""
    _, brain, data = small_bold
    data64 = data.astype(np.float64) + np.random.default_rng(0).normal(0, 1e-6, data.shape)
    path = write_bold(tmp_path / "f64.nii.gz", data64, dtype=np.float64)
    X = masking.apply_mask(path, brain)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, data64[brain].T)


def test_empty_mask_and_wrong_grid(small_bold):
    path, brain, _ = small_bold
    with pytest.raises(ValueError, match="empty"):
        masking.apply_mask(path, np.zeros_like(brain))
    with pytest.raises(ValueError, match="differs from the mask grid"):
        masking.apply_mask(path, brain[:-1])


def test_features_and_unmask_roundtrip(small_bold):
    path, brain, _ = small_bold
    X = masking.apply_mask(path, brain)
    aff = nib.load(path).affine
    table = masking.voxel_features(brain, aff)
    j = 123
    i, jj, k = table["i"][j], table["j"][j], table["k"][j]
    assert brain[i, jj, k]
    np.testing.assert_allclose([table["x"][j], table["y"][j], table["z"][j]],
                               nib.affines.apply_affine(aff, [i, jj, k]), atol=1e-3)
    data = np.asanyarray(nib.load(path).dataobj)
    assert X[7, j] == data[i, jj, k, 7]
    img4 = masking.unmask(X, brain, aff)
    np.testing.assert_array_equal(np.asanyarray(img4.dataobj)[brain], X.T)
    img3 = masking.unmask(X[0], brain, aff)
    assert img3.shape == brain.shape
    with pytest.raises(ValueError, match="features but the mask has"):
        masking.unmask(X[:, :-1], brain, aff)


def _atlas(brain):
    labels = np.zeros(brain.shape, np.int16)
    ii = np.indices(brain.shape)
    labels[brain & (ii[0] < 8)] = 3
    labels[brain & (ii[0] >= 8) & (ii[1] < 11)] = 7
    labels[brain & (ii[0] >= 8) & (ii[1] >= 11)] = 12
    return labels


@pytest.mark.parametrize("fwhm", [None, 5.0])
def test_labels_equal_nilearn(tmp_path, small_bold, fwhm):
    from nilearn.maskers import NiftiLabelsMasker

    path, brain, _ = small_bold
    aff = nib.load(path).affine
    labels = _atlas(brain)
    atlas_path = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels, aff), atlas_path)
    table_path = tmp_path / "atlas.tsv"
    table_path.write_text("index\tname\n3\tleft\n7\tright-front\n12\tright-back\n")
    lab = masking.load_labels(atlas_path, brain.shape, aff)
    ours, values = masking.apply_labels(path, lab, smoothing_fwhm=fwhm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = NiftiLabelsMasker(str(atlas_path), smoothing_fwhm=fwhm, standardize=None).fit_transform(str(path))
    np.testing.assert_array_equal(values, [3, 7, 12])
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    names = masking.read_label_table(table_path)
    feats = masking.label_features(lab, aff, values, names)
    assert list(feats["name"]) == ["left", "right-front", "right-back"]
    centroid = np.argwhere(lab == 7).mean(0)
    np.testing.assert_allclose([feats["i"][1], feats["j"][1], feats["k"][1]], centroid, atol=1e-3)
    back = masking.unmask_labels(ours, lab, values, aff)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj)[lab == 12][0], ours[:, 2])


def test_atlas_errors(tmp_path, small_bold):
    path, brain, _ = small_bold
    aff = nib.load(path).affine
    p = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.full(brain.shape, 0.5, np.float32), aff), p)
    with pytest.raises(ValueError, match="integer labels"):
        masking.load_labels(p, brain.shape, aff)
    nib.save(nib.Nifti1Image(_atlas(brain)[:-2], aff), p)
    with pytest.raises(ValueError, match="differs from the BOLD grid"):
        masking.load_labels(p, brain.shape, aff)
    t = tmp_path / "t.tsv"
    t.write_text("id\tlabel\n1\ta\n")
    with pytest.raises(ValueError, match="'index' and 'name'"):
        masking.read_label_table(t)
