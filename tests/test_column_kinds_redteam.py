"""Column kinds tried as a user would (spheres, probabilistic maps): inputs that used to give silently wrong
names or a crash are refused in one line, before anything is written; a one-volume map is a map."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core.columns.maps import Maps, is_maps_image, map_names
from bidsapp.core.columns.spheres import read_seeds

SEED = 1717


def _run(tmp_path, rng, n_maps):
    """A small run (bold, mask) and n_maps non-negative Gaussian maps on its grid."""
    shape, n = (12, 13, 11), 40
    grid = np.indices(shape).astype(float)
    brain = sum(((g - (s - 1) / 2) / (0.4 * s)) ** 2 for g, s in zip(grid, shape)) <= 1
    data = np.where(brain[..., None], 800 + 300 * rng.normal(size=shape + (n,)), 0).astype(np.float32)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-18, -19, -15]
    centres = np.argwhere(brain)[rng.choice(int(brain.sum()), n_maps, replace=False)]
    maps = np.stack([np.exp(-sum((g - c) ** 2 for g, c in zip(grid, cen)) / (2 * 2.0 ** 2)) for cen in centres], -1)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    nib.save(nib.Nifti1Image(maps.astype(np.float32), affine), tmp_path / "maps.nii.gz")
    return data.astype(np.float64)[brain], maps[brain]


@pytest.mark.parametrize("case", range(4))
def test_label_table_must_name_each_map_once(tmp_path, case):
    """Seeded sweep over the number of maps: 1..n and 0..n-1 name the maps in order, a row 0 named Background
    (as dseg.tsv tables have) is neither shifted onto the first map nor counted as one, and a table of another
    size (fewer or more rows, a gap) is refused naming the file and the count, instead of naming maps map-<k>
    or dropping the extra names."""
    rng = np.random.default_rng(SEED + case)
    n = int(rng.integers(2, 7))
    names = [f"net{k}" for k in rng.permutation(50)[:n]]
    atlas = tmp_path / "maps.nii.gz"

    def table(rows):
        path = tmp_path / "labels.tsv"
        path.write_text("index\tname\n" + "".join(f"{i}\t{nm}\n" for i, nm in rows))
        return path

    assert map_names(atlas, table(zip(range(1, n + 1), names)), n) == names
    assert map_names(atlas, table(zip(range(n), names)), n) == names
    assert map_names(atlas, table([(0, "Background"), *zip(range(1, n + 1), names)]), n) == names
    for bad in ([*zip(range(1, n), names)],                       # one row missing
                [(0, "Background"), *zip(range(1, n), names)],    # 0..n-1 but row 0 is the background
                [*zip(range(1, n + 1), names), (n + 1, "extra")],  # a table of a larger atlas
                [*zip(range(1, n), names), (n + 1, names[-1])]):   # a gap
        with pytest.raises(ValueError, match=rf"labels\.tsv: the label table's indices .* do not match the {n} map"):
            map_names(atlas, table(bad), n)


def test_one_volume_float_atlas_is_a_map(tmp_path):
    """A 4D atlas with one volume of probabilities is fitted as a map (nilearn's NiftiMapsMasker on the same
    data, float64 least squares), not refused as 'integer labels'; one volume of integers stays labels."""
    rng = np.random.default_rng(SEED)
    X, M = _run(tmp_path, rng, 1)
    assert is_maps_image(tmp_path / "maps.nii.gz")
    img = nib.load(tmp_path / "maps.nii.gz")
    nib.save(nib.Nifti1Image(np.round(img.get_fdata() * 3).astype(np.int16), img.affine), tmp_path / "lab.nii.gz")
    assert not is_maps_image(tmp_path / "lab.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        space = Maps.build(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz", atlas_file=tmp_path / "maps.nii.gz")
    out = tmp_path / "x.npy"
    space.transform(tmp_path / "bold.nii.gz", out)
    ours = np.load(out).astype(np.float64)
    ref = np.linalg.lstsq(M, X, rcond=None)[0].T
    assert ours.shape == ref.shape == (X.shape[1], 1)
    assert float((np.abs(ours - ref) / ref.std(axis=0)).max()) <= 1e-5


def test_duplicate_seed_names_refused(tmp_path):
    """Two seeds with one name (or a name equal to an unnamed seed's seed-<row>) would give two columns that
    the tsv.gz header, the loader and dataset() cannot tell apart: refused naming both lines."""
    path = tmp_path / "seeds.tsv"
    path.write_text("x\ty\tz\tname\n0\t0\t0\tPCC\n10\t0\t0\tmPFC\n20\t0\t0\tPCC\n")
    with pytest.raises(ValueError, match=r"seeds\.tsv: lines 2 and 4 both name a seed 'PCC'"):
        read_seeds(path)
    path.write_text("x\ty\tz\tname\n0\t0\t0\tseed-2\n10\t0\t0\tn/a\n")
    with pytest.raises(ValueError, match="both name a seed 'seed-2'"):
        read_seeds(path)
    path.write_text("x\ty\tz\tname\tnetwork\n0\t0\t0\ta\tDMN\n10\t0\t0\tb\tDMN\n")
    assert read_seeds(path)[1] == ["a", "b"]


@pytest.mark.parametrize("kind", ["maps", "spheres"])
def test_cli_refuses_before_writing(demo, tmp_path, capsys, kind):
    """From the CLI: a maps label table of the wrong size and duplicate seed names are one line, exit 2,
    nothing of the run written (they were a silent rename and a crash inside the run before)."""
    from bidsapp.cli.run import main

    bids, _ = demo
    bold = next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-preproc_bold.nii.gz"))
    ref = nib.load(bold)
    if kind == "maps":
        maps = np.zeros(ref.shape[:3] + (3,), np.float32)
        for k in range(3):
            maps[6 + 2 * k:9 + 2 * k, 8:12, 7:10, k] = 0.5 + 0.1 * k
        nib.save(nib.Nifti1Image(maps, ref.affine), tmp_path / "atlas-x_probseg.nii.gz")
        (tmp_path / "labels.tsv").write_text("index\tname\n0\tBackground\n1\ta\n2\tb\n")
        extra = ["--atlas", str(tmp_path / "atlas-x_probseg.nii.gz"), "--atlas-labels", str(tmp_path / "labels.tsv")]
        message = "do not match the 3 map(s)"
    else:
        (tmp_path / "seeds.tsv").write_text("x\ty\tz\tname\n0\t0\t0\ta\n12\t0\t0\ta\n")
        extra = ["--spheres", str(tmp_path / "seeds.tsv")]
        message = "both name a seed 'a'"
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "1", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert message in err[-1]
    assert not out.exists() or not list(out.rglob("sub-01*"))


@pytest.mark.parametrize("case", ["float-3d-atlas", "table-without-index", "spheres-on-cifti"])
def test_more_bad_input_refused_before_the_run(demo, demo_outputs, tmp_path, capsys, case):
    """A 3D float atlas and a label table without ``index`` crashed inside the run (exit 1, a crash file);
    --spheres on a CIFTI run failed inside the plan with 'expected a NIfTI image, got Cifti2Image' (exit 1).
    Each is now one line, exit 2, naming the file or the run and the fix, nothing of the run written."""
    from bidsapp.cli.run import main

    bids, _ = demo
    bold = nib.load(next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-preproc_bold.nii.gz")))
    subject = ["--participant-label", "01", "--run", "1"]
    if case == "float-3d-atlas":
        prob = np.random.default_rng(SEED).uniform(0, 1, bold.shape[:3]).astype(np.float32)
        nib.save(nib.Nifti1Image(prob, bold.affine), tmp_path / "prob.nii.gz")
        extra, message = ["--atlas", str(tmp_path / "prob.nii.gz")], "a 3D atlas must hold integer labels"
    elif case == "table-without-index":
        labels = np.zeros(bold.shape[:3], np.int16)
        labels[5:10, 6:12, 5:10], labels[10:14, 6:12, 5:10] = 1, 2
        nib.save(nib.Nifti1Image(labels, bold.affine), tmp_path / "lab.nii.gz")
        (tmp_path / "lab.tsv").write_text("name\nA\nB\n")
        extra = ["--atlas", str(tmp_path / "lab.nii.gz"), "--atlas-labels", str(tmp_path / "lab.tsv")]
        message = "a label table needs the columns 'index' and 'name'"
    else:
        bids = demo_outputs / "bidsapp-demo-output" / "bids"
        (tmp_path / "seeds.tsv").write_text("x\ty\tz\n0\t0\t0\n")
        subject = ["--participant-label", "03", "--space", "fsLR", "--den", "91k"]
        extra, message = ["--spheres", str(tmp_path / "seeds.tsv")], "need a volume (NIfTI) run"
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", *subject, *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert message in err[-1]
    assert not out.exists() or not list(out.rglob("sub-0*"))
