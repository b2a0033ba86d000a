"""The pages a stream brings into the page cache are released behind it; pages cached before stay cached
(``bidsapp.core.page_cache``)."""

import hashlib
import mmap
import os

import numpy as np
import pytest

from bidsapp.core import io, page_cache


def _resident(path) -> np.ndarray:
    fd = os.open(path, os.O_RDONLY)
    try:
        return page_cache.resident_pages(fd)
    finally:
        os.close(fd)


def _evict(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.fixture
def released(monkeypatch) -> list[tuple[int, int]]:
    """The ranges (offset, length; 0: to the end) released with ``POSIX_FADV_DONTNEED`` from now on.

    What a reader releases is its own doing; which pages stay resident is also the kernel's (it evicts cached
    pages under memory pressure, as on a busy test machine), so tests of what must stay cached check the calls."""
    calls, fadvise = [], os.posix_fadvise

    def record(fd, offset, length, advice):
        if advice == os.POSIX_FADV_DONTNEED:
            calls.append((offset, length))
        return fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", record)
    return calls


def _pages(ranges, size: int) -> np.ndarray:
    """The pages of a ``size``-byte file that ``ranges`` cover."""
    pages = np.zeros(-(-size // mmap.PAGESIZE), bool)
    for offset, length in ranges:
        pages[offset // mmap.PAGESIZE:-(-(offset + length) // mmap.PAGESIZE) if length else None] = True
    return pages


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "bold.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 255, 48 << 20, dtype=np.uint8).tobytes())
    if _resident(path) is None:
        pytest.skip("no mincore / posix_fadvise here (Linux only)")
    _evict(path)
    if _resident(path).any():
        pytest.skip("this file system keeps files in memory (tmpfs): no page cache to release")
    return path


def _read_volumes(path, background, header: int, volume: int) -> str:
    """Read ``path`` as a volume stream does: a header, then volumes into one buffer (a new one per read for
    ``shared``, whose helper thread hashes the caller's buffer); the SHA-256 of the whole file."""
    with io.HashingReader(path, background=background) as fh:
        fh.read(header)
        buf = bytearray(volume)
        for _ in range((os.path.getsize(path) - header) // volume - 1):  # the rest: finish()
            assert fh.readinto(buf) == volume
            if background == "shared":
                buf = bytearray(volume)
        return fh.finish()


@pytest.mark.parametrize("background", [None, "shared", "copy"])
@pytest.mark.parametrize("header, volume", [(0, 3 << 20), (352, 1_301_300), (629_952, 8 << 20)])
def test_a_cold_file_is_hashed_whole_and_leaves_the_page_cache(data_file, background, header, volume):
    """Volume sizes and header lengths that are not multiples of the page cache's 2 MiB folios (a ``.nii``'s
    352-byte header, a dtseries' data offset) release every folio all the same."""
    expected = hashlib.sha256(data_file.read_bytes()).hexdigest()
    _evict(data_file)
    assert _read_volumes(data_file, background, header, volume) == expected
    assert not _resident(data_file).any()


def test_the_pages_cached_before_stay_cached_and_only_those(data_file, released):
    """A file cached in part (its second half read before): the read releases the first half only."""
    half, size = data_file.stat().st_size // 2, data_file.stat().st_size
    with open(data_file, "rb") as fh:
        fh.seek(half)
        expected_tail = fh.read()
    with io.HashingReader(data_file, background="copy") as fh:
        before = ~fh._behind._fresh  # the reader's own snapshot
        fh.read(1000)
        fh.finish()
    after = _resident(data_file)
    # the tail was cached (the kernel may have evicted a few of its pages since), the head was not
    assert before[half // mmap.PAGESIZE + 1:].mean() > 0.95 and not before[:half // mmap.PAGESIZE - 1].any()
    assert not (_pages(released, size) & before).any()  # no page cached before was released...
    assert not after[~before].any()  # ...and every page the read brought in was
    assert after[before].mean() > 0.95  # the kernel may evict a few pages under memory pressure, not the reader
    assert expected_tail  # the file was read, not just probed


def test_a_cached_file_stays_cached(data_file, released):
    expected = hashlib.sha256(data_file.read_bytes()).hexdigest()  # read: now in the page cache
    with io.HashingReader(data_file, background="copy") as fh:
        fresh = fh._behind._fresh  # None: every page was cached when the reader opened the file
        fh.read(1000)
        assert fh.finish() == expected
    # a page the kernel evicted in between is read again and released: that one only
    cached = np.ones_like(_resident(data_file)) if fresh is None else ~fresh
    assert not (_pages(released, data_file.stat().st_size) & cached).any()
    assert cached.mean() > 0.95
    assert _resident(data_file).mean() > 0.95


def test_the_snapshot_reads_nothing(data_file):
    """Asking which pages are cached does not bring any in (a probe by reading would: the next run would find
    them and judge the file cached)."""
    for _ in range(3):
        assert not _resident(data_file).any()


def test_nothing_is_released_where_the_cache_cannot_be_seen(data_file, released, monkeypatch):
    """Without mincore (not Linux), the file's pages are left as the read leaves them."""
    monkeypatch.setattr(page_cache, "_CALLS", None)
    with io.HashingReader(data_file) as fh:
        assert not fh._behind.active
        fh.finish()
    assert not released
    monkeypatch.setattr(page_cache, "_CALLS", page_cache._libc_calls())
    assert _resident(data_file).mean() > 0.95


def test_a_reader_that_reads_in_blocks_releases_as_it_goes(data_file):
    """Python's gzip (the fallback without isal) reads its source with ``read``, not ``readinto``: the pages
    behind it leave as they do for ``readinto``, before the read ends."""
    with io.HashingReader(data_file) as fh:
        while len(fh.read(1 << 20)) == 1 << 20 and fh._raw.tell() < (40 << 20):
            pass
        behind = (fh._raw.tell() - page_cache.LAG) // page_cache.ALIGN * page_cache.ALIGN  # the kernel reads ahead
        assert behind >= 16 << 20 and not _resident(data_file)[:behind // mmap.PAGESIZE].any()
        fh.finish()


def test_a_read_stopped_early_leaves_nothing_of_its_own(data_file):
    """A stream that fails half-way (a truncated volume, an interrupt) closes its reader: what it brought in,
    the last blocks and the read-ahead included, leaves with it."""
    with io.HashingReader(data_file, background="copy") as fh:
        fh.readinto(bytearray(20 << 20))
        assert _resident(data_file).any()
    assert not _resident(data_file).any()


def test_the_snapshot_by_windows_equals_the_whole(data_file, monkeypatch):
    """The file is mapped a window at a time (an address-space limit, as SGE's h_vmem, refuses one large map):
    the same snapshot whatever the window."""
    with open(data_file, "rb") as fh:
        fh.seek(5 << 20)
        fh.read(7 << 20)
    whole = _resident(data_file)
    monkeypatch.setattr(page_cache, "WINDOW", 3 << 20)
    np.testing.assert_array_equal(_resident(data_file), whole)
    assert whole.sum() > 0 and not whole.all()
