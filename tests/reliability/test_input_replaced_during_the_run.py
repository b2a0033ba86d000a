"""An input written or replaced while its run uses it is refused: the array was computed from one content and the
checksum would be taken of another (a red team's finding: a BOLD swapped after the masking node read it gave a
sidecar with the new file's SHA-256 over the old file's array, and every rerun then kept that stale output).

The run's inputs' identities (size, mtime, ctime, inode, device) are taken when the run is planned; the provenance
node checks them before and after hashing, the sink before writing the sidecar. Each test replaces a file at one
moment of an in-process run (``--plugin Linear``) and expects one error line, no sidecar, and a later run on the
stable file equal to a fresh one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.interfaces.clean import CleanSignals
from bidsapp.interfaces.extract import ExtractSignals
from bidsapp.interfaces.provenance import HashInputs
from bidsapp.outputs.checksums import check_unchanged, identities
from tests.reliability.helpers import STEM, SUB1, _sha, assert_sidecars_true

BOLD = "sub-01/func/sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
CONFOUNDS = "sub-01/func/sub-01_task-faces_run-1_desc-confounds_timeseries.tsv"


def _participant(bids: Path, out: Path, *extra: str) -> int:
    return main([str(bids), str(out), "participant", "--participant-label", "01", "--run", "1",
                 "--plugin", "Linear", *extra])


def _other_bold(path: Path, dst: Path) -> None:
    """The same run with other values (same grid, length and dtype)."""
    img = nib.load(path)
    data = img.get_fdata(dtype=np.float32)
    noise = np.random.default_rng(7).normal(0, 50, data.shape).astype(np.float32) * (data != 0)
    nib.save(nib.Nifti1Image(data + noise, img.affine, img.header), dst)


@pytest.fixture
def bids(data, tmp_path):
    src, _ = data
    dst = tmp_path / "bids"
    shutil.copytree(src, dst)
    return dst


def _replace_after(monkeypatch, interface, target: Path, new: Path) -> None:
    """Atomically replace ``target`` by a copy of ``new`` right after ``interface`` runs (as rsync or a rerun of
    fMRIPrep would: a new file renamed over the old)."""
    real = interface._run_interface

    def run_then_replace(self, runtime):
        result = real(self, runtime)
        tmp = target.with_name(target.name + ".new")
        shutil.copyfile(new, tmp)
        os.replace(tmp, target)
        return result

    monkeypatch.setattr(interface, "_run_interface", run_then_replace)


@pytest.mark.parametrize("after, which", [(ExtractSignals, "bold"), (HashInputs, "bold"),
                                          (CleanSignals, "confounds")])
def test_input_replaced_during_the_run_is_refused(bids, tmp_path, monkeypatch, capsys, after, which):
    fmriprep = bids / "derivatives" / "fmriprep"
    target = fmriprep / (BOLD if which == "bold" else CONFOUNDS)
    new = tmp_path / ("other_bold.nii.gz" if which == "bold" else "other_confounds.tsv")
    if which == "bold":
        _other_bold(target, new)
    else:
        lines = target.read_text().splitlines()
        new.write_text("\n".join([*lines[:5], lines[6], lines[5], *lines[7:]]) + "\n")  # two volumes swapped
    out = tmp_path / "out"
    _replace_after(monkeypatch, after, target, new)
    code = _participant(bids, out)
    err = capsys.readouterr().err
    assert code != 0
    assert "changed while the run was using it" in err and target.name in err
    assert not list(out.rglob("*_timeseries.json")), "a sidecar was written for outputs of a replaced input"
    monkeypatch.undo()
    # the input is stable now: the run is computed again, equal to a fresh run on that content
    assert _participant(bids, out) == 0
    fresh = tmp_path / "fresh"
    assert _participant(bids, fresh) == 0
    x = np.load(out / SUB1 / f"{STEM}_timeseries.npy")
    assert np.array_equal(x, np.load(fresh / SUB1 / f"{STEM}_timeseries.npy"))
    meta = json.loads((out / SUB1 / f"{STEM}_timeseries.json").read_text())
    role = "bold" if which == "bold" else "confounds"
    assert any(s["Role"] == role and s["SHA256"] == _sha(target) for s in meta["Sources"])
    assert_sidecars_true(out)


def test_check_unchanged_names_the_changed_file(tmp_path):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_text("x\n1\n")
    b.write_text("y\n2\n")
    planned = identities([a, b, None])
    check_unchanged(planned, "now")  # nothing changed
    st = b.stat()
    b.write_text("y\n3\n")  # same size, mtime restored: ctime still changes
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ValueError, match=r"b\.tsv: this input changed"):
        check_unchanged(planned, "now")
    b.unlink()
    with pytest.raises(ValueError, match=r"b\.tsv: this input changed"):
        check_unchanged(planned, "now")
