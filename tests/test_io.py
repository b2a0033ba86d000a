import gzip

import nibabel as nib
import numpy as np
import pytest

from bidsapp.core.files import atomic_path
from bidsapp.core.io import iter_volumes, mean_volume
from bidsapp.core.tsv import read_tsv, write_tsv
from tests.conftest import write_bold


def _stack(path):
    return np.stack([v.copy() for _, v in iter_volumes(path)], axis=-1)


@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_iter_volumes_matches_nibabel(tmp_path, small_bold, ext):
    _, _, data = small_bold
    path = write_bold(tmp_path / f"b{ext}", data)
    np.testing.assert_array_equal(_stack(path), np.asanyarray(nib.load(path).dataobj))


def test_iter_volumes_scaled_int16(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 3000, (5, 6, 7, 4))
    path = write_bold(tmp_path / "s.nii.gz", data, dtype=np.int16, slope=0.5)
    np.testing.assert_allclose(_stack(path), nib.load(path).get_fdata(), rtol=1e-6)


def test_scaled_int16_statistics_in_float64(tmp_path):
    """Scaled integers are scaled in float64 and their mean accumulated in float64."""
    from nilearn.image.image import compute_mean

    rng = np.random.default_rng(5)
    data = rng.integers(20000, 32000, (6, 5, 4, 300))
    path = write_bold(tmp_path / "s.nii.gz", data, dtype=np.int16, slope=0.0371)
    exact = nib.load(path).get_fdata()
    np.testing.assert_array_equal(_stack(path), exact.astype(np.float32))  # one rounding, from float64
    ref, _ = compute_mean(str(path))
    assert np.abs(mean_volume(path) - exact.mean(axis=-1)).max() < 1e-9
    assert np.abs(mean_volume(path) - ref).max() < 1e-9


def test_read_tsv_ignores_byte_order_mark(tmp_path):
    p = tmp_path / "bom.tsv"
    p.write_bytes("\ufeffonset\tduration\n1\t2\n".encode())
    assert read_tsv(p) == (["onset", "duration"], [["1", "2"]])


def test_big_endian(tmp_path):
    data = np.arange(2 * 3 * 4 * 5, dtype=">f4").reshape(2, 3, 4, 5)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_data_dtype(">f4")
    path = tmp_path / "be.nii"
    nib.save(img, path)
    np.testing.assert_array_equal(_stack(path), np.asanyarray(nib.load(path).dataobj))


def test_truncated_gzip_is_a_clear_error(tmp_path, small_bold):
    path, _, _ = small_bold
    raw = path.read_bytes()
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated|corrupt"):
        _stack(bad)


def test_truncated_uncompressed(tmp_path, small_bold):
    _, _, data = small_bold
    path = write_bold(tmp_path / "b.nii", data)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ValueError, match="truncated"):
        _stack(path)


def test_3d_where_4d_expected(tmp_path):
    p = tmp_path / "three.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), np.eye(4)), p)
    with pytest.raises(ValueError, match="expected a 4D BOLD series"):
        list(iter_volumes(p))


def test_mean_volume_equals_nilearn(small_bold):
    from nilearn.image.image import compute_mean

    path, _, _ = small_bold
    ref, _ = compute_mean(str(path))
    np.testing.assert_array_equal(mean_volume(path), ref)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.npy"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_tsv_roundtrip(tmp_path):
    write_tsv(tmp_path / "a.tsv.gz", {"a": [1, 2], "b": [np.nan, 0.5]}, gzip_=True)
    with gzip.open(tmp_path / "a.tsv.gz", "rt") as fh:
        assert fh.read().splitlines() == ["a\tb", "1\tn/a", "2\t0.5"]
    write_tsv(tmp_path / "a.tsv", {"a": ["x"]})
    assert read_tsv(tmp_path / "a.tsv") == (["a"], [["x"]])
