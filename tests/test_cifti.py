"""bidsapp.core.cifti (dense CIFTI-2 header reader and writer) against nibabel and wb_command."""

from __future__ import annotations

import re
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes as ca

from bidsapp.core import cifti
from bidsapp.core import grayordinates as g
from bidsapp.demo import fslr_91k_brain_models
from tests.test_grayordinates import hcp_data, needs_wb

WB = shutil.which("wb_command")


@pytest.fixture(scope="module")
def bm91k():
    return fslr_91k_brain_models()


def _small_bm() -> ca.BrainModelAxis:
    """Surface and volume structures, a sparse vertex subset, an oblique affine."""
    mask = np.zeros((4, 5, 3), bool)
    mask[1:3, 2:4, 1] = True
    affine = np.array([[-2.0, 0.1, 0, 90], [0, 2, 0.2, -126], [0, 0, 2, -72], [0, 0, 0, 1]])
    return (ca.BrainModelAxis.from_surface(np.array([0, 3, 4, 9]), 12, "CortexLeft")
            + ca.BrainModelAxis.from_mask(mask, "thalamus_left", affine)
            + ca.BrainModelAxis.from_surface(np.arange(7), 7, "CortexRight"))


def _same_axis(ours, theirs) -> None:
    """bidsapp's brain models equal nibabel's axis, and so do each column's name and surface / volume flag."""
    assert type(ours) is cifti.BrainModels and ours == theirs and theirs == ours
    np.testing.assert_array_equal(ours.name, theirs.name)
    np.testing.assert_array_equal(ours.surface_mask, theirs.surface_mask)
    np.testing.assert_array_equal(ours.volume_mask, theirs.volume_mask)
    assert [(n, s.start, s.stop) for n, s, _ in ours.iter_structures()] == \
        [(n, s.start, s.stop) for n, s, _ in theirs.iter_structures()]


def test_brain_models_equal_nibabel_s_on_91k_grayordinates(tmp_path, bm91k):
    cifti.write_dense(tmp_path / "g.dscalar.nii", np.ones((1, len(bm91k)), np.float32), bm91k, names=["a"])
    _same_axis(cifti.read_header(tmp_path / "g.dscalar.nii").brain_models,
               nib.load(tmp_path / "g.dscalar.nii").header.get_axis(1))
    _same_axis(cifti.read_header(tmp_path / "g.dscalar.nii").brain_models[100:40000], bm91k[100:40000])


def test_header_equals_nibabel_on_a_real_hcp_file():
    path = hcp_data() / "S1200.sulc_MSMAll.32k_fs_LR.dscalar.nii"
    info = cifti.read_header(path)
    img = nib.load(path)
    _same_axis(info.brain_models, img.header.get_axis(1))
    assert info.shape == img.shape and info.series is None and info.row_type == "CIFTI_INDEX_TYPE_SCALARS"
    np.testing.assert_array_equal(np.asarray(info.memmap()) * info.slope + info.inter, img.get_fdata())


@pytest.mark.parametrize("dtype,slope,inter", [(np.float32, None, None), (np.float64, None, None),
                                               (np.int16, 0.5, 100.0), (">f4", None, None)])
def test_read_dtseries_equals_nibabel(tmp_path, dtype, slope, inter):
    bm = _small_bm()
    rng = np.random.default_rng(0)
    X = rng.normal(0, 50, (6, len(bm)))
    img = nib.Cifti2Image(X, header=(ca.SeriesAxis(1.5, 0.8, 6, "second"), bm))
    img.nifti_header.set_data_dtype(dtype)
    if slope is not None:
        img.nifti_header.set_slope_inter(slope, inter)
    path = tmp_path / "x.dtseries.nii"
    img.to_filename(path)
    ref = nib.load(path)
    X_ours, bm_ours, series = g.read_dtseries(path)
    assert bm_ours == ref.header.get_axis(1) == bm
    assert (series.start, series.step, series.size, series.unit) == (1.5, 0.8, 6, "SECOND")
    assert X_ours.dtype == np.float32
    np.testing.assert_allclose(X_ours, ref.get_fdata(), rtol=1e-7, atol=1e-7 * np.abs(X).max())


