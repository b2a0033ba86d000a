"""The BOLD is read once: the masking node's stream computes the file's SHA-256 from the bytes it reads and
records it in the checksum cache, and the provenance node (after it) finds it there.

The digest must be the file's real ``sha256sum`` byte for byte (the gzip's compressed bytes, a plain file's
header and trailing bytes, a dtseries' header and data), and it is cached only when the file is the same after
the read as before: a file rewritten between runs (same size, mtime restored) or changed while it is read gets
its checksum from a fresh read, never from the stream.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp import demo
from bidsapp.core import grayordinates as go
from bidsapp.core import io, npy
from bidsapp.core.files import sha256sum
from bidsapp.core.io import ReadDigest
from bidsapp.interfaces.provenance import run_started
from bidsapp.outputs import checksums
from bidsapp.outputs.checksums import ChecksumCache


def _nifti_bytes(rng: np.random.Generator, dtype: str, shape: tuple, scaled: bool, extension: bool) -> bytes:
    """A 4D NIfTI-1 file's bytes: random values of ``dtype``, optionally scaled and with a header extension
    (so the data start after byte 352)."""
    data = (rng.normal(100, 20, shape)).astype(dtype)
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    img.header.set_data_dtype(dtype)
    if scaled:
        img.header.set_slope_inter(0.5, 3.0)
    if extension:
        img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"x" * int(rng.integers(1, 3000))))
    return img.to_bytes()


def _write_case(folder: Path, seed: int) -> Path:
    """A random 4D file: .nii or .nii.gz, any of four dtypes, scaling, an extension, and bytes after the last
    volume (in the decompressed stream of a .nii.gz, or at the end of a .nii)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(3, 14, 3)) + (int(rng.integers(2, 12)),)
    dtype = str(rng.choice(["float32", "int16", "float64", "uint8"]))
    raw = _nifti_bytes(rng, dtype, shape, scaled=bool(rng.integers(2)) and dtype != "uint8",
                       extension=bool(rng.integers(2)))
    raw += rng.bytes(int(rng.choice([0, 1, 4095, 70000])))  # trailing bytes the volumes do not use
    if rng.integers(2):
        path = folder / f"case{seed}.nii.gz"
        path.write_bytes(gzip.compress(raw, compresslevel=int(rng.integers(1, 10))))
    else:
        path = folder / f"case{seed}.nii"
        path.write_bytes(raw)
    return path


@pytest.mark.parametrize("seed", range(16))
def test_stream_digest_is_the_files_sha256_and_values_unchanged(tmp_path, seed):
    path = _write_case(tmp_path, seed)
    digest = ReadDigest()
    with_digest = [v.copy() for _, v in io.iter_volumes(path, digest=digest)]
    without = [v.copy() for _, v in io.iter_volumes(path)]
    assert digest.hexdigest == sha256sum(path)
    assert len(with_digest) == nib.load(path).shape[3]
    for a, b in zip(with_digest, without):
        np.testing.assert_array_equal(a, b)


def test_large_plain_and_gzip_runs_hash_exactly(tmp_path):
    """Volumes larger than the reader's blocks (8 MiB), so the hashing thread and the gzip reader's read-ahead
    both cross volume boundaries."""
    rng = np.random.default_rng(7)
    data = rng.normal(0, 1, (64, 64, 40, 24)).astype(np.float32)  # 655 kB volumes, 15.7 MB in all
    img = nib.Nifti1Image(data, np.eye(4))
    for name in ("big.nii", "big.nii.gz"):
        path = tmp_path / name
        nib.save(img, path)
        digest = ReadDigest()
        mean = io.MeanAccumulator.of(path)
        for _ in io.iter_volumes(path, digest=digest, mean=mean):
            pass
        assert digest.hexdigest == sha256sum(path), name
        np.testing.assert_allclose(mean.mean(), data.mean(axis=3), rtol=1e-5, atol=1e-6)


def test_gzip_whose_stream_goes_on_after_the_last_volume(tmp_path):
    """40 MB of (incompressible) bytes after the volumes: the decompression thread stops reading once the volumes
    are out, and the rest of the compressed file is hashed after it."""
    rng = np.random.default_rng(11)
    raw = _nifti_bytes(rng, "float32", (10, 10, 10, 5), False, False) + rng.bytes(40 << 20)
    path = tmp_path / "tail.nii.gz"
    path.write_bytes(gzip.compress(raw, compresslevel=1))
    digest = ReadDigest()
    for _ in io.iter_volumes(path, digest=digest):
        pass
    assert digest.hexdigest == sha256sum(path)


