"""--atlas with a 4D probabilistic atlas: nilearn's NiftiMapsMasker (least squares inside the mask), the
inverse, bad input and the CLI end to end."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core.columns.maps import Maps, map_names
from tests.smooth_runs import smooth_run

SEED = 2026


def _blobs(rng, shape, n, brain):
    """n smooth non-negative maps (Gaussian blobs centred in the brain), some overlapping."""
    grid = np.indices(shape).astype(float)
    centres = np.argwhere(brain)[rng.choice(int(brain.sum()), n, replace=False)]
    maps = np.stack([np.exp(-sum((g - c) ** 2 for g, c in zip(grid, cen)) / (2 * rng.uniform(1.5, 3.0) ** 2))
                     for cen in centres], axis=-1)
    return np.where(maps > 0.05, maps, 0.0)


@pytest.fixture
def run64(tmp_path):
    rng = np.random.default_rng(SEED)
    data, brain, affine = smooth_run(rng, 50)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    return tmp_path, brain, affine, nib.Nifti1Image(data.astype(np.float64), affine), rng


def _close(ours, ref, what):
    scale = np.maximum(ref.std(axis=0), 1e-12)
    err = float((np.abs(ours - ref) / scale).max())
    assert err <= 1e-5, f"{what}: max error {err:.2e} of the column std"


def test_same_signals_as_nilearn_same_and_other_grid(run64):
    """Seeded sweep: maps on the run's grid and on a coarser shifted grid (--resample-mask), raw and cleaned,
    equal NiftiMapsMasker(resampling_target="data") to 1e-5 of each column's std; the inverse equals nilearn's."""
    from nilearn.maskers import NiftiMapsMasker

    from bidsapp.core.signal import clean

    folder, brain, affine, img64, rng = run64
    mask_img = nib.load(folder / "mask.nii.gz")
    for case in range(6):
        n_maps = int(rng.integers(2, 7))
        other = case % 2 == 1
        if other:  # 4 mm isotropic, shifted: resampled to the run (linear) as nilearn
            aff = np.diag([4.0, 4.0, 4.0, 1.0])
            aff[:3, 3] = [-31, -35, -32]
            maps = _blobs(rng, (16, 18, 17), n_maps, np.ones((16, 18, 17), bool))
        else:
            aff, maps = affine, _blobs(rng, brain.shape, n_maps, brain)
        nib.save(nib.Nifti1Image(maps.astype(np.float32), aff), folder / "maps.nii.gz")
        maps_img = nib.load(folder / "maps.nii.gz")
        maps64 = nib.Nifti1Image(np.asanyarray(maps_img.dataobj).astype(np.float64), aff)
        space = Maps.build(folder / "bold.nii.gz", folder / "mask.nii.gz", atlas_file=folder / "maps.nii.gz",
                           resample=other)
        space.transform(folder / "bold.nii.gz", folder / "X.npy")
        X = np.load(folder / "X.npy")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            masker = NiftiMapsMasker(maps64, mask_img=mask_img, resampling_target="data", keep_masked_maps=False)
            ref = masker.fit_transform(img64)
        assert X.shape == ref.shape, f"case {case}: {X.shape} vs {ref.shape}"
        _close(X, ref, f"seed {SEED} case {case} raw")
        conf = rng.normal(size=(X.shape[0], 3))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_clean = NiftiMapsMasker(maps64, mask_img=mask_img, resampling_target="data", keep_masked_maps=False,
                                        detrend=True, standardize="zscore_sample", t_r=2.0, high_pass=0.01,
                                        ).fit_transform(img64, confounds=conf)
        ours_clean = clean(X.astype(np.float64), t_r=2.0, confounds=conf, high_pass=0.01)
        _close(ours_clean, ref_clean, f"seed {SEED} case {case} cleaned")
        w = rng.normal(size=X.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_inv = np.squeeze(masker.inverse_transform(w).get_fdata())
        assert np.allclose(np.squeeze(space.inverse(w).get_fdata()), ref_inv, atol=1e-6 * np.abs(ref_inv).max())


def test_features_peak_centroid_and_names(run64):
    folder, brain, affine, _, _ = run64
    maps = np.zeros(brain.shape + (2,))
    ijk = np.argwhere(brain)
    a, b = ijk[len(ijk) // 3], ijk[2 * len(ijk) // 3]
    maps[tuple(a) + (0,)], maps[tuple(b) + (1,)] = 1.0, 2.0
    maps[tuple(b) + (0,)] = 0.5  # map 0: peak at a, centroid 1/3 of the way to b
    nib.save(nib.Nifti1Image(maps, affine), folder / "atlas-two_probseg.nii.gz")
    (folder / "atlas-two_probseg.tsv").write_text("index\tname\n1\tfirst\n2\tsecond\n")
    space = Maps.build(folder / "bold.nii.gz", folder / "mask.nii.gz", atlas_file=folder / "atlas-two_probseg.nii.gz")
    f = space.features()
    assert f["name"].tolist() == ["first", "second"]
    xyz = nib.affines.apply_affine(affine, np.array([a, b, (a * 1.0 + b * 0.5) / 1.5]))
    assert np.allclose([f["peak_x"][0], f["peak_y"][0], f["peak_z"][0]], xyz[0])
    assert np.allclose([f["centroid_x"][0], f["centroid_y"][0], f["centroid_z"][0]], xyz[2], atol=1e-3)
    assert np.allclose([f["peak_x"][1], f["peak_y"][1], f["peak_z"][1]], xyz[1])
    assert map_names(folder / "x.nii.gz", None, 2) == ["map-1", "map-2"]


@pytest.mark.parametrize("bad, message", [(-0.1, "1 negative weight(s)"), (np.nan, "1 non-finite weight(s)")])
def test_bad_weights_refused(run64, bad, message):
    folder, brain, affine, _, _ = run64
    maps = np.zeros(brain.shape + (2,))
    maps[brain, 0], maps[brain, 1] = 0.5, 0.2
    maps[tuple(np.argwhere(brain)[0]) + (1,)] = bad
    nib.save(nib.Nifti1Image(maps, affine), folder / "maps.nii.gz")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Maps.check_inputs(folder / "bold.nii.gz", atlas=folder / "maps.nii.gz")


@pytest.fixture(scope="module")
def maps_demo(demo_outputs, tmp_path_factory):
    """Three blob maps on the demo's grid and the same maps on a 3 mm grid (needs --resample-mask)."""
    base = tmp_path_factory.mktemp("maps")
    bids = demo_outputs / "bidsapp-demo-output" / "bids"
    mask = nib.load(next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-brain_mask.nii.gz")))
    brain = np.asanyarray(mask.dataobj) > 0
    maps = _blobs(np.random.default_rng(SEED), brain.shape, 3, brain)
    nib.save(nib.Nifti1Image(maps.astype(np.float32), mask.affine), base / "atlas-blobs_probseg.nii.gz")
    (base / "atlas-blobs_probseg.tsv").write_text("index\tname\n1\tone\n2\ttwo\n3\tthree\n")
    fine = mask.affine.copy()
    fine[:3, :3] = np.diag([3.0, 3.0, 3.0]) * np.sign(np.diag(mask.affine[:3, :3]))
    shape = tuple(int(s * 4 / 3) for s in brain.shape)
    from bidsapp.core.masks import resample_to_grid

    other = np.stack([resample_to_grid(maps[..., k], mask.affine, shape, fine, order=1) for k in range(3)], -1)
    nib.save(nib.Nifti1Image(other.astype(np.float32), fine), base / "atlas-fine_probseg.nii.gz")
    return base, bids, mask


def test_maps_end_to_end(maps_demo):
    """CLI (cleaning, LSS, npy tsv.gz nii.gz) -> sidecar ColumnSpace maps -> load / dataset / to_image -> group."""
    import bidsapp
    from bidsapp.cli.run import main
    from bidsapp.core.tsv import read_tsv

    base, bids, mask = maps_demo
    out = base / "out"
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--nprocs", "1",
                 "--atlas", str(base / "atlas-blobs_probseg.nii.gz"), "--trial-estimates", "lss",
                 "--output-format", "npy", "tsv.gz", "nii.gz", "--work-dir", str(base / "work"),
                 "--min-coverage", "0"]) == 0  # blobs centred at the brain's edge hold < 0.5 of their weight in it
    run = bidsapp.load(out, subject="01", run=1, atlas="blobs")
    assert run.kind == "maps" and run.meta["ColumnSpace"] == "maps" and run.X.shape[1] == 3
    assert run.features["name"].tolist() == ["one", "two", "three"]
    assert {"peak_x", "centroid_z"} <= set(run.features.columns) and run.betas.shape[1] == 3
    maps = np.asanyarray(nib.load(run.dseg_file).dataobj)
    bold = np.asanyarray(nib.load(next(out.rglob("*run-1*atlas-blobs*_bold.nii.gz"))).dataobj)
    assert np.allclose(bold[..., 0], maps @ run.X[0], atol=1e-5 * np.abs(bold[..., 0]).max())
    assert np.allclose(run.to_image(run.X[0]).get_fdata(), bold[..., 0], atol=1e-5 * np.abs(bold[..., 0]).max())
    ds = bidsapp.dataset(out, kind="betas", subject="01", atlas="blobs")
    assert ds.X.shape[1] == 3 and ds.to_image(np.ones(3)).shape == mask.shape
    assert main([str(bids), str(out), "group"]) == 0
    header, rows = read_tsv(out / "group_runs.tsv")
    assert {r[header.index("n_features")] for r in rows if "atlas-blobs" in r[0]} == {"3"}


