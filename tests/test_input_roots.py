"""Inputs are never touched (issue 22): every CLI mode leaves every input file's content and mode as it was,
outputs that would land in an input are refused before anything is written, and runs on read-only inputs work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.demo import make_dataset

SUB01_FUNC = Path("derivatives/fmriprep/sub-01/func")
BOLD1 = "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"


def _make_inputs(base: Path) -> dict[str, Path]:
    """A BIDS folder with fMRIPrep derivatives, an atlas folder (atlas + label table), a config folder and a
    TemplateFlow home, each a separate input root."""
    bids = base / "bids"
    make_dataset(bids, n_volumes=40)
    mask = nib.load(bids / SUB01_FUNC / BOLD1.replace("desc-preproc_bold", "desc-brain_mask"))
    brain = np.asanyarray(mask.dataobj) > 0
    labels = np.where(brain, 1 + (np.indices(brain.shape)[0] >= brain.shape[0] // 2), 0).astype(np.int16)
    atlases = base / "atlases"
    atlases.mkdir()
    nib.save(nib.Nifti1Image(labels, mask.affine), atlases / "atlas-halves_dseg.nii.gz")
    (atlases / "atlas-halves_dseg.tsv").write_text("index\tname\n1\tleft\n2\tright\n")
    (atlases / "dataset_description.json").write_text('{"Name": "atlases", "BIDSVersion": "1.9.0"}\n')
    config = base / "config"
    config.mkdir()
    (config / "settings.json").write_text(json.dumps({"denoise": "simple", "trial_estimates": "lss"}))
    templateflow = base / "templateflow"
    (templateflow / "tpl-MNI152NLin2009cAsym").mkdir(parents=True)
    (templateflow / "tpl-MNI152NLin2009cAsym" / "template_description.json").write_text("{}\n")
    (bids / "derivatives" / "fmriprep" / "sub-01" / "func" / "notes.txt").write_text("read-only\n")
    os.chmod(bids / "derivatives" / "fmriprep" / "sub-01" / "func" / "notes.txt", 0o600)  # an unusual mode
    return {"base": base, "bids": bids, "fmriprep": bids / "derivatives" / "fmriprep", "atlases": atlases,
            "atlas": atlases / "atlas-halves_dseg.nii.gz", "labels": atlases / "atlas-halves_dseg.tsv",
            "config": config / "settings.json", "templateflow": templateflow}


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every file and folder under ``root`` (symbolic links not followed): mode, and SHA-256 of files."""
    out = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else None
        out[str(path.relative_to(root))] = (st.st_mode, digest)
    return out


@pytest.fixture
def inputs(tmp_path):
    return _make_inputs(tmp_path / "inputs")


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _refused(argv: list, capsys) -> str:
    """Run bidsapp, expect exit 2 with one line, return it."""
    code = main([str(a) for a in argv])
    line = _one_line(capsys)
    assert code == 2, line
    return line


