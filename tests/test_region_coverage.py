"""Region coverage (fraction of each label, map, sphere, grayordinate label inside the mask) and
``--min-coverage``: counted independently on seeded random atlases and masks."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import columns, coverage
from tests.smooth_runs import smooth_run


def _run(tmp_path, rng, n_volumes=12):
    data, brain, affine = smooth_run(rng, n_volumes)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    return brain, affine


@pytest.mark.parametrize("seed", range(5))
def test_label_coverage_counts_voxels_inside_the_mask(tmp_path, seed):
    rng = np.random.default_rng(seed)
    brain, affine = _run(tmp_path, rng)
    atlas = rng.integers(0, 7, size=brain.shape)  # regions spread over the grid: some mostly outside the brain
    atlas[:, :, :4] = np.where(atlas[:, :, :4] > 0, 9, 0)  # region 9: a slab at the bottom, barely in the brain
    nib.save(nib.Nifti1Image(atlas.astype(np.int16), affine), tmp_path / "atlas.nii.gz")
    space = columns.get("labels").build(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz",
                                        atlas_file=tmp_path / "atlas.nii.gz")
    table = space.features()
    for label, cov in zip(table["label"], table["coverage"]):
        expected = ((atlas == label) & brain).sum() / (atlas == label).sum()
        assert cov == pytest.approx(expected, abs=1e-6)
    assert table["coverage"][list(table["label"]).index(9)] < 0.5
    X = np.ones((4, len(table["label"])))
    dropped = coverage.exclude_poorly_covered(table, X, 0.5)
    assert dropped == list(np.flatnonzero(table["coverage"] < 0.5))
    assert np.isnan(X[:, dropped]).all() and np.isfinite(np.delete(X, dropped, axis=1)).all()
    assert all((e is not None) == (c < 0.5) for e, c in zip(table["excluded"], table["coverage"]))
    assert "lower --min-coverage" in coverage.warning_line(table, dropped, 0.5)


@pytest.mark.parametrize("seed", range(3))
def test_map_coverage_is_the_weight_inside_the_mask(tmp_path, seed):
    from scipy import ndimage

    rng = np.random.default_rng(10 + seed)
    brain, affine = _run(tmp_path, rng)
    maps = np.stack([ndimage.gaussian_filter((rng.uniform(size=brain.shape) > 0.97).astype(float), 2)
                     for _ in range(5)], axis=-1)
    nib.save(nib.Nifti1Image(maps.astype(np.float32), affine), tmp_path / "maps.nii.gz")
    space = columns.get("maps").build(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz",
                                      atlas_file=tmp_path / "maps.nii.gz")
    m32 = maps.astype(np.float32).astype(np.float64)
    expected = [m32[..., k][brain].sum() / m32[..., k].sum() for k in range(5)]
    np.testing.assert_allclose(space.features()["coverage"], expected, atol=1e-6)


def test_sphere_coverage_counts_the_grid_voxels_within_the_radius(tmp_path):
    rng = np.random.default_rng(20)
    brain, affine = _run(tmp_path, rng)
    ijk = np.indices(brain.shape).reshape(3, -1).T
    world = nib.affines.apply_affine(affine, ijk)
    centre = world[brain.ravel()].mean(axis=0)
    edge = world[np.flatnonzero(brain.ravel())[0]]  # a brain voxel at the edge
    seeds = np.array([centre, edge])
    (tmp_path / "seeds.tsv").write_text("name\tx\ty\tz\n" + "".join(f"s{k}\t{x}\t{y}\t{z}\n"
                                                                   for k, (x, y, z) in enumerate(seeds)))
    space = columns.get("spheres").build(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz",
                                         spheres=tmp_path / "seeds.tsv", sphere_radius=8.0)
    table = space.features()
    for s, seed in enumerate(seeds):
        within = ((world - seed) ** 2).sum(axis=1) <= 64
        assert table["coverage"][s] == pytest.approx(min(1.0, table["n_voxels"][s] / within.sum()), abs=1e-6)
    assert table["coverage"][0] == 1.0 and table["coverage"][1] < 0.6


def test_min_coverage_bounds_and_kinds_without_coverage():
    with pytest.raises(ValueError, match="--min-coverage 1.5"):
        coverage.below(np.array([0.2]), 1.5)
    assert coverage.exclude_poorly_covered({"column": [0, 1]}, np.ones((3, 2)), 0.5) == []
    assert not coverage.below(np.array([np.nan, 0.0]), 0.0).any()  # 0 keeps every region


def test_grayordinate_label_coverage_counts_the_runs_grayordinates(tmp_path):
    """An atlas over 200 vertices; a run whose grayordinates are a random subset: coverage per region."""
    from nibabel import cifti2 as ca

    from bidsapp.core import grayordinates as go
    from bidsapp.core.columns.grayordinates import GrayordinateLabels

    rng = np.random.default_rng(30)
    full = ca.BrainModelAxis.from_surface(np.arange(200), 200, "CortexLeft")
    lab = rng.integers(1, 5, size=200)
    lab[:40] = 5  # region 5: vertices 0..39, of which the run keeps few
    keep = np.sort(np.r_[rng.choice(np.arange(40, 200), 120, replace=False), [0, 1, 2]])
    table = {0: ("???", (0, 0, 0, 0)), **{k: (f"r{k}", (1, 0, 0, 1)) for k in range(1, 6)}}
    nib.Cifti2Image(lab[None].astype(np.float32), header=(ca.LabelAxis(["x"], [table]), full)).to_filename(
        tmp_path / "atlas.dlabel.nii")
    run_bm = ca.BrainModelAxis.from_surface(keep, 200, "CortexLeft")
    counts: dict = {}
    labels, names = go.read_dlabel(tmp_path / "atlas.dlabel.nii", run_bm, counts)
    table = GrayordinateLabels(run_bm, labels, names, atlas_counts=counts).features()
    for label, cov in zip(table["label"], table["coverage"]):
        assert cov == pytest.approx(np.isin(np.flatnonzero(lab == label), keep).sum() / (lab == label).sum(),
                                    abs=1e-6)
    assert table["coverage"][list(table["label"]).index(5)] == pytest.approx(3 / 40)


def test_extraction_node_writes_nan_columns_and_warns_once_naming_the_run(tmp_path):
    from bidsapp.interfaces.extract import _apply_min_coverage

    X = np.arange(12, dtype=np.float32).reshape(4, 3) + 1
    np.save(tmp_path / "timeseries.npy", X)
    table = {"column": np.arange(3), "name": np.array(["A", "B", "C"], dtype=object),
             "coverage": np.array([0.9, 0.2, 0.5])}
    with pytest.warns(UserWarning, match=r"sub-01_bold.nii.gz: 1 region\(s\) covered by less than 0.5.*B \(0.20\)"):
        assert _apply_min_coverage(table, tmp_path / "timeseries.npy", 0.5, "/data/sub-01_bold.nii.gz") == [1]
    out = np.load(tmp_path / "timeseries.npy")
    assert np.isnan(out[:, 1]).all() and np.array_equal(out[:, [0, 2]], X[:, [0, 2]])  # 0.5 is not below 0.5
    assert list(table["excluded"]) == [None, "coverage 0.200 < --min-coverage 0.5", None]
