"""A volume run's masked array is cleaned in a copy of its file that becomes the output, or in the file itself
when the work folder is the invocation's private one (:class:`bidsapp.core.npy.RowsInPlace`): no fresh memory
holds it, and the result must be the array the in-memory path gives, bit for bit, with the SHA-256 of the file
installed, the masking node's file untouched (or taken, its node forgotten) and nothing left behind when the
cleaning fails.
"""

from __future__ import annotations

import errno
import hashlib
import os

import numpy as np
import pytest

from bidsapp.core import files, npy, signal
from bidsapp.core.files import save_npy
from bidsapp.core.npy import RowsInPlace
from bidsapp.interfaces.clean import CleanSignals


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("n, keep", [(120, 120), (120, 97), (100, 99), (10, 0), (100_000, 99_999)])
def test_rows_kept_in_place_load_as_those_rows(tmp_path, n, keep):
    """Any number of leading rows, including one digit fewer in the header's shape (100,000 -> 99,999) and none."""
    p = 3 if n > 1000 else 17
    x = np.random.default_rng(n + keep).normal(size=(n, p)).astype(np.float32)
    save_npy(x, tmp_path / "src.npy")
    before = _sha(tmp_path / "src.npy")
    rows = RowsInPlace(tmp_path / "src.npy", tmp_path / "out.npy")
    assert not (tmp_path / "out.npy").exists()  # a hidden temporary until installed
    rows.array[:keep] *= 2
    length = rows.keep(keep)
    digest = files.sha256sum(rows.tmp, length=length)
    path = rows.install(length)
    out = np.load(path)
    np.testing.assert_array_equal(out, x[:keep] * 2)
    assert out.shape == (keep, p) and out.dtype == np.float32
    assert digest == _sha(path) and os.path.getsize(path) == length
    assert _sha(tmp_path / "src.npy") == before  # the source is never written
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out.npy", "src.npy"]
    assert np.load(path, mmap_mode="r").offset % 64 == 0  # the data stay aligned for a memory map


def test_a_taken_file_is_renamed_or_copied_across_filesystems(tmp_path, monkeypatch):
    """``take`` renames the source (no byte copied: the same inode); where the rename cannot cross
    filesystems (``EXDEV``) the source is copied and stays."""
    x = np.arange(60, dtype=np.float32).reshape(12, 5)
    save_npy(x, tmp_path / "src.npy")
    inode = os.stat(tmp_path / "src.npy").st_ino
    rows = RowsInPlace.take(tmp_path / "src.npy", tmp_path / "out.npy")
    assert not (tmp_path / "src.npy").exists() and os.stat(rows.tmp).st_ino == inode
    rows.array[:7] += 1
    np.testing.assert_array_equal(np.load(rows.install(rows.keep(7))), x[:7] + 1)

    save_npy(x, tmp_path / "src.npy")
    real = os.replace

    def across(src, dst):
        if str(src).endswith("src.npy"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst)

    monkeypatch.setattr(npy.os, "replace", across)
    rows = RowsInPlace.take(tmp_path / "src.npy", tmp_path / "out2.npy")
    assert (tmp_path / "src.npy").exists() and os.stat(rows.tmp).st_ino != os.stat(tmp_path / "src.npy").st_ino
    np.testing.assert_array_equal(rows.array, x)
    rows.discard()


def test_a_discarded_copy_leaves_nothing(tmp_path):
    save_npy(np.ones((5, 4), np.float32), tmp_path / "src.npy")
    rows = RowsInPlace(tmp_path / "src.npy", tmp_path / "out.npy")
    rows.discard()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["src.npy"]


def _node(tmp_path, name: str, x: np.ndarray, **inputs):
    save_npy(x, tmp_path / f"{name}.npy")
    (tmp_path / name).mkdir()
    return CleanSignals(timeseries=str(tmp_path / f"{name}.npy"), t_r=0.8, denoise="none", **inputs)