def test_series_exponent_is_applied(tmp_path):
    bm = _small_bm()
    series = nib.cifti2.Cifti2MatrixIndicesMap([0], "CIFTI_INDEX_TYPE_SERIES", number_of_series_points=3,
                                               series_exponent=-3, series_start=500, series_step=720,
                                               series_unit="SECOND")
    matrix = nib.cifti2.Cifti2Matrix()
    matrix.extend([series, bm.to_mapping(1)])
    header = nib.Cifti2Header(matrix)
    nib.Cifti2Image(np.zeros((3, len(bm)), np.float32), header=header).to_filename(tmp_path / "ms.dtseries.nii")
    s = cifti.read_header(tmp_path / "ms.dtseries.nii").series
    assert s.start == pytest.approx(0.5) and s.step == pytest.approx(0.72)


@pytest.mark.parametrize("layout", ["small", "91k"])
def test_written_files_read_back_with_nibabel(tmp_path, bm91k, layout):
    bm = _small_bm() if layout == "small" else bm91k
    rng = np.random.default_rng(1)
    values = rng.normal(size=(2, len(bm))).astype(np.float32)
    cifti.write_dense(tmp_path / "m.dscalar.nii", values, bm, names=["a", "b"])
    img = nib.load(tmp_path / "m.dscalar.nii")
    assert img.header.get_axis(0) == ca.ScalarAxis(["a", "b"]) and img.header.get_axis(1) == bm
    assert img.nifti_header["intent_code"] == 3006 and img.nifti_header["intent_name"] == b"ConnDenseScalar"
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), values)
    cifti.write_dense(tmp_path / "t.dtseries.nii", values, bm, series=(0.36, 0.72))
    img = nib.load(tmp_path / "t.dtseries.nii")
    assert img.header.get_axis(0) == ca.SeriesAxis(0.36, 0.72, 2, "second") and img.header.get_axis(1) == bm
    assert img.nifti_header["intent_code"] == 3002
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), values)
    header = cifti.read_header(tmp_path / "t.dtseries.nii")
    assert header.brain_models == bm  # and with ours
    cifti.write_dense(tmp_path / "c.dscalar.nii", values[:1], header, names=["copied"])  # brain models as they are
    img = nib.load(tmp_path / "c.dscalar.nii")
    assert img.header.get_axis(1) == bm and img.header.get_axis(0) == ca.ScalarAxis(["copied"])
    with pytest.raises(ValueError, match="do not match"):
        cifti.write_dense(tmp_path / "bad.dscalar.nii", values[:, :-1], header)


@needs_wb
def test_written_files_open_in_workbench(tmp_path, bm91k):
    w = np.random.default_rng(2).normal(size=(1, len(bm91k))).astype(np.float32)
    cifti.write_dense(tmp_path / "w.dscalar.nii", w, bm91k, names=["weights"])
    subprocess.run([WB, "-cifti-convert", "-to-text", str(tmp_path / "w.dscalar.nii"), str(tmp_path / "w.txt")],
                   check=True, capture_output=True)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "w.txt"), w[0], rtol=1e-5, atol=1e-6)
    cifti.write_dense(tmp_path / "t.dtseries.nii", np.vstack([w, w]), bm91k, series=(0.0, 0.72))
    info = subprocess.run([WB, "-file-information", str(tmp_path / "t.dtseries.nii")], check=True,
                          capture_output=True, text=True).stdout
    assert "Dense Data Series" in info and "0.72" in info and "91282" in info


def test_errors_name_the_file(tmp_path):
    nifti1 = tmp_path / "x.nii"
    nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)).to_filename(nifti1)
    with pytest.raises(ValueError, match=r"x\.nii: not a NIfTI-2"):
        cifti.read_header(nifti1)
    plain2 = tmp_path / "p.nii"
    nib.Nifti2Image(np.zeros((2, 2, 2), np.float32), np.eye(4)).to_filename(plain2)
    with pytest.raises(ValueError, match=r"p\.nii: not a CIFTI-2 dense file"):
        cifti.read_header(plain2)
    bm = _small_bm()
    full = tmp_path / "full.dtseries.nii"
    cifti.write_dense(full, np.ones((5, len(bm)), np.float32), bm, series=(0, 1))
    cut = tmp_path / "cut.dtseries.nii"
    cut.write_bytes(full.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"cut\.dtseries\.nii: the file is truncated"):
        g.read_dtseries(cut)


