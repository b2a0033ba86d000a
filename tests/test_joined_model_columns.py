"""A joined trial model fits each column across its runs, so every run takes the same columns: fMRIPrep's per-run
masks (which differ) are intersected, runs of another resolution are another model, and masks computed from each
run are refused before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bidsapp.cli.run import main
from bidsapp.core.trial_fit import join_key


def _masks(bids: Path) -> list[Path]:
    return sorted(bids.glob("derivatives/fmriprep/sub-01/func/*_desc-brain_mask.nii.gz"))


def _move_voxels(path: Path, n: int = 30) -> np.ndarray:
    """Take ``n`` voxels out of a mask and put ``n`` others in (same count, other voxels: fMRIPrep's run masks);
    returns the new mask."""
    img = nib.load(path)
    data = np.asanyarray(img.dataobj).astype(np.uint8)
    inside, outside = np.flatnonzero(data.ravel()), np.flatnonzero(data.ravel() == 0)
    flat = data.ravel()
    flat[inside[:n]] = 0
    flat[outside[-n:]] = 1
    nib.save(nib.Nifti1Image(flat.reshape(data.shape), img.affine, img.header), path)
    return flat.reshape(data.shape).astype(bool)


def _argv(bids: Path, out: Path, work: Path, *extra: str) -> list[str]:
    return [str(bids), str(out), "participant", "--participant-label", "01", "--nprocs", "1", "--work-dir", str(work),
            "--trial-estimates", "optimized", *extra]


@pytest.fixture(scope="module")
def moved(demo, tmp_path_factory):
    """The demo's participant 01 with run-2's mask moved by 30 voxels, fitted with the joined model."""
    base = tmp_path_factory.mktemp("joined-columns")
    bids = base / "bids"
    shutil.copytree(demo[0], bids)
    masks = _masks(bids)
    assert len(masks) == 2
    first = np.asanyarray(nib.load(masks[0]).dataobj) > 0
    second = _move_voxels(masks[1])
    assert second.sum() == first.sum() and (second != first).sum() == 60
    assert main(_argv(bids, base / "out", base / "work")) == 0
    return base, first & second


def test_runs_of_a_joined_model_take_the_intersection_of_their_masks(moved):
    base, common = moved
    tables = [pd.read_csv(p, sep="\t") for p in sorted((base / "out").glob("sub-01/func/*_features.tsv"))]
    assert len(tables) == 2 and len(tables[0]) == common.sum()
    for table in tables:  # every run: the common voxels, in the same order
        np.testing.assert_array_equal(table[["i", "j", "k"]].to_numpy(), np.argwhere(common))
    for sidecar in sorted((base / "out").glob("sub-01/func/*_timeseries.json")):
        source = json.loads(sidecar.read_text())["MaskSource"]
        assert source.startswith("intersection of the fMRIPrep brain masks") and source.count("desc-brain_mask") == 2
    betas = [np.load(p) for p in sorted((base / "out").glob("sub-01/func/*_betas.npy"))]
    assert [b.shape[1] for b in betas] == [common.sum()] * 2


def test_masks_computed_per_run_are_refused_before_any_work(demo, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_argv(demo[0], out, tmp_path / "work", "--mask-strategy", "background")) == 2
    err = capsys.readouterr().err
    assert "--mask-strategy background computes each run's mask from its own mean image" in err
    assert "--trial-estimates lss / lsa" in err and len(err.strip().splitlines()) == 1
    assert not list(out.glob("sub-01/**/*.npy"))


def test_regions_of_masks_computed_per_run_are_refused_too(demo, tmp_path, capsys):
    """An atlas region may keep no voxel of one run's own mask: its column would be another region's there."""
    from bidsapp.demo import write_demo_atlas

    atlas = write_demo_atlas(tmp_path)
    out = tmp_path / "out"
    assert main(_argv(demo[0], out, tmp_path / "work", "--atlas", str(atlas), "--mask-strategy", "epi")) == 2
    err = capsys.readouterr().err
    assert "--mask-strategy epi computes each run's mask from its own mean image" in err
    assert "--mask-strategy fmriprep (the intersection of the runs' masks)" in err
    assert not list(out.glob("sub-01/**/*.npy"))


def test_a_missing_mask_is_not_answered_with_a_mask_the_joined_model_refuses(demo, tmp_path, capsys):
    bids = tmp_path / "bids"
    shutil.copytree(demo[0], bids)
    _masks(bids)[1].unlink()
    assert main(_argv(bids, tmp_path / "out", tmp_path / "work")) == 66
    err = capsys.readouterr().err
    assert "desc-brain_mask) is missing" in err and "--mask-strategy whole-brain-template" in err
    assert "epi or background" not in err


def test_another_resolution_is_another_joined_model():
    runs = [{"subject": "01", "task": "faces", "run": r} for r in (1, 2)]
    assert join_key(runs[0]) == join_key(runs[1]) == "trialmodel_sub01_taskfaces"
    assert join_key(dict(runs[0], res="2")) == "trialmodel_sub01_taskfaces_res2" != join_key(runs[0])
    assert join_key(dict(runs[0], den="91k", cohort="1")) == "trialmodel_sub01_taskfaces_cohort1_den91k"