def test_a_stream_stopped_early_gives_no_digest(tmp_path):
    path = _write_case(tmp_path, 3)
    digest = ReadDigest()
    stream = io.iter_volumes(path, digest=digest)
    next(stream)
    stream.close()
    assert digest.hexdigest is None


def test_corrupt_gzip_is_refused_and_gives_no_digest(tmp_path):
    path = tmp_path / "bad.nii.gz"
    good = gzip.compress(_nifti_bytes(np.random.default_rng(1), "float32", (8, 8, 8, 30), False, False))
    path.write_bytes(good[: len(good) // 2])
    digest = ReadDigest()
    with pytest.raises(ValueError, match="truncated"):
        for _ in io.iter_volumes(path, digest=digest):
            pass
    assert digest.hexdigest is None


@pytest.fixture(scope="module")
def gray_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("gray") / "bids"
    demo.make_dataset(root, n_volumes=60, grayordinates=True)
    return root


def test_dtseries_copy_hashes_the_whole_file(gray_demo, tmp_path):
    bold = next(gray_demo.rglob("sub-03_*den-91k_bold.dtseries.nii"))
    digest = ReadDigest()
    bm, n_bad = go.write_run_array(bold, None, tmp_path / "hashed.npy", digest=digest)
    go.write_run_array(bold, None, tmp_path / "kernel.npy")
    assert digest.hexdigest == sha256sum(bold)
    assert (tmp_path / "hashed.npy").read_bytes() == (tmp_path / "kernel.npy").read_bytes()
    X, _, _ = go.read_run(bold)
    np.testing.assert_array_equal(np.load(tmp_path / "hashed.npy"), X)


def test_dtseries_nibabel_decodes_gives_no_digest(gray_demo, tmp_path):
    """A float64 dtseries is decoded by nibabel (no copy of the bytes): the stream cannot vouch for the file."""
    src = next(gray_demo.rglob("sub-03_*den-91k_bold.dtseries.nii"))
    img = nib.load(src)
    path = tmp_path / "f64.dtseries.nii"
    out = nib.Cifti2Image(np.asanyarray(img.dataobj).astype(np.float64), header=img.header)
    out.set_data_dtype(np.float64)
    out.to_filename(path)
    digest = ReadDigest()
    go.write_run_array(path, None, tmp_path / "x.npy", digest=digest)
    assert digest.hexdigest is None


def test_gifti_pair_gives_no_digest(gray_demo, tmp_path):
    """A GIFTI pair is parsed by nibabel: its checksums are the provenance node's."""
    left = next(gray_demo.rglob("sub-03_*hemi-L_space-fsaverage5_bold.func.gii"))
    right = next(gray_demo.rglob("sub-03_*hemi-R_space-fsaverage5_bold.func.gii"))
    digest = ReadDigest()
    go.write_run_array(left, right, tmp_path / "x.npy", digest=digest)
    assert digest.hexdigest is None


def _touch_gzip_header(path: Path, restore_times: bool) -> None:
    """Change the gzip header's MTIME field: other bytes, same size, same values; with ``restore_times``, the
    file's mtime is set back (only its ctime tells)."""
    st = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(4)
        old = fh.read(4)
        fh.seek(4)
        fh.write(bytes((b + 1) % 256 for b in old))
    if restore_times:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_record_read_refuses_a_file_changed_during_the_read(tmp_path):
    path = _write_case(tmp_path, 0)
    cache = ChecksumCache(tmp_path / "cache")
    before = os.stat(path)
    digest = sha256sum(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # any write or utime changes ctime
    assert not cache.record_read(path, digest, before)
    assert cache.cached(path) is None
    assert not cache.record_read(path, None, os.stat(path))  # a stream that did not hash the whole file
    assert cache.record_read(path, digest, os.stat(path)) and cache.cached(path) == digest


# -- the participant run, end to end -------------------------------------------------------------------------------

def _run(bids: Path, out: Path, work: Path, label: str = "01", *extra: str) -> None:
    from bidsapp.cli.run import main

    code = main([str(bids), str(out), "participant", "--participant-label", label, "--run", "1",
                 "--plugin", "Linear", "--work-dir", str(work), *extra])
    assert code == 0


def _hashed_by_rereading(monkeypatch) -> list[str]:
    """Names of the files the checksum cache reads again to hash them (``sha256sum``)."""
    seen: list[str] = []
    inner = checksums.sha256sum

    def recording(path, *args, **kwargs):
        seen.append(Path(path).name)
        return inner(path, *args, **kwargs)

    monkeypatch.setattr(checksums, "sha256sum", recording)
    return seen


def _bold_source(out: Path, pattern: str) -> dict:
    sidecar = json.loads(next(out.rglob(pattern)).read_text())
    return next(s for s in sidecar["Sources"] if s["Role"] == "bold")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_first_run_reads_the_bold_once_and_records_its_real_checksum(tmp_path, monkeypatch, suffix):
    bids = tmp_path / "bids"
    demo.make_dataset(bids, n_volumes=40)
    bold = next(bids.rglob("sub-01_task-faces_run-1_*desc-preproc_bold.nii.gz"))
    if suffix == ".nii":  # the same run as a plain file
        plain = bold.with_name(bold.name[: -len(".gz")])
        plain.write_bytes(gzip.decompress(bold.read_bytes()))
        bold.unlink()
        bold = plain
    reread = _hashed_by_rereading(monkeypatch)
    _run(bids, tmp_path / "out", tmp_path / "work")
    assert bold.name not in reread  # hashed by the masking node's stream only
    assert any(name.endswith("desc-confounds_timeseries.tsv") for name in reread)  # the others as before
    assert _bold_source(tmp_path / "out", "*run-1*_timeseries.json")["SHA256"] == sha256sum(bold)
    assert ChecksumCache(tmp_path / "out" / "logs" / "checksums").cached(bold) == sha256sum(bold)


def test_bold_rewritten_between_runs_with_mtime_restored_is_hashed_again(tmp_path, monkeypatch):
    bids, out = tmp_path / "bids", tmp_path / "out"
    demo.make_dataset(bids, n_volumes=40)
    bold = next(bids.rglob("sub-01_task-faces_run-1_*desc-preproc_bold.nii.gz"))
    _run(bids, out, tmp_path / "work1")
    first = _bold_source(out, "*run-1*_timeseries.json")["SHA256"]
    _touch_gzip_header(bold, restore_times=True)
    next(out.rglob("*run-1*_timeseries.json")).unlink()  # no sidecar: the reuse check does not hash the inputs
    reread = _hashed_by_rereading(monkeypatch)
    _run(bids, out, tmp_path / "work2")
    assert bold.name not in reread  # the stale cache entry was not used: the stream hashed the file again
    second = _bold_source(out, "*run-1*_timeseries.json")["SHA256"]
    assert second == sha256sum(bold) != first


def test_bold_rewritten_between_runs_is_recomputed_by_the_reuse_check(tmp_path):
    bids, out = tmp_path / "bids", tmp_path / "out"
    demo.make_dataset(bids, n_volumes=40)
    bold = next(bids.rglob("sub-01_task-faces_run-1_*desc-preproc_bold.nii.gz"))
    _run(bids, out, tmp_path / "work1")
    first = _bold_source(out, "*run-1*_timeseries.json")["SHA256"]
    _touch_gzip_header(bold, restore_times=True)
    _run(bids, out, tmp_path / "work2")
    assert _bold_source(out, "*run-1*_timeseries.json")["SHA256"] == sha256sum(bold) != first


def test_bold_changed_while_the_masking_node_reads_it(tmp_path, monkeypatch, capsys):
    """The stream read the old bytes and the file changed under it: nothing is cached from the stream, and the run
    is refused (its array may mix both contents; the file's identity is not the one it had when the run was
    planned), with one line naming the file and no sidecar. Once the file is stable the run is computed again."""
    from bidsapp.cli.run import main

    bids, out = tmp_path / "bids", tmp_path / "out"
    demo.make_dataset(bids, n_volumes=40)
    bold = next(bids.rglob("sub-01_task-faces_run-1_*desc-preproc_bold.nii.gz"))
    before = sha256sum(bold)
    inner = io._gzip_volumes

    def changing(path, *args, **kwargs):
        for t, buf in inner(path, *args, **kwargs):
            if t == 5 and Path(path) == bold:
                _touch_gzip_header(bold, restore_times=False)
            yield t, buf

    monkeypatch.setattr(io, "_gzip_volumes", changing)
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "1",
                 "--plugin", "Linear", "--work-dir", str(tmp_path / "work")])
    err = capsys.readouterr().err
    assert code != 0 and "changed while the run was using it" in err and bold.name in err
    assert not list(out.rglob("*_timeseries.json"))
    assert ChecksumCache(out / "logs" / "checksums").cached(bold) is None  # nothing cached from the stream
    monkeypatch.undo()
    _run(bids, out, tmp_path / "work")
    assert _bold_source(out, "*run-1*_timeseries.json")["SHA256"] == sha256sum(bold) != before


def test_grayordinate_run_checksum_comes_from_the_copy(gray_demo, tmp_path, monkeypatch):
    bold = next(gray_demo.rglob("sub-03_*den-91k_bold.dtseries.nii"))
    reread = _hashed_by_rereading(monkeypatch)
    _run(gray_demo, tmp_path / "out", tmp_path / "work", "03", "--space", "fsLR", "--den", "91k",
         "--surface", "none")
    assert bold.name not in reread
    assert _bold_source(tmp_path / "out", "sub-03_*_timeseries.json")["SHA256"] == sha256sum(bold)


def test_run_start_is_the_first_node_that_ran_in_this_invocation():
    t0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    at = [(t0 + dt.timedelta(seconds=s)).isoformat() for s in range(6)]
    now = t0 + dt.timedelta(seconds=10)
    assert run_started([at[2], at[4]], at[1], now) == at[2]
    assert run_started([at[0], at[4]], at[1], now) == at[4]  # the mask's result is a reused one
    assert run_started([at[0], at[0]], at[1], now) == now.isoformat()  # both reused: the run starts here
    assert run_started([None, None], None, now) == now.isoformat()


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_dtseries_copy_checks_finiteness_in_every_block(gray_demo, tmp_path, monkeypatch, where, bad):
    """With a digest, the copy's own blocks say whether every value is finite (no second pass over the file):
    a non-finite value in any block sends the run through ``read_run`` (set to 0 and counted), as the file's map
    did; blocks of 64 kB make the small demo file several blocks."""

    monkeypatch.setattr(npy, "COLUMN_BLOCK_BYTES", 1 << 16)
    src = next(gray_demo.rglob("sub-03_*den-91k_bold.dtseries.nii"))
    img = nib.load(src)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    flat = data.reshape(-1, order="F")  # the file's order: a column's volumes, column after column
    flat[{"first": 3, "middle": flat.size // 2, "last": flat.size - 1}[where]] = bad
    path = tmp_path / "bad.dtseries.nii"
    out = nib.Cifti2Image(flat.reshape(data.shape, order="F"), header=img.header)
    out.set_data_dtype(np.float32)
    out.to_filename(path)
    for digest in (ReadDigest(), None):
        with pytest.warns(UserWarning, match="non-finite"):
            _, n_bad = go.write_run_array(path, None, tmp_path / "x.npy", digest=digest)
        assert n_bad == 1
        assert np.isfinite(np.load(tmp_path / "x.npy")).all()


def test_finite_check_needs_whole_values():
    from bidsapp.core.npy import FiniteCheck

    check = FiniteCheck(np.float32)
    assert check.finite is None
    check(memoryview(np.ones(4, np.float32).tobytes()))
    assert check.finite is True
    check(memoryview(np.array([1, np.nan], np.float32).tobytes()))
    assert check.finite is False
    check(memoryview(b"\x00" * 6))  # a short read: not whole values, so the caller checks the file itself
    assert check.finite is None
    check(memoryview(np.ones(2, np.float32).tobytes()))
    assert check.finite is None


def test_the_cache_removes_only_its_killed_writers_temporaries(tmp_path):
    """ChecksumCache.remove_temporaries: the hidden files atomic_path left, not the entries or other files."""
    from bidsapp.outputs.checksums import ChecksumCache

    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 100)
    cache = ChecksumCache(tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    digest = cache.sha256(data)
    stray = tmp_path / "cache" / ".0123abcd.k3j4h5.tmp.json"
    other = tmp_path / "cache" / "notes.txt"
    stray.write_text("{")
    other.write_text("kept")
    assert cache.remove_temporaries() == [stray]
    assert not stray.exists() and other.exists()
    assert cache.cached(data) == digest
    assert ChecksumCache(None).remove_temporaries() == []


def test_a_cache_folder_where_nothing_can_be_removed_keeps_its_temporaries(tmp_path, monkeypatch):
    """A read-only cache folder (tests run as root: the refusal is simulated) does not fail the invocation."""
    from pathlib import Path

    from bidsapp.outputs.checksums import ChecksumCache

    (tmp_path / "cache").mkdir()
    stray = tmp_path / "cache" / ".0123abcd.k3j4h5.tmp.json"
    stray.write_text("{")

    def refused(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refused)
    assert ChecksumCache(tmp_path / "cache").remove_temporaries() == []
    monkeypatch.undo()
    assert stray.exists()


def test_one_temporary_that_cannot_be_removed_does_not_keep_the_others(tmp_path):
    """A folder named like a temporary is skipped; the files after it are still removed and reported."""
    from bidsapp.outputs.checksums import ChecksumCache

    cache = tmp_path / "cache"
    (cache / ".0000aaaa.k3j4h5.tmp.json").mkdir(parents=True)
    strays = [cache / f".{k:04d}bbbb.k3j4h5.tmp.json" for k in range(5)]
    for f in strays:
        f.write_text("{")
    assert sorted(ChecksumCache(cache).remove_temporaries()) == strays
    assert not any(f.exists() for f in strays)
    assert (cache / ".0000aaaa.k3j4h5.tmp.json").is_dir()
