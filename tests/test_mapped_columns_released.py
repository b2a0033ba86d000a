"""A column-major memory-mapped array (a dtseries' masked array) is read by the QC and the cleaning chunk by
chunk, and each chunk's pages leave the process once copied: the mapping's resident memory stays a few
chunks, not the file, and the numbers are those of a pass that keeps every page."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bidsapp.core import files, npy

MEASURE = r"""
import sys, numpy as np
from bidsapp.core import io, qc, signal
path, release = sys.argv[1], sys.argv[2] == "1"
if not release:
    qc.release_columns = signal.release_columns = lambda *a: None
def mapped_rss_kb():
    rss, inside = 0, False
    for line in open("/proc/self/smaps"):
        if "-" in line.split()[0] and len(line.split()) >= 5:
            inside = line.rstrip().endswith(path)
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1])
    return rss
X = np.load(path, mmap_mode="r")
n = X.shape[0]
op = signal.cleaning_operator(n, t_r=0.72, confounds=np.random.default_rng(0).normal(size=(n, 5)),
                              low_pass=0.08, high_pass=0.01)
before = qc.qc_before(X, fd=None, non_steady_state=None, kept=op.kept)
after_qc = mapped_rss_kb()
std = np.full(X.shape[1], np.nan)
cleaned = signal.apply_operator(X, op, standardize="zscore_sample", copy=False, column_std=std)
after_clean = mapped_rss_kb()
np.save(sys.argv[3], cleaned)
print(after_qc, after_clean, repr(float(before["TemporalSNRMedianBefore"])), repr(float(np.nansum(std))))
"""


@pytest.fixture(scope="module")
def column_major(tmp_path_factory):
    rng = np.random.default_rng(3)
    n, p = 240, 60000  # 57.6 MB of float32
    x = np.asfortranarray((1000 + rng.normal(0, 10, (n, p)).cumsum(axis=0) * 0.1).astype(np.float32))
    path = tmp_path_factory.mktemp("mapped") / "timeseries.npy"
    files.save_npy(x, path)
    return path, x.nbytes // 1024


def _measure(path, release: bool, out) -> list[str]:
    res = subprocess.run([sys.executable, "-c", MEASURE, str(path), "1" if release else "0", str(out)],
                         capture_output=True, text=True, check=True)
    return res.stdout.split()


def test_mapped_pages_released_with_the_same_numbers(column_major, tmp_path):
    path, size_kb = column_major
    kept = _measure(path, False, tmp_path / "kept.npy")
    released = _measure(path, True, tmp_path / "released.npy")
    assert int(kept[0]) > 0.9 * size_kb  # without releasing, the QC leaves the whole file mapped in
    assert int(released[0]) < 0.1 * size_kb and int(released[1]) < 0.1 * size_kb, (released, size_kb)
    assert kept[2:] == released[2:]  # tSNR and the columns' std: the same bits
    np.testing.assert_array_equal(np.load(tmp_path / "kept.npy"), np.load(tmp_path / "released.npy"))


def test_other_arrays_are_left_alone(column_major, tmp_path):
    path, _ = column_major
    for array in (np.load(path), np.load(path, mmap_mode="r+"), np.ascontiguousarray(np.load(path, mmap_mode="r"))):
        before = array[:, :100].copy()
        npy.release_columns(array, 0, 100)
        np.testing.assert_array_equal(array[:, :100], before)
    c_order = tmp_path / "c.npy"
    files.save_npy(np.ascontiguousarray(np.load(path)[:, :1000]), c_order)
    mapped = np.load(c_order, mmap_mode="r")
    npy.release_columns(mapped, 0, 10)  # row-major: the columns are not contiguous, nothing dropped
    np.testing.assert_array_equal(mapped, np.load(c_order))
