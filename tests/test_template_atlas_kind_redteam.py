"""--atlas NAME from TemplateFlow, red team of issue 17: a name the cache holds both as a dseg (labels) and as a
probseg (maps) is refused in one line naming both files. Before, the kind of the columns (regions or maps)
depended on which resolutions happened to be cached: a dseg at 2 mm and a probseg at 4 mm gave maps for a 4 mm
run and regions once the 4 mm dseg was fetched too, under the same atlas- name."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import atlases

TPL = "MNI152NLin2009cAsym"
SEED = 1718


def _save(path, data, voxel):
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = -40.0
    nib.save(nib.Nifti1Image(data, affine), path)


@pytest.mark.parametrize("dseg_res, probseg_res", [("02", "04"), ("04", "02"), ("04", "04")])
def test_name_both_dseg_and_probseg_refused(tmp_path, dseg_res, probseg_res):
    rng = np.random.default_rng(SEED)
    tpl = tmp_path / f"tpl-{TPL}"
    tpl.mkdir()
    shape = {"02": (40, 48, 40), "04": (20, 24, 20)}
    labels = rng.integers(0, 4, shape[dseg_res]).astype(np.int16)
    maps = rng.uniform(0, 1, (*shape[probseg_res], 3)).astype(np.float32)
    _save(tpl / f"tpl-{TPL}_res-{dseg_res}_atlas-Toy_desc-3_dseg.nii.gz", labels, int(dseg_res))
    _save(tpl / f"tpl-{TPL}_res-{probseg_res}_atlas-Toy_desc-3_probseg.nii.gz", maps, int(probseg_res))
    _save(tpl / f"tpl-{TPL}_res-04_atlas-Only_desc-3_dseg.nii.gz", labels[:20, :24, :20], 4)
    run_affine = np.diag([4.0, 4.0, 4.0, 1.0])
    with pytest.raises(ValueError) as err:
        atlases.resolve("Toy:desc-3", TPL, run_affine, tmp_path)
    message = str(err.value)
    assert "both as dseg" in message and "probseg" in message and "--atlas PATH" in message
    assert f"res-{dseg_res}_atlas-Toy_desc-3_dseg.nii.gz" in message
    assert f"res-{probseg_res}_atlas-Toy_desc-3_probseg.nii.gz" in message
    # a name with one kind still resolves, at the closest resolution
    path, _ = atlases.resolve("Only:desc-3", TPL, run_affine, tmp_path)
    assert path.name == f"tpl-{TPL}_res-04_atlas-Only_desc-3_dseg.nii.gz"


def test_version_without_desc_is_named_when_several(tmp_path):
    """``atlas-HO_desc-th25_dseg`` beside ``atlas-HO_probseg`` (no desc): ``--atlas HO`` is refused as ambiguous,
    and the message must say how to get the desc-less one (``:desc-`` cannot name it), not only ``:desc-th25``."""
    tpl = tmp_path / f"tpl-{TPL}"
    tpl.mkdir()
    rng = np.random.default_rng(SEED)
    _save(tpl / f"tpl-{TPL}_res-02_atlas-HO_desc-th25_dseg.nii.gz",
          rng.integers(0, 4, (40, 48, 40)).astype(np.int16), 2)
    _save(tpl / f"tpl-{TPL}_res-02_atlas-HO_probseg.nii.gz", rng.uniform(0, 1, (40, 48, 40, 3)).astype(np.float32), 2)
    with pytest.raises(ValueError) as err:
        atlases.resolve("HO", TPL, np.diag([2.0, 2.0, 2.0, 1.0]), tmp_path)
    message = str(err.value)
    assert ":desc-th25" in message and f"--atlas PATH (tpl-{TPL}_res-02_atlas-HO_probseg.nii.gz)" in message
    path, _ = atlases.resolve("HO:desc-th25", TPL, np.diag([2.0, 2.0, 2.0, 1.0]), tmp_path)
    assert path.name.endswith("desc-th25_dseg.nii.gz")