def test_every_cli_mode_leaves_every_input_unchanged(inputs, tmp_path, capsys, monkeypatch):
    """The invariant: participant (voxels, atlas + config), a rerun, the BIDS Apps layout
    (<bids_dir>/derivatives/bidsapp), group, a failing run, a run killed with SIGKILL mid-way, and every input
    root (or a folder inside one) as the output: content checksums and modes of every input are unchanged."""
    base, bids, fmriprep = inputs["base"], inputs["bids"], inputs["fmriprep"]
    inside_bids = bids / "derivatives" / "bidsapp"  # a legitimate output inside an input tree
    before = snapshot(base, skip=(inside_bids,))
    out = tmp_path / "out"
    atlas = ["--atlas", inputs["atlas"], "--atlas-labels", inputs["labels"], "--config", inputs["config"]]
    common = ["--participant-label", "01", "--nprocs", "1"]
    for argv in ([bids, out, "participant", *common, *atlas],
                 [bids, out, "participant", *common, *atlas],  # a rerun: every run reused
                 [bids, inside_bids, "participant", *common],
                 [bids, out, "group"], [bids, inside_bids, "group"]):
        assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    assert "skipped" in capsys.readouterr().out
    # a failing run: a confound column the confounds file lacks fails inside the workflow (exit 1, work folder
    # kept in $TMPDIR)
    assert main([str(bids), str(tmp_path / "failed"), "participant", *common, "--run", "1", "--confounds",
                 "no_such_column"]) == 1
    assert BOLD1 in _one_line(capsys)
    # SIGKILL mid-way (a subprocess, as a user's shell or a scheduler would kill it)
    tmp = Path(os.environ["TMPDIR"])
    proc = subprocess.Popen([sys.executable, "-m", "bidsapp.cli.run", str(bids), str(tmp_path / "killed"),
                             "participant", "--nprocs", "1", "--high-pass", "0.01"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list(tmp.glob("bidsapp-work-*/bidsapp_wf")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    # every input root, or a folder inside one, as the output (and as the --work-dir): refused, nothing written
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(inputs["templateflow"]))
    for output, extra in ((bids, []), (fmriprep, []), (fmriprep / "sub-01", []), (bids / "sub-01" / "new", []),
                          (inputs["atlases"], atlas), (inputs["config"].parent, atlas),
                          (inputs["templateflow"], ["--mask-strategy", "whole-brain-template"]),
                          (inputs["templateflow"] / "out", ["--mask-strategy", "whole-brain-template"])):
        for level in ("participant", "group"):
            line = _refused([bids, output, level, *extra], capsys)
            assert str(output) in line and "bidsapp never writes into its inputs: use e.g. " in line, line
    line = _refused([bids, tmp_path / "o", "participant", "--work-dir", fmriprep / "work"], capsys)
    assert f"--work-dir {fmriprep / 'work'} must not be inside the fMRIPrep folder" in line
    assert not (tmp_path / "o").exists() and not (bids / "sub-01" / "new").exists()
    assert snapshot(base, skip=(inside_bids,)) == before
    assert (inside_bids / "dataset_description.json").is_file()  # the BIDS Apps layout kept working


def test_output_in_the_fmriprep_folder_is_refused_naming_both(inputs, tmp_path, capsys):
    """The mistake seen in the issue: `bidsapp bids bids/derivatives/fmriprep participant` overwrote fMRIPrep's
    dataset_description.json. Now: exit 2, one line naming both folders and the suggested output folder."""
    bids, fmriprep = inputs["bids"], inputs["fmriprep"]
    desc = (fmriprep / "dataset_description.json").read_bytes()
    line = _refused([bids, fmriprep, "participant"], capsys)
    assert line == (f"bidsapp: error: output_dir {fmriprep} must not be the fMRIPrep folder (--fmriprep-dir); "
                    f"bidsapp never writes into its inputs: use e.g. {bids / 'derivatives' / 'bidsapp'}.")
    line = _refused([bids, fmriprep / "bidsapp", "participant"], capsys)
    assert line == (f"bidsapp: error: output_dir {fmriprep / 'bidsapp'} must not be inside the fMRIPrep folder "
                    f"(--fmriprep-dir) {fmriprep}; bidsapp never writes into its inputs: use e.g. "
                    f"{bids / 'derivatives' / 'bidsapp'}.")
    line = _refused([fmriprep, fmriprep / "bidsapp", "participant"], capsys)  # a derivatives-only dataset
    assert f"must not be inside the BIDS folder (bids_dir) {fmriprep}" in line
    assert f"use e.g. {fmriprep.parent / 'bidsapp'}." in line
    line = _refused([bids, bids / "derivatives", "participant"], capsys)
    assert "(only <bids_dir>/derivatives/<name> is allowed)" in line
    line = _refused([bids, bids / "derivativesX", "participant"], capsys)  # not a prefix test on the name
    assert "must not be inside the BIDS folder (bids_dir)" in line
    assert (fmriprep / "dataset_description.json").read_bytes() == desc
    assert not list(fmriprep.glob("logs")) and not (fmriprep / ".bidsignore").exists()


def test_symbolic_links_are_resolved(inputs, tmp_path, capsys):
    """An output folder that is a link to an input, or whose sub-01 / logs is, is refused like the input."""
    bids, fmriprep = inputs["bids"], inputs["fmriprep"]
    link = tmp_path / "link-to-fmriprep"
    link.symlink_to(fmriprep)
    line = _refused([bids, link, "participant"], capsys)
    assert f"output_dir {fmriprep} must not be the fMRIPrep folder" in line
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub-01").symlink_to(fmriprep / "sub-01")
    line = _refused([bids, out, "participant"], capsys)
    assert (f"output_dir's sub-01 (a symbolic link) {fmriprep / 'sub-01'} must not be inside the fMRIPrep folder"
            in line)
    line = _refused([bids, fmriprep / "x", "participant", "--fmriprep-dir", link], capsys)
    assert f"must not be inside the fMRIPrep folder (--fmriprep-dir) {fmriprep};" in line  # the link, resolved


def test_inputs_inside_the_output_folder(inputs, tmp_path, capsys):
    """The reverse: an input inside the output folder is refused where bidsapp writes (sub-*, logs), and fine
    elsewhere (output_dir=/data with bids_dir=/data/bids writes nothing in /data/bids)."""
    data = tmp_path / "data"
    shutil.copytree(inputs["bids"], data / "sub-99" / "bids")
    line = _refused([data / "sub-99" / "bids", data, "participant"], capsys)
    assert line.startswith(f"bidsapp: error: output_dir {data} must not contain the BIDS folder (bids_dir) "
                           f"{data / 'sub-99' / 'bids'} where bidsapp writes (sub-99)")
    (data / "sub-99").rename(data / "raw")
    before = snapshot(data / "raw")
    assert main([str(data / "raw" / "bids"), str(data), "participant", "--participant-label", "02", "--nprocs",
                 "1"]) == 0, capsys.readouterr().err
    assert snapshot(data / "raw") == before and (data / "sub-02").is_dir()
    # an atlas next to the data is fine: only the atlas's own folder may not be the output folder
    atlas = tmp_path / "atlas-halves_dseg.nii.gz"
    shutil.copy(inputs["atlas"], atlas)
    from bidsapp.cli.parser import parse_args

    assert parse_args([str(inputs["bids"]), str(tmp_path / "derivatives" / "bidsapp"), "participant", "--atlas",
                       str(atlas)]).atlas == atlas.resolve()


def test_tmpdir_inside_an_input_is_refused(inputs, tmp_path, capsys, monkeypatch):
    """Without --work-dir the work folder goes to $TMPDIR: inside an input that would write into it."""
    import tempfile

    inside = inputs["fmriprep"] / "tmp"
    monkeypatch.setattr(tempfile, "tempdir", str(inside))
    line = _refused([inputs["bids"], tmp_path / "o", "participant"], capsys)
    assert line == (f"bidsapp: error: the temporary folder for the work folder ($TMPDIR) {inside} must not be "
                    f"inside the fMRIPrep folder (--fmriprep-dir) {inputs['fmriprep']}; bidsapp never writes into "
                    "its inputs: set TMPDIR to a folder outside the inputs, or give --work-dir.")
    assert not inside.exists()


@contextlib.contextmanager
def _read_only_copy(src: Path, mount: Path):
    """``src`` copied into a tmpfs at ``mount``, then remounted read-only. Root ignores file modes
    (``chmod -R a-w`` does not stop root from writing), so a read-only filesystem is the only real test; it
    needs root and mount(8), else the test is skipped."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only mount needs root and mount(8) (chmod a-w does not stop root)")
    mount.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.decode().strip()}")
    try:
        shutil.copytree(src, mount, dirs_exist_ok=True, symlinks=True)
        done = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.decode().strip()}")
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_runs_on_read_only_inputs(inputs, tmp_path, capsys):
    """Inputs on a read-only filesystem: participant (atlas, config), a rerun and group all succeed."""
    with _read_only_copy(inputs["base"], tmp_path / "ro") as ro:
        with pytest.raises(OSError, match="Read-only file system"):
            (ro / "bids" / "probe").write_text("x")  # root cannot write here
        out = tmp_path / "out"
        atlas = ["--atlas", ro / "atlases" / "atlas-halves_dseg.nii.gz", "--atlas-labels",
                 ro / "atlases" / "atlas-halves_dseg.tsv", "--config", ro / "config" / "settings.json"]
        for argv in ([ro / "bids", out, "participant", "--participant-label", "01", "--nprocs", "1", *atlas],
                     [ro / "bids", out, "participant", "--participant-label", "01", "--nprocs", "1", *atlas],
                     [ro / "bids", out, "group"]):
            assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
        assert "skipped" in capsys.readouterr().out and (out / "group_runs.tsv").is_file()