def test_dlabel_written_here_equals_nibabels(tmp_path, bm91k):
    yeo = np.load(hcp_data() / "yeo7.npz")
    labels = yeo["map_all"].astype(int)
    names = {int(k): str(n) for k, n in zip(yeo["ids"], yeo["labels"]) if int(k)}
    g.write_dlabel(tmp_path / "ours.dlabel.nii", labels, bm91k, names)
    ours, ref = nib.load(tmp_path / "ours.dlabel.nii"), g.to_dlabel(labels, bm91k, names)
    assert ours.header.get_axis(0) == ref.header.get_axis(0) and ours.header.get_axis(1) == bm91k
    assert ours.nifti_header["intent_code"] == 3007
    np.testing.assert_array_equal(ours.get_fdata()[0], labels)
    back, back_names = g.read_dlabel(tmp_path / "ours.dlabel.nii", bm91k)
    np.testing.assert_array_equal(back, labels)
    assert back_names == {k: v for k, v in names.items() if k in set(labels.tolist())}
    with pytest.raises(ValueError, match=r"m\.dscalar\.nii: not a dense label file"):
        cifti.write_dense(tmp_path / "m.dscalar.nii", np.ones((1, len(bm91k)), np.float32), bm91k)
        g.read_dlabel(tmp_path / "m.dscalar.nii", bm91k)


@needs_wb
def test_dlabel_written_here_opens_in_workbench(tmp_path):
    bm = _small_bm()
    g.write_dlabel(tmp_path / "x.dlabel.nii", np.arange(len(bm)) % 3, bm, {1: "one", 2: "two"})
    info = subprocess.run([WB, "-file-information", str(tmp_path / "x.dlabel.nii")], check=True,
                          capture_output=True, text=True).stdout
    assert "Dense Label" in info and re.search(r"Maps with LabelTable: +true", info)


@pytest.mark.parametrize("slope", [0.0, np.nan])
def test_integer_file_whose_slope_means_no_scaling(tmp_path, slope):
    """scl_slope 0 or NaN means 'no scaling' (NIfTI): read as stored, as nibabel does."""
    bm = _small_bm()
    X = np.arange(3 * len(bm)).reshape(3, len(bm)) - 20
    img = nib.Cifti2Image(X.astype(np.int16), header=(ca.SeriesAxis(0, 2.0, 3, "second"), bm))
    img.nifti_header.set_data_dtype(np.int16)
    path = tmp_path / "i16.dtseries.nii"
    img.to_filename(path)
    raw = bytearray(path.read_bytes())  # write the slope field (offset 176, float64) as given
    raw[176:184] = np.array([slope], "<f8").tobytes()
    path.write_bytes(bytes(raw))
    np.testing.assert_array_equal(g.read_dtseries(path)[0], X)


def test_complex_cifti_is_refused(tmp_path):
    bm = _small_bm()
    path = tmp_path / "c.dtseries.nii"
    cifti.write_dense(path, np.ones((3, 2 * len(bm)), np.float32)[:, ::2], bm, series=(0, 2.0))
    raw = bytearray(path.read_bytes())  # datatype (offset 12) NIFTI_TYPE_COMPLEX64, bitpix (14) 64
    raw[12:16] = np.array([32, 64], "<i2").tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"c\.dtseries\.nii: data type complex64 is not a real number type"):
        cifti.read_header(tmp_path / "c.dtseries.nii")


@pytest.mark.parametrize("damage, what", [
    (lambda m: m[1].set("IndexOffset", str(int(m[1].get("IndexOffset")) + 1)), "leave gaps or overlap"),
    (lambda m: setattr(m[0].find("VertexIndices"), "text", "0 3 4"), "do not match IndexCount 4"),
    (lambda m: m[2].set("ModelType", "CIFTI_MODEL_TYPE_BLOB"), "has ModelType CIFTI_MODEL_TYPE_BLOB"),
    (lambda m: m[0].set("BrainStructure", "CIFTI_STRUCTURE_NOWHERE"), "not a valid CIFTI-2 file"),
    (lambda m: m[2].set("BrainStructure", "CIFTI_STRUCTURE_CORTEX_LEFT"), "has more than one brain model"),
    (lambda m: setattr(m[0].find("VertexIndices"), "text", "0 3 4 12"), "vertex 12 is outside its 12-vertex"),
    (lambda m: setattr(m[0].find("VertexIndices"), "text", "0 3 3 9"), "a vertex is listed twice"),
    (lambda m: setattr(m[0].find("VertexIndices"), "text", "0 -3 4 9"), "vertex -3 is outside its 12-vertex"),
    (lambda m: setattr(m[0].find("VertexIndices"), "text", "0 3 4 99999999999999999999"), "not integers of a valid"),
    (lambda m: m[0].attrib.pop("SurfaceNumberOfVertices"), "SurfaceNumberOfVertices None is not a positive"),
    (lambda m: m[0].set("SurfaceNumberOfVertices", "many"), "SurfaceNumberOfVertices 'many' is not a positive"),
    (lambda m: m[1].attrib.pop("IndexCount"), "XML header is malformed"),
    (lambda m: setattr(m[1].find("VoxelIndicesIJK"), "text", " ".join(
        m[1].find("VoxelIndicesIJK").text.split()[:3] * 2 + m[1].find("VoxelIndicesIJK").text.split()[6:])),
     "a voxel is listed twice"),
    (lambda m: setattr(m[1].find("VoxelIndicesIJK"), "text", "9 2 1 " + " ".join(
        m[1].find("VoxelIndicesIJK").text.split()[3:])), r"outside the volume \(4, 5, 3\)"),
])
def test_malformed_brain_models_are_one_clear_error(tmp_path, damage, what):
    bm = _small_bm()
    cifti.write_dense(tmp_path / "ok.dtseries.nii", np.ones((2, len(bm)), np.float32), bm, series=(0, 1.0))
    info = cifti.read_header(tmp_path / "ok.dtseries.nii")
    damage(info.columns_xml.findall("BrainModel"))
    cifti.write_dense(tmp_path / "bad.dtseries.nii", np.ones((2, len(bm)), np.float32), info, series=(0, 1.0))
    with pytest.raises(ValueError, match=rf"bad\.dtseries\.nii: .*{what}"):
        g.read_dtseries(tmp_path / "bad.dtseries.nii")


