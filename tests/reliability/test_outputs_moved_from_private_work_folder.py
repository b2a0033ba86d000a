"""Without ``--work-dir`` the run's large arrays are moved from the invocation's private work folder into the outputs
(no second write, no second read for their checksum); with ``--work-dir`` they are copied, so the folder stays a
cache a later invocation resumes from; across filesystems (``EXDEV``) they are copied. In every mode the sidecar's
SHA-256 of every output is the checksum of its bytes."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.outputs import transaction
from bidsapp.outputs.checksums import written_digest
from bidsapp.outputs.transaction import RunWriter
from tests.reliability.helpers import STEM, SUB1, assert_sidecars_true


def _participant(bids: Path, out: Path, *extra: str) -> int:
    return main([str(bids), str(out), "participant", "--participant-label", "01", "--plugin", "Linear", *extra])


@pytest.fixture
def installs(monkeypatch):
    """Every RunWriter.install: the work file's (inode, device) before, whether it is still there after, and the
    output's (inode, device)."""
    seen: list[dict] = []
    real = RunWriter.install

    def spy(self, src, path, **kw):
        st = os.stat(src)
        where = real(self, src, path, **kw)
        out = os.stat(path)
        seen.append({"src": Path(src), "path": Path(path), "src_id": (st.st_ino, st.st_dev),
                     "out_id": (out.st_ino, out.st_dev), "src_left": Path(src).exists(), "returned": where})
        return where

    monkeypatch.setattr(RunWriter, "install", spy)
    return seen


def _sha256sum_matches_sidecars(out: Path) -> int:
    """``sha256sum`` (the coreutils command) of every output equals its sidecar's SHA256; returns the outputs seen."""
    import json

    n = 0
    for sidecar in out.rglob("*_timeseries.json"):
        for entry in json.loads(sidecar.read_text())["OutputFiles"]:
            line = subprocess.run(["sha256sum", str(sidecar.parent / entry["Path"])], capture_output=True,
                                  text=True, check=True).stdout
            assert line.split()[0] == entry["SHA256"], entry["Path"]
            n += 1
    return n


def _by_name(seen: list[dict], ending: str) -> dict:
    (entry,) = [e for e in seen if e["path"].name.endswith(ending) and e["path"].parent.name == "func"
                and "run-1" in e["path"].name]
    return entry


def test_private_work_folder_moves_the_array_and_carries_its_checksum(data, tmp_path, installs, monkeypatch):
    bids, ref = data
    hashed: list[str] = []
    real_sha = transaction.sha256sum
    monkeypatch.setattr(transaction, "sha256sum", lambda p, *a: hashed.append(Path(p).name) or real_sha(p, *a))
    out = tmp_path / "out"
    assert _participant(bids, out, "--trial-estimates", "lss") == 0
    npy = _by_name(installs, "_timeseries.npy")
    # the output is the work folder's file itself: the same inode, and the work file is gone
    assert npy["out_id"] == npy["src_id"] and not npy["src_left"] and npy["returned"] == npy["path"]
    assert npy["src"].name == "cleaned.npy" and npy["src"].parent.name == "cleaning"
    betas = _by_name(installs, "_betas.npy")
    assert betas["out_id"] == betas["src_id"] and not betas["src_left"]
    tsv = _by_name(installs, "_betas.tsv")  # a table the sidecar reads after installing it: copied
    assert tsv["out_id"] != tsv["src_id"] and tsv["src_left"]
    # no temporary of the cleaned array was read for its checksum: the cleaning node's digest was carried
    assert not [name for name in hashed if name.endswith(".npy") and "_timeseries" in name]
    assert assert_sidecars_true(out) == 2 and _sha256sum_matches_sidecars(out) > 10
    for run in ("run-1", "run-2"):
        stem = STEM.replace("run-1", run)
        np.testing.assert_array_equal(np.load(out / SUB1 / f"{stem}_timeseries.npy"),
                                      np.load(ref / SUB1 / f"{stem}_timeseries.npy"))
    assert not list(Path(os.environ["TMPDIR"]).glob("bidsapp-work-*"))  # removed after success


def test_work_dir_copies_and_a_second_invocation_resumes_from_it(data, tmp_path, installs):
    """With --work-dir the outputs are copies; an invocation whose runs lost their sidecars (as an interrupted
    one leaves them) resumes from the cache: the cleaning node is served from it, and the outputs are the same
    bytes."""
    import shutil

    bids, ref = data
    work, out = tmp_path / "work", tmp_path / "out"
    assert _participant(bids, out, "--work-dir", str(work)) == 0
    npy = _by_name(installs, "_timeseries.npy")
    assert npy["out_id"] != npy["src_id"] and npy["src_left"] and npy["returned"] == npy["src"]
    cleaned, first = npy["src"], tmp_path / "first"
    before = os.stat(cleaned)
    shutil.copytree(out, first)
    for sidecar in out.rglob("*_timeseries.json"):
        sidecar.unlink()  # incomplete: the runs are recomputed
    installs.clear()
    assert _participant(bids, out, "--work-dir", str(work)) == 0
    again = _by_name(installs, "_timeseries.npy")
    assert again["src"] == cleaned and again["src_left"] and again["out_id"] != again["src_id"]
    after = os.stat(cleaned)  # nipype's cache served the cleaning node: its file was neither rewritten nor moved
    assert (after.st_ino, after.st_mtime_ns, after.st_ctime_ns) == (before.st_ino, before.st_mtime_ns,
                                                                     before.st_ctime_ns)
    assert assert_sidecars_true(out) == 2 and _sha256sum_matches_sidecars(out) > 5
    names = sorted(p.name for p in (first / SUB1).iterdir())
    assert names == sorted(p.name for p in (out / SUB1).iterdir())
    for name in names:
        if not name.endswith("_timeseries.json"):  # the run's sidecar records its own times
            assert (first / SUB1 / name).read_bytes() == (out / SUB1 / name).read_bytes(), name
    np.testing.assert_array_equal(np.load(out / SUB1 / f"{STEM}_timeseries.npy"),
                                  np.load(ref / SUB1 / f"{STEM}_timeseries.npy"))


