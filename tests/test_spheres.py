"""--spheres: nilearn's NiftiSpheresMasker (same voxels, same signals, same inverse), bad input, end to end."""

from __future__ import annotations

import json
import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core.columns.spheres import Spheres, read_seeds, sphere_members
from bidsapp.core.tsv import read_tsv
from tests.smooth_runs import smooth_run

SEED = 1717


def _write_seeds(path, xyz, names=None):
    lines = ["x\ty\tz" + ("\tname" if names else "")]
    for n, row in enumerate(xyz):
        lines.append("\t".join(f"{v:g}" for v in row) + (f"\t{names[n]}" if names else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def _random_case(rng, brain, affine):
    """Seeds inside the brain, some exactly on voxel centres (boundary distances), radii in voxel multiples."""
    ijk = np.argwhere(brain)
    n = int(rng.integers(1, 6))
    pick = ijk[rng.choice(len(ijk), n, replace=False)].astype(float)
    pick += np.where(rng.random((n, 1)) < 0.5, 0.0, rng.uniform(-0.5, 0.5, (n, 3)))
    seeds = nib.affines.apply_affine(affine, pick)
    radius = [None, 3.0, 3.5, 6.0, 7.0, 10.5][int(rng.integers(0, 6))]
    return seeds, radius


@pytest.fixture
def bold64(tmp_path):
    """A float32 BOLD run with spatially smooth signals (a sphere's mean keeps a realistic std, ~1 % of its
    mean), its brain, and the same data as a float64 image for nilearn's reference."""
    rng = np.random.default_rng(SEED)
    data, brain, affine = smooth_run(rng, 60)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "bold.nii.gz")
    return tmp_path / "bold.nii.gz", brain, nib.Nifti1Image(data.astype(np.float64), affine)


def test_same_voxels_and_signals_as_nilearn(bold64, tmp_path):
    """Seeded sweep: the voxels of every sphere equal nilearn's, signals to 1e-5 of each column's std,
    the inverse equals nilearn's inverse_transform; cleaning after extraction gives the same too."""
    from nilearn.maskers import NiftiSpheresMasker
    from nilearn.maskers.nifti_spheres_masker import apply_mask_and_get_affinity

    from bidsapp.core.signal import clean

    path, brain, img = bold64
    mask_img = nib.Nifti1Image(brain.astype(np.uint8), img.affine)
    nib.save(mask_img, tmp_path / "mask.nii.gz")
    rng = np.random.default_rng(SEED)
    checked = 0
    for case in range(12):
        seeds, radius = _random_case(rng, brain, img.affine)
        names = [f"s{k}" for k in range(len(seeds))]
        _write_seeds(tmp_path / "seeds.tsv", seeds, names)
        ref_radius = 1e-9 if radius is None else radius
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, ref_A = apply_mask_and_get_affinity(seeds.tolist(), img, ref_radius, True, mask_img=mask_img)
        ours = sphere_members(brain, img.affine, seeds, radius, True, names)
        assert (ours.toarray() == ref_A.toarray().astype(bool)).all(), f"seed {SEED} case {case}: voxels differ"
        overlap = bool((ref_A.toarray().sum(axis=0) >= 2).any())
        space = Spheres.build(path, tmp_path / "mask.nii.gz", spheres=tmp_path / "seeds.tsv", sphere_radius=radius,
                              allow_overlap=True)
        space.transform(path, tmp_path / "X.npy")
        X = np.load(tmp_path / "X.npy")
        masker = NiftiSpheresMasker(seeds.tolist(), radius=ref_radius, mask_img=mask_img, allow_overlap=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = masker.fit_transform(img)
        scale = np.maximum(ref.std(axis=0), 1e-12)
        assert np.all(np.abs(X - ref) <= 1e-5 * scale), f"seed {SEED} case {case} (radius {radius})"
        assert space.features()["n_voxels"].tolist() == np.asarray(ref_A.sum(axis=1)).ravel().tolist()
        w = rng.normal(size=len(seeds))
        if radius is not None:  # nilearn's inverse_transform never adds the seed's own voxel: empty without radius
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref_inv = masker.inverse_transform(w).get_fdata()
            assert np.allclose(np.squeeze(space.inverse(w).get_fdata()), np.squeeze(ref_inv), atol=1e-6)
        conf = rng.normal(size=(X.shape[0], 2))
        ours_clean = clean(X.astype(np.float64), t_r=2.0, confounds=conf, high_pass=0.01)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_clean = NiftiSpheresMasker(seeds.tolist(), radius=ref_radius, mask_img=mask_img, allow_overlap=True,
                                           detrend=True, standardize="zscore_sample", t_r=2.0,
                                           high_pass=0.01).fit_transform(img, confounds=conf)
        assert np.all(np.abs(ours_clean - ref_clean) <= 1e-5 * np.maximum(ref_clean.std(axis=0), 1e-12))
        checked += not overlap
    assert 3 <= checked < 12  # the sweep had overlapping and separate spheres


def test_overlap_and_empty_sphere_refused_like_nilearn(small_bold):
    from nilearn.maskers.nifti_spheres_masker import apply_mask_and_get_affinity

    path, brain, _ = small_bold
    affine = nib.load(path).affine
    mask_img = nib.Nifti1Image(brain.astype(np.uint8), affine)
    centre = nib.affines.apply_affine(affine, np.argwhere(brain).mean(axis=0).round())
    seeds = np.array([centre, centre + [3.0, 0, 0]])
    img = nib.load(path)
    with pytest.raises(ValueError, match="Overlap detected"):
        apply_mask_and_get_affinity(seeds.tolist(), img, 6.0, False, mask_img=mask_img)
    with pytest.raises(ValueError, match=r"spheres 'a' and 'b' overlap .*--allow-overlap"):
        sphere_members(brain, affine, seeds, 6.0, False, ["a", "b"])
    far = np.array([[500.0, 500.0, 500.0]])
    with pytest.raises(ValueError, match="empty"):
        apply_mask_and_get_affinity(far.tolist(), img, 6.0, False, mask_img=mask_img)
    with pytest.raises(ValueError, match=r"sphere 'far' at \(500, 500, 500\) mm has no voxel inside the run's mask"):
        sphere_members(brain, affine, far, 6.0, False, ["far"])


def test_seeds_table_needs_xyz(tmp_path):
    (tmp_path / "s.tsv").write_text("x\ty\tname\n1\t2\ta\n")
    with pytest.raises(ValueError, match=r"s.tsv: a --spheres table needs the columns x, y, z .*z missing"):
        read_seeds(tmp_path / "s.tsv")
    (tmp_path / "s.tsv").write_text("x\ty\tz\n1\t2\tthree\n")
    with pytest.raises(ValueError, match="line 2: x, y, z must be numbers"):
        read_seeds(tmp_path / "s.tsv")
    xyz, names = read_seeds(_write_seeds(tmp_path / "ok.tsv", [[1, 2, 3], [4, 5, 6]]))
    assert names == ["seed-1", "seed-2"] and xyz.shape == (2, 3)


@pytest.fixture(scope="module")
def spheres_run(demo_outputs, tmp_path_factory):
    """The demo's sub-01 run with --spheres, cleaning, LSS trials and every volume output format."""

    base = tmp_path_factory.mktemp("spheres")
    bids = demo_outputs / "bidsapp-demo-output" / "bids"
    mask = nib.load(next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-brain_mask.nii.gz")))
    ijk = np.argwhere(np.asanyarray(mask.dataobj) > 0)
    centre = ijk.mean(axis=0).round()
    seeds = nib.affines.apply_affine(mask.affine, np.array([centre - [3, 0, 0], centre + [3, 0, 0], centre]))
    _write_seeds(base / "seeds.tsv", seeds, ["left", "right", "middle"])
    out = base / "out"
    argv = [str(bids), str(out), "participant", "--participant-label", "01", "--nprocs", "1",
            "--spheres", str(base / "seeds.tsv"), "--sphere-radius", "6", "--trial-estimates", "lss",
            "--output-format", "npy", "tsv.gz", "nii.gz", "--work-dir", str(base / "work")]
    return base, bids, out, argv, mask


def test_spheres_end_to_end(spheres_run, capsys):
    """CLI -> outputs (sidecar ColumnSpace, probseg, nii.gz) -> bidsapp.load / dataset / to_image -> group level."""
    import bidsapp
    from bidsapp.cli.run import main

    base, bids, out, argv, mask = spheres_run
    assert main(argv) == 0
    run = bidsapp.load(out, subject="01", run=1, atlas="seeds")
    assert run.kind == "spheres" and run.meta["ColumnSpace"] == "spheres"
    assert run.meta["Parameters"]["sphere_radius"] == 6.0
    assert run.features["name"].tolist() == ["left", "right", "middle"] and run.X.shape[1] == 3
    assert (run.features["n_voxels"] > 1).all()
    assert run.betas is not None and run.betas.shape[1] == 3
    assert any(s["Role"] == "spheres" for s in run.meta["Sources"])
    members = np.asanyarray(nib.load(run.dseg_file).dataobj) > 0
    assert members.shape == mask.shape + (3,)
    assert members.sum(axis=(0, 1, 2)).tolist() == run.features["n_voxels"].tolist()
    bold = nib.load(next(out.rglob("*atlas-seeds*_bold.nii.gz")))
    vol = np.asanyarray(bold.dataobj)[..., 0]
    for k in range(3):  # every voxel of a sphere holds its column (no overlap at 6 mm, 3 voxels apart)
        assert np.allclose(vol[members[..., k]], run.X[0, k], atol=1e-6)
    assert np.allclose(run.to_image(run.X[0]).get_fdata(), vol, atol=1e-6)
    ds = bidsapp.dataset(out, kind="betas", subject="01", atlas="seeds")
    assert ds.X.shape[1] == 3 and ds.to_image(np.ones(3)).get_fdata().sum() == members.sum()
    tsv = next(out.rglob("*atlas-seeds*_timeseries.tsv.gz"))
    import pandas as pd

    assert list(pd.read_csv(tsv, sep="\t").columns) == ["left", "right", "middle"]
    descriptions = json.loads(next(out.rglob("*atlas-seeds*_features.json")).read_text())
    assert descriptions["n_voxels"]["Description"].startswith("Voxels of the run's mask")
    assert main([str(bids), str(out), "group"]) == 0
    header, rows = read_tsv(out / "group_runs.tsv")
    row = [r for r in rows if "atlas-seeds" in r[header.index("run")]]
    assert len(row) == 2 and {r[header.index("n_features")] for r in row} == {"3"}  # sub-01's two runs


@pytest.mark.parametrize("table, extra, message", [
    ("x\ty\n1\t2\n", [], "a --spheres table needs the columns x, y, z"),
    ("x\ty\tz\tname\n0\t0\t0\ta\n3\t0\t0\tb\n", ["--sphere-radius", "8"], "spheres 'a' and 'b' overlap"),
    ("x\ty\tz\tname\n500\t500\t500\tfar\n", [], "sphere 'far' at (500, 500, 500) mm has no voxel"),
])
def test_spheres_bad_input_one_line_exit_2_nothing_written(spheres_run, tmp_path, capsys, table, extra, message):
    from bidsapp.cli.run import main

    base, bids, _, _, _ = spheres_run
    (tmp_path / "seeds.tsv").write_text(table)
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--spheres",
                 str(tmp_path / "seeds.tsv"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert message in err[-1] and len([e for e in err if message in e]) == 1
    assert not out.exists() or not list(out.rglob("sub-01*"))


def test_spheres_with_atlas_refused(spheres_run, tmp_path, capsys):
    from bidsapp.cli.run import main

    base, bids, _, _, _ = spheres_run
    atlas = next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-brain_mask.nii.gz"))
    shutil.copy(atlas, tmp_path / "atlas-one_dseg.nii.gz")
    code = main([str(bids), str(tmp_path / "o"), "participant", "--participant-label", "01", "--spheres",
                 str(base / "seeds.tsv"), "--atlas", str(tmp_path / "atlas-one_dseg.nii.gz")])
    assert code == 2 and "--spheres and --atlas both define the columns" in capsys.readouterr().err