@pytest.mark.parametrize("damage, what", [
    (lambda v, t: v.attrib.pop("VolumeDimensions"), "VolumeDimensions None is not three positive integers"),
    (lambda v, t: v.set("VolumeDimensions", "4,5"), "VolumeDimensions '4,5' is not three positive integers"),
    (lambda v, t: v.set("VolumeDimensions", "4,5.5,3"), "VolumeDimensions '4,5.5,3' is not three"),
    (lambda v, t: setattr(t, "text", " ".join(t.text.split()[:12])), "its Transformation.* is not 16 numbers"),
    (lambda v, t: t.set("MeterExponent", "milli"), "its Transformation.* an integer MeterExponent"),
])
def test_malformed_volume_grids_are_one_clear_error(tmp_path, damage, what):
    """The grid of a CIFTI file's voxel brain models, malformed: one line naming the file (were raw Python errors:
    AttributeError, numpy's broadcast message)."""
    bm = _small_bm()
    cifti.write_dense(tmp_path / "ok.dtseries.nii", np.ones((2, len(bm)), np.float32), bm, series=(0, 1.0))
    info = cifti.read_header(tmp_path / "ok.dtseries.nii")
    volume = info.columns_xml.find("Volume")
    damage(volume, volume.find("TransformationMatrixVoxelIndicesIJKtoXYZ"))
    cifti.write_dense(tmp_path / "bad.dtseries.nii", np.ones((2, len(bm)), np.float32), info, series=(0, 1.0))
    with pytest.raises(ValueError, match=rf"bad\.dtseries\.nii: {what}.*; not a valid CIFTI-2 file"):
        g.read_dtseries(tmp_path / "bad.dtseries.nii")


def test_an_unchanged_file_s_header_is_read_once(tmp_path, monkeypatch):
    """Steps of one run reading the same file share its header and brain models; a file written again is read
    again (another inode), as is one changed in place (another size)."""
    bm = _small_bm()
    values = np.ones((2, len(bm)), np.float32)
    path = tmp_path / "m.dscalar.nii"
    cifti.write_dense(path, values, bm, names=["a", "b"])
    built = []
    monkeypatch.setattr(cifti, "_brain_models", lambda *a, _f=cifti._brain_models: built.append(1) or _f(*a))
    first = cifti.read_header(path)
    assert cifti.read_header(str(path)) is first and first.brain_models == bm and first.brain_models == bm
    assert len(built) == 1
    cifti.write_dense(path, values[:1], bm, names=["only"])  # replaced: a new file
    again = cifti.read_header(path)
    assert again is not first and again.shape == (1, len(bm))
    with open(path, "ab") as fh:  # appended in place: the size tells
        fh.write(b"\0" * 8)
    assert cifti.read_header(path) is not again


def test_a_slice_of_brain_models_owns_its_names(bm91k, tmp_path):
    """As nibabel's: a slice's names are its own array, not a view of the file's axis."""
    cifti.write_dense(tmp_path / "g.dscalar.nii", np.ones((1, len(bm91k)), np.float32), bm91k, names=["a"])
    whole = cifti.read_header(tmp_path / "g.dscalar.nii").brain_models
    part = whole[10:20]
    assert not np.shares_memory(part.name, whole.name) and part == bm91k[10:20]
