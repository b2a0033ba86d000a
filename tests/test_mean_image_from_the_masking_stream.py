"""The run's temporal mean image is summed while the masking stream reads the volumes, for every volume column
kind, and equals :func:`bidsapp.core.io.mean_volume` (a separate read of the file): bit for bit in the
accumulation dtype (float32 data summed in float32, integer / scaled / float64 data in float64), before any
smoothing, with non-finite values passed through as ``mean_volume`` passes them."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import columns, masking
from bidsapp.core.io import MeanAccumulator, mean_volume
from tests.conftest import write_bold
from tests.smooth_runs import smooth_run

SEED = 1919
KINDS = ("voxels", "labels", "maps", "spheres", "rois")


def _bold(tmp_path, rng, case: str, n_volumes: int):
    """A run stored as ``case``: float32 .nii.gz / .nii, int16 with scl_slope and scl_inter, or float64."""
    data, brain, affine = smooth_run(rng, n_volumes)
    if case == "float32-nan":  # a NaN inside the brain and an inf outside it
        inside, outside = np.argwhere(brain)[rng.integers(brain.sum())], np.argwhere(~brain)[0]
        data[tuple(inside) + (int(rng.integers(n_volumes)),)] = np.nan
        data[tuple(outside) + (0,)] = np.inf
    if case == "int16-scaled":  # stored values (x - 10) / slope, rounded: the file's values are scaled integers
        path = write_bold(tmp_path / "bold.nii.gz", np.round((data - 10.0) / 0.0371), affine, np.int16, slope=0.0371)
    else:
        dtype = np.float64 if case == "float64" else np.float32
        path = write_bold(tmp_path / ("bold.nii" if case == "float32-nii" else "bold.nii.gz"), data, affine, dtype)
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    return path, brain, affine


def _kind_args(kind: str, tmp_path, rng, brain: np.ndarray, affine: np.ndarray) -> dict:
    """Inputs of each volume kind on the run's grid: an atlas, maps, seeds or ROI files."""
    ijk = np.indices(brain.shape)
    if kind == "labels":
        labels = np.where(brain, 1 + (ijk[0] >= brain.shape[0] // 2) + 2 * (ijk[1] >= brain.shape[1] // 2), 0)
        nib.save(nib.Nifti1Image(labels.astype(np.int16), affine), tmp_path / "atlas.nii.gz")
        return {"atlas_file": tmp_path / "atlas.nii.gz"}
    if kind == "maps":
        centres = np.argwhere(brain)[rng.choice(brain.sum(), 3, replace=False)]
        maps = np.stack([np.exp(-((ijk - c[:, None, None, None]) ** 2).sum(0) / 8.0) for c in centres], axis=-1)
        nib.save(nib.Nifti1Image(maps.astype(np.float32), affine), tmp_path / "maps.nii.gz")
        return {"atlas_file": tmp_path / "maps.nii.gz"}
    seeds = nib.affines.apply_affine(affine, np.argwhere(brain)[rng.choice(brain.sum(), 3, replace=False)])
    if kind == "spheres":
        (tmp_path / "seeds.tsv").write_text("x\ty\tz\n" + "".join(f"{x}\t{y}\t{z}\n" for x, y, z in seeds))
        return {"spheres": tmp_path / "seeds.tsv", "sphere_radius": 6.0, "allow_overlap": True}
    if kind == "rois":
        files = []
        for k, c in enumerate(np.argwhere(brain)[rng.choice(brain.sum(), 2, replace=False)]):
            roi = ((ijk - c[:, None, None, None]) ** 2).sum(0) <= 4
            files.append(tmp_path / f"label-R{k}_mask.nii.gz")
            nib.save(nib.Nifti1Image(roi.astype(np.uint8), affine), files[-1])
        return {"roi_masks": files}
    return {}


CASES = ("float32", "float32-nii", "float32-nan", "int16-scaled", "float64")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_transform_writes_the_mean_of_the_stream(tmp_path, kind, case):
    """Seeded sweep: each kind's transform writes mean.npy (float32, the grid's shape) equal bit for bit to
    mean_volume rounded once to float32; smoothing changes the columns, never the mean."""
    import warnings

    rng = np.random.default_rng([SEED, KINDS.index(kind), CASES.index(case)])
    path, brain, affine = _bold(tmp_path, rng, case, int(rng.integers(7, 30)))
    space = columns.get(kind).build(path, tmp_path / "mask.nii.gz", **_kind_args(kind, tmp_path, rng, brain, affine))
    expected = mean_volume(path)
    assert expected.dtype == (np.float32 if case.startswith("float32") else np.float64)
    exact = np.asanyarray(nib.load(path).get_fdata()).mean(axis=-1)  # independent of mean_volume: nibabel, float64
    finite = np.isfinite(exact)
    assert np.abs(expected[finite] - exact[finite]).max() <= 1e-5 * np.abs(exact[finite]).max()
    columns_of = {}
    for fwhm in (None, 6.0):
        out, mean_out = tmp_path / f"X{fwhm}.npy", tmp_path / f"mean{fwhm}.npy"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the NaN case warns about the values set to 0
            space.transform(path, out, smoothing_fwhm=fwhm, mean_out=mean_out)
        mean = np.load(mean_out)
        assert mean.dtype == np.float32 and mean.shape == brain.shape
        np.testing.assert_array_equal(mean, expected.astype(np.float32), err_msg=f"{kind} {case} fwhm={fwhm}")
        columns_of[fwhm] = np.load(out)
    assert not np.allclose(columns_of[None], columns_of[6.0])  # the smoothing did happen, after the mean's sum
    if case == "float32-nan":
        assert np.isnan(mean).sum() == 1 and np.isinf(mean).sum() == 1  # as mean_volume (the columns: set to 0)


@pytest.mark.parametrize("case", ["float32", "int16-scaled", "float64"])
def test_accumulator_equals_mean_volume_in_its_own_dtype(tmp_path, case):
    """The streaming functions' accumulator holds mean_volume's exact array (dtype and bits), whatever dtype the
    stream converts the volumes to (float32 rows from int16 data are summed from the file's float64 values)."""
    rng = np.random.default_rng([SEED, CASES.index(case)])
    path, brain, affine = _bold(tmp_path, rng, case, 25)
    labels = np.where(brain, 1 + (np.indices(brain.shape)[2] % 3), 0)
    runs = {
        "mask_to_npy": lambda m: masking.mask_to_npy(path, brain, tmp_path / "X.npy", mean=m),
        "apply_mask": lambda m: masking.apply_mask(path, brain, mean=m),
        "apply_labels": lambda m: masking.apply_labels(path, labels, mean=m),
        "apply_weights": lambda m: masking.apply_weights(path, np.nonzero(brain), np.ones((1, brain.sum())), brain,
                                                         smoothing_fwhm=5.0, mean=m),
    }
    expected = mean_volume(path)
    for name, run in runs.items():
        acc = MeanAccumulator.of(path)
        run(acc)
        got = acc.mean()
        assert got.dtype == expected.dtype and got.flags.f_contiguous, name
        np.testing.assert_array_equal(got, expected, err_msg=f"{name} {case}")


def test_a_partial_stream_has_no_mean(tmp_path):
    """A stream stopped before the last volume cannot pass for the run's mean; a volume of another grid is
    refused; the mean is computed once."""
    from bidsapp.core.io import iter_volumes

    path, _, _ = _bold(tmp_path, np.random.default_rng(SEED), "float32", 6)
    acc = MeanAccumulator.of(path)
    for t, _vol in iter_volumes(path, mean=acc):
        if t == 3:
            break
    with pytest.raises(ValueError, match="all 6 volumes; 4 were read"):
        acc.mean()
    with pytest.raises(ValueError, match="a volume of 8 voxels"):
        acc.add(np.zeros(8, np.float32))
    full = MeanAccumulator.of(path)
    for _ in iter_volumes(path, mean=full):
        pass
    np.testing.assert_array_equal(full.mean(), mean_volume(path))
    with pytest.raises(ValueError, match="already computed"):
        full.add(np.zeros(full.shape, np.float32))


def test_without_mean_out_nothing_is_written(tmp_path):
    rng = np.random.default_rng(SEED)
    path, brain, affine = _bold(tmp_path, rng, "float32", 5)
    space = columns.get("voxels").build(path, tmp_path / "mask.nii.gz")
    space.transform(path, tmp_path / "X.npy")
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == ["X.npy"]
