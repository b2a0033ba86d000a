"""``save_npy_hashed`` writes the bytes ``numpy.save`` writes and returns their SHA-256, computed while writing."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from bidsapp.core.npy import save_npy_hashed


@pytest.mark.parametrize("seed", range(12))
def test_same_bytes_as_numpy_save_and_their_sha256(tmp_path, seed):
    rng = np.random.default_rng(seed)
    ndim = int(rng.integers(0, 4))
    shape = tuple(int(v) for v in rng.integers(0, 40, size=ndim))
    dtype = rng.choice([np.float32, np.float64, np.int16, np.uint8, np.complex64, np.bool_])
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    if seed % 3 == 0 and ndim >= 2:
        array = np.asfortranarray(array)  # written in C order, as the cleaning node hands it over
    block = int(rng.integers(1, 64))  # pieces smaller than the array: the hash must follow the order written
    digest = save_npy_hashed(array, tmp_path / "a.npy", block=block)
    expected = io.BytesIO()
    np.save(expected, np.ascontiguousarray(array))
    written = (tmp_path / "a.npy").read_bytes()
    assert written == expected.getvalue()
    assert digest == hashlib.sha256(written).hexdigest()
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy", mmap_mode="r"), array)


def test_a_long_header_uses_format_2(tmp_path):
    array = np.zeros(3, dtype=[(f"field_{k:05d}", "<f4") for k in range(6000)])  # header > 64 KiB
    digest = save_npy_hashed(array, tmp_path / "a.npy")
    expected = io.BytesIO()
    np.save(expected, array)
    assert (tmp_path / "a.npy").read_bytes() == expected.getvalue()
    assert digest == hashlib.sha256(expected.getvalue()).hexdigest()


def test_objects_are_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(ValueError, match="a.npy: an array of Python objects"):
        save_npy_hashed(np.array([{}, []], dtype=object), tmp_path / "a.npy")
    assert list(tmp_path.iterdir()) == []
