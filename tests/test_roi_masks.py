"""--roi-masks: one column per binary ROI file (mean of its voxels in the run's mask), as a NiftiMasker per ROI;
bad input refused before the run; end to end through the outputs, the loader and the group level."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from bidsapp.core.columns.rois import ROIs, roi_name
from tests.smooth_runs import smooth_run

SEED = 2027


def _blob(rng, brain, radius=2.5):
    """A ball of voxels around a random brain voxel, partly outside the brain when near its edge."""
    centre = np.argwhere(brain)[rng.integers(brain.sum())]
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(np.indices(brain.shape), centre)))
    return dist <= radius * rng.uniform(0.6, 1.6)


def test_roi_means_equal_nilearn_per_roi(tmp_path):
    """Seeded sweep: each column equals NiftiMasker(mask = ROI ∩ brain).fit_transform(...).mean(1) to 1e-5 of its
    std; overlapping ROIs keep their own means; cleaning after extraction equals nilearn's too."""
    import warnings

    from nilearn.maskers import NiftiMasker
    from nilearn.signal import clean as nilearn_clean

    from bidsapp.core.signal import clean

    rng = np.random.default_rng(SEED)
    data, brain, affine = smooth_run(rng, 50)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    img = nib.Nifti1Image(data.astype(np.float64), affine)
    overlapping = 0
    for case in range(6):
        rois = [_blob(rng, brain) for _ in range(int(rng.integers(1, 5)))]
        rois = [r for r in rois if (r & brain).any()]
        files = []
        for k, roi in enumerate(rois):
            files.append(tmp_path / f"case{case}_label-R{k}_mask.nii.gz")
            nib.save(nib.Nifti1Image(roi.astype(np.uint8 if k % 2 else np.float32), affine), files[-1])
        overlapping += bool((np.sum(rois, axis=0) >= 2).any())
        space = ROIs.build(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz", roi_masks=files)
        space.transform(tmp_path / "bold.nii.gz", tmp_path / "X.npy")
        X = np.load(tmp_path / "X.npy")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = np.stack([NiftiMasker(nib.Nifti1Image((r & brain).astype(np.uint8), affine)).fit_transform(img)
                            .mean(axis=1) for r in rois], axis=1)
        scale = np.maximum(ref.std(axis=0), 1e-12)
        assert np.all(np.abs(X - ref) <= 1e-5 * scale), f"seed {SEED} case {case}"
        table = space.features()
        assert table["name"].tolist() == [f"R{k}" for k in range(len(rois))]
        assert table["n_voxels"].tolist() == [int((r & brain).sum()) for r in rois]
        assert np.allclose(table["fraction_in_mask"], [(r & brain).sum() / r.sum() for r in rois])
        conf = rng.normal(size=(X.shape[0], 3))
        ours = clean(X.astype(np.float64), t_r=2.0, confounds=conf, high_pass=0.01, detrend=True,
                     standardize="zscore_sample")
        theirs = nilearn_clean(ref, t_r=2.0, confounds=conf, high_pass=0.01, detrend=True,
                               standardize="zscore_sample")
        assert np.all(np.abs(ours - theirs) <= 1e-5 * np.maximum(theirs.std(axis=0), 1e-12))
    assert overlapping >= 1  # the sweep had overlapping ROIs


def test_roi_names():
    assert roi_name("sub-01_space-MNI_label-FFA_mask.nii.gz") == "FFA"
    assert roi_name("/x/lh_ppa.nii.gz") == "lh_ppa"
    assert roi_name("desc-V1_mask.nii") == "V1"


@pytest.fixture(scope="module")
def roi_run(demo_outputs, tmp_path_factory):
    """The demo's sub-01 runs with two ROI files (one overlapping the other), cleaning, LSS, every volume format."""
    base = tmp_path_factory.mktemp("rois")
    bids = demo_outputs / "bidsapp-demo-output" / "bids"
    mask = nib.load(next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-brain_mask.nii.gz")))
    brain = np.asanyarray(mask.dataobj) > 0
    centre = np.argwhere(brain).mean(axis=0).round().astype(int)
    a = np.zeros(brain.shape, bool)
    a[tuple(slice(c - 2, c + 3) for c in centre)] = True
    b = ndimage.shift(a.astype(np.uint8), (3, 0, 0), order=0) > 0
    rois = base / "rois"
    rois.mkdir()
    nib.save(nib.Nifti1Image(a.astype(np.uint8), mask.affine), rois / "sub-01_label-FFA_mask.nii.gz")
    nib.save(nib.Nifti1Image(b.astype(np.uint8), mask.affine), rois / "lh_ppa.nii.gz")
    out = base / "out"
    argv = [str(bids), str(out), "participant", "--participant-label", "01", "--nprocs", "1",
            "--roi-masks", str(rois / "sub-01_label-FFA_mask.nii.gz"), str(rois / "lh_ppa.nii.gz"),
            "--trial-estimates", "lss", "--output-format", "npy", "tsv.gz", "nii.gz", "--work-dir", str(base / "w")]
    return base, bids, out, argv, a & brain, b & brain


def test_roi_masks_end_to_end(roi_run):
    import bidsapp
    from bidsapp.cli.run import main
    from bidsapp.core.tsv import read_tsv

    base, bids, out, argv, a, b = roi_run
    assert main(argv) == 0
    run = bidsapp.load(out, subject="01", run=1, atlas="roimasks")
    assert run.kind == "rois" and run.meta["ColumnSpace"] == "rois"
    assert run.features["name"].tolist() == ["FFA", "lh_ppa"] and run.X.shape[1] == 2
    assert run.features["n_voxels"].tolist() == [int(a.sum()), int(b.sum())]
    assert {s["Role"] for s in run.meta["Sources"]} >= {"roi_masks_1", "roi_masks_2"}
    assert run.betas is not None and run.betas.shape[1] == 2
    members = np.asanyarray(nib.load(run.dseg_file).dataobj) > 0
    assert (members[..., 0] == a).all() and (members[..., 1] == b).all()
    image = run.to_image(np.array([1.0, 3.0])).get_fdata()
    assert np.allclose(image[a & ~b], 1) and np.allclose(image[b & ~a], 3) and np.allclose(image[a & b], 2)
    ds = bidsapp.dataset(out, kind="betas", subject="01", atlas="roimasks")
    assert ds.X.shape[1] == 2
    descriptions = json.loads(next(out.rglob("*atlas-roimasks*_features.json")).read_text())
    assert descriptions["fraction_in_mask"]["Description"].startswith("Share of the ROI")
    assert main([str(bids), str(out), "group"]) == 0
    header, rows = read_tsv(out / "group_runs.tsv")
    assert {r[header.index("n_features")] for r in rows if "atlas-roimasks" in r[header.index("run")]} == {"2"}
    # another ROI file under the same atlas name: refused (one meaning per name), bound by checksums
    other = base / "rois" / "lh_ppa.nii.gz"
    nib.save(nib.Nifti1Image(np.roll(b, 1, axis=1).astype(np.uint8), nib.load(other).affine), base / "moved.nii.gz")
    argv2 = [a if a != str(other) else str(base / "moved.nii.gz") for a in argv]
    assert main(argv2) == 2


@pytest.mark.parametrize("make, message", [
    (lambda brain, aff: (brain * 2).astype(np.uint8), "a ROI mask holds 0 and 1 only"),
    (lambda brain, aff: np.zeros_like(brain, np.uint8), "the ROI has no voxel inside the run's mask"),
    (lambda brain, aff: brain[:-1].astype(np.uint8), "the ROI is not on the run's grid"),
])
def test_bad_roi_refused_one_line_exit_2_nothing_written(roi_run, tmp_path, capsys, make, message):
    from bidsapp.cli.run import main

    _, bids, _, _, a, _ = roi_run
    mask = nib.load(next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-brain_mask.nii.gz")))
    nib.save(nib.Nifti1Image(make(a, mask.affine), mask.affine), tmp_path / "bad.nii.gz")
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--roi-masks",
                 str(tmp_path / "bad.nii.gz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert message in err[-1] and "bad.nii.gz" in err[-1]
    assert not out.exists() or not list(out.rglob("sub-01*"))


def test_roi_masks_with_spheres_or_twice_the_same_name_refused(roi_run, tmp_path, capsys):
    from bidsapp.cli.run import main

    base, bids, _, _, _, _ = roi_run
    ffa = base / "rois" / "sub-01_label-FFA_mask.nii.gz"
    (tmp_path / "seeds.tsv").write_text("x\ty\tz\n0\t0\t0\n")
    for extra, message in ((["--spheres", str(tmp_path / "seeds.tsv")], "both define the columns"),
                           ([str(tmp_path / "label-FFA_x.nii.gz")], "two files are named 'FFA'")):
        (tmp_path / "label-FFA_x.nii.gz").write_bytes(ffa.read_bytes())
        code = main([str(bids), str(tmp_path / "o"), "participant", "--participant-label", "01",
                     "--roi-masks", str(ffa), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and message in err[-1], err
