"""Units of the output-generation machinery: checksum cache, writer, reuse test, temporaries."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

import bidsapp.outputs.checksums as checksums
from bidsapp.core.files import atomic_path, remove_temporaries
from bidsapp.outputs.checksums import ChecksumCache
from bidsapp.outputs.transaction import RunWriter, reuse_status


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_cache_reads_unchanged_files_once_and_sees_any_change(tmp_path, monkeypatch):
    calls = []
    real = checksums.sha256sum
    monkeypatch.setattr(checksums, "sha256sum", lambda p: calls.append(p) or real(p))
    f = tmp_path / "bold.nii.gz"
    f.write_bytes(b"a" * 100)
    cache = ChecksumCache(tmp_path / "cache")
    assert cache.sha256(f) == _sha(b"a" * 100) and ChecksumCache(tmp_path / "cache").sha256(f) == _sha(b"a" * 100)
    assert len(calls) == 1
    st = f.stat()
    f.write_bytes(b"b" * 100)  # same size, then the old mtime put back: ctime still changes
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.sha256(f) == _sha(b"b" * 100) and len(calls) == 2
    f2 = tmp_path / "copy.nii.gz"
    os.replace(f, f2)
    f2.rename(f)  # moved away and back: a rename changes ctime, so it is read again
    assert cache.sha256(f) == _sha(b"b" * 100) and len(calls) == 3


def test_writer_keeps_identical_files_and_invalidates_sidecars_of_replaced_ones(tmp_path):
    cache = ChecksumCache(None)
    folder = tmp_path / "func"
    folder.mkdir()
    shared = folder / "sub-01_task-a_desc-brain_mask.nii.gz"
    shared.write_bytes(b"mask-1")
    other = folder / "sub-01_task-a_desc-other_timeseries.json"
    other.write_text(json.dumps({"OutputFiles": [{"Path": shared.name, "Size": 6, "SHA256": _sha(b"mask-1")}]}))
    inode = shared.stat().st_ino
    writer = RunWriter(folder / "sub-01_task-a_desc-simple_timeseries.json", cache)
    writer.begin()
    with writer.put(shared) as tmp:
        tmp.write_bytes(b"mask-1")
    assert shared.stat().st_ino == inode and other.exists()  # same content: nothing replaced
    with pytest.warns(UserWarning, match="other_timeseries.json are now incomplete"):
        with writer.put(shared) as tmp:
            tmp.write_bytes(b"mask-2")
    assert shared.read_bytes() == b"mask-2" and not other.exists()  # the sidecar that described it is gone
    src = tmp_path / "work.npy"
    src.write_bytes(b"array")
    writer.install(src, folder / "sub-01_task-a_desc-simple_timeseries.npy")
    side = writer.finish({"ConfigurationHash": "h"})
    listed = json.loads(side.read_text())["OutputFiles"]
    assert [e["Path"] for e in listed] == [shared.name, shared.name, "sub-01_task-a_desc-simple_timeseries.npy"]
    assert listed[-1] == {"Path": "sub-01_task-a_desc-simple_timeseries.npy", "Size": 5, "SHA256": _sha(b"array")}
    with pytest.raises(ValueError, match="must be in"):
        with writer.put(tmp_path / "elsewhere.npy"):
            pass


def test_reuse_status_reasons(tmp_path):
    cache = ChecksumCache(tmp_path / "cache")
    folder = tmp_path / "func"
    folder.mkdir()
    sidecar = folder / "x_timeseries.json"
    sources = [{"Role": "bold", "URI": "bids:fmriprep:x.nii.gz", "SHA256": "1"}]

    def status(**kw):
        return reuse_status(sidecar, configuration_hash="h", current_sources=lambda: kw.get("now", sources),
                            cache=cache, version=kw.get("version", "1.0"), code=kw.get("code", "c1"))

    assert status() == "no complete previous outputs"
    sidecar.write_text("{not json")
    assert "unreadable" in status()
    (folder / "x_timeseries.npy").write_bytes(b"abc")
    meta = {"ConfigurationHash": "h", "SoftwareVersions": {"bidsapp": "1.0"}, "CodeFingerprint": "c1",
            "Sources": sources,
            "OutputFiles": [{"Path": "x_timeseries.npy", "Size": 3, "SHA256": _sha(b"abc")}]}
    sidecar.write_text(json.dumps(meta))
    assert status() is None
    assert "settings changed" in reuse_status(sidecar, configuration_hash="g", current_sources=lambda: sources,
                                              cache=cache, version="1.0", code="c1")
    assert status(version="2.0") == "made by bidsapp 1.0, this is 2.0"
    assert status(code="c2").startswith("made by other code")
    assert "changed (sha256 differs)" in status(now=[dict(sources[0], SHA256="2")])
    assert "is new" in status(now=sources + [{"Role": "events", "URI": "bids:raw:e.tsv", "SHA256": "3"}])
    (folder / "x_timeseries.npy").write_bytes(b"abd")
    assert status() == "output x_timeseries.npy changed since it was written"
    (folder / "x_timeseries.npy").unlink()
    assert status() == "output x_timeseries.npy is missing"


def test_remove_temporaries_only_takes_the_runs_own(tmp_path):
    keep = tmp_path / ".sub-01_run-10_desc-a_timeseries.abcd_123.tmp.npy"
    gone = tmp_path / ".sub-01_run-1_desc-a_timeseries.abcd_123.tmp.npy"
    for f in (keep, gone):
        f.write_bytes(b"x")
    removed = remove_temporaries(tmp_path, lambda base: base.startswith("sub-01_run-1_"))
    assert removed == [gone] and keep.exists() and not gone.exists()


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