@pytest.mark.parametrize("take", [False, True])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("seed", range(4))
def test_the_node_gives_the_in_memory_result_and_the_file_hash(tmp_path, seed, order, take):
    """Seeded runs: lengths, dummy scans (censored leading rows), band-pass or not, zscore or psc, a constant
    column, a volume run's layout (C: cleaned in a copy of its file, or in the file itself when the node may
    take it) or a dtseries' (F: cleaned into a new file); the cleaned file equals apply_operator on the array
    read into memory, its digest is its SHA-256, and the masking node's file is unchanged, or, taken, gone
    with its node's hash file (nipype then runs that node again on a resume)."""
    rng = np.random.default_rng(seed)
    n, p = int(rng.integers(40, 300)), int(rng.integers(50, 3000))
    x = (rng.uniform(100, 1000, p) + rng.normal(0, 1, (n, p)).cumsum(axis=0)).astype(np.float32)
    x[:, int(rng.integers(p))] = 300.0
    x = np.asarray(x, order=order)
    inputs = dict(dummy_scans=int(rng.integers(0, 4)), standardize=["zscore_sample", "psc"][seed % 2],
                  high_pass=0.01, low_pass=[None, 0.1][seed % 2], hash_cleaned=bool(seed < 3))
    node = _node(tmp_path, "run", x, take_timeseries=take, **inputs)
    src_sha = _sha(tmp_path / "run.npy")
    (tmp_path / "_0x0123456789abcdef.json").write_text("{}")  # the masking node's hash file (nipype's name)
    res = node.run(cwd=str(tmp_path / "run"))
    out = np.load(res.outputs.cleaned)
    kept = np.arange(inputs["dummy_scans"], n)
    op = signal.cleaning_operator(n, t_r=0.8, detrend=True, high_pass=0.01, low_pass=inputs["low_pass"],
                                  filter="butterworth", sample_mask=kept if kept.size < n else None)
    ref = signal.apply_operator(x.copy(order="K"), op, standardize=inputs["standardize"],
                                copy=order == "F")  # the in-memory paths: in place (C), a new array (F)
    np.testing.assert_array_equal(out, ref)
    taken = take and order == "C"
    assert (tmp_path / "run.npy").exists() is not taken
    assert (tmp_path / "_0x0123456789abcdef.json").exists() is not taken
    if not taken:
        assert _sha(tmp_path / "run.npy") == src_sha
    if inputs["hash_cleaned"]:
        assert res.outputs.cleaned_digest["sha256"] == _sha(res.outputs.cleaned)
    else:
        assert res.outputs.cleaned_digest == {}
    assert not [f for f in os.listdir(tmp_path / "run") if f.startswith(".")]  # no temporary left


def test_a_failed_cleaning_leaves_no_output_file(tmp_path, monkeypatch):
    x = np.random.default_rng(0).normal(100, 1, (80, 300)).astype(np.float32)
    node = _node(tmp_path, "run", x, hash_cleaned=True)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(signal, "apply_operator", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        node.run(cwd=str(tmp_path / "run"))
    assert not [f for f in os.listdir(tmp_path / "run") if "cleaned" in f]


def test_a_short_disk_takes_the_plain_path(tmp_path, monkeypatch):
    """Without room for the copy (:func:`bidsapp.core.files.has_room`), the array is read into memory and saved
    as before: a full disk is then an ``OSError`` from ``write()``, never a map's ``SIGBUS``."""
    from bidsapp.interfaces import clean

    x = np.random.default_rng(1).normal(100, 1, (90, 400)).astype(np.float32)
    node = _node(tmp_path, "run", x, hash_cleaned=True)
    made = []
    monkeypatch.setattr(clean, "has_room", lambda folder, nbytes: False)
    monkeypatch.setattr(clean, "RowsInPlace", lambda *a, **k: made.append(a))
    res = node.run(cwd=str(tmp_path / "run"))
    assert not made
    op = signal.cleaning_operator(90, t_r=0.8, detrend=True, filter="butterworth")
    np.testing.assert_array_equal(np.load(res.outputs.cleaned), signal.apply_operator(x.copy(), op, copy=False))
    assert res.outputs.cleaned_digest["sha256"] == _sha(res.outputs.cleaned)


FULL_DISK = """
import sys
import numpy as np
from bidsapp.interfaces import clean
clean.has_room = lambda folder, nbytes: True  # the disk filled up after the check
node = clean.CleanSignals(timeseries=sys.argv[1], t_r=0.8, denoise="none", hash_cleaned=True)
try:
    node.run(cwd=sys.argv[2])
except OSError as exc:
    print("OSError", exc.errno)
"""


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_disk_full_under_the_map_is_an_error_not_sigbus(tmp_path, order):
    """The copy's blocks are reserved (``posix_fallocate``) before they are mapped: on a disk that fills up
    the node raises ENOSPC and leaves no temporary file, where a write through the map to an unallocated
    block would kill the process by SIGBUS (a small tmpfs, root only)."""
    import errno
    import subprocess
    import sys

    from tests.reliability.test_error_lines import _tmpfs

    x = np.asarray(np.random.default_rng(2).normal(100, 1, (200, 3000)), dtype=np.float32, order=order)  # 2.4 MB
    save_npy(x, tmp_path / "ts.npy")
    with _tmpfs(tmp_path / "small", "size=2m") as small:
        (small / "node").mkdir()
        done = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path / "ts.npy"), str(small / "node")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
        assert done.stdout.split() == ["OSError", str(errno.ENOSPC)], done.stdout + done.stderr[-2000:]
        assert not [f for f in os.listdir(small / "node") if "cleaned" in f]


def test_no_reference_to_the_map_outlives_the_install(tmp_path, monkeypatch):
    """The file is cut to the kept rows when installed: the node must hold no other reference to its map then
    (a read past the kept rows would be a SIGBUS, a write would change the hashed file)."""
    import weakref

    x = np.random.default_rng(6).normal(100, 2, (80, 500)).astype(np.float32)
    node = _node(tmp_path, "run", x, hash_cleaned=True, dummy_scans=3)
    alive = []
    install = RowsInPlace.install

    def checked(self, length):
        ref = weakref.ref(self.array)
        self.array = None
        alive.append(ref() is not None)
        return install(self, length)

    monkeypatch.setattr(RowsInPlace, "install", checked)
    node.run(cwd=str(tmp_path / "run"))
    assert alive == [False]