def test_maps_on_another_grid(maps_demo, tmp_path, capsys):
    """Without --resample-mask: one line, exit 2, nothing written; with it: runs, as nilearn resampling to the data."""
    from bidsapp.cli.run import main

    base, bids, _ = maps_demo
    argv = [str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--nprocs", "1",
            "--atlas", str(base / "atlas-fine_probseg.nii.gz"), "--work-dir", str(tmp_path / "work")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "atlas grid" in err[-1] and "--resample-mask" in err[-1]
    assert not list((tmp_path / "out").rglob("sub-01*"))
    assert main([*argv, "--resample-mask"]) == 0
    import bidsapp

    assert bidsapp.load(tmp_path / "out", subject="01", run=1).kind == "maps"


def test_bad_weights_from_the_cli(maps_demo, tmp_path, capsys):
    from bidsapp.cli.run import main

    base, bids, mask = maps_demo
    maps = np.asanyarray(nib.load(base / "atlas-blobs_probseg.nii.gz").dataobj).copy()
    maps[0, 0, 0, 1] = -1
    nib.save(nib.Nifti1Image(maps, mask.affine), tmp_path / "atlas-neg_probseg.nii.gz")
    code = main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01",
                 "--atlas", str(tmp_path / "atlas-neg_probseg.nii.gz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "negative weight(s)" in err[-1] and not list((tmp_path / "out").rglob("sub-01*"))
