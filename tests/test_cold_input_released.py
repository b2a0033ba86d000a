"""A cold input is read once: the stream releases its page-cache pages behind the read; a cached one stays."""

import hashlib
import os

import numpy as np
import pytest

from bidsapp.core import io


def _resident_fraction(path, step: int = 1 << 16) -> float:
    """Share of the file's bytes that are in the page cache (each ``step`` read with ``RWF_NOWAIT``)."""
    fd, size, hit = os.open(path, os.O_RDONLY), os.path.getsize(path), 0
    try:
        for pos in range(0, size, step):
            try:
                hit += os.preadv(fd, [bytearray(min(step, size - pos))], pos, os.RWF_NOWAIT)
            except BlockingIOError:
                pass
    finally:
        os.close(fd)
    return hit / size


def _evict(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.fixture
def data_file(tmp_path):
    if not (hasattr(os, "RWF_NOWAIT") and hasattr(os, "posix_fadvise")):
        pytest.skip("needs preadv's RWF_NOWAIT and posix_fadvise (Linux)")
    path = tmp_path / "bold.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 255, 48 << 20, dtype=np.uint8).tobytes())
    _evict(path)
    if _resident_fraction(path) > 0.01:
        pytest.skip("this file system keeps files in memory (tmpfs): no page cache to release")
    return path


@pytest.mark.parametrize("background", [None, "shared", "copy"])
def test_a_cold_file_is_hashed_whole_and_leaves_the_page_cache(data_file, background):
    expected = hashlib.sha256(data_file.read_bytes()).hexdigest()
    _evict(data_file)
    buf = bytearray(3 << 20)  # a volume's size, not a multiple of the lag
    with io.HashingReader(data_file, background=background) as fh:
        assert fh.readinto(buf) == len(buf)
        if background == "shared":  # the helper thread hashes the caller's buffer: a new one per read
            buf = bytearray(len(buf))
        fh.readinto(buf)
        assert fh.finish() == expected
    left = _resident_fraction(data_file)
    assert left <= (io.RELEASE_LAG + (4 << 20)) / data_file.stat().st_size, left


def test_a_cached_file_stays_cached(data_file):
    expected = hashlib.sha256(data_file.read_bytes()).hexdigest()  # read: now in the page cache
    assert _resident_fraction(data_file) > 0.99
    with io.HashingReader(data_file, background="copy") as fh:
        fh.read(1000)
        assert fh.finish() == expected
    assert _resident_fraction(data_file) > 0.99


def test_a_file_of_unknown_state_is_not_released(tmp_path, monkeypatch):
    """Where the page cache cannot be probed (no ``RWF_NOWAIT``), nothing is released."""
    monkeypatch.delattr(os, "RWF_NOWAIT", raising=False)
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (1 << 20))
    with open(path, "rb") as fh:
        assert io._cached(fh.fileno())
