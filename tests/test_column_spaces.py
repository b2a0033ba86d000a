"""Column spaces: every kind follows one protocol; extraction, the sink and the loader ask it."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core import columns


def _labels(brain: np.ndarray) -> np.ndarray:
    return np.where(brain, 1 + (np.indices(brain.shape)[0] >= brain.shape[0] // 2), 0).astype(np.int16)


@pytest.mark.parametrize("kind", ["voxels", "labels"])
def test_volume_kinds_transform_inverse_and_rebuild(small_bold, tmp_path, kind):
    """transform -> inverse puts each column back where it came from; from_outputs rebuilds the same space."""
    path, brain, data = small_bold
    affine = nib.load(path).affine
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    nib.save(nib.Nifti1Image(_labels(brain), affine), tmp_path / "atlas.nii.gz")
    cls = columns.get(kind)
    space = cls.build(path, tmp_path / "mask.nii.gz", atlas_file=tmp_path / "atlas.nii.gz")
    assert space.transform(path, tmp_path / "X.npy") == 0
    X = np.load(tmp_path / "X.npy")
    table = space.features()
    assert X.shape == (data.shape[3], space.n_columns) and len(table["column"]) == space.n_columns
    image = space.save_image(tmp_path / "columns.nii.gz")
    assert (image is None) == (cls.image is None)
    again = cls.from_outputs(tmp_path / "mask.nii.gz", image, {k: list(v) for k, v in table.items()})
    img = again.inverse(X[3])
    if kind == "voxels":
        assert np.allclose(img.get_fdata()[brain], data[..., 3][brain])
    else:  # every voxel of a region holds the region's mean
        lab = _labels(brain)
        for value, column in zip(table["label"], X[3]):
            assert np.allclose(img.get_fdata()[lab == value], column)
            assert np.isclose(column, data[..., 3][lab == value].mean(), rtol=1e-5)
    volumes = list(v.copy() for v in again.inverse_rows([X[:2]]))
    assert np.allclose(volumes[1], again.inverse(X[1]).get_fdata())
    with pytest.raises(ValueError, match=f"do not match the {space.n_columns} columns"):
        again.inverse(np.zeros(space.n_columns + 1))
    assert set(table) <= set(cls.feature_descriptions())


def test_choose_kind_and_unknown_kind(tmp_path):
    assert columns.choose_kind("sub-01_bold.nii.gz") == "voxels"
    assert columns.choose_kind("sub-01_bold.dtseries.nii") == "grayordinates"
    assert columns.choose_kind("sub-01_bold.dtseries.nii", atlas="a.dlabel.nii") == "grayordinate_labels"
    lab = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.int16), np.eye(4)), lab)
    assert columns.choose_kind("sub-01_bold.nii.gz", atlas=lab) == "labels"
    with pytest.raises(ValueError, match="unknown column space 'cubes'"):
        columns.get("cubes")


def test_sidecar_records_the_column_space(demo_outputs):
    """Readers ask the sidecar's ColumnSpace, they do not guess from file names."""
    import bidsapp

    out = demo_outputs / "bidsapp-demo-output" / "derivatives-bidsapp"
    sidecar = next(out.rglob("sub-01_*run-1*_timeseries.json"))
    meta = json.loads(sidecar.read_text())
    assert meta["ColumnSpace"] == "voxels" and meta["ColumnImage"] is None
    run = bidsapp.load(out, subject="01", run=1)
    assert run.kind == "voxels" and run.column_space.n_columns == run.X.shape[1]


def test_labels_on_another_grid_refused_before_the_run(small_bold, tmp_path):
    path, brain, _ = small_bold
    nib.save(nib.Nifti1Image(_labels(brain), np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "atlas.nii.gz")
    with pytest.raises(ValueError, match=r"atlas grid .* differs from the BOLD grid .*--resample-mask"):
        columns.get("labels").check_inputs(path, atlas=tmp_path / "atlas.nii.gz")
    assert columns.get("labels").check_inputs(path, atlas=tmp_path / "atlas.nii.gz", resample=True) == 0


def test_memory_terms_of_the_kinds():
    """Maps hold their pseudo-inverse (grows with maps x support voxels); voxels and labels add nothing."""
    from bidsapp.execution.memory import RunSize, node_memory_gb

    size = RunSize(n_volumes=300, n_features=200_000, grid_voxels=900_000)
    base = node_memory_gb(size)
    assert columns.get("voxels").memory_terms(300, 0, 200_000) == {} == columns.get("labels").memory_terms(300, 0, 1)
    maps = node_memory_gb(size, column_terms=columns.get("maps").memory_terms(300, 256, 200_000))
    assert maps["masking"] - base["masking"] > 1.5 * 256 * 200_000 * 8 * 5 / 1024**3 * 0.99
    assert maps["cleaning"] == base["cleaning"]
