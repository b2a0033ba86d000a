"""A dtseries' masked array is written a row per volume (C order), as a volume run's: the cleaning node then
cleans it in its own file, in place, instead of writing a second array of its size into new pages.

The file stores each grayordinate's series in turn (Fortran order); :func:`bidsapp.core.npy.columns_to_npy`
transposes it block by block while reading it once (its SHA-256 from the same read). These tests check the
values against nibabel's reading for blocks that do not divide the columns, the digest, a truncated file, and
that the whole participant run cleans the dtseries in place with the same values as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp import demo
from bidsapp.core import grayordinates as go
from bidsapp.core import npy
from bidsapp.core.files import sha256sum
from bidsapp.core.io import ReadDigest


@pytest.fixture(scope="module")
def gray_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("gray") / "bids"
    demo.make_dataset(root, n_volumes=60, grayordinates=True)
    return root


def _dtseries(root: Path) -> Path:
    return next(root.rglob("sub-03_*den-91k_bold.dtseries.nii"))


@pytest.mark.parametrize("block", [1 << 12, 60 * 4 * 7 + 3, 1 << 16, 1 << 23])
def test_rows_equal_nibabel_for_any_block(gray_demo, tmp_path, monkeypatch, block):
    """Blocks of one column, of 7 columns and a few bytes, of several columns, of the whole file: the same
    C-order array as nibabel's, and the file's SHA-256."""
    monkeypatch.setattr(npy, "COLUMN_BLOCK_BYTES", block)
    src = _dtseries(gray_demo)
    digest = ReadDigest()
    _, n_bad = go.write_run_array(src, None, tmp_path / "x.npy", digest=digest)
    out = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert n_bad == 0 and out.flags.c_contiguous and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.asanyarray(nib.load(src).dataobj))
    assert digest.hexdigest == sha256sum(src)
    go.write_run_array(src, None, tmp_path / "y.npy")  # no digest: the same bytes
    assert (tmp_path / "x.npy").read_bytes() == (tmp_path / "y.npy").read_bytes()


def test_columns_to_npy_transposes_a_random_layout(tmp_path, monkeypatch):
    """Odd shapes, blocks that end mid-way through the columns, an offset: row i, column j is value j * n + i
    of the data."""
    rng = np.random.default_rng(7)
    for n, m, block in [(1, 5, 4), (5, 1, 8), (67, 129, 67 * 4 * 3), (130, 77, 1 << 16), (3, 1000, 100)]:
        monkeypatch.setattr(npy, "COLUMN_BLOCK_BYTES", block)
        data = rng.normal(size=(m, n)).astype(np.float32)  # column after column
        src = tmp_path / f"src-{n}-{m}.bin"
        head = bytes(rng.integers(0, 255, 37, dtype=np.uint8))
        src.write_bytes(head + data.tobytes() + b"tail")
        digest = ReadDigest()
        npy.columns_to_npy(src, len(head), np.float32, (n, m), tmp_path / "out.npy", digest=digest)
        out = np.load(tmp_path / "out.npy")
        assert out.shape == (n, m) and out.flags.c_contiguous
        np.testing.assert_array_equal(out, data.T)
        assert digest.hexdigest == sha256sum(src)


def test_truncated_dtseries_is_one_clear_error_and_no_file(gray_demo, tmp_path):
    src = _dtseries(gray_demo)
    cut = tmp_path / "cut.dtseries.nii"
    cut.write_bytes(src.read_bytes()[:-1000])
    info = go.dtseries_header(src)
    data = int(np.prod(info.shape)) * 4
    assert src.stat().st_size == info.offset + data  # the data run to the end of the file
    with pytest.raises(ValueError, match=rf"cut\.dtseries\.nii: the file is truncated \({data - 1000} of {data} data "
                                         r"bytes\); copy it again"):
        npy.columns_to_npy(cut, info.offset, np.float32, info.shape, tmp_path / "x.npy", digest=ReadDigest())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.dtseries.nii"]  # no .npy, no temporary


def test_participant_run_cleans_the_dtseries_in_place(gray_demo, tmp_path):
    """The whole run: the masked array is C order, so the cleaning node cleans a copy of it in place (with a
    kept work folder; without one it takes the file itself), not into a second, new array; the cleaned array
    equals the same cleaning of nibabel's reading."""
    from bidsapp.cli.run import main
    from bidsapp.core import signal

    out, work = tmp_path / "out", tmp_path / "work"
    code = main([str(gray_demo), str(out), "participant", "--participant-label", "03", "--space", "fsLR",
                 "--den", "91k", "--denoise", "none", "--confounds", "trans_x", "rot_z", "--high-pass", "0.01",
                 "--low-pass", "0.1", "--dummy-scans", "0", "--plugin", "Linear", "--work-dir", str(work),
                 "--surface", "none"])
    assert code == 0
    (masked,) = [np.load(p, mmap_mode="r") for p in work.rglob("timeseries.npy")]
    assert masked.flags.c_contiguous and masked.shape == (60, 91282)
    got = np.load(next(out.rglob("*space-fsLR_den-91k*_timeseries.npy")))
    src = _dtseries(gray_demo)
    meta = json.loads(next(out.rglob("*space-fsLR_den-91k*_timeseries.json")).read_text())
    confounds = np.genfromtxt(next(gray_demo.rglob("sub-03_*desc-confounds_timeseries.tsv")), delimiter="\t",
                              names=True, filling_values=np.nan)
    conf = np.column_stack([confounds["trans_x"], confounds["rot_z"]])
    want = signal.clean(np.asanyarray(nib.load(src).dataobj, dtype=np.float64), t_r=meta["RepetitionTime"],
                        detrend=True, standardize="zscore_sample", confounds=conf, low_pass=0.1, high_pass=0.01)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max())


def test_little_room_writes_the_file_column_major_through_write(gray_demo, tmp_path, monkeypatch):
    """Without room for the array plus the margin (a copy-on-write filesystem allocates under a map, where a
    full disk is a SIGBUS), the file's bytes are written as they are (column-major) through ``write()``: the
    same values and digest; the cleaning node then reads it by column chunks."""
    monkeypatch.setattr(go, "has_room", lambda folder, nbytes: False)
    src = _dtseries(gray_demo)
    digest = ReadDigest()
    go.write_run_array(src, None, tmp_path / "x.npy", digest=digest)
    out = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert out.flags.f_contiguous and not out.flags.c_contiguous
    np.testing.assert_array_equal(out, np.asanyarray(nib.load(src).dataobj))
    assert digest.hexdigest == sha256sum(src)


def test_columns_to_npy_of_no_rows_or_no_columns(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"head" + b"tail")
    for shape in [(0, 5), (5, 0)]:
        digest = ReadDigest()
        npy.columns_to_npy(src, 4, np.float32, shape, tmp_path / "out.npy", digest=digest)
        assert np.load(tmp_path / "out.npy").shape == shape
        assert digest.hexdigest == sha256sum(src)