def test_another_filesystem_falls_back_to_a_copy(data, tmp_path, installs, monkeypatch):
    """``os.rename`` from the work folder into the outputs fails with EXDEV, as between two mounts."""
    bids, ref = data
    out = tmp_path / "out"
    real_rename = os.rename
    refused = []

    def rename(src, dst, *a, **kw):
        if Path(dst).is_relative_to(out) and not Path(src).is_relative_to(out):
            refused.append(Path(src).name)
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
        return real_rename(src, dst, *a, **kw)

    monkeypatch.setattr(os, "rename", rename)
    assert _participant(bids, out) == 0
    assert "cleaned.npy" in refused  # the move was tried
    npy = _by_name(installs, "_timeseries.npy")
    assert npy["out_id"] != npy["src_id"] and npy["src_left"] and npy["returned"] == npy["src"]
    assert assert_sidecars_true(out) == 2 and _sha256sum_matches_sidecars(out) > 5
    assert (out / SUB1 / f"{STEM}_timeseries.npy").read_bytes() == (ref / SUB1 / f"{STEM}_timeseries.npy").read_bytes()


def test_a_failed_sink_gives_the_moved_array_back_to_the_kept_work_folder(data, tmp_path, monkeypatch, capsys):
    """The array was moved and installed, then the sink failed (disk full): the kept work folder holds the array
    again, and naming it as --work-dir resumes and finishes the run with the reference numbers."""
    bids, ref = data
    out = tmp_path / "out"
    real = RunWriter.install

    def install_then_fail(self, src, path, **kw):
        if str(src).endswith("samples.tsv"):  # after _timeseries.npy (moved) and _features.tsv
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(self, src, path, **kw)

    monkeypatch.setattr(RunWriter, "install", install_then_fail)
    assert _participant(bids, out, "--run", "1") == 73
    assert "work folder kept" in capsys.readouterr().err
    (kept,) = Path(os.environ["TMPDIR"]).glob("bidsapp-work-*")
    (cleaned,) = kept.glob("bidsapp_wf/*/cleaning/cleaned.npy")
    assert not (out / SUB1 / f"{STEM}_timeseries.json").exists()
    assert cleaned.read_bytes() == (out / SUB1 / f"{STEM}_timeseries.npy").read_bytes()  # a copy given back
    monkeypatch.setattr(RunWriter, "install", real)
    assert _participant(bids, out, "--run", "1", "--work-dir", str(kept)) == 0
    assert assert_sidecars_true(out) == 1 and _sha256sum_matches_sidecars(out) > 5
    assert (out / SUB1 / f"{STEM}_timeseries.npy").read_bytes() == (ref / SUB1 / f"{STEM}_timeseries.npy").read_bytes()


def test_a_file_changed_after_it_was_hashed_is_hashed_again(tmp_path, monkeypatch):
    """The node's digest is carried only for the very file it hashed, unchanged: a work file rewritten since
    (same size) is hashed as installed, so the sidecar's SHA-256 is its bytes'."""
    from bidsapp.core.files import sha256sum
    from bidsapp.core.npy import save_npy_hashed
    from bidsapp.outputs.checksums import ChecksumCache

    work = tmp_path / "work" / "cleaned.npy"
    work.parent.mkdir()
    rng = np.random.default_rng(3)
    record = written_digest(work, save_npy_hashed(rng.standard_normal((20, 30)).astype(np.float32), work))
    assert record["sha256"] == sha256sum(work)
    arr = np.load(work, mmap_mode="r+")
    arr[3, 4] += 1.0  # the same size, other bytes
    arr.flush()
    del arr
    writer = RunWriter(tmp_path / "out" / "sub-01_task-a_timeseries.json", ChecksumCache(None))
    writer.begin()
    dst = writer.folder / "sub-01_task-a_timeseries.npy"
    assert writer.install(work, dst, move=True, written=record) == dst and not work.exists()
    assert writer.entries[0]["SHA256"] == sha256sum(dst) != record["sha256"]
    # unchanged since it was hashed: the digest is carried, the moved file is not read again
    work2 = tmp_path / "work" / "other.npy"
    record2 = written_digest(work2, save_npy_hashed(np.arange(12.0).reshape(3, 4), work2))
    expected = sha256sum(work2)
    monkeypatch.setattr(transaction, "sha256sum", lambda *a: pytest.fail("a carried digest was recomputed"))
    dst2 = writer.folder / "sub-01_task-a_samples.npy"
    assert writer.install(work2, dst2, move=True, written=record2) == dst2
    assert writer.entries[1]["SHA256"] == expected == sha256sum(dst2)
