"""io.map_writable: a read-write map's pages made writable in one call, no value changed (issue 19)."""

from __future__ import annotations

import resource

import numpy as np
import pytest

from bidsapp.core.npy import map_writable

#: bytes of a page (the smallest on x86-64 and ARM64)
PAGE = 4096


def _page_cached_map(tmp_path, mode: str = "r+") -> np.memmap:
    """A 16 MB float32 .npy written with write() (its pages in the page cache, as the masking node leaves
    the array the cleaning takes), mapped with ``mode``."""
    path = tmp_path / "array.npy"
    np.save(path, np.arange(4 << 20, dtype=np.float32).reshape(1024, 4096))
    return np.load(path, mmap_mode=mode)


def _faults_writing_every_page(array: np.ndarray) -> int:
    """Minor page faults of this thread while one value of every page of ``array`` is written."""
    flat = array.reshape(-1)
    step = PAGE // array.itemsize
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    flat[::step] += 1
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before


def _supported(tmp_path) -> None:
    if not map_writable(_page_cached_map(tmp_path)):
        pytest.skip("this system has no MADV_POPULATE_WRITE (Linux >= 5.14 on x86-64 / ARM64)")


def test_the_values_and_the_file_are_unchanged(tmp_path):
    _supported(tmp_path)
    array = _page_cached_map(tmp_path)
    expected = np.array(array)
    assert map_writable(array)
    assert np.array_equal(array, expected)
    assert np.array_equal(np.load(tmp_path / "array.npy"), expected)


def test_writing_every_page_then_takes_no_fault(tmp_path):
    """Without it, the first write to each page (or each large folio of the page cache) faults."""
    _supported(tmp_path)
    without = _faults_writing_every_page(_page_cached_map(tmp_path))
    if without == 0:
        pytest.skip("this kernel maps the pages writable without a fault: nothing to save")
    array = _page_cached_map(tmp_path)
    assert map_writable(array)
    assert _faults_writing_every_page(array) <= without // 10


@pytest.mark.parametrize("make", ["read-only map", "copy-on-write map", "array"])
def test_anything_but_a_read_write_map_is_left_alone(tmp_path, make):
    array = {"read-only map": lambda: _page_cached_map(tmp_path, "r"),
             "copy-on-write map": lambda: _page_cached_map(tmp_path, "c"),
             "array": lambda: np.zeros((64, 64))}[make]()
    assert map_writable(array) is False
