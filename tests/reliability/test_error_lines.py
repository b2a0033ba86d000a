"""Errors are one line naming the file or folder and the fix (full or read-only disks, grids, runs);
outputs follow the umask."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.demo import make_dataset
from tests.reliability.helpers import _cli, assert_sidecars_true


def test_outputs_follow_the_umask(data):
    """0644 files and 0755 folders under umask 022 (the reference run of this module)."""
    _, ref = data
    old = os.umask(0o022)
    os.umask(old)
    assert old == 0o022
    for path in ref.rglob("*"):
        if "checksums" in path.parts or "locks" in path.parts:
            continue
        mode = path.stat().st_mode & 0o777
        assert mode == (0o755 if path.is_dir() else 0o644), f"{path}: {oct(mode)}"


@contextlib.contextmanager
def _tmpfs(path: Path, options: str):
    """A small tmpfs mounted at ``path`` for the test (root only, else the test is skipped)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root and mount(8)")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_full_output_disk_is_one_line_and_no_false_sidecar(data, tmp_path):
    """The output filesystem fills up during the write."""
    bids, _ = data
    out = tmp_path / "full"
    with _tmpfs(out, "size=1200k"):
        done = _cli(bids, out, "participant", "--participant-label", "01", "--nprocs", "1")
        assert done.returncode == 73, done.stderr
        line = done.stderr.strip().splitlines()
        assert len(line) == 1 and "No space left on device" in line[0] and str(out) in line[0], done.stderr
        assert "unexpected error" not in line[0]
        assert_sidecars_true(out)


def test_full_work_disk_names_the_folder_and_the_fix(data, tmp_path):
    """The work folder's disk is full."""
    bids, _ = data
    work = tmp_path / "work"
    with _tmpfs(work, "size=400k"):
        done = _cli(bids, tmp_path / "o", "participant", "--participant-label", "01", "--nprocs", "1",
                    "--work-dir", work)
        assert done.returncode != 0
        assert "No space left on device" in done.stderr and "--work-dir" in done.stderr, done.stderr
        assert "unexpected error" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_read_only_output_folder(data, tmp_path):
    """An output folder on a read-only filesystem is one line with the folder and exit 73."""
    bids, _ = data
    out = tmp_path / "ro"
    with _tmpfs(out, "ro,size=1m"):
        done = _cli(bids, out, "participant", "--participant-label", "01")
        assert done.returncode == 73, done.stderr
        assert str(out) in done.stderr and "Read-only file system" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_read_only_work_dir_leaves_no_output_folder(data, tmp_path):
    """A --work-dir that cannot be written is found before anything is written: one line, exit 73, and the new
    output folder is not left behind (it held a dataset description and logs, as if a run had started)."""
    bids, _ = data
    work, out = tmp_path / "ro-work", tmp_path / "o"
    with _tmpfs(work, "ro,size=1m"):
        done = _cli(bids, out, "participant", "--participant-label", "01", "--work-dir", work / "w")
        assert done.returncode == 73, done.stderr
        assert str(work / "w") in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists()


def test_mask_grid_message_shows_what_differs(tmp_path):
    """Two grids that differ only by their origin are printed with their origins."""
    from bidsapp.core.masks import load_mask

    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    shifted = aff.copy()
    shifted[:3, 3] = [1.5, 0, 0]
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), shifted), tmp_path / "m.nii.gz")
    with pytest.raises(ValueError) as err:
        load_mask(tmp_path / "m.nii.gz", (4, 4, 4), aff)
    assert "origin [1.5, 0.0, 0.0] mm" in str(err.value) and "origin [0.0, 0.0, 0.0] mm" in str(err.value)


def test_node_errors_name_the_run(tmp_path, capsys):
    """A run too short for the Butterworth filter names the run's BOLD file."""
    bids = tmp_path / "bids"
    make_dataset(bids, n_volumes=30)
    code = main([str(bids), str(tmp_path / "o"), "participant", "--participant-label", "01", "--run", "1",
                 "--high-pass", "0.02", "--low-pass", "0.2", "--plugin", "Linear"])
    err = capsys.readouterr().err
    assert code == 1 and "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz: " in err
    assert "Butterworth" in err and err.count("\n") == 1


def test_late_trial_warning_is_one_line_from_bidsapp(data, tmp_path):
    """A trial after the end of the run is one warning line said by bidsapp."""
    bids, _ = data
    raw = tmp_path / "bids"
    shutil.copytree(bids, raw, symlinks=True)
    events = next((raw / "sub-01" / "func").glob("*run-1_events.tsv"))
    events.write_text(events.read_text() + "9000.0\t1.0\tface\tn/a\n")
    done = _cli(raw, tmp_path / "o", "participant", "--participant-label", "01", "--run", "1")
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bidsapp: warning: ") and "start outside the run" in lines[0]
    assert "after its end" in lines[0] and "marked invalid" in lines[0]
