"""An atlas region with no voxel inside the run's mask is not a column (as nilearn's ``NiftiLabelsMasker``):
it used to vanish silently (coverage 0, yet no NaN column, no ``excluded`` row, no warning), so runs whose
masks differ got different columns with nothing said. Now one warning names those regions."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import columns, coverage
from bidsapp.interfaces.extract import ExtractSignals
from tests.smooth_runs import smooth_run


def _inputs(tmp_path, seed):
    rng = np.random.default_rng(seed)
    data, brain, affine = smooth_run(rng, 12)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    atlas = np.where(brain, rng.integers(1, 5, size=brain.shape), 0)  # regions 1-4 inside the brain
    outside = np.argwhere(~brain)
    outside = outside[rng.permutation(len(outside))]
    atlas[tuple(outside[:20].T)] = 7  # region 7: only outside the mask
    atlas[tuple(outside[20:25].T)] = 2  # region 2 also has a few voxels outside
    nib.save(nib.Nifti1Image(atlas.astype(np.int16), affine), tmp_path / "atlas.nii.gz")
    (tmp_path / "atlas.tsv").write_text("index\tname\n1\ta\n2\tb\n3\tc\n4\td\n7\tcerebellum_far\n")
    return atlas, brain


@pytest.mark.parametrize("seed", range(3))
def test_a_region_with_no_voxel_in_the_mask_is_named(tmp_path, seed):
    atlas, brain = _inputs(tmp_path, seed)
    space = columns.get("labels").build(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz",
                                        atlas_file=tmp_path / "atlas.nii.gz", atlas_labels=tmp_path / "atlas.tsv")
    assert space.outside_mask.tolist() == [7]
    assert list(space.features()["label"]) == [1, 2, 3, 4]  # still not a column: the behaviour is unchanged
    line = coverage.outside_mask_line(space.outside_mask, space.names)
    assert "cerebellum_far" in line and line.startswith("1 atlas region(s) have no voxel inside the mask")

    node = ExtractSignals(bold_file=str(tmp_path / "bold.nii.gz"), mask_file=str(tmp_path / "mask.nii.gz"),
                          atlas_file=str(tmp_path / "atlas.nii.gz"), atlas_labels=str(tmp_path / "atlas.tsv"),
                          column_space="labels")
    work = tmp_path / "node"
    work.mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        node.run(cwd=str(work))
    said = [str(w.message) for w in caught if "no voxel inside the mask" in str(w.message)]
    assert len(said) == 1 and "bold.nii.gz" in said[0] and "cerebellum_far" in said[0]


def test_no_warning_when_every_region_touches_the_mask(tmp_path):
    atlas, brain = _inputs(tmp_path, 5)
    atlas[atlas == 7] = 0
    nib.save(nib.Nifti1Image(atlas.astype(np.int16), nib.load(tmp_path / "mask.nii.gz").affine),
             tmp_path / "atlas.nii.gz")
    space = columns.get("labels").build(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz",
                                        atlas_file=tmp_path / "atlas.nii.gz")
    assert space.outside_mask.size == 0
